// token_pass.hpp: what the quantized linear's per-token pass reads and writes (plain data), and
// the pass compiled for every family of this build (token_pass-inl.hpp).
#pragma once

#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/gemm/detail/float_families.hpp>
#include <masquant/isa.hpp>
#include <masquant/layer/linear_io.hpp>
#include <masquant/modality/modality.hpp>
#include <masquant/quant/detail/common.hpp>
#include <masquant/quant/detail/families.hpp>
#include <masquant/tensor/view.hpp>
#include <vector>

namespace masquant::detail::layer {

/// Everything the pass reads and writes, for all tokens.
struct token_pass_args {
  linear_input x;                                 // [M, K], float, bf16 or fp16
  const modality_id* ids = nullptr;               // [M], or null: every token is the reference
  const std::vector<std::vector<float>>* smooth;  // [modalities][K]
  int bits = 8;                                   // activation bits; 0: not quantized (A16)
  // Quantized activations (bits > 0): q [M, K] (stride K), scale [M], sum [M].
  std::int8_t* q = nullptr;
  float* scale = nullptr;
  std::int32_t* sum = nullptr;
  // A16: smoothed rows, [M, round_up(K, 16)].
  float* xs = nullptr;
  index_t ldxs = 0;
  // Low-rank rows: token i goes to row pos[i] (-1: none) of its modality's gathered block, which
  // starts at gathered_f[m] (float, stride ldf) or gathered_b[m] (bf16, stride ldb; avx512 family
  // with AVX512_BF16 only).
  const index_t* pos = nullptr;
  float* const* gathered_f = nullptr;
  std::uint16_t* const* gathered_b = nullptr;
  index_t ldf = 0, ldb = 0;
};

}  // namespace masquant::detail::layer

// NOLINTNEXTLINE(bugprone-macro-parentheses): an #include path
#define MASQUANT_FAMILY_SOURCE <masquant/layer/detail/token_pass-inl.hpp>
#include <masquant/detail/isa/foreach_family.hpp>
