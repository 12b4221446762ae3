// product.hpp: C (+)= A·B for the float parts of the quantized linear — the low-rank branch
// (x̃·L, then t·R) and the A16 weight product — with B packed in panels (panels.hpp).
//
// Two micro-kernels compute an MR x (NP·16) tile of C, accumulating in float:
//   f32_tile:  A float, B f32 or bf16 panels (bf16 widened exactly to float), xsimd FMA; any
//              architecture (a scalar loop when xsimd has none).
//   bf16_tile: A and B bf16, vdpbf16ps (AVX512_BF16): each instruction multiplies 16 lanes of
//              bf16 pairs by one broadcast pair of the A row and adds both products to float lanes.
// The driver cuts K into blocks of kc = 256 (the B block of one panel group, kc x 64 values, stays
// in L1 while every row tile of the range reuses it). Every output element is computed by one
// call in one fixed order, whatever the row and panel ranges: results do not depend on how the
// caller splits the work into tasks, nor on the thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <masquant/config.hpp>
#include <masquant/layer/detail/panels.hpp>
#include <type_traits>
#include <xsimd/xsimd.hpp>

#if defined(__AVX512BF16__) && defined(__AVX512F__) && defined(__AVX512BW__) && \
    defined(__AVX512VL__)
#define MASQUANT_LAYER_HAVE_BF16_DOT 1
#include <immintrin.h>
#else
#define MASQUANT_LAYER_HAVE_BF16_DOT 0
#endif

// GCC 12.2 reports _mm512_undefined_ps() inside AVX-512 intrinsics as uninitialized (GCC bug
// 105593, fixed in 12.3).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

