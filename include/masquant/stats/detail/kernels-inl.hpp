// kernels-inl.hpp: the statistics kernels of one family — per-channel min, max, mean and M2 over
// a stream of rows (Chan et al. merging), and the upper triangle of G += XᵀX in double from float
// rows (packed, tiled, FMA). Family source (detail/isa/foreach_family.hpp), compiled per family
// by families.hpp; channel_stats calls the run_* entries at the end through the dispatcher.

namespace stats {

using masquant::detail::gram_workspace;
using masquant::detail::moments_cref;
using masquant::detail::moments_ref;

// --- moments ----------------------------------------------------------------------------------

/// Tokens of an empty accumulator's first group, combined exactly (two passes in registers).
inline constexpr index_t moments_group = 8;

/// Lane operations over `width` channels at once: the family's double vectors, or plain
/// doubles. Both follow the same operation order, so paths differ at most by contraction of a
/// multiply-add (min and max are exact).
template <bool Vector>
struct moments_lanes {
  using type = simd::vd;
  static constexpr index_t width = simd::double_lanes;
  static type splat(double x) noexcept { return simd::dsplat(x); }
  static type widen(const float* p) noexcept { return simd::widen(p); }
  static type load(const double* p) noexcept { return simd::loadu(p); }
  static void store(double* p, type v) noexcept { simd::storeu(p, v); }
  static type min(type a, type b) noexcept { return simd::min(a, b); }
  static type max(type a, type b) noexcept { return simd::max(a, b); }
};
template <>
struct moments_lanes<false> {
  using type = double;
  static constexpr index_t width = 1;
  static double splat(double x) noexcept { return x; }
  static double widen(const float* p) noexcept { return static_cast<double>(*p); }
  static double load(const double* p) noexcept { return *p; }
  static void store(double* p, double v) noexcept { *p = v; }
  // The operand order of x86 minpd/maxpd: the second operand unless the first is strictly
  // smaller (larger). Zeros are canonicalised after every update, so ties never show.
  static double min(double a, double b) noexcept { return a < b ? a : b; }
  static double max(double a, double b) noexcept { return a > b ? a : b; }
};
using vector_lanes = moments_lanes<simd::enabled>;
using scalar_lanes = moments_lanes<false>;

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
    V x[std::size_t{R}];
    for (int k = 0; k < R; ++k) x[k] = Lanes::widen(rows[k] + c);
    V lo = x[0], hi = x[0];
    for (int k = 1; k < R; ++k) {
      lo = Lanes::min(x[k], lo);
      hi = Lanes::max(x[k], hi);
    }
    const V mean = tree_sum<R>(x) * Lanes::splat(inv_r);
    V m2 = Lanes::splat(0.0);
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

template <int R>
void moments_first_dispatch(const float* const* rows, index_t c0, index_t c1,
                            moments_ref out) noexcept {
  const index_t vec_end = c0 + (c1 - c0) / vector_lanes::width * vector_lanes::width;
  moments_first_group<vector_lanes, R>(rows, c0, vec_end, out);
  if constexpr (vector_lanes::width > 1) {
    moments_first_group<scalar_lanes, R>(rows, vec_end, c1, out);
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
    V s0 = Lanes::splat(0.0), s1 = s0, s2 = s0, s3 = s0;
    V q0 = Lanes::splat(0.0), q1 = q0, q2 = q0, q3 = q0;
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
    Lanes::store(out.mean + c, mean + sum * Lanes::splat(inv_n));
    Lanes::store(out.m2 + c, Lanes::load(in.m2 + c) + (sq - sum * (sum * Lanes::splat(inv_n))));
    Lanes::store(out.min + c, lo_all);
    Lanes::store(out.max + c, hi_all);
  }
}

#if MASQUANT_FAMILY == MASQUANT_ISA_AVX512
/// moments_stream_update for AVX-512, 16 channels at a time: min and max on 16 floats (half the
/// instructions of doing them on doubles; exact either way) kept in the float arrays lo_f and
/// hi_f (indexed from c0), S and Q on the two halves widened to double. Row k also prefetches
/// the same columns of next[k] into L2. In cache the pass is bound by instruction throughput, so
/// this is worth its lines (about +20% here).
template <int R>
void moments_stream_avx512(const float* const* rows, index_t r, index_t c0, index_t c1,
                           moments_cref in, moments_ref out, double inv_n, float* lo_f, float* hi_f,
                           const float* const* next) noexcept {
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
      const __m512d d0 = _mm512_sub_pd(simd::widen(rows[k] + c).v, m0);
      const __m512d d1 = _mm512_sub_pd(simd::widen(rows[k] + c + 8).v, m1);
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

/// True when moments_update runs moments_stream_avx512.
inline constexpr bool moments_wide = MASQUANT_FAMILY == MASQUANT_ISA_AVX512;

/// Channels of one moments_update sweep over the rows; bounds the float copies of min and max
/// that the AVX-512 kernel works on (2 x 8 KiB on the stack).
inline constexpr index_t moments_span = 2048;

template <int R>
void moments_stream_dispatch(const float* const* rows, index_t r, index_t c0, index_t c1,
                             moments_cref in, moments_ref out, double inv_n,
                             [[maybe_unused]] float* lo_f, [[maybe_unused]] float* hi_f,
                             [[maybe_unused]] const float* const* next) noexcept {
#if MASQUANT_FAMILY == MASQUANT_ISA_AVX512
  const index_t wide_end = c0 + (c1 - c0) / 16 * 16;
  moments_stream_avx512<R>(rows, r, c0, wide_end, in, out, inv_n, lo_f, hi_f, next);
  c0 = wide_end;
#endif
  const index_t vec_end = c0 + (c1 - c0) / vector_lanes::width * vector_lanes::width;
  moments_stream_update<vector_lanes, R>(rows, r, c0, vec_end, in, out, inv_n);
  if constexpr (vector_lanes::width > 1) {
    moments_stream_update<scalar_lanes, R>(rows, r, vec_end, c1, in, out, inv_n);
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
inline void moments_update(const float* const* rows, index_t n, std::int64_t count, index_t c0,
                           index_t c1, moments_cref in, moments_ref out) noexcept {
  if (c1 - c0 > moments_span) {
    for (index_t cs = c0; cs < c1; cs += moments_span) {
      moments_update(rows, n, count, cs, c1 - cs < moments_span ? c1 : cs + moments_span, in, out);
    }
    return;
  }
  index_t r0 = 0;
  if (count == 0 && n > 0) {
    // No mean to centre on yet: the first group is combined exactly (two passes).
    r0 = n < moments_group ? n : moments_group;
    switch (r0) {
      case 8:
        moments_first_dispatch<8>(rows, c0, c1, out);
        break;
      case 7:
        moments_first_dispatch<7>(rows, c0, c1, out);
        break;
      case 6:
        moments_first_dispatch<6>(rows, c0, c1, out);
        break;
      case 5:
        moments_first_dispatch<5>(rows, c0, c1, out);
        break;
      case 4:
        moments_first_dispatch<4>(rows, c0, c1, out);
        break;
      case 3:
        moments_first_dispatch<3>(rows, c0, c1, out);
        break;
      case 2:
        moments_first_dispatch<2>(rows, c0, c1, out);
        break;
      default:
        moments_first_dispatch<1>(rows, c0, c1, out);
        break;
    }
  }
  // The AVX-512 kernel keeps min and max as floats through the sweep (exact: they are floats or
  // ±inf), sparing a conversion each way per group; the rest of the channels stay in `out`.
  // Their stores share the rows' stride (4 bytes per channel), so a fixed distance between the
  // two decides whether every row load falsely waits on a store with the same address bits
  // 11..0 (4K aliasing: up to ~25% in cache here). Both arrays are placed half a page from
  // rows[0] + c0, modulo 4 KiB.
  constexpr index_t wide_span = moments_wide ? moments_span : 1;
  constexpr index_t page_floats = moments_wide ? 1024 : 0;
  alignas(64) float minmax[2 * wide_span + page_floats];
  float* lo_f = minmax;
  if constexpr (moments_wide) {
    if (n > 0) {
      const auto data = reinterpret_cast<std::uintptr_t>(rows[0] + c0);
      const auto base = reinterpret_cast<std::uintptr_t>(minmax);
      lo_f += ((data + 2048 - base) % 4096) / 64 * 16;
    }
  }
  float* hi_f = lo_f + wide_span;  // a multiple of 4 KiB further
  const index_t wide_end = moments_wide ? c0 + (c1 - c0) / 16 * 16 : c0;
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
      moments_stream_dispatch<moments_stream_group>(rows + r0, r, c0, c1, src, out, inv_n, lo_f,
                                                    hi_f, next);
    } else {
      moments_stream_dispatch<0>(rows + r0, r, c0, c1, src, out, inv_n, lo_f, hi_f, next);
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

// --- Gram -------------------------------------------------------------------------------------

/// Tile sizes of the Gram kernel. Tokens are converted to double once and
/// packed into panels of `width` channels (one register); a micro-tile is `rows` = vectors ×
/// width entries of a column of G by `width` columns, accumulated in registers over a block of
/// `tokens` tokens. A block of `block_rows` rows of G (its packed panels) stays in L2 while a
/// task walks `chunk_cols` columns.
struct gram_tiling {
  static constexpr index_t width = simd::enabled ? simd::double_lanes : 4;
  static constexpr index_t vectors = 3;
  static constexpr index_t rows = vectors * width;
  static constexpr index_t tokens = 512;
  static constexpr index_t block_rows = rows * (width >= 8 ? 8 : 16);
  static constexpr index_t chunk_cols = 128;
};

/// Prefetch hints: into L2 for reading, into L1 for reading, into L2 for writing.
inline void prefetch_read_l2(const double* p) noexcept {
  __builtin_prefetch(p, 0, 2);
}
inline void prefetch_read_l1(const double* p) noexcept {
  __builtin_prefetch(p, 0, 3);
}
inline void prefetch_write_l2(const double* p) noexcept {
  __builtin_prefetch(p, 1, 2);
}

/// Packs rows[0..kb) (channels [0, n)) into panels: panel p holds channels [p*W, p*W + W) of
/// every token, token-major; channels past n are zero. Panels [p0, p1) only.
inline void gram_pack(const float* const* rows, index_t kb, index_t n, index_t p0, index_t p1,
                      double* pack) noexcept {
  constexpr index_t W = gram_tiling::width;
  // Groups of 8 panels: each token's row is read in runs of 8 * W floats (whole cache lines),
  // the group's panels are written in sequence.
  constexpr index_t group = 8;
  for (index_t g0 = p0; g0 < p1; g0 += group) {
    const index_t g1 = g0 + group < p1 ? g0 + group : p1;
    for (index_t t = 0; t < kb; ++t) {
      const float* src = rows[t];
      for (index_t p = g0; p < g1; ++p) {
        double* dst = pack + (p * kb + t) * W;
        const index_t c0 = p * W;
        if constexpr (simd::enabled) {
          if (c0 + W <= n) {
            simd::store(dst, simd::widen(src + c0));
            continue;
          }
        }
        for (index_t w = 0; w < W; ++w)
          dst[w] = c0 + w < n ? static_cast<double>(src[c0 + w]) : 0.0;
      }
    }
  }
}

/// G[i0 .. i0+rows, j0 .. j0+W) += Σ_t a_t b_tᵀ over kb tokens, where a comes from the
/// `vectors` panels at `a` (panel stride kb*W) and b from the panel at `b`. G is column-major
/// with leading dimension ldg. `Full`: the tile lies inside G; otherwise only entries with
/// row < n and column < n are updated. `b_next` (optional): the next column panel, fetched into
/// L2 meanwhile (one line per token), since waiting for it costs more than the tile's G traffic.
template <bool Full>
void gram_micro(const double* a, const double* b, index_t kb, double* g, index_t ldg, index_t i0,
                index_t j0, index_t n, const double* b_next) noexcept {
  constexpr index_t W = gram_tiling::width;
  constexpr index_t V = gram_tiling::vectors;
  const index_t stride = kb * W;
  if constexpr (!simd::enabled) {
    static_cast<void>(b_next);
    double acc[W][V * W] = {};
    for (index_t t = 0; t < kb; ++t)
      for (index_t jj = 0; jj < W; ++jj)
        for (index_t v = 0; v < V; ++v)
          for (index_t ii = 0; ii < W; ++ii)
            acc[jj][v * W + ii] += a[v * stride + t * W + ii] * b[t * W + jj];
    for (index_t jj = 0; jj < W && j0 + jj < n; ++jj)
      for (index_t ii = 0; ii < V * W && i0 + ii < n; ++ii)
        g[(j0 + jj) * ldg + i0 + ii] += acc[jj][ii];
  } else {
    simd::vd acc[W][V];
    for (index_t jj = 0; jj < W; ++jj)
      for (index_t v = 0; v < V; ++v)
        acc[jj][v] = Full ? simd::loadu(g + (j0 + jj) * ldg + i0 + v * W) : simd::dsplat(0.0);
    // The next micro-tile down the same columns: its G entries come from memory while this
    // one computes.
    if (Full && i0 + 2 * V * W <= n) {
      for (index_t jj = 0; jj < W; ++jj)
        for (index_t v = 0; v < V; ++v) prefetch_write_l2(g + (j0 + jj) * ldg + i0 + (V + v) * W);
    }
    for (index_t t = 0; t < kb; ++t) {
      if (b_next != nullptr) prefetch_read_l2(b_next + t * W);
      simd::vd x[V];
      for (index_t v = 0; v < V; ++v) {
        prefetch_read_l1(a + v * stride + (t + 8) * W);  // the a panels stream from L2
        x[v] = simd::load(a + v * stride + t * W);
      }
      for (index_t jj = 0; jj < W; ++jj) {
        const simd::vd y = simd::dsplat(b[t * W + jj]);
        for (index_t v = 0; v < V; ++v) acc[jj][v] = simd::fma(x[v], y, acc[jj][v]);
      }
    }
    if constexpr (Full) {
      for (index_t jj = 0; jj < W; ++jj)
        for (index_t v = 0; v < V; ++v) simd::storeu(g + (j0 + jj) * ldg + i0 + v * W, acc[jj][v]);
    } else {
      alignas(64) double tile[V * W];
      for (index_t jj = 0; jj < W && j0 + jj < n; ++jj) {
        for (index_t v = 0; v < V; ++v) simd::store(tile + v * W, acc[jj][v]);
        for (index_t ii = 0; ii < V * W && i0 + ii < n; ++ii)
          g[(j0 + jj) * ldg + i0 + ii] += tile[ii];
      }
    }
  }
}

/// One task of a block update: rows [r0, r1) of G (whole micro-tiles) by column panels
/// [q0, q1), upper triangle only (micro-tiles that reach the diagonal are computed whole).
inline void gram_task(const double* pack, index_t kb, double* g, index_t ldg, index_t n, index_t r0,
                      index_t r1, index_t q0, index_t q1) noexcept {
  using tiling = gram_tiling;
  constexpr index_t W = tiling::width;
  for (index_t q = q0; q < q1; ++q) {
    const index_t j0 = q * W;
    const double* b = pack + q * kb * W;
    for (index_t i0 = r0; i0 < r1 && i0 <= j0; i0 += tiling::rows) {
      const double* a = pack + (i0 / W) * kb * W;
      const double* b_next = i0 == r0 && q + 1 < q1 ? b + kb * W : nullptr;
      if (i0 + tiling::rows <= n && j0 + W <= n) {
        gram_micro<true>(a, b, kb, g, ldg, i0, j0, n, b_next);
      } else {
        gram_micro<false>(a, b, kb, g, ldg, i0, j0, n, b_next);
      }
    }
  }
}

/// Adds Σ_t x_t x_tᵀ over rows[0..count) (each a pointer to n floats) to the upper triangle
/// (row <= column) of the column-major n x n matrix g; the strict lower triangle is left with
/// unspecified values. Work is split into tasks that own disjoint parts of G and sum tokens in
/// the same order, so the result does not depend on how `parallel` schedules them.
inline void gram_update(const float* const* rows, index_t count, index_t n, double* g,
                        gram_workspace& ws, const parallel_for_fn& parallel) {
  using tiling = gram_tiling;
  constexpr index_t W = tiling::width;
  if (count == 0 || n == 0) return;
  const index_t panels = (n + W - 1) / W;
  // Room for the tiles that reach past the last panel (zero padding is read, never stored).
  const index_t padded_panels = ((panels * W + tiling::rows - 1) / tiling::rows) * tiling::rows / W;
  const index_t kb_max = std::min(count, tiling::tokens);
  // Slack after the last panel keeps the micro-kernel's read-ahead inside the buffer.
  double* pack = ws.get(static_cast<std::size_t>((padded_panels * kb_max + 8) * W));
  const index_t col_chunks = (panels * W + tiling::chunk_cols - 1) / tiling::chunk_cols;
  const index_t row_blocks = (n + tiling::block_rows - 1) / tiling::block_rows;
  // Tasks (row block, column chunk) on or above the diagonal, in a fixed order.
  std::vector<std::pair<index_t, index_t>> tasks;
  for (index_t rb = 0; rb < row_blocks; ++rb)
    for (index_t cc = 0; cc < col_chunks; ++cc)
      if ((cc + 1) * tiling::chunk_cols > rb * tiling::block_rows) tasks.emplace_back(rb, cc);
  const index_t pack_tasks = std::min<index_t>(panels, 16);
  const parallel_for_fn& run = parallel ? parallel : parallel_for_fn(serial_for);

  for (index_t t0 = 0; t0 < count; t0 += tiling::tokens) {
    const index_t kb = std::min(tiling::tokens, count - t0);
    const float* const* block = rows + t0;
    run(pack_tasks, [&](index_t k) {
      gram_pack(block, kb, n, panels * k / pack_tasks, panels * (k + 1) / pack_tasks, pack);
    });
    if (padded_panels > panels)
      std::memset(pack + panels * kb * W, 0,
                  sizeof(double) * static_cast<std::size_t>((padded_panels - panels) * kb * W));
    run(static_cast<index_t>(tasks.size()), [&](index_t k) {
      const auto [rb, cc] = tasks[static_cast<std::size_t>(k)];
      const index_t r0 = rb * tiling::block_rows;
      const index_t r1 = std::min(r0 + tiling::block_rows, n);
      const index_t q0 = cc * tiling::chunk_cols / W;
      const index_t q1 = std::min((cc + 1) * tiling::chunk_cols / W, panels);
      gram_task(pack, kb, g, n, n, r0, r1, q0, q1);
    });
  }
}

}  // namespace stats

/// Accumulates rows[0..n) into channels [c0, c1) of the moments state (see stats::moments_update).
inline void run_moments_update(tag, const float* const* rows, index_t n, std::int64_t count,
                               index_t c0, index_t c1, masquant::detail::moments_cref in,
                               masquant::detail::moments_ref out) noexcept {
  stats::moments_update(rows, n, count, c0, c1, in, out);
}

/// Adds Σ_t x_t x_tᵀ over rows[0..count) to the upper triangle of g (see stats::gram_update).
inline void run_gram_update(tag, const float* const* rows, index_t count, index_t n, double* g,
                            masquant::detail::gram_workspace& ws, const parallel_for_fn& parallel) {
  stats::gram_update(rows, count, n, g, ws, parallel);
}
