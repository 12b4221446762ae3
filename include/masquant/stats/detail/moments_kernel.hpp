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

/// Tokens of an empty accumulator's first group, combined exactly (two passes in registers).
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

/// The first R rows of an empty accumulator, channels [c0, c1) (c1 - c0 a multiple of the lane
/// width): min, max, and the exact two-pass mean and M2 of the group, held in registers.
template <class Lanes, int R>
void moments_first_group(const float* const* rows, index_t c0, index_t c1,
                         moments_ref out) noexcept {
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
    const V mean = tree_sum<R>(x) * V(inv_r);
    V m2 = V(0.0);
    for (int k = 0; k < R; ++k) {
      const V d = x[k] - mean;
      m2 = m2 + d * d;
    }
    Lanes::store(out.mean + c, mean);
    Lanes::store(out.m2 + c, m2);
    Lanes::store(out.min + c, lo);
    Lanes::store(out.max + c, hi);
  }
}

template <class A, int R>
void moments_first_dispatch(const float* const* rows, index_t c0, index_t c1,
                            moments_ref out) noexcept {
  using simd = moments_lanes<A>;
  const index_t vec_end = c0 + (c1 - c0) / simd::width * simd::width;
  moments_first_group<simd, R>(rows, c0, vec_end, out);
  if constexpr (simd::width > 1) {
    moments_first_group<moments_lanes<scalar_arch>, R>(rows, vec_end, c1, out);
  }
}

/// Merges `r` rows (R of them when R > 0) into channels [c0, c1) in one pass, centred on the
/// state's mean μ_a (n_a > 0 tokens): with d = x − μ_a, S = Σd and Q = Σd², the merged mean is
/// μ_a + S/n and M2 = M2_a + Q − S²/n. The subtraction loses at most a factor n/n_a of relative
/// accuracy (Q ≤ M2_b + rδ² and M2_new ≥ M2_b + rδ²·n_a/n), so the very first group of an
/// accumulator goes through moments_first_group instead.
template <class Lanes, int R>
void moments_stream_update(const float* const* rows, index_t r, index_t c0, index_t c1,
                           moments_cref in, moments_ref out, double inv_n) noexcept {
  using V = typename Lanes::type;
  const index_t count = R > 0 ? R : r;
  for (index_t c = c0; c < c1; c += Lanes::width) {
    const V mean = Lanes::load(in.mean + c);
    // Four independent chains (tokens 4i + u feed chain u, a tail feeds chain 0): one chain of
    // dependent adds would stall on latency.
    V lo0 = Lanes::load(in.min + c), hi0 = Lanes::load(in.max + c);
    V lo1 = lo0, lo2 = lo0, lo3 = lo0, hi1 = hi0, hi2 = hi0, hi3 = hi0;
    V s0 = V(0.0), s1 = V(0.0), s2 = V(0.0), s3 = V(0.0);
    V q0 = V(0.0), q1 = V(0.0), q2 = V(0.0), q3 = V(0.0);
    const auto step = [&](const float* p, V& lo, V& hi, V& sum, V& sq) {
      const V x = Lanes::widen(p + c);
      lo = Lanes::min(x, lo);
      hi = Lanes::max(x, hi);
      const V d = x - mean;
      sum = sum + d;
      sq = sq + d * d;
    };
    index_t k = 0;
    for (; k + 4 <= count; k += 4) {
      step(rows[k], lo0, hi0, s0, q0);
      step(rows[k + 1], lo1, hi1, s1, q1);
      step(rows[k + 2], lo2, hi2, s2, q2);
      step(rows[k + 3], lo3, hi3, s3, q3);
    }
    for (; k < count; ++k) step(rows[k], lo0, hi0, s0, q0);
    const V sum = (s0 + s1) + (s2 + s3);
    const V sq = (q0 + q1) + (q2 + q3);
    const V lo_all = Lanes::min(Lanes::min(lo0, lo1), Lanes::min(lo2, lo3));
    const V hi_all = Lanes::max(Lanes::max(hi0, hi1), Lanes::max(hi2, hi3));
    Lanes::store(out.mean + c, mean + sum * V(inv_n));
    Lanes::store(out.m2 + c, Lanes::load(in.m2 + c) + (sq - sum * (sum * V(inv_n))));
    Lanes::store(out.min + c, lo_all);
    Lanes::store(out.max + c, hi_all);
  }
}

