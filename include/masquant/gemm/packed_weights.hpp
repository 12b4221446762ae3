// packed_weights.hpp: int8 / int4 weights with per-output-channel scales, packed once for the
// INT8 GEMM kernels.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <masquant/config.hpp>
#include <masquant/detail/aligned_buffer.hpp>
#include <masquant/detail/shared_array.hpp>
#include <masquant/error.hpp>
#include <masquant/gemm/detail/layout.hpp>
#include <masquant/parallel.hpp>
#include <masquant/tensor/view.hpp>
#include <memory>
#include <utility>
#include <vector>

namespace masquant {

/// Largest K (inner dimension) the INT8 GEMM accepts: every int32 result is a sum of K products
/// of two int8 values, at most 128 * 128 = 16384 in magnitude, and 16384 * K must stay below
/// 2^31. The kernels' wider intermediate sums (unsigned weight bytes) wrap modulo 2^32 and are
/// exact again once the zero-point term is subtracted, so this is the only bound.
inline constexpr index_t int8_gemm_max_k = 131071;  // floor((2^31 - 1) / 16384)

/// Weights of a linear layer, `[N = d_out, K = d_in]`, quantized per output channel, packed into
/// the layout the INT8 GEMM kernels read (column blocks of 64 channels, 4 consecutive k per
/// 32-bit lane, stored as unsigned bytes with a zero point; see docs/gemm.md).
///
/// Immutable after pack() (or adopt()): one object can be shared by any number of threads calling
/// int8_gemm, and copies share the packed bytes. Dequantized weight = value(n, k) * scales()[n].
///
/// Example:
/// \code
///   // w: int8 [d_out, d_in] (PyTorch layout), s: float [d_out]
///   auto packed = masquant::packed_weights::pack(w_view, s_view);       // int8 weights
///   auto packed4 = masquant::packed_weights::pack(w4_view, s_view, 4);  // values in [-8, 7]
/// \endcode
class packed_weights {
 public:
  /// An empty (0 x 0) object.
  packed_weights() = default;
  packed_weights(const packed_weights&) = default;
  packed_weights& operator=(const packed_weights&) = default;
  /// Moving leaves the source empty (0 x 0).
  packed_weights(packed_weights&& other) noexcept
      : rows_(std::exchange(other.rows_, 0)),
        cols_(std::exchange(other.cols_, 0)),
        bits_(std::exchange(other.bits_, 0)),
        block_bytes_(std::exchange(other.block_bytes_, 0)),
        data_(std::move(other.data_)),
        scales_(std::move(other.scales_)) {}
  packed_weights& operator=(packed_weights&& other) noexcept {
    packed_weights tmp(std::move(other));
    std::swap(rows_, tmp.rows_);
    std::swap(cols_, tmp.cols_);
    std::swap(bits_, tmp.bits_);
    std::swap(block_bytes_, tmp.block_bytes_);
    std::swap(data_, tmp.data_);
    std::swap(scales_, tmp.scales_);
    return *this;
  }
  ~packed_weights() = default;

