// kernels.hpp: row kernels of the quant layer, templated on the xsimd architecture.
//
// Every kernel takes the architecture as a template parameter, so TUs built with different
// -march flags instantiate distinct symbols (no ODR clash). Arch = xsimd::unavailable (what
// xsimd::default_arch is when no SIMD instruction set is enabled) selects plain scalar loops.
//
// Bit-exactness with masquant::reference rests on using only correctly rounded IEEE operations
// (division, add, sub, mul, min/max, round-to-nearest-even, exact integer conversions) in the
// same order in the vector body, the scalar tail and the reference. No reciprocal, no FMA: the
// formulas contain no a*b+c pattern the compiler could contract.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <masquant/config.hpp>
#include <type_traits>
#include <xsimd/xsimd.hpp>

// GCC 12.2 reports _mm512_undefined_ps() inside AVX-512 intrinsics as uninitialized
// (GCC bug 105593, fixed in 12.3); the warning is wrong, and surfaces in every caller.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace masquant::detail::qsimd {

/// True when Arch has vector registers (false for xsimd::unavailable).
template <class Arch>
inline constexpr bool has_simd = !std::is_same_v<Arch, xsimd::unavailable>;

// --- sources: where a run of values comes from -----------------------------------------------

/// Reads x[j].
struct plain_source {
  const float* x;
  float at(index_t j) const noexcept { return x[j]; }
  template <class Arch>
  xsimd::batch<float, Arch> load(index_t j) const noexcept {
    return xsimd::batch<float, Arch>::load_unaligned(x + j);
  }
};

/// Reads x[j] like plain_source and, per vector, prefetches `next + j` (the same columns of the
/// row the caller handles next): the read of that row then overlaps this row's writes.
struct prefetching_source : plain_source {
  const float* next;
  template <class Arch>
  xsimd::batch<float, Arch> load(index_t j) const noexcept {
#if defined(__SSE__)
    _mm_prefetch(reinterpret_cast<const char*>(next + j), _MM_HINT_T1);
#endif
    return plain_source::load<Arch>(j);
  }
};

/// Reads x[j] / s[j] (a true float division: the smoothed activation x ⊘ s).
struct smoothed_source {
  const float* x;
  const float* s;
  float at(index_t j) const noexcept { return x[j] / s[j]; }
  template <class Arch>
  xsimd::batch<float, Arch> load(index_t j) const noexcept {
    using B = xsimd::batch<float, Arch>;
    return B::load_unaligned(x + j) / B::load_unaligned(s + j);
  }
};

// --- int8 <-> int32 lane conversions (xsimd 8.1 has no narrowing store) ----------------------

/// Stores the lanes of v (each in -128..127) as int8 at dst; generic fallback.
template <class A>
inline void store_i8(std::int8_t* dst, const xsimd::batch<std::int32_t, A>& v,
                     const xsimd::generic&) noexcept {
  constexpr std::size_t w = xsimd::batch<std::int32_t, A>::size;
  alignas(64) std::int32_t lanes[w];
  v.store_unaligned(lanes);
  for (std::size_t k = 0; k < w; ++k) dst[k] = static_cast<std::int8_t>(lanes[k]);
}

/// Loads size int8 values at src as int32 lanes; generic fallback.
template <class A>
inline xsimd::batch<std::int32_t, A> load_i8(const std::int8_t* src,
                                             const xsimd::generic&) noexcept {
  constexpr std::size_t w = xsimd::batch<std::int32_t, A>::size;
  alignas(64) std::int32_t lanes[w];
  for (std::size_t k = 0; k < w; ++k) lanes[k] = src[k];
  return xsimd::batch<std::int32_t, A>::load_unaligned(lanes);
}

#if XSIMD_WITH_SSE2
template <class A>
inline void store_i8(std::int8_t* dst, const xsimd::batch<std::int32_t, A>& v,
                     const xsimd::sse2&) noexcept {
  const __m128i w16 = _mm_packs_epi32(v, v);  // saturation never triggers: values fit int8
  const int bytes = _mm_cvtsi128_si32(_mm_packs_epi16(w16, w16));
  std::memcpy(dst, &bytes, 4);
}
#endif
#if XSIMD_WITH_SSE4_1
template <class A>
inline xsimd::batch<std::int32_t, A> load_i8(const std::int8_t* src,
                                             const xsimd::sse4_1&) noexcept {
  std::int32_t bytes;
  std::memcpy(&bytes, src, 4);
  return _mm_cvtepi8_epi32(_mm_cvtsi32_si128(bytes));
}
#endif
#if XSIMD_WITH_AVX
template <class A>
inline void store_i8(std::int8_t* dst, const xsimd::batch<std::int32_t, A>& v,
                     const xsimd::avx&) noexcept {
  const __m256i r = v;
  const __m128i w16 = _mm_packs_epi32(_mm256_castsi256_si128(r), _mm256_extractf128_si256(r, 1));
  _mm_storel_epi64(reinterpret_cast<__m128i*>(dst), _mm_packs_epi16(w16, w16));
}
#endif
#if XSIMD_WITH_AVX2
template <class A>
inline xsimd::batch<std::int32_t, A> load_i8(const std::int8_t* src, const xsimd::avx2&) noexcept {
  return _mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(src)));
}
#endif
#if XSIMD_WITH_AVX512F
template <class A>
inline void store_i8(std::int8_t* dst, const xsimd::batch<std::int32_t, A>& v,
                     const xsimd::avx512f&) noexcept {
  _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm512_cvtepi32_epi8(v));
}
template <class A>
inline xsimd::batch<std::int32_t, A> load_i8(const std::int8_t* src,
                                             const xsimd::avx512f&) noexcept {
  return _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src)));
}
#endif

