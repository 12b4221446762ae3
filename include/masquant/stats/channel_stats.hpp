// channel_stats.hpp: streaming per-channel statistics of activations, and their optional Gram
// matrix.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <masquant/error.hpp>
#include <masquant/isa.hpp>
#include <masquant/parallel.hpp>
#include <masquant/stats/detail/families.hpp>
#include <masquant/stats/detail/workspace.hpp>
#include <masquant/tensor/view.hpp>
#include <vector>

namespace masquant {

class modality_stats;
namespace detail {
struct stats_codec;
struct statistics_file_codec;

/// The moments an accumulator of `count` tokens can hold in one channel: empty (+inf, -inf, 0, 0)
/// or finite with min <= max and m2 >= 0. Returns the first invalid field (0 min, 1 max, 2 mean,
/// 3 m2), or -1. Files are checked with it before their state is adopted.
inline int invalid_moment(std::int64_t count, double min, double max, double mean,
                          double m2) noexcept {
  const double inf = std::numeric_limits<double>::infinity();
  if (count == 0) {
    if (min != inf) return 0;
    if (max != -inf) return 1;
    if (mean != 0.0) return 2;
    return m2 == 0.0 ? -1 : 3;
  }
  if (!std::isfinite(min) || !(min <= max)) return 0;
  if (!std::isfinite(max)) return 1;
  if (!std::isfinite(mean)) return 2;
  return std::isfinite(m2) && m2 >= 0.0 ? -1 : 3;
}

/// Names of the moment fields, as invalid_moment() numbers them.
inline constexpr const char* moment_field_names[4] = {"min", "max", "mean", "m2"};
}  // namespace detail

/// Streaming statistics of the channels (columns) of activations `[tokens, channels]`.
///
/// Keeps, per channel and over every token added so far: min, max (hence absmax), mean and the
/// sum of squared deviations from the mean (Chan et al.'s pairwise update over groups of 8
/// tokens, in double), plus the token count; optionally the uncentered, unnormalised Gram matrix
/// G = XᵀX `[channels, channels]`, accumulated in double (every float product is exact in
/// double; sums are double). Memory is O(channels), or O(channels²) with the Gram matrix
/// (4096 channels: 128 MiB), never O(tokens).
///
/// add() is all or nothing: a block with a NaN or an infinity throws errc::non_finite naming its
/// first such token and channel and leaves the accumulator as it was. Accumulators of shards
/// merge() into the statistics of one pass over all their tokens: min, max, absmax and count
/// exactly, mean, variance and Gram to rounding (see docs/statistics.md).
///
/// Statistics of an accumulator with no tokens are zero (min, max, absmax, mean, variance and
/// Gram), never NaN. A −0 activation counts as +0 in min and max.
///
/// Example:
/// \code
///   masquant::channel_stats stats(4096, /*with_gram=*/true);
///   for (const auto& block : calibration_blocks)        // each [tokens, 4096] floats
///     stats.add(block);
///   Eigen::VectorXd a = stats.absmax();                 // [4096]
///   Eigen::MatrixXd c = stats.gram();                   // [4096, 4096], symmetric
/// \endcode
class channel_stats {
 public:
  /// An accumulator of zero channels (add a `[tokens, 0]` block or merge into it; mostly a
  /// placeholder to assign to).
  channel_stats() = default;

  /// An empty accumulator of `channels` channels; `with_gram` also keeps XᵀX (channels² doubles,
  /// allocated and zeroed here). Throws errc::invalid_argument for a negative channel count.
  explicit channel_stats(index_t channels, bool with_gram = false)
      : channels_(channels), gram_enabled_(with_gram) {
    MASQUANT_CHECK(channels >= 0, errc::invalid_argument, "channel_stats: negative channel count ",
                   channels);
    const auto n = static_cast<std::size_t>(channels);
    state_.resize(4 * n);
    staged_.resize(4 * n);
    reset_state(state_.data());
    if (with_gram) {
      gram_.resize(channels, channels);  // allocated, not yet touched
      detail::advise_huge_pages(gram_.data(),
                                static_cast<std::size_t>(gram_.size()) * sizeof(double));
      gram_.setZero();
    }
  }

  /// Adds a block of tokens `x`: `[tokens, channels()]`, any row stride, tokens may be 0.
  /// `parallel` (optional) spreads the work over the host's threads; results do not depend on
  /// it. Throws errc::shape_mismatch when x has another column count, errc::non_finite for a
  /// NaN or infinity (naming token and channel); the accumulator is then unchanged.
  MASQUANT_BUILD_TAG void add(matrix_view<const float> x, const parallel_for_fn& parallel = {}) {
    MASQUANT_CHECK(x.cols() == channels_, errc::shape_mismatch, "channel_stats::add: block is ",
                   x.rows(), "x", x.cols(), " but the accumulator has ", channels_, " channels");
    rows_.clear();
    for (index_t r = 0; r < x.rows(); ++r) rows_.push_back(x.row_data(r));
    if (!stage(rows_.data(), x.rows(), parallel)) {
      discard();
      raise_non_finite("channel_stats::add", x);
    }
    commit(parallel);
  }