namespace masquant::detail::layer {

/// K per block of the driver (even, so bf16 pairs never straddle two blocks).
inline constexpr index_t kc_block = 256;

/// One product over a row range: row i of A at a + i * lda (K values, and for bf16 panels one
/// more, zero, when K is odd); row i of C at c + (c_rows ? c_rows[i] : i) * ldc.
template <class AT>
struct product_args {
  const AT* a = nullptr;
  index_t lda = 0;
  float* c = nullptr;
  const index_t* c_rows = nullptr;
  index_t ldc = 0;
  index_t n = 0;                     ///< valid columns of C (the rest of a panel is not written)
  const float* col_scale = nullptr;  ///< products times col_scale[col] (padded to whole panels)
  const float* bias = nullptr;       ///< added by the storing pass (padded to whole panels)
  bool accumulate = false;           ///< C += A·B; otherwise the first K block stores
};

/// What one micro-kernel call writes: `rows` rows, `cols` valid columns from the tile's first.
struct tile_out {
  float* const* c;  // [MR] row pointers at the tile's first column (null past `rows`)
  int rows;
  int cols;
  const float* scale;  // at the tile's first column, or null
  const float* bias;   // at the tile's first column, or null (store only)
  bool store;
};

/// Finishes one output value: (C =) v·scale + bias, or C += v·scale.
inline void finish_value(const tile_out& o, int r, int col, float v) noexcept {
  if (o.scale != nullptr) v *= o.scale[col];
  float& out = o.c[r][col];
  if (o.store) {
    out = o.bias != nullptr ? v + o.bias[col] : v;
  } else {
    out += v;
  }
}

// --- float kernel ---------------------------------------------------------------------------

template <class Arch>
inline constexpr bool has_simd = !std::is_same_v<Arch, xsimd::unavailable>;

/// Tile shape of f32_tile on Arch: MR rows by NP panels at most, within the register file.
template <class Arch, bool Simd = has_simd<Arch>>
struct f32_tiling {
  static constexpr int width = static_cast<int>(xsimd::batch<float, Arch>::size);
  static constexpr int np = width >= 16 ? 4 : 1;
  static constexpr int mr = width >= 16 ? 6 : (width == 8 ? 6 : 3);
};
template <class Arch>
struct f32_tiling<Arch, false> {
  static constexpr int width = 1;
  static constexpr int np = 1;
  static constexpr int mr = 4;
};

/// MR x (NP·16) tile of A (float) times B (f32 or bf16 panels) over k values. a[r]: row r at the
/// block's first k; b: the first panel at the block's first k; bstride: elements per panel.
template <class Arch, class BT, int MR, int NP>
inline void f32_tile(const float* const* a, const BT* b, index_t bstride, index_t k,
                     const tile_out& o) noexcept {
  if constexpr (has_simd<Arch>) {
    using B = xsimd::batch<float, Arch>;
    constexpr int W = static_cast<int>(B::size);
    constexpr int V = static_cast<int>(panel_cols) / W;
    B acc[MR][NP * V];
    for (int r = 0; r < MR; ++r)
      for (int q = 0; q < NP * V; ++q) acc[r][q] = B(0.0f);
    if constexpr (std::is_same_v<BT, float>) {
      for (index_t kk = 0; kk < k; ++kk) {
        B bv[NP * V];
        for (int j = 0; j < NP; ++j)
          for (int v = 0; v < V; ++v)
            bv[j * V + v] = B::load_aligned(b + j * bstride + kk * panel_cols + v * W);
        for (int r = 0; r < MR; ++r) {
          const B av(a[r][kk]);
          for (int q = 0; q < NP * V; ++q) acc[r][q] = xsimd::fma(av, bv[q], acc[r][q]);
        }
      }
    } else {
      // A pair line holds, per column, (bf16 of k even) | (bf16 of k odd) << 16: the even value
      // is the lane shifted up, the odd one the lane with its low half cleared (exact widening).
      using U = xsimd::batch<std::uint32_t, Arch>;
      const U high(0xFFFF0000u);
      const index_t pairs = (k + 1) / 2;
      for (index_t p = 0; p < pairs; ++p) {
        B be[NP * V], bo[NP * V];
        for (int j = 0; j < NP; ++j) {
          const auto* line = reinterpret_cast<const std::uint32_t*>(b + j * bstride + p * 32);
          for (int v = 0; v < V; ++v) {
            const U u = U::load_aligned(line + std::size_t(v) * W);
            be[j * V + v] = xsimd::bitwise_cast<B>(U(u << 16));
            bo[j * V + v] = xsimd::bitwise_cast<B>(U(u & high));
          }
        }
        for (int r = 0; r < MR; ++r) {
          const B a0(a[r][2 * p]), a1(a[r][2 * p + 1]);
          for (int q = 0; q < NP * V; ++q) {
            acc[r][q] = xsimd::fma(a1, bo[q], xsimd::fma(a0, be[q], acc[r][q]));
          }
        }
      }
    }
    for (int r = 0; r < o.rows; ++r) {
      for (int q = 0; q < NP * V; ++q) {
        const int col = q * W;
        if (col >= o.cols) break;
        if (col + W <= o.cols) {
          B v = acc[r][q];
          if (o.scale != nullptr) v *= B::load_unaligned(o.scale + col);
          float* out = o.c[r] + col;
          if (o.store) {
            if (o.bias != nullptr) v += B::load_unaligned(o.bias + col);
            v.store_unaligned(out);
          } else {
            (B::load_unaligned(out) + v).store_unaligned(out);
          }
        } else {
          alignas(64) float lanes[W];
          acc[r][q].store_aligned(lanes);
          for (int i = 0; col + i < o.cols; ++i) finish_value(o, r, col + i, lanes[i]);
        }
      }
    }
  } else {
    // No vector registers: the same sums, one column at a time.
    for (int r = 0; r < o.rows; ++r) {
      for (int col = 0; col < o.cols; ++col) {
        const BT* panel = b + (col / panel_cols) * bstride;
        const index_t c = col % panel_cols;
        float s = 0.0f;
        for (index_t kk = 0; kk < k; ++kk) {
          float w;
          if constexpr (std::is_same_v<BT, float>) {
            w = panel[kk * panel_cols + c];
          } else {
            w = from_bf16(panel[(kk / 2) * 2 * panel_cols + c * 2 + kk % 2]);
          }
          s += a[r][kk] * w;
        }
        finish_value(o, r, col, s);
      }
    }
    (void)sizeof(MR);
    (void)sizeof(NP);
  }
}

// --- bf16 kernel ----------------------------------------------------------------------------

#if MASQUANT_LAYER_HAVE_BF16_DOT
inline constexpr int bf16_mr = 6;
inline constexpr int bf16_np = 4;

/// MR x (NP·16) tile of A (bf16 rows, pairs of k) times B (bf16 panels) over k values (MR = 6,
/// or 1 for single rows).
template <int MR, int NP>
inline void bf16_tile(const std::uint16_t* const* a, const std::uint16_t* b, index_t bstride,
                      index_t k, const tile_out& o) noexcept {
  __m512 acc[MR][NP];
  for (int r = 0; r < MR; ++r)
    for (int j = 0; j < NP; ++j) acc[r][j] = _mm512_setzero_ps();
  const index_t pairs = (k + 1) / 2;
  for (index_t p = 0; p < pairs; ++p) {
    __m512i bv[NP];
    for (int j = 0; j < NP; ++j) bv[j] = _mm512_load_si512(b + j * bstride + p * 32);
    for (int r = 0; r < MR; ++r) {
      std::int32_t pair;
      std::memcpy(&pair, a[r] + 2 * p, 4);
      const __m512i av = _mm512_set1_epi32(pair);
      for (int j = 0; j < NP; ++j) {
        acc[r][j] = _mm512_dpbf16_ps(acc[r][j], (__m512bh)av, (__m512bh)bv[j]);
      }
    }
  }
  for (int r = 0; r < o.rows; ++r) {
    for (int j = 0; j < NP; ++j) {
      const int col = j * 16;
      if (col >= o.cols) break;
      const int valid = std::min(16, o.cols - col);
      const __mmask16 mask = static_cast<__mmask16>((1u << valid) - 1u);
      __m512 v = acc[r][j];
      if (o.scale != nullptr) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(mask, o.scale + col));
      float* out = o.c[r] + col;
      if (o.store) {
        if (o.bias != nullptr) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, o.bias + col));
      } else {
        v = _mm512_add_ps(_mm512_maskz_loadu_ps(mask, out), v);
      }
      _mm512_mask_storeu_ps(out, mask, v);
    }
  }
}

