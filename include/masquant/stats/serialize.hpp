// serialize.hpp: the versioned little-endian binary file of channel_stats / modality_stats.
#pragma once

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <masquant/error.hpp>
#include <masquant/stats/channel_stats.hpp>
#include <masquant/stats/modality_stats.hpp>
#include <random>
#include <string>
#include <vector>

namespace masquant {

/// Magic bytes that open a statistics file.
inline constexpr char stats_file_magic[8] = {'M', 'Q', 'S', 'T', 'A', 'T', 'S', '\0'};
/// Version of the statistics file layout written (and the only one read).
inline constexpr std::uint32_t stats_file_version = 1;

namespace detail {

// Encodes and decodes the layout documented in docs/statistics.md: a 24-byte header (magic,
// version u32, record count u32, channels i64), then per record flags u32, reserved u32,
// count i64, min/max/mean/m2 as f64[channels], and, when flag bit 0 is set, the upper triangle
// of the Gram matrix column by column (f64[channels * (channels + 1) / 2]). Little-endian.
struct stats_codec {
  using sink = std::function<void(const void*, std::size_t)>;

  static constexpr std::uint32_t flag_gram = 1;
  static constexpr std::size_t header_bytes = 24;
  static constexpr std::size_t record_header_bytes = 16;

  static bool little_endian() noexcept {
    const std::uint16_t probe = 1;
    unsigned char first = 0;
    std::memcpy(&first, &probe, 1);
    return first == 1;
  }

  template <class T>
  static void put(const sink& out, T value) {
    unsigned char bytes[sizeof(T)];
    std::memcpy(bytes, &value, sizeof(T));
    if (!little_endian()) std::reverse(bytes, bytes + sizeof(T));
    out(bytes, sizeof(T));
  }

  static void put_doubles(const sink& out, const double* values, std::size_t n) {
    if (n == 0) return;  // values may be null
    if (little_endian()) {
      out(values, n * sizeof(double));
    } else {
      for (std::size_t i = 0; i < n; ++i) put(out, values[i]);
    }
  }

  static void encode(const std::vector<const channel_stats*>& records, const sink& out) {
    out(stats_file_magic, sizeof(stats_file_magic));
    put(out, stats_file_version);
    put(out, static_cast<std::uint32_t>(records.size()));
    put(out, static_cast<std::int64_t>(records.empty() ? 0 : records[0]->channels()));
    for (const channel_stats* s : records) {
      const index_t c = s->channels();
      put(out, s->has_gram() ? flag_gram : std::uint32_t{0});
      put(out, std::uint32_t{0});
      put(out, static_cast<std::int64_t>(s->count()));
      put_doubles(out, s->state_.data(), 4 * static_cast<std::size_t>(c));
      if (s->has_gram()) {
        for (index_t j = 0; j < c; ++j)
          put_doubles(out, s->gram_.data() + j * c, static_cast<std::size_t>(j + 1));
      }
    }
  }

  // Reads fields from a byte range; every failure names the byte offset.
  class reader {
   public:
    reader(const std::uint8_t* data, std::size_t size, const std::string& what)
        : data_(data), size_(size), what_(what) {}

    std::size_t offset() const noexcept { return pos_; }
    std::size_t remaining() const noexcept { return size_ - pos_; }

    [[noreturn]] void fail(std::size_t at, const std::string& message) const {
      raise(errc::format_error, cat(what_, ": ", message, " at byte offset ", at));
    }

    void need(std::size_t bytes, const char* field) const {
      if (bytes > remaining())
        fail(pos_, cat("truncated: ", field, " needs ", bytes, " bytes, ", remaining(), " left"));
    }

    template <class T>
    T get(const char* field) {
      need(sizeof(T), field);
      unsigned char bytes[sizeof(T)];
      std::memcpy(bytes, data_ + pos_, sizeof(T));
      if (!little_endian()) std::reverse(bytes, bytes + sizeof(T));
      T value;
      std::memcpy(&value, bytes, sizeof(T));
      pos_ += sizeof(T);
      return value;
    }

    void get_doubles(double* dst, std::size_t n, const char* field) {
      if (n == 0) return;  // dst may be null
      if (n > remaining() / sizeof(double)) need(n * sizeof(double), field);
      if (little_endian()) {
        std::memcpy(dst, data_ + pos_, n * sizeof(double));
        pos_ += n * sizeof(double);
      } else {
        for (std::size_t i = 0; i < n; ++i) dst[i] = get<double>(field);
      }
    }

    void get_bytes(void* dst, std::size_t n, const char* field) {
      need(n, field);
      std::memcpy(dst, data_ + pos_, n);
      pos_ += n;
    }

   private:
    const std::uint8_t* data_;
    std::size_t size_;
    std::size_t pos_ = 0;
    std::string what_;
  };