  /// Adds the statistics of `other` (e.g. another shard of the calibration set), as if its
  /// tokens had been added here. Throws errc::shape_mismatch for another channel count and
  /// errc::invalid_argument when exactly one of the two keeps a Gram matrix.
  void merge(const channel_stats& other) {
    MASQUANT_CHECK(other.channels_ == channels_, errc::shape_mismatch,
                   "channel_stats::merge: ", other.channels_, " channels into ", channels_);
    MASQUANT_CHECK(other.gram_enabled_ == gram_enabled_, errc::invalid_argument,
                   "channel_stats::merge: one accumulator keeps a Gram matrix and the other not");
    if (other.count_ == 0) return;
    const index_t c = channels_;
    const double na = static_cast<double>(count_), nb = static_cast<double>(other.count_);
    const double n = na + nb, w = nb / n, cw = na * nb / n;
    double* a = state_.data();
    const double* b = other.state_.data();
    for (index_t j = 0; j < c; ++j) {
      a[j] = std::min(a[j], b[j]);
      a[c + j] = std::max(a[c + j], b[c + j]);
      const double delta = b[2 * c + j] - a[2 * c + j];
      a[2 * c + j] += delta * w;
      a[3 * c + j] = (a[3 * c + j] + b[3 * c + j]) + (delta * delta) * cw;
    }
    count_ += other.count_;
    if (gram_enabled_) gram_.triangularView<Eigen::Upper>() += other.gram_;
  }

  /// Forgets every token (channels and the Gram option stay).
  void clear() {
    reset_state(state_.data());
    count_ = 0;
    if (gram_enabled_) gram_.setZero();
  }

  /// Number of channels (columns of the blocks added).
  index_t channels() const noexcept { return channels_; }
  /// Number of tokens (rows) added, merged ones included.
  std::int64_t count() const noexcept { return count_; }
  /// Whether the Gram matrix is kept.
  bool has_gram() const noexcept { return gram_enabled_; }

  /// Per-channel max |x| `[channels]` (0 when count() == 0); exact.
  Eigen::VectorXd absmax() const {
    Eigen::VectorXd out(channels_);
    for (index_t j = 0; j < channels_; ++j)
      out[j] = count_ == 0 ? 0.0 : std::max(-state_[idx(0, j)], state_[idx(1, j)]);
    return out;
  }
  /// Per-channel minimum `[channels]` (0 when count() == 0); exact.
  Eigen::VectorXd min() const { return column(0); }
  /// Per-channel maximum `[channels]` (0 when count() == 0); exact.
  Eigen::VectorXd max() const { return column(1); }
  /// Per-channel mean `[channels]` (0 when count() == 0).
  Eigen::VectorXd mean() const { return column(2); }
  /// Per-channel population variance Σ(x − mean)² / count `[channels]` (0 when count() == 0).
  Eigen::VectorXd variance() const {
    Eigen::VectorXd out = column(3);
    if (count_ > 0) out /= static_cast<double>(count_);
    return out;
  }

  /// The Gram matrix XᵀX `[channels, channels]`, full and symmetric (a new matrix of channels²
  /// doubles). Throws errc::invalid_argument when the accumulator keeps no Gram matrix.
  Eigen::MatrixXd gram() const {
    require_gram("gram");
    Eigen::MatrixXd out = gram_;
    // The lower triangle from the upper one, in 64 x 64 blocks: a plain transposed copy reads
    // one cache line per element (2x slower at 4096 channels).
    const index_t n = channels_, b = 64;
    for (index_t j0 = 0; j0 < n; j0 += b)
      for (index_t i0 = j0; i0 < n; i0 += b) {
        const index_t i1 = std::min(n, i0 + b), j1 = std::min(n, j0 + b);
        for (index_t j = j0; j < j1; ++j)
          for (index_t i = std::max(i0, j + 1); i < i1; ++i) out(i, j) = out(j, i);
      }
    return out;
  }

  /// The stored Gram matrix without a copy: its upper triangle (row <= column) is XᵀX, the
  /// strict lower triangle is unspecified. Use it as `gram_upper().selfadjointView<Eigen::Upper>()`
  /// or with `Eigen::LLT<Eigen::MatrixXd, Eigen::Upper>`. Throws as gram().
  const Eigen::MatrixXd& gram_upper() const {
    require_gram("gram_upper");
    return gram_;
  }

 private:
  friend class modality_stats;
  friend struct detail::stats_codec;
  friend struct detail::statistics_file_codec;

  std::size_t idx(int field, index_t j) const noexcept {
    return static_cast<std::size_t>(field * channels_ + j);
  }

