// packed_image.hpp: a quantized_linear as one versioned byte image of what it runs (layout v1,
// docs/packed-image.md), written once and adopted in place later, e.g. from a memory map:
// adopting checks the header, its checksum and the bounds and sizes of every section, then reads
// the packed weight and factors where they lie, without copying or repacking.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <masquant/gemm/detail/panels.hpp>
#include <masquant/gemm/packed_weights.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace masquant {

/// The layout version adopt_packed_image() reads and write_packed_image() writes.
inline constexpr std::uint32_t packed_image_version = 1;
/// Alignment of an image's start (and of every section in it) that adoption requires.
inline constexpr std::size_t packed_image_alignment = 64;

namespace detail {

struct packed_image_codec {
  enum section : std::uint32_t {
    names = 1,      // per modality: u32 length, then the UTF-8 bytes (empty: no names given)
    wscale,         // f32 [d_out]
    bias,           // f32 [d_out]
    smooth,         // f32 [modalities][d_in]
    weight,         // packed_weights bytes (INT8/INT4 paths)
    weight_scales,  // f32 [d_out rounded up to 64], zero padded
    a16_weight,     // bf16 panels of the levels [d_in, d_out] (A16 path)
    lowrank_l,      // panels of L_m [d_in, r] (bf16 or f32 by the flags)
    lowrank_r,      // panels of R_m [r, d_out]
  };
  static const char* section_name(std::uint32_t kind) noexcept {
    static const char* const table[] = {"?",         "names",    "wscale",        "bias",
                                        "smooth",    "weight",   "weight_scales", "a16_weight",
                                        "lowrank_l", "lowrank_r"};
    return kind >= 1 && kind <= lowrank_r ? table[kind] : table[0];
  }

  static constexpr char magic[8] = {'M', 'Q', 'L', 'I', 'N', 'E', 'A', 'R'};
  static constexpr std::size_t fixed_bytes = 72;  // the header before the section table
  static constexpr std::size_t entry_bytes = 32;  // kind, modality, rank, offset, bytes
  static constexpr std::uint32_t flag_bf16_factors = 1, flag_bias = 2;

  struct entry {
    std::uint32_t kind = 0, modality = 0;
    std::uint64_t rank = 0, offset = 0, bytes = 0;
  };

  static std::uint64_t align(std::uint64_t v) noexcept {
    return (v + packed_image_alignment - 1) / packed_image_alignment * packed_image_alignment;
  }

  // FNV-1a over the header with its checksum field (bytes 24..31) read as zeros.
  static std::uint64_t checksum(const unsigned char* header, std::size_t size) noexcept {
    std::uint64_t h = 14695981039346656037ull;
    for (std::size_t i = 0; i < size; ++i) {
      h ^= (i >= 24 && i < 32) ? 0u : header[i];
      h *= 1099511628211ull;
    }
    return h;
  }

  template <class T>
  static void put(unsigned char* at, T v) noexcept {
    std::memcpy(at, &v, sizeof(T));  // little-endian hosts only (x86-64, AArch64 Linux)
  }
  template <class T>
  static T get(const unsigned char* at) noexcept {
    T v;
    std::memcpy(&v, at, sizeof(T));
    return v;
  }

