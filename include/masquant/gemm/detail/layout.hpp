// layout.hpp: constants of the packed weight layout, and an aligned byte buffer to hold it.
//
// Packed weights are column blocks of 64 output channels (N padded to a multiple of 64 with
// zero weights and zero scales). A block is a run of 256-byte steps along K:
//   int8: step g holds k = 4g..4g+3; byte (c * 4 + t) = w[n0 + c][4g + t] + 128   (c < 64, t < 4)
//   int4: step p holds k = 8p..8p+7; byte (c * 4 + t) = (w[n0+c][8p+t] + 8)
//                                                     | (w[n0+c][8p+4+t] + 8) << 4
// so one 64-byte line is 16 channels x 4 consecutive k: exactly the operand vpdpbusd multiplies
// (unsigned bytes) with 4 broadcast activation bytes (signed). Padding k and padding channels
// hold byte 0, which contributes nothing whatever the activation byte is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <masquant/config.hpp>
#include <new>
#include <utility>

namespace masquant::detail::gemm {

inline constexpr index_t block_cols = 64;   // output channels per column block
inline constexpr index_t step_bytes = 256;  // bytes of one step of a column block
inline constexpr index_t step_k_int8 = 4;   // k per step, int8 weights
inline constexpr index_t step_k_int4 = 8;   // k per step, int4 weights
inline constexpr std::size_t alignment = 64;

/// An owning, 64-byte aligned, zero-initialised array of T (copyable, movable).
template <class T>
class aligned_array {
 public:
  aligned_array() = default;
  explicit aligned_array(std::size_t size) : size_(size) {
    if (size_ == 0) return;
    data_ = static_cast<T*>(::operator new (size_ * sizeof(T), std::align_val_t{alignment}));
    std::memset(static_cast<void*>(data_), 0, size_ * sizeof(T));
  }
  aligned_array(const aligned_array& other) : aligned_array(other.size_) {
    if (size_ != 0) std::memcpy(static_cast<void*>(data_), other.data_, size_ * sizeof(T));
  }
  aligned_array(aligned_array&& other) noexcept : data_(other.data_), size_(other.size_) {
    other.data_ = nullptr;
    other.size_ = 0;
  }
  aligned_array& operator=(aligned_array other) noexcept {
    swap(other);
    return *this;
  }
  ~aligned_array() {
    if (data_ != nullptr)
      ::operator delete (static_cast<void*>(data_), std::align_val_t{alignment});
  }
  void swap(aligned_array& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
  }
  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

inline constexpr index_t round_up(index_t x, index_t m) noexcept {
  return (x + m - 1) / m * m;
}

}  // namespace masquant::detail::gemm