  static std::vector<channel_stats> decode(const std::uint8_t* data, std::size_t size,
                                           const std::string& what) {
    reader in(data, size, what);
    char magic[sizeof(stats_file_magic)];
    in.get_bytes(magic, sizeof(magic), "magic");
    if (std::memcmp(magic, stats_file_magic, sizeof(magic)) != 0)
      in.fail(0, "not a masquant statistics file (bad magic)");
    const std::uint32_t version = in.get<std::uint32_t>("version");
    if (version != stats_file_version)
      in.fail(8, cat("unsupported version ", version, " (this library reads ", stats_file_version,
                     ")"));
    const std::uint32_t records = in.get<std::uint32_t>("record count");
    if (records < 1 || records > 256)
      in.fail(12, cat("record count ", records, " outside [1, 256]"));
    const std::int64_t channels = in.get<std::int64_t>("channel count");
    // Every record holds at least 32 bytes per channel: a channel count the rest of the file
    // cannot hold is a size mismatch, caught before anything is allocated.
    if (channels < 0 || static_cast<std::uint64_t>(channels) > in.remaining() / 32)
      in.fail(16, cat("channel count ", channels, " does not fit the ", in.remaining(),
                      " bytes that follow the header"));
    const index_t c = static_cast<index_t>(channels);
    const auto nc = static_cast<std::size_t>(c);

    std::vector<channel_stats> out;
    out.reserve(records);
    for (std::uint32_t k = 0; k < records; ++k) {
      const std::size_t record_at = in.offset();
      const std::uint32_t flags = in.get<std::uint32_t>("record flags");
      if ((flags & ~flag_gram) != 0)
        in.fail(record_at, cat("record ", k, ": unknown flags 0x", std::hex, flags));
      if (in.get<std::uint32_t>("reserved field") != 0)
        in.fail(record_at + 4, cat("record ", k, ": reserved field is not zero"));
      const std::int64_t count = in.get<std::int64_t>("token count");
      if (count < 0) in.fail(record_at + 8, cat("record ", k, ": negative token count ", count));
      const bool gram = (flags & flag_gram) != 0;
      // Bounds nc * (nc + 1) / 2 far below overflow; no file could hold such a matrix anyway.
      if (gram && nc > (std::size_t{1} << 28))
        in.fail(16, cat("channel count ", channels, " is too large for a Gram matrix"));
      const std::size_t gram_values = gram ? nc * (nc + 1) / 2 : 0;
      if (nc * 4 > in.remaining() / sizeof(double) ||
          gram_values > in.remaining() / sizeof(double) - nc * 4)
        in.need((nc * 4 + gram_values) * sizeof(double), "record arrays");

      channel_stats s(c, gram);
      s.count_ = count;
      const std::size_t arrays_at = in.offset();
      in.get_doubles(s.state_.data(), 4 * nc, "min/max/mean/m2");
      check_moments(in, s, k, arrays_at);
      if (gram) {
        for (index_t j = 0; j < c; ++j) {
          double* col = s.gram_.data() + j * c;
          const std::size_t col_at = in.offset();
          in.get_doubles(col, static_cast<std::size_t>(j + 1), "Gram matrix");
          for (index_t i = 0; i <= j; ++i) {
            const std::size_t at = col_at + static_cast<std::size_t>(i) * sizeof(double);
            if (!std::isfinite(col[i]) || (i == j && col[i] < 0.0) || (count == 0 && col[i] != 0))
              in.fail(at, cat("record ", k, ": invalid Gram entry (", i, ", ", j, ") = ", col[i]));
          }
        }
      }
      out.push_back(std::move(s));
    }
    if (in.remaining() != 0)
      in.fail(in.offset(), cat(in.remaining(), " unexpected bytes after the last record"));
    return out;
  }

  static channel_stats decode_one(const std::uint8_t* data, std::size_t size,
                                  const std::string& what) {
    auto records = decode(data, size, what);
    if (records.size() != 1)
      raise(errc::format_error, cat(what, ": the file holds ", records.size(),
                                    " accumulators, expected 1 at byte offset 12"));
    return std::move(records[0]);
  }

  // Values an accumulator can hold (invalid_moment); failures name the offending value's offset.
  static void check_moments(const reader& in, const channel_stats& s, std::uint32_t k,
                            std::size_t at) {
    const index_t c = s.channels_;
    const double* v = s.state_.data();
    for (index_t j = 0; j < c; ++j) {
      const double mn = v[j], mx = v[c + j];
      const int f = invalid_moment(s.count_, mn, mx, v[2 * c + j], v[3 * c + j]);
      if (f < 0) continue;
      in.fail(at + static_cast<std::size_t>(f * c + j) * sizeof(double),
              cat("record ", k, ": invalid ", moment_field_names[f], " ", v[f * c + j],
                  " of channel ", j, " (min ", mn, ", max ", mx, ", ", s.count_, " tokens)"));
    }
  }

  static std::size_t encoded_size(const std::vector<const channel_stats*>& records) {
    std::size_t bytes = header_bytes;
    for (const channel_stats* s : records) {
      const auto c = static_cast<std::size_t>(s->channels());
      bytes +=
          record_header_bytes + sizeof(double) * (4 * c + (s->has_gram() ? c * (c + 1) / 2 : 0));
    }
    return bytes;
  }

