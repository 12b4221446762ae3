// layout.hpp: constants of the packed weight layout.
//
// Packed weights are column blocks of 64 output channels (N padded to a multiple of 64 with
// zero weights and zero scales). A block is a run of 256-byte steps along K:
//   int8: step g holds k = 4g..4g+3; byte (c * 4 + t) = w[n0 + c][4g + t] + 128   (c < 64, t < 4)
//   int4: step p holds k = 8p..8p+7; byte (c * 4 + t) = (w[n0+c][8p+t] + 8)
//                                                     | (w[n0+c][8p+4+t] + 8) << 4
// so one 64-byte line is 16 channels x 4 consecutive k: exactly the operand vpdpbusd multiplies
// (unsigned bytes) with 4 broadcast activation bytes (signed). Padding k and padding channels
// hold byte 0, which contributes nothing whatever the activation byte is.
#pragma once

#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/detail/round_up.hpp>

namespace masquant::detail::gemm {

inline constexpr index_t block_cols = 64;   // output channels per column block
inline constexpr index_t step_bytes = 256;  // bytes of one step of a column block
inline constexpr index_t step_k_int8 = 4;   // k per step, int8 weights
inline constexpr index_t step_k_int4 = 8;   // k per step, int4 weights

using masquant::detail::round_up;

}  // namespace masquant::detail::gemm
