// safetensors_writer.hpp: collect tensors and metadata, then write a safetensors file atomically.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <masquant/error.hpp>
#include <masquant/io/detail/atomic_file.hpp>
#include <masquant/io/detail/element_codec.hpp>
#include <masquant/io/detail/layout.hpp>
#include <masquant/io/detail/text.hpp>
#include <masquant/io/dtype.hpp>
#include <masquant/io/owned_tensor.hpp>
#include <masquant/io/tensor_shape.hpp>
#include <masquant/tensor/view.hpp>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace masquant {

/// Builds a safetensors file: add() tensors (copied, and converted when asked) and metadata,
/// then write() or serialize().
///
/// Output is deterministic and laid out as the reference Rust crate lays it out (byte-identical
/// on its test vectors; the crate leaves the order of several metadata keys unspecified, we sort
/// them): "__metadata__" first (keys sorted), then the tensors in data order, which is by
/// decreasing dtype alignment, then by name (bytewise); entries are written
/// {"dtype", "shape", "data_offsets"}; the JSON is padded with spaces to a multiple of 8 bytes,
/// so every tensor's data is aligned to its element size in the file (readers can map it
/// zero-copy). write() goes through a temporary file in the target's directory, fsynced and
/// renamed into place: on any failure no output and no temporary remain, and an existing file is
/// replaced only on success.
///
/// Element types and the dtypes they can be stored as: float as F32 (default), F16 or BF16 (round
/// to nearest even) or F64; double as F64 (default) or F32; half F16, bfloat16 BF16, int8_t I8,
/// uint8_t U8 and int32_t I32 as themselves. NaN and Inf are stored as they are; a finite value
/// that a narrower dtype would turn into Inf is an errc::overflow naming the tensor and element.
///
/// Example:
/// \code
///   masquant::safetensors_writer out;
///   out.add("layer.qweight", qweight.view());                 // matrix_view<const int8_t>
///   out.add("layer.wscale", wscale_view);                     // vector_view<const float>, F32
///   out.add("layer.weight", w_view, masquant::dtype::bf16);   // stored as BF16
///   out.set_metadata("format", "masquant");
///   out.write("out.safetensors");
/// \endcode
class safetensors_writer {
 public:
  /// Adds a rows x cols matrix (shape [rows, cols], any row stride), stored as `as`.
  /// Throws errc::invalid_argument for an empty, duplicate, "__metadata__" or non-UTF-8 name or
  /// a dtype T cannot be stored as; errc::overflow as described above.
  template <class T>
  // NOLINTNEXTLINE(performance-unnecessary-value-param): name is moved; clang-tidy 14 misses it
  void add(std::string name, matrix_view<T> m, dtype as = dtype_of<std::remove_const_t<T>>) {
    using V = std::remove_const_t<T>;
    entry& e =
        start(std::move(name), tensor_shape{m.rows(), m.cols()}, as, dtype_of<V>, can_store<V>(as));
    for (index_t r = 0; r < m.rows(); ++r)
      encode(e, m.row_data(r), m.cols(), static_cast<std::size_t>(r * m.cols()), r);
  }

  /// Adds a vector (shape [size]), stored as `as`. Errors as for matrices.
  template <class T>
  void add(std::string name, vector_view<T> v, dtype as = dtype_of<std::remove_const_t<T>>) {
    add(std::move(name), tensor_shape{v.size()}, v, as);
  }

  /// Adds `values` (row-major) with any shape, e.g. tensor_shape{} for a scalar; throws
  /// errc::shape_mismatch unless values.size() == shape.elements(). Other errors as above.
  template <class T>
  // NOLINTNEXTLINE(performance-unnecessary-value-param): name is moved; clang-tidy 14 misses it
  void add(std::string name, tensor_shape shape, vector_view<T> values,
           dtype as = dtype_of<std::remove_const_t<T>>) {
    using V = std::remove_const_t<T>;
    MASQUANT_CHECK(values.size() == shape.elements(), errc::shape_mismatch,
                   "safetensors_writer: tensor ", detail::quote_name(name), " has ", values.size(),
                   " values for shape ", shape);
    entry& e = start(std::move(name), std::move(shape), as, dtype_of<V>, can_store<V>(as));
    encode(e, values.data(), values.size(), 0, -1);
  }

  /// Adds an owned tensor with its shape.
  template <class T>
  void add(std::string name, const owned_tensor<T>& t, dtype as = dtype_of<T>) {
    add(std::move(name), t.shape(), t.vector(), as);
  }

