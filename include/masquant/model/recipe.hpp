// recipe.hpp: how a whole model is quantized — which linears, which share an input, and the
// calibration settings of each — as one JSON schema that a checkpoint's quantization_config
// repeats, so every output documents how it was made.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <masquant/error.hpp>
#include <masquant/io/detail/json_file.hpp>
#include <masquant/io/tensor_names.hpp>
#include <masquant/model/settings.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace masquant {

/// Version of the recipe schema written (and the only one read).
inline constexpr int recipe_version = 1;

/// A pattern over module names (a linear's tensor name without ".weight"): "re:<regex>" matches
/// when the ECMAScript regex matches the whole name; otherwise '*' matches any run of characters
/// (dots included) and every other character itself, so "lm_head" is an exact name and
/// "*.down_proj" every down projection.
class name_pattern {
 public:
  /// Throws errc::invalid_argument for an empty pattern or an invalid regex (naming it).
  explicit name_pattern(std::string text) : text_(std::move(text)) {
    MASQUANT_CHECK(!text_.empty(), errc::invalid_argument, "recipe: empty name pattern");
    std::string re;
    if (text_.rfind("re:", 0) == 0) {
      re = text_.substr(3);
    } else {
      for (char c : text_) {
        if (c == '*') {
          re += ".*";
        } else {
          if (std::string_view("\\^$.|?+()[]{}").find(c) != std::string_view::npos) re += '\\';
          re += c;
        }
      }
    }
    try {
      regex_ = std::regex(re, std::regex::ECMAScript | std::regex::optimize);
    } catch (const std::regex_error& e) {
      raise(errc::invalid_argument,
            detail::cat("recipe: pattern '", text_, "' is not a valid regex: ", e.what()));
    }
  }

  const std::string& text() const noexcept { return text_; }
  bool matches(const std::string& name) const { return std::regex_match(name, regex_); }

 private:
  std::string text_;
  std::regex regex_;
};

/// An override: the settings that apply to every targeted linear whose name matches.
struct recipe_override {
  std::string match;
  linear_settings settings;
};

/// How a whole model is quantized (docs/model.md, "Recipes"):
/// - targets: patterns of the linears to quantize; ignore: patterns kept in float even when a
///   target matches (a vision tower, an audio encoder);
/// - groups: sibling linears that read the same input, by the last component of their names
///   (q_proj, k_proj, v_proj): they share one statistics record, keyed by the first member's name;
///   tie_group_smoothing: one smoothing vector per modality for the whole group (so 1/s can fold
///   into the preceding norm) instead of one per linear;
/// - defaults, then overrides in order (a later one wins): each linear's settings;
/// - modalities (id order, the reference first) and reference: empty modalities take the
///   statistics' list.
struct quantization_recipe {
  std::string preset;  ///< the preset it started from ("" for none), for the record
  std::vector<std::string> modalities;
  std::string reference = "text";
  std::vector<std::string> targets;
  std::vector<std::string> ignore;
  std::vector<std::vector<std::string>> groups;
  bool tie_group_smoothing = false;
  linear_settings defaults = linear_settings::defaults();
  std::vector<recipe_override> overrides;

  /// The settings of linear `name`: the defaults with every matching override applied in order.
  linear_settings settings_of(const std::string& name) const {
    linear_settings s = defaults;
    for (const auto& o : overrides)
      if (name_pattern(o.match).matches(name)) s = s.overridden_by(o.settings);
    return s;
  }

  /// Throws errc::invalid_argument naming the first bad field (patterns, settings, groups).
  void validate() const {
    MASQUANT_CHECK(!targets.empty(), errc::invalid_argument, "recipe: \"targets\" is empty");
    for (const auto& p : targets) static_cast<void>(name_pattern{p});  // validates
    for (const auto& p : ignore) static_cast<void>(name_pattern{p});   // validates
    MASQUANT_CHECK(is_modality_name(reference), errc::invalid_argument, "recipe: \"reference\" '",
                   reference,
                   "' is not a modality name (non-empty, no '.', not a word of the tensor names)");
    if (!modalities.empty())
      MASQUANT_CHECK(modalities.front() == reference, errc::invalid_argument,
                     "recipe: \"modalities\" must list the reference '", reference, "' first");
    for (const auto& m : modalities)
      MASQUANT_CHECK(
          is_modality_name(m), errc::invalid_argument, "recipe: modality '", m,
          "' is not a modality name (non-empty, no '.', not a word of the tensor names)");
    std::vector<std::string> members;
    for (const auto& g : groups) {
      MASQUANT_CHECK(g.size() >= 2, errc::invalid_argument,
                     "recipe: a group needs two or more members");
      for (const auto& m : g) {
        MASQUANT_CHECK(!m.empty() && m.find('.') == std::string::npos, errc::invalid_argument,
                       "recipe: group member '", m, "' is not the last component of a name");
        MASQUANT_CHECK(std::find(members.begin(), members.end(), m) == members.end(),
                       errc::invalid_argument, "recipe: '", m, "' is in two groups");
        members.push_back(m);
      }
    }
    defaults.validate("recipe: \"defaults\"", true);
    for (std::size_t i = 0; i < overrides.size(); ++i) {
      static_cast<void>(name_pattern{overrides[i].match});  // validates
      overrides[i].settings.validate(
          detail::cat("recipe: override ", i, " ('", overrides[i].match, "')"), false);
    }
  }
};

