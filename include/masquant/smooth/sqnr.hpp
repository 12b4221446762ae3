// sqnr.hpp: per-modality output SQNR of a smoothed linear group under the solvers' fake-quant
// model — the numbers the α search maximises. (calibrate()'s report measures the deployable
// quantized_linear instead; calibrate/report.hpp defines its stages.)
#pragma once

#include <cmath>
#include <limits>
#include <masquant/parallel.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/smooth/detail/checks.hpp>
#include <masquant/smooth/detail/fake_quant_model.hpp>
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

namespace detail {

/// Validated factors -> per-modality statistics.
inline std::vector<sqnr_stat> sqnr_of(fake_quant_model<float>& ev, const modality_inputs& inputs,
                                      const smoothing_factors& act_factors,
                                      const smoothing_factors& weight_factors) {
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

/// Checks the group, inputs and quantizers, and returns the group.
inline const linear_group& smooth_checked_group(const char* op, const linear_group& group,
                                                const modality_inputs& inputs,
                                                const smoothing_eval_options& options) {
  smooth_check_group(op, group);
  smooth_check_inputs(op, inputs, group.d_in());
  smooth_check_specs(op, options.weight_spec, options.act_spec);
  return group;
}

}  // namespace detail

/// Per-modality SQNR of several factor sets on the same calibration data. The float outputs
/// x·Wᵀ are computed once and kept (up to 2^26 values, 256 MiB, in modality order; beyond that
/// they are recomputed per evaluation), so evaluating the report stages costs one product each
/// plus one shared product, instead of two each. The group's and inputs' memory must outlive the
/// evaluator. Not thread-safe (it owns work buffers); options.parallel parallelises each call.
///
/// Example (the report stages without compensation, report_stages in calibrate/report.hpp, as
/// factor sets; s_all, s_ref are [d_in] vectors):
/// \code
///   masquant::sqnr_evaluator eval(group, inputs, opt);
///   auto rtn = eval(masquant::smoothing_factors(n));                   // no smoothing
///   auto sq = eval(masquant::smoothing_factors(n, s_all));              // "smoothquant"
///   auto mas = eval(learned);                                          // "mas_multiweight"
///   auto shared = eval(learned, masquant::smoothing_factors(n, s_ref)); // "shared_no_cmc"
/// \endcode
class sqnr_evaluator {
 public:
  /// Validates the group, the inputs (finite values, shapes) and the quantizers once. Throws
  /// errc::invalid_argument, errc::shape_mismatch, errc::non_finite (naming the tensor, row and
  /// column) or errc::not_supported (per_tensor activations).
  sqnr_evaluator(const linear_group& group, const modality_inputs& inputs,
                 const smoothing_eval_options& options = {})
      : ev_(detail::smooth_checked_group("sqnr_evaluator", group, inputs, options), inputs,
            options.weight_spec, options.act_spec, options.parallel,
            detail::smooth_output_cache_elements),
        inputs_(inputs) {}

  /// Per-modality SQNR with activation factors a_m and weight factors b_m: for the tokens x_n of
  /// modality m, ŷ_n = Q_a(x_n ⊘ a_m)·Q_w(W·diag(b_m))ᵀ + bias against y_n = x_n·Wᵀ + bias, over
  /// the concatenated outputs of the group. One [d_in] vector per modality, an empty vector
  /// meaning s ≡ 1. Throws errc::shape_mismatch or errc::invalid_argument for bad factors.
  std::vector<sqnr_stat> operator()(const smoothing_factors& act_factors,
                                    const smoothing_factors& weight_factors) {
    constexpr const char* op = "sqnr_evaluator";
    detail::smooth_check_factors(op, "act_factors", act_factors, inputs_.size(), ev_.d_in(), true);
    detail::smooth_check_factors(op, "weight_factors", weight_factors, inputs_.size(), ev_.d_in(),
                                 true);
    return detail::sqnr_of(ev_, inputs_, act_factors, weight_factors);
  }

  /// a_m = b_m = factors[m]: every modality uses its own quantized weight Q_w(W·diag(s_m)).
  std::vector<sqnr_stat> operator()(const smoothing_factors& factors) {
    return (*this)(factors, factors);
  }

 private:
  detail::fake_quant_model<float> ev_;
  modality_inputs inputs_;
};

/// Per-modality SQNR with separate activation and weight factors, in one call (see
/// sqnr_evaluator for the definition and for evaluating several factor sets efficiently; the
/// report stages without compensation are the factor sets its example shows). The bias, when the
/// group has one, adds to the signal only. GEMMs run in float (relative error
/// ~1e-7, far below any quantization noise); sums in double. A modality without tokens gets
/// tokens = 0 and db = NaN. (options has no default here, so that `modality_sqnr(g, x, f, {})`
/// is unambiguous.) Throws as sqnr_evaluator and its call operator.
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
  detail::smooth_checked_group(op, group, inputs, options);
  detail::smooth_check_factors(op, "act_factors", act_factors, inputs.size(), group.d_in(), true);
  detail::smooth_check_factors(op, "weight_factors", weight_factors, inputs.size(), group.d_in(),
                               true);
  // One evaluation: no output cache (it would only add memory).
  detail::fake_quant_model<float> ev(group, inputs, options.weight_spec, options.act_spec,
                                     options.parallel);
  return detail::sqnr_of(ev, inputs, act_factors, weight_factors);
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
