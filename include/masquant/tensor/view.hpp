// view.hpp: non-owning row-major matrix and vector views over caller memory.
#pragma once

#include <masquant/config.hpp>
#include <masquant/error.hpp>

#include <type_traits>
#include <vector>

namespace masquant {

/// A contiguous run of `size` elements; does not own its memory.
///
/// Constness lives in the element type: `vector_view<const float>` is read-only, and a
/// `vector_view<float>` converts to it implicitly (never the other way).
template <class T>
class vector_view {
 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;

  constexpr vector_view() noexcept = default;

  /// Views `size` elements at `data`; throws errc::invalid_argument for a negative size or a null
  /// pointer with a positive size.
  vector_view(T* data, index_t size) : data_(data), size_(size) {
    MASQUANT_CHECK(size >= 0, errc::invalid_argument, "vector_view: negative size ", size);
    MASQUANT_CHECK(data != nullptr || size == 0, errc::invalid_argument,
                   "vector_view: null data with size ", size);
  }

  /// Views a std::vector (its size is fixed for the view's lifetime).
  template <class Alloc>
  vector_view(std::vector<value_type, Alloc>& v)  // NOLINT(google-explicit-constructor)
      : data_(v.data()), size_(static_cast<index_t>(v.size())) {}
  template <class Alloc, class U = T, std::enable_if_t<std::is_const_v<U>, int> = 0>
  vector_view(const std::vector<value_type, Alloc>& v)  // NOLINT(google-explicit-constructor)
      : data_(v.data()), size_(static_cast<index_t>(v.size())) {}

  /// Adds const: vector_view<float> -> vector_view<const float>.
  template <class U, std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>, int> = 0>
  constexpr vector_view(vector_view<U> other) noexcept  // NOLINT(google-explicit-constructor)
      : data_(other.data()), size_(other.size()) {}

  constexpr T* data() const noexcept { return data_; }
  constexpr index_t size() const noexcept { return size_; }
  constexpr bool empty() const noexcept { return size_ == 0; }
  constexpr T& operator[](index_t i) const noexcept {
    MASQUANT_ASSERT(i >= 0 && i < size_);
    return data_[i];
  }
  constexpr T* begin() const noexcept { return data_; }
  constexpr T* end() const noexcept { return data_ + size_; }

  /// Elements [offset, offset + count); throws errc::out_of_range when outside.
  vector_view subview(index_t offset, index_t count) const {
    MASQUANT_CHECK(offset >= 0 && count >= 0 && offset + count <= size_, errc::out_of_range,
                   "vector_view::subview: [", offset, ", ", offset + count,
                   ") outside a view of size ", size_);
    return vector_view(data_ + offset, count);
  }

 private:
  T* data_ = nullptr;
  index_t size_ = 0;
};

/// A row-major matrix of `rows` x `cols` elements whose rows start `stride` elements apart; does
/// not own its memory.
///
/// Rows are tokens for activations and output channels for weights (PyTorch's `[out, in]`
/// layout). Constness lives in the element type, as for vector_view.
///
/// Example:
/// \code
///   std::vector<float> buf(4 * 8);
///   masquant::matrix_view<float> x(buf.data(), 4, 8);    // contiguous 4x8
///   auto right = x.block(0, 4, 4, 4);                    // columns 4..7, stride 8
/// \endcode
template <class T>
class matrix_view {
 public:
  using element_type = T;
  using value_type = std::remove_cv_t<T>;

  constexpr matrix_view() noexcept = default;

  /// Views rows x cols elements with a row stride in elements; throws errc::invalid_argument for
  /// negative extents, a stride below cols, or a null pointer with a positive size.
  matrix_view(T* data, index_t rows, index_t cols, index_t stride)
      : data_(data), rows_(rows), cols_(cols), stride_(stride) {
    MASQUANT_CHECK(rows >= 0 && cols >= 0, errc::invalid_argument,
                   "matrix_view: negative extent ", rows, "x", cols);
    MASQUANT_CHECK(stride >= cols || rows <= 1, errc::invalid_argument,
                   "matrix_view: row stride ", stride, " is below the column count ", cols);
    MASQUANT_CHECK(stride >= 0, errc::invalid_argument, "matrix_view: negative stride ", stride);
    MASQUANT_CHECK(data != nullptr || rows == 0 || cols == 0, errc::invalid_argument,
                   "matrix_view: null data for a ", rows, "x", cols, " view");
  }

