// header_parser.hpp: the one validating parser of safetensors bytes, for files and memory alike.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <masquant/error.hpp>
#include <masquant/io/detail/json_scanner.hpp>
#include <masquant/io/detail/text.hpp>
#include <masquant/io/dtype.hpp>
#include <masquant/io/tensor_info.hpp>
#include <masquant/io/tensor_shape.hpp>
#include <numeric>
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
  std::uint64_t header_size = 0;                ///< N, the JSON length (padding included)
  std::vector<tensor_info> tensors;             ///< ordered by data offset
  std::map<std::string, std::string> metadata;  ///< "__metadata__"
  std::vector<std::size_t> by_name;             ///< positions in tensors, in name order

  /// The named tensor's entry, or null (a binary search).
  const tensor_info* find(std::string_view name) const noexcept {
    const auto it = std::lower_bound(by_name.begin(), by_name.end(), name,
                                     [this](std::size_t i, std::string_view n) {
                                       return std::string_view(tensors[i].name) < n;
                                     });
    return it != by_name.end() && tensors[*it].name == name ? &tensors[*it] : nullptr;
  }

  /// One level of the dot-separated namespace below `prefix` (a prefix ending in '.'), in name
  /// order: the entries named prefix + c with no '.' in c, and the distinct c of the names
  /// prefix + c + "." + ... . A binary search per group skips its names: O((entries + groups)
  /// log n), however many names a group holds.
  void children(std::string_view prefix, std::vector<const tensor_info*>& leaves,
                std::vector<std::string>& groups) const {
    const auto name_of = [this](std::size_t i) { return std::string_view(tensors[i].name); };
    const auto before = [&](std::size_t i, std::string_view n) { return name_of(i) < n; };
    auto it = std::lower_bound(by_name.begin(), by_name.end(), prefix, before);
    while (it != by_name.end() && name_of(*it).substr(0, prefix.size()) == prefix) {
      const std::string_view rest = name_of(*it).substr(prefix.size());
      const auto dot = rest.find('.');
      if (dot == std::string_view::npos) {
        leaves.push_back(&tensors[*it]);
        ++it;
        continue;
      }
      // Every name of the group starts with prefix + c + '.': skip to prefix + c + '/'.
      std::string group(rest.substr(0, dot));
      const std::string end = std::string(prefix) + group + '/';
      groups.push_back(std::move(group));
      it = std::lower_bound(it, by_name.end(), std::string_view(end), before);
    }
    std::sort(groups.begin(), groups.end());
    groups.erase(std::unique(groups.begin(), groups.end()), groups.end());
  }
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
  // JSON text never holds a NUL (not even inside strings, where it must be escaped); found up
  // front, the message names its offset.
  const void* nul = std::memchr(data + 8, 0, static_cast<std::size_t>(n));
  MASQUANT_CHECK(nul == nullptr, errc::format_error, source,
                 ": invalid JSON header: NUL byte at file byte ",
                 static_cast<const unsigned char*>(nul) - data);
  return n;
}

/// The type of a JSON value, as json_scanner reports it.
enum class json_type : std::uint8_t {
  null,
  boolean,
  integer,
  unsigned_integer,
  floating,
  string,
  array,
  object
};

/// JSON type name for messages.
inline const char* json_kind(json_type t) noexcept {
  switch (t) {
    case json_type::floating:
      return "a float";
    case json_type::integer:
    case json_type::unsigned_integer:
      return "an integer";
    case json_type::string:
      return "a string";
    case json_type::boolean:
      return "a boolean";
    case json_type::array:
      return "an array";
    case json_type::object:
      return "an object";
    case json_type::null:
      break;
  }
  return "null";
}

/// One element of a tensor entry's array (shape, data_offsets); only numbers keep their value.
struct json_scalar {
  json_type type = json_type::null;
  std::uint64_t u = 0;  ///< unsigned_integer
  std::int64_t i = 0;   ///< integer (nlohmann's type for negative numbers and "-0")
};

