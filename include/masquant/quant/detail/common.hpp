// common.hpp: argument checks, error messages and the scale / zero-point formulas shared by
// masquant::reference and the SIMD path of the quant layer.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <masquant/error.hpp>
#include <masquant/quant/params.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/tensor/view.hpp>

namespace masquant::detail {

/// Δ of a symmetric quantizer: clamp(absmax / qmax, 1e-5, 1e4), a float32 division.
inline float symmetric_scale(float absmax, std::int32_t qmax) noexcept {
  return std::min(std::max(absmax / static_cast<float>(qmax), quant_min_scale), quant_max_scale);
}

/// Δ of an asymmetric quantizer: clamp((max - min) / qmax, 1e-5, 1e4) (max - min may overflow
/// to +Inf, which the clamp maps to 1e4).
inline float asymmetric_scale(float lo, float hi, std::int32_t qmax) noexcept {
  return std::min(std::max((hi - lo) / static_cast<float>(qmax), quant_min_scale), quant_max_scale);
}

/// z of an asymmetric quantizer: rne(clamp(-min / Δ, -1e4, 1e4)).
inline std::int32_t asymmetric_zero_point(float lo, float delta) noexcept {
  const float t = std::min(std::max(-lo / delta, -quant_zero_point_clamp), quant_zero_point_clamp);
  return static_cast<std::int32_t>(std::nearbyint(t));
}

/// Writes "RxC" for error messages.
struct shape_of {
  index_t rows, cols;
};
inline std::ostream& operator<<(std::ostream& out, shape_of s) {
  return out << s.rows << "x" << s.cols;
}

/// Throws errc::non_finite naming the first non-finite element of x in row-major order, or
/// returns when there is none.
template <class T>
inline void raise_non_finite(const char* op, matrix_view<T> x, index_t row_hint = 0) {
  for (index_t r = row_hint; r < x.rows(); ++r)
    for (index_t c = 0; c < x.cols(); ++c)
      MASQUANT_CHECK(std::isfinite(x(r, c)), errc::non_finite, op, ": non-finite value ", x(r, c),
                     " in row ", r, ", column ", c, " of a ", shape_of{x.rows(), x.cols()},
                     " input");
}

/// Throws errc::non_finite for the first non-finite value of a smoothed row, x[j] / s[j].
/// `row` < 0 means the caller gave no row number.
inline void raise_non_finite_row(const char* op, const float* x, const float* s, index_t n,
                                 index_t row) {
  for (index_t j = 0; j < n; ++j) {
    const float v = s ? x[j] / s[j] : x[j];
    if (std::isfinite(v)) continue;
    if (s)
      raise(errc::non_finite,
            cat(op, ": non-finite value ", v, " = x / s (x = ", x[j], ", s = ", s[j], ") in ",
                row >= 0 ? cat("row ", row, ", ") : "", "column ", j, " of a ", n, "-element row"));
    raise(errc::non_finite,
          cat(op, ": non-finite value ", v, " in ", row >= 0 ? cat("row ", row, ", ") : "",
              "column ", j, " of a ", n, "-element row"));
  }
}

/// Validates a spec for an operation that produces integer levels (bits 2..8).
inline void check_integer_spec(const char* op, const quant_spec& spec) {
  spec.validate(op);
  MASQUANT_CHECK(!spec.is_identity(), errc::invalid_argument, op, ": an identity spec (bits ",
                 spec.bits, ") has no integer levels");
}

/// Validates bits for the symmetric row primitives.
inline void check_row_bits(const char* op, int bits) {
  MASQUANT_CHECK(bits >= 2 && bits <= 8, errc::invalid_argument, op, ": bits must be 2..8, got ",
                 bits);
}

/// Checks a row primitive's arguments (n >= 0, non-null pointers when n > 0, bits 2..8).
inline void check_row_args(const char* op, const void* x, const void* s, bool smoothed, index_t n,
                           int bits, const void* out) {
  check_row_bits(op, bits);
  MASQUANT_CHECK(n >= 0, errc::invalid_argument, op, ": negative length ", n);
  MASQUANT_CHECK(n == 0 || (x && out && (s || !smoothed)), errc::invalid_argument, op,
                 ": null pointer for a ", n, "-element row");
}

/// Throws errc::shape_mismatch unless `a` and `b` have the same extents.
template <class T, class U>
inline void check_same_shape(const char* op, const char* what, matrix_view<T> a, matrix_view<U> b) {
  MASQUANT_CHECK(a.rows() == b.rows() && a.cols() == b.cols(), errc::shape_mismatch, op, ": ", what,
                 " is ", shape_of{b.rows(), b.cols()}, " but the input is ",
                 shape_of{a.rows(), a.cols()});
}

/// Throws errc::invalid_argument when y views the same memory as x with another row stride
/// (exactly the same memory, in place, is allowed).
inline void check_alias(const char* op, matrix_view<const float> x, matrix_view<const float> y) {
  MASQUANT_CHECK(x.data() != y.data() || x.stride() == y.stride() || x.rows() <= 1,
                 errc::invalid_argument, op,
                 ": output aliases the input with a different row stride (", y.stride(), " vs ",
                 x.stride(), ")");
}

/// Checks that params fit spec and a rows x cols tensor: same spec, consistent sizes, the
/// same shape unless per_tensor, and every scale positive and finite.
inline void check_params(const char* op, const quant_params& p, const quant_spec& spec,
                         index_t rows, index_t cols) {
  MASQUANT_CHECK(p.spec == spec, errc::invalid_argument, op, ": parameters are for ", p.spec,
                 ", the spec is ", spec);
  MASQUANT_CHECK(p.rows >= 0 && p.cols >= 0, errc::invalid_argument, op,
                 ": parameters have a negative extent ", shape_of{p.rows, p.cols});
  MASQUANT_CHECK(spec.gran == granularity::per_tensor || (p.rows == rows && p.cols == cols),
                 errc::shape_mismatch, op, ": parameters are for a ", shape_of{p.rows, p.cols},
                 " tensor, the input is ", shape_of{rows, cols});
  const auto n = static_cast<std::size_t>(p.param_rows() * p.groups());
  MASQUANT_CHECK(p.scales.size() == n, errc::shape_mismatch, op, ": ", p.scales.size(),
                 " scales for a ", shape_of{p.param_rows(), p.groups()}, " parameter grid");
  MASQUANT_CHECK(spec.symmetric ? p.zero_points.empty() : p.zero_points.size() == n,
                 errc::shape_mismatch, op, ": ", p.zero_points.size(), " zero points for a ",
                 shape_of{p.param_rows(), p.groups()}, " ",
                 spec.symmetric ? "symmetric" : "asymmetric", " parameter grid");
  for (std::size_t i = 0; i < n; ++i)
    MASQUANT_CHECK(p.scales[i] > 0.0f && std::isfinite(p.scales[i]), errc::invalid_argument, op,
                   ": scale ", i, " is ", p.scales[i], " (must be positive and finite)");
}

}  // namespace masquant::detail
