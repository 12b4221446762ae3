// row.hpp: per-token symmetric quantization of one row, optionally of x ⊘ s (smoothing fused
// in) — the primitive of the deployable linear's dynamic activation quantization. Each function
// runs the best instruction-set family the CPU has; the trailing `isa` forces one (isa.hpp).
#pragma once

#include <cstdint>
#include <masquant/isa.hpp>
#include <masquant/quant/detail/common.hpp>
#include <masquant/quant/detail/families.hpp>

namespace masquant {

/// Quantizes x[0..n) symmetrically with `bits` (2..8) and one scale: writes the levels
/// q[j] = clamp(rne(x[j] / Δ), -qmax, qmax) and returns Δ = clamp(absmax / qmax, 1e-5, 1e4),
/// qmax = 2^(bits-1) - 1. Bit-identical to quantize() of the row with granularity::per_row.
///
/// Throws errc::invalid_argument (bits, n < 0, null pointers) or errc::non_finite naming the
/// column (and `row` when row >= 0, for the caller's message); q is untouched on error.
/// Reads x twice (absmax, then levels); the second read hits the cache for rows of L2 size.
MASQUANT_BUILD_TAG inline float quantize_row_symmetric(const float* x, index_t n, int bits,
                                                       std::int8_t* q, index_t row = -1,
                                                       isa_family isa = isa_family::automatic) {
  constexpr const char* op = "quantize_row_symmetric";
  detail::check_row_args(op, x, nullptr, false, n, bits, q);
  return detail::MASQUANT_BUILD::on_quant_family(op, isa, [&](auto family) {
    return run_quantize_row(family, op, x, nullptr, n, bits, q, row);
  });
}

/// As quantize_row_symmetric, of the smoothed row x ⊘ s: every x[j] / s[j] is a float32
/// division, and the result is bit-identical to quantize_row_symmetric (and to quantize())
/// of the materialised row x[j] / s[j]. s: n smoothing factors (a zero or non-finite quotient
/// is reported as errc::non_finite with x[j] and s[j]). Each quotient is computed in both
/// passes rather than kept in a buffer: when rows stream from memory, writing and re-reading a
/// row buffer was slower than dividing twice in an ad-hoc test (same speed in cache).
///
/// Example (the per-token pass of a smoothed linear, token i of modality m):
/// \code
///   float scale_i = masquant::quantize_row_symmetric_smoothed(x.row_data(i), smooth[m].data(),
///                                                             d_in, 8, qx.row_data(i), i);
/// \endcode
MASQUANT_BUILD_TAG inline float quantize_row_symmetric_smoothed(
    const float* x, const float* s, index_t n, int bits, std::int8_t* q, index_t row = -1,
    isa_family isa = isa_family::automatic) {
  constexpr const char* op = "quantize_row_symmetric_smoothed";
  detail::check_row_args(op, x, s, true, n, bits, q);
  return detail::MASQUANT_BUILD::on_quant_family(
      op, isa, [&](auto family) { return run_quantize_row(family, op, x, s, n, bits, q, row); });
}

/// As quantize_row_symmetric, writing the dequantized values y[j] = q[j] · Δ (fake-quant) as
/// float; returns Δ. y may be exactly x (in place).
MASQUANT_BUILD_TAG inline float fake_quant_row_symmetric(const float* x, index_t n, int bits,
                                                         float* y, index_t row = -1,
                                                         isa_family isa = isa_family::automatic) {
  constexpr const char* op = "fake_quant_row_symmetric";
  detail::check_row_args(op, x, nullptr, false, n, bits, y);
  return detail::MASQUANT_BUILD::on_quant_family(op, isa, [&](auto family) {
    return run_fake_quant_row(family, op, x, nullptr, n, bits, y, row);
  });
}

/// As quantize_row_symmetric_smoothed, writing the dequantized values of x ⊘ s as float (the
/// smoothed, fake-quantized activation); returns Δ. y may be exactly x (in place).
MASQUANT_BUILD_TAG inline float fake_quant_row_symmetric_smoothed(
    const float* x, const float* s, index_t n, int bits, float* y, index_t row = -1,
    isa_family isa = isa_family::automatic) {
  constexpr const char* op = "fake_quant_row_symmetric_smoothed";
  detail::check_row_args(op, x, s, true, n, bits, y);
  return detail::MASQUANT_BUILD::on_quant_family(
      op, isa, [&](auto family) { return run_fake_quant_row(family, op, x, s, n, bits, y, row); });
}

}  // namespace masquant