/// Reads a non-negative JSON integer ("-0" included) into `out`; false for anything else.
inline bool header_uint(const json_scalar& v, std::uint64_t& out) noexcept {
  if (v.type == json_type::unsigned_integer) {
    out = v.u;
    return true;
  }
  out = 0;
  return v.type == json_type::integer && v.i == 0;
}

/// What header_uint() refused, for a message: "tensor 'w': shape[0] is -1, expected ...".
inline std::string not_uint(const json_scalar& v, const std::string& name,
                            const std::string& what) {
  return cat("tensor ", quote_name(name), ": ", what, " is ",
             v.type == json_type::integer ? cat(v.i) : std::string(json_kind(v.type)),
             ", expected a non-negative integer");
}

/// The events of json_scanner on a safetensors header turned into tensor entries and metadata,
/// in one pass and without a DOM: memory and time linear in the header size, whatever the number
/// of tensors (nlohmann's callback parser, used before, rescanned the root object after every
/// entry: O(n²)).
///
/// Syntax errors, nesting deeper than a header has (root object > tensor entry > shape array),
/// and duplicate keys inside entries and __metadata__ are raised as they are met. A tensor entry
/// is validated when it ends: the valid ones become tensor_infos, and of the invalid ones the
/// error of the first in name order is kept, to be raised after the whole JSON was read (as a
/// DOM walked in key order would). Duplicate tensor names are found after the parse too.
class header_reader {
 public:
  header_reader(const std::string& source, std::uint64_t data_start, std::uint64_t buffer_size,
                parsed_header& out)
      : source_(source), data_start_(data_start), buffer_size_(buffer_size), out_(out) {}

  /// Names of the root keys that are not in out.tensors (invalid entries, "__metadata__").
  std::vector<std::string>& other_names() noexcept { return other_names_; }
  /// The error of the first invalid entry in name order (empty when every entry is valid).
  const std::string& first_error() const noexcept { return first_error_; }

  // json_scanner's events.
  void null() { scalar({json_type::null}, nullptr); }
  void boolean() { scalar({json_type::boolean}, nullptr); }
  void number_integer(std::int64_t v) { scalar({json_type::integer, 0, v}, nullptr); }
  void number_unsigned(std::uint64_t v) { scalar({json_type::unsigned_integer, v, 0}, nullptr); }
  void number_float() { scalar({json_type::floating}, nullptr); }
  void string(std::string& v) { scalar({json_type::string}, &v); }
  void start_object() { start(json_type::object); }
  void start_array() { start(json_type::array); }
  void end_object() { end(); }
  void end_array() { end(); }

  void key(std::string& k) {
    frame& f = frames_.back();
    if (frames_.size() == 1) {  // a tensor name or "__metadata__"
      name_ = std::move(k);
      entry_.reset();
      return;
    }
    if (f.what == role::entry) {
      field_ = k == "dtype"          ? &entry_.dtype
               : k == "shape"        ? &entry_.shape
               : k == "data_offsets" ? &entry_.offsets
                                     : nullptr;
      if (field_ != nullptr) {
        MASQUANT_CHECK(!field_->present, errc::format_error, source_, ": duplicate key ",
                       quote_name(k), " in ", where());
        field_->present = true;
        return;
      }
      if (!entry_.has_unknown || k < entry_.unknown_key) entry_.unknown_key = k;
      entry_.has_unknown = true;
    }
    MASQUANT_CHECK(f.keys.insert(k).second, errc::format_error, source_, ": duplicate key ",
                   quote_name(k), " in ", where());
    if (f.what == role::metadata) meta_key_ = std::move(k);
  }

 private:
  // What an open container is to the header.
  enum class role : std::uint8_t { root, entry, metadata, field_array, other };

  struct frame {
    role what;
    json_type type;
    std::set<std::string> keys;  // of objects other than the root (whose names are checked after)
  };