  /// Packs `w` ([N, K], values as stored: int8 in [-128, 127], or for bits = 4 in [-8, 7]) with
  /// per-channel `scale` ([N]). Throws errc::invalid_argument for bits other than 4 and 8,
  /// errc::shape_mismatch when scale.size() != N, errc::out_of_range for a 4-bit value outside
  /// [-8, 7] (naming row and column), errc::non_finite for a NaN/Inf scale (naming the channel),
  /// errc::overflow when K > int8_gemm_max_k.
  /// Packing runs one task per column block of 64 channels on `parallel` (serial when empty);
  /// the result does not depend on it.
  static packed_weights pack(matrix_view<const std::int8_t> w, vector_view<const float> scale,
                             int bits = 8, const parallel_for_fn& parallel = {}) {
    MASQUANT_CHECK(bits == 8 || bits == 4, errc::invalid_argument,
                   "packed_weights::pack: bits must be 8 or 4, got ", bits);
    detail::aligned_buffer<std::uint8_t> bytes;
    packed_weights p = prepare("packed_weights::pack", w.rows(), w.cols(), scale, bits, bytes);
    // Each block records its first 4-bit value out of range: the error names the first one in
    // row order, whatever ran first.
    std::vector<index_t> bad(static_cast<std::size_t>(p.blocks()), -1);
    for_each_block(p.blocks(), parallel, [&](index_t b) {
      const index_t n1 = std::min(w.rows(), (b + 1) * detail::gemm::block_cols);
      for (index_t n = b * detail::gemm::block_cols; n < n1; ++n) {
        const std::int8_t* row = w.row_data(n);
        for (index_t k = 0; k < w.cols(); ++k) {
          if (bits == 4 && (row[k] < -8 || row[k] > 7)) {
            bad[static_cast<std::size_t>(b)] = n * w.cols() + k;
            return;
          }
          p.store(bytes.data(), n, k, row[k]);
        }
      }
    });
    for (const index_t at : bad) {
      if (at < 0) continue;
      const index_t n = at / w.cols(), k = at % w.cols();
      raise(errc::out_of_range,
            detail::cat("packed_weights::pack: 4-bit weight (", n, ", ", k,
                        ") = ", static_cast<int>(w(n, k)), " is outside [-8, 7]"));
    }
    p.data_ = detail::shared_array<std::uint8_t>(std::move(bytes));
    return p;
  }

  /// Packs 4-bit weights given as nibbles: `nibbles` is [N, ceil(K / 2)], value (n, k) is the low
  /// nibble of byte k / 2 for even k and the high nibble for odd k, two's complement in [-8, 7]
  /// (the high nibble of the last byte is ignored when K is odd) — the storage masquant::pack_int4
  /// (quant/int4.hpp) writes. Errors as pack(), plus errc::shape_mismatch when
  /// nibbles.cols() != ceil(K / 2).
  static packed_weights pack_int4(matrix_view<const std::uint8_t> nibbles, index_t k,
                                  vector_view<const float> scale) {
    MASQUANT_CHECK(k >= 0, errc::invalid_argument, "packed_weights::pack_int4: negative K ", k);
    MASQUANT_CHECK(nibbles.cols() == (k + 1) / 2, errc::shape_mismatch,
                   "packed_weights::pack_int4: nibbles are ", nibbles.rows(), "x", nibbles.cols(),
                   " but K = ", k, " needs ", (k + 1) / 2, " bytes per row");
    detail::aligned_buffer<std::uint8_t> bytes;
    packed_weights p = prepare("packed_weights::pack_int4", nibbles.rows(), k, scale, 4, bytes);
    for (index_t n = 0; n < nibbles.rows(); ++n) {
      const std::uint8_t* row = nibbles.row_data(n);
      for (index_t j = 0; j < k; ++j) {
        const int nib = (j % 2 == 0) ? (row[j / 2] & 0x0F) : (row[j / 2] >> 4);
        p.store(bytes.data(), n, j, static_cast<std::int8_t>(nib >= 8 ? nib - 16 : nib));
      }
    }
    p.data_ = detail::shared_array<std::uint8_t>(std::move(bytes));
    return p;
  }

  /// Bytes of packed storage for N x K weights of `bits` (4 or 8): what packed_bytes() of such
  /// an object is, and what adopt() reads.
  static std::size_t packed_bytes_for(index_t n, index_t k, int bits) noexcept {
    using namespace detail::gemm;
    const index_t step_k = bits == 4 ? step_k_int4 : step_k_int8;
    return static_cast<std::size_t>(round_up(n, block_cols) / block_cols *
                                    (round_up(k, step_k) / step_k * step_bytes));
  }

