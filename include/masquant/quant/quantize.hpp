// quantize.hpp: scales and zero points of a float matrix, quantization to int8 levels, and
// dequantization back to float (SIMD path, bit-identical to masquant::reference).
#pragma once

#include <algorithm>
#include <cstdint>
#include <masquant/quant/detail/common.hpp>
#include <masquant/quant/detail/driver.hpp>
#include <masquant/quant/detail/kernels.hpp>
#include <masquant/quant/params.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/tensor/view.hpp>
#include <xsimd/xsimd.hpp>

namespace masquant {

// Every function here takes the xsimd architecture as a template parameter defaulting to the
// best one the translation unit is compiled for (xsimd::default_arch; xsimd::unavailable means
// plain scalar code). Pass it explicitly to call a kernel compiled for another instruction set.

/// Computes Δ (and z when asymmetric) of every row / group / the whole of x, as `spec` says.
///
/// x: rows x cols floats (any row stride). Returns parameters for that shape (see quant_params).
/// Throws errc::invalid_argument for an invalid or identity spec, errc::non_finite naming the
/// row and column of the first NaN or Inf.
///
/// Example:
/// \code
///   auto p = masquant::compute_params(w, {4, true, masquant::granularity::per_row});
///   float scale_of_channel_3 = p.scales[3];
/// \endcode
template <class Arch = xsimd::default_arch>
quant_params compute_params(matrix_view<const float> x, const quant_spec& spec) {
  detail::check_integer_spec("compute_params", spec);
  quant_params p(spec, x.rows(), x.cols());
  detail::quantize_rows<Arch>("compute_params", x, spec, &p,
                              [](index_t, index_t, index_t, const detail::qsimd::level_params&) {});
  return p;
}

/// Quantizes x to int8 storage with given parameters: q = clamp(rne(x / Δ) + z, qmin, qmax),
/// stored as q - spec.storage_offset() (asymmetric levels 0..2^b-1 are shifted down by 2^(b-1)).
///
/// x: rows x cols; q: rows x cols int8 (any strides). params must be for `spec` and for x's
/// shape (per_tensor parameters apply to any shape); hand-made scales must be positive and
/// finite. Throws errc::invalid_argument (spec, params), errc::shape_mismatch,
/// errc::non_finite (naming row and column). On errc::non_finite, rows before the offending one
/// are written and the rest of q is untouched; other errors write nothing.
template <class Arch = xsimd::default_arch>
void quantize(matrix_view<const float> x, const quant_spec& spec, const quant_params& params,
              matrix_view<std::int8_t> q) {
  constexpr const char* op = "quantize";
  detail::check_integer_spec(op, spec);
  detail::check_same_shape(op, "output", x, q);
  detail::check_params(op, params, spec, x.rows(), x.cols());
  const float offset = static_cast<float>(spec.storage_offset());
  detail::quantize_rows_with<Arch>(
      op, x, params, [&](index_t r, index_t c0, index_t n, const detail::qsimd::level_params& lp) {
        detail::qsimd::quantize_run<Arch>(detail::qsimd::plain_source{x.row_data(r) + c0}, n, lp,
                                          detail::qsimd::int8_sink{q.row_data(r) + c0, offset});
      });
}

/// Computes the parameters of x and quantizes it in one fused pass (each row is read from
/// memory once); returns the parameters. Same storage, errors and guarantees as the overload
/// above (for per_tensor the whole of x is checked before anything is written).
///
/// Example (W8 per output channel):
/// \code
///   std::vector<std::int8_t> qw(d_out * d_in);
///   masquant::quant_params p = masquant::quantize(w, {8}, masquant::make_matrix_view(qw, d_out,
///   d_in));
/// \endcode
template <class Arch = xsimd::default_arch>
quant_params quantize(matrix_view<const float> x, const quant_spec& spec,
                      matrix_view<std::int8_t> q) {
  constexpr const char* op = "quantize";
  detail::check_integer_spec(op, spec);
  detail::check_same_shape(op, "output", x, q);
  quant_params p(spec, x.rows(), x.cols());
  const float offset = static_cast<float>(spec.storage_offset());
  detail::quantize_rows<Arch>(
      op, x, spec, &p,
      [&](index_t r, index_t c0, index_t n, const detail::qsimd::level_params& lp) {
        detail::qsimd::quantize_run<Arch>(detail::qsimd::plain_source{x.row_data(r) + c0}, n, lp,
                                          detail::qsimd::int8_sink{q.row_data(r) + c0, offset});
      });
  return p;
}

/// Dequantizes int8 storage: x = (q + spec.storage_offset() - z) · Δ, computed as an exact
/// int32 sum converted to float, then one float multiplication.
///
/// q: rows x cols int8 as written by quantize() (values are not range-checked); x: rows x cols
/// floats. Throws errc::invalid_argument (spec, params) or errc::shape_mismatch before writing.
template <class Arch = xsimd::default_arch>
void dequantize(matrix_view<const std::int8_t> q, const quant_spec& spec,
                const quant_params& params, matrix_view<float> x) {
  constexpr const char* op = "dequantize";
  detail::check_integer_spec(op, spec);
  detail::check_same_shape(op, "output", q, x);
  detail::check_params(op, params, spec, q.rows(), q.cols());
  const index_t rows = q.rows(), cols = q.cols();
  if (cols == 0) return;
  const index_t g = spec.gran == granularity::per_group ? spec.group_size : cols;
  const index_t groups = (cols + g - 1) / g;
  for (index_t r = 0; r < rows; ++r) {
    const index_t base = spec.gran == granularity::per_tensor ? 0 : r * groups;
    for (index_t k = 0; k < groups; ++k) {
      const auto i = static_cast<std::size_t>(base + k);
      const std::int32_t z = spec.symmetric ? 0 : params.zero_points[i];
      detail::qsimd::dequantize_run<Arch>(q.row_data(r) + k * g, std::min(g, cols - k * g),
                                          spec.storage_offset() - z, params.scales[i],
                                          x.row_data(r) + k * g);
    }
  }
}

}  // namespace masquant
