// linear_io.hpp: the element types quantized_linear::forward reads and writes, and the views that
// carry them (an engine's bf16 or fp16 hidden states in, float or bf16 outputs out).
#pragma once

#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/tensor/convert.hpp>
#include <masquant/tensor/view.hpp>
#include <type_traits>

namespace masquant {

// GCC before 13 reports a scoped enumerator named like a type of the namespace (bfloat16) as
// shadowing it under -Wshadow; it shadows nothing, being reachable only as element_type::bfloat16.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#endif
/// Element type of a layer's activations or outputs.
enum class element_type : std::uint8_t {
  float32,   ///< float
  bfloat16,  ///< masquant::bfloat16
  float16,   ///< masquant::half (IEEE binary16)
};
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/// The element_type of T (float, bfloat16 or half, const or not).
template <class T>
inline constexpr element_type element_type_of =
    std::is_same_v<std::remove_const_t<T>, float>      ? element_type::float32
    : std::is_same_v<std::remove_const_t<T>, bfloat16> ? element_type::bfloat16
                                                       : element_type::float16;

/// forward's activations: a read-only [tokens, d_in] matrix of float, bfloat16 or half, made
/// implicitly from a matrix_view of one of them. bf16 and fp16 rows are widened to float (exactly)
/// one row at a time inside the layer's token pass: there is no separate conversion pass, and
/// the result is the float path's on the widened values, bit for bit.
class linear_input {
 public:
  linear_input() = default;
  template <class T, std::enable_if_t<std::is_same_v<std::remove_const_t<T>, float> ||
                                          std::is_same_v<std::remove_const_t<T>, bfloat16> ||
                                          std::is_same_v<std::remove_const_t<T>, half>,
                                      int> = 0>
  linear_input(matrix_view<T> x) noexcept  // NOLINT(google-explicit-constructor)
      : data_(x.data()),
        rows_(x.rows()),
        cols_(x.cols()),
        stride_(x.stride()),
        type_(element_type_of<T>) {}

  element_type type() const noexcept { return type_; }
  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }
  /// Distance in elements between the starts of two consecutive rows.
  index_t stride() const noexcept { return stride_; }
  /// The first element (of type()).
  const void* data() const noexcept { return data_; }

  /// Row r as float into out[0, cols()) (cold paths: error messages).
  void row_to_float(index_t r, float* out) const noexcept {
    for (index_t c = 0; c < cols_; ++c) {
      const index_t at = r * stride_ + c;
      switch (type_) {
        case element_type::float32:
          out[c] = static_cast<const float*>(data_)[at];
          break;
        case element_type::bfloat16:
          out[c] = static_cast<float>(static_cast<const bfloat16*>(data_)[at]);
          break;
        case element_type::float16:
          out[c] = static_cast<float>(static_cast<const half*>(data_)[at]);
          break;
      }
    }
  }

 private:
  const void* data_ = nullptr;
  index_t rows_ = 0, cols_ = 0, stride_ = 0;
  element_type type_ = element_type::float32;
};

/// forward's outputs: a writable [tokens, d_out] matrix of float or bfloat16, made implicitly
/// from a matrix_view<float> or matrix_view<bfloat16>. bf16 outputs are the float outputs rounded
/// once to nearest even.
class linear_output {
 public:
  linear_output() = default;
  template <class T, std::enable_if_t<std::is_same_v<T, float> || std::is_same_v<T, bfloat16>,
                                      int> = 0>
  linear_output(matrix_view<T> y) noexcept  // NOLINT(google-explicit-constructor)
      : data_(y.data()),
        rows_(y.rows()),
        cols_(y.cols()),
        stride_(y.stride()),
        type_(element_type_of<T>) {}

  element_type type() const noexcept { return type_; }
  index_t rows() const noexcept { return rows_; }
  index_t cols() const noexcept { return cols_; }
  index_t stride() const noexcept { return stride_; }
  void* data() const noexcept { return data_; }

 private:
  void* data_ = nullptr;
  index_t rows_ = 0, cols_ = 0, stride_ = 0;
  element_type type_ = element_type::float32;
};

}  // namespace masquant
