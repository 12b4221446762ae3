// int8_gemm-inl.hpp: the INT8 GEMM of one family — its micro-kernel, the blocking and tasks
// around it, and the scalar epilogue every kernel shares for partial vectors. Family source
// (detail/isa/foreach_family.hpp), compiled per family by int8_families.hpp.
//
// Work is split into tasks of up to 264 rows x 256 columns (4 column blocks; fewer when that
// would make fewer than 16 tasks), each over the whole K, so every output element is computed by
// one task in one fixed order: results do not depend on how many threads run the tasks. Tasks are
// numbered column-range first, so consecutive tasks share their rows of activations.
//
// Inside a task, per column tile, the micro-kernel sweeps the row tiles of the task over all of
// K: the weight panel of the tile (64 x K bytes, streamed from memory once per task) stays in L2
// and every row tile after the first reads it from there. Only when that panel would outgrow L2
// (K > 12288) is K cut into blocks; the int32 partial sums of the task's rows then wait in a
// small workspace on the stack (no allocation per call). A task of one row (decode) goes to the
// kernel's run_row when it has one (row_blocks > 0): whole 64-column blocks per call, read in
// order, so the weights stream at memory speed instead of being strided through a narrower tile
// at a time; up to row_blocks blocks at once, several weight streams. The avx512 family runs its
// tasks on AMX tiles instead where the CPU and OS allow and the problem suits
// (kernel_avx512_amx-inl.hpp): the same tasks, the same epilogue.

