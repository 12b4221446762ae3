// tile.hpp: what a GEMM micro-kernel is asked to compute, and the scalar epilogue every kernel
// shares for partial vectors.
#pragma once

#include <cstdint>
#include <cstring>
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
inline void finish_row_scalar(const tile_args& t, index_t r, const std::int32_t* acc,
                              index_t width) noexcept {
  if (t.acc_out != nullptr) {
    for (index_t c = 0; c < width; ++c) t.acc_out[r * width + c] = acc[c];
    return;
  }
  for (index_t c = 0; c < t.cols; ++c) finish_scalar(t, r, c, static_cast<std::uint32_t>(acc[c]));
}

}  // namespace masquant::detail::gemm
