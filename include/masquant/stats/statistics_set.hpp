// statistics_set.hpp: the per-modality statistics of many inputs of a model, by input name — what
// one capture process collects, what a statistics file holds, and what shards merge into.
#pragma once

#include <map>
#include <masquant/error.hpp>
#include <masquant/modality/modality.hpp>
#include <masquant/stats/modality_stats.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace masquant {

/// Per-modality statistics (modality_stats) of the inputs of a model's linears, keyed by the name
/// of the input they describe. Linears that read the same activations (q/k/v of an attention
/// block; gate/up of an MLP) share one input and so one record: one capture, one Gram matrix.
/// Every record has the set's modalities, in id order (id 0 is the reference).
///
/// Capture processes fill a set each (an engine's forward pass with modality ids per token, or
/// PyTorch hooks); sets of shards merge() into the statistics of one pass over all their tokens
/// (counts, min, max and absmax exactly; means, variances and Gram matrices to rounding), which
/// is how calibration scales out. Save and load sets with the io component
/// (<masquant/io/statistics_file.hpp>).
///
/// Example:
/// \code
///   masquant::statistics_set set({"text", "vision", "audio"});
///   auto& attn = set.record("model.layers.0.self_attn.q_proj", 3584,
///                           masquant::gram_mode::non_reference);
///   attn.add(hidden_states, ids);          // [tokens, 3584] and a modality id per token
///   other_shard_set.merge(set);            // or save_statistics(set, "stats-rank0.safetensors")
/// \endcode
class statistics_set {
 public:
  /// A set with no modalities (a placeholder to assign to or merge into).
  statistics_set() = default;

  /// An empty set over these modalities (names[0] is the reference). Throws
  /// errc::invalid_argument for an invalid list (see modality_names).
  explicit statistics_set(std::vector<std::string> modality_names)
      : names_(masquant::modality_names(std::move(modality_names)).names()) {}

  /// The modality names, in id order (empty for a default-constructed set).
  const std::vector<std::string>& modalities() const noexcept { return names_; }

  /// Every record, by input name.
  const std::map<std::string, modality_stats, std::less<>>& records() const noexcept {
    return records_;
  }
  index_t size() const noexcept { return static_cast<index_t>(records_.size()); }
  bool empty() const noexcept { return records_.empty(); }

  /// The record of `input`, or null.
  const modality_stats* find(std::string_view input) const {
    const auto it = records_.find(input);
    return it == records_.end() ? nullptr : &it->second;
  }

  /// The record of `input`; throws errc::out_of_range naming it when absent.
  const modality_stats& at(std::string_view input) const {
    const modality_stats* s = find(input);
    MASQUANT_CHECK(s != nullptr, errc::out_of_range, "statistics_set: no statistics for input '",
                   input, "'");
    return *s;
  }

  /// The record of `input`, created empty with `channels` channels and `gram` when absent.
  /// Throws errc::shape_mismatch when an existing record has another channel count,
  /// errc::invalid_argument for an empty name or a set without modalities.
  modality_stats& record(const std::string& input, index_t channels,
                         gram_mode gram = gram_mode::none) {
    check_name(input);
    auto it = records_.find(input);
    if (it == records_.end())
      it = records_
               .emplace(input, modality_stats(channels, static_cast<index_t>(names_.size()), gram))
               .first;
    MASQUANT_CHECK(it->second.channels() == channels, errc::shape_mismatch,
                   "statistics_set: input '", input, "' has ", it->second.channels(),
                   " channels, not ", channels);
    return it->second;
  }

  /// Adds (or merges into an existing) record of `input`. Throws errc::shape_mismatch when its
  /// modality count is not the set's, and as modality_stats::merge(); unchanged on error.
  void insert(const std::string& input, modality_stats stats) {
    check_name(input);
    MASQUANT_CHECK(stats.modalities() == static_cast<index_t>(names_.size()), errc::shape_mismatch,
                   "statistics_set: input '", input, "' has ", stats.modalities(),
                   " modalities, the set ", names_.size());
    const auto it = records_.find(input);
    if (it == records_.end()) {
      records_.emplace(input, std::move(stats));
    } else {
      detail::with_context(detail::cat("statistics_set: input '", input, "'"),
                           [&] { it->second.merge(stats); });
    }
  }

  /// Merges another shard's set: records of the same input merge, the others are added. A set
  /// without modalities takes the other's. Throws errc::invalid_argument when the modality names
  /// differ (naming both lists), errc::shape_mismatch or errc::invalid_argument naming the input
  /// whose records cannot merge (channel count, Gram kept in one and not the other); the set is
  /// unchanged on error.
  void merge(const statistics_set& other) {
    if (names_.empty() && records_.empty()) {
      *this = other;
      return;
    }
    MASQUANT_CHECK(other.names_ == names_, errc::invalid_argument,
                   "statistics_set::merge: modalities (", join(other.names_), ") differ from (",
                   join(names_), ")");
    for (const auto& [input, stats] : other.records_) {
      const auto it = records_.find(input);
      if (it == records_.end()) continue;
      const modality_stats& mine = it->second;
      MASQUANT_CHECK(mine.channels() == stats.channels(), errc::shape_mismatch,
                     "statistics_set::merge: input '", input, "' has ", stats.channels(),
                     " channels in one set and ", mine.channels(), " in the other");
      for (index_t m = 0; m < mine.modalities(); ++m) {
        const auto id = static_cast<modality_id>(m);
        MASQUANT_CHECK(mine[id].has_gram() == stats[id].has_gram(), errc::invalid_argument,
                       "statistics_set::merge: input '", input, "', modality '",
                       names_[std::size_t(m)],
                       "' keeps a Gram matrix in one set and not the other");
      }
    }
    for (const auto& [input, stats] : other.records_) {
      const auto it = records_.find(input);
      if (it == records_.end()) {
        records_.emplace(input, stats);
      } else {
        it->second.merge(stats);
      }
    }
  }

  /// The names joined with ',' ("text,vision,audio"), as files and messages spell the list.
  static std::string join(const std::vector<std::string>& names) {
    std::string out;
    for (const auto& n : names) out += (out.empty() ? "" : ",") + n;
    return out;
  }

 private:
  void check_name(const std::string& input) const {
    MASQUANT_CHECK(!input.empty(), errc::invalid_argument, "statistics_set: empty input name");
    MASQUANT_CHECK(!names_.empty(), errc::invalid_argument,
                   "statistics_set: the set has no modalities (construct it with their names)");
  }

  std::vector<std::string> names_;
  std::map<std::string, modality_stats, std::less<>> records_;
};

}  // namespace masquant