  /// Views a contiguous rows x cols matrix.
  matrix_view(T* data, index_t rows, index_t cols) : matrix_view(data, rows, cols, cols) {}

  /// Adds const: matrix_view<float> -> matrix_view<const float>.
  template <class U, std::enable_if_t<std::is_convertible_v<U (*)[], T (*)[]>, int> = 0>
  constexpr matrix_view(matrix_view<U> other) noexcept  // NOLINT(google-explicit-constructor)
      : data_(other.data()), rows_(other.rows()), cols_(other.cols()), stride_(other.stride()) {}

  constexpr T* data() const noexcept { return data_; }
  constexpr index_t rows() const noexcept { return rows_; }
  constexpr index_t cols() const noexcept { return cols_; }
  /// Distance in elements between the starts of two consecutive rows.
  constexpr index_t stride() const noexcept { return stride_; }
  constexpr index_t size() const noexcept { return rows_ * cols_; }
  constexpr bool empty() const noexcept { return rows_ == 0 || cols_ == 0; }
  constexpr bool is_contiguous() const noexcept { return stride_ == cols_ || rows_ <= 1; }

  constexpr T& operator()(index_t r, index_t c) const noexcept {
    MASQUANT_ASSERT(r >= 0 && r < rows_ && c >= 0 && c < cols_);
    return data_[r * stride_ + c];
  }

  /// Pointer to the first element of row r.
  constexpr T* row_data(index_t r) const noexcept {
    MASQUANT_ASSERT(r >= 0 && r < rows_);
    return data_ + r * stride_;
  }

  /// Row r as a vector view; throws errc::out_of_range when r is outside.
  vector_view<T> row(index_t r) const {
    MASQUANT_CHECK(r >= 0 && r < rows_, errc::out_of_range, "matrix_view::row: row ", r,
                   " outside ", rows_, " rows");
    return vector_view<T>(data_ + r * stride_, cols_);
  }

  /// The nr x nc sub-matrix starting at (r0, c0); throws errc::out_of_range when outside.
  matrix_view block(index_t r0, index_t c0, index_t nr, index_t nc) const {
    MASQUANT_CHECK(r0 >= 0 && c0 >= 0 && nr >= 0 && nc >= 0 && r0 + nr <= rows_ &&
                       c0 + nc <= cols_,
                   errc::out_of_range, "matrix_view::block: [", r0, ":", r0 + nr, ", ", c0, ":",
                   c0 + nc, ") outside a ", rows_, "x", cols_, " view");
    return matrix_view(nr * nc == 0 ? data_ : data_ + r0 * stride_ + c0, nr, nc, stride_);
  }

  /// Rows [r0, r0 + n).
  matrix_view middle_rows(index_t r0, index_t n) const { return block(r0, 0, n, cols_); }

 private:
  T* data_ = nullptr;
  index_t rows_ = 0;
  index_t cols_ = 0;
  index_t stride_ = 0;
};

/// Views a contiguous std::vector as a rows x cols matrix; throws errc::shape_mismatch when the
/// vector does not hold exactly rows * cols elements.
template <class T, class Alloc>
matrix_view<T> make_matrix_view(std::vector<T, Alloc>& v, index_t rows, index_t cols) {
  MASQUANT_CHECK(rows >= 0 && cols >= 0 && static_cast<index_t>(v.size()) == rows * cols,
                 errc::shape_mismatch, "make_matrix_view: a vector of ", v.size(),
                 " elements is not ", rows, "x", cols);
  return matrix_view<T>(v.data(), rows, cols);
}
template <class T, class Alloc>
matrix_view<const T> make_matrix_view(const std::vector<T, Alloc>& v, index_t rows, index_t cols) {
  MASQUANT_CHECK(rows >= 0 && cols >= 0 && static_cast<index_t>(v.size()) == rows * cols,
                 errc::shape_mismatch, "make_matrix_view: a vector of ", v.size(),
                 " elements is not ", rows, "x", cols);
  return matrix_view<const T>(v.data(), rows, cols);
}

}  // namespace masquant
