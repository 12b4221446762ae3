// element_codec.hpp: stored bytes <-> typed elements, with the range checks conversions need.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <masquant/io/dtype.hpp>
#include <masquant/tensor/convert.hpp>
#include <type_traits>
#include <vector>

namespace masquant::detail {

/// Reads `n` elements of `Src` from possibly unaligned `bytes` and hands `fn` an aligned pointer
/// to them: the bytes themselves when aligned, else a copy.
template <class Src, class Fn>
void with_aligned(const unsigned char* bytes, index_t n, Fn&& fn) {
  if (reinterpret_cast<std::uintptr_t>(bytes) % alignof(Src) == 0) {
    fn(reinterpret_cast<const Src*>(bytes));
  } else {
    std::vector<Src> copy(static_cast<std::size_t>(n));
    if (n > 0) std::memcpy(copy.data(), bytes, static_cast<std::size_t>(n) * sizeof(Src));
    fn(static_cast<const Src*>(copy.data()));
  }
}

/// Converts `n` stored elements of `Src` to float. F32/F16/BF16/I8/U8 convert exactly; F64
/// rounds to nearest; I32 must be exact. Returns the index of the first element that cannot be
/// represented (a finite F64 beyond float's range, an I32 beyond 2^24 that float would round), or
/// -1. NaN and Inf are copied as they are.
template <class Src>
index_t decode_to_float(const unsigned char* bytes, index_t n, float* out) {
  index_t bad = -1;
  if (n == 0) return bad;
  with_aligned<Src>(bytes, n, [&](const Src* src) {
    convert(vector_view<const Src>(src, n), vector_view<float>(out, n));
    if constexpr (std::is_same_v<Src, double>) {
      for (index_t i = 0; i < n && bad < 0; ++i)
        if (std::isinf(out[i]) && std::isfinite(src[i])) bad = i;
    } else if constexpr (std::is_same_v<Src, std::int32_t>) {
      for (index_t i = 0; i < n && bad < 0; ++i)
        if (static_cast<double>(out[i]) != static_cast<double>(src[i])) bad = i;
    }
  });
  return bad;
}

/// Encodes `n` elements of `Src` as dtype `to` into `dst` (unaligned). float may be stored as
/// F32, F16, BF16 (round to nearest even) or F64; double as F64 or F32; every other type only as
/// its own dtype (the caller checks). Returns the index of the first finite element that the
/// narrower type turns into Inf, or -1; NaN and Inf are stored as they are.
template <class Src>
index_t encode_elements(const Src* src, index_t n, dtype to, unsigned char* dst) {
  auto narrow = [&](auto tag) -> index_t {
    using Dst = decltype(tag);
    for (index_t i = 0; i < n; ++i) {
      const Dst v = static_cast<Dst>(src[i]);
      if (Eigen::numext::isinf(v) && std::isfinite(static_cast<double>(src[i]))) return i;
      std::memcpy(dst + i * sizeof(Dst), &v, sizeof(Dst));
    }
    return -1;
  };
  if (to == dtype_of<Src>) {
    if (n > 0) std::memcpy(dst, src, static_cast<std::size_t>(n) * sizeof(Src));
    return -1;
  }
  if constexpr (std::is_same_v<Src, float>) {
    if (to == dtype::f16) return narrow(half());
    if (to == dtype::bf16) return narrow(bfloat16());
    if (to == dtype::f64) return narrow(double());
  } else if constexpr (std::is_same_v<Src, double>) {
    if (to == dtype::f32) return narrow(float());
  }
  MASQUANT_ASSERT(false);  // callers check can_encode() first
  return -1;
}

/// Whether encode_elements<Src> can store as `to`.
template <class Src>
constexpr bool can_encode(dtype to) noexcept {
  if (to == dtype_of<Src>) return true;
  if constexpr (std::is_same_v<Src, float>)
    return to == dtype::f16 || to == dtype::bf16 || to == dtype::f64;
  if constexpr (std::is_same_v<Src, double>) return to == dtype::f32;
  return false;
}

}  // namespace masquant::detail
