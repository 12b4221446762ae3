// dtype.hpp: element types of safetensors tensors, their sizes and names.
#pragma once

#include <cstddef>
#include <cstdint>
#include <masquant/tensor/convert.hpp>
#include <optional>
#include <ostream>
#include <string_view>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error \
    "masquant/io reads and writes safetensors (little-endian) by plain copies: little-endian hosts only"
#endif

namespace masquant {

/// Element type of a stored tensor, as named in a safetensors header ("F32", "BF16", ...).
///
/// Every dtype of the safetensors format with a whole-byte element size is recognised, so that a
/// file holding, say, an I64 tensor still opens and lists; typed loads support the
/// is_supported() subset (F32, F16, BF16, F64, I8, U8, I32, I64). The declaration order is the
/// reference Rust crate's (increasing alignment): the writer sorts by it.
enum class dtype : std::uint8_t {
  boolean,  ///< "BOOL", one byte
  u8,       ///< "U8"
  i8,       ///< "I8"
  f8_e5m2,  ///< "F8_E5M2"
  f8_e4m3,  ///< "F8_E4M3"
  i16,      ///< "I16"
  u16,      ///< "U16"
  f16,      ///< "F16", IEEE binary16 (masquant::half)
  bf16,     ///< "BF16", bfloat16 (masquant::bfloat16)
  i32,      ///< "I32"
  u32,      ///< "U32"
  f32,      ///< "F32"
  f64,      ///< "F64"
  i64,      ///< "I64"
  u64,      ///< "U64"
};

/// Size in bytes of one element.
constexpr std::size_t dtype_size(dtype t) noexcept {
  switch (t) {
    case dtype::boolean:
    case dtype::u8:
    case dtype::i8:
    case dtype::f8_e5m2:
    case dtype::f8_e4m3:
      return 1;
    case dtype::i16:
    case dtype::u16:
    case dtype::f16:
    case dtype::bf16:
      return 2;
    case dtype::i32:
    case dtype::u32:
    case dtype::f32:
      return 4;
    case dtype::f64:
    case dtype::i64:
    case dtype::u64:
      return 8;
  }
  return 0;
}

/// The header spelling of a dtype ("BF16").
constexpr const char* to_string(dtype t) noexcept {
  switch (t) {
    case dtype::boolean:
      return "BOOL";
    case dtype::u8:
      return "U8";
    case dtype::i8:
      return "I8";
    case dtype::f8_e5m2:
      return "F8_E5M2";
    case dtype::f8_e4m3:
      return "F8_E4M3";
    case dtype::i16:
      return "I16";
    case dtype::u16:
      return "U16";
    case dtype::f16:
      return "F16";
    case dtype::bf16:
      return "BF16";
    case dtype::i32:
      return "I32";
    case dtype::u32:
      return "U32";
    case dtype::f32:
      return "F32";
    case dtype::f64:
      return "F64";
    case dtype::i64:
      return "I64";
    case dtype::u64:
      return "U64";
  }
  return "?";
}

/// Writes the header spelling.
inline std::ostream& operator<<(std::ostream& out, dtype t) {
  return out << to_string(t);
}

/// The dtype spelled `name` (case-sensitive, as in headers), or nothing for an unknown name.
inline std::optional<dtype> parse_dtype(std::string_view name) noexcept {
  for (int i = 0; i <= static_cast<int>(dtype::u64); ++i) {
    const auto t = static_cast<dtype>(i);
    if (name == to_string(t)) return t;
  }
  return std::nullopt;
}

/// True for the dtypes masquant loads and stores as typed elements: F32, F16, BF16, F64, I8, U8,
/// I32, I64. The others are listed and reachable as raw bytes only.
constexpr bool is_supported(dtype t) noexcept {
  return t == dtype::f32 || t == dtype::f16 || t == dtype::bf16 || t == dtype::f64 ||
         t == dtype::i8 || t == dtype::u8 || t == dtype::i32 || t == dtype::i64;
}

namespace detail {
template <class T>
struct dtype_of_impl;  // undefined: T has no safetensors dtype
template <>
struct dtype_of_impl<float> {
  static constexpr dtype value = dtype::f32;
};
template <>
struct dtype_of_impl<double> {
  static constexpr dtype value = dtype::f64;
};
template <>
struct dtype_of_impl<half> {
  static constexpr dtype value = dtype::f16;
};
template <>
struct dtype_of_impl<bfloat16> {
  static constexpr dtype value = dtype::bf16;
};
template <>
struct dtype_of_impl<std::int8_t> {
  static constexpr dtype value = dtype::i8;
};
template <>
struct dtype_of_impl<std::uint8_t> {
  static constexpr dtype value = dtype::u8;
};
template <>
struct dtype_of_impl<std::int32_t> {
  static constexpr dtype value = dtype::i32;
};
template <>
struct dtype_of_impl<std::int64_t> {
  static constexpr dtype value = dtype::i64;
};
}  // namespace detail

/// The dtype that stores a C++ element type: float F32, double F64, half F16, bfloat16 BF16,
/// int8_t I8, uint8_t U8, int32_t I32, int64_t I64 (other types do not compile).
template <class T>
inline constexpr dtype dtype_of = detail::dtype_of_impl<T>::value;

}  // namespace masquant
