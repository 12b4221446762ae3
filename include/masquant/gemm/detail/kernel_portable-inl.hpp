// kernel_portable-inl.hpp: the portable family's plain C++ micro-kernel (any CPU); 64 columns x up
// to 4 rows.

/// Accumulates in uint32 (modular, so no signed overflow whatever the unsigned weight bytes
/// sum to); the zero-point correction in the epilogue makes the result exact.
struct portable_kernel {
  static constexpr index_t tile_cols = 64;
  static constexpr int max_rows = 4;
  static constexpr int max_rows_int4 = max_rows;
  static constexpr int tile_rows = max_rows;
  static constexpr bool streams_output = false;   // ignores tile_args::stream
  static constexpr int row_blocks = 0;            // no run_row
  static constexpr double macs_per_second = 5e9;  // one core, as the compiler vectorises it

  static std::int32_t row_sum(const std::int8_t* a, index_t k) noexcept {
    std::int32_t s = 0;
    for (index_t i = 0; i < k; ++i) s += a[i];
    return s;
  }

  static void run(int rows, bool int4, const tile_args& t) noexcept {
    std::uint32_t acc[max_rows][tile_cols] = {};
    const std::uint8_t* b = t.b;
    if (!int4) {
      for (index_t k0 = 0; k0 < t.k; k0 += 4, b += step_bytes) {
        for (index_t r = 0; r < rows; ++r)
          group(acc[r], t.a + r * t.lda + k0, t.k - k0, b, 0, 0xFFu);
      }
    } else {
      for (index_t k0 = 0; k0 < t.k; k0 += 8, b += step_bytes) {
        for (index_t r = 0; r < rows; ++r) {
          group(acc[r], t.a + r * t.lda + k0, t.k - k0, b, 0, 0x0Fu);
          if (t.k - k0 > 4) group(acc[r], t.a + r * t.lda + k0 + 4, t.k - k0 - 4, b, 4, 0x0Fu);
        }
      }
    }
    for (index_t r = 0; r < rows; ++r) {
      std::int32_t row[tile_cols];
      for (index_t c = 0; c < tile_cols; ++c) {
        std::uint32_t v = acc[r][c];
        if (t.acc_in != nullptr) v += static_cast<std::uint32_t>(t.acc_in[r * tile_cols + c]);
        row[c] = static_cast<std::int32_t>(v);
      }
      finish_row_scalar(t, r, row, tile_cols);
    }
  }

 private:
  // One group of 4 k (fewer at the end of K): (shift 0, mask 0xFF) reads int8 bytes, (0, 0x0F)
  // the low nibbles of an int4 step, (4, 0x0F) its high nibbles.
  static void group(std::uint32_t* acc, const std::int8_t* a, index_t remaining,
                    const std::uint8_t* b, int shift, std::uint32_t mask) noexcept {
    std::int8_t av[4] = {0, 0, 0, 0};
    for (index_t t = 0; t < 4 && t < remaining; ++t) av[t] = a[t];
    // Sign-extend, then wrap to uint32: a * byte is then the product modulo 2^32.
    const auto widen = [](std::int8_t v) {
      return static_cast<std::uint32_t>(static_cast<std::int32_t>(v));
    };
    const std::uint32_t a0 = widen(av[0]), a1 = widen(av[1]), a2 = widen(av[2]), a3 = widen(av[3]);
    for (index_t c = 0; c < tile_cols; ++c) {
      const std::uint8_t* p = b + c * 4;
      acc[c] += a0 * ((p[0] >> shift) & mask) + a1 * ((p[1] >> shift) & mask) +
                a2 * ((p[2] >> shift) & mask) + a3 * ((p[3] >> shift) & mask);
    }
  }
};
