// float_gemm-inl.hpp: C (+)= A·B with A float and B in f32 or bf16 panels (panels.hpp), for one
// family: the float micro-kernel and the blocking driver that the bf16 kernel shares
// (float_gemm_bf16-inl.hpp). Family source (detail/isa/foreach_family.hpp), compiled per family
// by float_families.hpp.
//
//   f32_tile: A float, B f32 or bf16 panels (bf16 widened exactly to float), FMA on the family's
//             float vectors; a scalar loop in the portable family.
// The driver cuts K into blocks of kc = 256 (the B block of one panel group, kc x 64 values, stays
// in L1 while every row tile of the range reuses it). Every output element is computed by one
// call in one fixed order, whatever the row and panel ranges: results do not depend on how the
// caller splits the work into tasks, nor on the thread count.

namespace float_gemm {

using namespace masquant::detail::gemm;
using simd::vf;

/// Finishes output values[0..count) of row r from column col: (C =) v·scale + bias, or
/// C += v·scale — the partial vector at the end of a tile, and the portable family's tiles. Not
/// inlined: the compiler would copy this cold loop into every tile shape, once per combination
/// of its conditions (loop unswitching, which doubled the compile time of the layer).
__attribute__((noinline)) inline void finish_values(const tile_out& o, int r, int col,
                                                    const float* values, int count) noexcept {
  for (int i = 0; i < count; ++i) {
    float v = values[i];
    if (o.scale != nullptr) v *= o.scale[col + i];
    float& out = o.c[r][col + i];
    if (o.store) {
      out = o.bias != nullptr ? v + o.bias[col + i] : v;
    } else {
      out += v;
    }
  }
}

/// Tile shape of f32_tile: MR rows by NP panels at most, within the register file.
inline constexpr int f32_width = static_cast<int>(simd::float_lanes);
inline constexpr int f32_np = f32_width >= 16 ? 4 : 1;
inline constexpr int f32_mr = simd::enabled ? 6 : 4;

/// MR x (NP·16) tile of A (float) times B (f32 or bf16 panels) over k values. a[r]: row r at the
/// block's first k; b: the first panel at the block's first k; bstride: elements per panel.
template <class BT, int MR, int NP>
inline void f32_tile(const float* const* a, const BT* b, index_t bstride, index_t k,
                     const tile_out& o) noexcept {
  if constexpr (simd::enabled) {
    constexpr int W = f32_width;
    constexpr int V = static_cast<int>(panel_cols) / W;
    vf acc[std::size_t{MR}][std::size_t{NP} * std::size_t{V}];
    for (int r = 0; r < MR; ++r)
      for (int q = 0; q < NP * V; ++q) acc[r][q] = simd::fsplat(0.0f);
    if constexpr (std::is_same_v<BT, float>) {
      for (index_t kk = 0; kk < k; ++kk) {
        vf bv[std::size_t{NP} * std::size_t{V}];
        for (int j = 0; j < NP; ++j)
          for (int v = 0; v < V; ++v)
            bv[j * V + v] = simd::load(b + j * bstride + kk * panel_cols + v * W);
        for (int r = 0; r < MR; ++r) {
          const vf av = simd::fsplat(a[r][kk]);
          for (int q = 0; q < NP * V; ++q) acc[r][q] = simd::fma(av, bv[q], acc[r][q]);
        }
      }
    } else {
      // A pair line holds, per column, (bf16 of k even) | (bf16 of k odd) << 16: the even value
      // is the lane shifted up, the odd one the lane with its low half cleared (exact widening).
      const index_t pairs = (k + 1) / 2;
      for (index_t p = 0; p < pairs; ++p) {
        vf be[std::size_t{NP} * std::size_t{V}], bo[std::size_t{NP} * std::size_t{V}];
        for (int j = 0; j < NP; ++j) {
          const BT* line = b + j * bstride + p * 32;
          for (int v = 0; v < V; ++v) {
            const simd::vi u = simd::load_lanes(line + 2 * v * W);
            be[j * V + v] = simd::bf16_low(u);
            bo[j * V + v] = simd::bf16_high(u);
          }
        }
        for (int r = 0; r < MR; ++r) {
          const vf a0 = simd::fsplat(a[r][2 * p]), a1 = simd::fsplat(a[r][2 * p + 1]);
          for (int q = 0; q < NP * V; ++q) {
            acc[r][q] = simd::fma(a1, bo[q], simd::fma(a0, be[q], acc[r][q]));
          }
        }
      }
    }
    for (int r = 0; r < o.rows; ++r) {
      for (int q = 0; q < NP * V; ++q) {
        const int col = q * W;
        if (col >= o.cols) break;
        if (col + W <= o.cols) {
          vf v = acc[r][q];
          if (o.scale != nullptr) v = v * simd::loadu(o.scale + col);
          float* out = o.c[r] + col;
          if (o.store) {
            if (o.bias != nullptr) v = v + simd::loadu(o.bias + col);
            simd::storeu(out, v);
          } else {
            simd::storeu(out, simd::loadu(out) + v);
          }
        } else {
          alignas(64) float lanes[W];
          simd::storeu(lanes, acc[r][q]);
          finish_values(o, r, col, lanes, o.cols - col);
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
        finish_values(o, r, col, &s, 1);
      }
    }
  }
}

/// Calls f with NP = np (1..NPmax) as a constant: the last panel group may be narrower.
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

/// C (+)= A·B for rows [r0, r1) and panels [p0, p1) of B, in tiles of at most MR rows by NPmax
/// panels: tile(mr, np, a_rows, b_panel, b_stride, k, out) with mr and np integral constants.
template <int MR, int NPmax, class AT, class BT, class Tile>
inline void product(const product_args<AT>& pa, const panels<BT>& b, index_t r0, index_t r1,
                    index_t p0, index_t p1, const Tile& tile_kernel) {
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
      const AT* ap[std::size_t{MRc}];
      float* cp[std::size_t{MRc}];
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
      dispatch_np<NPmax>(np, [&](auto npc) { tile_kernel(mrc, npc, ap, bp, b.stride, kn, o); });
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

/// A float product with the float kernel (B f32 or bf16 panels).
template <class BT>
inline void f32_product(const product_args<float>& pa, const panels<BT>& b, index_t r0, index_t r1,
                        index_t p0, index_t p1) {
  product<f32_mr, f32_np>(pa, b, r0, r1, p0, p1,
                          [](auto mrc, auto npc, const float* const* a, const BT* bp,
                             index_t bstride, index_t k, const tile_out& o) {
                            f32_tile<BT, decltype(mrc)::value, decltype(npc)::value>(a, bp, bstride,
                                                                                     k, o);
                          });
}

}  // namespace float_gemm

/// C (+)= A·B, A float, B f32 panels: rows [r0, r1), panels [p0, p1).
inline void run_float_gemm(tag, const masquant::detail::gemm::product_args<float>& pa,
                           const masquant::detail::gemm::panels<float>& b, index_t r0, index_t r1,
                           index_t p0, index_t p1) {
  float_gemm::f32_product(pa, b, r0, r1, p0, p1);
}

/// C (+)= A·B, A float, B bf16 panels (widened exactly to float).
inline void run_float_gemm(tag, const masquant::detail::gemm::product_args<float>& pa,
                           const masquant::detail::gemm::panels<std::uint16_t>& b, index_t r0,
                           index_t r1, index_t p0, index_t p1) {
  float_gemm::f32_product(pa, b, r0, r1, p0, p1);
}
