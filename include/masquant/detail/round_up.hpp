// round_up.hpp: x rounded up to a multiple of m, for the padded strides and block counts of the
// GEMM's packed weights and the layer's panels.
#pragma once

#include <masquant/config.hpp>

namespace masquant::detail {

/// The least multiple of m (> 0) not below x (>= 0).
inline constexpr index_t round_up(index_t x, index_t m) noexcept {
  return (x + m - 1) / m * m;
}

}  // namespace masquant::detail
