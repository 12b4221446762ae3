// kernel_avx512_vnni-inl.hpp: the avx512 family's zmm vpdpbusd micro-kernel: up to 7 rows x 64
// columns.
//
// Register block: 6 rows x 4 zmm of 16 int32 columns = 24 accumulators, 4 weight vectors and one
// broadcast. Per step of 4 k it loads 256 weight bytes (one column block step, contiguous) and
// broadcasts 4 activation bytes per row: the weight bytes are the unsigned operand of vpdpbusd,
// the activations the signed one. A task of 7 rows of int8 weights (a short prompt) runs as one
// tile of 7 x 4 zmm = 28 accumulators, its activation bytes read as embedded broadcasts
// ({1to16}) so that no register holds them: one pass over the weights instead of a tile of 6 and
// a tile of 1 that each stream them. int4 weights are unpacked in registers (and, shift) so a
// decode step streams half the bytes. A single row (decode) runs up to four column blocks at
// once (run_row), so that four weight streams are in flight.

struct avx512_vnni_kernel {
  static constexpr index_t tile_cols = 64;
  static constexpr int max_rows = 7;       // a task of up to 7 rows is one tile: one weight pass
  static constexpr int max_rows_int4 = 6;  // int4: half the stream, multiplying is the limit
  static constexpr int tile_rows = 6;      // rows per tile when a task needs several
  static constexpr int row_blocks = 4;     // column blocks run_row takes at once
  static constexpr bool streams_output = true;       // honours tile_args::stream
  static constexpr double macs_per_second = 4.0e11;  // one core (Zen 5; Zen 4 about half)

  /// Orders this thread's non-temporal output stores before what follows (the end of a task).
  static void stream_fence() noexcept { _mm_sfence(); }

  static void run(int rows, bool int4, const tile_args& t) noexcept {
    switch (rows) {
      case 1:
        return int4 ? tile<1, 1, true>(&t) : tile<1, 1, false>(&t);
      case 2:
        return int4 ? tile<2, 1, true>(&t) : tile<2, 1, false>(&t);
      case 3:
        return int4 ? tile<3, 1, true>(&t) : tile<3, 1, false>(&t);
      case 4:
        return int4 ? tile<4, 1, true>(&t) : tile<4, 1, false>(&t);
      case 5:
        return int4 ? tile<5, 1, true>(&t) : tile<5, 1, false>(&t);
      case 6:
        return int4 ? tile<6, 1, true>(&t) : tile<6, 1, false>(&t);
      default:  // 7: int8 weights only (max_rows_int4)
        return tile<7, 1, false>(&t);
    }
  }

  /// One activation row against `blocks` (1..row_blocks) column tiles at once, t[0..blocks)
  /// sharing a and k. Decode streams weights from memory, and one core of this machine reads
  /// four streams ~1.3x faster than one: a tile at a time is one stream.
  static void run_row(bool int4, const tile_args* t, int blocks) noexcept {
    switch (blocks) {
      case 1:
        return int4 ? tile<1, 1, true>(t) : tile<1, 1, false>(t);
      case 2:
        return int4 ? tile<1, 2, true>(t) : tile<1, 2, false>(t);
      case 3:
        return int4 ? tile<1, 3, true>(t) : tile<1, 3, false>(t);
      default:
        return int4 ? tile<1, 4, true>(t) : tile<1, 4, false>(t);
    }
  }

  /// sum_k a[k] (vpdpbusd with unsigned ones: 64 bytes per instruction).
  static std::int32_t row_sum(const std::int8_t* a, index_t k) noexcept {
    const __m512i ones = _mm512_set1_epi8(1);
    __m512i s0 = _mm512_setzero_si512(), s1 = _mm512_setzero_si512();
    index_t i = 0;
    for (; i + 128 <= k; i += 128) {
      s0 = _mm512_dpbusd_epi32(s0, ones, _mm512_loadu_si512(a + i));
      s1 = _mm512_dpbusd_epi32(s1, ones, _mm512_loadu_si512(a + i + 64));
    }
    for (; i < k; i += 64) {
      const index_t n = k - i;
      const auto mask = n >= 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
      s0 = _mm512_dpbusd_epi32(s0, ones, _mm512_maskz_loadu_epi8(mask, a + i));
    }
    // Through memory: GCC 12 warns about the undefined operands of _mm512_reduce_add_epi32.
    alignas(64) std::int32_t lanes[16];
    _mm512_store_si512(lanes, _mm512_add_epi32(s0, s1));
    std::int32_t total = 0;
    for (std::int32_t v : lanes) total += v;
    return total;
  }