  static std::vector<std::uint8_t> to_bytes(const std::vector<const channel_stats*>& records) {
    std::vector<std::uint8_t> bytes(encoded_size(records));
    std::size_t pos = 0;
    encode(records, [&](const void* p, std::size_t n) {
      MASQUANT_ASSERT(pos + n <= bytes.size());
      std::memcpy(bytes.data() + pos, p, n);
      pos += n;
    });
    MASQUANT_ASSERT(pos == bytes.size());
    return bytes;
  }

  // Writes to a temporary file beside `path`, then renames it over `path`: a failure never
  // leaves a partial file at `path`.
  static void save(const std::vector<const channel_stats*>& records, const std::string& path,
                   const char* what) {
    std::random_device entropy;
    const std::string tmp = cat(path, ".tmp-", entropy(), entropy());
    std::FILE* f = std::fopen(tmp.c_str(), "wb");
    if (f == nullptr)
      raise(errc::io_error, cat(what, ": cannot create ", tmp, ": ", std::strerror(errno)));
    bool ok = true;
    encode(records, [&](const void* p, std::size_t n) {
      if (ok && std::fwrite(p, 1, n, f) != n) ok = false;
    });
    const int write_errno = errno;
    ok = std::fflush(f) == 0 && ok;
    ok = std::fclose(f) == 0 && ok;
    if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
      const int err = ok ? errno : write_errno;
      std::remove(tmp.c_str());
      raise(errc::io_error, cat(what, ": cannot write ", path, ": ", std::strerror(err)));
    }
  }

  static std::vector<std::uint8_t> read_file(const std::string& path, const char* what) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr)
      raise(errc::io_error, cat(what, ": cannot open ", path, ": ", std::strerror(errno)));
    std::vector<std::uint8_t> bytes;
    std::uint8_t buffer[1 << 16];
    std::size_t n = 0;
    while ((n = std::fread(buffer, 1, sizeof(buffer), f)) > 0)
      bytes.insert(bytes.end(), buffer, buffer + n);
    const bool failed = std::ferror(f) != 0;
    std::fclose(f);
    if (failed) raise(errc::io_error, cat(what, ": cannot read ", path));
    return bytes;
  }
};

}  // namespace detail

/// The statistics file of one accumulator (see docs/statistics.md for the layout).
inline std::vector<std::uint8_t> to_bytes(const channel_stats& stats) {
  return detail::stats_codec::to_bytes({&stats});
}

/// The statistics file of every modality's accumulator, in id order.
inline std::vector<std::uint8_t> to_bytes(const modality_stats& stats) {
  std::vector<const channel_stats*> records;
  for (index_t m = 0; m < stats.modalities(); ++m)
    records.push_back(&stats[static_cast<modality_id>(m)]);
  return detail::stats_codec::to_bytes(records);
}

/// Reads an accumulator from the bytes of a statistics file holding exactly one record. Throws
/// errc::format_error naming the byte offset (bad magic or version, truncated data, sizes that
/// disagree, values no accumulator can hold, trailing bytes).
inline channel_stats channel_stats_from_bytes(const std::uint8_t* data, std::size_t size) {
  return detail::stats_codec::decode_one(data, size, "channel_stats_from_bytes");
}

/// Reads per-modality accumulators (record k = modality k); throws as channel_stats_from_bytes.
inline modality_stats modality_stats_from_bytes(const std::uint8_t* data, std::size_t size) {
  return modality_stats(detail::stats_codec::decode(data, size, "modality_stats_from_bytes"));
}

/// Writes `stats` to `path` through a temporary file and a rename, so `path` is either the old
/// file or the complete new one. Throws errc::io_error naming the path.
inline void save(const channel_stats& stats, const std::string& path) {
  detail::stats_codec::save({&stats}, path, "save(channel_stats)");
}

/// Writes every modality's accumulator to `path` (atomically, as the other save()).
inline void save(const modality_stats& stats, const std::string& path) {
  std::vector<const channel_stats*> records;
  for (index_t m = 0; m < stats.modalities(); ++m)
    records.push_back(&stats[static_cast<modality_id>(m)]);
  detail::stats_codec::save(records, path, "save(modality_stats)");
}

/// Reads a file written by save(const channel_stats&). Throws errc::io_error when the file
/// cannot be read, errc::format_error as channel_stats_from_bytes.
inline channel_stats load_channel_stats(const std::string& path) {
  const auto bytes = detail::stats_codec::read_file(path, "load_channel_stats");
  return detail::stats_codec::decode_one(bytes.data(), bytes.size(),
                                         detail::cat("load_channel_stats(", path, ")"));
}

/// Reads a file written by save(const modality_stats&); throws as load_channel_stats.
inline modality_stats load_modality_stats(const std::string& path) {
  const auto bytes = detail::stats_codec::read_file(path, "load_modality_stats");
  return modality_stats(detail::stats_codec::decode(
      bytes.data(), bytes.size(), detail::cat("load_modality_stats(", path, ")")));
}

}  // namespace masquant
