// modality_stats.hpp: one channel_stats per modality, fed blocks of tokens routed by modality id.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cstdint>
#include <masquant/error.hpp>
#include <masquant/modality/modality.hpp>
#include <masquant/parallel.hpp>
#include <masquant/stats/channel_stats.hpp>
#include <masquant/tensor/view.hpp>
#include <vector>

namespace masquant {

/// Which modalities of a modality_stats keep a Gram matrix (channels² doubles each).
enum class gram_mode {
  none,           ///< no Gram matrix
  non_reference,  ///< every modality except the reference (id 0): what whitening for CMC needs
  all,            ///< every modality
};

/// Per-modality channel statistics: accumulator m sees exactly the tokens whose id is m.
///
/// The statistics over all tokens ("all", SmoothQuant's a_all) are derived, not stored:
/// absmax_all() is the max over modalities, merged() combines every modality.
///
/// Example:
/// \code
///   masquant::modality_stats stats(4096, 3, masquant::gram_mode::non_reference);
///   stats.add(hidden, ids);                  // hidden: [tokens, 4096], ids: [tokens]
///   stats.add(image_tokens, 1);              // a block that is all modality 1
///   Eigen::VectorXd a_text = stats[0].absmax(), a_all = stats.absmax_all();
///   Eigen::MatrixXd c_vision = stats[1].gram();
/// \endcode
class modality_stats {
 public:
  /// No modality (a placeholder to assign to).
  modality_stats() = default;

  /// `modalities` empty accumulators of `channels` channels. Throws errc::invalid_argument for
  /// a negative channel count or a modality count outside [1, 256].
  modality_stats(index_t channels, index_t modalities, gram_mode gram = gram_mode::none) {
    MASQUANT_CHECK(modalities >= 1 && modalities <= 256, errc::invalid_argument,
                   "modality_stats: modality count ", modalities, " outside [1, 256]");
    MASQUANT_CHECK(channels >= 0, errc::invalid_argument, "modality_stats: negative channel count ",
                   channels);
    per_.reserve(static_cast<std::size_t>(modalities));
    for (index_t m = 0; m < modalities; ++m) {
      const bool with_gram =
          gram == gram_mode::all || (gram == gram_mode::non_reference && m != reference_modality);
      per_.emplace_back(channels, with_gram);
    }
  }

  /// Takes existing accumulators, one per modality id in order (e.g. loaded ones). Throws
  /// errc::invalid_argument for none or more than 256, errc::shape_mismatch when their channel
  /// counts differ.
  explicit modality_stats(std::vector<channel_stats> per_modality) : per_(std::move(per_modality)) {
    MASQUANT_CHECK(!per_.empty() && per_.size() <= 256, errc::invalid_argument,
                   "modality_stats: modality count ", per_.size(), " outside [1, 256]");
    for (const auto& s : per_)
      MASQUANT_CHECK(s.channels() == per_[0].channels(), errc::shape_mismatch,
                     "modality_stats: accumulators of ", per_[0].channels(), " and ", s.channels(),
                     " channels");
  }

  /// Number of channels of every accumulator (0 without modalities).
  index_t channels() const noexcept { return per_.empty() ? 0 : per_[0].channels(); }
  /// Number of modalities (ids 0 .. modalities() - 1).
  index_t modalities() const noexcept { return static_cast<index_t>(per_.size()); }

  /// The accumulator of modality m; throws errc::out_of_range for an unknown id.
  const channel_stats& operator[](modality_id m) const {
    MASQUANT_CHECK(m < per_.size(), errc::out_of_range, "modality_stats: no modality ", int(m),
                   " (", per_.size(), " known)");
    return per_[m];
  }