  /// R rows (of t[0].a, stride t[0].lda) against NB column tiles t[0..NB) sharing a and k:
  /// R · NB <= 7, i.e. at most 28 accumulators (7 x 1 for M > 1, 1 x 1..4 for decode).
  template <int R, int NB, bool Int4>
  __attribute__((noinline)) static void tile(const tile_args* t) noexcept {
    static_assert(R * NB <= 7);
    __m512i acc[std::size_t{NB}][std::size_t{R}][4];
#pragma GCC unroll 4
    for (index_t j = 0; j < NB; ++j) {
#pragma GCC unroll 8
      for (index_t r = 0; r < R; ++r) {
#pragma GCC unroll 4
        for (index_t v = 0; v < 4; ++v) acc[j][r][v] = _mm512_setzero_si512();
      }
    }
    constexpr index_t step_k = Int4 ? step_k_int4 : step_k_int8;
    const index_t steps = t[0].k / step_k, tail = t[0].k % step_k;
    const index_t lda = t[0].lda;
    const std::uint8_t* b[std::size_t{NB}];
    for (index_t j = 0; j < NB; ++j) b[j] = t[j].b;
    // The partial step at the end of K goes first: after the hot loop, GCC 12 would keep the
    // accumulators on the stack through the loop. Its bytes are copied, zero-filled, to a row
    // of 8 (a step of int4) so that the loads never pass the end of a row.
    if (tail != 0) {
      const std::int8_t* a = t[0].a + steps * step_k;
      std::int8_t part[std::size_t{R}][8] = {};
      for (index_t r = 0; r < R; ++r)
        std::memcpy(part[r], a + r * lda, static_cast<std::size_t>(tail));
#pragma GCC unroll 4
      for (index_t j = 0; j < NB; ++j) step<R, Int4>(acc[j], b[j] + steps * step_bytes, part[0], 8);
    }
    const std::int8_t* a = t[0].a;
    for (index_t s = 0; s < steps; ++s, a += step_k) {
#pragma GCC unroll 4
      for (index_t j = 0; j < NB; ++j) step<R, Int4>(acc[j], b[j] + s * step_bytes, a, lda);
    }
    alignas(64) std::int32_t out[std::size_t{NB}][std::size_t{R}][64];
#pragma GCC unroll 4
    for (index_t j = 0; j < NB; ++j) {
#pragma GCC unroll 8
      for (index_t r = 0; r < R; ++r) {
#pragma GCC unroll 4
        for (index_t v = 0; v < 4; ++v) _mm512_store_si512(out[j][r] + 16 * v, acc[j][r][v]);
      }
    }
    for (index_t j = 0; j < NB; ++j) finish<R>(t[j], out[j]);
  }

 private:
  // acc + the byte products of w (unsigned) and the 4 bytes at a (signed), broadcast from memory.
  static inline __attribute__((always_inline)) __m512i madd_broadcast(
      __m512i acc, __m512i w, const std::int8_t* a) noexcept {
    struct bytes4 {
      std::int8_t b[4];
    };
    __asm__("vpdpbusd %2%{1to16%}, %1, %0"
            : "+v"(acc)
            : "v"(w), "m"(*reinterpret_cast<const bytes4*>(a)));
    return acc;
  }

  // One step: 4 k of int8 weights times the 4 bytes at a + r·lda, or 8 k of int4 weights (low
  // nibbles times the first 4 bytes, high nibbles times the next 4). Tiles of up to 6 rows
  // broadcast each row's bytes to a register once per step; a tile of 7 (int8 only) has no
  // register left for them and reads them as embedded broadcasts, one weight vector at a time.
  // Embedded broadcasts cost about 13% when multiplying is the limit (Zen 5), so only a task of
  // 7 rows, whose time is the weight stream, takes that tile.
  template <int R, bool Int4>
  static inline __attribute__((always_inline)) void step(__m512i (&acc)[std::size_t{R}][4],
                                                         const std::uint8_t* b,
                                                         const std::int8_t* a,
                                                         index_t lda) noexcept {
    if constexpr (R == max_rows) {
      static_assert(!Int4);
#pragma GCC unroll 4
      for (index_t v = 0; v < 4; ++v) {
        const __m512i w = _mm512_load_si512(b + 64 * v);
#pragma GCC unroll 8
        for (index_t r = 0; r < R; ++r) acc[r][v] = madd_broadcast(acc[r][v], w, a + r * lda);
      }
    } else {
      __m512i w[4];
#pragma GCC unroll 4
      for (index_t v = 0; v < 4; ++v) w[v] = _mm512_load_si512(b + 64 * v);
      if constexpr (!Int4) {
        madd<R>(acc, w, a, lda);
      } else {
        const __m512i low = _mm512_set1_epi8(0x0F);
        __m512i n[4];
#pragma GCC unroll 4
        for (index_t v = 0; v < 4; ++v) n[v] = _mm512_and_si512(w[v], low);
        madd<R>(acc, n, a, lda);
#pragma GCC unroll 4
        for (index_t v = 0; v < 4; ++v) n[v] = _mm512_and_si512(_mm512_srli_epi16(w[v], 4), low);
        madd<R>(acc, n, a + 4, lda);
      }
    }
  }