  /// Reads packed weights in place, without copying: `bytes` holds packed_bytes_for(n, k, bits)
  /// bytes in the layout this class packs (docs/gemm.md), `padded_scales` the n scales followed
  /// by zeros up to a multiple of 64, both 64-byte aligned; `owner` (may be null when the caller
  /// guarantees the lifetime) keeps them alive and unchanged. Checks the arguments, the
  /// alignment and that the scales are finite (not the bytes: every byte is a valid level).
  /// Throws errc::invalid_argument (bits, negative sizes, misalignment), errc::overflow as
  /// pack(), errc::non_finite naming the channel.
  static packed_weights adopt(index_t n, index_t k, int bits, const std::uint8_t* bytes,
                              const float* padded_scales,
                              const std::shared_ptr<const void>& owner) {
    constexpr const char* op = "packed_weights::adopt";
    MASQUANT_CHECK(bits == 8 || bits == 4, errc::invalid_argument, op,
                   ": bits must be 8 or 4, got ", bits);
    MASQUANT_CHECK(n >= 0 && k >= 0, errc::invalid_argument, op, ": negative extent ", n, "x", k);
    MASQUANT_CHECK(reinterpret_cast<std::uintptr_t>(bytes) % 64 == 0 &&
                       reinterpret_cast<std::uintptr_t>(padded_scales) % 64 == 0,
                   errc::invalid_argument, op,
                   ": the packed bytes and scales must be 64-byte aligned");
    packed_weights p = prepare(op, n, k, vector_view<const float>(padded_scales, n), bits);
    p.data_ = detail::shared_array<std::uint8_t>::adopt(bytes, packed_bytes_for(n, k, bits), owner);
    p.scales_ = detail::shared_array<float>::adopt(
        padded_scales,
        static_cast<std::size_t>(detail::gemm::round_up(n, detail::gemm::block_cols)), owner);
    return p;
  }

  /// Output channels N (d_out).
  index_t rows() const noexcept { return rows_; }
  /// Inner dimension K (d_in).
  index_t cols() const noexcept { return cols_; }
  /// 8 or 4 (0 when empty).
  int bits() const noexcept { return bits_; }
  bool empty() const noexcept { return rows_ == 0 || cols_ == 0; }
  /// Per-channel scales [N].
  vector_view<const float> scales() const {
    return rows_ == 0 ? vector_view<const float>()
                      : vector_view<const float>(scales_.data(), rows_);
  }
  /// Bytes of packed weight storage (what a decode step streams from memory).
  std::size_t packed_bytes() const noexcept { return data_.size(); }
  /// Bytes held: the packed storage and the padded scales.
  std::size_t resident_bytes() const noexcept {
    return data_.size() + scales_.size() * sizeof(float);
  }

  /// Weight value (n, k) as packed (for checks and debugging, not for speed).
  std::int8_t value(index_t n, index_t k) const {
    MASQUANT_CHECK(n >= 0 && n < rows_ && k >= 0 && k < cols_, errc::out_of_range,
                   "packed_weights::value: (", n, ", ", k, ") outside ", rows_, "x", cols_);
    const std::uint8_t byte = data_.data()[offset(n, k)];
    if (bits_ == 8) return static_cast<std::int8_t>(static_cast<int>(byte) - 128);
    const int nib = ((k / 4) % 2 == 0) ? (byte & 0x0F) : (byte >> 4);
    return static_cast<std::int8_t>(nib - 8);
  }

  /// Writes the weight values into `w` ([N, K]); throws errc::shape_mismatch otherwise.
  void unpack(matrix_view<std::int8_t> w) const {
    MASQUANT_CHECK(w.rows() == rows_ && w.cols() == cols_, errc::shape_mismatch,
                   "packed_weights::unpack: output is ", w.rows(), "x", w.cols(), ", weights are ",
                   rows_, "x", cols_);
    for (index_t n = 0; n < rows_; ++n) {
      for (index_t k = 0; k < cols_; ++k) w(n, k) = value(n, k);
    }
  }

  // --- layout, for the kernels (see gemm/detail/layout.hpp) ---------------------------------