  /// Adds a block `x` `[tokens, channels()]` whose token i has modality ids[i] (any order, any
  /// mix). All or nothing: throws errc::shape_mismatch (x columns, ids size),
  /// errc::out_of_range (an id >= modalities(), naming the token) or errc::non_finite (naming
  /// token and channel) with every accumulator unchanged. `parallel` as channel_stats::add.
  MASQUANT_BUILD_TAG void add(matrix_view<const float> x, vector_view<const modality_id> ids,
                              const parallel_for_fn& parallel = {}) {
    MASQUANT_CHECK(x.cols() == channels(), errc::shape_mismatch, "modality_stats::add: block is ",
                   x.rows(), "x", x.cols(), " but the accumulators have ", channels(), " channels");
    MASQUANT_CHECK(ids.size() == x.rows(), errc::shape_mismatch,
                   "modality_stats::add: ", ids.size(), " modality ids for a block of ", x.rows(),
                   " tokens");
    const std::size_t nm = per_.size();
    rows_.resize(nm);
    for (auto& r : rows_) r.clear();
    for (index_t i = 0; i < x.rows(); ++i) {
      MASQUANT_CHECK(ids[i] < nm, errc::out_of_range, "modality_stats::add: token ", i,
                     " has modality id ", int(ids[i]), " but only ", nm, " modalities are known");
      rows_[ids[i]].push_back(x.row_data(i));
    }
    bool finite = true;
    for (std::size_t m = 0; m < nm && finite; ++m)
      finite = per_[m].stage(rows_[m].data(), static_cast<index_t>(rows_[m].size()), parallel);
    if (!finite) {
      for (auto& s : per_) s.discard();
      channel_stats::raise_non_finite("modality_stats::add", x);
    }
    for (auto& s : per_) s.commit(parallel);
  }

  /// Adds a block `x` `[tokens, channels()]` that is all modality m. Throws
  /// errc::out_of_range for an unknown id, otherwise as channel_stats::add.
  MASQUANT_BUILD_TAG void add(matrix_view<const float> x, modality_id m,
                              const parallel_for_fn& parallel = {}) {
    MASQUANT_CHECK(m < per_.size(), errc::out_of_range, "modality_stats::add: no modality ", int(m),
                   " (", per_.size(), " known)");
    per_[m].add(x, parallel);
  }

  /// Merges the accumulators of `other` modality by modality (another calibration shard).
  /// Throws errc::shape_mismatch for another modality or channel count, errc::invalid_argument
  /// when a modality keeps a Gram matrix in one and not in the other; unchanged on error.
  void merge(const modality_stats& other) {
    MASQUANT_CHECK(other.per_.size() == per_.size() && other.channels() == channels(),
                   errc::shape_mismatch, "modality_stats::merge: ", other.per_.size(), "x",
                   other.channels(), " (modalities x channels) into ", per_.size(), "x",
                   channels());
    for (std::size_t m = 0; m < per_.size(); ++m)
      MASQUANT_CHECK(per_[m].has_gram() == other.per_[m].has_gram(), errc::invalid_argument,
                     "modality_stats::merge: modality ", m,
                     " keeps a Gram matrix in one accumulator and not in the other");
    for (std::size_t m = 0; m < per_.size(); ++m) per_[m].merge(other.per_[m]);
  }

  /// Forgets every token of every modality.
  void clear() {
    for (auto& s : per_) s.clear();
  }

  /// Tokens over all modalities.
  std::int64_t count() const noexcept {
    std::int64_t n = 0;
    for (const auto& s : per_) n += s.count();
    return n;
  }

  /// Per-channel max |x| over every token of every modality `[channels]` (exact; 0 when no
  /// token was added).
  Eigen::VectorXd absmax_all() const {
    Eigen::VectorXd out = Eigen::VectorXd::Zero(channels());
    for (const auto& s : per_) {
      const Eigen::VectorXd a = s.absmax();
      for (index_t j = 0; j < out.size(); ++j) out[j] = std::max(out[j], a[j]);
    }
    return out;
  }

  /// The statistics of every token of every modality, as one accumulator. It keeps a Gram
  /// matrix (the sum of the modalities') only when every modality keeps one.
  channel_stats merged() const {
    bool all_gram = true;
    for (const auto& s : per_) all_gram = all_gram && s.has_gram();
    channel_stats out(channels(), all_gram && !per_.empty());
    for (const auto& s : per_) {
      if (all_gram) {
        out.merge(s);
      } else {
        channel_stats moments(channels());
        moments.state_ = s.state_;
        moments.count_ = s.count_;
        out.merge(moments);
      }
    }
    return out;
  }

 private:
  std::vector<channel_stats> per_;
  std::vector<std::vector<const float*>> rows_;  // scratch: row pointers per modality
};

}  // namespace masquant
