// command_specs.hpp: the flags, arguments and help text of every masquant command, in one
// header so that the fuzz target (fuzz/cli_args_fuzz.cpp) parses exactly what the tool parses.
// Every default the help shows is rendered from the value the tool uses.
#pragma once

#include <array>
#include <cstdio>
#include <masquant/calibrate/config.hpp>
#include <masquant/calibrate/problem.hpp>
#include <masquant/config.hpp>
#include <masquant/enum_names.hpp>
#include <masquant/model/settings.hpp>
#include <string>
#include <vector>

#include "args.hpp"

namespace masquant::cli {

/// The calibration the tool runs when no flag says otherwise: the recipes' defaults
/// (linear_settings::defaults(): calibration_config's, with 50 learned MAS steps per layer).
inline calibration_config tool_default_config() {
  return calibration_config_of(linear_settings::defaults());
}

/// The demo's own defaults.
struct demo_defaults {
  static constexpr index_t dim = 2048;
  static constexpr index_t tokens = 512;
  static constexpr index_t learn_steps = 20;
  static constexpr const char* svg = "masquant-demo.svg";
};

/// Threads when --threads is not given (0: every core).
inline constexpr int default_threads = 0;

/// A number as the help and the output metadata show it: the shortest of %g ("0.05", "1e-6").
inline std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  std::string s = buf;
  const auto e = s.find('e');
  if (e != std::string::npos) {  // "1e-06" -> "1e-6"
    std::size_t d = e + 1;
    if (d < s.size() && (s[d] == '-' || s[d] == '+')) ++d;
    while (d + 1 < s.size() && s[d] == '0') s.erase(d, 1);
    if (s[e + 1] == '+') s.erase(e + 1, 1);
  }
  return s;
}

/// The names of an enum's table, in order (the values a flag accepts).
template <class E, std::size_t N>
std::vector<std::string> names_of(const std::array<enum_name<E>, N>& table) {
  std::vector<std::string> out;
  out.reserve(N);
  for (const auto& e : table) out.push_back(e.name);
  return out;
}

/// "a | b | c" of an enum's names, for the help.
template <class E, std::size_t N>
std::string choices_text(const std::array<enum_name<E>, N>& table) {
  std::string out;
  for (const auto& e : table) out += (out.empty() ? "" : " | ") + std::string(e.name);
  return out;
}

inline const command_spec demo_spec{
    "demo",
    "[flags]",
    "Builds an embedded synthetic multimodal layer (text with a few massive-activation channels;\n"
    "vision larger, low-rank, with outlier channels of its own; audio in between), calibrates it\n"
    "with MASQuant at W8A8, W4A8 and W4A6, prints the output SQNR (dB, higher is better) of every\n"
    "stage per modality, and writes a figure: the per-channel activation absmax of each modality,\n"
    "and the whitened singular-value spectra with the chosen compensation rank.",
    {},
    {{"dim", "D", "layer width d_in = d_out", std::to_string(demo_defaults::dim)},
     {"tokens", "N", "calibration tokens per modality", std::to_string(demo_defaults::tokens)},
     {"learn-steps", "N", "learned-MAS steps per configuration",
      std::to_string(demo_defaults::learn_steps)},
     {"rank", "R", "compensation rank (ratio if <= 1)",
      number_text(calibration_config{}.rank.rank)},
     {"threads", "N", "threads (0: all cores)", std::to_string(default_threads)},
     {"seed", "S", "seed of the synthetic layer and of calibration",
      std::to_string(calibration_config{}.seed)},
     {"svg", "FILE", "where to write the figure", demo_defaults::svg},
     {"report", "FILE", "also write the reports as JSON", ""}}};

