// libFuzzer target: arbitrary bytes through the safetensors reader (the parser files use too).
// Every input must either parse, with every tensor's data readable, or throw masquant::error;
// anything else (a crash, a sanitizer report, another exception type) is a bug. The reader's
// verdict must also equal that of an independent statement of the header rules on nlohmann's
// DOM (reference_header below): the same files accepted, with the same tensors and metadata.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <masquant/io/safetensors_file.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

namespace {

// Reads every byte of every tensor and every typed load the dtype allows.
void touch(const masquant::safetensors_file& f) {
  unsigned sum = 0;
  for (const masquant::tensor_info& t : f.tensors()) {
    for (std::uint8_t b : f.bytes(t.name)) sum += b;
    // Every supported dtype but I64 loads as float (safetensors_file::view_f32); I64 loads as
    // itself only.
    if (masquant::is_supported(t.type) && t.type != masquant::dtype::i64) {
      try {
        const auto v = f.view_f32(t.name);
        for (float x : v.vector()) sum += x == 0.0f;
      } catch (const masquant::error& e) {
        if (e.code() != masquant::errc::overflow) throw;  // F64/I32 beyond float: documented
      }
    }
    if (t.type == masquant::dtype::i8) sum += f.view<std::int8_t>(t.name).matrix().rows() > 0;
    if (t.type == masquant::dtype::f16) sum += f.load<masquant::half>(t.name).size() > 0;
    if (t.type == masquant::dtype::i64) sum += f.load<std::int64_t>(t.name).size() > 0;
    (void)f.info(t.name).byte_size();
  }
  for (const auto& kv : f.metadata())
    sum += static_cast<unsigned>(kv.first.size() + kv.second.size());
  volatile unsigned sink = sum;
  (void)sink;
}

// What a file holds, for comparing two parsers: (name, dtype, shape, begin, end) in data order.
struct summary {
  std::vector<std::tuple<std::string, masquant::dtype, std::vector<std::uint64_t>, std::uint64_t,
                         std::uint64_t>>
      tensors;
  std::map<std::string, std::string> metadata;
  bool operator==(const summary& o) const { return tensors == o.tensors && metadata == o.metadata; }
};

summary summarize(const masquant::safetensors_file& f) {
  summary s;
  for (const auto& t : f.tensors()) {
    std::vector<std::uint64_t> dims(t.shape.dims().begin(), t.shape.dims().end());
    s.tensors.emplace_back(t.name, t.type, dims, t.data_begin, t.data_end);
  }
  s.metadata = f.metadata();
  return s;
}

// docs/file-format.md's validation rules restated on nlohmann's DOM (the reader's own scanner
// and checks are not used): the summary of a valid image, or nothing.
std::optional<summary> reference_header(const std::uint8_t* data, std::size_t size) {
  using json = nlohmann::json;
  if (size < 8) return std::nullopt;
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | data[i];
  if (n > 100'000'000 || n > size - 8 || n < 2 || data[8] != '{') return std::nullopt;
  if (std::memchr(data + 8, 0, n) != nullptr) return std::nullopt;
  const std::uint64_t buffer = size - 8 - n;
  // Duplicate keys in any object, and containers deeper than root > entry > shape, are errors
  // (found by a SAX pass: nlohmann's callback parser is quadratic in the number of entries).
  struct structure : nlohmann::json_sax<json> {
    std::vector<std::set<std::string>> keys;
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool start_object(std::size_t) override { return open(); }
    bool start_array(std::size_t) override { return open(); }
    bool end_object() override { return close(); }
    bool end_array() override { return close(); }
    bool key(string_t& k) override { return keys.back().insert(k).second; }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
      return false;
    }
    bool open() {
      keys.emplace_back();
      return keys.size() <= 3;
    }
    bool close() {
      keys.pop_back();
      return true;
    }
  } checker;
  const char* first = reinterpret_cast<const char*>(data) + 8;
  if (!json::sax_parse(first, first + n, &checker)) return std::nullopt;
  json root;
  try {
    root = json::parse(first, first + n);
  } catch (const std::exception&) {
    return std::nullopt;
  }
  const auto uint = [](const json& v, std::uint64_t& out) {
    if (v.is_number_unsigned()) return out = v.get<std::uint64_t>(), true;
    return out = 0, v.is_number_integer() && v.get<std::int64_t>() == 0;
  };
  summary s;
  for (const auto& item : root.items()) {
    const json& v = item.value();
    if (item.key() == "__metadata__") {
      if (!v.is_object()) return std::nullopt;
      for (const auto& kv : v.items()) {
        if (!kv.value().is_string()) return std::nullopt;
        s.metadata[kv.key()] = kv.value().get<std::string>();
      }
      continue;
    }
    if (item.key().empty() || !v.is_object() || v.size() != 3 || !v.contains("dtype") ||
        !v.contains("shape") || !v.contains("data_offsets"))
      return std::nullopt;
    if (!v["dtype"].is_string()) return std::nullopt;
    const auto type = masquant::parse_dtype(v["dtype"].get<std::string>());
    if (!type || !v["shape"].is_array()) return std::nullopt;
    std::vector<std::uint64_t> dims;
    unsigned __int128 bytes = masquant::dtype_size(*type), nonzero = bytes;
    for (const auto& d : v["shape"]) {
      std::uint64_t e = 0;
      if (!uint(d, e)) return std::nullopt;
      if (e != 0 && (nonzero *= e) > static_cast<unsigned __int128>(INT64_MAX)) return std::nullopt;
      bytes *= e;
      dims.push_back(e);
    }
    const json& off = v["data_offsets"];
    std::uint64_t begin = 0, end = 0;
    if (!off.is_array() || off.size() != 2 || !uint(off[0], begin) || !uint(off[1], end) ||
        begin > end || end > buffer || end - begin != bytes)
      return std::nullopt;
    s.tensors.emplace_back(item.key(), *type, dims, begin, end);
  }
  std::sort(s.tensors.begin(), s.tensors.end(), [](const auto& a, const auto& b) {
    return std::tie(std::get<3>(a), std::get<4>(a), std::get<0>(a)) <
           std::tie(std::get<3>(b), std::get<4>(b), std::get<0>(b));
  });
  std::uint64_t cursor = 0;
  for (const auto& t : s.tensors) {
    if (std::get<3>(t) != cursor) return std::nullopt;  // overlap or gap
    cursor = std::get<4>(t);
  }
  if (cursor != buffer) return std::nullopt;
  return s;
}

[[noreturn]] void disagree(const char* what) {
  std::fprintf(stderr, "safetensors_reader_fuzz: the reader and the reference disagree: %s\n",
               what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::optional<summary> expected = reference_header(data, size);
  std::optional<masquant::safetensors_file> f;
  try {
    f.emplace(masquant::safetensors_file::from_memory(data, size, "<fuzz>"));
  } catch (const masquant::error&) {
    // Rejected input: the expected outcome for most bytes.
    if (expected) disagree("the reader refuses an image the rules accept");
    return 0;
  }
  if (!expected) disagree("the reader accepts an image the rules refuse");
  if (!(summarize(*f) == *expected)) disagree("both accept, with different contents");
  touch(*f);
  return 0;
}