// --- sinks: where quantized levels go -----------------------------------------------------------

/// Writes the dequantized value (q - z)·Δ as float.
struct float_sink {
  float* y;
  float delta;
  float zf;
  void put(index_t j, float q) const noexcept { y[j] = (q - zf) * delta; }
  template <class Arch>
  void put(index_t j, const xsimd::batch<float, Arch>& q) const noexcept {
    using B = xsimd::batch<float, Arch>;
    ((q - B(zf)) * B(delta)).store_unaligned(y + j);
  }
};

/// float_sink with non-temporal stores for the full vectors, which must land on addresses aligned
/// to the vector size (y aligned, j a multiple of the width). For outputs far larger than the
/// caches: a normal store first reads the line it overwrites. Callers fence with stream_fence().
struct streaming_float_sink : float_sink {
  using float_sink::put;
  template <class Arch>
  void put(index_t j, const xsimd::batch<float, Arch>& q) const noexcept {
    using B = xsimd::batch<float, Arch>;
    const B v = (q - B(zf)) * B(delta);
#if defined(__AVX512F__)
    if constexpr (std::is_base_of_v<xsimd::avx512f, Arch>) {
      _mm512_stream_ps(y + j, v);
      return;
    }
#endif
#if defined(__AVX__)
    if constexpr (std::is_base_of_v<xsimd::avx, Arch>) {
      _mm256_stream_ps(y + j, v);
      return;
    }
#endif
    v.store_aligned(y + j);
  }
};

/// Bytes of one float vector of Arch (a float for the scalar path).
template <class Arch>
constexpr std::size_t vector_bytes() noexcept {
  if constexpr (has_simd<Arch>) {
    return sizeof(xsimd::batch<float, Arch>);
  } else {
    return sizeof(float);
  }
}

/// Output bytes from which fake_quant writes with non-temporal stores (the last-level cache of
/// the machines we measure on is 32 MiB).
inline constexpr std::size_t streaming_min_bytes = std::size_t{32} << 20;

/// When `active`, orders the non-temporal stores of this thread before anything that follows,
/// also when the scope is left by an exception.
struct stream_fence {
  bool active;
  explicit stream_fence(bool on) noexcept : active(on) {}
  stream_fence(const stream_fence&) = delete;
  stream_fence& operator=(const stream_fence&) = delete;
  ~stream_fence() {
#if defined(__SSE__)
    if (active) _mm_sfence();
#endif
  }
};

/// Writes the level q minus the storage offset as int8.
struct int8_sink {
  std::int8_t* q;
  float offset;
  void put(index_t j, float level) const noexcept {
    q[j] = static_cast<std::int8_t>(static_cast<std::int32_t>(level - offset));
  }
  template <class Arch>
  void put(index_t j, const xsimd::batch<float, Arch>& level) const noexcept {
    using B = xsimd::batch<float, Arch>;
    // Truncation is exact: level - offset is an integer-valued float.
    store_i8<Arch>(q + j, xsimd::batch_cast<std::int32_t>(level - B(offset)), Arch{});
  }
};

// --- kernels --------------------------------------------------------------------------------

/// Statistics of a run: absmax in `hi` (symmetric) or min/max in lo/hi (asymmetric).
/// `finite` is false when some value was NaN or ±Inf.
struct run_stats {
  float lo = std::numeric_limits<float>::infinity();
  float hi = -std::numeric_limits<float>::infinity();
  bool finite = true;
};

