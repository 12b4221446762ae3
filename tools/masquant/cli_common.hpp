// cli_common.hpp: what the tool's commands share — flags to calibration_config, loading a
// layer's tensors by the file contract, thread setup.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <masquant/calibrate/config.hpp>
#include <masquant/detail/finite.hpp>
#include <masquant/enum_names.hpp>
#include <masquant/io/linear_file.hpp>
#include <masquant/io/safetensors.hpp>
#include <string>
#include <vector>

#include "args.hpp"
#include "command_specs.hpp"
#include "layers.hpp"

namespace masquant::cli {

/// The calibration_config the flags of `calibrate` describe, starting from
/// tool_default_config(); throws usage_error naming the flag for a bad value.
inline calibration_config config_from_flags(const parsed_args& args) {
  calibration_config c = tool_default_config();
  c.weight_bits = static_cast<int>(args.get_int("wbits", c.weight_bits, 2, 8));
  c.activation_bits = static_cast<int>(args.get_int("abits", c.activation_bits, 2, 16));
  if (c.activation_bits > 8 && c.activation_bits != 16)
    throw usage_error("--abits: expected 2..8, or 16 for unquantized activations, got " +
                      args.get("abits"));
  c.method = *parse_enum(smoothing_method_names, args.get_choice("method", to_string(c.method),
                                                                 names_of(smoothing_method_names)));
  if (args.get("alpha") == "auto") {
    c.alpha_search = true;
  } else {
    c.alpha = args.get_double("alpha", c.alpha, 0.0, 1.0);
  }
  c.learn_steps = args.get_int("learn-steps", c.learn_steps, 0, 1000000);
  c.learning.learning_rate =
      args.get_double("learning-rate", c.learning.learning_rate, 1e-12, 10.0);
  c.learning.batch_tokens = args.get_int("batch-tokens", c.learning.batch_tokens, 0, 1000000000);
  const double rank = args.get_double("rank", c.rank.rank, 0.0, 1e9);
  if (rank > 1 && rank != std::floor(rank))
    throw usage_error("--rank: a ratio in [0, 1] or a whole rank > 1, got " + args.get("rank"));
  c.rank.rank = rank;
  c.rank.min_rank = args.get_int("min-rank", c.rank.min_rank, 0, 1000000000);
  c.whitening.method = *parse_enum(
      whitening_method_names,
      args.get_choice("whiten", to_string(c.whitening.method), names_of(whitening_method_names)));
  c.whitening.damping = args.get_double("damping", c.whitening.damping, 0.0, 1e-2);
  c.quantized_compensation = args.has("quantized-compensation");
  c.seed = static_cast<std::uint64_t>(
      args.get_int("seed", static_cast<long long>(c.seed), 0, 9223372036854775807LL));
  return c;
}

/// Throws errc::non_finite naming the tensor, row and column of its first NaN or Inf (the file's
/// tensors are checked as they are loaded, so the message names the tensor, not a modality).
inline void check_finite(const std::string& src, const std::string& name,
                         matrix_view<const float> x) {
  detail::check_finite(src, "tensor '" + name + "'", x);
}

/// What `forward` needs from a MODEL's __metadata__ (written by `masquant calibrate`): format
/// must be "masquant", then wbits, abits and reference as read_linear_metadata() reads them;
/// throws errc::format_error naming the file and the key.
inline linear_file_metadata read_model_metadata(const safetensors_file& f) {
  const auto& meta = f.metadata();
  const auto format = meta.find("format");
  MASQUANT_CHECK(format != meta.end() && format->second == "masquant", errc::format_error,
                 f.source(),
                 ": not a 'masquant calibrate' output (__metadata__ format is not 'masquant')");
  return read_linear_metadata(f);
}

/// A calibration layer read from a file: zero-copy views where the file's layout allows.
struct loaded_layer {
  tensor_ref<float> weight;
  std::vector<float> bias;
  std::vector<std::string> names;  ///< reference first, then the others in name order
  std::vector<tensor_ref<float>>
      tensors;  ///< inputs by modality id (empty for a missing reference)
  index_t d_in = 0;

  vector_view<const float> bias_view() const {
    return {bias.data(), static_cast<index_t>(bias.size())};
  }
  modality_inputs inputs() const {
    modality_inputs v;
    for (const auto& t : tensors)
      v.push_back(t.size() ? t.matrix() : matrix_view<const float>(nullptr, 0, d_in));
    return v;
  }
};

/// Loads P.weight, P.bias and P.inputs.<m> of a layer, checking their shapes (errors name the
/// tensor). The reference modality is id 0 even when the layer has no tokens of it.
inline loaded_layer load_layer(const safetensors_file& file, const layer_entry& e,
                               const std::string& reference) {
  const std::string& src = file.source();
  loaded_layer l;
  const auto& wi = file.info(e.weight);
  if (wi.shape.rank() != 2 || wi.shape[0] < 1 || wi.shape[1] < 1)
    raise(errc::format_error,
          detail::cat(src, ": tensor '", e.weight, "' is ", wi.shape, ", expected [d_out, d_in]"));
  const index_t d_out = wi.shape[0];
  l.d_in = wi.shape[1];
  l.weight = file.view_f32(e.weight);
  check_finite(src, e.weight, l.weight.matrix());
  if (!e.bias.empty()) {
    const auto& bi = file.info(e.bias);
    if (bi.shape.rank() != 1 || bi.shape[0] != d_out)
      raise(errc::format_error, detail::cat(src, ": tensor '", e.bias, "' is ", bi.shape,
                                            ", expected [", d_out, "] (d_out of ", e.weight, ")"));
    l.bias = file.load_f32(e.bias).values();
    check_finite(src, e.bias, matrix_view<const float>(l.bias.data(), 1, d_out));
  }
  l.names.push_back(reference);
  for (const auto& [m, name] : e.inputs)
    if (m != reference) l.names.push_back(m);
  for (const auto& m : l.names) {
    const auto it = e.inputs.find(m);
    if (it == e.inputs.end()) {
      l.tensors.emplace_back();
      continue;
    }
    const auto& xi = file.info(it->second);
    if (xi.shape.rank() != 2 || xi.shape[1] != l.d_in)
      raise(errc::format_error,
            detail::cat(src, ": tensor '", it->second, "' is ", xi.shape, ", expected [tokens, ",
                        l.d_in, "] (d_in of ", e.weight, ")"));
    l.tensors.push_back(file.view_f32(it->second));
    check_finite(src, it->second, l.tensors.back().matrix());
  }
  return l;
}

}  // namespace masquant::cli
