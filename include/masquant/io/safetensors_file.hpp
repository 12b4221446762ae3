// safetensors_file.hpp: read safetensors files (memory-mapped, strictly validated) and load
// tensors.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <masquant/error.hpp>
#include <masquant/io/detail/element_codec.hpp>
#include <masquant/io/detail/header_parser.hpp>
#include <masquant/io/detail/mapped_file.hpp>
#include <masquant/io/detail/text.hpp>
#include <masquant/io/dtype.hpp>
#include <masquant/io/owned_tensor.hpp>
#include <masquant/io/tensor_info.hpp>
#include <masquant/io/tensor_ref.hpp>
#include <masquant/tensor/view.hpp>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace masquant {

/// A validated safetensors file, mapped read-only; tensors are loaded by name.
///
/// Opening validates the whole header (see docs/file-format.md): the 8-byte little-endian
/// length N (at most 100 MB and within the file), a JSON object starting with '{' and without
/// duplicate keys, every tensor entry with exactly "dtype" (a known dtype), "shape" (non-negative
/// integers whose byte size fits 63 bits) and "data_offsets" ([begin, end] with begin <= end,
/// inside the buffer, spanning exactly elements x dtype size), "__metadata__" an object of
/// strings, and the tensors tiling the data buffer exactly (no overlap, no gap, no trailing
/// bytes). Any violation throws masquant::error with errc::format_error and a one-line message
/// naming the file and the tensor or byte offset; OS failures throw errc::io_error.
///
/// Copies share the mapping; tensor_ref results keep it alive by themselves.
///
/// Example:
/// \code
///   masquant::safetensors_file f("layer.safetensors");
///   masquant::owned_tensor<float> w = f.load_f32("mlp.up.weight");   // F32/F16/BF16/F64 ...
///   masquant::matrix_view<const float> wv = w.matrix();               // [d_out, d_in]
///   auto q = f.view<std::int8_t>("mlp.up.qweight");                   // zero-copy
///   std::string wbits = f.metadata().at("wbits");
/// \endcode
class safetensors_file {
 public:
  /// Maps and validates the file at `path`.
  explicit safetensors_file(const std::string& path)
      : safetensors_file(std::make_shared<const detail::mapped_file>(path), path) {}

  /// Validates `size` bytes at `data` with the same parser (nothing is copied: the caller keeps
  /// the bytes alive and unchanged while this object and the tensor_refs it returns are used).
  /// `source` names the buffer in error messages.
  static safetensors_file from_memory(const void* data, std::size_t size,
                                      std::string source = "<memory>") {
    return safetensors_file(static_cast<const unsigned char*>(data), size, std::move(source),
                            nullptr);
  }

  /// The path (or from_memory's source) as given.
  const std::string& source() const noexcept { return source_; }
  /// Total size in bytes.
  std::uint64_t file_size() const noexcept { return size_; }
  /// N, the length of the JSON header including its padding.
  std::uint64_t header_size() const noexcept { return header_.header_size; }
  /// File offset of the data buffer (8 + N).
  std::uint64_t data_offset() const noexcept { return 8 + header_.header_size; }

  /// Every tensor, ordered by data offset.
  const std::vector<tensor_info>& tensors() const noexcept { return header_.tensors; }
  /// The "__metadata__" map (empty when absent).
  const std::map<std::string, std::string>& metadata() const noexcept { return header_.metadata; }

  bool has(std::string_view name) const noexcept { return find(name) != nullptr; }
  /// The named tensor's entry, or null.
  const tensor_info* find(std::string_view name) const noexcept { return header_.find(name); }
  /// One level of the dot-separated name space below `prefix` (which ends in '.'), in name
  /// order: the tensors named prefix + c with no '.' in c, and the distinct c of the names
  /// prefix + c + "." + ... (O((tensors + groups) log n), however many names a group holds).
  /// E.g. children("m.smooth.") of m.smooth.text, m.smooth.vision and m.smooth.x.weight gives
  /// the first two, and the group "x".
  struct name_children {
    std::vector<const tensor_info*> tensors;
    std::vector<std::string> groups;
  };
  name_children children(std::string_view prefix) const {
    name_children out;
    header_.children(prefix, out.tensors, out.groups);
    return out;
  }
  /// The named tensor's entry; throws errc::out_of_range naming the tensor and file when absent.
  const tensor_info& info(std::string_view name) const {
    const tensor_info* t = find(name);
    MASQUANT_CHECK(t != nullptr, errc::out_of_range, source_, ": no tensor ",
                   detail::quote_name(name));
    return *t;
  }

  /// The tensor's stored bytes (little-endian elements, row-major), zero-copy.
  vector_view<const std::uint8_t> bytes(std::string_view name) const {
    const tensor_info& t = info(name);
    return {base_ + t.file_offset, static_cast<index_t>(t.byte_size())};
  }

