// params.hpp: the scales and zero points of one quantized tensor, laid out rows x groups.
#pragma once

#include <cstdint>
#include <masquant/error.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/tensor/view.hpp>
#include <vector>

namespace masquant {

/// Scales (float32) and zero points (int32, asymmetric only) of a `rows x cols` tensor
/// quantized with `spec`, stored row-major as a `param_rows() x groups()` grid:
///
/// | spec.gran   | param_rows() | groups()                    | element (r, c) uses     |
/// |-------------|--------------|-----------------------------|-------------------------|
/// | per_tensor  | 1            | 1                           | [0]                     |
/// | per_row     | rows         | 1                           | [r]                     |
/// | per_group   | rows         | ceil(cols / group_size)     | [r * groups() + c / g]  |
///
/// The zero points are the reference ones (z in q = rne(x / Δ) + z, q in 0..2^b-1); the int8
/// storage of asymmetric levels is shifted by spec.storage_offset(), which they do not include.
/// Produced by compute_params() or quantize(); may also be filled by hand (e.g. loaded weight
/// scales) after construction with the shape.
struct quant_params {
  quant_spec spec;
  index_t rows = 0;                       ///< rows of the quantized tensor
  index_t cols = 0;                       ///< columns of the quantized tensor
  std::vector<float> scales;              ///< Δ, param_rows() * groups() values
  std::vector<std::int32_t> zero_points;  ///< z, same layout; empty when spec.symmetric

  quant_params() = default;

  /// Parameters for a rows x cols tensor, all scales 1 and zero points 0. Throws
  /// errc::invalid_argument for an invalid or identity spec or a negative extent.
  quant_params(const quant_spec& s, index_t r, index_t c) : spec(s), rows(r), cols(c) {
    s.validate("quant_params");
    MASQUANT_CHECK(!s.is_identity(), errc::invalid_argument,
                   "quant_params: an identity spec (bits ", s.bits, ") has no parameters");
    MASQUANT_CHECK(r >= 0 && c >= 0, errc::invalid_argument, "quant_params: negative extent ", r,
                   "x", c);
    const auto n = static_cast<std::size_t>(param_rows() * groups());
    scales.assign(n, 1.0f);
    if (!s.symmetric) zero_points.assign(n, 0);
  }

  /// Rows of the parameter grid: 1 for per_tensor, rows otherwise.
  index_t param_rows() const noexcept { return spec.gran == granularity::per_tensor ? 1 : rows; }
  /// Groups per row: ceil(cols / group_size) for per_group, 1 otherwise.
  index_t groups() const noexcept {
    return spec.gran == granularity::per_group ? (cols + spec.group_size - 1) / spec.group_size : 1;
  }
  /// Columns per group: group_size for per_group, cols otherwise (the last group may be shorter).
  index_t group_cols() const noexcept {
    return spec.gran == granularity::per_group ? spec.group_size : cols;
  }

  /// Index into scales / zero_points of the parameters used by element (r, c).
  index_t index(index_t r, index_t c) const noexcept {
    MASQUANT_ASSERT(r >= 0 && r < rows && c >= 0 && c < cols);
    switch (spec.gran) {
      case granularity::per_tensor:
        return 0;
      case granularity::per_row:
        return r;
      case granularity::per_group:
        break;
    }
    return r * groups() + c / spec.group_size;
  }
  /// Δ of element (r, c).
  float scale(index_t r, index_t c) const noexcept {
    return scales[static_cast<std::size_t>(index(r, c))];
  }
  /// z of element (r, c); 0 when symmetric.
  std::int32_t zero_point(index_t r, index_t c) const noexcept {
    return spec.symmetric ? 0 : zero_points[static_cast<std::size_t>(index(r, c))];
  }

  /// The scales as a param_rows() x groups() matrix.
  matrix_view<const float> scale_matrix() const {
    return matrix_view<const float>(scales.data(), param_rows(), groups());
  }
  /// The zero points as a param_rows() x groups() matrix; throws errc::invalid_argument when
  /// symmetric.
  matrix_view<const std::int32_t> zero_point_matrix() const {
    MASQUANT_CHECK(!spec.symmetric, errc::invalid_argument,
                   "quant_params::zero_point_matrix: a symmetric spec has no zero points");
    return matrix_view<const std::int32_t>(zero_points.data(), param_rows(), groups());
  }
};

}  // namespace masquant
