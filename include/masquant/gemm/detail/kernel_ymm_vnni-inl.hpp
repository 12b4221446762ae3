// kernel_ymm_vnni-inl.hpp: the avx_vnni family's micro-kernel (VEX vpdpbusd on ymm): up to 3
// rows x 32 columns. Family source, included by int8_gemm-inl.hpp.
//
// Written for the 16 ymm registers of AVX-VNNI: 3 rows x 4 ymm of 8 int32 columns = 12
// accumulators, 3 broadcasts and one weight vector. A single row (decode) runs a whole 64-column
// block per call (run_row, 8 accumulators), so the weights are read in order rather than half of
// every 256-byte step at a time.

struct ymm_vnni_kernel {
  static constexpr index_t tile_cols = 32;
  static constexpr int max_rows = 3;
  static constexpr int max_rows_int4 = max_rows;
  static constexpr int tile_rows = max_rows;
  static constexpr bool streams_output = false;      // ignores tile_args::stream
  static constexpr int row_blocks = 1;               // run_row: one whole column block per call
  static constexpr double macs_per_second = 1.8e11;  // one core

  static void run(int rows, bool int4, const tile_args& t) noexcept {
    switch (rows) {
      case 1:
        return int4 ? tile<1, true>(t) : tile<1, false>(t);
      case 2:
        return int4 ? tile<2, true>(t) : tile<2, false>(t);
      default:
        return int4 ? tile<3, true>(t) : tile<3, false>(t);
    }
  }

  /// sum_k a[k] (vpdpbusd with unsigned ones: 32 bytes per instruction).
  static std::int32_t row_sum(const std::int8_t* a, index_t k) noexcept {
    const __m256i ones = _mm256_set1_epi8(1);
    __m256i s = _mm256_setzero_si256();
    index_t i = 0;
    for (; i + 32 <= k; i += 32) {
      s = dot(s, ones, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + i)));
    }
    alignas(32) std::int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), s);
    std::int32_t total = 0;
    for (std::int32_t v : lanes) total += v;
    for (; i < k; ++i) total += a[i];
    return total;
  }

  /// One activation row against one whole 64-column block (t[0]; `blocks` is 1).
  static void run_row(bool int4, const tile_args* t, [[maybe_unused]] int blocks) noexcept {
    MASQUANT_ASSERT(blocks == 1);
    return int4 ? row<true>(*t) : row<false>(*t);
  }

  template <int R, bool Int4>
  __attribute__((noinline)) static void tile(const tile_args& t) noexcept {
    __m256i acc[std::size_t{R}][4];
#pragma GCC unroll 4
    for (index_t r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (index_t v = 0; v < 4; ++v) acc[r][v] = _mm256_setzero_si256();
    }
    constexpr index_t step_k = Int4 ? step_k_int4 : step_k_int8;
    const index_t steps = t.k / step_k, tail = t.k % step_k;
    const index_t lda = t.lda;
    // The partial step at the end of K goes first (see the AVX-512 kernel).
    if (tail != 0) {
      const std::int8_t* a = t.a + steps * step_k;
      std::int32_t lo[std::size_t{R}], hi[std::size_t{R}];
      for (index_t r = 0; r < R; ++r) {
        lo[r] = load4_partial(a + r * lda, tail);
        hi[r] = load4_partial(a + r * lda + 4, tail - 4);
      }
      step<R, Int4>(acc, t.b + steps * step_bytes, lo, hi);
    }
    const std::int8_t* a = t.a;
    const std::uint8_t* b = t.b;
    for (index_t s = 0; s < steps; ++s, a += step_k, b += step_bytes) {
      std::int32_t lo[std::size_t{R}], hi[std::size_t{R}];
#pragma GCC unroll 4
      for (index_t r = 0; r < R; ++r) {
        lo[r] = load4(a + r * lda);
        if constexpr (Int4) hi[r] = load4(a + r * lda + 4);
      }
      step<R, Int4>(acc, b, lo, hi);
    }
    alignas(32) std::int32_t out[std::size_t{R}][32];
#pragma GCC unroll 4
    for (index_t r = 0; r < R; ++r) {
#pragma GCC unroll 4
      for (index_t v = 0; v < 4; ++v) {
        _mm256_store_si256(reinterpret_cast<__m256i*>(out[r] + 8 * v), acc[r][v]);
      }
    }
    finish<R>(t, out);
  }

 private:
  template <bool Int4>
  __attribute__((noinline)) static void row(const tile_args& t) noexcept {
    __m256i acc[8];
#pragma GCC unroll 8
    for (index_t v = 0; v < 8; ++v) acc[v] = _mm256_setzero_si256();
    constexpr index_t step_k = Int4 ? step_k_int4 : step_k_int8;
    const index_t steps = t.k / step_k, tail = t.k % step_k;
    if (tail != 0) {
      const std::int8_t* a = t.a + steps * step_k;
      row_step<Int4>(acc, t.b + steps * step_bytes, load4_partial(a, tail),
                     load4_partial(a + 4, tail - 4));
    }
    const std::int8_t* a = t.a;
    const std::uint8_t* b = t.b;
    for (index_t s = 0; s < steps; ++s, a += step_k, b += step_bytes)
      row_step<Int4>(acc, b, load4(a), Int4 ? load4(a + 4) : 0);
    alignas(32) std::int32_t out[2][32];
#pragma GCC unroll 8
    for (index_t v = 0; v < 8; ++v)
      _mm256_store_si256(reinterpret_cast<__m256i*>(out[v / 4] + 8 * (v % 4)), acc[v]);
    for (index_t h = 0; h < 2 && 32 * h < t.cols; ++h)
      finish<1>(column_slice(t, 32 * h, 32), out + h);
  }

  template <bool Int4>
  static inline __attribute__((always_inline)) void row_step(__m256i (&acc)[8],
                                                             const std::uint8_t* b, std::int32_t lo,
                                                             std::int32_t hi) noexcept {
    const __m256i xl = _mm256_set1_epi32(lo);
    const __m256i low = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 8
    for (index_t v = 0; v < 8; ++v) {
      const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 32 * v));
      if constexpr (!Int4) {
        acc[v] = dot(acc[v], w, xl);
      } else {
        acc[v] = dot(acc[v], _mm256_and_si256(w, low), xl);
        acc[v] = dot(acc[v], _mm256_and_si256(_mm256_srli_epi16(w, 4), low), _mm256_set1_epi32(hi));
      }
    }
  }

  static inline __attribute__((always_inline)) __m256i dot(__m256i acc, __m256i w,
                                                           __m256i x) noexcept {
    return _mm256_dpbusd_avx_epi32(acc, w, x);
  }

  // One step: 4 k of int8 weights times lo[r], or 8 k of int4 weights (low nibbles times lo[r],
  // high nibbles times hi[r]). One weight vector live at a time: 12 accumulators + 3 broadcasts
  // + 1 fit the 16 registers of AVX-VNNI.
  template <int R, bool Int4>
  static inline __attribute__((always_inline)) void step(__m256i (&acc)[std::size_t{R}][4],
                                                         const std::uint8_t* b,
                                                         const std::int32_t* lo,
                                                         const std::int32_t* hi) noexcept {
    __m256i x[std::size_t{R}];
#pragma GCC unroll 4
    for (index_t r = 0; r < R; ++r) x[r] = _mm256_set1_epi32(lo[r]);
    const __m256i low = _mm256_set1_epi8(0x0F);
#pragma GCC unroll 4
    for (index_t v = 0; v < 4; ++v) {
      __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 32 * v));
      if constexpr (Int4) w = _mm256_and_si256(w, low);