  /// Loads any F32, F16, BF16, F64, I8, U8 or I32 tensor as float, with its shape.
  /// F16/BF16/I8/U8 convert exactly and F64 rounds to nearest; NaN and Inf are kept as stored.
  /// Throws errc::out_of_range for a missing tensor, errc::not_supported for another dtype, and
  /// errc::overflow naming the element for a finite F64 beyond float's range or an I32 that
  /// float cannot hold exactly (|v| > 2^24 and not representable).
  owned_tensor<float> load_f32(std::string_view name) const {
    const tensor_info& t = info(name);
    owned_tensor<float> out(t.shape);
    const unsigned char* src = base_ + t.file_offset;
    const index_t n = t.elements();
    index_t bad = -1;
    switch (t.type) {
      case dtype::f32:
        copy_bytes(src, out.data(), t.byte_size());
        break;
      case dtype::f16:
        bad = detail::decode_to_float<half>(src, n, out.data());
        break;
      case dtype::bf16:
        bad = detail::decode_to_float<bfloat16>(src, n, out.data());
        break;
      case dtype::f64:
        bad = detail::decode_to_float<double>(src, n, out.data());
        break;
      case dtype::i8:
        bad = detail::decode_to_float<std::int8_t>(src, n, out.data());
        break;
      case dtype::u8:
        bad = detail::decode_to_float<std::uint8_t>(src, n, out.data());
        break;
      case dtype::i32:
        bad = detail::decode_to_float<std::int32_t>(src, n, out.data());
        break;
      default:
        raise(errc::not_supported, detail::cat(source_, ": tensor ", detail::quote_name(t.name),
                                               " is ", t.type, ", which does not load as float"));
    }
    MASQUANT_CHECK(bad < 0, errc::overflow, source_, ": tensor ", detail::quote_name(t.name), " (",
                   t.type, " ", t.shape, "): element ", bad, " (row ", bad / t.shape.cols(),
                   ", col ", bad % t.shape.cols(), ") is not representable as float");
    return out;
  }

  /// Loads a tensor stored exactly as T (float F32, double F64, half F16, bfloat16 BF16,
  /// int8_t I8, uint8_t U8, int32_t I32) into owned memory. Throws errc::out_of_range for a
  /// missing tensor, errc::format_error naming both dtypes when the stored one differs.
  template <class T>
  owned_tensor<T> load(std::string_view name) const {
    const tensor_info& t = checked_info<T>(name);
    owned_tensor<T> out(t.shape);
    copy_bytes(base_ + t.file_offset, out.data(), t.byte_size());
    return out;
  }

  /// A tensor stored exactly as T, read in place when its bytes are aligned for T (always the
  /// case for files from safetensors_writer and the reference writers, whose data buffers are
  /// 8-byte aligned and ordered by decreasing alignment), else copied; is_zero_copy() tells.
  /// Errors as load<T>().
  template <class T>
  tensor_ref<T> view(std::string_view name) const {
    const tensor_info& t = checked_info<T>(name);
    const unsigned char* p = base_ + t.file_offset;
    if (reinterpret_cast<std::uintptr_t>(p) % alignof(T) != 0) return tensor_ref<T>(load<T>(name));
    return tensor_ref<T>(t.shape, reinterpret_cast<const T*>(p), owner_);
  }

  /// view<float>() for F32 tensors, else load_f32() (so any float-loadable dtype). Errors as
  /// load_f32().
  tensor_ref<float> view_f32(std::string_view name) const {
    if (info(name).type == dtype::f32) return view<float>(name);
    return tensor_ref<float>(load_f32(name));
  }

 private:
  safetensors_file(const std::shared_ptr<const detail::mapped_file>& map, std::string path)
      : safetensors_file(map->data(), map->size(), std::move(path), map) {}

  safetensors_file(const unsigned char* data, std::size_t size, std::string source,
                   std::shared_ptr<const void> owner)
      : source_(std::move(source)),
        owner_(std::move(owner)),
        base_(data),
        size_(size),
        header_(detail::parse_header(data, size, source_)) {}

  template <class T>
  const tensor_info& checked_info(std::string_view name) const {
    const tensor_info& t = info(name);
    MASQUANT_CHECK(t.type == dtype_of<T>, errc::format_error, source_, ": tensor ",
                   detail::quote_name(t.name), " is ", t.type, " ", t.shape, ", expected ",
                   dtype_of<T>);
    return t;
  }

  static void copy_bytes(const unsigned char* src, void* dst, std::uint64_t size) {
    if (size > 0) std::memcpy(dst, src, static_cast<std::size_t>(size));
  }

  std::string source_;
  std::shared_ptr<const void> owner_;  // the mapping, or null for from_memory()
  const unsigned char* base_;
  std::size_t size_;
  detail::parsed_header header_;
};

}  // namespace masquant
