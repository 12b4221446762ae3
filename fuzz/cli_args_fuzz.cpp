// libFuzzer target: the masquant tool's command-line and model-file handling, in process.
//
// Input: the command line, one word per line ('\n'), the first word naming the command; then
// optionally a blank line and the bytes of a MODEL file. What runs:
// - the strict parser with the command's own spec (tools/masquant/command_specs.hpp), every
//   typed getter on every flag, and for `calibrate` the flags-to-config mapping followed by a
//   calibration of a small fixed layer with that config;
// - on the MODEL bytes, what `forward` does: the safetensors reader, the __metadata__ checks
//   (format, wbits, abits, reference), finding layers by name, loading and validating each
//   calibrated layer, building the deployable quantized_linear and running a few tokens of every
//   modality through it; and what `calibrate` does with a file's float layers (load, NaN checks,
//   and for small layers calibrate() itself).
// Allowed outcomes: success, usage_error from the parser and getters (exit code 2), and
// masquant::error from the file handling (exit code 1). Anything else is a bug: a crash, a
// sanitizer report, another exception type, a getter returning a value outside its bounds, or a
// configuration the CLI accepts that the library then refuses.
#include <algorithm>
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <masquant/calibrate/calibrate.hpp>
#include <masquant/io/linear_file.hpp>
#include <masquant/io/safetensors.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "masquant/args.hpp"
#include "masquant/cli_common.hpp"
#include "masquant/command_specs.hpp"
#include "masquant/layers.hpp"

using namespace masquant;
using namespace masquant::cli;