  /// First byte of the packed storage (64-byte aligned).
  const std::uint8_t* data() const noexcept { return data_.data(); }
  /// Scales padded with zeros to a multiple of 64 channels.
  const float* padded_scales() const noexcept { return scales_.data(); }
  /// Bytes of one column block of 64 channels.
  index_t block_bytes() const noexcept { return block_bytes_; }
  /// Number of column blocks (ceil(N / 64)).
  index_t blocks() const noexcept { return detail::gemm::round_up(rows_, 64) / 64; }
  /// The offset of the unsigned bytes: 128 for int8, 8 for int4.
  int zero_point() const noexcept { return bits_ == 4 ? 8 : 128; }

 private:
  // Checks the extents and scales and fills in everything but the bytes; with `bytes`, sizes
  // them (zeroed) and copies the scales.
  static packed_weights prepare(const char* op, index_t n, index_t k,
                                vector_view<const float> scale, int bits,
                                detail::aligned_buffer<std::uint8_t>& bytes) {
    packed_weights p = prepare(op, n, k, scale, bits);
    using detail::gemm::block_cols;
    bytes = detail::aligned_buffer<std::uint8_t>(packed_bytes_for(n, k, bits));
    detail::aligned_buffer<float> scales(
        static_cast<std::size_t>(detail::gemm::round_up(n, block_cols)));
    for (index_t i = 0; i < n; ++i) scales.data()[i] = scale[i];
    p.scales_ = detail::shared_array<float>(std::move(scales));
    return p;
  }
  static packed_weights prepare(const char* op, index_t n, index_t k,
                                vector_view<const float> scale, int bits) {
    MASQUANT_CHECK(scale.size() == n, errc::shape_mismatch, op, ": scale has ", scale.size(),
                   " entries but the weight has ", n, " rows (output channels)");
    MASQUANT_CHECK(k <= int8_gemm_max_k, errc::overflow, op, ": K = ", k,
                   " exceeds int8_gemm_max_k = ", int8_gemm_max_k,
                   " (the int32 accumulation could overflow)");
    for (index_t i = 0; i < n; ++i) {
      MASQUANT_CHECK(std::isfinite(scale[i]), errc::non_finite, op, ": scale of channel ", i,
                     " is ", scale[i]);
    }
    using namespace detail::gemm;
    packed_weights p;
    p.rows_ = n;
    p.cols_ = k;
    p.bits_ = bits;
    const index_t step_k = bits == 4 ? step_k_int4 : step_k_int8;
    p.block_bytes_ = round_up(k, step_k) / step_k * step_bytes;
    return p;
  }

  template <class Task>
  static void for_each_block(index_t count, const parallel_for_fn& parallel, const Task& task) {
    if (parallel && count > 1) {
      parallel(count, std::function<void(index_t)>(std::cref(task)));
    } else {
      for (index_t b = 0; b < count; ++b) task(b);
    }
  }

  std::size_t offset(index_t n, index_t k) const noexcept {
    using namespace detail::gemm;
    const index_t step_k = bits_ == 4 ? step_k_int4 : step_k_int8;
    return static_cast<std::size_t>((n / block_cols) * block_bytes_ + (k / step_k) * step_bytes +
                                    (n % block_cols) * 4 + k % 4);
  }

  void store(std::uint8_t* data, index_t n, index_t k, std::int8_t v) const noexcept {
    std::uint8_t& byte = data[offset(n, k)];
    if (bits_ == 8) {
      byte = static_cast<std::uint8_t>(static_cast<int>(v) + 128);
    } else {
      const int nib = static_cast<int>(v) + 8;
      byte = static_cast<std::uint8_t>(((k / 4) % 2 == 0) ? ((byte & 0xF0) | nib)
                                                          : ((byte & 0x0F) | (nib << 4)));
    }
  }

  index_t rows_ = 0;
  index_t cols_ = 0;
  int bits_ = 0;
  index_t block_bytes_ = 0;
  detail::shared_array<std::uint8_t> data_;
  detail::shared_array<float> scales_;
};

}  // namespace masquant
