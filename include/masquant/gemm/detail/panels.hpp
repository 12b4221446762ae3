// panels.hpp: the right-hand operands of the float and bf16 products (float_gemm: the quantized
// linear's low-rank factors L and R, and its A16 weight), packed once into column panels of 16.
//
// A panel holds 16 consecutive columns of a [K, N] matrix, zero beyond N:
//   f32:  element (k, c) at k * 16 + c                      (one 64-byte line per k)
//   bf16: element (k, c) at (k / 2) * 32 + c * 2 + k % 2   (one 64-byte line per pair of k; K
//         padded to even with zeros) — the operand layout of vdpbf16ps, which multiplies 16 lanes
//         of bf16 pairs by one broadcast pair of the activation row.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <masquant/config.hpp>
#include <masquant/detail/aligned_buffer.hpp>
#include <masquant/detail/round_up.hpp>
#include <masquant/detail/shared_array.hpp>
#include <masquant/parallel.hpp>
#include <utility>

namespace masquant::detail::gemm {

inline constexpr index_t panel_cols = 16;

using masquant::detail::round_up;

/// bf16 bits of a finite float, rounded to nearest even (as Eigen::bfloat16 and vcvtneps2bf16
/// for normal numbers).
inline std::uint16_t to_bf16(float f) noexcept {
  std::uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<std::uint16_t>(u >> 16);
}

/// The float value of bf16 bits (exact).
inline float from_bf16(std::uint16_t h) noexcept {
  const std::uint32_t u = std::uint32_t{h} << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

/// A [K, N] matrix packed into ceil(N / 16) panels (see the file comment). Immutable once
/// packed (or adopted from a packed image); `stride` is the number of elements of one panel.
template <class T>
struct panels {
  index_t k = 0, n = 0, count = 0, stride = 0;
  shared_array<T> data;
  const T* panel(index_t p) const noexcept { return data.data() + p * stride; }
};

// Runs task(q) for every panel q, on `parallel` when given (panels are disjoint).
template <class Task>
void for_each_panel(index_t count, const parallel_for_fn& parallel, const Task& task) {
  if (parallel && count > 1) {
    parallel(count, std::function<void(index_t)>(std::cref(task)));
  } else {
    for (index_t q = 0; q < count; ++q) task(q);
  }
}

/// Packs element (k, c) = at(k, c) of a [K, N] matrix as f32 panels, one task per panel on
/// `parallel` (serial when empty).
template <class At>
panels<float> pack_f32(index_t k, index_t n, At at, const parallel_for_fn& parallel = {}) {
  panels<float> p;
  p.k = k;
  p.n = n;
  p.count = (n + panel_cols - 1) / panel_cols;
  p.stride = k * panel_cols;
  aligned_buffer<float> data(static_cast<std::size_t>(p.count * p.stride));
  float* out = data.data();
  for_each_panel(p.count, parallel, [&](index_t q) {
    float* dst = out + q * p.stride;
    const index_t c0 = q * panel_cols, c1 = std::min(n, c0 + panel_cols);
    for (index_t i = 0; i < k; ++i) {
      for (index_t c = c0; c < c1; ++c) dst[i * panel_cols + (c - c0)] = at(i, c);
    }
  });
  p.data = shared_array<float>(std::move(data));
  return p;
}

/// Packs element (k, c) = at(k, c) (a float, rounded to bf16) of a [K, N] matrix as bf16 panels,
/// one task per panel on `parallel` (serial when empty).
template <class At>
panels<std::uint16_t> pack_bf16(index_t k, index_t n, At at, const parallel_for_fn& parallel = {}) {
  panels<std::uint16_t> p;
  p.k = k;
  p.n = n;
  p.count = (n + panel_cols - 1) / panel_cols;
  p.stride = round_up(k, 2) * panel_cols;
  aligned_buffer<std::uint16_t> data(static_cast<std::size_t>(p.count * p.stride));
  std::uint16_t* out = data.data();
  for_each_panel(p.count, parallel, [&](index_t q) {
    std::uint16_t* dst = out + q * p.stride;
    const index_t c0 = q * panel_cols, c1 = std::min(n, c0 + panel_cols);
    for (index_t i = 0; i < k; ++i) {
      for (index_t c = c0; c < c1; ++c)
        dst[(i / 2) * 2 * panel_cols + (c - c0) * 2 + i % 2] = to_bf16(at(i, c));
    }
  });
  p.data = shared_array<std::uint16_t>(std::move(data));
  return p;
}

/// Element (k, c) of packed panels, as float.
inline float panel_value(const panels<float>& p, index_t k, index_t c) noexcept {
  return p.panel(c / panel_cols)[k * panel_cols + c % panel_cols];
}
inline float panel_value(const panels<std::uint16_t>& p, index_t k, index_t c) noexcept {
  return from_bf16(
      p.panel(c / panel_cols)[(k / 2) * 2 * panel_cols + (c % panel_cols) * 2 + k % 2]);
}

}  // namespace masquant::detail::gemm
