// tensor_shape.hpp: the extents of a stored tensor, and how they fold into a row-major matrix.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <ostream>
#include <vector>

namespace masquant {

/// Extents of an n-dimensional row-major tensor (rank 0 is a scalar of one element).
///
/// As a matrix, a tensor is rows() x cols() with cols() the last extent and rows() the product of
/// the others: a rank-1 `[n]` is 1 x n, a scalar 1 x 1, `[b, t, d]` is (b*t) x d.
///
/// Invariant: every extent is >= 0 and the product of the non-zero extents fits index_t, so
/// elements(), rows() and cols() never overflow (not even for a zero-element `[0, 2^62, 2^62]`,
/// which is rejected).
class tensor_shape {
 public:
  /// A scalar (rank 0, one element).
  tensor_shape() = default;

  /// Throws errc::invalid_argument for a negative extent, errc::overflow when the product of the
  /// non-zero extents exceeds index_t.
  tensor_shape(std::initializer_list<index_t> dims) : tensor_shape(std::vector<index_t>(dims)) {}
  explicit tensor_shape(std::vector<index_t> dims) : dims_(std::move(dims)) {
    std::size_t product = 1;
    for (std::size_t i = 0; i < dims_.size(); ++i) {
      MASQUANT_CHECK(dims_[i] >= 0, errc::invalid_argument, "tensor_shape: extent ", i, " is ",
                     dims_[i]);
      if (dims_[i] == 0) continue;
      MASQUANT_CHECK(fits(product, static_cast<std::uint64_t>(dims_[i]), 1), errc::overflow,
                     "tensor_shape: ", *this, " has more elements than index_t holds");
      product *= static_cast<std::size_t>(dims_[i]);
    }
  }

  /// Whether product * extent * scale stays within index_t, for extents in [0, 2^63).
  static constexpr bool fits(std::uint64_t product, std::uint64_t extent,
                             std::uint64_t scale) noexcept {
    constexpr auto max = static_cast<std::uint64_t>(std::numeric_limits<index_t>::max());
    return extent == 0 || product <= max / extent / scale;
  }

  index_t rank() const noexcept { return static_cast<index_t>(dims_.size()); }
  const std::vector<index_t>& dims() const noexcept { return dims_; }
  index_t operator[](index_t i) const noexcept {
    MASQUANT_ASSERT(i >= 0 && i < rank());
    return dims_[static_cast<std::size_t>(i)];
  }

  /// Number of elements (1 for a scalar, 0 when any extent is 0).
  index_t elements() const noexcept {
    index_t n = 1;
    for (index_t d : dims_) n *= d;
    return n;
  }
  /// Product of every extent but the last (1 for rank 0 and 1).
  index_t rows() const noexcept {
    index_t n = 1;
    for (std::size_t i = 0; i + 1 < dims_.size(); ++i) n *= dims_[i];
    return n;
  }
  /// The last extent (1 for a scalar).
  index_t cols() const noexcept { return dims_.empty() ? 1 : dims_.back(); }

  friend bool operator==(const tensor_shape& a, const tensor_shape& b) noexcept {
    return a.dims_ == b.dims_;
  }
  friend bool operator!=(const tensor_shape& a, const tensor_shape& b) noexcept {
    return !(a == b);
  }
  /// Writes "[2, 3]" ("[]" for a scalar).
  friend std::ostream& operator<<(std::ostream& out, const tensor_shape& s) {
    out << '[';
    for (std::size_t i = 0; i < s.dims_.size(); ++i) out << (i ? ", " : "") << s.dims_[i];
    return out << ']';
  }

 private:
  std::vector<index_t> dims_;
};

}  // namespace masquant
