// spec.hpp: what a uniform quantizer does — bit width, symmetric or affine, and granularity.
#pragma once

#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <ostream>

namespace masquant {

/// Lower and upper clamp of every quantizer's scale Δ, and the clamp of -min/Δ before the zero
/// point is rounded: the reference's CLIPMIN = 1e-5 and 1e4, as float32 constants. The SIMD
/// path, masquant::reference and the learning solvers' straight-through quantizer all use these.
inline constexpr float quant_min_scale = 1e-5f;
inline constexpr float quant_max_scale = 1e4f;
inline constexpr float quant_zero_point_clamp = 1e4f;

/// Which elements share one scale (and zero point).
///
/// Rows are output channels for weights `[d_out, d_in]` and tokens for activations
/// `[tokens, d_in]`, so `per_row` is per-channel weight quantization or dynamic per-token
/// activation quantization. Groups run along the columns (d_in).
enum class granularity : std::uint8_t {
  per_tensor,  ///< one scale for the whole tensor
  per_row,     ///< one scale per row
  per_group,   ///< one scale per `group_size` consecutive columns of a row; the last may be shorter
};

/// Short stable name ("per_group").
inline const char* to_string(granularity g) noexcept {
  switch (g) {
    case granularity::per_tensor:
      return "per_tensor";
    case granularity::per_row:
      return "per_row";
    case granularity::per_group:
      return "per_group";
  }
  return "unknown";
}

inline std::ostream& operator<<(std::ostream& out, granularity g) {
  return out << to_string(g);
}

/// A uniform quantizer with the reference semantics of MASQuant (docs/quantization.md,
/// "Semantics").
///
/// - symmetric, b bits: Δ = clamp(absmax / qmax, 1e-5, 1e4), q = clamp(rne(x / Δ), -qmax, qmax),
///   qmax = 2^(b-1) - 1; dequantized q·Δ.
/// - asymmetric: Δ = clamp((max - min) / qmax, 1e-5, 1e4) with qmax = 2^b - 1,
///   z = rne(clamp(-min / Δ, -1e4, 1e4)), q = clamp(rne(x / Δ) + z, 0, qmax); dequantized (q -
///   z)·Δ.
/// - bits >= 16: identity (no quantization, "A16").
///
/// rne is round-half-to-even; all arithmetic is float32 (see docs/quantization.md).
/// `group_size` is used only with granularity::per_group (the reference's "group_size 0 means
/// per row" maps to granularity::per_row).
///
/// Example: `quant_spec{4, false, granularity::per_group, 128}` is W4A16's weight quantizer.
struct quant_spec {
  int bits = 8;
  bool symmetric = true;
  granularity gran = granularity::per_row;
  index_t group_size = 0;

  /// True for bits >= 16: the quantizer passes values through unchanged.
  constexpr bool is_identity() const noexcept { return bits >= 16; }

  /// Largest integer level: 2^(b-1) - 1 symmetric, 2^b - 1 asymmetric; also the divisor of
  /// the range in Δ. Meaningful only when !is_identity().
  constexpr std::int32_t qmax() const noexcept {
    return symmetric ? (std::int32_t{1} << (bits - 1)) - 1 : (std::int32_t{1} << bits) - 1;
  }
  /// Smallest integer level: -qmax() symmetric, 0 asymmetric.
  constexpr std::int32_t qmin() const noexcept { return symmetric ? -qmax() : 0; }
  /// Number of distinct integer levels, qmax() - qmin() + 1 (2^b - 1 symmetric, 2^b asymmetric).
  constexpr std::int32_t levels() const noexcept { return qmax() - qmin() + 1; }

  /// What is subtracted from q before it is stored in an int8: 0 symmetric, 2^(b-1) asymmetric
  /// (so asymmetric levels 0..2^b-1 become -2^(b-1)..2^(b-1)-1 and fit an int8 up to 8 bits).
  constexpr std::int32_t storage_offset() const noexcept {
    return symmetric ? 0 : std::int32_t{1} << (bits - 1);
  }

  /// Throws errc::invalid_argument unless bits is in 2..8 or >= 16, group_size >= 0, and
  /// group_size >= 1 for per_group. `op` names the caller in the message.
  void validate(const char* op = "quant_spec") const {
    MASQUANT_CHECK((bits >= 2 && bits <= 8) || bits >= 16, errc::invalid_argument, op,
                   ": bits must be 2..8 or >= 16 (identity), got ", bits);
    MASQUANT_CHECK(group_size >= 0, errc::invalid_argument, op, ": negative group_size ",
                   group_size);
    MASQUANT_CHECK(gran != granularity::per_group || group_size >= 1, errc::invalid_argument, op,
                   ": per_group needs group_size >= 1, got ", group_size);
    MASQUANT_CHECK(gran == granularity::per_tensor || gran == granularity::per_row ||
                       gran == granularity::per_group,
                   errc::invalid_argument, op, ": unknown granularity ", int(gran));
  }
};

/// Equal when they quantize identically (group_size compared only for per_group; every identity
/// spec equals every other).
constexpr bool operator==(const quant_spec& a, const quant_spec& b) noexcept {
  if (a.is_identity() || b.is_identity()) return a.is_identity() == b.is_identity();
  return a.bits == b.bits && a.symmetric == b.symmetric && a.gran == b.gran &&
         (a.gran != granularity::per_group || a.group_size == b.group_size);
}
constexpr bool operator!=(const quant_spec& a, const quant_spec& b) noexcept {
  return !(a == b);
}

/// Writes e.g. "int4 asymmetric per_group(128)" or "identity (bits 16)".
inline std::ostream& operator<<(std::ostream& out, const quant_spec& s) {
  if (s.is_identity()) return out << "identity (bits " << s.bits << ")";
  out << "int" << s.bits << (s.symmetric ? " symmetric " : " asymmetric ") << s.gran;
  if (s.gran == granularity::per_group) out << "(" << s.group_size << ")";
  return out;
}

}  // namespace masquant
