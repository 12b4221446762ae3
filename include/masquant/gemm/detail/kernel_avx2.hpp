// kernel_avx2.hpp: the AVX2 micro-kernel without VNNI: up to 4 rows x 8 columns, exact.
//
// vpmaddubsw would add two u8 x s8 products in saturating int16 (255 * 128 * 2 > 32767), so this
// kernel widens instead: weight bytes zero-extended to int16 (vpmovzxbw), the 4 activation bytes
// sign-extended to int16 and broadcast, then vpmaddwd adds pairs of int16 products into int32
// exactly. Each int32 lane holds half of a column's group sum; the halves are added at the end.
#pragma once

#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/gemm/detail/layout.hpp>
#include <masquant/gemm/detail/target.hpp>
#include <masquant/gemm/detail/tile.hpp>

#if MASQUANT_GEMM_HAVE_AVX2

namespace masquant::detail::gemm {

struct avx2_kernel {
  static constexpr index_t tile_cols = 8;
  static constexpr int max_rows = 4;
  static constexpr bool streams_output = false;  // ignores tile_args::stream
  static constexpr int row_blocks = 1;           // no multi-block row kernel

  static void run(int rows, bool int4, const tile_args& t) noexcept {
    switch (rows) {
      case 1:
        return int4 ? tile<1, true>(t) : tile<1, false>(t);
      case 2:
        return int4 ? tile<2, true>(t) : tile<2, false>(t);
      case 3:
        return int4 ? tile<3, true>(t) : tile<3, false>(t);
      default:
        return int4 ? tile<4, true>(t) : tile<4, false>(t);
    }
  }

  /// sum_k a[k]: vpmaddubsw with unsigned ones (pairs fit int16), then vpmaddwd into int32.
  MASQUANT_GEMM_TARGET_AVX2 static std::int32_t row_sum(const std::int8_t* a, index_t k) noexcept {
    const __m256i ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
    __m256i s = _mm256_setzero_si256();
    index_t i = 0;
    for (; i + 32 <= k; i += 32) {
      const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i));
      s = _mm256_add_epi32(s, _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, x), ones16));
    }
    alignas(32) std::int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
    std::int32_t total = 0;
    for (std::int32_t v : lanes) total += v;
    for (; i < k; ++i) total += a[i];
    return total;
  }

  template <int R, bool Int4>
  MASQUANT_GEMM_TARGET_AVX2 static void tile(const tile_args& t) noexcept {
    // acc[r][0]: columns 0..3, acc[r][1]: columns 4..7, two int32 lanes per column.
    __m256i acc[R][2];
#pragma GCC unroll 4
    for (index_t r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    constexpr index_t step_k = Int4 ? step_k_int4 : step_k_int8;
    const index_t steps = t.k / step_k, tail = t.k % step_k;
    const index_t lda = t.lda;
    // The partial step at the end of K goes first (see the AVX-512 kernel).
    if (tail != 0) {
      const std::int8_t* a = t.a + steps * step_k;
      std::int32_t lo[R], hi[R];
      for (index_t r = 0; r < R; ++r) {
        lo[r] = load4_partial(a + r * lda, tail);
        hi[r] = load4_partial(a + r * lda + 4, tail - 4);
      }
      step<R, Int4>(acc, t.b + steps * step_bytes, lo, hi);
    }
    const std::int8_t* a = t.a;
    const std::uint8_t* b = t.b;
    for (index_t s = 0; s < steps; ++s, a += step_k, b += step_bytes) {
      std::int32_t lo[R], hi[R];
#pragma GCC unroll 4
      for (index_t r = 0; r < R; ++r) {
        lo[r] = load4(a + r * lda);
        if constexpr (Int4) hi[r] = load4(a + r * lda + 4);
      }
      step<R, Int4>(acc, b, lo, hi);
    }
    // hadd gives (c0 c1 c4 c5 | c2 c3 c6 c7); the permutation restores column order.
    const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
    alignas(32) std::int32_t out[R][8];
#pragma GCC unroll 4
    for (index_t r = 0; r < R; ++r) {
      const __m256i x = _mm256_permutevar8x32_epi32(_mm256_hadd_epi32(acc[r][0], acc[r][1]), order);
      _mm256_store_si256(reinterpret_cast<__m256i*>(out[r]), x);
    }
    finish<R>(t, out);
  }

 private:
  MASQUANT_GEMM_TARGET_AVX2 static inline __attribute__((always_inline)) __m128i load16(
      const std::uint8_t* p) noexcept {
    return _mm_load_si128(reinterpret_cast<const __m128i*>(p));
  }

  // One step: 4 k of int8 weights times lo[r], or 8 k of int4 weights (low nibbles times lo[r],
  // high nibbles times hi[r]). The activation bytes go to int16 (a0 a1 a2 a3 repeated).
  template <int R, bool Int4>
  MASQUANT_GEMM_TARGET_AVX2 static inline __attribute__((always_inline)) void step(
      __m256i (&acc)[R][2], const std::uint8_t* b, const std::int32_t* lo,
      const std::int32_t* hi) noexcept {
    const __m128i p0 = load16(b), p1 = load16(b + 16);
    const __m128i low = _mm_set1_epi8(0x0F);
    {
      const __m256i w0 = _mm256_cvtepu8_epi16(Int4 ? _mm_and_si128(p0, low) : p0);
      const __m256i w1 = _mm256_cvtepu8_epi16(Int4 ? _mm_and_si128(p1, low) : p1);
      madd<R>(acc, w0, w1, lo);
    }
    if constexpr (Int4) {
      const __m256i w0 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(p0, 4), low));
      const __m256i w1 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(p1, 4), low));
      madd<R>(acc, w0, w1, hi);
    }
  }

  template <int R>
  MASQUANT_GEMM_TARGET_AVX2 static inline __attribute__((always_inline)) void madd(
      __m256i (&acc)[R][2], __m256i w0, __m256i w1, const std::int32_t* x) noexcept {
#pragma GCC unroll 4
    for (index_t r = 0; r < R; ++r) {
      const __m256i xr = _mm256_cvtepi8_epi16(_mm_set1_epi32(x[r]));
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(w0, xr));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(w1, xr));
    }
  }

  template <int R>
  MASQUANT_GEMM_TARGET_AVX2 static inline __attribute__((always_inline)) void finish(
      const tile_args& t, std::int32_t (*acc)[8]) noexcept {
    for (index_t r = 0; r < R; ++r) {
      __m256i x = _mm256_load_si256(reinterpret_cast<const __m256i*>(acc[r]));
      if (t.acc_in != nullptr) {
        x = _mm256_add_epi32(
            x, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t.acc_in + r * 8)));
      }
      if (t.acc_out != nullptr || t.cols < 8) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(acc[r]), x);
        finish_row_scalar(t, r, acc[r], 8);
        continue;
      }
      x = _mm256_sub_epi32(x, _mm256_set1_epi32(t.row_corr[r]));
      if (t.c_int != nullptr) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(t.c_int + r * t.ldc), x);
        continue;
      }
      const __m256 scale = _mm256_mul_ps(_mm256_set1_ps(t.a_scale[r]), _mm256_loadu_ps(t.b_scale));
      __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(x), scale);
      if (t.bias != nullptr) y = _mm256_add_ps(y, _mm256_loadu_ps(t.bias));
      float* out = t.c + r * t.ldc;
      if (t.accumulate) y = _mm256_add_ps(y, _mm256_loadu_ps(out));
      _mm256_storeu_ps(out, y);
    }
  }
};

}  // namespace masquant::detail::gemm

#endif  // MASQUANT_GEMM_HAVE_AVX2