  // The sections of `layer` in image order, offsets and sizes filled in; `total` the image size.
  static std::vector<entry> plan(const quantized_linear& layer, std::uint64_t& header_bytes,
                                 std::uint64_t& total) {
    const quantized_linear_params& p = layer.p_;
    std::vector<entry> out;
    const auto f32 = [](index_t count) { return static_cast<std::uint64_t>(count) * 4; };
    std::uint64_t names_bytes = 0;
    for (const auto& name : p.modality_names) names_bytes += 4 + name.size();
    out.push_back({names, 0, 0, 0, names_bytes});
    out.push_back({wscale, 0, 0, 0, f32(p.d_out)});
    if (!p.bias.empty()) out.push_back({bias, 0, 0, 0, f32(p.d_out)});
    out.push_back({smooth, 0, 0, 0, f32(p.modalities() * p.d_in)});
    if (p.activation_bits < 16) {
      out.push_back({weight, 0, 0, 0, layer.packed_.packed_bytes()});
      out.push_back({weight_scales, 0, 0, 0, f32(round_up(p.d_out, index_t{64}))});
    } else {
      out.push_back({a16_weight, 0, 0, 0, layer.a16_weight_.data.size() * 2});
    }
    const bool bf16 = layer.options_.storage == lowrank_storage::bfloat16;
    for (index_t m = 1; m < p.modalities(); ++m) {
      const auto& f = layer.lowrank_[static_cast<std::size_t>(m)];
      if (f.rank == 0) continue;
      const auto mu = static_cast<std::uint32_t>(m);
      const auto r = static_cast<std::uint64_t>(f.rank);
      out.push_back({lowrank_l, mu, r, 0, bf16 ? f.l16.data.size() * 2 : f.l32.data.size() * 4});
      out.push_back({lowrank_r, mu, r, 0, bf16 ? f.r16.data.size() * 2 : f.r32.data.size() * 4});
    }
    header_bytes = align(fixed_bytes + entry_bytes * out.size());
    std::uint64_t at = header_bytes;
    for (entry& e : out) {
      e.offset = at;
      at = align(at + e.bytes);
    }
    total = at;
    return out;
  }

  static std::size_t image_bytes(const quantized_linear& layer) {
    std::uint64_t header = 0, total = 0;
    (void)plan(layer, header, total);
    return static_cast<std::size_t>(total);
  }

  static void write(const quantized_linear& layer, unsigned char* out, std::size_t size) {
    std::uint64_t header_bytes = 0, total = 0;
    const std::vector<entry> sections = plan(layer, header_bytes, total);
    MASQUANT_CHECK(size == total, errc::shape_mismatch, "write_packed_image: the buffer has ", size,
                   " bytes, the image needs ", total, " (packed_image_bytes)");
    std::memset(out, 0, size);
    const quantized_linear_params& p = layer.p_;
    std::memcpy(out, magic, 8);
    put<std::uint32_t>(out + 8, packed_image_version);
    put<std::uint32_t>(out + 12, static_cast<std::uint32_t>(header_bytes));
    put<std::uint64_t>(out + 16, total);
    put<std::int64_t>(out + 32, p.d_in);
    put<std::int64_t>(out + 40, p.d_out);
    put<std::int32_t>(out + 48, p.weight_bits);
    put<std::int32_t>(out + 52, p.activation_bits);
    put<std::uint32_t>(out + 56, static_cast<std::uint32_t>(p.modalities()));
    const bool bf16 = layer.options_.storage == lowrank_storage::bfloat16;
    put<std::uint32_t>(out + 60,
                       (bf16 ? flag_bf16_factors : 0u) | (p.bias.empty() ? 0u : flag_bias));
    put<std::uint32_t>(out + 64, static_cast<std::uint32_t>(sections.size()));
    for (std::size_t i = 0; i < sections.size(); ++i) {
      const entry& e = sections[i];
      unsigned char* t = out + fixed_bytes + i * entry_bytes;
      put(t, e.kind);
      put(t + 4, e.modality);
      put(t + 8, e.rank);
      put(t + 16, e.offset);
      put(t + 24, e.bytes);
      unsigned char* at = out + e.offset;
      const auto copy = [&](const void* src) {
        if (e.bytes > 0) std::memcpy(at, src, static_cast<std::size_t>(e.bytes));
      };
      const auto& f = layer.lowrank_[e.modality];
      switch (e.kind) {
        case names:
          for (const std::string& name : p.modality_names) {
            put(at, static_cast<std::uint32_t>(name.size()));
            std::copy(name.begin(), name.end(), at + 4);
            at += 4 + name.size();
          }
          break;
        case wscale:
          copy(p.wscale.data());
          break;
        case bias:
          copy(p.bias.data());
          break;
        case smooth:
          for (const auto& s : p.smooth) {
            std::memcpy(at, s.data(), s.size() * 4);
            at += s.size() * 4;
          }
          break;
        case weight:
          copy(layer.packed_.data());
          break;
        case weight_scales:
          copy(layer.packed_.padded_scales());
          break;
        case a16_weight:
          copy(layer.a16_weight_.data.data());
          break;
        case lowrank_l:
          copy(bf16 ? static_cast<const void*>(f.l16.data.data()) : f.l32.data.data());
          break;
        case lowrank_r:
          copy(bf16 ? static_cast<const void*>(f.r16.data.data()) : f.r32.data.data());
          break;
        default:
          break;
      }
    }
    put<std::uint64_t>(out + 24, checksum(out, static_cast<std::size_t>(header_bytes)));
  }

