// quantized_activations.hpp: per-token int8 activations in the form the INT8 GEMM reads
// directly (values, per-row scales, per-row sums), as a view and as a reusable buffer.
#pragma once

#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <masquant/tensor/view.hpp>
#include <vector>

namespace masquant {

/// Non-owning int8 activations for int8_gemm: activation (m, k) = values(m, k) * scales[m].
///
/// `values` is [M, K] int8 with any row stride (full range [-128, 127] allowed); `scales` is [M]
/// (may be empty for int8_gemm_int32); `row_sums` is [M] with row_sums[m] = sum_k values(m, k),
/// or empty, in which case the GEMM computes the sums itself. A producer that quantizes rows
/// (the fused smoothing + dynamic quantization pass of a linear) has the values in registers
/// and can emit the sums for free; wrong sums give wrong products (checked in debug builds).
struct quantized_activations_view {
  matrix_view<const std::int8_t> values;
  vector_view<const float> scales;
  vector_view<const std::int32_t> row_sums;
};

/// A reusable buffer of quantized activations: resize() keeps the capacity, so a layer that owns
/// one allocates only when a call brings more tokens than any call before (no page faults on
/// the hot path).
///
/// Example:
/// \code
///   masquant::quantized_activations qa;
///   qa.resize(tokens, d_in);            // no allocation once the capacity suffices
///   quantize_rows_into(x, qa.values(), qa.scales(), qa.row_sums());  // the producer
///   masquant::int8_gemm(qa.view(), packed, y);
/// \endcode
class quantized_activations {
 public:
  quantized_activations() = default;
  quantized_activations(index_t rows, index_t cols) { resize(rows, cols); }

  /// Sets the shape to rows x cols (row stride cols); contents are unspecified afterwards.
  /// Throws errc::invalid_argument for a negative extent.
  void resize(index_t rows, index_t cols) {
    MASQUANT_CHECK(rows >= 0 && cols >= 0, errc::invalid_argument,
                   "quantized_activations::resize: negative extent ", rows, "x", cols);
    values_.resize(static_cast<std::size_t>(rows * cols));
    scales_.resize(static_cast<std::size_t>(rows));
    row_sums_.resize(static_cast<std::size_t>(rows));
    rows_ = rows;
    cols_ = cols;
  }

  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }

  /// Values [rows, cols], row-major, stride cols.
  matrix_view<std::int8_t> values() { return {values_.data(), rows_, cols_, cols_}; }
  matrix_view<const std::int8_t> values() const { return {values_.data(), rows_, cols_, cols_}; }
  /// Per-row scales [rows].
  vector_view<float> scales() { return {scales_.data(), rows_}; }
  vector_view<const float> scales() const { return {scales_.data(), rows_}; }
  /// Per-row sums of the values [rows]; fill them or call compute_row_sums().
  vector_view<std::int32_t> row_sums() { return {row_sums_.data(), rows_}; }
  vector_view<const std::int32_t> row_sums() const { return {row_sums_.data(), rows_}; }

  /// Recomputes row_sums() from values().
  void compute_row_sums() {
    for (index_t r = 0; r < rows_; ++r) {
      const std::int8_t* row = values_.data() + r * cols_;
      std::int32_t s = 0;
      for (index_t k = 0; k < cols_; ++k) s += row[k];
      row_sums_[static_cast<std::size_t>(r)] = s;
    }
  }

  /// The view int8_gemm takes.
  quantized_activations_view view() const { return {values(), scales(), row_sums()}; }

 private:
  index_t rows_ = 0;
  index_t cols_ = 0;
  std::vector<std::int8_t> values_;
  std::vector<float> scales_;
  std::vector<std::int32_t> row_sums_;
};

}  // namespace masquant
