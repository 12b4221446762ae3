// aligned_buffer.hpp: an owning, cache-line aligned, zero-initialised array of trivially
// copyable T: packed weights, panels and workspaces, which SIMD kernels read in whole lines.
#pragma once

#include <cstddef>
#include <cstring>
#include <new>
#include <type_traits>
#include <utility>

namespace masquant::detail {

template <class T>
class aligned_buffer {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  static constexpr std::size_t alignment = 64;

  aligned_buffer() = default;
  explicit aligned_buffer(std::size_t size) : size_(size) {
    if (size_ == 0) return;
    data_ = static_cast<T*>(::operator new (size_ * sizeof(T), std::align_val_t{alignment}));
    std::memset(static_cast<void*>(data_), 0, size_ * sizeof(T));
  }
  aligned_buffer(const aligned_buffer& other) : aligned_buffer(other.size_) {
    if (size_ != 0) std::memcpy(static_cast<void*>(data_), other.data_, size_ * sizeof(T));
  }
  aligned_buffer(aligned_buffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}
  aligned_buffer& operator=(aligned_buffer other) noexcept {
    swap(other);
    return *this;
  }
  ~aligned_buffer() {
    if (data_ != nullptr)
      ::operator delete (static_cast<void*>(data_), std::align_val_t{alignment});
  }
  void swap(aligned_buffer& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(size_, other.size_);
  }

  /// Makes room for at least `size` elements; keeps the storage (and contents) when it suffices,
  /// otherwise replaces it by a zeroed one (contents are not preserved).
  void reserve(std::size_t size) {
    if (size > size_) *this = aligned_buffer(size);
  }

  T* data() noexcept { return data_; }
  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace masquant::detail
