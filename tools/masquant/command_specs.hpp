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
#include <string>
#include <vector>

#include "args.hpp"

namespace masquant::cli {

/// The calibration the tool runs when no flag says otherwise: the library's defaults
/// (calibration_config), except learned MAS, which the tool runs for 50 steps per layer.
inline calibration_config tool_default_config() {
  calibration_config c;
  c.learn_steps = 50;
  return c;
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

/// Every command's spec, in the order of the tool's usage text.
inline std::vector<const command_spec*> command_specs() {
  return {&demo_spec, &calibrate_spec, &forward_spec, &inspect_spec};
}

}  // namespace masquant::cli
