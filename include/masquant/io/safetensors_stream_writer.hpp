// safetensors_stream_writer.hpp: write a safetensors file too large to hold in memory — declare
// every tensor first, then write each one's bytes when it is ready, in any order.
#pragma once

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <masquant/error.hpp>
#include <masquant/io/detail/atomic_file.hpp>
#include <masquant/io/detail/element_codec.hpp>
#include <masquant/io/detail/layout.hpp>
#include <masquant/io/detail/text.hpp>
#include <masquant/io/dtype.hpp>
#include <masquant/io/tensor_shape.hpp>
#include <masquant/tensor/view.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace masquant {

/// A tensor declared to a safetensors_stream_writer: name, stored dtype and shape.
using tensor_declaration = detail::layout_entry;

/// Writes a safetensors file whose tensors are declared up front and written one by one, so that
/// a file of many gigabytes never sits in memory: construction fixes the layout (the same bytes
/// safetensors_writer would produce for these tensors and metadata) and writes the header; each
/// write() puts one whole tensor at its place; commit() checks that every tensor was written and
/// renames the file into place atomically. Until commit() the output lives under a temporary
/// name in the target's directory, removed if the writer is destroyed uncommitted: a failure at
/// any point leaves no output and any previous file untouched.
///
/// Example:
/// \code
///   masquant::safetensors_stream_writer out("big.safetensors",
///       {{"w", masquant::dtype::bf16, {4096, 4096}}, {"s", masquant::dtype::f32, {4096}}},
///       {{"format", "masquant"}});
///   out.write("s", scale_view);                      // vector_view<const float>
///   out.write("w", weight_view, masquant::dtype::bf16);
///   out.commit();
/// \endcode
class safetensors_stream_writer {
 public:
  /// Validates the declarations (names as safetensors_writer::add requires, no duplicates) and
  /// metadata (UTF-8), creates the temporary file and writes the header. Throws
  /// errc::invalid_argument naming the tensor, errc::overflow, errc::io_error naming the path.
  safetensors_stream_writer(std::string path, std::vector<tensor_declaration> tensors,
                            const std::map<std::string, std::string>& metadata = {})
      : path_(std::move(path)), tensors_(std::move(tensors)) {
    constexpr const char* op = "safetensors_stream_writer";
    index_.reserve(tensors_.size());
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
      detail::check_entry(op, tensors_[i]);
      MASQUANT_CHECK(index_.emplace(tensors_[i].name, i).second, errc::invalid_argument, op,
                     ": tensor ", detail::quote_name(tensors_[i].name), " is declared twice");
    }
    for (const auto& kv : metadata)
      MASQUANT_CHECK(detail::is_valid_utf8(kv.first) && detail::is_valid_utf8(kv.second),
                     errc::invalid_argument, op, ": metadata key ", detail::quote_name(kv.first),
                     " or its value is not valid UTF-8");
    layout_ = detail::layout_of(tensors_, metadata);
    written_.assign(tensors_.size(), false);
    file_.emplace(path_);
    unsigned char prefix[8];
    detail::put_le64(prefix, layout_.header.size());
    file_->write_at(0, prefix, 8);
    file_->write_at(8, layout_.header.data(), layout_.header.size());
  }

  /// Size in bytes of the file these tensors and metadata make (for planning shards).
  static std::uint64_t file_bytes(const std::vector<tensor_declaration>& tensors,
                                  const std::map<std::string, std::string>& metadata = {}) {
    return detail::layout_of(tensors, metadata).file_bytes();
  }

  const std::string& path() const noexcept { return path_; }
  const std::vector<tensor_declaration>& tensors() const noexcept { return tensors_; }
  bool written(std::string_view name) const { return written_[find(name)]; }

  /// Writes a declared tensor's stored bytes (already encoded as its dtype, row-major). Throws
  /// errc::out_of_range for an undeclared name, errc::invalid_argument for a second write,
  /// errc::shape_mismatch for a wrong byte count, errc::io_error.
  void write_bytes(std::string_view name, const void* bytes, std::size_t size) {
    const std::size_t i = start(name, size);
    file_->write_at(data_offset(i), bytes, size);
    written_[i] = true;
  }

  /// Writes a declared tensor from `values` (row-major), encoded as its declared dtype with the
  /// conversions of safetensors_writer::add (float as F32, F16, BF16 or F64; double as F64 or
  /// F32; other types as themselves). Throws as write_bytes(), errc::invalid_argument when T
  /// cannot be stored as the declared dtype, errc::overflow for a finite value the dtype turns
  /// into Inf (naming the element).
  template <class T>
  void write(std::string_view name, vector_view<T> values) {
    using V = std::remove_const_t<T>;
    const tensor_declaration& t = tensors_[find(name)];
    MASQUANT_CHECK(values.size() == t.shape.elements(), errc::shape_mismatch,
                   "safetensors_stream_writer: tensor ", detail::quote_name(t.name), " has ",
                   values.size(), " values for shape ", t.shape);
    MASQUANT_CHECK(detail::can_encode<V>(t.type), errc::invalid_argument,
                   "safetensors_stream_writer: tensor ", detail::quote_name(t.name), ": ",
                   dtype_of<V>, " data cannot be stored as ", t.type);
    std::vector<unsigned char> bytes(static_cast<std::size_t>(t.bytes()));
    const index_t bad = detail::encode_elements(values.data(), values.size(), t.type, bytes.data());
    MASQUANT_CHECK(bad < 0, errc::overflow, "safetensors_stream_writer: tensor ",
                   detail::quote_name(t.name), ": element ", bad, " = ",
                   static_cast<double>(values[bad]), " overflows ", t.type);
    write_bytes(name, bytes.data(), bytes.size());
  }

  /// write() of a matrix with any row stride (its rows() x cols() elements in row order).
  template <class T>
  void write(std::string_view name, matrix_view<T> m) {
    using V = std::remove_const_t<T>;
    std::vector<V> dense(static_cast<std::size_t>(m.rows() * m.cols()));
    for (index_t r = 0; r < m.rows(); ++r)
      std::copy(m.row_data(r), m.row_data(r) + m.cols(), dense.begin() + r * m.cols());
    write(name, vector_view<const V>(dense.data(), static_cast<index_t>(dense.size())));
  }

  /// Copies a declared tensor's bytes from the file at `source_path`, starting at byte
  /// `source_offset` (e.g. tensor_info::file_offset of a tensor of another safetensors file),
  /// without reading them into this process where the kernel can copy (copy_file_range).
  void copy_from(std::string_view name, const std::string& source_path,
                 std::uint64_t source_offset) {
    const std::size_t i = find(name);
    MASQUANT_CHECK(!written_[i], errc::invalid_argument, "safetensors_stream_writer: tensor ",
                   detail::quote_name(tensors_[i].name), " was already written");
    const int fd = ::open(source_path.c_str(), O_RDONLY | O_CLOEXEC);
    MASQUANT_CHECK(fd >= 0, errc::io_error, source_path, ": cannot open: ", std::strerror(errno));
    struct closer {
      int fd;
      ~closer() { ::close(fd); }
    } close_it{fd};
    file_->copy_at(data_offset(i), fd, source_offset, tensors_[i].bytes(), source_path);
    written_[i] = true;
  }

  /// Checks that every declared tensor was written, flushes and renames the file into place.
  /// Throws errc::invalid_argument naming the first tensor not written (the output is then not
  /// created), errc::io_error.
  void commit() {
    for (std::size_t i = 0; i < tensors_.size(); ++i)
      MASQUANT_CHECK(written_[i], errc::invalid_argument, "safetensors_stream_writer: ", path_,
                     ": tensor ", detail::quote_name(tensors_[i].name), " was never written");
    file_->commit();
  }

 private:
  std::size_t find(std::string_view name) const {
    const auto it = index_.find(std::string(name));
    MASQUANT_CHECK(it != index_.end(), errc::out_of_range, "safetensors_stream_writer: tensor ",
                   detail::quote_name(name), " was not declared");
    return it->second;
  }

  std::size_t start(std::string_view name, std::size_t size) {
    const std::size_t i = find(name);
    const tensor_declaration& t = tensors_[i];
    MASQUANT_CHECK(!written_[i], errc::invalid_argument, "safetensors_stream_writer: tensor ",
                   detail::quote_name(t.name), " was already written");
    MASQUANT_CHECK(size == t.bytes(), errc::shape_mismatch, "safetensors_stream_writer: tensor ",
                   detail::quote_name(t.name), " has ", size, " bytes, ", t.type, " ", t.shape,
                   " needs ", t.bytes());
    return i;
  }

  std::uint64_t data_offset(std::size_t i) const noexcept {
    return 8 + layout_.header.size() + layout_.offsets[i];
  }

  std::string path_;
  std::vector<tensor_declaration> tensors_;
  std::unordered_map<std::string, std::size_t> index_;
  detail::file_layout layout_;
  std::vector<bool> written_;
  std::optional<detail::atomic_file> file_;
};

}  // namespace masquant
