// reference.hpp: the normative scalar quantizer. Plain loops over elements, one formula per
// element; the SIMD path (quantize.hpp, fake_quant.hpp, row.hpp) must match it bit for bit.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <masquant/quant/detail/common.hpp>
#include <masquant/quant/params.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/tensor/view.hpp>

/// Scalar implementations that define the results of the quant layer. They are slow (one
/// division and one std::nearbyint per element, every check done up front) and always compiled.
/// Errors are the same codes and messages as the SIMD functions, but nothing is ever written
/// when one is thrown.
namespace masquant::reference {

namespace detail {

/// Index into quant_params::scales of element (r, c) (per_tensor parameters fit any shape).
inline index_t param_index(const quant_params& p, index_t r, index_t c) {
  switch (p.spec.gran) {
    case granularity::per_tensor:
      return 0;
    case granularity::per_row:
      return r;
    case granularity::per_group:
      break;
  }
  return r * p.groups() + c / p.spec.group_size;
}

/// The level of x: clamp(rne(x / Δ) + z, qmin, qmax), all in float32.
inline float level(float x, float delta, float zf, const quant_spec& spec) {
  const float v = std::nearbyint(x / delta) + zf;
  return std::min(std::max(v, static_cast<float>(spec.qmin())), static_cast<float>(spec.qmax()));
}

inline float zero_point_f(const quant_params& p, index_t k) {
  return p.spec.symmetric ? 0.0f : static_cast<float>(p.zero_points[static_cast<std::size_t>(k)]);
}

/// compute_params without checks.
inline quant_params params_of(matrix_view<const float> x, const quant_spec& spec) {
  quant_params p(spec, x.rows(), x.cols());
  const bool whole = spec.gran == granularity::per_tensor;
  for (index_t pr = 0; pr < p.param_rows(); ++pr) {
    for (index_t g = 0; g < p.groups(); ++g) {
      const index_t r0 = whole ? 0 : pr, r1 = whole ? x.rows() : pr + 1;
      const index_t c0 = g * p.group_cols(), c1 = std::min(x.cols(), c0 + p.group_cols());
      float absmax = 0.0f;
      float lo = 0.0f, hi = 0.0f;  // an empty cell counts as zeros
      bool first = true;
      for (index_t r = r0; r < r1; ++r) {
        for (index_t c = c0; c < c1; ++c) {
          const float v = x(r, c);
          absmax = std::max(absmax, std::abs(v));
          lo = first ? v : std::min(lo, v);
          hi = first ? v : std::max(hi, v);
          first = false;
        }
      }
      const auto k = static_cast<std::size_t>(pr * p.groups() + g);
      if (spec.symmetric) {
        p.scales[k] = masquant::detail::symmetric_scale(absmax, spec.qmax());
      } else {
        p.scales[k] = masquant::detail::asymmetric_scale(lo, hi, spec.qmax());
        p.zero_points[k] = masquant::detail::asymmetric_zero_point(lo, p.scales[k]);
      }
    }
  }
  return p;
}

/// Shared body of the symmetric row functions: s == nullptr means no smoothing.
template <class Out, class Write>
inline float symmetric_row(const char* op, const float* x, const float* s, bool smoothed, index_t n,
                           int bits, Out* out, index_t row, Write write) {
  masquant::detail::check_row_args(op, x, s, smoothed, n, bits, out);
  float absmax = 0.0f;
  for (index_t j = 0; j < n; ++j) {
    const float v = s ? x[j] / s[j] : x[j];
    if (!std::isfinite(v)) masquant::detail::raise_non_finite_row(op, x, s, n, row);
    absmax = std::max(absmax, std::abs(v));
  }
  const quant_spec spec{bits, true, granularity::per_row, 0};
  const float delta = masquant::detail::symmetric_scale(absmax, spec.qmax());
  for (index_t j = 0; j < n; ++j) {
    const float v = s ? x[j] / s[j] : x[j];
    write(out, j, level(v, delta, 0.0f, spec), delta);
  }
  return delta;
}

inline void write_int8(std::int8_t* q, index_t j, float level, float) {
  q[j] = static_cast<std::int8_t>(static_cast<std::int32_t>(level));
}
inline void write_float(float* y, index_t j, float level, float delta) {
  y[j] = (level - 0.0f) * delta;
}

}  // namespace detail

/// Reference of masquant::compute_params.
inline quant_params compute_params(matrix_view<const float> x, const quant_spec& spec) {
  masquant::detail::check_integer_spec("compute_params", spec);
  masquant::detail::raise_non_finite("compute_params", x);
  return detail::params_of(x, spec);
}

/// Reference of masquant::quantize with given parameters.
inline void quantize(matrix_view<const float> x, const quant_spec& spec, const quant_params& params,
                     matrix_view<std::int8_t> q) {
  constexpr const char* op = "quantize";
  masquant::detail::check_integer_spec(op, spec);
  masquant::detail::check_same_shape(op, "output", x, q);
  masquant::detail::check_params(op, params, spec, x.rows(), x.cols());
  masquant::detail::raise_non_finite(op, x);
  for (index_t r = 0; r < x.rows(); ++r) {
    for (index_t c = 0; c < x.cols(); ++c) {
      const index_t k = detail::param_index(params, r, c);
      const float lv = detail::level(x(r, c), params.scales[static_cast<std::size_t>(k)],
                                     detail::zero_point_f(params, k), spec);
      q(r, c) = static_cast<std::int8_t>(static_cast<std::int32_t>(lv) - spec.storage_offset());
    }
  }
}

/// Reference of masquant::quantize computing the parameters.
inline quant_params quantize(matrix_view<const float> x, const quant_spec& spec,
                             matrix_view<std::int8_t> q) {
  constexpr const char* op = "quantize";
  masquant::detail::check_integer_spec(op, spec);
  masquant::detail::check_same_shape(op, "output", x, q);
  masquant::detail::raise_non_finite(op, x);
  quant_params p = detail::params_of(x, spec);
  reference::quantize(x, spec, p, q);
  return p;
}

/// Reference of masquant::dequantize.
inline void dequantize(matrix_view<const std::int8_t> q, const quant_spec& spec,
                       const quant_params& params, matrix_view<float> x) {
  constexpr const char* op = "dequantize";
  masquant::detail::check_integer_spec(op, spec);
  masquant::detail::check_same_shape(op, "output", q, x);
  masquant::detail::check_params(op, params, spec, q.rows(), q.cols());
  for (index_t r = 0; r < q.rows(); ++r) {
    for (index_t c = 0; c < q.cols(); ++c) {
      const auto k = static_cast<std::size_t>(detail::param_index(params, r, c));
      const std::int32_t z = spec.symmetric ? 0 : params.zero_points[k];
      x(r, c) =
          static_cast<float>(std::int32_t{q(r, c)} + spec.storage_offset() - z) * params.scales[k];
    }
  }
}

/// Reference of masquant::fake_quant: y = (level - z) · Δ, or y = x for an identity spec.
inline void fake_quant(matrix_view<const float> x, const quant_spec& spec, matrix_view<float> y) {
  constexpr const char* op = "fake_quant";
  spec.validate(op);
  masquant::detail::check_same_shape(op, "output", x, y);
  masquant::detail::check_alias(op, x, y);
  masquant::detail::raise_non_finite(op, x);
  if (spec.is_identity()) {
    for (index_t r = 0; r < x.rows(); ++r)
      for (index_t c = 0; c < x.cols(); ++c) y(r, c) = x(r, c);
    return;
  }
  const quant_params p = detail::params_of(x, spec);
  for (index_t r = 0; r < x.rows(); ++r) {
    for (index_t c = 0; c < x.cols(); ++c) {
      const index_t k = detail::param_index(p, r, c);
      const float delta = p.scales[static_cast<std::size_t>(k)];
      const float zf = detail::zero_point_f(p, k);
      y(r, c) = (detail::level(x(r, c), delta, zf, spec) - zf) * delta;
    }
  }
}

/// Reference of masquant::fake_quant_inplace.
inline void fake_quant_inplace(matrix_view<float> x, const quant_spec& spec) {
  reference::fake_quant(x, spec, x);
}

/// Reference of masquant::quantize_row_symmetric.
inline float quantize_row_symmetric(const float* x, index_t n, int bits, std::int8_t* q,
                                    index_t row = -1) {
  return detail::symmetric_row("quantize_row_symmetric", x, nullptr, false, n, bits, q, row,
                               detail::write_int8);
}

/// Reference of masquant::quantize_row_symmetric_smoothed.
inline float quantize_row_symmetric_smoothed(const float* x, const float* s, index_t n, int bits,
                                             std::int8_t* q, index_t row = -1) {
  return detail::symmetric_row("quantize_row_symmetric_smoothed", x, s, true, n, bits, q, row,
                               detail::write_int8);
}

/// Reference of masquant::fake_quant_row_symmetric.
inline float fake_quant_row_symmetric(const float* x, index_t n, int bits, float* y,
                                      index_t row = -1) {
  return detail::symmetric_row("fake_quant_row_symmetric", x, nullptr, false, n, bits, y, row,
                               detail::write_float);
}

/// Reference of masquant::fake_quant_row_symmetric_smoothed.
inline float fake_quant_row_symmetric_smoothed(const float* x, const float* s, index_t n, int bits,
                                               float* y, index_t row = -1) {
  return detail::symmetric_row("fake_quant_row_symmetric_smoothed", x, s, true, n, bits, y, row,
                               detail::write_float);
}

}  // namespace masquant::reference
