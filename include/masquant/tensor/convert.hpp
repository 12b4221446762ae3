// convert.hpp: element-type conversion between views (F16/BF16/F64 inputs to float and back).
#pragma once

#include <masquant/tensor/eigen.hpp>
#include <masquant/tensor/view.hpp>

#include <Eigen/Core>
#include <type_traits>

namespace masquant {

/// IEEE binary16, as stored in safetensors "F16".
using half = Eigen::half;
/// bfloat16, as stored in safetensors "BF16".
using bfloat16 = Eigen::bfloat16;

/// Copies src into dst converting each element (F16/BF16 -> float is exact; float -> F16/BF16
/// rounds to nearest even; double -> float rounds to nearest). Vectorised through Eigen.
/// Throws errc::shape_mismatch when the extents differ.
template <class From, class To>
void convert(matrix_view<const From> src, matrix_view<To> dst) {
  static_assert(!std::is_const_v<To>, "convert: destination must be writable");
  MASQUANT_CHECK(src.rows() == dst.rows() && src.cols() == dst.cols(), errc::shape_mismatch,
                 "convert: source is ", src.rows(), "x", src.cols(), ", destination ", dst.rows(),
                 "x", dst.cols());
  if (src.empty()) return;
  as_eigen(dst) = as_eigen(src).template cast<To>();
}

/// Vector form of convert().
template <class From, class To>
void convert(vector_view<const From> src, vector_view<To> dst) {
  static_assert(!std::is_const_v<To>, "convert: destination must be writable");
  MASQUANT_CHECK(src.size() == dst.size(), errc::shape_mismatch, "convert: source has ",
                 src.size(), " elements, destination ", dst.size());
  if (src.empty()) return;
  as_eigen(dst) = as_eigen(src).template cast<To>();
}

}  // namespace masquant
