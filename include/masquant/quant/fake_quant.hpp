// fake_quant.hpp: quantize-dequantize of a float matrix in one pass (SIMD kernels of every
// instruction-set family, bit-identical to masquant::reference::fake_quant and to
// dequantize(quantize(x))).
#pragma once

#include <masquant/isa.hpp>
#include <masquant/quant/detail/common.hpp>
#include <masquant/quant/detail/families.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/tensor/view.hpp>

namespace masquant {

/// Writes y = (q - z) · Δ with q = clamp(rne(x / Δ) + z, qmin, qmax) and Δ, z computed from x
/// per tensor / row / group as `spec` says (z = 0 when symmetric); for an identity spec
/// (bits >= 16) y = x. Zeros come out as +0.
///
/// x, y: rows x cols floats (any row strides). y may be exactly x (in place); any other overlap
/// is undefined. Throws errc::invalid_argument (spec, or y aliasing x with another stride),
/// errc::shape_mismatch, errc::non_finite naming the row and column of the first NaN or Inf.
/// On errc::non_finite, rows before the offending one are written and it and all later rows
/// are untouched (per_tensor and identity: nothing is written); other errors write nothing.
/// `isa` forces an instruction-set family (isa.hpp; errc::not_supported when it is not
/// available); every family gives the same bits.
/// On a matrix of 32 MiB or more the next row is prefetched while one is written, and an output
/// not in place is written with non-temporal stores, so it is not left in the caches; the values
/// are the same.
///
/// Example (per-token A8 activations, in place):
/// \code
///   masquant::fake_quant(x, {8, true, masquant::granularity::per_row}, x);
/// \endcode
MASQUANT_BUILD_TAG inline void fake_quant(matrix_view<const float> x, const quant_spec& spec,
                                          matrix_view<float> y,
                                          isa_family isa = isa_family::automatic) {
  constexpr const char* op = "fake_quant";
  spec.validate(op);
  detail::check_same_shape(op, "output", x, y);
  detail::check_alias(op, x, y);
  detail::MASQUANT_BUILD::on_quant_family(op, isa,
                                          [&](auto family) { run_fake_quant(family, x, spec, y); });
}

/// fake_quant(x, spec, x): quantize-dequantize in place. Same errors; on errc::non_finite the
/// rows before the offending one are already replaced.
MASQUANT_BUILD_TAG inline void fake_quant_inplace(matrix_view<float> x, const quant_spec& spec,
                                                  isa_family isa = isa_family::automatic) {
  fake_quant(x, spec, x, isa);
}

}  // namespace masquant
