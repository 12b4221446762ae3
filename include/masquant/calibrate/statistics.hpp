// statistics.hpp: the first stage of calibration — per-modality token counts, absmax and Gram
// matrices, collected from tokens or taken from accumulators built elsewhere.
#pragma once

#include <cstdint>
#include <masquant/calibrate/problem.hpp>
#include <masquant/calibrate/report.hpp>
#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <masquant/stats/modality_stats.hpp>
#include <memory>
#include <utility>
#include <vector>

namespace masquant {

/// What every later stage knows about a linear's input: per modality the token count, the
/// per-channel absmax and, where the compensation needs it, the Gram matrix XᵀX. It shares its
/// accumulators (a copy costs nothing), so the linears that read one input (q/k/v, gate/up) can
/// calibrate from one record.
class calibration_statistics {
 public:
  /// No statistics (a placeholder to assign to).
  calibration_statistics() = default;

  /// Shares `stats`: accumulators built elsewhere (by a capture, loaded from a file, merged
  /// from shards). Throws errc::invalid_argument for a null pointer.
  explicit calibration_statistics(std::shared_ptr<const modality_stats> stats)
      : stats_(std::move(stats)) {
    MASQUANT_CHECK(stats_ != nullptr, errc::invalid_argument,
                   "calibration_statistics: no accumulators");
    absmax_.resize(static_cast<std::size_t>(stats_->modalities()));
    for (index_t m = 0; m < stats_->modalities(); ++m) {
      // The absmax is the max of float values, so it converts back to float exactly.
      const Eigen::VectorXd a = (*stats_)[static_cast<modality_id>(m)].absmax();
      absmax_[static_cast<std::size_t>(m)].assign(a.data(), a.data() + a.size());
    }
  }

  /// Refers to `stats` without owning it: `stats` must outlive this object and its copies.
  static calibration_statistics view(const modality_stats& stats) {
    return calibration_statistics(std::shared_ptr<const modality_stats>(
        std::shared_ptr<const modality_stats>(), &stats));  // aliasing: owns nothing
  }

  index_t channels() const noexcept { return stats_ ? stats_->channels() : 0; }
  index_t modalities() const noexcept { return stats_ ? stats_->modalities() : 0; }
  /// Tokens the statistics of modality m were accumulated over.
  std::int64_t tokens(index_t m) const { return accumulator(m).count(); }
  /// Tokens over all modalities.
  std::int64_t total_tokens() const noexcept { return stats_ ? stats_->count() : 0; }
  /// Per-channel absmax of every modality, [modalities][channels] (zeros without tokens).
  const std::vector<std::vector<float>>& absmax() const noexcept { return absmax_; }
  /// Whether modality m's accumulator keeps its Gram matrix.
  bool has_gram(index_t m) const { return accumulator(m).has_gram(); }
  /// The accumulator of modality m (its Gram matrix, moments, count).
  const channel_stats& accumulator(index_t m) const {
    MASQUANT_CHECK(stats_ != nullptr, errc::invalid_argument, "calibration_statistics: empty");
    return (*stats_)[static_cast<modality_id>(m)];
  }
  /// Every accumulator.
  const modality_stats& accumulators() const {
    MASQUANT_CHECK(stats_ != nullptr, errc::invalid_argument, "calibration_statistics: empty");
    return *stats_;
  }

 private:
  std::shared_ptr<const modality_stats> stats_;
  std::vector<std::vector<float>> absmax_;
};

namespace detail {

/// Whether calibration computes the compensation of modality m (a non-reference modality with
/// tokens, when the policy gives the linear a rank).
inline bool compensates(const calibration_problem& problem, const calibration_statistics& stats,
                        index_t m) {
  return m > 0 && problem.max_rank() > 0 && stats.tokens(m) > 0;
}

}  // namespace detail

/// Checks statistics against the problem they are used for: the same modality count, as many
/// channels as the weight's d_in, at least one token, and a Gram matrix for every modality
/// whose compensation will be computed. Throws errc::shape_mismatch, errc::invalid_argument
/// (no tokens; a missing Gram matrix, naming the modality).
inline void check_statistics(const calibration_problem& problem,
                             const calibration_statistics& stats) {
  constexpr const char* op = "calibrate";
  MASQUANT_CHECK(stats.modalities() == problem.modalities(), errc::shape_mismatch, op,
                 ": statistics of ", stats.modalities(), " modalities for ", problem.modalities(),
                 " modality names");
  MASQUANT_CHECK(stats.channels() == problem.d_in(), errc::shape_mismatch, op, ": statistics of ",
                 stats.channels(), " channels, but the weight has d_in = ", problem.d_in());
  MASQUANT_CHECK(stats.total_tokens() > 0, errc::invalid_argument, op,
                 ": no calibration tokens in any modality");
  for (index_t m = 1; m < problem.modalities(); ++m)
    MASQUANT_CHECK(!detail::compensates(problem, stats, m) || stats.has_gram(m),
                   errc::invalid_argument, op, ": the statistics of modality '", problem.name(m),
                   "' keep no Gram matrix, which its compensation needs (rank ", problem.max_rank(),
                   "); accumulate it (gram_mode::non_reference) or set rank 0");
}

/// Stage 1 from tokens: the statistics of the problem's token sample, in double — the absmax of
/// every modality and, when the policy gives the linear a rank, the Gram of every non-reference
/// modality. Throws errc::invalid_argument when the sample holds no token.
///
/// Example: `masquant::calibration_statistics s = masquant::collect_statistics(problem);`
template <class Deferred = void>
calibration_statistics collect_statistics(const calibration_problem& problem) {
  MASQUANT_CHECK(problem.sample_tokens() > 0, errc::invalid_argument,
                 "calibrate: no calibration tokens in any modality");
  problem.notify(calibration_phase::statistics);
  auto stats = std::make_shared<modality_stats>(
      problem.d_in(), problem.modalities(),
      problem.max_rank() > 0 ? gram_mode::non_reference : gram_mode::none);
  for (index_t m = 0; m < problem.modalities(); ++m) {
    const auto& x = problem.sample()[static_cast<std::size_t>(m)];
    if (x.rows() > 0) stats->add(x, static_cast<modality_id>(m), problem.config().parallel);
  }
  return calibration_statistics(std::move(stats));
}

#ifdef MASQUANT_SEPARATE_COMPILATION
extern template calibration_statistics collect_statistics<void>(const calibration_problem&);
#endif

}  // namespace masquant
