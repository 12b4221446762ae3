// kernel_avx512_amx-inl.hpp: the avx512 family's AMX path for INT8 weights (tdpbsud on tiles of
// 16 rows x 64 bytes), taken at run time where the CPU has AMX-INT8 and the OS grants the tile
// state (amx_int8_ready).
//
// Tiles: four accumulators C (16 rows x the 64 columns of a column block, as 4 x 16 int32), one
// activation tile A (16 rows x 64 k) and three weight tiles B (16 steps of 4 k x 16 columns; the
// fourth column group reuses the first B tile once its product has read it). B is read from the
// packed weights in place: a step of a column block is 64 columns x 4 k = 256 bytes, so 16
// columns of 16 consecutive steps are 16 rows of 64 bytes at a stride of 256, the shape tileloadd
// reads; a k step takes the block's 1024 bytes in order, so the weights stream as they lie (a 2 x 2
// tile block of 32 rows x 32 columns, reading each step in two halves, measured 10-50% slower at
// M <= 300 and on long K). The activations are the signed operand and the weight bytes (zero
// point 128) the unsigned one, as in the vpdpbusd kernel: the same modular int32 sums, finished by
// the same epilogue, so the outputs are bit for bit those of the vpdpbusd kernel. K runs in passes
// of kc over up to 96 rows of the task (the block's weights of a pass stay in L2 for its row
// tiles), the int32 sums waiting in a workspace between passes. The instructions are inline
// assembly: no compiler target attribute is needed, and the family's code stays what it is on
// CPUs without AMX.

