// tensor_ref.hpp: a read-only tensor that either views a mapped file (zero-copy) or owns a copy.
#pragma once

#include <masquant/io/owned_tensor.hpp>
#include <masquant/io/tensor_shape.hpp>
#include <masquant/tensor/view.hpp>
#include <memory>
#include <utility>
#include <vector>

namespace masquant {

/// Read-only row-major tensor of `T` whose elements live either in a memory-mapped file (a
/// zero-copy view; the ref keeps the mapping alive, so it may outlive the safetensors_file that
/// made it) or in a copy that the ref owns. Cheap to copy: copies share the elements.
///
/// Refs made by safetensors_file::from_memory() borrow the caller's buffer, which must outlive
/// them.
template <class T>
class tensor_ref {
 public:
  /// An empty tensor of shape [0].
  tensor_ref() : shape_({0}) {}

  /// Views `shape.elements()` elements at `data`, keeping `owner` alive (may be null when the
  /// caller guarantees the lifetime).
  tensor_ref(tensor_shape shape, const T* data, std::shared_ptr<const void> owner)
      : shape_(std::move(shape)), data_(data), owner_(std::move(owner)), zero_copy_(true) {}

  /// Takes over an owned tensor (not zero-copy).
  explicit tensor_ref(owned_tensor<T>&& t) : shape_(t.shape()) {
    auto values = std::make_shared<std::vector<T>>(std::move(t.values()));
    data_ = values->data();
    owner_ = std::move(values);
  }

  const tensor_shape& shape() const noexcept { return shape_; }
  index_t rows() const noexcept { return shape_.rows(); }
  index_t cols() const noexcept { return shape_.cols(); }
  index_t size() const noexcept { return shape_.elements(); }
  const T* data() const noexcept { return data_; }

  /// True when the elements are read in place from the file (no copy was made).
  bool is_zero_copy() const noexcept { return zero_copy_; }

  /// The rows() x cols() matrix.
  matrix_view<const T> matrix() const { return {data_, rows(), cols(), cols()}; }
  /// All elements, flattened.
  vector_view<const T> vector() const { return {data_, size()}; }

 private:
  tensor_shape shape_;
  const T* data_ = nullptr;
  std::shared_ptr<const void> owner_;
  bool zero_copy_ = false;
};

}  // namespace masquant
