// float_gemm.hpp: what the float and bf16 products compute (plain data, shared by every family;
// the code is in float_gemm-inl.hpp and float_gemm_bf16-inl.hpp): C (+)= A·B over a row range,
// B packed in panels (panels.hpp) — the quantized linear's low-rank branch (x̃·L, then t·R) and
// its A16 weight product.
#pragma once

#include <masquant/config.hpp>

namespace masquant::detail::gemm {

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

}  // namespace masquant::detail::gemm
