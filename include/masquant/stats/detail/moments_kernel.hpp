// moments_kernel.hpp: per-channel min, max, mean and M2 over a stream of rows (Chan et al.
// merging).
#pragma once

#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/stats/detail/simd.hpp>

namespace masquant::detail {

/// Per-channel running moments, structure of arrays over `channels` entries: min and max of the
/// values, their mean, and M2 = the sum of squared deviations from the mean. Empty state is
/// min = +inf, max = -inf, mean = 0, m2 = 0.
struct moments_ref {
  double* min;
  double* max;
  double* mean;
  double* m2;
};
struct moments_cref {
  const double* min;
  const double* max;
  const double* mean;
  const double* m2;
};

/// Tokens combined exactly (two passes in registers) before each Chan merge into the state.
inline constexpr index_t moments_group = 8;

/// Lane operations over `width` channels at once: xsimd batches of doubles, or plain doubles for
/// scalar_arch. Both follow the same operation order, so paths differ at most by contraction
/// of a multiply-add (min and max are exact).
template <class A>
struct moments_lanes {
  using type = xsimd::batch<double, A>;
  static constexpr index_t width = static_cast<index_t>(type::size);
  static type widen(const float* p) noexcept { return load_widen<A>(p); }
  static type load(const double* p) noexcept { return type::load_unaligned(p); }
  static void store(double* p, const type& v) noexcept { v.store_unaligned(p); }
  static type min(const type& a, const type& b) noexcept { return lane_min<A>(a, b); }
  static type max(const type& a, const type& b) noexcept { return lane_max<A>(a, b); }
};
template <>
struct moments_lanes<scalar_arch> {
  using type = double;
  static constexpr index_t width = 1;
  static double widen(const float* p) noexcept { return static_cast<double>(*p); }
  static double load(const double* p) noexcept { return *p; }
  static void store(double* p, double v) noexcept { *p = v; }
  // The operand order of x86 minpd/maxpd: the second operand unless the first is strictly
  // smaller (larger). Zeros are canonicalised after every update, so ties never show.
  static double min(double a, double b) noexcept { return a < b ? a : b; }
  static double max(double a, double b) noexcept { return a > b ? a : b; }
};

/// Sum of x[0..N) as a balanced tree (a fixed order, shared by every path).
template <int N, class V>
V tree_sum(const V* x) noexcept {
  if constexpr (N == 1) {
    return x[0];
  } else {
    return tree_sum<N / 2>(x) + tree_sum<N - N / 2>(x + N / 2);
  }
}

/// Merges a group of R rows into channels [c0, c1) (c1 - c0 a multiple of the lane width).
/// `w` = R / n and `cw` = n_before * R / n are the Chan weights of the merge.
template <class Lanes, int R>
void moments_group_update(const float* const* rows, index_t c0, index_t c1, moments_cref in,
                          moments_ref out, double w, double cw) noexcept {
  using V = typename Lanes::type;
  constexpr double inv_r = 1.0 / R;
  for (index_t c = c0; c < c1; c += Lanes::width) {
    V x[R];
    for (int k = 0; k < R; ++k) x[k] = Lanes::widen(rows[k] + c);
    V lo = x[0], hi = x[0];
    for (int k = 1; k < R; ++k) {
      lo = Lanes::min(x[k], lo);
      hi = Lanes::max(x[k], hi);
    }
    const V mean_b = tree_sum<R>(x) * V(inv_r);
    V m2_b = V(0.0);
    for (int k = 0; k < R; ++k) {
      const V d = x[k] - mean_b;
      m2_b = m2_b + d * d;
    }
    const V mean = Lanes::load(in.mean + c);
    const V delta = mean_b - mean;
    Lanes::store(out.mean + c, mean + delta * V(w));
    Lanes::store(out.m2 + c, (Lanes::load(in.m2 + c) + m2_b) + (delta * delta) * V(cw));
    Lanes::store(out.min + c, Lanes::min(lo, Lanes::load(in.min + c)));
    Lanes::store(out.max + c, Lanes::max(hi, Lanes::load(in.max + c)));
  }
}

template <class A, int R>
void moments_group_dispatch(const float* const* rows, index_t c0, index_t c1, moments_cref in,
                            moments_ref out, double w, double cw) noexcept {
  using simd = moments_lanes<A>;
  const index_t vec_end = c0 + (c1 - c0) / simd::width * simd::width;
  moments_group_update<simd, R>(rows, c0, vec_end, in, out, w, cw);
  if constexpr (simd::width > 1) {
    moments_group_update<moments_lanes<scalar_arch>, R>(rows, vec_end, c1, in, out, w, cw);
  }
}

/// Accumulates rows[0..n) into channels [c0, c1) of the state: reads `in` (the state before
/// these rows, holding `count` tokens), writes `out` (in may equal out). Non-finite inputs
/// leave NaN in out.m2 (never a finite value), which the caller checks. Canonicalises -0 to +0
/// in min and max so that they do not depend on the order of the tokens.
template <class A>
void moments_update(const float* const* rows, index_t n, std::int64_t count, index_t c0, index_t c1,
                    moments_cref in, moments_ref out) noexcept {
  for (index_t r0 = 0; r0 < n; r0 += moments_group) {
    const index_t r = n - r0 < moments_group ? n - r0 : moments_group;
    const double n_before = static_cast<double>(count + r0);
    const double n_after = n_before + static_cast<double>(r);
    const double w = static_cast<double>(r) / n_after;
    const double cw = n_before * static_cast<double>(r) / n_after;
    const moments_cref src = r0 == 0 ? in : moments_cref{out.min, out.max, out.mean, out.m2};
    const float* const* g = rows + r0;
    switch (r) {
      case 8:
        moments_group_dispatch<A, 8>(g, c0, c1, src, out, w, cw);
        break;
      case 7:
        moments_group_dispatch<A, 7>(g, c0, c1, src, out, w, cw);
        break;
      case 6:
        moments_group_dispatch<A, 6>(g, c0, c1, src, out, w, cw);
        break;
      case 5:
        moments_group_dispatch<A, 5>(g, c0, c1, src, out, w, cw);
        break;
      case 4:
        moments_group_dispatch<A, 4>(g, c0, c1, src, out, w, cw);
        break;
      case 3:
        moments_group_dispatch<A, 3>(g, c0, c1, src, out, w, cw);
        break;
      case 2:
        moments_group_dispatch<A, 2>(g, c0, c1, src, out, w, cw);
        break;
      default:
        moments_group_dispatch<A, 1>(g, c0, c1, src, out, w, cw);
        break;
    }
  }
  // -0 + +0 is +0: min and max of a channel whose extreme is zero no longer depend on which
  // zero came first.
  for (index_t c = c0; c < c1; ++c) {
    out.min[c] += 0.0;
    out.max[c] += 0.0;
  }
}

}  // namespace masquant::detail
