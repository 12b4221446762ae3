// header_parser.hpp: the one validating parser of safetensors bytes, for files and memory alike.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <masquant/error.hpp>
#include <masquant/io/detail/text.hpp>
#include <masquant/io/dtype.hpp>
#include <masquant/io/tensor_info.hpp>
#include <masquant/io/tensor_shape.hpp>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace masquant::detail {

/// Largest header the reader accepts, as the reference Rust crate (100 MB).
inline constexpr std::uint64_t max_header_size = 100'000'000;

/// The validated content of a safetensors header.
struct parsed_header {
  std::uint64_t header_size = 0;                          ///< N, the JSON length (padding included)
  std::vector<tensor_info> tensors;                       ///< ordered by data offset
  std::map<std::string, std::string> metadata;            ///< "__metadata__"
  std::map<std::string, std::size_t, std::less<>> index;  ///< name -> position in tensors
};

/// Parses the header length prefix and checks it against the file size.
inline std::uint64_t read_header_size(const unsigned char* data, std::size_t size,
                                      const std::string& source) {
  MASQUANT_CHECK(size >= 8, errc::format_error, source, ": file is ", size,
                 " bytes, shorter than the 8-byte header length");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  MASQUANT_CHECK(n <= max_header_size, errc::format_error, source, ": header length ", n,
                 " (file bytes 0-7) exceeds the limit of ", max_header_size, " bytes");
  MASQUANT_CHECK(n <= size - 8, errc::format_error, source, ": header length ", n,
                 " (file bytes 0-7) runs past the end of the ", size, "-byte file");
  MASQUANT_CHECK(n >= 2 && data[8] == '{', errc::format_error, source,
                 ": header at file byte 8 does not start with '{'");
  // nlohmann stops at a NUL as at the end of input, which would let "{}\0<anything>" through;
  // JSON text never holds one (not even inside strings, where it must be escaped).
  const void* nul = std::memchr(data + 8, 0, static_cast<std::size_t>(n));
  MASQUANT_CHECK(nul == nullptr, errc::format_error, source,
                 ": invalid JSON header: NUL byte at file byte ",
                 static_cast<const unsigned char*>(nul) - data);
  return n;
}

/// Rejects duplicate keys (nlohmann would keep the last) and nesting deeper than a header has
/// (root object > tensor entry > shape array), before the DOM grows.
class header_guard {
 public:
  explicit header_guard(const std::string& source) : source_(source) {}

  bool operator()(int depth, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using event_t = nlohmann::json::parse_event_t;
    switch (event) {
      case event_t::object_start:
      case event_t::array_start:
        MASQUANT_CHECK(depth < 3, errc::format_error, source_, ": header nests deeper than",
                       " safetensors allows, inside ", where());
        frames_.push_back(frame{{}, std::string()});
        break;
      case event_t::object_end:
      case event_t::array_end:
        frames_.pop_back();
        break;
      case event_t::key: {
        const auto& key = parsed.get_ref<const std::string&>();
        MASQUANT_CHECK(frames_.back().keys.insert(key).second, errc::format_error, source_,
                       ": duplicate key ", quote_name(key), " in ", where());
        frames_.back().last_key = key;
        break;
      }
      case event_t::value:
        break;
    }
    return true;
  }

 private:
  struct frame {
    std::set<std::string> keys;
    std::string last_key;
  };

  // Names the innermost open container for messages.
  std::string where() const {
    if (frames_.size() <= 1) return "the header object";
    const std::string& entry = frames_[0].last_key;
    if (entry == "__metadata__") return "__metadata__";
    return "tensor " + quote_name(entry);
  }

  const std::string& source_;
  std::vector<frame> frames_;
};