  /// Adds `size` bytes already encoded as `type` (any dtype, e.g. to copy a tensor through);
  /// throws errc::shape_mismatch unless size == shape.elements() * dtype_size(type).
  void add_raw(std::string name, dtype type, tensor_shape shape, const void* bytes,
               std::size_t size) {
    const auto need = static_cast<std::uint64_t>(shape.elements()) * dtype_size(type);
    MASQUANT_CHECK(size == need, errc::shape_mismatch, "safetensors_writer: tensor ",
                   detail::quote_name(name), " has ", size, " bytes, ", type, " ", shape, " needs ",
                   need);
    entry& e = start(std::move(name), std::move(shape), type, type, true);
    if (size > 0) std::memcpy(e.bytes.data(), bytes, size);
  }

  /// Sets (or replaces) a "__metadata__" entry; throws errc::invalid_argument for non-UTF-8 text.
  void set_metadata(std::string key, std::string value) {
    MASQUANT_CHECK(detail::is_valid_utf8(key) && detail::is_valid_utf8(value),
                   errc::invalid_argument, "safetensors_writer: metadata key ",
                   detail::quote_name(key), " or its value is not valid UTF-8");
    metadata_[std::move(key)] = std::move(value);
  }

  bool has(std::string_view name) const noexcept { return names_.count(name) != 0; }
  /// Number of tensors added.
  index_t size() const noexcept { return static_cast<index_t>(entries_.size()); }
  const std::map<std::string, std::string>& metadata() const noexcept { return metadata_; }

  /// The whole file as bytes (for in-memory use; write() streams instead).
  std::vector<std::uint8_t> serialize() const {
    const auto layout = detail::layout_of(layout_entries(), metadata_);
    std::vector<std::uint8_t> out(8 + layout.header.size());
    detail::put_le64(out.data(), layout.header.size());
    std::memcpy(out.data() + 8, layout.header.data(), layout.header.size());
    for (const std::size_t i : layout.order)
      out.insert(out.end(), entries_[i].bytes.begin(), entries_[i].bytes.end());
    return out;
  }

  /// Writes the file atomically (see the class comment); throws errc::io_error naming the path.
  void write(const std::string& path) const {
    const auto layout = detail::layout_of(layout_entries(), metadata_);
    unsigned char prefix[8];
    detail::put_le64(prefix, layout.header.size());
    detail::atomic_file out(path);
    out.write(prefix, 8);
    out.write(layout.header.data(), layout.header.size());
    for (const std::size_t i : layout.order)
      out.write(entries_[i].bytes.data(), entries_[i].bytes.size());
    out.commit();
  }

 private:
  struct entry {
    detail::layout_entry declared;
    std::vector<unsigned char> bytes;
  };

  template <class V>
  static constexpr bool can_store(dtype as) noexcept {
    return detail::can_encode<V>(as);
  }

  // Validates the name and dtype and appends an entry with room for its bytes.
  entry& start(std::string name, tensor_shape shape, dtype as, dtype from, bool storable) {
    entry e{{std::move(name), as, std::move(shape)}, {}};
    const std::string& n = e.declared.name;
    detail::check_entry("safetensors_writer", e.declared);
    const std::string tensor = detail::cat("safetensors_writer: tensor ", detail::quote_name(n));
    MASQUANT_CHECK(!has(n), errc::invalid_argument, tensor, " was already added");
    MASQUANT_CHECK(storable, errc::invalid_argument, tensor, ": ", from,
                   " data cannot be stored as ", as);
    names_.insert(n);
    e.bytes.resize(static_cast<std::size_t>(e.declared.bytes()));
    entries_.push_back(std::move(e));
    return entries_.back();
  }

  // Encodes n elements at element index `first` of the entry; `row` >= 0 names a matrix row in
  // messages. Drops the entry when a value does not fit, so a failed add() adds nothing.
  template <class V>
  void encode(entry& e, const V* src, index_t n, std::size_t first, index_t row) {
    const index_t bad = detail::encode_elements(
        src, n, e.declared.type, e.bytes.data() + first * dtype_size(e.declared.type));
    if (bad < 0) return;
    const std::string where =
        row >= 0 ? detail::cat("element (", row, ", ", bad, ")") : detail::cat("element ", bad);
    const double value = static_cast<double>(src[bad]);
    const std::string name = e.declared.name;
    const dtype type = e.declared.type;
    names_.erase(name);
    entries_.pop_back();
    raise(errc::overflow, detail::cat("safetensors_writer: tensor ", detail::quote_name(name), ": ",
                                      where, " = ", value, " overflows ", type));
  }

  std::vector<detail::layout_entry> layout_entries() const {
    std::vector<detail::layout_entry> out;
    out.reserve(entries_.size());
    for (const entry& e : entries_) out.push_back(e.declared);
    return out;
  }

  std::vector<entry> entries_;
  std::set<std::string, std::less<>> names_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace masquant