  static quantized_linear adopt(const void* image, std::size_t size,
                                std::shared_ptr<const void> owner, const std::string& source);
};

inline quantized_linear packed_image_codec::adopt(const void* image, std::size_t size,
                                                  std::shared_ptr<const void> owner,
                                                  const std::string& source) {
  const auto* base = static_cast<const unsigned char*>(image);
  const std::string where = source + ": packed image: ";
  MASQUANT_CHECK(reinterpret_cast<std::uintptr_t>(base) % packed_image_alignment == 0,
                 errc::invalid_argument, where, "starts at an address that is not ",
                 packed_image_alignment, "-byte aligned (copy it to aligned memory)");
  MASQUANT_CHECK(size >= fixed_bytes && std::memcmp(base, magic, 8) == 0, errc::format_error, where,
                 "no \"MQLINEAR\" header in its first bytes (", size, " bytes in all)");
  const auto version = get<std::uint32_t>(base + 8);
  MASQUANT_CHECK(version == packed_image_version, errc::not_supported, where, "layout version ",
                 version, " (this masquant reads version ", packed_image_version,
                 "): write the image again from the checkpoint");
  const std::uint64_t header_bytes = get<std::uint32_t>(base + 12);
  const auto total = get<std::uint64_t>(base + 16);
  MASQUANT_CHECK(total == size, errc::format_error, where, "the header gives ", total,
                 " bytes but ", size, " are there (truncated or padded)");
  const auto count = get<std::uint32_t>(base + 64);
  MASQUANT_CHECK(header_bytes >= fixed_bytes + entry_bytes * std::uint64_t{count} &&
                     header_bytes <= size && header_bytes % packed_image_alignment == 0,
                 errc::format_error, where, "header of ", header_bytes, " bytes at byte 12 for ",
                 count, " sections in ", size, " bytes");
  MASQUANT_CHECK(
      get<std::uint64_t>(base + 24) == checksum(base, static_cast<std::size_t>(header_bytes)),
      errc::format_error, where, "the header checksum at byte 24 does not match ", "its ",
      header_bytes, " bytes (corrupted)");

  quantized_linear layer;
  quantized_linear_params& p = layer.p_;
  p.d_in = get<std::int64_t>(base + 32);
  p.d_out = get<std::int64_t>(base + 40);
  p.weight_bits = get<std::int32_t>(base + 48);
  p.activation_bits = get<std::int32_t>(base + 52);
  const auto mods = get<std::uint32_t>(base + 56);
  const auto flags = get<std::uint32_t>(base + 60);
  MASQUANT_CHECK(
      p.d_in >= 1 && p.d_out >= 1 && p.d_in <= int8_gemm_max_k && p.d_out <= (index_t{1} << 31),
      errc::format_error, where, "extents d_in = ", p.d_in, ", d_out = ", p.d_out,
      " (bytes 32..47) out of range");
  MASQUANT_CHECK(
      p.weight_bits >= 2 && p.weight_bits <= 8 &&
          ((p.activation_bits >= 2 && p.activation_bits <= 8) || p.activation_bits >= 16),
      errc::format_error, where, "bit widths W", p.weight_bits, "A", p.activation_bits,
      " (bytes 48..55)");
  MASQUANT_CHECK(mods >= 1 && mods <= 256, errc::format_error, where, mods,
                 " modalities (byte 56; need 1..256)");
  layer.options_.storage =
      (flags & flag_bf16_factors) != 0 ? lowrank_storage::bfloat16 : lowrank_storage::float32;
  const bool bf16 = layer.options_.storage == lowrank_storage::bfloat16;
  const bool a16 = p.activation_bits >= 16;
  const int packed_bits = p.weight_bits <= 4 ? 4 : 8;
  layer.lowrank_.resize(mods);

  // Every section: in bounds, aligned, after the previous one, of the size its fields imply.
  std::vector<const entry*> seen(lowrank_r + 1, nullptr);
  std::vector<entry> table(count);
  std::uint64_t end = header_bytes;
  for (std::uint32_t i = 0; i < count; ++i) {
    const unsigned char* t = base + fixed_bytes + i * entry_bytes;
    entry& e = table[i];
    e = {get<std::uint32_t>(t), get<std::uint32_t>(t + 4), get<std::uint64_t>(t + 8),
         get<std::uint64_t>(t + 16), get<std::uint64_t>(t + 24)};
    const std::string what =
        detail::cat(where, "section ", i, " (", section_name(e.kind),
                    e.kind >= lowrank_l ? detail::cat(" of modality ", e.modality) : "",
                    ", table entry at byte ", fixed_bytes + i * entry_bytes, ")");
    MASQUANT_CHECK(e.kind >= names && e.kind <= lowrank_r, errc::format_error, what,
                   ": unknown kind ", e.kind);
    MASQUANT_CHECK(e.offset >= end && e.offset % packed_image_alignment == 0 && e.offset <= size &&
                       e.bytes <= size - e.offset,
                   errc::format_error, what, ": bytes [", e.offset, ", +", e.bytes,
                   ") are not an aligned range after the previous section inside the ", size,
                   " bytes");
    end = e.offset + e.bytes;
    std::uint64_t want = 0;
    const auto f32 = [](index_t n) { return static_cast<std::uint64_t>(n) * 4; };
    if (e.kind >= lowrank_l) {
      MASQUANT_CHECK(e.modality >= 1 && e.modality < mods && e.rank >= 1 &&
                         e.rank <= static_cast<std::uint64_t>(int8_gemm_max_k),
                     errc::format_error, what, ": modality ", e.modality, " rank ", e.rank);
      auto& f = layer.lowrank_[e.modality];
      const auto r = static_cast<index_t>(e.rank);
      MASQUANT_CHECK(f.rank == 0 || f.rank == r, errc::format_error, what, ": rank ", r,
                     " but L has rank ", f.rank);
      f.rank = r;
      const index_t rows = e.kind == lowrank_l ? p.d_in : r,
                    cols = e.kind == lowrank_l ? r : p.d_out;
      const index_t panels = (cols + gemm::panel_cols - 1) / gemm::panel_cols;
      const index_t stride = (bf16 ? round_up(rows, index_t{2}) : rows) * gemm::panel_cols;
      want = static_cast<std::uint64_t>(panels * stride) * (bf16 ? 2 : 4);
      if (want == e.bytes) {
        const auto adopt_panels = [&](auto& dst, auto* elements) {
          dst.k = rows;
          dst.n = cols;
          dst.count = panels;
          dst.stride = stride;
          using T = std::remove_const_t<std::remove_pointer_t<decltype(elements)>>;
          dst.data =
              shared_array<T>::adopt(elements, static_cast<std::size_t>(panels * stride), owner);
        };
        const unsigned char* at = base + e.offset;
        if (bf16) {
          adopt_panels(e.kind == lowrank_l ? f.l16 : f.r16,
                       reinterpret_cast<const std::uint16_t*>(at));
        } else {
          adopt_panels(e.kind == lowrank_l ? f.l32 : f.r32, reinterpret_cast<const float*>(at));
        }
      }
    } else {
      MASQUANT_CHECK(seen[e.kind] == nullptr, errc::format_error, what, ": a second ",
                     section_name(e.kind), " section");
      seen[e.kind] = &e;
      switch (e.kind) {
        case names:
          want = e.bytes;
          break;  // checked while reading
        case wscale:
        case bias:
          want = f32(p.d_out);
          break;
        case smooth:
          want = f32(static_cast<index_t>(mods) * p.d_in);
          break;
        case weight:
          want = packed_weights::packed_bytes_for(p.d_out, p.d_in, packed_bits);
          break;
        case weight_scales:
          want = f32(round_up(p.d_out, index_t{64}));
          break;
        default:  // a16_weight
          want = static_cast<std::uint64_t>((p.d_out + gemm::panel_cols - 1) / gemm::panel_cols *
                                            round_up(p.d_in, index_t{2}) * gemm::panel_cols) *
                 2;
      }
    }
    MASQUANT_CHECK(e.bytes == want, errc::format_error, what, ": ", e.bytes, " bytes, expected ",
                   want, " for d_in = ", p.d_in, ", d_out = ", p.d_out);
  }
  const auto need = [&](std::uint32_t kind) -> const entry& {
    MASQUANT_CHECK(seen[kind] != nullptr, errc::format_error, where, "no ", section_name(kind),
                   " section");
    return *seen[kind];
  };
  for (std::uint32_t m = 1; m < mods; ++m) {
    const auto& f = layer.lowrank_[m];
    MASQUANT_CHECK(f.rank == 0 || (bf16 ? f.l16.count > 0 && f.r16.count > 0
                                        : f.l32.count > 0 && f.r32.count > 0),
                   errc::format_error, where, "modality ", m, " has only one of its factors");
  }
  MASQUANT_CHECK(((flags & flag_bias) != 0) == (seen[bias] != nullptr), errc::format_error, where,
                 "the bias flag (byte 60) and the sections disagree");
  MASQUANT_CHECK(
      a16 ? seen[weight] == nullptr && seen[weight_scales] == nullptr : seen[a16_weight] == nullptr,
      errc::format_error, where, "weight sections of the other activation path");

  // Small fields, copied (and checked as quantized_linear_params::validate does).
  {
    const entry& e = need(names);
    const unsigned char* at = base + e.offset;
    const unsigned char* stop = at + e.bytes;
    for (std::uint32_t m = 0; m < mods && e.bytes > 0; ++m) {
      MASQUANT_CHECK(stop - at >= 4, errc::format_error, where, "names section ends in name ", m);
      const auto len = get<std::uint32_t>(at);
      MASQUANT_CHECK(static_cast<std::uint64_t>(stop - at - 4) >= len, errc::format_error, where,
                     "name ", m, " of ", len, " bytes runs past the names section");
      p.modality_names.emplace_back(reinterpret_cast<const char*>(at + 4), len);
      at += 4 + len;
    }
    MASQUANT_CHECK(at == stop, errc::format_error, where, "names section has ", stop - at,
                   " bytes after the last name");
  }
  const auto floats = [&](const entry& e, index_t first, index_t n) {
    std::vector<float> v(static_cast<std::size_t>(n));
    if (n > 0) std::memcpy(v.data(), base + e.offset + first * 4, static_cast<std::size_t>(n) * 4);
    return v;
  };
  p.wscale = floats(need(wscale), 0, p.d_out);
  for (index_t c = 0; c < p.d_out; ++c)
    MASQUANT_CHECK(std::isfinite(p.wscale[static_cast<std::size_t>(c)]), errc::non_finite, where,
                   "wscale[", c, "] is ", p.wscale[static_cast<std::size_t>(c)]);
  if (seen[bias] != nullptr) {
    p.bias = floats(*seen[bias], 0, p.d_out);
    for (index_t c = 0; c < p.d_out; ++c)
      MASQUANT_CHECK(std::isfinite(p.bias[static_cast<std::size_t>(c)]), errc::non_finite, where,
                     "bias[", c, "] is ", p.bias[static_cast<std::size_t>(c)]);
  }
  for (std::uint32_t m = 0; m < mods; ++m) {
    p.smooth.push_back(floats(need(smooth), m * p.d_in, p.d_in));
    for (index_t i = 0; i < p.d_in; ++i) {
      const float s = p.smooth.back()[static_cast<std::size_t>(i)];
      MASQUANT_CHECK(std::isfinite(s) && s > 0, errc::invalid_argument, where, "smooth[", m, "][",
                     i, "] = ", s, " (must be positive and finite)");
    }
  }

  // The large sections, read in place.
  if (!a16) {
    const entry& w = need(weight);
    const entry& sc = need(weight_scales);
    const std::vector<float> padded = floats(sc, 0, round_up(p.d_out, index_t{64}));
    for (index_t c = 0; c < static_cast<index_t>(padded.size()); ++c) {
      const float want = c < p.d_out ? p.wscale[static_cast<std::size_t>(c)] : 0.0f;
      MASQUANT_CHECK(padded[static_cast<std::size_t>(c)] == want, errc::format_error, where,
                     "weight_scales[", c, "] = ", padded[static_cast<std::size_t>(c)],
                     " but it must be ", want, c < p.d_out ? " (wscale)" : " (padding)");
    }
    layer.packed_ = packed_weights::adopt(p.d_out, p.d_in, packed_bits, base + w.offset,
                                          reinterpret_cast<const float*>(base + sc.offset), owner);
  } else {
    const entry& w = need(a16_weight);
    auto& dst = layer.a16_weight_;
    dst.k = p.d_in;
    dst.n = p.d_out;
    dst.count = (p.d_out + gemm::panel_cols - 1) / gemm::panel_cols;
    dst.stride = round_up(p.d_in, index_t{2}) * gemm::panel_cols;
    dst.data =
        shared_array<std::uint16_t>::adopt(reinterpret_cast<const std::uint16_t*>(base + w.offset),
                                           static_cast<std::size_t>(dst.count * dst.stride), owner);
    layer.a16_scale_.assign(static_cast<std::size_t>(round_up(p.d_out, gemm::panel_cols)), 0.0f);
    std::copy(p.wscale.begin(), p.wscale.end(), layer.a16_scale_.begin());
    if (!p.bias.empty()) {
      layer.a16_bias_.assign(layer.a16_scale_.size(), 0.0f);
      std::copy(p.bias.begin(), p.bias.end(), layer.a16_bias_.begin());
    }
  }
  return layer;
}

}  // namespace detail