/// JSON type name for messages.
inline const char* json_kind(const nlohmann::json& v) {
  if (v.is_number_float()) return "a float";
  if (v.is_number()) return "an integer";
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

/// A non-negative JSON integer, or an error naming what it should have been.
inline std::uint64_t header_uint(const nlohmann::json& v, const std::string& source,
                                 const std::string& name, const char* what) {
  if (v.is_number_unsigned()) return v.get<std::uint64_t>();
  if (v.is_number_integer() && v.get<std::int64_t>() == 0) return 0;  // "-0"
  if (v.is_number_integer())
    raise(errc::format_error, cat(source, ": tensor ", quote_name(name), ": ", what, " is ",
                                  v.get<std::int64_t>(), ", expected a non-negative integer"));
  raise(errc::format_error, cat(source, ": tensor ", quote_name(name), ": ", what, " is ",
                                json_kind(v), ", expected a non-negative integer"));
}

/// Checks one tensor entry's keys, types and sizes (not yet its place among the others).
inline tensor_info parse_tensor_entry(const std::string& name, const nlohmann::json& entry,
                                      std::uint64_t data_start, std::uint64_t buffer_size,
                                      const std::string& source) {
  const std::string tensor = cat("tensor ", quote_name(name));
  MASQUANT_CHECK(!name.empty(), errc::format_error, source, ": a tensor has an empty name");
  MASQUANT_CHECK(entry.is_object(), errc::format_error, source, ": ", tensor, " is ",
                 json_kind(entry), ", expected an object with dtype, shape and data_offsets");
  for (const auto& item : entry.items())
    MASQUANT_CHECK(item.key() == "dtype" || item.key() == "shape" || item.key() == "data_offsets",
                   errc::format_error, source, ": ", tensor, " has an unknown key ",
                   quote_name(item.key()));
  for (const char* key : {"dtype", "shape", "data_offsets"})
    MASQUANT_CHECK(entry.contains(key), errc::format_error, source, ": ", tensor, " has no \"", key,
                   "\"");

  tensor_info info;
  info.name = name;
  const auto& jtype = entry["dtype"];
  MASQUANT_CHECK(jtype.is_string(), errc::format_error, source, ": ", tensor, ": dtype is ",
                 json_kind(jtype), ", expected a string");
  const auto type = parse_dtype(jtype.get_ref<const std::string&>());
  MASQUANT_CHECK(type.has_value(), errc::format_error, source, ": ", tensor, " has unknown dtype ",
                 quote_name(jtype.get_ref<const std::string&>()));
  info.type = *type;

  const auto& jshape = entry["shape"];
  MASQUANT_CHECK(jshape.is_array(), errc::format_error, source, ": ", tensor, ": shape is ",
                 json_kind(jshape), ", expected an array");
  std::vector<index_t> dims;
  dims.reserve(jshape.size());
  std::uint64_t nonzero_product = 1;
  for (std::size_t i = 0; i < jshape.size(); ++i) {
    const std::uint64_t d = header_uint(jshape[i], source, name, cat("shape[", i, "]").c_str());
    if (d != 0) {
      MASQUANT_CHECK(tensor_shape::fits(nonzero_product, d, dtype_size(info.type)),
                     errc::format_error, source, ": ", tensor, ": shape of ", info.type,
                     " overflows 63-bit byte sizes at shape[", i, "] = ", d);
      nonzero_product *= d;
    }
    dims.push_back(static_cast<index_t>(d));
  }
  info.shape = tensor_shape(std::move(dims));

  const auto& joff = entry["data_offsets"];
  MASQUANT_CHECK(joff.is_array() && joff.size() == 2, errc::format_error, source, ": ", tensor,
                 ": data_offsets is ", joff.is_array() ? "an array of " : json_kind(joff),
                 joff.is_array() ? cat(joff.size(), " values") : std::string(),
                 ", expected [begin, end]");
  info.data_begin = header_uint(joff[0], source, name, "data_offsets begin");
  info.data_end = header_uint(joff[1], source, name, "data_offsets end");
  const std::string offsets = cat("data_offsets [", info.data_begin, ", ", info.data_end, "]");
  MASQUANT_CHECK(info.data_begin <= info.data_end, errc::format_error, source, ": ", tensor, ": ",
                 offsets, " has begin > end");
  MASQUANT_CHECK(info.data_end <= buffer_size, errc::format_error, source, ": ", tensor, ": ",
                 offsets, " end past the ", buffer_size, "-byte data buffer (file bytes ",
                 data_start, "-", data_start + buffer_size, ")");
  info.file_offset = data_start + info.data_begin;
  const auto need = static_cast<std::uint64_t>(info.shape.elements()) * dtype_size(info.type);
  MASQUANT_CHECK(info.byte_size() == need, errc::format_error, source, ": ", tensor, ": ", offsets,
                 " holds ", info.byte_size(), " bytes but ", info.type, " ", info.shape, " needs ",
                 need, " (file byte ", info.file_offset, ")");
  return info;
}

/// Parses and validates a whole safetensors image of `size` bytes: header length, JSON, every
/// entry, and that the tensors tile the data buffer exactly (sorted by offset, no overlap, no gap,
/// nothing after the last one, as the reference crate demands). Throws errc::format_error with
/// a one-line message naming `source` and the tensor or byte offset.
inline parsed_header parse_header(const unsigned char* data, std::size_t size,
                                  const std::string& source) {
  parsed_header out;
  out.header_size = read_header_size(data, size, source);
  const std::uint64_t data_start = 8 + out.header_size;
  const std::uint64_t buffer_size = size - data_start;

  const char* first = reinterpret_cast<const char*>(data) + 8;
  const char* last = first + out.header_size;
  nlohmann::json root;
#ifdef MASQUANT_NO_EXCEPTIONS
  // Without exceptions nlohmann reports a syntax error as a discarded value, without details.
  root = nlohmann::json::parse(first, last, header_guard(source), /*allow_exceptions=*/false);
  MASQUANT_CHECK(!root.is_discarded(), errc::format_error, source, ": invalid JSON header");
#else
  try {
    root = nlohmann::json::parse(first, last, header_guard(source));
  } catch (const nlohmann::json::parse_error& e) {
    // Drop nlohmann's "[json.exception.parse_error.101] " and keep the message short and
    // printable: it quotes the last token read, which may be long or binary.
    std::string_view what = e.what();
    const auto start = what.find("] ");
    if (start != std::string_view::npos) what.remove_prefix(start + 2);
    raise(errc::format_error,
          cat(source, ": invalid JSON header (near file byte ",
              8 + std::max<std::size_t>(e.byte, 1) - 1, "): ", printable(what, 240, false)));
  } catch (const nlohmann::json::exception& e) {
    raise(errc::format_error, cat(source, ": invalid JSON header: ", e.what()));
  }
#endif
  MASQUANT_CHECK(root.is_object(), errc::format_error, source, ": header is ", json_kind(root),
                 ", expected an object");

  for (const auto& item : root.items()) {
    const std::string& name = item.key();
    const auto& value = item.value();
    if (name == "__metadata__") {
      MASQUANT_CHECK(value.is_object(), errc::format_error, source, ": __metadata__ is ",
                     json_kind(value), ", expected an object of strings");
      for (const auto& kv : value.items()) {
        MASQUANT_CHECK(kv.value().is_string(), errc::format_error, source, ": __metadata__ key ",
                       quote_name(kv.key()), " is ", json_kind(kv.value()), ", expected a string");
        out.metadata.emplace(kv.key(), kv.value().get<std::string>());
      }
      continue;
    }
    out.tensors.push_back(parse_tensor_entry(name, value, data_start, buffer_size, source));
  }

  std::sort(out.tensors.begin(), out.tensors.end(), [](const tensor_info& a, const tensor_info& b) {
    return std::tie(a.data_begin, a.data_end, a.name) < std::tie(b.data_begin, b.data_end, b.name);
  });
  std::uint64_t cursor = 0;
  for (std::size_t i = 0; i < out.tensors.size(); ++i) {
    const tensor_info& t = out.tensors[i];
    if (t.data_begin < cursor) {
      const tensor_info& prev = out.tensors[i - 1];
      raise(errc::format_error,
            cat(source, ": tensor ", quote_name(t.name), ": data_offsets [", t.data_begin, ", ",
                t.data_end, "] overlap tensor ", quote_name(prev.name), " [", prev.data_begin, ", ",
                prev.data_end, "] (file byte ", t.file_offset, ")"));
    }
    MASQUANT_CHECK(t.data_begin == cursor, errc::format_error, source, ": ", t.data_begin - cursor,
                   " unused bytes at data offset ", cursor, " (file byte ", data_start + cursor,
                   ") before tensor ", quote_name(t.name), ": tensors must tile the data buffer");
    cursor = t.data_end;
    out.index.emplace(t.name, i);
  }
  MASQUANT_CHECK(cursor == buffer_size, errc::format_error, source, ": ", buffer_size - cursor,
                 " unused bytes after the last tensor, at data offset ", cursor, " (file byte ",
                 data_start + cursor, "): tensors must tile the data buffer");
  return out;
}

}  // namespace masquant::detail
