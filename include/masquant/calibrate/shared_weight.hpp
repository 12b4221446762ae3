// shared_weight.hpp: the fourth stage of calibration — the one quantized weight every modality
// shares, Ŵ = Q_w(W·diag(s_ref)).
#pragma once

#include <masquant/calibrate/factors.hpp>
#include <masquant/calibrate/problem.hpp>
#include <masquant/calibrate/report.hpp>
#include <masquant/quant/smoothed_weight.hpp>
#include <masquant/smooth/problem.hpp>

namespace masquant {

/// Stage 4: the shared weight Q_w(W·diag(s_ref)), s_ref = factors[0], quantized symmetrically per
/// output channel with config.weight_bits (quantize_smoothed()). Throws errc::shape_mismatch or
/// errc::invalid_argument for factors that do not fit the problem, errc::non_finite when
/// W·diag(s_ref) overflows the float range.
inline quantized_matrix quantize_shared_weight(const calibration_problem& problem,
                                               const smoothing_factors& factors) {
  detail::check_factors(problem, factors);
  problem.notify(calibration_phase::quantization);
  return quantize_smoothed(problem.weight(), factors[0], problem.config().weight_spec());
}

}  // namespace masquant
