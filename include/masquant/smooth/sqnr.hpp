// sqnr.hpp: per-modality output SQNR of a smoothed, fake-quantized linear group — the numbers
// the alpha search maximises and the calibration report prints.
#pragma once

#include <cmath>
#include <limits>
#include <masquant/parallel.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/smooth/detail/checks.hpp>
#include <masquant/smooth/detail/evaluator.hpp>
#include <masquant/smooth/problem.hpp>
#include <vector>

namespace masquant {

/// Quantizers and threads of the smoothed forward Q_a(x ⊘ s)·Q_w(W·diag(s))ᵀ.
struct smoothing_eval_options {
  /// Weight quantizer (rows = output channels); default INT8 symmetric per output channel.
  quant_spec weight_spec{};
  /// Activation quantizer (rows = tokens); default INT8 symmetric dynamic per token. per_row or
  /// per_group (per_tensor is rejected: it would couple the tokens of a batch).
  quant_spec act_spec{};
  /// Parallel loop (default: serial). Results do not depend on it.
  parallel_for_fn parallel{};
};

/// SQNR of one modality's outputs.
struct sqnr_stat {
  index_t tokens = 0;  ///< calibration tokens of the modality
  double signal = 0;   ///< Σ (y + b)² over its tokens and every output of the group
  double noise = 0;    ///< Σ (ŷ - y)²
  /// 10·log10(signal / noise): +inf when noise is 0, NaN when the modality has no tokens.
  double db = std::numeric_limits<double>::quiet_NaN();
};

/// 10·log10(signal / noise), +inf when noise is 0 (exact reconstruction).
inline double sqnr_db(double signal, double noise) noexcept {
  if (noise == 0.0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(signal / noise);
}

/// Per-modality SQNR with separate activation and weight factors: for the tokens x_n of
/// modality m, ŷ_n = Q_a(x_n ⊘ a_m)·Q_w(W·diag(b_m))ᵀ + bias against y_n = x_n·Wᵀ + bias, over
/// the concatenated outputs of the group.
///
/// act_factors, weight_factors: one [d_in] vector per modality (an empty vector: s ≡ 1). The
/// report stages are
///   - "rtn": every vector empty;
///   - "smoothquant": a_m = b_m = s_all for every m;
///   - "mas_multiweight": a_m = b_m = s_m (one quantized weight per modality);
///   - "shared_no_cmc": a_m = s_m, b_m = s_ref (the reference modality's weight for everyone).
/// GEMMs run in float (relative error ~1e-7, far below any quantization noise); sums in double.
/// (options has no default here, so that `modality_sqnr(g, x, f, {})` is unambiguous.)
/// Throws errc::invalid_argument, errc::shape_mismatch, errc::non_finite (naming the tensor, row
/// and column) or errc::not_supported (per_tensor activations).
///
/// Example:
/// \code
///   masquant::smoothing_eval_options opt;                // W8A8
///   opt.weight_spec.bits = 4;                            // W4A8
///   auto s = masquant::modality_sqnr({{w}, {b}}, inputs, factors, factors, opt);
///   double text_db = s[0].db;
/// \endcode
inline std::vector<sqnr_stat> modality_sqnr(const linear_group& group,
                                            const modality_inputs& inputs,
                                            const smoothing_factors& act_factors,
                                            const smoothing_factors& weight_factors,
                                            const smoothing_eval_options& options) {
  constexpr const char* op = "modality_sqnr";
  detail::check_group(op, group);
  detail::check_inputs(op, inputs, group.d_in());
  detail::check_factors(op, "act_factors", act_factors, inputs.size(), group.d_in(), true);
  detail::check_factors(op, "weight_factors", weight_factors, inputs.size(), group.d_in(), true);
  detail::check_specs(op, options.weight_spec, options.act_spec);
  detail::smoothing_evaluator<float> ev(group, inputs, options.weight_spec, options.act_spec,
                                        options.parallel);
  std::vector<sqnr_stat> out(inputs.size());
  for (std::size_t m = 0; m < inputs.size(); ++m) {
    auto& st = out[m];
    st.tokens = inputs[m].rows();
    if (st.tokens == 0) continue;
    const float* a = act_factors[m].empty() ? nullptr : act_factors[m].data();
    const float* b = weight_factors[m].empty() ? nullptr : weight_factors[m].data();
    const auto sums = ev.run(static_cast<index_t>(m), a, b, nullptr, st.tokens, true);
    st.signal = sums.signal;
    st.noise = sums.noise;
    st.db = sqnr_db(st.signal, st.noise);
  }
  return out;
}

/// modality_sqnr with a_m = b_m = factors[m]: every modality uses its own quantized weight
/// Q_w(W·diag(s_m)) ("mas_multiweight"; pass s_all for every modality for "smoothquant").
inline std::vector<sqnr_stat> modality_sqnr(const linear_group& group,
                                            const modality_inputs& inputs,
                                            const smoothing_factors& factors,
                                            const smoothing_eval_options& options = {}) {
  return modality_sqnr(group, inputs, factors, factors, options);
}

}  // namespace masquant