/// Bytes of the packed image of `layer` (a multiple of packed_image_alignment).
inline std::size_t packed_image_bytes(const quantized_linear& layer) {
  return detail::packed_image_codec::image_bytes(layer);
}

/// Writes the packed image of `layer` (layout v1, docs/packed-image.md) into `out`, which holds
/// exactly packed_image_bytes(layer) bytes; throws errc::shape_mismatch otherwise. The image
/// depends only on the layer (the same parameters and storage give the same bytes).
inline void write_packed_image(const quantized_linear& layer, void* out, std::size_t size) {
  detail::packed_image_codec::write(layer, static_cast<unsigned char*>(out), size);
}

/// The layer whose packed image (write_packed_image) is the `size` bytes at `image`, reading the
/// packed weight and factors in place: `image` must be packed_image_alignment-aligned, and
/// `owner` (null when the caller guarantees it) keeps the bytes alive and unchanged for the
/// layer and its copies. Checks the header and its checksum, the bounds, alignment and size of
/// every section, the bit widths and extents, and that the scales, bias and smoothing factors
/// are valid (O(d_in + d_out) per modality); the levels and factors are trusted as written.
/// The result runs exactly as the layer that was written. Throws errc::invalid_argument for a
/// misaligned image, errc::not_supported for another layout version, errc::format_error naming
/// `source`, the section and the byte offset of what is wrong.
///
/// Example (an engine's load, from a memory map):
/// \code
///   auto map = std::make_shared<my_mapping>("q_proj.mqlin");   // page-aligned bytes
///   masquant::quantized_linear q_proj =
///       masquant::adopt_packed_image(map->data(), map->size(), map, "q_proj.mqlin");
/// \endcode
inline quantized_linear adopt_packed_image(const void* image, std::size_t size,
                                           std::shared_ptr<const void> owner = nullptr,
                                           const std::string& source = "<memory>") {
  return detail::packed_image_codec::adopt(image, size, std::move(owner), source);
}

}  // namespace masquant