inline const command_spec calibrate_spec{
    "calibrate",
    "IN.safetensors -o OUT.safetensors [flags]",
    "Calibrates every layer P of IN — P.weight [d_out, d_in], optional P.bias, and calibration\n"
    "activations P.inputs.<modality> [tokens, d_in] — with MASQuant, and writes P.qweight,\n"
    "P.wscale, P.smooth.<modality>, P.lowrank.<modality>.L/R and P.bias to OUT (written\n"
    "atomically: OUT appears complete or not at all). Prints per layer and modality the output\n"
    "SQNR (dB) of the stages rtn, smoothquant, mas_multiweight, shared_no_cmc and cmc.",
    {"IN"},
    {{"output", "OUT", "output file (also -o)", ""},
     {"wbits", "N", "weight bits, 2..8 (symmetric per output channel)",
      std::to_string(tool_default_config().weight_bits)},
     {"abits", "N", "activation bits, 2..8 (symmetric per token), or 16 for none",
      std::to_string(tool_default_config().activation_bits)},
     {"method", "M", choices_text(smoothing_method_names), to_string(tool_default_config().method)},
     {"alpha", "A", "SmoothQuant migration strength in [0, 1], or 'auto' to search per modality",
      number_text(tool_default_config().alpha)},
     {"learn-steps", "N", "learned-MAS optimiser steps per layer (method mas; 0: none)",
      std::to_string(tool_default_config().learn_steps)},
     {"learning-rate", "LR", "Adam learning rate of learned MAS",
      number_text(tool_default_config().learning.learning_rate)},
     {"batch-tokens", "N", "tokens per learning step (0: all)",
      std::to_string(tool_default_config().learning.batch_tokens)},
     {"rank", "R", "compensation rank: a ratio of min(d_in, d_out) if <= 1, else absolute; 0: off",
      number_text(tool_default_config().rank.rank)},
     {"min-rank", "N", "lowest non-zero compensation rank",
      std::to_string(tool_default_config().rank.min_rank)},
     {"reference", "NAME", "reference modality (shares the quantized weight, no correction)",
      default_modality_names(1).front()},
     {"whiten", "W", choices_text(whitening_method_names),
      to_string(tool_default_config().whitening.method)},
     {"damping", "L", "whitening damping λ (times the mean Gram diagonal)",
      number_text(tool_default_config().whitening.damping)},
     {"quantized-compensation", "", "compensate towards Q(W·diag(s_m)) (the reference's quant_cmc)",
      ""},
     {"threads", "N", "threads (0: all cores)", std::to_string(default_threads)},
     {"seed", "S", "seed of the learning minibatches and the randomized SVD",
      std::to_string(tool_default_config().seed)},
     {"report", "FILE", "also write the report as JSON", ""}}};

inline const command_spec forward_spec{
    "forward",
    "MODEL.safetensors IN.safetensors -o OUT.safetensors [--threads N]",
    "Runs every calibrated layer P of MODEL (the output of 'masquant calibrate') on the\n"
    "activations P.inputs.<modality> [tokens, d_in] of IN through the deployable path, and\n"
    "writes P.outputs.<modality> [tokens, d_out] (F32) to OUT (atomically). Every modality of IN\n"
    "must have been calibrated for its layer.",
    {"MODEL", "IN"},
    {{"output", "OUT", "output file (also -o)", ""},
     {"threads", "N", "threads (0: all cores)", std::to_string(default_threads)}}};

inline const command_spec inspect_spec{
    "inspect",
    "FILE.safetensors",
    "Lists the tensors of FILE (dtype, shape, byte range), its __metadata__, the layers it holds\n"
    "by the file contract, and for every activation tensor (P.inputs.<modality>, "
    "P.outputs.<modality>)\n"
    "per-channel statistics: tokens, channels, the largest channel absmax and which channels hold "
    "the\n"
    "largest ones, the median channel absmax, mean and RMS. Exits with 1 when an activation "
    "tensor\n"
    "holds NaN or Inf or is not a float dtype (after printing everything; one line on\n"
    "stderr names it).",
    {"FILE"},
    {}};

