// kernel_avx2-inl.hpp: the avx2 family's AVX2 micro-kernel without VNNI: up to 4 rows x 8 columns,
// exact.
//
// For int8 weights vpmaddubsw would add two u8 x s8 products in saturating int16
// (255 * 128 * 2 > 32767), so this kernel widens instead: weight bytes zero-extended to int16
// (vpmovzxbw), the 4 activation bytes sign-extended to int16 and broadcast, then vpmaddwd adds
// pairs of int16 products into int32 exactly. int4 nibbles are small enough for vpmaddubsw.
// A single row (decode) runs a whole 64-column block per call (run_row): 8-column tiles would
// read 32 bytes of every 256-byte step, a strided walk that keeps weights far below memory speed.

struct avx2_kernel {
  static constexpr index_t tile_cols = 8;
  static constexpr int max_rows = 4;
  static constexpr int max_rows_int4 = max_rows;
  static constexpr int tile_rows = max_rows;
  static constexpr bool streams_output = false;      // ignores tile_args::stream
  static constexpr int row_blocks = 1;               // run_row: one whole column block per call
  static constexpr double macs_per_second = 5.5e10;  // one Zen 4 core (117 GOPS; Zen 3: 60)

  static void run(int rows, bool int4, const tile_args& t) noexcept {
    switch (rows) {
      case 1:
        return int4 ? tile4<1>(t) : tile8<1>(t);
      case 2:
        return int4 ? tile4<2>(t) : tile8<2>(t);
      case 3:
        return int4 ? tile4<3>(t) : tile8<3>(t);
      default:
        return int4 ? tile4<4>(t) : tile8<4>(t);
    }
  }