/// dst[0..n) = bf16 of src[0..n) (round to nearest even, vcvtneps2bf16), then zeros up to
/// round_up(n, 2).
inline void to_bf16_row(const float* src, index_t n, std::uint16_t* dst) noexcept {
  index_t j = 0;
  for (; j + 16 <= n; j += 16) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + j),
                        (__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(src + j)));
  }
  if (j < n) {
    const auto mask = static_cast<__mmask16>((1u << (n - j)) - 1u);
    _mm256_mask_storeu_epi16(dst + j, mask,
                             (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(mask, src + j)));
  }
  if (n % 2 != 0) dst[n] = 0;
}
#endif

// --- driver ---------------------------------------------------------------------------------

/// Calls the kernel with NP = np (1..NPmax): the last panel group may be narrower.
template <int NPmax, class F>
inline void dispatch_np(int np, F&& f) {
  if constexpr (NPmax >= 4) {
    if (np == 4) return f(std::integral_constant<int, 4>{});
    if (np == 3) return f(std::integral_constant<int, 3>{});
  }
  if constexpr (NPmax >= 2) {
    if (np == 2) return f(std::integral_constant<int, 2>{});
  }
  f(std::integral_constant<int, 1>{});
}

/// C (+)= A·B for rows [r0, r1) and panels [p0, p1) of B. A float with f32 or bf16 panels uses
/// the float kernel; A bf16 (with bf16 panels) the vdpbf16ps kernel.
template <class Arch, class AT, class BT>
inline void product(const product_args<AT>& pa, const panels<BT>& b, index_t r0, index_t r1,
                    index_t p0, index_t p1) noexcept {
  constexpr bool dot = std::is_same_v<AT, std::uint16_t>;
  static_assert(!dot || std::is_same_v<BT, std::uint16_t>, "bf16 rows need bf16 panels");
#if MASQUANT_LAYER_HAVE_BF16_DOT
  constexpr int MR = dot ? bf16_mr : f32_tiling<Arch>::mr;
  constexpr int NPmax = dot ? bf16_np : f32_tiling<Arch>::np;
#else
  static_assert(!dot, "bf16 dot products need AVX512_BF16");
  constexpr int MR = f32_tiling<Arch>::mr;
  constexpr int NPmax = f32_tiling<Arch>::np;
#endif
  for (index_t k0 = 0; k0 < b.k; k0 += kc_block) {
    const index_t kn = std::min(kc_block, b.k - k0);
    const bool store = k0 == 0 && !pa.accumulate;
    // A tile of MRc rows (MR, or 1 for the last one or two rows of a range: a single decode row
    // would otherwise cost MR rows of work). Rows are independent, so the tile a row falls in
    // does not change its bits.
    const auto tile = [&](index_t r, index_t pg, auto mrc) {
      constexpr int MRc = decltype(mrc)::value;
      const int np = static_cast<int>(std::min<index_t>(NPmax, p1 - pg));
      const index_t col0 = pg * panel_cols;
      const BT* bp = b.panel(pg) + k0 * panel_cols;  // f32 line k or bf16 pair line k / 2
      const int rows = static_cast<int>(std::min<index_t>(MRc, r1 - r));
      const AT* ap[MRc];
      float* cp[MRc];
      for (int i = 0; i < MRc; ++i) {
        // Rows past the end repeat the last one (computed, never stored).
        const index_t row = r + std::min(i, rows - 1);
        ap[i] = pa.a + row * pa.lda + k0;
        cp[i] = i < rows ? pa.c + (pa.c_rows ? pa.c_rows[row] : row) * pa.ldc + col0 : nullptr;
      }
      const tile_out o{cp,
                       rows,
                       static_cast<int>(std::min<index_t>(pa.n - col0, np * panel_cols)),
                       pa.col_scale ? pa.col_scale + col0 : nullptr,
                       store && pa.bias ? pa.bias + col0 : nullptr,
                       store};
      dispatch_np<NPmax>(np, [&](auto npc) {
        constexpr int NP = decltype(npc)::value;
#if MASQUANT_LAYER_HAVE_BF16_DOT
        if constexpr (dot) {
          bf16_tile<MRc, NP>(ap, bp, b.stride, kn, o);
        } else {
          f32_tile<Arch, BT, MRc, NP>(ap, bp, b.stride, kn, o);
        }
#else
        f32_tile<Arch, BT, MRc, NP>(ap, bp, b.stride, kn, o);
#endif
      });
    };
    const auto rows_tile = [&](index_t r, index_t pg) {
      if (r1 - r <= 2 && MR > 2) {
        for (index_t i = r; i < r1; ++i) tile(i, pg, std::integral_constant<int, 1>{});
      } else {
        tile(r, pg, std::integral_constant<int, MR>{});
      }
    };
    if (b.k <= kc_block) {
      // One K block (t·R: K = r): walk each row tile along its C rows, which then stream in
      // order; the B block of the range (a few panels of r pairs) stays in L2.
      for (index_t r = r0; r < r1; r += MR)
        for (index_t pg = p0; pg < p1; pg += NPmax) rows_tile(r, pg);
    } else {
      // Long K (x̃·L): keep one B block (kc x 64 values) in L1 for every row tile.
      for (index_t pg = p0; pg < p1; pg += NPmax)
        for (index_t r = r0; r < r1; r += MR) rows_tile(r, pg);
    }
  }
}

}  // namespace masquant::detail::layer

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
