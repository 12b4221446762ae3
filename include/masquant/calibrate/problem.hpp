// problem.hpp: what one calibration works on — the linear, its modalities, the tokens the
// token-based stages measure on, and the config — validated once, at construction.
#pragma once

#include <cmath>
#include <limits>
#include <masquant/calibrate/config.hpp>
#include <masquant/calibrate/report.hpp>
#include <masquant/config.hpp>
#include <masquant/detail/finite.hpp>
#include <masquant/error.hpp>
#include <masquant/modality/modality.hpp>
#include <masquant/smooth/objective.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/tensor/view.hpp>
#include <string>
#include <utility>
#include <vector>

namespace masquant {

/// One linear y = x·Wᵀ + b to calibrate for several modalities, checked once: every stage
/// function of calibrate/ (collect_statistics, initial_factors, learn_factors,
/// quantize_shared_weight, compensate, evaluate_report) takes it and relies on what its
/// constructor checked instead of checking again.
///
/// The token sample is what the stages that need tokens use: the α search, learned MAS and the
/// report — and, when calibrating from tokens, the statistics. When calibrating from statistics
/// it may be a subsample, or empty (those stages are then skipped and the report says so).
/// Views, not copies: the weight, bias and tokens must outlive the problem.
///
/// Example (the stages one by one, as calibrate() runs them; `using namespace masquant`):
/// \code
///   calibration_problem problem(w, bias, {"text", "vision"}, {text, vision}, config);
///   calibration_statistics stats = collect_statistics(problem);
///   smoothing_stage init = initial_factors(problem, stats);
///   learning_stage learned = learn_factors(problem, stats, init);
///   quantized_matrix shared = quantize_shared_weight(problem, learned.factors);
///   compensation_stage cmc = compensate(problem, stats, learned.factors, shared);
/// \endcode
class calibration_problem {
 public:
  /// Checks, in this order, and throws masquant::error naming the first problem (operation
  /// "calibrate"): config.validate() (errc::invalid_argument); the weight [d_out, d_in], both
  /// >= 1 (errc::shape_mismatch); the bias, empty or [d_out]; 1 to 256 modality names, unique and
  /// non-empty (errc::invalid_argument); the sample, empty or one view per modality, each
  /// [N_m, d_in] (any N_m; errc::shape_mismatch naming the modality); then every value of the
  /// weight, bias and sample finite (errc::non_finite naming the tensor, row and column).
  calibration_problem(matrix_view<const float> weight, vector_view<const float> bias,
                      std::vector<std::string> names, modality_inputs sample,
                      calibration_config config)
      : weight_(weight),
        bias_(bias),
        names_(std::move(names)),
        sample_(std::move(sample)),
        config_(std::move(config)) {
    constexpr const char* op = "calibrate";
    config_.validate();
    MASQUANT_CHECK(weight_.rows() >= 1 && weight_.cols() >= 1, errc::shape_mismatch, op,
                   ": weight is ", weight_.rows(), "x", weight_.cols(),
                   " (need [d_out, d_in], both >= 1)");
    MASQUANT_CHECK(bias_.empty() || bias_.size() == d_out(), errc::shape_mismatch, op,
                   ": bias has ", bias_.size(), " elements, the weight ", d_out(),
                   " output channels");
    const auto nm = static_cast<index_t>(names_.size());
    MASQUANT_CHECK(nm >= 1 && nm <= 256, errc::invalid_argument, op, ": ", nm,
                   " modalities (need 1 to 256; id 0 is the reference)");
    (void)modality_names(names_);  // validates: non-empty, unique
    MASQUANT_CHECK(
        config_.modality_weights.empty() || config_.modality_weights.size() == names_.size(),
        errc::invalid_argument, op, ": ", config_.modality_weights.size(), " modality weights for ",
        nm, " modalities");
    MASQUANT_CHECK(sample_.empty() || static_cast<index_t>(sample_.size()) == nm,
                   errc::invalid_argument, op, ": ", names_.size(), " modality names for ",
                   sample_.size(), " modalities of tokens");
    if (sample_.empty())
      sample_.assign(names_.size(), matrix_view<const float>(nullptr, 0, d_in()));
    for (std::size_t m = 0; m < sample_.size(); ++m) {
      const auto& x = sample_[m];
      MASQUANT_CHECK(x.rows() == 0 || x.cols() == d_in(), errc::shape_mismatch, op,
                     ": inputs of modality '", names_[m], "' are ", x.rows(), "x", x.cols(),
                     " but the weight has d_in = ", d_in());
    }
    detail::check_finite(op, "weight", weight_);
    if (!bias_.empty()) detail::check_finite(op, "bias", bias_);
    for (std::size_t m = 0; m < sample_.size(); ++m)
      detail::check_finite(op, detail::cat("inputs of modality '", names_[m], "'"), sample_[m]);
  }

  matrix_view<const float> weight() const noexcept { return weight_; }
  vector_view<const float> bias() const noexcept { return bias_; }
  index_t d_in() const noexcept { return weight_.cols(); }
  index_t d_out() const noexcept { return weight_.rows(); }
  /// Number of modalities (ids 0 .. modalities() - 1; id 0 is the reference).
  index_t modalities() const noexcept { return static_cast<index_t>(names_.size()); }
  const std::vector<std::string>& names() const noexcept { return names_; }
  const std::string& name(index_t m) const { return names_[static_cast<std::size_t>(m)]; }
  /// The token sample, one view per modality (N_m = 0 where there are none).
  const modality_inputs& sample() const noexcept { return sample_; }
  /// Tokens of the sample over all modalities.
  index_t sample_tokens() const noexcept {
    index_t n = 0;
    for (const auto& x : sample_) n += x.rows();
    return n;
  }
  const calibration_config& config() const noexcept { return config_; }
  /// The rank the policy gives this linear (0: no compensation).
  index_t max_rank() const { return config_.rank.resolve(d_in(), d_out()); }
  /// The modality weights of the loss and the split-or-merged score: the config's, or
  /// default_modality_weights(names()).
  std::vector<double> modality_weights() const {
    return config_.modality_weights.empty() ? default_modality_weights(names_)
                                            : config_.modality_weights;
  }
  /// Calls config().progress, when set.
  void notify(calibration_phase phase, index_t step = 0, index_t steps = 1,
              double loss = std::numeric_limits<double>::quiet_NaN()) const {
    if (config_.progress) config_.progress({phase, step, steps, loss});
  }

 private:
  matrix_view<const float> weight_;
  vector_view<const float> bias_;
  std::vector<std::string> names_;
  modality_inputs sample_;
  calibration_config config_;
};

/// The default modality names for n modalities: text, vision, audio, then modality3, ...
inline std::vector<std::string> default_modality_names(index_t n) {
  const modality_names defaults;
  std::vector<std::string> names;
  for (index_t m = 0; m < n; ++m)
    names.push_back(m < defaults.size() ? defaults.name(static_cast<modality_id>(m))
                                        : "modality" + std::to_string(m));
  return names;
}

}  // namespace masquant
