// quantize.hpp: scales and zero points of a float matrix, quantization to int8 levels, and
// dequantization back to float (SIMD kernels of every instruction-set family, bit-identical to
// masquant::reference).
#pragma once

#include <cstdint>
#include <masquant/isa.hpp>
#include <masquant/quant/detail/common.hpp>
#include <masquant/quant/detail/families.hpp>
#include <masquant/quant/params.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/tensor/view.hpp>

namespace masquant {

// Every function here runs the kernels of the best instruction-set family the CPU has
// (isa.hpp); the trailing `isa` argument forces one (errc::not_supported when it is not
// available). Every family gives the same bits.

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
MASQUANT_BUILD_TAG inline quant_params compute_params(matrix_view<const float> x,
                                                      const quant_spec& spec,
                                                      isa_family isa = isa_family::automatic) {
  constexpr const char* op = "compute_params";
  detail::check_integer_spec(op, spec);
  quant_params p(spec, x.rows(), x.cols());
  detail::MASQUANT_BUILD::on_quant_family(
      op, isa, [&](auto family) { run_compute_params(family, x, spec, p); });
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
MASQUANT_BUILD_TAG inline void quantize(matrix_view<const float> x, const quant_spec& spec,
                                        const quant_params& params, matrix_view<std::int8_t> q,
                                        isa_family isa = isa_family::automatic) {
  constexpr const char* op = "quantize";
  detail::check_integer_spec(op, spec);
  detail::check_same_shape(op, "output", x, q);
  detail::check_params(op, params, spec, x.rows(), x.cols());
  detail::MASQUANT_BUILD::on_quant_family(
      op, isa, [&](auto family) { run_quantize(family, x, spec, params, q); });
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
MASQUANT_BUILD_TAG inline quant_params quantize(matrix_view<const float> x, const quant_spec& spec,
                                                matrix_view<std::int8_t> q,
                                                isa_family isa = isa_family::automatic) {
  constexpr const char* op = "quantize";
  detail::check_integer_spec(op, spec);
  detail::check_same_shape(op, "output", x, q);
  quant_params p(spec, x.rows(), x.cols());
  detail::MASQUANT_BUILD::on_quant_family(
      op, isa, [&](auto family) { run_quantize(family, x, spec, q, p); });
  return p;
}

/// Dequantizes int8 storage: x = (q + spec.storage_offset() - z) · Δ, computed as an exact
/// int32 sum converted to float, then one float multiplication.
///
/// q: rows x cols int8 as written by quantize() (values are not range-checked); x: rows x cols
/// floats. Throws errc::invalid_argument (spec, params) or errc::shape_mismatch before writing.
MASQUANT_BUILD_TAG inline void dequantize(matrix_view<const std::int8_t> q, const quant_spec& spec,
                                          const quant_params& params, matrix_view<float> x,
                                          isa_family isa = isa_family::automatic) {
  constexpr const char* op = "dequantize";
  detail::check_integer_spec(op, spec);
  detail::check_same_shape(op, "output", q, x);
  detail::check_params(op, params, spec, q.rows(), q.cols());
  detail::MASQUANT_BUILD::on_quant_family(
      op, isa, [&](auto family) { run_dequantize(family, q, spec, params, x); });
}

}  // namespace masquant
