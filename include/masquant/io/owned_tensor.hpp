// owned_tensor.hpp: an n-dimensional row-major tensor that owns its elements (what loads return).
#pragma once

#include <masquant/error.hpp>
#include <masquant/io/tensor_shape.hpp>
#include <masquant/tensor/view.hpp>
#include <utility>
#include <vector>

namespace masquant {

/// A row-major tensor of `T` owning its elements in a std::vector, with its shape.
///
/// View it as a matrix (shape().rows() x shape().cols(), see tensor_shape) or as a flat vector.
///
/// Example:
/// \code
///   masquant::owned_tensor<float> w({4, 8});        // zero-filled 4x8
///   w.matrix()(1, 2) = 3.0f;
///   masquant::matrix_view<const float> wv = w.matrix();
/// \endcode
template <class T>
class owned_tensor {
 public:
  /// An empty tensor of shape [0].
  owned_tensor() : shape_({0}) {}

  /// A tensor of the given shape with every element `fill`.
  explicit owned_tensor(tensor_shape shape, T fill = T{})
      : shape_(std::move(shape)), values_(static_cast<std::size_t>(shape_.elements()), fill) {}

  /// Adopts `values`; throws errc::shape_mismatch unless it holds exactly shape.elements().
  owned_tensor(tensor_shape shape, std::vector<T> values)
      : shape_(std::move(shape)), values_(std::move(values)) {
    MASQUANT_CHECK(static_cast<index_t>(values_.size()) == shape_.elements(), errc::shape_mismatch,
                   "owned_tensor: ", values_.size(), " values for shape ", shape_);
  }

  const tensor_shape& shape() const noexcept { return shape_; }
  index_t rows() const noexcept { return shape_.rows(); }
  index_t cols() const noexcept { return shape_.cols(); }
  index_t size() const noexcept { return static_cast<index_t>(values_.size()); }

  T* data() noexcept { return values_.data(); }
  const T* data() const noexcept { return values_.data(); }
  std::vector<T>& values() noexcept { return values_; }
  const std::vector<T>& values() const noexcept { return values_; }

  /// The rows() x cols() matrix.
  matrix_view<T> matrix() { return {values_.data(), rows(), cols(), cols()}; }
  matrix_view<const T> matrix() const { return {values_.data(), rows(), cols(), cols()}; }
  /// All elements, flattened.
  vector_view<T> vector() { return {values_.data(), size()}; }
  vector_view<const T> vector() const noexcept { return {values_.data(), size()}; }

 private:
  tensor_shape shape_;
  std::vector<T> values_;
};

}  // namespace masquant