  // A tensor entry's "dtype", "shape" or "data_offsets".
  struct raw_field {
    bool present = false;
    json_type type = json_type::null;
    std::string text;                // the string value
    std::vector<json_scalar> items;  // the array's elements
    void reset() {
      present = false;
      type = json_type::null;
      text.clear();
      items.clear();
    }
  };

  // The root value being read (storage reused from entry to entry).
  struct raw_entry {
    raw_field dtype, shape, offsets;
    bool has_unknown = false;
    std::string unknown_key;  // the first unknown key in name order
    bool bad_metadata = false;
    std::string bad_key;  // the first __metadata__ key (in name order) whose value is no string
    json_type bad_type = json_type::null;
    void reset() {
      dtype.reset();
      shape.reset();
      offsets.reset();
      has_unknown = bad_metadata = false;
    }
  };

  // Names the innermost open container for messages.
  std::string where() const {
    if (frames_.size() <= 1) return "the header object";
    if (name_ == "__metadata__") return "__metadata__";
    return "tensor " + quote_name(name_);
  }

  void start(json_type type) {
    MASQUANT_CHECK(frames_.size() < 3, errc::format_error, source_,
                   ": header nests deeper than safetensors allows, inside ", where());
    role r = role::other;
    if (frames_.empty()) {
      r = role::root;
    } else if (frames_.size() == 1) {
      if (type == json_type::object) r = name_ == "__metadata__" ? role::metadata : role::entry;
    } else if (frames_.back().what == role::entry && field_ != nullptr) {
      field_->type = type;
      if (type == json_type::array) {
        r = role::field_array;
        array_field_ = field_;
      }
      field_ = nullptr;
    } else if (frames_.back().what == role::metadata) {
      note_metadata(type);
    }
    frames_.push_back(frame{r, type, {}});
  }

  void end() {
    const json_type type = frames_.back().type;
    frames_.pop_back();
    if (frames_.size() == 1) finish(type);
  }

  void scalar(const json_scalar& v, std::string* text) {
    if (frames_.size() == 1) {
      finish(v.type);
      return;
    }
    const frame& f = frames_.back();
    if (f.what == role::entry && field_ != nullptr) {
      field_->type = v.type;
      if (text != nullptr) field_->text = std::move(*text);
      field_ = nullptr;
    } else if (f.what == role::field_array) {
      array_field_->items.push_back(v);
    } else if (f.what == role::metadata) {
      if (v.type == json_type::string && text != nullptr)
        out_.metadata.emplace(std::move(meta_key_), std::move(*text));
      else
        note_metadata(v.type);
    }
  }

  void note_metadata(json_type type) {
    if (!entry_.bad_metadata || meta_key_ < entry_.bad_key) {
      entry_.bad_key = meta_key_;
      entry_.bad_type = type;
    }
    entry_.bad_metadata = true;
  }

  // The root value named name_ is complete.
  void finish(json_type type) {
    if (name_ == "__metadata__") {
      other_names_.push_back(name_);
      if (type != json_type::object)
        defer(
            cat(source_, ": __metadata__ is ", json_kind(type), ", expected an object of strings"));
      else if (entry_.bad_metadata)
        defer(cat(source_, ": __metadata__ key ", quote_name(entry_.bad_key), " is ",
                  json_kind(entry_.bad_type), ", expected a string"));
      return;
    }
    tensor_info info;
    const std::string problem = check_entry(type, info);
    if (problem.empty()) {
      info.name = std::move(name_);
      out_.tensors.push_back(std::move(info));
    } else {
      defer(cat(source_, ": ", problem));
      other_names_.push_back(std::move(name_));
    }
  }

  // Keeps the error of the invalid root entry whose name comes first.
  void defer(std::string message) {
    if (!first_error_.empty() && !(name_ < first_name_)) return;
    first_name_ = name_;
    first_error_ = std::move(message);
  }

