// gram_kernel.hpp: the upper triangle of G += XᵀX in double from float rows (packed, tiled, FMA).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <masquant/config.hpp>
#include <masquant/parallel.hpp>
#include <masquant/stats/detail/simd.hpp>
#include <memory>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace masquant::detail {

/// Tile sizes of the Gram kernel for architecture A. Tokens are converted to double once and
/// packed into panels of `width` channels (one register); a micro-tile is `rows` = vectors ×
/// width entries of a column of G by `width` columns, accumulated in registers over a block of
/// `tokens` tokens. A block of `block_rows` rows of G (its packed panels) stays in L2 while a
/// task walks `chunk_cols` columns.
template <class A>
struct gram_tiling {
  static constexpr index_t width = double_lanes<A>() > 1 ? double_lanes<A>() : 4;
  static constexpr index_t vectors = width >= 8 ? 3 : width == 4 ? 3 : 4;
  static constexpr index_t rows = vectors * width;
  static constexpr index_t tokens = 512;
  static constexpr index_t block_rows = rows * (width >= 8 ? 8 : 16);
  static constexpr index_t chunk_cols = 128;
};

/// Prefetch hints (no effect where the compiler has no prefetch builtin): into L2 for reading,
/// into L1 for reading, into L2 for writing.
inline void prefetch_read_l2(const double* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 2);
#else
  static_cast<void>(p);
#endif
}
inline void prefetch_read_l1(const double* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 3);
#else
  static_cast<void>(p);
#endif
}
inline void prefetch_write_l2(const double* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 1, 2);
#else
  static_cast<void>(p);
#endif
}

/// Asks the kernel to back [p, p + bytes) with transparent huge pages (Linux; call before the
/// first touch). A 128 MiB Gram matrix on 4 KiB pages costs 32768 page faults on first touch and
/// a TLB miss on most micro-tiles; the advice is a hint, ignored where unsupported.
inline void advise_huge_pages(void* p, std::size_t bytes) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t huge = std::uintptr_t{1} << 21;
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  const auto begin = (address + huge - 1) & ~(huge - 1);
  const auto end = (address + bytes) & ~(huge - 1);
  // Offsets from p rather than integer-to-pointer casts (which defeat alias analysis).
  if (end > begin) madvise(static_cast<char*>(p) + (begin - address), end - begin, MADV_HUGEPAGE);
#else
  static_cast<void>(p);
  static_cast<void>(bytes);
#endif
}

/// Reused buffer for the packed token block (64-byte aligned; grown, never shrunk).
class gram_workspace {
 public:
  gram_workspace() = default;
  // A copy of an accumulator does not need its scratch space.
  gram_workspace(const gram_workspace&) noexcept {}
  gram_workspace& operator=(const gram_workspace&) noexcept { return *this; }
  gram_workspace(gram_workspace&&) noexcept = default;
  gram_workspace& operator=(gram_workspace&&) noexcept = default;

  double* get(std::size_t doubles) {
    if (doubles > size_) {
      storage_.reset();  // release first: the old and new buffers need not coexist
      storage_.reset(new double[doubles + 8]);
      advise_huge_pages(storage_.get(), (doubles + 8) * sizeof(double));
      size_ = doubles;
    }
    const auto addr = reinterpret_cast<std::uintptr_t>(storage_.get());
    return storage_.get() + ((64 - addr % 64) % 64) / sizeof(double);
  }

 private:
  std::unique_ptr<double[]> storage_;
  std::size_t size_ = 0;
};