/// Folds the absolute maximum of src[0..n) into st.hi (st.hi starts at 0) and clears
/// st.finite when a value is not finite. Non-finite values are detected by summing x - x,
/// which is NaN iff some x is NaN or Inf, so the check costs two vector ops per load.
template <class Arch, class Src>
inline void absmax_run(const Src& src, index_t n, run_stats& st) noexcept {
  float m = std::max(st.hi, 0.0f);
  float chk = 0.0f;
  index_t j = 0;
  if constexpr (has_simd<Arch>) {
    using B = xsimd::batch<float, Arch>;
    constexpr index_t w = static_cast<index_t>(B::size);
    B m0(0.0f), m1(0.0f), c0(0.0f), c1(0.0f);
    // Bounds computed up front keep GCC's loop analysis from inventing overflowing iterations.
    const index_t n2 = n - n % (2 * w);
    for (; j < n2; j += 2 * w) {
      const B a = src.template load<Arch>(j);
      const B b = src.template load<Arch>(j + w);
      m0 = xsimd::max(m0, xsimd::abs(a));
      m1 = xsimd::max(m1, xsimd::abs(b));
      c0 += a - a;
      c1 += b - b;
    }
    if (n - j >= w) {
      const B a = src.template load<Arch>(j);
      m0 = xsimd::max(m0, xsimd::abs(a));
      c0 += a - a;
      j += w;
    }
    alignas(64) float lm[w];
    alignas(64) float lc[w];
    xsimd::max(m0, m1).store_unaligned(lm);
    (c0 + c1).store_unaligned(lc);
    for (index_t k = 0; k < w; ++k) {
      m = std::max(m, lm[k]);
      chk += lc[k];
    }
  }
  for (; j < n; ++j) {
    const float v = src.at(j);
    m = std::max(m, std::abs(v));
    chk += v - v;
  }
  st.hi = m;
  if (chk != chk) st.finite = false;
}

/// Folds the minimum and maximum of src[0..n) into st.lo and st.hi; clears st.finite as
/// absmax_run does.
template <class Arch, class Src>
inline void minmax_run(const Src& src, index_t n, run_stats& st) noexcept {
  float lo = st.lo, hi = st.hi;
  float chk = 0.0f;
  index_t j = 0;
  if constexpr (has_simd<Arch>) {
    using B = xsimd::batch<float, Arch>;
    constexpr index_t w = static_cast<index_t>(B::size);
    B l0(lo), h0(hi), c0(0.0f);
    for (const index_t nv = n - n % w; j < nv; j += w) {
      const B a = src.template load<Arch>(j);
      l0 = xsimd::min(l0, a);
      h0 = xsimd::max(h0, a);
      c0 += a - a;
    }
    alignas(64) float ll[w];
    alignas(64) float lh[w];
    alignas(64) float lc[w];
    l0.store_unaligned(ll);
    h0.store_unaligned(lh);
    c0.store_unaligned(lc);
    for (index_t k = 0; k < w; ++k) {
      lo = std::min(lo, ll[k]);
      hi = std::max(hi, lh[k]);
      chk += lc[k];
    }
  }
  for (; j < n; ++j) {
    const float v = src.at(j);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    chk += v - v;
  }
  st.lo = lo;
  st.hi = hi;
  if (chk != chk) st.finite = false;
}

/// Δ and z of one run, and the level bounds, as floats ready for the kernels.
struct level_params {
  float delta = 1.0f;
  float zf = 0.0f;  ///< zero point (0 when symmetric)
  float qmin = 0.0f;
  float qmax = 0.0f;
};

/// The integer level of one value: clamp(rne(x / Δ) + z, qmin, qmax). std::nearbyint rounds
/// half to even under the default FE_TONEAREST mode.
inline float level_of(float x, const level_params& p) noexcept {
  return std::min(std::max(std::nearbyint(x / p.delta) + p.zf, p.qmin), p.qmax);
}

/// Quantizes src[0..n) with p and hands every level to sink.put(j, level).
template <class Arch, class Src, class Sink>
inline void quantize_run(const Src& src, index_t n, const level_params& p,
                         const Sink& sink) noexcept {
  index_t j = 0;
  if constexpr (has_simd<Arch>) {
    using B = xsimd::batch<float, Arch>;
    constexpr index_t w = static_cast<index_t>(B::size);
    const B d(p.delta), z(p.zf), lo(p.qmin), hi(p.qmax);
    for (const index_t nv = n - n % w; j < nv; j += w) {
      const B v = src.template load<Arch>(j);
      sink.template put<Arch>(j, xsimd::min(xsimd::max(xsimd::nearbyint(v / d) + z, lo), hi));
    }
  }
  for (; j < n; ++j) sink.put(j, level_of(src.at(j), p));
}

/// y[j] = float(q[j] + shift) · Δ for j in [0, n), shift = storage offset - z.
template <class Arch>
inline void dequantize_run(const std::int8_t* q, index_t n, std::int32_t shift, float delta,
                           float* y) noexcept {
  index_t j = 0;
  if constexpr (has_simd<Arch>) {
    using BF = xsimd::batch<float, Arch>;
    using BI = xsimd::batch<std::int32_t, Arch>;
    constexpr index_t w = static_cast<index_t>(BF::size);
    const BI s(shift);
    const BF d(delta);
    for (const index_t nv = n - n % w; j < nv; j += w)
      (xsimd::batch_cast<float>(load_i8<Arch>(q + j, Arch{}) + s) * d).store_unaligned(y + j);
  }
  for (; j < n; ++j) y[j] = static_cast<float>(std::int32_t{q[j]} + shift) * delta;
}

}  // namespace masquant::detail::qsimd

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