namespace {

[[noreturn]] void bug(const std::string& what) {
  std::fprintf(stderr, "cli_args_fuzz: %s\n", what.c_str());
  std::abort();
}

std::vector<std::string> split_lines(std::string_view s) {
  std::vector<std::string> words;
  while (!s.empty()) {
    const auto nl = s.find('\n');
    words.emplace_back(s.substr(0, nl));
    if (nl == std::string_view::npos) break;
    s.remove_prefix(nl + 1);
  }
  return words;
}

/// Every typed getter on every flag of the spec; values must respect the bounds asked for.
void exercise_getters(const command_spec& spec, const parsed_args& args) {
  for (const option& o : spec.options) {
    if (o.value_name.empty()) continue;
    try {
      const long long v = args.get_int(o.name, 0, -1000, 1LL << 40);
      if (v < -1000 || v > (1LL << 40)) bug("get_int out of bounds for --" + o.name);
    } catch (const usage_error&) {
    }
    try {
      const double v = args.get_double(o.name, 0.5, -1e-3, 1e9);
      if (!(v >= -1e-3 && v <= 1e9)) bug("get_double out of bounds for --" + o.name);
    } catch (const usage_error&) {
    }
    try {
      const std::string v = args.get_choice(o.name, "b", {"a", "b", "auto"});
      if (v != "a" && v != "b" && v != "auto") bug("get_choice returned another value");
    } catch (const usage_error&) {
    }
  }
}

/// A small fixed layer that every calibrate configuration must handle.
struct small_layer {
  std::vector<float> w, text, vision;
  small_layer() : w(5 * 6), text(12 * 6), vision(10 * 6) {
    std::uint32_t s = 12345;
    auto next = [&] {
      s = s * 1664525u + 1013904223u;
      return float(int(s >> 9) % 2001 - 1000) / 500.0f;
    };
    for (auto& v : w) v = next();
    for (auto& v : text) v = next();
    for (auto& v : vision) v = 8.0f * next();
    for (int t = 0; t < 12; ++t) text[std::size_t(t * 6 + 2)] = 40.0f;
  }
};

/// What `calibrate` does with its flags: the config, then (with at most 2 learning steps, so
/// that an input stays fast) a calibration that must succeed.
void calibrate_flags(const parsed_args& args) {
  calibration_config c = config_from_flags(args);  // usage_error: fine
  try {
    c.validate();
  } catch (const error& e) {
    bug(std::string("the CLI accepted a config the library refuses: ") + e.what());
  }
  static const small_layer l;
  c.learn_steps = std::min<index_t>(c.learn_steps, 2);
  try {
    const auto r = calibrate(matrix_view<const float>(l.w.data(), 5, 6), {},
                             {matrix_view<const float>(l.text.data(), 12, 6),
                              matrix_view<const float>(l.vision.data(), 10, 6)},
                             c, {"text", "vision"});
    quantized_linear layer(r.params);
  } catch (const error& e) {
    bug(std::string("calibrate failed on a healthy layer with accepted flags: ") + e.what());
  }
}

void fuzz_command_line(std::vector<std::string> words) {
  if (words.empty()) return;
  const std::string command = words.front();
  words.erase(words.begin());
  const command_spec* spec = nullptr;
  for (const command_spec* s : command_specs())
    if (s->name == command) spec = s;
  if (!spec) return;  // the tool's usage error
  if (wants_help(words) && help_text(*spec).find(spec->name) == std::string::npos)
    bug("help text without the command name");
  try {
    const parsed_args args = parse(*spec, words);
    const std::size_t given = args.positional().size(), named = spec->positional.size();
    if (spec->variadic ? given < named : given != named) bug("positional count");
    exercise_getters(*spec, args);
    if (spec->name == "calibrate") calibrate_flags(args);
  } catch (const usage_error&) {
    // A bad command line: exit code 2.
  }
}

/// `forward`'s handling of a MODEL (and `calibrate`'s of its float layers) on arbitrary bytes.
void fuzz_model(const std::uint8_t* data, std::size_t size) {
  try {
    const safetensors_file f = safetensors_file::from_memory(data, size, "<model>");
    const auto layers = find_layers(f);
    std::string reference = "text";
    bool model = true;
    linear_file_metadata meta;
    try {
      meta = read_model_metadata(f);
      reference = meta.reference;
    } catch (const error&) {
      model = false;
    }
    for (const auto& [prefix, e] : layers) {
      try {
        if (model && !e.qweight.empty()) {
          const quantized_linear layer(
              load_linear(f, prefix, meta.reference, meta.weight_bits, meta.activation_bits));
          const index_t m = layer.modalities(), tokens = std::min<index_t>(m, 3) + 1;
          std::vector<float> x(static_cast<std::size_t>(tokens * layer.d_in()));
          for (std::size_t i = 0; i < x.size(); ++i) x[i] = float(int(i % 7) - 3) * 0.37f;
          std::vector<modality_id> ids(static_cast<std::size_t>(tokens));
          for (index_t i = 0; i < tokens; ++i) ids[std::size_t(i)] = modality_id(i % m);
          std::vector<float> y(static_cast<std::size_t>(tokens * layer.d_out()));
          layer.forward(matrix_view<const float>(x.data(), tokens, layer.d_in()), ids,
                        matrix_view<float>(y.data(), tokens, layer.d_out()));
        }
        if (!e.weight.empty() && !e.inputs.empty()) {
          const loaded_layer l = load_layer(f, e, reference);
          index_t tokens = 0;
          for (const auto& t : l.tensors) tokens += t.size() ? t.matrix().rows() : 0;
          const index_t d_out = l.weight.matrix().rows();
          if (l.d_in * d_out <= 4096 && l.d_in <= 64 && d_out <= 64 && tokens <= 256) {
            calibration_config c;
            c.learn_steps = 1;
            calibrate(l.weight.matrix(), l.bias_view(), l.inputs(), c, l.names);
          }
        }
      } catch (const error&) {
        // A layer the tool refuses: exit code 1.
      }
    }
  } catch (const error&) {
    // A file the tool refuses: exit code 1.
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const auto blank = in.find("\n\n");
  fuzz_command_line(split_lines(in.substr(0, blank)));
  if (blank != std::string_view::npos) fuzz_model(data + blank + 2, size - blank - 2);
  return 0;
}