#pragma GCC unroll 4
      for (index_t r = 0; r < R; ++r) acc[r][v] = dot(acc[r][v], w, x[r]);
    }
    if constexpr (Int4) {
#pragma GCC unroll 4
      for (index_t r = 0; r < R; ++r) x[r] = _mm256_set1_epi32(hi[r]);
#pragma GCC unroll 4
      for (index_t v = 0; v < 4; ++v) {
        const __m256i p = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 32 * v));
        const __m256i w = _mm256_and_si256(_mm256_srli_epi16(p, 4), low);
#pragma GCC unroll 4
        for (index_t r = 0; r < R; ++r) acc[r][v] = dot(acc[r][v], w, x[r]);
      }
    }
  }

  template <int R>
  static inline __attribute__((always_inline)) void finish(const tile_args& t,
                                                           std::int32_t (*acc)[32]) noexcept {
    for (index_t r = 0; r < R; ++r) {
      if (t.acc_in != nullptr) {
        for (index_t c = 0; c < 32; ++c) {  // modular, as the kernel's sums
          acc[r][c] = static_cast<std::int32_t>(static_cast<std::uint32_t>(acc[r][c]) +
                                                static_cast<std::uint32_t>(t.acc_in[r * 32 + c]));
        }
      }
      if (t.acc_out != nullptr || t.cols < 32) {
        finish_row_scalar(t, r, acc[r], 32);
        continue;
      }
      const __m256i corr = _mm256_set1_epi32(t.row_corr[r]);
      for (index_t v = 0; v < 4; ++v) {
        const __m256i x = _mm256_sub_epi32(
            _mm256_load_si256(reinterpret_cast<const __m256i*>(acc[r] + 8 * v)), corr);
        if (t.c_int != nullptr) {
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(t.c_int + r * t.ldc + 8 * v), x);
          continue;
        }
        float* out = t.c + r * t.ldc + 8 * v;
        const __m256 scale =
            _mm256_mul_ps(_mm256_set1_ps(t.a_scale[r]), _mm256_loadu_ps(t.b_scale + 8 * v));
        __m256 y = _mm256_mul_ps(_mm256_cvtepi32_ps(x), scale);
        if (t.bias != nullptr) y = _mm256_add_ps(y, _mm256_loadu_ps(t.bias + 8 * v));
        if (t.accumulate) y = _mm256_add_ps(y, _mm256_loadu_ps(out));
        _mm256_storeu_ps(out, y);
      }
    }
  }
};