  // acc[r][v] + the byte products of w[v] and the 4 bytes at a + r·lda, broadcast to a register.
  template <int R>
  static inline __attribute__((always_inline)) void madd(__m512i (&acc)[std::size_t{R}][4],
                                                         const __m512i* w, const std::int8_t* a,
                                                         index_t lda) noexcept {
#pragma GCC unroll 8
    for (index_t r = 0; r < R; ++r) {
      const __m512i xr = _mm512_set1_epi32(load4(a + r * lda));
#pragma GCC unroll 4
      for (index_t v = 0; v < 4; ++v) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], w[v], xr);
    }
  }

  template <int R>
  static inline __attribute__((always_inline)) void finish(const tile_args& t,
                                                           std::int32_t (*acc)[64]) noexcept {
    finish_rows(t, R, acc);
  }

 public:
  /// Finishes `rows` rows of raw accumulators acc[r][0..64) as tile_args describes (the AMX path
  /// hands its tiles over here too). Works from memory: indexing the accumulator registers in
  /// loops with branches would make GCC keep them on the stack in the hot loop too.
  static inline __attribute__((always_inline)) void finish_rows(const tile_args& t, index_t rows,
                                                                std::int32_t (*acc)[64]) noexcept {
    const index_t R = rows;
    if (t.acc_in != nullptr) {
      for (index_t r = 0; r < R; ++r) {
        for (index_t v = 0; v < 4; ++v) {
          const __m512i x = _mm512_add_epi32(_mm512_load_si512(acc[r] + 16 * v),
                                             _mm512_loadu_si512(t.acc_in + r * 64 + v * 16));
          _mm512_store_si512(acc[r] + 16 * v, x);
        }
      }
    }
    if (t.acc_out != nullptr) {
      for (index_t r = 0; r < R; ++r) {
        for (index_t v = 0; v < 4; ++v) {
          _mm512_storeu_si512(t.acc_out + r * 64 + v * 16, _mm512_load_si512(acc[r] + 16 * v));
        }
      }
      return;
    }
    const auto all = static_cast<__mmask16>(0xFFFF);
    __mmask16 mask[4];
    for (index_t v = 0; v < 4; ++v) {
      const int n = t.cols - 16 * static_cast<int>(v);
      mask[v] = n >= 16 ? all : static_cast<__mmask16>(n > 0 ? (1u << n) - 1u : 0u);
    }
    for (index_t r = 0; r < R; ++r) {
      const __m512i corr = _mm512_set1_epi32(t.row_corr[r]);
      if (t.c_int != nullptr) {
        std::int32_t* out = t.c_int + r * t.ldc;
        for (index_t v = 0; v < 4; ++v) {
          const __m512i x = _mm512_sub_epi32(_mm512_load_si512(acc[r] + 16 * v), corr);
          if (t.stream)
            _mm512_stream_si512(reinterpret_cast<__m512i*>(out + 16 * v), x);
          else
            _mm512_mask_storeu_epi32(out + 16 * v, mask[v], x);
        }
        continue;
      }
      const __m512 as = _mm512_set1_ps(t.a_scale[r]);
      float* out = t.c + r * t.ldc;
      for (index_t v = 0; v < 4; ++v) {
        const __m512 scale = _mm512_mul_ps(as, _mm512_loadu_ps(t.b_scale + 16 * v));
        const __m512i x = _mm512_sub_epi32(_mm512_load_si512(acc[r] + 16 * v), corr);
        // maskz: GCC 12 warns about the undefined pass-through of the unmasked intrinsic.
        __m512 y = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(all, x), scale);
        if (t.bias != nullptr)
          y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask[v], t.bias + 16 * v));
        if (t.accumulate) y = _mm512_add_ps(y, _mm512_maskz_loadu_ps(mask[v], out + 16 * v));
        if (t.stream)
          _mm512_stream_ps(out + 16 * v, y);
        else
          _mm512_mask_storeu_ps(out + 16 * v, mask[v], y);
      }
    }
  }
};
