// smoothed_weight.hpp: Q(W·diag(s)), a weight quantized as one modality's smoothing factor sees
// it — the shared weight of calibration, each stage's weight in its report.
#pragma once

#include <cstdint>
#include <masquant/error.hpp>
#include <masquant/quant/params.hpp>
#include <masquant/quant/quantize.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/tensor/eigen.hpp>
#include <masquant/tensor/view.hpp>
#include <vector>

namespace masquant {

/// A matrix quantized to integer levels, owned and row-major.
struct quantized_matrix {
  index_t rows = 0, cols = 0;
  /// [rows * cols] levels, stored as quantize() stores them (q - spec.storage_offset()).
  std::vector<std::int8_t> levels;
  /// Δ (and z) as quantize() computes them.
  quant_params params;

  matrix_view<const std::int8_t> view() const { return {levels.data(), rows, cols}; }
};

/// Quantizes V = W·diag(s): V is formed in float (w_oj·s_j, one rounding), then quantized by
/// quantize() with `spec` (for weights usually symmetric per_row: per output channel).
///
/// w: [rows, cols]; s: [cols] factors, or empty for s ≡ 1 (no smoothing). Throws
/// errc::shape_mismatch (s), errc::invalid_argument (an identity or invalid spec),
/// errc::non_finite naming the row and column of V (e.g. an overflow of w_oj·s_j).
///
/// Example (the shared weight Q_w(W·diag(s_ref)) at W4):
/// \code
///   masquant::quantized_matrix q = masquant::quantize_smoothed(w, s_ref, {4});
///   // q.levels: d_out x d_in levels in [-7, 7]; q.params.scales: one Δ per output channel
/// \endcode
inline quantized_matrix quantize_smoothed(matrix_view<const float> w, vector_view<const float> s,
                                          const quant_spec& spec) {
  MASQUANT_CHECK(s.empty() || s.size() == w.cols(), errc::shape_mismatch,
                 "quantize_smoothed: smoothing has ", s.size(), " factors for a ", w.rows(), "x",
                 w.cols(), " weight");
  row_matrix<float> v = as_eigen(w);
  if (!s.empty()) v *= as_eigen(s).asDiagonal();
  quantized_matrix q;
  q.rows = w.rows();
  q.cols = w.cols();
  q.levels.assign(static_cast<std::size_t>(q.rows * q.cols), 0);
  q.params = quantize(view_of(v), spec, matrix_view<std::int8_t>(q.levels.data(), q.rows, q.cols));
  return q;
}

}  // namespace masquant