#if defined(__AVX512F__)
/// moments_stream_update for AVX-512, 16 channels at a time: min and max on 16 floats (half the
/// instructions of doing them on doubles; exact either way) kept in the float arrays lo_f and
/// hi_f (indexed from c0), S and Q on the two halves widened to double. Row k also prefetches
/// the same columns of next[k] into L2. In cache the pass is bound by instruction throughput, so
/// this is worth its lines (about +20% here).
template <int R>
void moments_stream_avx512(const float* const* rows, index_t r, index_t c0, index_t c1,
                           moments_cref in, moments_ref out, double inv_n, float* lo_f, float* hi_f,
                           const float* const* next) noexcept {
  // The maskz form with a full mask: GCC 12 warns on the undefined operand of the plain one.
  const auto widen = [](const float* p) { return _mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(p)); };
  const index_t count = R > 0 ? R : r;
  const __m512d scale = _mm512_set1_pd(inv_n);
  const __m512d one = _mm512_set1_pd(1.0);
  for (index_t c = c0; c < c1; c += 16) {
    const __m512d m0 = _mm512_loadu_pd(in.mean + c), m1 = _mm512_loadu_pd(in.mean + c + 8);
    __m512 lo = _mm512_loadu_ps(lo_f + (c - c0)), hi = _mm512_loadu_ps(hi_f + (c - c0));
    __m512d s0 = _mm512_setzero_pd(), s1 = s0, q0 = s0, q1 = s0;
    // One chain per sum: a row costs ~10 cycles, far more than the latency of an add.
#pragma GCC unroll 8
    for (index_t k = 0; k < count; ++k) {
      const __m512 x = _mm512_loadu_ps(rows[k] + c);
      _mm_prefetch(reinterpret_cast<const char*>(next[k] + c), _MM_HINT_T2);
      lo = _mm512_maskz_min_ps(0xFFFF, x, lo);
      hi = _mm512_maskz_max_ps(0xFFFF, x, hi);
      // The halves are loaded again to widen (the loads are cheaper than extracting the upper
      // half), and S is summed as d·1 + S, exactly d + S: both move work off the busiest
      // pipes (~12% in cache here).
      const __m512d d0 = _mm512_sub_pd(widen(rows[k] + c), m0);
      const __m512d d1 = _mm512_sub_pd(widen(rows[k] + c + 8), m1);
      s0 = _mm512_fmadd_pd(d0, one, s0);
      s1 = _mm512_fmadd_pd(d1, one, s1);
      q0 = _mm512_fmadd_pd(d0, d0, q0);  // explicit: ISO modes do not contract
      q1 = _mm512_fmadd_pd(d1, d1, q1);
    }
    // mean = μ_a + S/n, M2 = M2_a + (Q − S·(S/n)).
    const __m512d t0 = _mm512_mul_pd(s0, scale), t1 = _mm512_mul_pd(s1, scale);
    _mm512_storeu_pd(out.mean + c, _mm512_add_pd(m0, t0));
    _mm512_storeu_pd(out.mean + c + 8, _mm512_add_pd(m1, t1));
    _mm512_storeu_pd(out.m2 + c,
                     _mm512_add_pd(_mm512_loadu_pd(in.m2 + c), _mm512_fnmadd_pd(s0, t0, q0)));
    _mm512_storeu_pd(out.m2 + c + 8,
                     _mm512_add_pd(_mm512_loadu_pd(in.m2 + c + 8), _mm512_fnmadd_pd(s1, t1, q1)));
    _mm512_storeu_ps(lo_f + (c - c0), lo);
    _mm512_storeu_ps(hi_f + (c - c0), hi);
  }
}
#endif

/// True when moments_update runs moments_stream_avx512 for A.
template <class A>
inline constexpr bool moments_wide =
#if defined(__AVX512F__)
    std::is_base_of_v<xsimd::avx512f, A>;
#else
    false;
#endif

/// Channels of one moments_update sweep over the rows; bounds the float copies of min and max
/// that the AVX-512 kernel works on (2 x 8 KiB on the stack).
inline constexpr index_t moments_span = 2048;

template <class A, int R>
void moments_stream_dispatch(const float* const* rows, index_t r, index_t c0, index_t c1,
                             moments_cref in, moments_ref out, double inv_n,
                             [[maybe_unused]] float* lo_f, [[maybe_unused]] float* hi_f,
                             [[maybe_unused]] const float* const* next) noexcept {
  using simd = moments_lanes<A>;
#if defined(__AVX512F__)
  if constexpr (moments_wide<A>) {
    const index_t wide_end = c0 + (c1 - c0) / 16 * 16;
    moments_stream_avx512<R>(rows, r, c0, wide_end, in, out, inv_n, lo_f, hi_f, next);
    c0 = wide_end;
  }
#endif
  const index_t vec_end = c0 + (c1 - c0) / simd::width * simd::width;
  moments_stream_update<simd, R>(rows, r, c0, vec_end, in, out, inv_n);
  if constexpr (simd::width > 1) {
    moments_stream_update<moments_lanes<scalar_arch>, R>(rows, r, vec_end, c1, in, out, inv_n);
  }
}