// Macros: a tile register must be a literal in the instruction text.
#define MASQUANT_AMX_LOAD(tmm, base, stride) \
  __asm__ volatile("tileloadd (%0,%1,1), %%tmm" #tmm ::"r"(base), "r"(stride) : "memory")
#define MASQUANT_AMX_STORE(tmm, base, stride) \
  __asm__ volatile("tilestored %%tmm" #tmm ", (%0,%1,1)" ::"r"(base), "r"(stride) : "memory")
#define MASQUANT_AMX_ZERO(tmm) __asm__ volatile("tilezero %%tmm" #tmm ::: "memory")
#define MASQUANT_AMX_DP(c, a, b) \
  __asm__ volatile("tdpbsud %%tmm" #b ", %%tmm" #a ", %%tmm" #c ::: "memory")

struct avx512_amx_path {
  // k per pass: fewer passes (reloads of the accumulator tiles) measured faster than a smaller
  // working set, on K = 3584 and 18944 (docs/performance.md).
  static constexpr index_t kc = 8192;

  /// INT8 weights, K in whole tiles (64, and not 0) and more than one row (a single row streams
  /// its weights through the vpdpbusd kernel's run_row at memory speed); otherwise vpdpbusd runs.
  static bool usable(const problem& p) noexcept {
    return !p.int4 && p.k > 0 && p.k % 64 == 0 && p.m >= 2 && amx_int8_ready();
  }

  /// Rows [m0, m0 + rows) x column blocks [cb0, cb1) of p, as run_task's tiles would compute them.
  static void run_task(const problem& p, index_t m0, index_t rows, index_t cb0, index_t cb1,
                       const std::int32_t* row_corr, bool stream) noexcept {
    // The sums of up to chunk_rows rows x one column block: as small as the vpdpbusd kernel's
    // workspace, for engines whose threads have small stacks.
    constexpr index_t chunk_rows = task_rows_max_split;
    static_assert(chunk_rows % 16 == 0 && workspace_cols == block_cols);
    alignas(64) std::int32_t acc[chunk_rows][workspace_cols];
    int configured = -1;  // rows of the tiles as last configured
    for (index_t c0 = 0; c0 < rows; c0 += chunk_rows) {
      const index_t chunk = std::min(chunk_rows, rows - c0);
      const std::int8_t* a_chunk = p.a + (m0 + c0) * p.lda;
      for (index_t cb = cb0; cb < cb1; ++cb) {
        const index_t n0 = cb * block_cols;
        const std::uint8_t* block = p.b + cb * p.block_bytes;
        for (index_t k0 = 0; k0 < p.k; k0 += kc) {
          const index_t kn = std::min(kc, p.k - k0);
          const std::uint8_t* b = block + (k0 / step_k_int8) * step_bytes;
          for (index_t r0 = 0; r0 < chunk; r0 += 16) {
            const auto tile_rows = static_cast<int>(std::min<index_t>(16, chunk - r0));
            if (tile_rows != configured) {
              configure(tile_rows);  // zeroes every tile
              configured = tile_rows;
            }
            pass(a_chunk + r0 * p.lda + k0, p.lda, b, kn, acc[r0], k0 == 0);
          }
        }
        const index_t cols = std::min(block_cols, p.n - n0);
        tile_args t = epilogue_args(p, m0 + c0, n0, cols, row_corr + c0);
        t.stream = stream && cols == block_cols;
        finish(t, chunk, acc);
      }
    }
    __asm__ volatile("tilerelease" ::: "memory");
  }

 private:
  struct alignas(64) tile_config {
    std::uint8_t palette = 1;
    std::uint8_t start_row = 0;
    std::uint8_t reserved[14] = {};
    std::uint16_t colsb[16] = {};
    std::uint8_t rows[16] = {};
  };
  static_assert(sizeof(tile_config) == 64);

  // Tiles 0-3: C of `rows` rows x 64 columns; 4: A of `rows` rows; 5-7: B.
  static void configure(int rows) noexcept {
    tile_config cfg;
    for (int tile : {0, 1, 2, 3, 4}) {
      cfg.rows[tile] = static_cast<std::uint8_t>(rows);
      cfg.colsb[tile] = 64;
    }
    for (int tile : {5, 6, 7}) {
      cfg.rows[tile] = 16;
      cfg.colsb[tile] = 64;
    }
    __asm__ volatile("ldtilecfg %0" ::"m"(cfg) : "memory");
  }

  // One pass of kn k (a multiple of 64) over up to 16 rows x the 64 columns of a block; the sums
  // of earlier passes are read from c (rows of 64 int32) unless `first`, and the new ones stored
  // there.
  static void pass(const std::int8_t* a, index_t lda, const std::uint8_t* b, index_t kn,
                   std::int32_t* c, bool first) noexcept {
    const long ldc_bytes = long{workspace_cols} * 4, ldb = step_bytes, la = lda;
    if (first) {
      MASQUANT_AMX_ZERO(0);
      MASQUANT_AMX_ZERO(1);
      MASQUANT_AMX_ZERO(2);
      MASQUANT_AMX_ZERO(3);
    } else {
      MASQUANT_AMX_LOAD(0, c, ldc_bytes);
      MASQUANT_AMX_LOAD(1, c + 16, ldc_bytes);
      MASQUANT_AMX_LOAD(2, c + 32, ldc_bytes);
      MASQUANT_AMX_LOAD(3, c + 48, ldc_bytes);
    }
    for (index_t k = 0; k < kn; k += 64) {
      const std::uint8_t* bk = b + (k / step_k_int8) * step_bytes;
      MASQUANT_AMX_LOAD(4, a + k, la);
      MASQUANT_AMX_LOAD(5, bk, ldb);
      MASQUANT_AMX_LOAD(6, bk + 64, ldb);
      MASQUANT_AMX_LOAD(7, bk + 128, ldb);
      MASQUANT_AMX_DP(0, 4, 5);
      MASQUANT_AMX_DP(1, 4, 6);
      MASQUANT_AMX_DP(2, 4, 7);
      MASQUANT_AMX_LOAD(5, bk + 192, ldb);
      MASQUANT_AMX_DP(3, 4, 5);
    }
    MASQUANT_AMX_STORE(0, c, ldc_bytes);
    MASQUANT_AMX_STORE(1, c + 16, ldc_bytes);
    MASQUANT_AMX_STORE(2, c + 32, ldc_bytes);
    MASQUANT_AMX_STORE(3, c + 48, ldc_bytes);
  }

  __attribute__((noinline)) static void finish(const tile_args& t, index_t rows,
                                               std::int32_t (*acc)[64]) noexcept {
    avx512_vnni_kernel::finish_rows(t, rows, acc);
  }
};

#undef MASQUANT_AMX_LOAD
#undef MASQUANT_AMX_STORE
#undef MASQUANT_AMX_ZERO
#undef MASQUANT_AMX_DP
