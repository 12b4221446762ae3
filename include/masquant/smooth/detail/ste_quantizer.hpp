// ste_quantizer.hpp: a differentiable fake quantizer for learning smoothing factors — the
// reference forward of the quant layer plus a straight-through backward that also
// differentiates the dynamic scale Δ (as the reference's UniformAffineQuantizer does).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/quant/spec.hpp>

namespace masquant::detail {

/// A rectangle of a row-major matrix that shares one Δ (and zero point): rows [r0, r1),
/// columns [c0, c1).
struct ste_group {
  index_t r0, r1, c0, c1;
};

/// Calls f(ste_group) for every group of a rows x cols matrix under `spec` (per_tensor: the whole
/// matrix; per_row: each row; per_group: runs of group_size columns of each row).
template <class F>
void for_each_ste_group(const quant_spec& spec, index_t r0, index_t r1, index_t cols, F&& f) {
  if (r1 <= r0 || cols == 0) return;
  switch (spec.gran) {
    case granularity::per_tensor:
      f(ste_group{r0, r1, 0, cols});
      return;
    case granularity::per_row:
      for (index_t r = r0; r < r1; ++r) f(ste_group{r, r + 1, 0, cols});
      return;
    case granularity::per_group:
      for (index_t r = r0; r < r1; ++r)
        for (index_t c = 0; c < cols; c += spec.group_size)
          f(ste_group{r, r + 1, c, std::min(cols, c + spec.group_size)});
      return;
  }
}

/// Δ, zero point and range statistics of one group, computed in T exactly as the quant layer's
/// reference does for T = float (absmax / qmax and (max - min) / qmax are true divisions).
template <class T>
struct ste_group_params {
  T lo = 0;           ///< min (asymmetric) or -absmax (symmetric)
  T hi = 0;           ///< max (asymmetric) or absmax (symmetric)
  T delta = 1;        ///< Δ after the clamp
  T zero = 0;         ///< z (0 when symmetric)
  bool live = false;  ///< Δ was not clamped, so it depends on lo/hi (clamp passes the gradient)
};

template <class T>
ste_group_params<T> ste_params(const quant_spec& spec, const T* x, index_t ld, ste_group g) {
  ste_group_params<T> p;
  const T qmax = static_cast<T>(spec.qmax());
  T raw;
  if (spec.symmetric) {
    T amax = 0;
    for (index_t r = g.r0; r < g.r1; ++r)
      for (index_t c = g.c0; c < g.c1; ++c) amax = std::max(amax, std::abs(x[r * ld + c]));
    p.lo = -amax;
    p.hi = amax;
    raw = amax / qmax;
  } else {
    T lo = x[g.r0 * ld + g.c0], hi = lo;
    for (index_t r = g.r0; r < g.r1; ++r)
      for (index_t c = g.c0; c < g.c1; ++c) {
        lo = std::min(lo, x[r * ld + c]);
        hi = std::max(hi, x[r * ld + c]);
      }
    p.lo = lo;
    p.hi = hi;
    raw = (hi - lo) / qmax;
  }
  // The quant layer's float32 clamps, so that T = float computes exactly what it computes.
  const T min_scale = static_cast<T>(quant_min_scale), max_scale = static_cast<T>(quant_max_scale);
  p.delta = std::min(std::max(raw, min_scale), max_scale);
  // torch.clamp passes the gradient where min <= input <= max (inclusive).
  p.live = raw >= min_scale && raw <= max_scale;
  if (!spec.symmetric) {
    const T zc = static_cast<T>(quant_zero_point_clamp);
    p.zero = std::nearbyint(std::min(std::max(-p.lo / p.delta, -zc), zc));
  }
  return p;
}

/// Fake-quantizes rows [r0, r1) of x (row stride ld) into y (row stride ldy):
/// y = (clamp(rne(x / Δ) + z, qmin, qmax) - z)·Δ per group; identity for bits >= 16. For T = float
/// this equals masquant::reference bit for bit (requires FE_TONEAREST, the default).
template <class T>
void ste_forward(const quant_spec& spec, const T* x, index_t ld, index_t r0, index_t r1,
                 index_t cols, T* y, index_t ldy) {
  if (spec.is_identity()) {
    for (index_t r = r0; r < r1; ++r) std::copy(x + r * ld, x + r * ld + cols, y + r * ldy);
    return;
  }
  const T qmin = static_cast<T>(spec.qmin()), qmax = static_cast<T>(spec.qmax());
  for_each_ste_group(spec, r0, r1, cols, [&](ste_group g) {
    const auto p = ste_params(spec, x, ld, g);
    for (index_t r = g.r0; r < g.r1; ++r)
      for (index_t c = g.c0; c < g.c1; ++c) {
        // The same operations as masquant::reference (z = +0 when symmetric, so -0 becomes +0).
        const T q =
            std::min(std::max(std::nearbyint(x[r * ld + c] / p.delta) + p.zero, qmin), qmax);
        y[r * ldy + c] = (q - p.zero) * p.delta;
      }
  });
}

/// Straight-through backward of ste_forward over rows [r0, r1): given gy = ∂L/∂y, writes
/// gx = ∂L/∂x (row stride ld, same as x).
///
/// Rounding is the identity in the backward pass; the clamp of the integer level passes the
/// gradient only where the rounded level lies inside [qmin, qmax]; Δ is a function of the group's
/// max/min (symmetric: of max|x|), so ∂L/∂Δ = Σ gy·(q - z - x/Δ) inside and Σ gy·(q - z) outside
/// flows back to the elements attaining that extreme (split evenly between ties, as torch's
/// amax/amin), unless the clamp of Δ is active. The zero point is rounded with a plain round and
/// gets no gradient. Sums run in double.
template <class T>
void ste_backward(const quant_spec& spec, const T* x, index_t ld, const T* gy, index_t ldgy,
                  index_t r0, index_t r1, index_t cols, T* gx) {
  if (spec.is_identity()) {
    for (index_t r = r0; r < r1; ++r) std::copy(gy + r * ldgy, gy + r * ldgy + cols, gx + r * ld);
    return;
  }
  const T qmin = static_cast<T>(spec.qmin()), qmax = static_cast<T>(spec.qmax());
  for_each_ste_group(spec, r0, r1, cols, [&](ste_group g) {
    const auto p = ste_params(spec, x, ld, g);
    double gdelta = 0;
    for (index_t r = g.r0; r < g.r1; ++r)
      for (index_t c = g.c0; c < g.c1; ++c) {
        const T v = x[r * ld + c] / p.delta;
        const T t = std::nearbyint(v) + p.zero;
        const T up = gy[r * ldgy + c];
        if (t >= qmin && t <= qmax) {
          gx[r * ld + c] = up;
          gdelta += static_cast<double>(up) * static_cast<double>((t - p.zero) - v);
        } else {
          gx[r * ld + c] = 0;
          gdelta += static_cast<double>(up) *
                    static_cast<double>(std::min(std::max(t, qmin), qmax) - p.zero);
        }
      }
    if (!p.live || gdelta == 0) return;
    // Δ = (hi - lo) / qmax; symmetric: hi = max|x| = -lo, so Δ = hi / qmax.
    const double gscale = gdelta / static_cast<double>(spec.qmax());
    auto spread = [&](T extreme, double g_extreme, bool by_abs) {
      index_t ties = 0;
      for (index_t r = g.r0; r < g.r1; ++r)
        for (index_t c = g.c0; c < g.c1; ++c)
          ties += (by_abs ? std::abs(x[r * ld + c]) : x[r * ld + c]) == extreme;
      const double share = g_extreme / static_cast<double>(ties);
      for (index_t r = g.r0; r < g.r1; ++r)
        for (index_t c = g.c0; c < g.c1; ++c) {
          const T xv = x[r * ld + c];
          if ((by_abs ? std::abs(xv) : xv) != extreme) continue;
          // d|x|/dx = sign(x); the max is positive here (a zero max leaves Δ clamped).
          const double sgn = by_abs ? (xv > 0 ? 1.0 : -1.0) : 1.0;
          gx[r * ld + c] += static_cast<T>(share * sgn);
        }
    };
    if (spec.symmetric) {
      spread(p.hi, gscale, true);
    } else {
      spread(p.hi, gscale, false);
      spread(p.lo, -gscale, false);
    }
  });
}

}  // namespace masquant::detail