namespace detail {

inline void settings_to_json(const linear_settings& s, nlohmann::ordered_json& j) {
  auto put = [&](const char* key, const auto& v) {
    if (v) j[key] = *v;
  };
  put("wbits", s.wbits);
  put("abits", s.abits);
  put("method", s.method);
  if (s.alpha) {
    if (const auto a = s.alpha_value()) {
      j["alpha"] = *a;
    } else {
      j["alpha"] = *s.alpha;
    }
  }
  put("learn_steps", s.learn_steps);
  put("learning_rate", s.learning_rate);
  put("batch_tokens", s.batch_tokens);
  put("rank", s.rank);
  put("min_rank", s.min_rank);
  put("whiten", s.whiten);
  put("damping", s.damping);
  put("quantized_compensation", s.quantized_compensation);
  put("seed", s.seed);
}

// Reads the settings keys of `j` (others are an error, naming `where`).
inline linear_settings settings_from_json(const nlohmann::json& j, const std::string& where,
                                          const std::vector<std::string>& also_allowed = {}) {
  MASQUANT_CHECK(j.is_object(), errc::format_error, where, ": expected an object");
  linear_settings s;
  for (const auto& item : j.items()) {
    const std::string& key = item.key();  // not a structured binding: lambdas capture these
    const nlohmann::json& v = item.value();
    auto type_error = [&](const char* what) {
      raise(errc::format_error, cat(where, ": \"", key, "\" must be ", what, ", got ", v.dump()));
    };
    auto integer = [&]() -> std::int64_t {
      if (!v.is_number_integer()) type_error("an integer");
      return v.get<std::int64_t>();
    };
    auto number = [&]() -> double {
      if (!v.is_number()) type_error("a number");
      return v.get<double>();
    };
    auto text = [&]() -> std::string {
      if (!v.is_string()) type_error("a string");
      return v.get<std::string>();
    };
    if (key == "wbits") {
      s.wbits = static_cast<int>(std::clamp<std::int64_t>(integer(), -1, 1000));
    } else if (key == "abits") {
      s.abits = static_cast<int>(std::clamp<std::int64_t>(integer(), -1, 1000));
    } else if (key == "method") {
      s.method = text();
    } else if (key == "alpha") {
      if (v.is_string()) {
        s.alpha = v.get<std::string>();
      } else {
        s.alpha = nlohmann::json(number()).dump();
      }
    } else if (key == "learn_steps") {
      s.learn_steps = integer();
    } else if (key == "learning_rate") {
      s.learning_rate = number();
    } else if (key == "batch_tokens") {
      s.batch_tokens = integer();
    } else if (key == "rank") {
      s.rank = number();
    } else if (key == "min_rank") {
      s.min_rank = integer();
    } else if (key == "whiten") {
      s.whiten = text();
    } else if (key == "damping") {
      s.damping = number();
    } else if (key == "quantized_compensation") {
      if (!v.is_boolean()) type_error("true or false");
      s.quantized_compensation = v.get<bool>();
    } else if (key == "seed") {
      s.seed = integer();
    } else if (std::find(also_allowed.begin(), also_allowed.end(), key) == also_allowed.end()) {
      raise(errc::format_error, cat(where, ": unknown key \"", key, "\""));
    }
  }
  return s;
}

inline std::vector<std::string> string_list(const nlohmann::json& j, const std::string& where) {
  MASQUANT_CHECK(j.is_array(), errc::format_error, where, ": expected a list of strings");
  std::vector<std::string> out;
  for (const auto& v : j) {
    MASQUANT_CHECK(v.is_string(), errc::format_error, where, ": expected a list of strings, got ",
                   v.dump());
    out.push_back(v.get<std::string>());
  }
  return out;
}

}  // namespace detail

