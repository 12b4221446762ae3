// command_specs.hpp: the flags, arguments and help text of every masquant command, in one
// header so that the fuzz target (fuzz/cli_args_fuzz.cpp) parses exactly what the tool parses.
#pragma once

#include <masquant/config.hpp>
#include <string>
#include <vector>

#include "args.hpp"

namespace masquant::cli {

/// Learned-MAS steps per layer when --learn-steps is not given.
inline constexpr index_t default_learn_steps = 50;

inline const command_spec demo_spec{
    "demo",
    "[flags]",
    "Builds an embedded synthetic multimodal layer (text with a few massive-activation channels;\n"
    "vision larger, low-rank, with outlier channels of its own; audio in between), calibrates it\n"
    "with MASQuant at W8A8, W4A8 and W4A6, prints the output SQNR (dB, higher is better) of every\n"
    "stage per modality, and writes a figure: the per-channel activation absmax of each modality,\n"
    "and the whitened singular-value spectra with the chosen compensation rank.",
    {},
    {{"dim", "D", "layer width d_in = d_out", "2048"},
     {"tokens", "N", "calibration tokens per modality", "512"},
     {"learn-steps", "N", "learned-MAS steps per configuration", "20"},
     {"rank", "R", "compensation rank (ratio if <= 1)", "0.05"},
     {"threads", "N", "threads (0: all cores)", "0"},
     {"seed", "S", "seed of the synthetic layer and of calibration", "2"},
     {"svg", "FILE", "where to write the figure", "masquant-demo.svg"},
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
     {"wbits", "N", "weight bits, 2..8 (symmetric per output channel)", "8"},
     {"abits", "N", "activation bits, 2..8 (symmetric per token), or 16 for none", "8"},
     {"method", "M", "rtn | smoothquant | mas", "mas"},
     {"alpha", "A", "SmoothQuant migration strength in [0, 1], or 'auto' to search per modality",
      "0.5"},
     {"learn-steps", "N", "learned-MAS optimiser steps per layer (method mas; 0: none)",
      std::to_string(default_learn_steps)},
     {"learning-rate", "LR", "Adam learning rate of learned MAS", "0.05"},
     {"batch-tokens", "N", "tokens per learning step (0: all)", "512"},
     {"rank", "R", "compensation rank: a ratio of min(d_in, d_out) if <= 1, else absolute; 0: off",
      "0.05"},
     {"min-rank", "N", "lowest non-zero compensation rank", "32"},
     {"reference", "NAME", "reference modality (shares the quantized weight, no correction)",
      "text"},
     {"whiten", "W", "cholesky | eigen | none", "cholesky"},
     {"damping", "L", "whitening damping λ (times the mean Gram diagonal)", "1e-6"},
     {"quantized-compensation", "", "compensate towards Q(W·diag(s_m)) (the reference's quant_cmc)",
      ""},
     {"threads", "N", "threads (0: all cores)", "0"},
     {"seed", "S", "seed of the learning minibatches and the randomized SVD", "2"},
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
     {"threads", "N", "threads (0: all cores)", "0"}}};

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
