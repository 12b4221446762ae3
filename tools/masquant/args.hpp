// args.hpp: strict command-line parsing for the masquant tool (unknown flags and bad values are
// usage errors, reported in one line).
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace masquant::cli {

/// A mistake in the command line; the tool prints it with a hint to --help and exits with 2.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One --flag of a command.
struct option {
  std::string name;           ///< without the leading dashes
  std::string value_name;     ///< empty for a switch without value
  std::string help;           ///< one line
  std::string default_value;  ///< shown in --help; empty when none
  /// Takes several values: `--stats a b c` (every following word up to the next one starting
  /// with '-') or `--stats a --stats b`; get_all() gives them in order.
  bool repeatable = false;
};

/// The flags and positional arguments a command accepts, and its help text.
struct command_spec {
  std::string name;
  std::string synopsis;                 ///< e.g. "IN.safetensors -o OUT.safetensors [flags]"
  std::string summary;                  ///< one paragraph
  std::vector<std::string> positional;  ///< names of the required positional arguments
  std::vector<option> options;
  bool variadic = false;  ///< the last positional argument takes one or more words
};

/// The result of parsing: flag values by name and positional arguments in order.
class parsed_args {
 public:
  bool has(const std::string& name) const { return values_.count(name) != 0; }

  /// The flag's value, or `fallback` when the flag was not given.
  std::string get(const std::string& name, const std::string& fallback = "") const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second.front();
  }

  /// Every value of a repeatable flag, in command-line order (empty when not given).
  std::vector<std::string> get_all(const std::string& name) const {
    auto it = values_.find(name);
    return it == values_.end() ? std::vector<std::string>{} : it->second;
  }

  /// An integer flag in [lo, hi]; throws usage_error naming the flag otherwise.
  long long get_int(const std::string& name, long long fallback, long long lo, long long hi) const {
    if (!has(name)) return fallback;
    const std::string text = get(name);
    errno = 0;
    char* end = nullptr;
    const long long v = std::strtoll(text.c_str(), &end, 10);
    if (text.empty() || *end != '\0' || errno == ERANGE || v < lo || v > hi)
      throw usage_error("--" + name + ": expected an integer in [" + std::to_string(lo) + ", " +
                        std::to_string(hi) + "], got '" + text + "'");
    return v;
  }

  /// A finite number in [lo, hi]; throws usage_error naming the flag otherwise.
  double get_double(const std::string& name, double fallback, double lo, double hi) const {
    if (!has(name)) return fallback;
    const std::string text = get(name);
    errno = 0;
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v) || v < lo || v > hi)
      throw usage_error("--" + name + ": expected a number in [" + format_number(lo) + ", " +
                        format_number(hi) + "], got '" + text + "'");
    return v;
  }

  /// One of `choices`; throws usage_error listing them otherwise.
  std::string get_choice(const std::string& name, const std::string& fallback,
                         const std::vector<std::string>& choices) const {
    std::string v = get(name, fallback);
    for (const auto& c : choices)
      if (c == v) return v;
    std::string list;
    for (const auto& c : choices) list += (list.empty() ? "" : "|") + c;
    throw usage_error("--" + name + ": expected " + list + ", got '" + v + "'");
  }

  const std::vector<std::string>& positional() const { return positional_; }

 private:
  friend parsed_args parse(const command_spec&, const std::vector<std::string>&);
  static std::string format_number(double v) {
    std::string s = std::to_string(v);
    while (s.size() > 1 && s.back() == '0') s.pop_back();
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  std::map<std::string, std::vector<std::string>> values_;
  std::vector<std::string> positional_;
};

/// The --help text of a command.
inline std::string help_text(const command_spec& spec) {
  std::string out =
      "usage: masquant " + spec.name + " " + spec.synopsis + "\n\n" + spec.summary + "\n";
  if (!spec.options.empty()) out += "\noptions:\n";
  for (const auto& o : spec.options) {
    std::string left = "  --" + o.name + (o.value_name.empty() ? "" : " " + o.value_name) +
                       (o.repeatable ? "..." : "");
    if (left.size() < 28)
      left.resize(28, ' ');
    else
      left += "\n" + std::string(28, ' ');
    out += left + o.help;
    if (!o.default_value.empty()) out += " (default: " + o.default_value + ")";
    out += "\n";
  }
  out += "  -h, --help                show this help\n";
  return out;
}

/// Parses `args` (the words after the command name). Accepts `--flag value`, `--flag=value`, the
/// short `-o` for `--output`, and `--` to end flags. Returns nothing when help was asked for.
/// Throws usage_error for an unknown flag, a missing or unexpected value, a repeated flag, or a
/// wrong number of positional arguments.
inline parsed_args parse(const command_spec& spec, const std::vector<std::string>& args) {
  parsed_args result;
  bool flags_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-') {
      result.positional_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    std::string name, value;
    bool inline_value = false;
    if (arg == "-o") {
      name = "output";
    } else if (arg.rfind("--", 0) == 0) {
      name = arg.substr(2);
      const auto eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        inline_value = true;
      }
    } else {
      throw usage_error("unknown option '" + arg + "'");
    }
    const option* opt = nullptr;
    for (const auto& o : spec.options)
      if (o.name == name) opt = &o;
    if (!opt) throw usage_error("unknown option '--" + name + "' for 'masquant " + spec.name + "'");
    if (result.values_.count(name) && !opt->repeatable)
      throw usage_error("option '--" + name + "' given twice");
    if (opt->value_name.empty()) {
      if (inline_value) throw usage_error("option '--" + name + "' takes no value");
      result.values_[name] = {"1"};
      continue;
    }
    if (!inline_value) {
      if (i + 1 >= args.size()) throw usage_error("option '--" + name + "' needs a value");
      value = args[++i];
    }
    result.values_[name].push_back(value);
    // A repeatable flag also takes the words that follow it, up to the next flag.
    while (opt->repeatable && !inline_value && i + 1 < args.size() && !args[i + 1].empty() &&
           args[i + 1][0] != '-')
      result.values_[name].push_back(args[++i]);
  }
  const bool count_ok = spec.variadic ? result.positional_.size() >= spec.positional.size()
                                      : result.positional_.size() == spec.positional.size();
  if (!count_ok) {
    std::string names;
    for (const auto& p : spec.positional) names += " " + p;
    throw usage_error("'masquant " + spec.name + "' takes " + (spec.variadic ? "at least " : "") +
                      std::to_string(spec.positional.size()) + " argument" +
                      (spec.positional.size() == 1 ? "" : "s") +
                      (names.empty() ? "" : ":" + names) + ", got " +
                      std::to_string(result.positional_.size()));
  }
  return result;
}

/// True when the words ask for help (-h or --help anywhere before `--`).
inline bool wants_help(const std::vector<std::string>& args) {
  for (const auto& a : args) {
    if (a == "--") return false;
    if (a == "-h" || a == "--help") return true;
  }
  return false;
}

}  // namespace masquant::cli
