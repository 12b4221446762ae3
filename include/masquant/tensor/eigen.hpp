// eigen.hpp: adapters between masquant views and Eigen maps, without copies.
#pragma once

#include <masquant/tensor/view.hpp>

#include <Eigen/Core>
#include <type_traits>

namespace masquant {

/// Row-major dynamic Eigen matrix of T (masquant's storage order).
template <class T>
using row_matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

/// The Eigen::Map type as_eigen() returns for a matrix_view<T> (const-qualified when T is).
template <class T>
using eigen_matrix_map =
    Eigen::Map<std::conditional_t<std::is_const_v<T>, const row_matrix<std::remove_const_t<T>>,
                                  row_matrix<std::remove_const_t<T>>>,
               Eigen::Unaligned, Eigen::OuterStride<>>;

/// The Eigen::Map type as_eigen() returns for a vector_view<T>.
template <class T>
using eigen_vector_map = Eigen::Map<
    std::conditional_t<std::is_const_v<T>, const Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, 1>,
                       Eigen::Matrix<std::remove_const_t<T>, Eigen::Dynamic, 1>>>;

/// Maps a view as an Eigen row-major matrix (no copy; writes go to the view's memory).
template <class T>
eigen_matrix_map<T> as_eigen(matrix_view<T> v) {
  // A row count of 0 or 1 can carry any stride; Eigen needs one at least the column count.
  const index_t stride = v.rows() <= 1 ? v.cols() : v.stride();
  return eigen_matrix_map<T>(v.data(), v.rows(), v.cols(), Eigen::OuterStride<>(stride));
}

/// Maps a vector view as an Eigen column vector (no copy).
template <class T>
eigen_vector_map<T> as_eigen(vector_view<T> v) {
  return eigen_vector_map<T>(v.data(), v.size());
}

/// Views a row-major Eigen matrix, Map or Ref with unit inner stride (no copy). Column-major
/// objects are rejected at compile time: view their transpose's storage explicitly instead.
template <class Derived>
auto view_of(Eigen::PlainObjectBase<Derived>& m) {
  static_assert(Derived::IsRowMajor || Derived::ColsAtCompileTime == 1 ||
                    Derived::RowsAtCompileTime == 1,
                "masquant views are row-major: use Eigen::Matrix<T, Dynamic, Dynamic, RowMajor>");
  using T = typename Derived::Scalar;
  if constexpr (Derived::IsRowMajor) {
    return matrix_view<T>(m.data(), m.rows(), m.cols(), m.outerStride());
  } else {
    return matrix_view<T>(m.data(), m.rows(), m.cols(), m.cols());
  }
}
template <class Derived>
auto view_of(const Eigen::PlainObjectBase<Derived>& m) {
  static_assert(Derived::IsRowMajor || Derived::ColsAtCompileTime == 1 ||
                    Derived::RowsAtCompileTime == 1,
                "masquant views are row-major: use Eigen::Matrix<T, Dynamic, Dynamic, RowMajor>");
  using T = const typename Derived::Scalar;
  if constexpr (Derived::IsRowMajor) {
    return matrix_view<T>(m.data(), m.rows(), m.cols(), m.outerStride());
  } else {
    return matrix_view<T>(m.data(), m.rows(), m.cols(), m.cols());
  }
}

/// Views a row-major Eigen::Map or Eigen::Ref (any outer stride, unit inner stride). A writable
/// Map gives a writable view: the Map is a handle, its constness is not its memory's.
template <class Derived, int Level>
auto view_of(const Eigen::MapBase<Derived, Level>& m) {
  static_assert(Derived::IsRowMajor || Derived::ColsAtCompileTime == 1 ||
                    Derived::RowsAtCompileTime == 1,
                "masquant views are row-major: map with Eigen::RowMajor");
  using Scalar = std::conditional_t<Level == Eigen::WriteAccessors, typename Derived::Scalar,
                                    const typename Derived::Scalar>;
  MASQUANT_CHECK(m.innerStride() == 1 || m.size() <= 1, errc::invalid_argument,
                 "view_of: Eigen object with inner stride ", m.innerStride(),
                 " (masquant views need unit inner stride)");
  const index_t stride = Derived::IsRowMajor ? m.outerStride() : m.cols();
  return matrix_view<Scalar>(const_cast<Scalar*>(m.data()), m.rows(), m.cols(), stride);
}

/// Views an Eigen column vector (Matrix, Map or Ref with unit stride) as a vector_view.
template <class Derived>
auto vector_view_of(Eigen::PlainObjectBase<Derived>& v) {
  static_assert(Derived::ColsAtCompileTime == 1 || Derived::RowsAtCompileTime == 1,
                "vector_view_of needs an Eigen vector");
  return vector_view<typename Derived::Scalar>(v.data(), v.size());
}
template <class Derived>
auto vector_view_of(const Eigen::PlainObjectBase<Derived>& v) {
  static_assert(Derived::ColsAtCompileTime == 1 || Derived::RowsAtCompileTime == 1,
                "vector_view_of needs an Eigen vector");
  return vector_view<const typename Derived::Scalar>(v.data(), v.size());
}

}  // namespace masquant