  // Checks the finished entry's keys, types and sizes (not yet its place among the others);
  // returns what is wrong (after "source: "), or nothing.
  std::string check_entry(json_type type, tensor_info& info) const {
    const std::string& name = name_;
    auto tensor = [&] { return cat("tensor ", quote_name(name)); };
    if (name.empty()) return "a tensor has an empty name";
    if (type != json_type::object)
      return cat(tensor(), " is ", json_kind(type),
                 ", expected an object with dtype, shape and data_offsets");
    if (entry_.has_unknown)
      return cat(tensor(), " has an unknown key ", quote_name(entry_.unknown_key));
    const std::pair<const raw_field*, const char*> required[] = {
        {&entry_.dtype, "dtype"}, {&entry_.shape, "shape"}, {&entry_.offsets, "data_offsets"}};
    for (const auto& [field, key] : required)
      if (!field->present) return cat(tensor(), " has no \"", key, "\"");

    const raw_field& jtype = entry_.dtype;
    if (jtype.type != json_type::string)
      return cat(tensor(), ": dtype is ", json_kind(jtype.type), ", expected a string");
    const auto dt = parse_dtype(jtype.text);
    if (!dt) return cat(tensor(), " has unknown dtype ", quote_name(jtype.text));
    info.type = *dt;

    const raw_field& jshape = entry_.shape;
    if (jshape.type != json_type::array)
      return cat(tensor(), ": shape is ", json_kind(jshape.type), ", expected an array");
    std::vector<index_t> dims;
    dims.reserve(jshape.items.size());
    std::uint64_t nonzero_product = 1;
    for (std::size_t i = 0; i < jshape.items.size(); ++i) {
      std::uint64_t d = 0;
      if (!header_uint(jshape.items[i], d))
        return not_uint(jshape.items[i], name, cat("shape[", i, "]"));
      if (d != 0) {
        if (!tensor_shape::fits(nonzero_product, d, dtype_size(info.type)))
          return cat(tensor(), ": shape of ", info.type, " overflows 63-bit byte sizes at shape[",
                     i, "] = ", d);
        nonzero_product *= d;
      }
      dims.push_back(static_cast<index_t>(d));
    }
    info.shape = tensor_shape(std::move(dims));

    const raw_field& joff = entry_.offsets;
    if (joff.type != json_type::array || joff.items.size() != 2)
      return cat(tensor(), ": data_offsets is ",
                 joff.type == json_type::array ? cat("an array of ", joff.items.size(), " values")
                                               : std::string(json_kind(joff.type)),
                 ", expected [begin, end]");
    if (!header_uint(joff.items[0], info.data_begin))
      return not_uint(joff.items[0], name, "data_offsets begin");
    if (!header_uint(joff.items[1], info.data_end))
      return not_uint(joff.items[1], name, "data_offsets end");
    auto offsets = [&] { return cat("data_offsets [", info.data_begin, ", ", info.data_end, "]"); };
    if (info.data_begin > info.data_end) return cat(tensor(), ": ", offsets(), " has begin > end");
    if (info.data_end > buffer_size_)
      return cat(tensor(), ": ", offsets(), " end past the ", buffer_size_,
                 "-byte data buffer (file bytes ", data_start_, "-", data_start_ + buffer_size_,
                 ")");
    info.file_offset = data_start_ + info.data_begin;
    const auto need = static_cast<std::uint64_t>(info.shape.elements()) * dtype_size(info.type);
    if (info.byte_size() != need)
      return cat(tensor(), ": ", offsets(), " holds ", info.byte_size(), " bytes but ", info.type,
                 " ", info.shape, " needs ", need, " (file byte ", info.file_offset, ")");
    return {};
  }

  const std::string& source_;
  const std::uint64_t data_start_, buffer_size_;
  parsed_header& out_;
  std::vector<frame> frames_;
  std::string name_;                  // the current root key
  raw_entry entry_;                   // its value, when an object
  raw_field* field_ = nullptr;        // the entry field whose value comes next
  raw_field* array_field_ = nullptr;  // the entry field whose array is open
  std::string meta_key_;              // the current __metadata__ key
  std::vector<std::string> other_names_;
  std::string first_name_, first_error_;
};

