// tile.hpp: what the INT8 GEMM computes (problem) and what a micro-kernel is asked to compute
// (tile_args): plain data, shared by every family (the code is in int8_gemm-inl.hpp).
#pragma once

#include <cstdint>
#include <masquant/config.hpp>

namespace masquant::detail::gemm {

/// One micro-kernel call: `rows` x tile-width outputs over `k` consecutive k of the packed
/// weights.
///
/// The kernel accumulates acc = sum_k a(r, k) * b_byte(k, c) (unsigned weight bytes, modular
/// int32). Then, if acc_out is set, it stores acc (+ acc_in) there ([rows][tile width] int32) and
/// stops: K is split and more blocks follow. Otherwise it finishes the output:
///   x = acc (+ acc_in) - row_corr[r]              (exact int32 sum of a * w)
///   c_int[r, c] = x                                when c_int is set, else
///   c[r, c] = float(x) * (a_scale[r] * b_scale[c]) (+ bias[c]) (+ c[r, c] when accumulate)
/// for the first `cols` columns only.
struct tile_args {
  const std::int8_t* a = nullptr;  // activation (row 0, first k of the range)
  index_t lda = 0;
  const std::uint8_t* b = nullptr;  // packed step of the first k, offset to the tile's columns
  index_t k = 0;                    // k in the range (a multiple of the step except at the end)
  const std::int32_t* acc_in = nullptr;
  std::int32_t* acc_out = nullptr;
  const std::int32_t* row_corr = nullptr;  // zero_point * row sum, per row
  const float* a_scale = nullptr;          // per row
  const float* b_scale = nullptr;          // per column, padded: full vectors may be loaded
  const float* bias = nullptr;             // per column, unpadded, or null
  float* c = nullptr;
  std::int32_t* c_int = nullptr;
  index_t ldc = 0;
  int cols = 0;  // valid columns of the tile
  bool accumulate = false;
  bool stream = false;  // rows of c / c_int are whole aligned lines: may store non-temporally
};

/// The whole problem, validated: C[m, n] from A[m, k] (int8) and packed B.
struct problem {
  const std::int8_t* a = nullptr;
  index_t lda = 0;
  const float* a_scale = nullptr;          // [m], null for int32 output
  const std::int32_t* row_sums = nullptr;  // [m], or null: computed per task
  index_t m = 0, n = 0, k = 0;
  const std::uint8_t* b = nullptr;
  index_t block_bytes = 0;
  index_t blocks = 0;
  int zero_point = 0;
  bool int4 = false;
  const float* b_scale = nullptr;  // padded to whole blocks
  const float* bias = nullptr;
  bool accumulate = false;
  float* c = nullptr;
  std::int32_t* c_int = nullptr;
  index_t ldc = 0;
};

/// The epilogue's part of a tile: output row `row` and column n0 of p, `cols` valid columns,
/// and the zero-point corrections of the tile's rows (row_corr[0] is row `row`'s).
inline tile_args epilogue_args(const problem& p, index_t row, index_t n0, index_t cols,
                               const std::int32_t* row_corr) noexcept {
  tile_args t;
  t.row_corr = row_corr;
  t.a_scale = p.a_scale != nullptr ? p.a_scale + row : nullptr;
  t.b_scale = p.b_scale + n0;
  t.bias = p.bias != nullptr ? p.bias + n0 : nullptr;
  t.c = p.c != nullptr ? p.c + row * p.ldc + n0 : nullptr;
  t.c_int = p.c_int != nullptr ? p.c_int + row * p.ldc + n0 : nullptr;
  t.ldc = p.ldc;
  t.cols = static_cast<int>(cols);
  t.accumulate = p.accumulate;
  return t;
}

inline constexpr index_t task_rows_max = 264;       // rows per task (a multiple of 6, 4 and 3)
inline constexpr index_t task_rows_max_split = 96;  // ... when K is split (workspace rows)
inline constexpr index_t task_blocks = 4;           // 64-column blocks per task, at most
// Fewer blocks per task when a problem would have fewer tasks than this: tasks are handed out
// one at a time, and 5 equal tasks on 2 threads leave one idle for a fifth of the call.
inline constexpr index_t tasks_min = 16;
inline constexpr index_t kc_max = 12288;       // K above which it is split into blocks
inline constexpr index_t workspace_cols = 64;  // widest tile
// Outputs of at least this size are stored past the caches (non-temporal) when their rows are
// whole aligned lines: each line of C is written once, and reading it for ownership first also
// pushes activations out of L2 (~1% of the GEMM at M = 2048 on 2048 x 11008). Smaller outputs
// stay in cache for the layer that reads them next.
inline constexpr index_t stream_output_bytes = index_t{16} << 20;
// The thread rule (int8_gemm-inl.hpp, one_thread_is_faster): a problem one core finishes in less
// than 20 us runs on the calling thread. Waking a sleeping pool and joining it costs 7-20 us
// (futex wake-up of an idle core; 7 us median on Zen 3, ~12 us on Zen 5), so two threads are
// slower than one below about twice that. One core's weight stream is taken at a fast 64 GB/s
// (weights in L3, or a Zen 5 core from DRAM): a slower memory makes such a call take longer,
// which the rule then leaves on one thread at some cost, never at more than the wake-up.
inline constexpr double serial_below_seconds = 20e-6;
inline constexpr double stream_bytes_per_second = 64e9;

struct blocking {
  index_t mc = 0, m_tasks = 0;  // rows per task, tasks along M
  index_t n_tasks = 0;          // tasks along N
  index_t task_blocks = 0;      // 64-column blocks per task
  index_t kc = 0, k_blocks = 0;
  bool stream_output = false;  // full-width tiles store C non-temporally
  bool amx = false;            // the avx512 family's tasks run on AMX tiles
};

}  // namespace masquant::detail::gemm