namespace int8 {

using namespace masquant::detail::gemm;

/// Columns [first, first + width) of t (first < t.cols): how a kernel whose row accumulates more
/// columns than its epilogue takes hands them over a group at a time.
inline tile_args column_slice(const tile_args& t, index_t first, index_t width) noexcept {
  tile_args s = t;
  s.b_scale += first;
  if (s.bias != nullptr) s.bias += first;
  if (s.c != nullptr) s.c += first;
  if (s.c_int != nullptr) s.c_int += first;
  s.cols = static_cast<int>(t.cols - first < width ? t.cols - first : width);
  return s;
}

/// Loads 4 activation bytes as one little-endian int32 (unaligned, aliasing-safe).
inline std::int32_t load4(const std::int8_t* p) noexcept {
  std::int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

/// Loads the first n (0..4) bytes at p, zero-filling the rest: the k tail never reads past the row.
/// Loop- and call-free, so kernels keep their accumulators in registers around it.
inline std::int32_t load4_partial(const std::int8_t* p, index_t n) noexcept {
  const auto byte = [p](int i) {
    return static_cast<std::uint32_t>(static_cast<std::uint8_t>(p[i]));
  };
  std::uint32_t v = 0;
  if (n > 0) v = byte(0);
  if (n > 1) v |= byte(1) << 8;
  if (n > 2) v |= byte(2) << 16;
  if (n > 3) v |= byte(3) << 24;
  return static_cast<std::int32_t>(v);
}

/// Finishes one output element from its raw modular accumulator (acc_in already added).
inline void finish_scalar(const tile_args& t, index_t r, index_t c, std::uint32_t acc) noexcept {
  const auto x =
      static_cast<std::int32_t>(acc - static_cast<std::uint32_t>(t.row_corr[r]));  // exact
  if (t.c_int != nullptr) {
    t.c_int[r * t.ldc + c] = x;
    return;
  }
  float y = static_cast<float>(x) * (t.a_scale[r] * t.b_scale[c]);
  if (t.bias != nullptr) y += t.bias[c];
  float& out = t.c[r * t.ldc + c];
  if (t.accumulate) y += out;
  out = y;
}

/// Finishes a row of `width` raw accumulators held in memory (stores them when acc_out is set).
/// Not inlined: a cold path (partial tiles, split K) that the compiler would otherwise copy into
/// every kernel shape, once per combination of the conditions of finish_scalar (loop
/// unswitching, which doubled the compile time of the layer).
__attribute__((noinline)) inline void finish_row_scalar(const tile_args& t, index_t r,
                                                        const std::int32_t* acc,
                                                        index_t width) noexcept {
  if (t.acc_out != nullptr) {
    for (index_t c = 0; c < width; ++c) t.acc_out[r * width + c] = acc[c];
    return;
  }
  for (index_t c = 0; c < t.cols; ++c) finish_scalar(t, r, c, static_cast<std::uint32_t>(acc[c]));
}

// Each kernel's tile functions are not inlined into the driver: the compiler would otherwise copy
// them into every branch of run_task and run_row (loop unswitching on the problem's options),
// for nothing but compile time; one call per tile over the whole K costs nothing.
#if MASQUANT_FAMILY == MASQUANT_ISA_AVX512
#include <masquant/gemm/detail/kernel_avx512_vnni-inl.hpp>
using kernel = avx512_vnni_kernel;
#include <masquant/gemm/detail/kernel_avx512_amx-inl.hpp>  // after the kernel: its epilogue
#elif MASQUANT_FAMILY == MASQUANT_ISA_AVX_VNNI
#include <masquant/gemm/detail/kernel_ymm_vnni-inl.hpp>
using kernel = ymm_vnni_kernel;
#elif MASQUANT_FAMILY == MASQUANT_ISA_AVX2
#include <masquant/gemm/detail/kernel_avx2-inl.hpp>
using kernel = avx2_kernel;
#else
#include <masquant/gemm/detail/kernel_portable-inl.hpp>
using kernel = portable_kernel;
#endif

template <class Kernel>
blocking plan(const problem& p) noexcept {
  blocking bl;
  const bool split = p.k > kc_max && p.m > Kernel::max_rows;
  const index_t rows_max = split ? task_rows_max_split : task_rows_max;
  bl.m_tasks = (p.m + rows_max - 1) / rows_max;
  bl.mc = std::min(rows_max, round_up((p.m + bl.m_tasks - 1) / bl.m_tasks, Kernel::tile_rows));
  // A single row goes to run_row, which streams up to row_blocks blocks at once: keep them.
  const index_t task_blocks_min = p.m == 1 ? std::max<index_t>(1, Kernel::row_blocks) : 1;
  bl.task_blocks = task_blocks;
  while (bl.task_blocks > task_blocks_min &&
         bl.m_tasks * ((p.blocks + bl.task_blocks - 1) / bl.task_blocks) < tasks_min)
    bl.task_blocks /= 2;
  bl.n_tasks = (p.blocks + bl.task_blocks - 1) / bl.task_blocks;
  bl.k_blocks = split ? (p.k + kc_max - 1) / kc_max : 1;
  bl.kc = split ? round_up((p.k + bl.k_blocks - 1) / bl.k_blocks, step_k_int4) : p.k;
  const void* c = p.c != nullptr ? static_cast<const void*>(p.c) : p.c_int;  // 4-byte elements
  bl.stream_output = Kernel::streams_output && !p.accumulate &&
                     p.m * p.n * index_t{4} >= stream_output_bytes &&
                     reinterpret_cast<std::uintptr_t>(c) % 64 == 0 && p.ldc % 16 == 0;
#if MASQUANT_FAMILY == MASQUANT_ISA_AVX512
  bl.amx = avx512_amx_path::usable(p);
#endif
  return bl;
}

/// The task of a single row (decode) with a kernel that takes whole column blocks (run_row).
template <class Kernel>
void run_row(const problem& p, index_t m, index_t cb0, index_t cb1, std::int32_t corr) noexcept {
  static_assert(Kernel::row_blocks > 0 && Kernel::row_blocks <= task_blocks);
  tile_args t[Kernel::row_blocks];
  for (index_t cb = cb0; cb < cb1; cb += Kernel::row_blocks) {
    const int blocks = static_cast<int>(std::min<index_t>(Kernel::row_blocks, cb1 - cb));
    for (int j = 0; j < blocks; ++j) {
      const index_t n0 = (cb + j) * block_cols;
      tile_args& tj = t[j];
      tj = epilogue_args(p, m, n0, std::min(block_cols, p.n - n0), &corr);
      tj.a = p.a + m * p.lda;
      tj.lda = p.lda;
      tj.b = p.b + (cb + j) * p.block_bytes;
      tj.k = p.k;
    }
    Kernel::run_row(p.int4, t, blocks);
  }
}

template <class Kernel>
void run_task(const problem& p, const blocking& bl, index_t task) noexcept {
  constexpr index_t tc = Kernel::tile_cols;
  static_assert(tc <= workspace_cols && block_cols % tc == 0);
  const index_t m0 = (task / bl.n_tasks) * bl.mc;
  const index_t rows = std::min(bl.mc, p.m - m0);
  const index_t cb0 = (task % bl.n_tasks) * bl.task_blocks;
  const index_t cb1 = std::min(p.blocks, cb0 + bl.task_blocks);
  const index_t step_k = p.int4 ? step_k_int4 : step_k_int8;

  alignas(64) std::int32_t row_corr[task_rows_max];
  for (index_t r = 0; r < rows; ++r) {
    const std::int8_t* row = p.a + (m0 + r) * p.lda;
    MASQUANT_ASSERT(p.row_sums == nullptr || p.row_sums[m0 + r] == Kernel::row_sum(row, p.k));
    const std::int32_t sum = p.row_sums != nullptr ? p.row_sums[m0 + r] : Kernel::row_sum(row, p.k);
    row_corr[r] = p.zero_point * sum;
  }
  if constexpr (Kernel::row_blocks > 0) {
    if (rows == 1 && bl.k_blocks == 1) return run_row<Kernel>(p, m0, cb0, cb1, row_corr[0]);
  }
#if MASQUANT_FAMILY == MASQUANT_ISA_AVX512
  if (bl.amx) {
    avx512_amx_path::run_task(p, m0, rows, cb0, cb1, row_corr, bl.stream_output);
    if (bl.stream_output) Kernel::stream_fence();
    return;
  }
#endif
  alignas(64) std::int32_t ws[task_rows_max_split * workspace_cols];  // used when K is split
  // One tile when the kernel's tallest takes the task's rows, else as few tiles of up to
  // tile_rows as there can be, of near-equal height: a one-row tile has 4 accumulator chains,
  // too few to hide vpdpbusd's latency (int4 at M = 7 on Zen 5: 4 + 3 rows ran 3-13% faster
  // than 6 + 1).
  const index_t tiles = rows <= (p.int4 ? Kernel::max_rows_int4 : Kernel::max_rows)
                            ? 1
                            : (rows + Kernel::tile_rows - 1) / Kernel::tile_rows;

  for (index_t cb = cb0; cb < cb1; ++cb) {
    for (index_t n0 = cb * block_cols; n0 < std::min(p.n, (cb + 1) * block_cols); n0 += tc) {
      const std::uint8_t* b_tile = p.b + cb * p.block_bytes + (n0 % block_cols) * 4;
      for (index_t kb = 0; kb < bl.k_blocks; ++kb) {
        const index_t k0 = kb * bl.kc;
        index_t height = 0;
        for (index_t i = 0, r0 = 0; i < tiles; ++i, r0 += height) {
          height = (rows - r0 + tiles - i - 1) / (tiles - i);
          tile_args t = epilogue_args(p, m0 + r0, n0, std::min(tc, p.n - n0), row_corr + r0);
          t.a = p.a + (m0 + r0) * p.lda + k0;
          t.lda = p.lda;
          t.b = b_tile + k0 / step_k * step_bytes;
          t.k = std::min(bl.kc, p.k - k0);
          t.acc_in = kb > 0 ? ws + r0 * tc : nullptr;
          t.acc_out = kb + 1 < bl.k_blocks ? ws + r0 * tc : nullptr;
          t.stream = bl.stream_output && t.cols == tc;
          if (t.acc_out == nullptr && !t.stream) {
            // The epilogue writes these lines thousands of cycles later: fetch them now.
            const auto* out = t.c != nullptr ? static_cast<const void*>(t.c) : t.c_int;
            for (index_t r = 0; r < height; ++r) {
              const char* line = static_cast<const char*>(out) + r * t.ldc * 4;
              for (index_t j = 0; j < index_t{4} * t.cols; j += 64)
                __builtin_prefetch(line + j, 1, 3);
            }
          }
          Kernel::run(static_cast<int>(height), p.int4, t);
        }
      }
    }
  }
  if constexpr (Kernel::streams_output) {
    if (bl.stream_output) Kernel::stream_fence();
  }
}

/// Whether one thread is estimated to finish p sooner than several: when its time alone —
/// streaming the weights or multiplying, whichever is longer — is below serial_below_seconds,
/// waking the pool's threads and joining them costs more than the split saves.
template <class Kernel>
bool one_thread_is_faster(const problem& p) noexcept {
  const double macs =
      static_cast<double>(p.m) * static_cast<double>(p.n) * static_cast<double>(p.k);
  const double bytes = static_cast<double>(p.blocks) * static_cast<double>(p.block_bytes);
  return std::max(macs / Kernel::macs_per_second, bytes / stream_bytes_per_second) <
         serial_below_seconds;
}

template <class Kernel>
void run(const problem& p, const parallel_for_fn& parallel) {
  const blocking bl = plan<Kernel>(p);
  const index_t tasks = bl.m_tasks * bl.n_tasks;
  if (!parallel || tasks <= 1 || one_thread_is_faster<Kernel>(p)) {
    for (index_t t = 0; t < tasks; ++t) run_task<Kernel>(p, bl, t);
    return;
  }
  // Two references: small enough for std::function's local storage (no allocation).
  parallel(tasks, [&p, &bl](index_t t) { run_task<Kernel>(p, bl, t); });
}

}  // namespace int8

/// Runs the validated problem with this family's kernel.
inline void run_int8_gemm(tag, const masquant::detail::gemm::problem& p,
                          const parallel_for_fn& parallel) {
  if (p.m == 0 || p.n == 0) return;
  int8::run<int8::kernel>(p, parallel);
}