/// Parses and validates a whole safetensors image of `size` bytes: header length, JSON, every
/// entry, and that the tensors tile the data buffer exactly (sorted by offset, no overlap, no gap,
/// nothing after the last one, as the reference crate demands). Throws errc::format_error with
/// a one-line message naming `source` and the tensor or byte offset. O(N log N) in the header
/// size N.
inline parsed_header parse_header(const unsigned char* data, std::size_t size,
                                  const std::string& source) {
  parsed_header out;
  out.header_size = read_header_size(data, size, source);
  const std::uint64_t data_start = 8 + out.header_size;
  const std::uint64_t buffer_size = size - data_start;

  const char* first = reinterpret_cast<const char*>(data) + 8;
  const char* last = first + out.header_size;
  header_reader reader(source, data_start, buffer_size, out);
  json_scanner<header_reader>(first, last, reader, source + ": invalid JSON header", 8).run();

  // Duplicate names, then the first invalid entry, then the tiling: as a DOM walked in key order
  // would report them.
  // (Writers list the tensors in data order, mostly in name order too: both sorts are often a
  // single linear check.)
  auto& tensors = out.tensors;
  const auto by_offset = [](const tensor_info& a, const tensor_info& b) {
    return std::tie(a.data_begin, a.data_end, a.name) < std::tie(b.data_begin, b.data_end, b.name);
  };
  if (!std::is_sorted(tensors.begin(), tensors.end(), by_offset))
    std::sort(tensors.begin(), tensors.end(), by_offset);
  out.by_name.resize(tensors.size());
  std::iota(out.by_name.begin(), out.by_name.end(), std::size_t{0});
  const auto name_order = [&](std::size_t a, std::size_t b) {
    return tensors[a].name < tensors[b].name;
  };
  if (!std::is_sorted(out.by_name.begin(), out.by_name.end(), name_order))
    std::sort(out.by_name.begin(), out.by_name.end(), name_order);
  auto duplicate = [&](const std::string& name) {
    raise(errc::format_error,
          cat(source, ": duplicate key ", quote_name(name), " in the header object"));
  };
  for (std::size_t i = 1; i < out.by_name.size(); ++i)
    if (tensors[out.by_name[i]].name == tensors[out.by_name[i - 1]].name)
      duplicate(tensors[out.by_name[i]].name);
  std::vector<std::string>& others = reader.other_names();
  std::sort(others.begin(), others.end());
  for (std::size_t i = 0; i < others.size(); ++i)
    if ((i > 0 && others[i] == others[i - 1]) || out.find(others[i]) != nullptr)
      duplicate(others[i]);
  if (!reader.first_error().empty()) raise(errc::format_error, reader.first_error());

  std::uint64_t cursor = 0;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const tensor_info& t = tensors[i];
    if (t.data_begin < cursor) {
      const tensor_info& prev = tensors[i - 1];
      raise(errc::format_error,
            cat(source, ": tensor ", quote_name(t.name), ": data_offsets [", t.data_begin, ", ",
                t.data_end, "] overlap tensor ", quote_name(prev.name), " [", prev.data_begin, ", ",
                prev.data_end, "] (file byte ", t.file_offset, ")"));
    }
    MASQUANT_CHECK(t.data_begin == cursor, errc::format_error, source, ": ", t.data_begin - cursor,
                   " unused bytes at data offset ", cursor, " (file byte ", data_start + cursor,
                   ") before tensor ", quote_name(t.name), ": tensors must tile the data buffer");
    cursor = t.data_end;
  }
  MASQUANT_CHECK(cursor == buffer_size, errc::format_error, source, ": ", buffer_size - cursor,
                 " unused bytes after the last tensor, at data offset ", cursor, " (file byte ",
                 data_start + cursor, "): tensors must tile the data buffer");
  return out;
}

}  // namespace masquant::detail
