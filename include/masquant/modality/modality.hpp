// modality.hpp: per-token modality ids, and conversions from masks and contiguous spans.
#pragma once

#include <masquant/error.hpp>
#include <masquant/tensor/view.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace masquant {

/// Modality of one token. 0 is the reference modality (usually text): the shared quantized
/// weight is smoothed for it, and it never carries a low-rank correction.
using modality_id = std::uint8_t;

/// The reference modality's id.
inline constexpr modality_id reference_modality = 0;

/// Tokens [begin, end) belong to modality `id`.
struct modality_span {
  index_t begin = 0;
  index_t end = 0;
  modality_id id = reference_modality;
};

/// Names of the modalities of a model, indexed by id ("text" = 0 by default).
class modality_names {
 public:
  /// The default set: text (reference), vision, audio.
  modality_names() : names_{"text", "vision", "audio"} {}
  /// An explicit list; names[0] is the reference. Throws errc::invalid_argument for an empty
  /// list, an empty or duplicate name, or more than 256 names.
  explicit modality_names(std::vector<std::string> names) : names_(std::move(names)) {
    MASQUANT_CHECK(!names_.empty() && names_.size() <= 256, errc::invalid_argument,
                   "modality_names: need 1 to 256 names, got ", names_.size());
    for (std::size_t i = 0; i < names_.size(); ++i) {
      MASQUANT_CHECK(!names_[i].empty(), errc::invalid_argument, "modality_names: name ", i,
                     " is empty");
      for (std::size_t j = 0; j < i; ++j)
        MASQUANT_CHECK(names_[i] != names_[j], errc::invalid_argument,
                       "modality_names: duplicate name '", names_[i], "'");
    }
  }

  index_t size() const noexcept { return static_cast<index_t>(names_.size()); }
  const std::vector<std::string>& names() const noexcept { return names_; }

  /// Name of an id; throws errc::out_of_range for an unknown id.
  const std::string& name(modality_id id) const {
    MASQUANT_CHECK(id < names_.size(), errc::out_of_range, "modality_names: no modality with id ",
                   int(id), " (", names_.size(), " known)");
    return names_[id];
  }

  /// Id of a name, or nothing.
  std::optional<modality_id> find(const std::string& name) const {
    for (std::size_t i = 0; i < names_.size(); ++i)
      if (names_[i] == name) return static_cast<modality_id>(i);
    return std::nullopt;
  }

  /// Id of a name; throws errc::out_of_range naming the unknown modality.
  modality_id id(const std::string& name) const {
    auto found = find(name);
    MASQUANT_CHECK(found.has_value(), errc::out_of_range, "unknown modality '", name, "'");
    return *found;
  }

 private:
  std::vector<std::string> names_;
};

/// Writes `fill` to every id, then each span's id over its tokens. Throws errc::out_of_range for
/// a span outside [0, ids.size()) or with end < begin, errc::invalid_argument for overlapping
/// spans; ids are unchanged on error.
inline void ids_from_spans(const std::vector<modality_span>& spans, vector_view<modality_id> ids,
                           modality_id fill = reference_modality) {
  const index_t n = ids.size();
  std::vector<bool> taken(static_cast<std::size_t>(n), false);
  for (const auto& s : spans) {
    MASQUANT_CHECK(s.begin >= 0 && s.end >= s.begin && s.end <= n, errc::out_of_range,
                   "ids_from_spans: span [", s.begin, ", ", s.end, ") outside ", n, " tokens");
    for (index_t i = s.begin; i < s.end; ++i) {
      MASQUANT_CHECK(!taken[static_cast<std::size_t>(i)], errc::invalid_argument,
                     "ids_from_spans: token ", i, " is covered by two spans");
      taken[static_cast<std::size_t>(i)] = true;
    }
  }
  for (index_t i = 0; i < n; ++i) ids[i] = fill;
  for (const auto& s : spans)
    for (index_t i = s.begin; i < s.end; ++i) ids[i] = s.id;
}

/// Returns the ids of n_tokens tokens from spans (tokens outside every span get `fill`).
inline std::vector<modality_id> ids_from_spans(const std::vector<modality_span>& spans,
                                               index_t n_tokens,
                                               modality_id fill = reference_modality) {
  MASQUANT_CHECK(n_tokens >= 0, errc::invalid_argument, "ids_from_spans: negative token count ",
                 n_tokens);
  std::vector<modality_id> ids(static_cast<std::size_t>(n_tokens));
  ids_from_spans(spans, vector_view<modality_id>(ids), fill);
  return ids;
}

/// Sets ids[i] = id wherever mask[i] is non-zero (other ids are left as they are). Throws
/// errc::shape_mismatch when the sizes differ, errc::invalid_argument when a masked token already
/// carries another non-reference id (two masks claim it); ids are unchanged on error.
inline void apply_mask(vector_view<const std::uint8_t> mask, modality_id id,
                       vector_view<modality_id> ids) {
  MASQUANT_CHECK(mask.size() == ids.size(), errc::shape_mismatch, "apply_mask: mask has ",
                 mask.size(), " tokens, ids ", ids.size());
  for (index_t i = 0; i < mask.size(); ++i)
    MASQUANT_CHECK(!mask[i] || ids[i] == reference_modality || ids[i] == id,
                   errc::invalid_argument, "apply_mask: token ", i,
                   " is in the masks of modalities ", int(ids[i]), " and ", int(id));
  for (index_t i = 0; i < mask.size(); ++i)
    if (mask[i]) ids[i] = id;
}

/// Maximal runs of equal ids, in token order.
inline std::vector<modality_span> spans_from_ids(vector_view<const modality_id> ids) {
  std::vector<modality_span> spans;
  index_t begin = 0;
  for (index_t i = 1; i <= ids.size(); ++i) {
    if (i == ids.size() || ids[i] != ids[begin]) {
      spans.push_back({begin, i, ids[begin]});
      begin = i;
    }
  }
  return spans;
}

/// Token count per modality id, for ids 0..n_modalities-1. Throws errc::out_of_range when an id
/// is >= n_modalities (naming the token).
inline std::vector<index_t> count_tokens(vector_view<const modality_id> ids, index_t n_modalities) {
  MASQUANT_CHECK(n_modalities > 0 && n_modalities <= 256, errc::invalid_argument,
                 "count_tokens: modality count ", n_modalities, " outside [1, 256]");
  std::vector<index_t> counts(static_cast<std::size_t>(n_modalities), 0);
  for (index_t i = 0; i < ids.size(); ++i) {
    MASQUANT_CHECK(ids[i] < n_modalities, errc::out_of_range, "token ", i, " has modality id ",
                   int(ids[i]), " but only ", n_modalities, " modalities are known");
    ++counts[ids[i]];
  }
  return counts;
}

/// Indices of the tokens of one modality, in order.
inline std::vector<index_t> tokens_of(vector_view<const modality_id> ids, modality_id id) {
  std::vector<index_t> rows;
  for (index_t i = 0; i < ids.size(); ++i)
    if (ids[i] == id) rows.push_back(i);
  return rows;
}

}  // namespace masquant
