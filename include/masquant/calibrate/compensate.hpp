// compensate.hpp: the fifth stage of calibration — Cross-Modal Compensation, the low-rank
// correction L·R of every non-reference modality for the shared weight.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <masquant/calibrate/factors.hpp>
#include <masquant/calibrate/problem.hpp>
#include <masquant/calibrate/report.hpp>
#include <masquant/calibrate/statistics.hpp>
#include <masquant/error.hpp>
#include <masquant/layer/linear_params.hpp>
#include <masquant/linalg/compensation.hpp>
#include <masquant/linalg/whitening.hpp>
#include <masquant/quant/smoothed_weight.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/tensor/eigen.hpp>
#include <vector>

namespace masquant {

/// The value of the compensation stage.
struct compensation_stage {
  /// Per modality: its factors L [d_in, r] and R [r, d_out] (empty for the reference, for a
  /// modality without tokens and when the rank is 0).
  std::vector<lowrank_factors> lowrank;
  /// Per modality: what its compensation reports (rank 0 where there is none).
  std::vector<compensation_report> modalities;
  /// The largest rank of any modality.
  index_t rank = 0;
};

/// Stage 5: for every non-reference modality m with tokens, when the policy gives the linear a
/// rank, ΔW_m = W·diag(s_m) − Ŵ (or Q_w(W·diag(s_m)) − Ŵ with config.quantized_compensation)
/// and its compensation L_m·R_m ≈ ΔW_mᵀ, optimal in the output metric of m's smoothed tokens
/// (compute_compensation() on m's Gram rescaled by s_m, config.rank, config.whitening,
/// config.svd, seed config.seed + m, config.parallel). `shared` is Ŵ as quantize_shared_weight()
/// returns it. Throws as check_statistics() and compute_compensation() (the message names the
/// modality).
template <class Deferred = void>
compensation_stage compensate(const calibration_problem& problem,
                              const calibration_statistics& stats, const smoothing_factors& factors,
                              const quantized_matrix& shared) {
  check_statistics(problem, stats);
  detail::check_factors(problem, factors);
  MASQUANT_CHECK(shared.rows == problem.d_out() && shared.cols == problem.d_in() &&
                     shared.params.spec == problem.config().weight_spec(),
                 errc::shape_mismatch, "calibrate: the shared weight is ", shared.rows, "x",
                 shared.cols, " (", shared.params.spec, "), the linear ", problem.d_out(), "x",
                 problem.d_in(), " (", problem.config().weight_spec(), ")");
  const calibration_config& config = problem.config();
  const index_t nm = problem.modalities();
  compensation_stage out;
  out.lowrank.resize(static_cast<std::size_t>(nm));
  out.modalities.resize(static_cast<std::size_t>(nm));
  const vector_view<const float> shared_scales(shared.params.scales);
  Eigen::MatrixXd delta, gram;
  for (index_t m = 1; m < nm; ++m) {
    if (!detail::compensates(problem, stats, m)) continue;
    problem.notify(calibration_phase::compensation, m - 1, nm - 1);
    const vector_view<const float> s(factors[static_cast<std::size_t>(m)]);
    if (config.quantized_compensation) {
      const quantized_matrix own = quantize_smoothed(problem.weight(), s, config.weight_spec());
      delta_weight(own.view(), vector_view<const float>(own.params.scales), shared.view(),
                   shared_scales, delta, config.parallel);
    } else {
      delta_weight(problem.weight(), s, shared.view(), shared_scales, delta, config.parallel);
    }
    gram = stats.accumulator(m).gram();
    smooth_gram(gram, as_eigen(s), gram);  // in place: no second d_in² matrix
    svd_options svd;
    static_cast<svd_solver_options&>(svd) = config.svd;
    svd.seed = config.seed + static_cast<std::uint64_t>(m);
    svd.parallel = config.parallel;
    const compensation c = detail::with_context(
        detail::cat("calibrate: compensation of modality '", problem.name(m), "'"),
        [&] { return compute_compensation(delta, gram, config.rank, config.whitening, svd); });
    auto& lr = out.lowrank[static_cast<std::size_t>(m)];
    lr.L = c.L.cast<float>();
    lr.R = c.R.cast<float>();
    auto& cr = out.modalities[static_cast<std::size_t>(m)];
    cr.rank = c.rank;
    cr.effective_rank = c.effective_rank;
    cr.relative_residual = c.relative_residual;
    cr.singular_values.assign(c.singular_values.data(),
                              c.singular_values.data() + c.singular_values.size());
    cr.damping = c.damping;
    out.rank = std::max(out.rank, c.rank);
  }
  return out;
}

#ifdef MASQUANT_SEPARATE_COMPILATION
extern template compensation_stage compensate<void>(const calibration_problem&,
                                                    const calibration_statistics&,
                                                    const smoothing_factors&,
                                                    const quantized_matrix&);
#endif

}  // namespace masquant