  /// sum_k a[k]: vpmaddubsw with unsigned ones (pairs fit int16), then vpmaddwd into int32.
  static std::int32_t row_sum(const std::int8_t* a, index_t k) noexcept {
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

  /// One activation row against one whole 64-column block (t[0]; `blocks` is 1).
  static void run_row(bool int4, const tile_args* t, [[maybe_unused]] int blocks) noexcept {
    MASQUANT_ASSERT(blocks == 1);
    return int4 ? row4(*t) : row8(*t);
  }

 private:
  // int8 weights, R rows x 8 columns. acc[r][0]: columns 0..3, acc[r][1]: columns 4..7, two
  // int32 lanes per column, added at the end.
  template <int R>
  __attribute__((noinline)) static void tile8(const tile_args& t) noexcept {
    __m256i acc[std::size_t{R}][2];
#pragma GCC unroll 4
    for (index_t r = 0; r < R; ++r) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    const index_t steps = t.k / step_k_int8, tail = t.k % step_k_int8;
    const index_t lda = t.lda;
    // The partial step at the end of K goes first (see the AVX-512 kernel).
    if (tail != 0) {
      std::int32_t x[std::size_t{R}];
      for (index_t r = 0; r < R; ++r)
        x[r] = load4_partial(t.a + steps * step_k_int8 + r * lda, tail);
      step8<R>(acc, t.b + steps * step_bytes, x);
    }
    const std::int8_t* a = t.a;
    const std::uint8_t* b = t.b;
    for (index_t s = 0; s < steps; ++s, a += step_k_int8, b += step_bytes) {
      std::int32_t x[std::size_t{R}];
#pragma GCC unroll 4
      for (index_t r = 0; r < R; ++r) x[r] = load4(a + r * lda);
      step8<R>(acc, b, x);
    }
    alignas(32) std::int32_t out[std::size_t{R}][8];
#pragma GCC unroll 4
    for (index_t r = 0; r < R; ++r) {
      _mm256_store_si256(reinterpret_cast<__m256i*>(out[r]),
                         column_order(_mm256_hadd_epi32(acc[r][0], acc[r][1])));
    }
    finish<R>(t, out);
  }

  // One step of 4 k: the activation bytes go to int16 (a0 a1 a2 a3 repeated).
  template <int R>
  static inline __attribute__((always_inline)) void step8(__m256i (&acc)[std::size_t{R}][2],
                                                          const std::uint8_t* b,
                                                          const std::int32_t* x) noexcept {
    const __m256i w0 = _mm256_cvtepu8_epi16(load16(b));
    const __m256i w1 = _mm256_cvtepu8_epi16(load16(b + 16));
#pragma GCC unroll 4
    for (index_t r = 0; r < R; ++r) {
      const __m256i xr = _mm256_cvtepi8_epi16(_mm_set1_epi32(x[r]));
      acc[r][0] = _mm256_add_epi32(acc[r][0], _mm256_madd_epi16(w0, xr));
      acc[r][1] = _mm256_add_epi32(acc[r][1], _mm256_madd_epi16(w1, xr));
    }
  }

  // int8 weights, one row x 64 columns: columns 8g..8g+7 accumulate in acc[g], the two halves
  // of each column added in the loop (vphaddd), so 8 accumulators fit the 16 ymm registers.
  __attribute__((noinline)) static void row8(const tile_args& t) noexcept {
    __m256i acc[8];
#pragma GCC unroll 8
    for (index_t g = 0; g < 8; ++g) acc[g] = _mm256_setzero_si256();
    const index_t steps = t.k / step_k_int8, tail = t.k % step_k_int8;
    if (tail != 0)
      row_step8(acc, t.b + steps * step_bytes, load4_partial(t.a + steps * step_k_int8, tail));
    const std::int8_t* a = t.a;
    const std::uint8_t* b = t.b;
    for (index_t s = 0; s < steps; ++s, a += step_k_int8, b += step_bytes)
      row_step8(acc, b, load4(a));
#pragma GCC unroll 8
    for (index_t g = 0; g < 8; ++g) acc[g] = column_order(acc[g]);
    finish_row(t, acc);
  }

  static inline __attribute__((always_inline)) void row_step8(__m256i (&acc)[8],
                                                              const std::uint8_t* b,
                                                              std::int32_t x) noexcept {
    const __m256i xr = _mm256_cvtepi8_epi16(_mm_set1_epi32(x));
#pragma GCC unroll 8
    for (index_t g = 0; g < 8; ++g) {
      const __m256i p0 = _mm256_madd_epi16(_mm256_cvtepu8_epi16(load16(b + 32 * g)), xr);
      const __m256i p1 = _mm256_madd_epi16(_mm256_cvtepu8_epi16(load16(b + 32 * g + 16)), xr);
      acc[g] = _mm256_add_epi32(acc[g], _mm256_hadd_epi32(p0, p1));
    }
  }

  // int4 weights, R rows x 8 columns. Nibbles (0..15) times int8 activations cannot saturate
  // vpmaddubsw's int16 pair sums (2 * 15 * 128 = 3840, and 7680 for the low and high nibble
  // products added), so each 32-byte step of the tile is 8 whole column sums after one
  // vpmaddwd with ones: no widening, lanes already in column order.
  template <int R>
  __attribute__((noinline)) static void tile4(const tile_args& t) noexcept {
    __m256i acc[std::size_t{R}];
#pragma GCC unroll 4
    for (index_t r = 0; r < R; ++r) acc[r] = _mm256_setzero_si256();
    const index_t steps = t.k / step_k_int4, tail = t.k % step_k_int4;
    const index_t lda = t.lda;
    if (tail != 0) {
      const std::int8_t* a = t.a + steps * step_k_int4;
      std::int32_t lo[std::size_t{R}], hi[std::size_t{R}];
      for (index_t r = 0; r < R; ++r) {
        lo[r] = load4_partial(a + r * lda, tail);
        hi[r] = load4_partial(a + r * lda + 4, tail - 4);
      }
      step4<R>(acc, t.b + steps * step_bytes, lo, hi);
    }
    const std::int8_t* a = t.a;
    const std::uint8_t* b = t.b;
    for (index_t s = 0; s < steps; ++s, a += step_k_int4, b += step_bytes) {
      std::int32_t lo[std::size_t{R}], hi[std::size_t{R}];
#pragma GCC unroll 4
      for (index_t r = 0; r < R; ++r) {
        lo[r] = load4(a + r * lda);
        hi[r] = load4(a + r * lda + 4);
      }
      step4<R>(acc, b, lo, hi);
    }
    alignas(32) std::int32_t out[std::size_t{R}][8];
#pragma GCC unroll 4
    for (index_t r = 0; r < R; ++r) _mm256_store_si256(reinterpret_cast<__m256i*>(out[r]), acc[r]);
    finish<R>(t, out);
  }

  template <int R>
  static inline __attribute__((always_inline)) void step4(__m256i (&acc)[std::size_t{R}],
                                                          const std::uint8_t* b,
                                                          const std::int32_t* lo,
                                                          const std::int32_t* hi) noexcept {
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i wl = _mm256_and_si256(w, low);
    const __m256i wh = _mm256_and_si256(_mm256_srli_epi16(w, 4), low);
#pragma GCC unroll 4
    for (index_t r = 0; r < R; ++r) {
      acc[r] = _mm256_add_epi32(
          acc[r], nibble_sums(wl, wh, _mm256_set1_epi32(lo[r]), _mm256_set1_epi32(hi[r])));
    }
  }

  // int4 weights, one row x 64 columns: eight 8-column accumulators, as tile4 computes them.
  __attribute__((noinline)) static void row4(const tile_args& t) noexcept {
    __m256i acc[8];
#pragma GCC unroll 8
    for (index_t g = 0; g < 8; ++g) acc[g] = _mm256_setzero_si256();
    const index_t steps = t.k / step_k_int4, tail = t.k % step_k_int4;
    if (tail != 0) {
      const std::int8_t* a = t.a + steps * step_k_int4;
      row_step4(acc, t.b + steps * step_bytes, load4_partial(a, tail),
                load4_partial(a + 4, tail - 4));
    }
    const std::int8_t* a = t.a;
    const std::uint8_t* b = t.b;
    for (index_t s = 0; s < steps; ++s, a += step_k_int4, b += step_bytes)
      row_step4(acc, b, load4(a), load4(a + 4));
    finish_row(t, acc);
  }

  static inline __attribute__((always_inline)) void row_step4(__m256i (&acc)[8],
                                                              const std::uint8_t* b,
                                                              std::int32_t lo,
                                                              std::int32_t hi) noexcept {
    const __m256i low = _mm256_set1_epi8(0x0F);
    const __m256i xl = _mm256_set1_epi32(lo), xh = _mm256_set1_epi32(hi);
#pragma GCC unroll 8
    for (index_t g = 0; g < 8; ++g) {
      const __m256i w = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 32 * g));
      const __m256i wl = _mm256_and_si256(w, low);
      const __m256i wh = _mm256_and_si256(_mm256_srli_epi16(w, 4), low);
      acc[g] = _mm256_add_epi32(acc[g], nibble_sums(wl, wh, xl, xh));
    }
  }

  // The 8 column sums of one int4 step: low nibbles times the activation bytes xl, high
  // nibbles times xh (4 bytes broadcast), pairs in int16 (exact, see tile4), then int32.
  static inline __attribute__((always_inline)) __m256i nibble_sums(__m256i wl, __m256i wh,
                                                                   __m256i xl,
                                                                   __m256i xh) noexcept {
    const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(wl, xl), _mm256_maddubs_epi16(wh, xh));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
  }

  // The 64 column sums of a row (acc[g]: columns 8g..8g+7, in order) through the epilogue.
  static inline __attribute__((always_inline)) void finish_row(const tile_args& t,
                                                               const __m256i (&acc)[8]) noexcept {
    alignas(32) std::int32_t out[8][8];
#pragma GCC unroll 8
    for (index_t g = 0; g < 8; ++g) _mm256_store_si256(reinterpret_cast<__m256i*>(out[g]), acc[g]);
    for (index_t g = 0; g < 8 && 8 * g < t.cols; ++g) finish<1>(column_slice(t, 8 * g, 8), out + g);
  }

  // hadd of (columns 0..3, columns 4..7) gives (c0 c1 c4 c5 | c2 c3 c6 c7): back to column order.
  static inline __attribute__((always_inline)) __m256i column_order(__m256i x) noexcept {
    return _mm256_permutevar8x32_epi32(x, _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7));
  }

  static inline __attribute__((always_inline)) __m128i load16(const std::uint8_t* p) noexcept {
    return _mm_load_si128(reinterpret_cast<const __m128i*>(p));
  }

  template <int R>
  static inline __attribute__((always_inline)) void finish(const tile_args& t,
                                                           std::int32_t (*acc)[8]) noexcept {
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