/// The recipe as JSON (the shape of a quantized checkpoint's "quantization_config").
inline nlohmann::ordered_json to_json(const quantization_recipe& r) {
  nlohmann::ordered_json j;
  j["quant_method"] = "masquant";
  j["recipe_version"] = recipe_version;
  if (!r.preset.empty()) j["preset"] = r.preset;
  j["modalities"] = r.modalities;
  j["reference"] = r.reference;
  j["targets"] = r.targets;
  j["ignore"] = r.ignore;
  j["groups"] = r.groups;
  j["tie_group_smoothing"] = r.tie_group_smoothing;
  auto& d = j["defaults"] = nlohmann::ordered_json::object();
  detail::settings_to_json(r.defaults, d);
  auto& o = j["overrides"] = nlohmann::ordered_json::array();
  for (const auto& ov : r.overrides) {
    nlohmann::ordered_json e;
    e["match"] = ov.match;
    detail::settings_to_json(ov.settings, e);
    o.push_back(e);
  }
  return j;
}

/// Reads a recipe (or a checkpoint's quantization_config, whose extra keys written by the tool —
/// "format", "masquant_version", "statistics" — are accepted). Keys it does not know are an error:
/// a misspelt key would otherwise be silently ignored. Missing keys take their defaults; the
/// result is validated. Throws errc::format_error or errc::invalid_argument naming `source` and
/// the key.
inline quantization_recipe recipe_from_json(const nlohmann::json& j, const std::string& source) {
  MASQUANT_CHECK(j.is_object(), errc::format_error, source, ": a recipe is a JSON object");
  quantization_recipe r;
  for (const auto& [key, v] : j.items()) {
    const std::string where = detail::cat(source, ": \"", key, "\"");
    if (key == "quant_method") {
      MASQUANT_CHECK(v == "masquant", errc::format_error, where, " is ", v.dump(),
                     ", not \"masquant\"");
    } else if (key == "recipe_version") {
      MASQUANT_CHECK(v.is_number_integer() && v.get<int>() == recipe_version, errc::format_error,
                     where, " is ", v.dump(), " (this library reads ", recipe_version, ")");
    } else if (key == "preset") {
      MASQUANT_CHECK(v.is_string(), errc::format_error, where, " must be a string");
      r.preset = v.get<std::string>();
    } else if (key == "modalities") {
      r.modalities = detail::string_list(v, where);
    } else if (key == "reference") {
      MASQUANT_CHECK(v.is_string(), errc::format_error, where, " must be a string");
      r.reference = v.get<std::string>();
    } else if (key == "targets") {
      r.targets = detail::string_list(v, where);
    } else if (key == "ignore") {
      r.ignore = detail::string_list(v, where);
    } else if (key == "groups") {
      MASQUANT_CHECK(v.is_array(), errc::format_error, where, " must be a list of lists");
      r.groups.clear();
      for (const auto& g : v) r.groups.push_back(detail::string_list(g, where));
    } else if (key == "tie_group_smoothing") {
      MASQUANT_CHECK(v.is_boolean(), errc::format_error, where, " must be true or false");
      r.tie_group_smoothing = v.get<bool>();
    } else if (key == "defaults") {
      r.defaults = linear_settings::defaults().overridden_by(detail::settings_from_json(v, where));
    } else if (key == "overrides") {
      MASQUANT_CHECK(v.is_array(), errc::format_error, where, " must be a list");
      for (std::size_t i = 0; i < v.size(); ++i) {
        const std::string at = detail::cat(where, "[", i, "]");
        const auto& e = v[i];
        MASQUANT_CHECK(e.is_object() && e.contains("match") && e["match"].is_string(),
                       errc::format_error, at, ": an override needs a \"match\" string");
        r.overrides.push_back(
            {e["match"].get<std::string>(), detail::settings_from_json(e, at, {"match"})});
      }
    } else if (key != "format" && key != "masquant_version" && key != "statistics") {
      raise(errc::format_error, detail::cat(source, ": unknown key \"", key, "\""));
    }
  }
  detail::with_context(source, [&] { r.validate(); });
  return r;
}

/// Reads a recipe file; throws errc::io_error, or as recipe_from_json() naming the file.
inline quantization_recipe load_recipe(const std::string& path) {
  return recipe_from_json(detail::parse_json_file(path), path);
}

}  // namespace masquant
