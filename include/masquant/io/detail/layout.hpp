// layout.hpp: where every tensor of a safetensors file goes — the one layout both writers use.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <masquant/error.hpp>
#include <masquant/io/detail/text.hpp>
#include <masquant/io/dtype.hpp>
#include <masquant/io/tensor_shape.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace masquant::detail {

/// A tensor as the layout sees it: name, stored dtype and shape (the byte size follows).
struct layout_entry {
  std::string name;
  dtype type = dtype::f32;
  tensor_shape shape;

  std::uint64_t bytes() const noexcept {
    return static_cast<std::uint64_t>(shape.elements()) * dtype_size(type);
  }
};

/// Throws errc::invalid_argument for a name no safetensors file can hold (empty, "__metadata__",
/// not UTF-8) and errc::overflow for a byte size beyond 63 bits; `op` names the writer.
inline void check_entry(const char* op, const layout_entry& e) {
  const std::string tensor = cat(op, ": tensor ", quote_name(e.name));
  MASQUANT_CHECK(!e.name.empty(), errc::invalid_argument, op, ": empty tensor name");
  MASQUANT_CHECK(e.name != "__metadata__", errc::invalid_argument, tensor,
                 ": the name is reserved for metadata");
  MASQUANT_CHECK(is_valid_utf8(e.name), errc::invalid_argument, tensor,
                 ": the name is not valid UTF-8");
  MASQUANT_CHECK(
      tensor_shape::fits(static_cast<std::uint64_t>(e.shape.elements()), 1, dtype_size(e.type)),
      errc::overflow, tensor, ": ", e.shape, " of ", e.type, " overflows 63-bit sizes");
}

/// The canonical layout of a file: the JSON header (padded with spaces to a multiple of 8) and,
/// per entry, the data offset relative to the data buffer.
struct file_layout {
  std::string header;
  std::vector<std::size_t> order;      ///< indices of the entries, in data order
  std::vector<std::uint64_t> offsets;  ///< by entry index: first byte in the data buffer
  std::uint64_t data_bytes = 0;

  /// Total file size: 8 + header + data.
  std::uint64_t file_bytes() const noexcept { return 8 + header.size() + data_bytes; }
};

/// Lays the entries out as the reference Rust crate does: "__metadata__" first (keys sorted),
/// then the tensors by decreasing dtype alignment, then by name (bytewise), each entry written
/// {"dtype", "shape", "data_offsets"}. The order by alignment keeps every tensor aligned to its
/// element size in the file, since the padded header is a multiple of 8 bytes.
inline file_layout layout_of(const std::vector<layout_entry>& entries,
                             const std::map<std::string, std::string>& metadata) {
  file_layout out;
  out.order.resize(entries.size());
  for (std::size_t i = 0; i < entries.size(); ++i) out.order[i] = i;
  std::sort(out.order.begin(), out.order.end(), [&](std::size_t a, std::size_t b) {
    if (entries[a].type != entries[b].type) return entries[a].type > entries[b].type;
    return entries[a].name < entries[b].name;
  });
  // The JSON text as nlohmann's compact dump of the ordered object would give it, built as a
  // string: nlohmann::ordered_json looks keys up linearly, O(n²) over the tensors.
  std::string& header = out.header;
  header = "{";
  const auto add_string = [&header](const std::string& s) {
    header += nlohmann::json(s).dump();  // quotes and escapes
  };
  if (!metadata.empty()) {
    header += "\"__metadata__\":{";
    for (const auto& [key, value] : metadata) {
      if (header.back() != '{') header += ',';
      add_string(key);
      header += ':';
      add_string(value);
    }
    header += '}';
  }
  out.offsets.resize(entries.size());
  for (const std::size_t i : out.order) {
    const layout_entry& e = entries[i];
    if (header.size() > 1) header += ',';
    add_string(e.name);
    header += ":{\"dtype\":\"";
    header += to_string(e.type);
    header += "\",\"shape\":[";
    for (std::size_t d = 0; d < e.shape.dims().size(); ++d) {
      if (d > 0) header += ',';
      header += std::to_string(e.shape.dims()[d]);
    }
    header += "],\"data_offsets\":[";
    header += std::to_string(out.data_bytes);
    header += ',';
    out.offsets[i] = out.data_bytes;
    out.data_bytes += e.bytes();
    header += std::to_string(out.data_bytes);
    header += "]}";
  }
  header += '}';
  header.append((8 - header.size() % 8) % 8, ' ');
  return out;
}

/// The 8-byte little-endian length prefix of a header.
inline void put_le64(unsigned char* out, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<unsigned char>(v >> (8 * i));
}

}  // namespace masquant::detail