inline const command_spec quantize_spec{
    "quantize",
    "MODEL_DIR -o OUT_DIR (--stats S... [--tokens T...] | --inputs I) [flags]",
    "Quantizes a Hugging Face checkpoint (config.json, model.safetensors or shards with\n"
    "model.safetensors.index.json) with MASQuant and writes a quantized checkpoint: every linear\n"
    "the recipe selects calibrated from its input's statistics and stored as P.qweight, P.wscale,\n"
    "P.smooth.<m>, P.lowrank.<m>.L/R, P.bias; every other tensor copied; shards with an index;\n"
    "config.json with the recipe as quantization_config. The calibrate flags set the recipe's\n"
    "defaults. --layers/--only quantize a part of the model into OUT_DIR/parts/, --join joins\n"
    "the parts. See docs/model.md.",
    {"MODEL_DIR"},
    {{"output", "OUT_DIR",
      "output directory (also -o); refused if it exists, unless --resume/--force", ""},
     {"stats", "S", "statistics files (shards of a capture, merged record by record)", "", true},
     {"tokens", "T", "token sample files (K.inputs.<modality>) for learning, alpha search, report",
      "", true},
     {"inputs", "I", "raw calibration tokens P.inputs.<modality> per linear, instead of --stats",
      ""},
     {"recipe", "R", "recipe JSON file (or a quantized checkpoint's config.json section)", ""},
     {"preset", "NAME", "built-in recipe: llama | qwen2_5_vl | qwen2_5_omni",
      "from config.json's model_type"},
     {"wbits", "N", "weight bits, 2..8", ""},
     {"abits", "N", "activation bits, 2..8, or 16 for none", ""},
     {"method", "M", "rtn | smoothquant | mas", ""},
     {"alpha", "A", "SmoothQuant migration strength in [0, 1], or 'auto'", ""},
     {"learn-steps", "N", "learned-MAS steps per linear (needs --tokens or --inputs)", ""},
     {"learning-rate", "LR", "Adam learning rate of learned MAS", ""},
     {"batch-tokens", "N", "tokens per learning step (0: all)", ""},
     {"rank", "R", "compensation rank: a ratio of min(d_in, d_out) if <= 1, else absolute", ""},
     {"min-rank", "N", "lowest non-zero compensation rank", ""},
     {"reference", "NAME", "reference modality", ""},
     {"whiten", "W", "cholesky | eigen | none", ""},
     {"damping", "L", "whitening damping", ""},
     {"quantized-compensation", "", "compensate towards Q(W·diag(s_m))", ""},
     {"seed", "S", "seed of the learning minibatches and the randomized SVD", ""},
     {"shard-size", "SIZE", "largest output shard (e.g. 4GB, 500MB, 2GiB)", "4GB"},
     {"resume", "", "keep the shards an interrupted run of the same inputs completed", ""},
     {"force", "", "write into an existing OUT_DIR, recomputing every shard", ""},
     {"layers", "A:B", "quantize only decoder blocks A to B, into OUT_DIR/parts/", ""},
     {"only", "PATTERN", "quantize only the linears matching (into OUT_DIR/parts/)", "", true},
     {"join", "", "join OUT_DIR/parts/ into the checkpoint (same inputs as the parts)", ""},
     {"threads", "N", "threads (0: all cores)", "0"},
     {"report", "FILE", "also write the per-linear report as JSON", ""}}};

inline const command_spec stats_merge_spec{
    "stats merge",
    "A.safetensors B.safetensors ... -o OUT.safetensors",
    "Merges statistics files (shards of one capture, from several processes or machines) into\n"
    "one: records of the same input merge exactly (counts, min, max; means, variances and Gram\n"
    "matrices to rounding). The files must have the same modalities. Written atomically.",
    {"FILE"},
    {{"output", "OUT", "output file (also -o)", ""}},
    true};

inline const command_spec stats_inspect_spec{
    "stats inspect",
    "STATS.safetensors",
    "Lists the inputs of a statistics file: channels, and per modality the tokens, whether the\n"
    "Gram matrix is kept, and the largest channel absmax.",
    {"FILE"},
    {}};

inline const char* const stats_usage_text =
    "usage: masquant stats merge A B ... -o OUT      merge statistics files of shards\n"
    "       masquant stats inspect FILE              list a statistics file\n";

/// Every command's spec, in the order of the tool's usage text.
inline std::vector<const command_spec*> command_specs() {
  return {&demo_spec,     &calibrate_spec,   &forward_spec,      &inspect_spec,
          &quantize_spec, &stats_merge_spec, &stats_inspect_spec};
}

}  // namespace masquant::cli
