// convert.hpp: element-type conversion between views (F16/BF16/F64 inputs to float and back).
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <masquant/tensor/eigen.hpp>
#include <masquant/tensor/view.hpp>
#include <type_traits>

namespace masquant {

/// IEEE binary16, as stored in safetensors "F16".
using half = Eigen::half;
/// bfloat16, as stored in safetensors "BF16".
using bfloat16 = Eigen::bfloat16;

/// Whether convert() takes T: the element types whose values it knows (float, double, half,
/// bfloat16, and the integers int8_t, uint8_t, int32_t that tensors hold as numbers). Not
/// uint16_t: F16/BF16 data held as raw 16-bit storage would be converted as integers (0x3F80 to
/// 16256.0f); view it as masquant::half or masquant::bfloat16 instead.
template <class T>
inline constexpr bool is_convert_element_v =
    std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, half> ||
    std::is_same_v<T, bfloat16> || std::is_same_v<T, std::int8_t> ||
    std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::int32_t>;

namespace detail {
template <class From, class To>
constexpr void check_convert_types() noexcept {
  static_assert(!std::is_const_v<To>, "convert: destination must be writable");
  static_assert(is_convert_element_v<std::remove_const_t<From>> && is_convert_element_v<To>,
                "convert: element types are float, double, half, bfloat16, int8_t, uint8_t and "
                "int32_t; view raw F16/BF16 storage (uint16_t) as masquant::half or "
                "masquant::bfloat16");
}
}  // namespace detail

/// Copies src into dst converting each element (F16/BF16 -> float is exact; float -> F16/BF16
/// rounds to nearest even; double -> float rounds to nearest). Vectorised through Eigen.
/// Throws errc::shape_mismatch when the extents differ. Element types other than
/// is_convert_element_v's do not compile.
template <class From, class To>
void convert(matrix_view<const From> src, matrix_view<To> dst) {
  detail::check_convert_types<From, To>();
  MASQUANT_CHECK(src.rows() == dst.rows() && src.cols() == dst.cols(), errc::shape_mismatch,
                 "convert: source is ", src.rows(), "x", src.cols(), ", destination ", dst.rows(),
                 "x", dst.cols());
  if (src.empty()) return;
  as_eigen(dst) = as_eigen(src).template cast<To>();
}

/// Vector form of convert().
template <class From, class To>
void convert(vector_view<const From> src, vector_view<To> dst) {
  detail::check_convert_types<From, To>();
  MASQUANT_CHECK(src.size() == dst.size(), errc::shape_mismatch, "convert: source has ", src.size(),
                 " elements, destination ", dst.size());
  if (src.empty()) return;
  as_eigen(dst) = as_eigen(src).template cast<To>();
}

}  // namespace masquant