/// Tokens per one-pass group after the first. A longer group amortises the merge, but its rows
/// sit at the same offset of their lines: with row strides that are multiples of 4 KiB (every
/// hidden size of interest), 16 rows fall into one 8-way L1 set, which cost ~20% in cache.
inline constexpr index_t moments_stream_group = 8;

/// Accumulates rows[0..n) into channels [c0, c1) of the state: reads `in` (the state before
/// these rows, holding `count` tokens), writes `out` (in may equal out). Non-finite inputs
/// leave NaN in out.m2 (never a finite value), which the caller checks. Canonicalises -0 to +0
/// in min and max so that they do not depend on the order of the tokens.
template <class A>
void moments_update(const float* const* rows, index_t n, std::int64_t count, index_t c0, index_t c1,
                    moments_cref in, moments_ref out) noexcept {
  if (c1 - c0 > moments_span) {
    for (index_t cs = c0; cs < c1; cs += moments_span) {
      moments_update<A>(rows, n, count, cs, c1 - cs < moments_span ? c1 : cs + moments_span, in,
                        out);
    }
    return;
  }
  index_t r0 = 0;
  if (count == 0 && n > 0) {
    // No mean to centre on yet: the first group is combined exactly (two passes).
    r0 = n < moments_group ? n : moments_group;
    switch (r0) {
      case 8:
        moments_first_dispatch<A, 8>(rows, c0, c1, out);
        break;
      case 7:
        moments_first_dispatch<A, 7>(rows, c0, c1, out);
        break;
      case 6:
        moments_first_dispatch<A, 6>(rows, c0, c1, out);
        break;
      case 5:
        moments_first_dispatch<A, 5>(rows, c0, c1, out);
        break;
      case 4:
        moments_first_dispatch<A, 4>(rows, c0, c1, out);
        break;
      case 3:
        moments_first_dispatch<A, 3>(rows, c0, c1, out);
        break;
      case 2:
        moments_first_dispatch<A, 2>(rows, c0, c1, out);
        break;
      default:
        moments_first_dispatch<A, 1>(rows, c0, c1, out);
        break;
    }
  }
  // The AVX-512 kernel keeps min and max as floats through the sweep (exact: they are floats or
  // ±inf), sparing a conversion each way per group; the rest of the channels stay in `out`.
  // Their stores share the rows' stride (4 bytes per channel), so a fixed distance between the
  // two decides whether every row load falsely waits on a store with the same address bits
  // 11..0 (4K aliasing: up to ~25% in cache here). Both arrays are placed half a page from
  // rows[0] + c0, modulo 4 KiB.
  constexpr index_t wide_span = moments_wide<A> ? moments_span : 1;
  constexpr index_t page_floats = moments_wide<A> ? 1024 : 0;
  alignas(64) float minmax[2 * wide_span + page_floats];
  float* lo_f = minmax;
  if constexpr (moments_wide<A>) {
    if (n > 0) {
      const auto data = reinterpret_cast<std::uintptr_t>(rows[0] + c0);
      const auto base = reinterpret_cast<std::uintptr_t>(minmax);
      lo_f += ((data + 2048 - base) % 4096) / 64 * 16;
    }
  }
  float* hi_f = lo_f + wide_span;  // a multiple of 4 KiB further
  const index_t wide_end = moments_wide<A> ? c0 + (c1 - c0) / 16 * 16 : c0;
  if (r0 < n) {
    const double* lo = r0 == 0 ? in.min : out.min;
    const double* hi = r0 == 0 ? in.max : out.max;
    for (index_t c = c0; c < wide_end; ++c) {
      lo_f[c - c0] = static_cast<float>(lo[c]);
      hi_f[c - c0] = static_cast<float>(hi[c]);
    }
  }
  for (; r0 < n; r0 += moments_stream_group) {
    const index_t r = n - r0 < moments_stream_group ? n - r0 : moments_stream_group;
    const double inv_n = 1.0 / static_cast<double>(count + r0 + r);
    const moments_cref src = r0 == 0 ? in : moments_cref{out.min, out.max, out.mean, out.m2};
    // Row k of the group prefetches row k of the next group into L2 (its own row when there is
    // none): 13.2-13.7 GB/s from DRAM without, 15.5-17.4 with, on one core here.
    const float* next[moments_stream_group];
    for (index_t k = 0; k < r; ++k) next[k] = r0 + r + k < n ? rows[r0 + r + k] : rows[r0 + k];
    if (r == moments_stream_group) {
      moments_stream_dispatch<A, moments_stream_group>(rows + r0, r, c0, c1, src, out, inv_n, lo_f,
                                                       hi_f, next);
    } else {
      moments_stream_dispatch<A, 0>(rows + r0, r, c0, c1, src, out, inv_n, lo_f, hi_f, next);
    }
    if (r0 + r >= n) {
      for (index_t c = c0; c < wide_end; ++c) {
        out.min[c] = lo_f[c - c0];
        out.max[c] = hi_f[c - c0];
      }
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
