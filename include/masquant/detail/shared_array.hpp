// shared_array.hpp: an immutable, cache-line aligned array of trivially copyable T that either
// owns its elements (packed once) or reads them in place from memory an owner keeps alive (a
// memory-mapped packed image adopted without copying). Copies share the elements.
#pragma once

#include <cstddef>
#include <masquant/detail/aligned_buffer.hpp>
#include <memory>
#include <type_traits>
#include <utility>

namespace masquant::detail {

template <class T>
class shared_array {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  shared_array() = default;
  /// Takes over packed elements.
  explicit shared_array(aligned_buffer<T>&& owned) {
    if (owned.size() == 0) return;
    auto holder = std::make_shared<aligned_buffer<T>>(std::move(owned));
    data_ = holder->data();
    size_ = holder->size();
    owner_ = std::move(holder);
  }
  /// Reads `size` elements at `data` in place; `owner` (may be null when the caller guarantees
  /// the lifetime) keeps them alive and unchanged.
  static shared_array adopt(const T* data, std::size_t size,
                            const std::shared_ptr<const void>& owner) {
    shared_array a;
    a.data_ = size == 0 ? nullptr : data;
    a.size_ = size;
    a.owner_ = owner;
    return a;
  }
  shared_array(const shared_array&) = default;
  shared_array& operator=(const shared_array&) = default;
  /// Moving leaves the source empty.
  shared_array(shared_array&& other) noexcept
      : owner_(std::move(other.owner_)),
        data_(std::exchange(other.data_, nullptr)),
        size_(std::exchange(other.size_, 0)) {}
  shared_array& operator=(shared_array&& other) noexcept {
    shared_array tmp(std::move(other));
    owner_.swap(tmp.owner_);
    std::swap(data_, tmp.data_);
    std::swap(size_, tmp.size_);
    return *this;
  }
  ~shared_array() = default;

  const T* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  std::shared_ptr<const void> owner_;
  const T* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace masquant::detail