  void reset_state(double* s) const noexcept {
    const index_t c = channels_;
    for (index_t j = 0; j < c; ++j) {
      s[j] = std::numeric_limits<double>::infinity();
      s[c + j] = -std::numeric_limits<double>::infinity();
      s[2 * c + j] = 0.0;
      s[3 * c + j] = 0.0;
    }
  }

  Eigen::VectorXd column(int field) const {
    Eigen::VectorXd out(channels_);
    for (index_t j = 0; j < channels_; ++j) out[j] = count_ == 0 ? 0.0 : state_[idx(field, j)];
    return out;
  }

  void require_gram(const char* what) const {
    MASQUANT_CHECK(gram_enabled_, errc::invalid_argument, "channel_stats::", what,
                   ": this accumulator keeps no Gram matrix (construct it with with_gram = true)");
  }

  static detail::moments_ref fields(double* s, index_t c) noexcept {
    return {s, s + c, s + 2 * c, s + 3 * c};
  }
  static detail::moments_cref cfields(const double* s, index_t c) noexcept {
    return {s, s + c, s + 2 * c, s + 3 * c};
  }

  // Staging makes add() all or nothing: moments go to staged_ (reading state_ on the first
  // call, staged_ after), the Gram update waits for commit(), which runs only when every block
  // was finite. Returns false when a value is not finite (staged_ is then garbage).
  MASQUANT_BUILD_TAG bool stage(const float* const* rows, index_t n,
                                const parallel_for_fn& parallel) {
    if (n == 0) return true;
    const index_t c = channels_;
    const std::int64_t before = staging_ ? staged_count_ : count_;
    const detail::moments_cref in = cfields(staging_ ? staged_.data() : state_.data(), c);
    const detail::moments_ref out = fields(staged_.data(), c);
    // Channels are independent, so any split gives the same result. Long row segments (8 KiB)
    // keep the hardware prefetchers streaming; two tasks per 4096 channels feed two threads.
    constexpr index_t chunk = 2048;
    const index_t tasks = (c + chunk - 1) / chunk;
    const isa_family family = detail::MASQUANT_BUILD::best();
    const auto task = [&](index_t k) {
      detail::MASQUANT_BUILD::on_family<hot_path::stats>(family, [&](auto f) {
        run_moments_update(f, rows, n, before, k * chunk, std::min(c, (k + 1) * chunk), in, out);
      });
    };
    if (parallel && tasks > 1) {
      parallel(tasks, task);
    } else {
      for (index_t k = 0; k < tasks; ++k) task(k);
    }
    staging_ = true;
    staged_count_ = before + n;
    if (gram_enabled_) pending_.insert(pending_.end(), rows, rows + n);
    // A NaN or infinity anywhere leaves NaN in M2 of its channel (see moments_update).
    const double* m2 = staged_.data() + 3 * c;
    for (index_t j = 0; j < c; ++j)
      if (std::isnan(m2[j])) return false;
    return true;
  }

  MASQUANT_BUILD_TAG void commit(const parallel_for_fn& parallel) {
    if (!staging_) return;
    if (gram_enabled_ && !pending_.empty()) {
      detail::MASQUANT_BUILD::on_family<hot_path::gram>(
          detail::MASQUANT_BUILD::best(), [&](auto f) {
            run_gram_update(f, pending_.data(), static_cast<index_t>(pending_.size()), channels_,
                            gram_.data(), workspace_, parallel);
          });
    }
    state_.swap(staged_);
    count_ = staged_count_;
    discard();
  }

  void discard() noexcept {
    staging_ = false;
    pending_.clear();
  }

  // Reports the first non-finite value of x in token order (only called when one exists).
  [[noreturn]] static void raise_non_finite(const char* op, matrix_view<const float> x) {
    for (index_t r = 0; r < x.rows(); ++r)
      for (index_t j = 0; j < x.cols(); ++j)
        if (!std::isfinite(x(r, j)))
          raise(errc::non_finite,
                detail::cat(op, ": non-finite value ", x(r, j), " at token ", r, ", channel ", j,
                            " of a ", x.rows(), "x", x.cols(), " block"));
    raise(errc::non_finite,
          detail::cat(op, ": non-finite value in a ", x.rows(), "x", x.cols(), " block"));
  }

  index_t channels_ = 0;
  std::int64_t count_ = 0;
  bool gram_enabled_ = false;
  std::vector<double> state_;   // min | max | mean | m2, channels_ each
  std::vector<double> staged_;  // the same while an add is in flight
  std::int64_t staged_count_ = 0;
  bool staging_ = false;
  Eigen::MatrixXd gram_;               // upper triangle valid
  std::vector<const float*> rows_;     // scratch: row pointers of the block being added
  std::vector<const float*> pending_;  // rows staged for the Gram update
  detail::gram_workspace workspace_;
};

}  // namespace masquant