/// Packs rows[0..kb) (channels [0, n)) into panels: panel p holds channels [p*W, p*W + W) of
/// every token, token-major; channels past n are zero. Panels [p0, p1) only.
template <class A>
void gram_pack(const float* const* rows, index_t kb, index_t n, index_t p0, index_t p1,
               double* pack) noexcept {
  constexpr index_t W = gram_tiling<A>::width;
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
        if constexpr (!std::is_same_v<A, scalar_arch>) {
          if (c0 + W <= n) {
            load_widen<A>(src + c0).store_aligned(dst);
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
template <class A, bool Full>
void gram_micro(const double* a, const double* b, index_t kb, double* g, index_t ldg, index_t i0,
                index_t j0, index_t n, const double* b_next) noexcept {
  constexpr index_t W = gram_tiling<A>::width;
  constexpr index_t V = gram_tiling<A>::vectors;
  const index_t stride = kb * W;
  if constexpr (std::is_same_v<A, scalar_arch>) {
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
    using batch = xsimd::batch<double, A>;
    batch acc[W][V];
    for (index_t jj = 0; jj < W; ++jj)
      for (index_t v = 0; v < V; ++v)
        acc[jj][v] = Full ? batch::load_unaligned(g + (j0 + jj) * ldg + i0 + v * W) : batch(0.0);
    // The next micro-tile down the same columns: its G entries come from memory while this
    // one computes.
    if (Full && i0 + 2 * V * W <= n) {
      for (index_t jj = 0; jj < W; ++jj)
        for (index_t v = 0; v < V; ++v) prefetch_write_l2(g + (j0 + jj) * ldg + i0 + (V + v) * W);
    }
    for (index_t t = 0; t < kb; ++t) {
      if (b_next != nullptr) prefetch_read_l2(b_next + t * W);
      batch x[V];
      for (index_t v = 0; v < V; ++v) {
        prefetch_read_l1(a + v * stride + (t + 8) * W);  // the a panels stream from L2
        x[v] = batch::load_aligned(a + v * stride + t * W);
      }
      for (index_t jj = 0; jj < W; ++jj) {
        const batch y(b[t * W + jj]);
        for (index_t v = 0; v < V; ++v) acc[jj][v] = xsimd::fma(x[v], y, acc[jj][v]);
      }
    }
    if constexpr (Full) {
      for (index_t jj = 0; jj < W; ++jj)
        for (index_t v = 0; v < V; ++v)
          acc[jj][v].store_unaligned(g + (j0 + jj) * ldg + i0 + v * W);
    } else {
      alignas(64) double tile[V * W];
      for (index_t jj = 0; jj < W && j0 + jj < n; ++jj) {
        for (index_t v = 0; v < V; ++v) acc[jj][v].store_aligned(tile + v * W);
        for (index_t ii = 0; ii < V * W && i0 + ii < n; ++ii)
          g[(j0 + jj) * ldg + i0 + ii] += tile[ii];
      }
    }
  }
}

/// One task of a block update: rows [r0, r1) of G (whole micro-tiles) by column panels
/// [q0, q1), upper triangle only (micro-tiles that reach the diagonal are computed whole).
template <class A>
void gram_task(const double* pack, index_t kb, double* g, index_t ldg, index_t n, index_t r0,
               index_t r1, index_t q0, index_t q1) noexcept {
  using tiling = gram_tiling<A>;
  constexpr index_t W = tiling::width;
  for (index_t q = q0; q < q1; ++q) {
    const index_t j0 = q * W;
    const double* b = pack + q * kb * W;
    for (index_t i0 = r0; i0 < r1 && i0 <= j0; i0 += tiling::rows) {
      const double* a = pack + (i0 / W) * kb * W;
      const double* b_next = i0 == r0 && q + 1 < q1 ? b + kb * W : nullptr;
      if (i0 + tiling::rows <= n && j0 + W <= n) {
        gram_micro<A, true>(a, b, kb, g, ldg, i0, j0, n, b_next);
      } else {
        gram_micro<A, false>(a, b, kb, g, ldg, i0, j0, n, b_next);
      }
    }
  }
}

/// Adds Σ_t x_t x_tᵀ over rows[0..count) (each a pointer to n floats) to the upper triangle
/// (row <= column) of the column-major n x n matrix g; the strict lower triangle is left with
/// unspecified values. Work is split into tasks that own disjoint parts of G and sum tokens in
/// the same order, so the result does not depend on how `parallel` schedules them.
template <class A>
void gram_update(const float* const* rows, index_t count, index_t n, double* g, gram_workspace& ws,
                 const parallel_for_fn& parallel) {
  using tiling = gram_tiling<A>;
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
      gram_pack<A>(block, kb, n, panels * k / pack_tasks, panels * (k + 1) / pack_tasks, pack);
    });
    if (padded_panels > panels)
      std::memset(pack + panels * kb * W, 0, sizeof(double) * (padded_panels - panels) * kb * W);
    run(static_cast<index_t>(tasks.size()), [&](index_t k) {
      const auto [rb, cc] = tasks[static_cast<std::size_t>(k)];
      const index_t r0 = rb * tiling::block_rows;
      const index_t r1 = std::min(r0 + tiling::block_rows, n);
      const index_t q0 = cc * tiling::chunk_cols / W;
      const index_t q1 = std::min((cc + 1) * tiling::chunk_cols / W, panels);
      gram_task<A>(pack, kb, g, n, n, r0, r1, q0, q1);
    });
  }
}

}  // namespace masquant::detail
