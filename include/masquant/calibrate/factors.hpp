// factors.hpp: the smoothing stages of calibration — the initial per-modality factors
// (SmoothQuant's, α fixed or searched) and learned Modality-Aware Smoothing.
#pragma once

#include <algorithm>
#include <limits>
#include <masquant/calibrate/problem.hpp>
#include <masquant/calibrate/report.hpp>
#include <masquant/calibrate/statistics.hpp>
#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <masquant/smooth/alpha_search.hpp>
#include <masquant/smooth/mas.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/smooth/smoothquant.hpp>
#include <string>
#include <vector>

namespace masquant {

/// The value of the smoothing stage.
struct smoothing_stage {
  /// s_m per modality, [modalities][d_in]: what config.method gives; a modality without tokens
  /// has the reference's factor (a reference without tokens the merged factor of the others).
  smoothing_factors factors;
  std::vector<float> merged;          ///< SmoothQuant's s_all, [d_in]
  std::vector<double> alpha;          ///< α of each modality's factor (NaN for method rtn)
  std::vector<skipped_work> skipped;  ///< the α search, when it had no tokens to search on
};

/// The value of the learning stage.
struct learning_stage {
  smoothing_factors factors;          ///< the factors to deploy, [modalities][d_in]
  learning_report report;             ///< steps run (0 when learning did not run) and the losses
  std::vector<skipped_work> skipped;  ///< learning, when it had no tokens to learn on
};

namespace detail {

/// A modality without tokens deploys the reference factor; a reference without tokens the
/// merged factor of the others (smoothquant_modality_factors already gives it s_all).
inline void share_reference_factor(const calibration_statistics& stats, smoothing_factors& f) {
  for (std::size_t m = 1; m < f.size(); ++m)
    if (stats.tokens(static_cast<index_t>(m)) == 0) f[m] = f[0];
}

/// The problem's linear as the smoothing solvers take it (the bias enters their SQNR signal).
inline linear_group group_of(const calibration_problem& problem) {
  linear_group group{{problem.weight()}, {}};
  if (!problem.bias().empty()) group.biases.push_back(problem.bias());
  return group;
}

inline void check_factors(const calibration_problem& problem, const smoothing_factors& f) {
  detail::smooth_check_factors("calibrate", "factors", f, problem.names().size(), problem.d_in(),
                               false);
}

}  // namespace detail

/// Stage 2: the initial smoothing factors, by config.method — rtn: s ≡ 1; smoothquant: the merged
/// factor s_all for every modality; mas: SmoothQuant's per-modality factors with config.alpha,
/// or with α searched per modality on the problem's token sample (config.alpha_search; without
/// a sample the search is skipped, α stays config.alpha and the stage value says so).
/// Throws as check_statistics().
template <class Deferred = void>
smoothing_stage initial_factors(const calibration_problem& problem,
                                const calibration_statistics& stats) {
  check_statistics(problem, stats);
  problem.notify(calibration_phase::smoothing);
  const calibration_config& config = problem.config();
  const auto nm = static_cast<std::size_t>(problem.modalities());
  const std::vector<float> w_absmax = weight_input_absmax({problem.weight()});
  smoothquant_options sq_opt;
  sq_opt.alpha = {config.alpha};
  sq_opt.merged_alpha = config.alpha;
  sq_opt.zero_channels = config.zero_channels;
  smoothquant_result sq = smoothquant_modality_factors(stats.absmax(), w_absmax, sq_opt);

  smoothing_stage out;
  out.alpha.assign(nm, config.alpha);
  switch (config.method) {
    case smoothing_method::rtn:
      out.factors.assign(nm, std::vector<float>(static_cast<std::size_t>(problem.d_in()), 1.0f));
      std::fill(out.alpha.begin(), out.alpha.end(), std::numeric_limits<double>::quiet_NaN());
      break;
    case smoothing_method::smoothquant:
      out.factors.assign(nm, sq.merged);
      break;
    case smoothing_method::mas:
      if (!config.alpha_search) {
        out.factors = std::move(sq.per_modality);
      } else if (problem.sample_tokens() == 0) {
        out.factors = std::move(sq.per_modality);
        out.skipped.push_back({calibration_phase::smoothing,
                               "the alpha search needs calibration tokens (none given): alpha " +
                                   detail::cat(config.alpha) + " for every modality"});
      } else {
        alpha_search_options ao;
        ao.weight_spec = config.weight_spec();
        ao.act_spec = config.activation_spec();
        ao.parallel = config.parallel;
        static_cast<alpha_grid_options&>(ao) = config.alpha_grid;
        ao.zero_channels = config.zero_channels;
        ao.default_alpha = config.alpha;
        ao.merged_alpha = config.alpha;
        ao.modality_weights = problem.modality_weights();
        alpha_search_result found =
            detail::search_alpha_checked(detail::group_of(problem), problem.sample(),
                                         stats.absmax(), w_absmax, ao, ao.modality_weights);
        out.factors = std::move(found.factors);
        out.alpha = std::move(found.alpha);
      }
      break;
  }
  out.merged = std::move(sq.merged);
  detail::share_reference_factor(stats, out.factors);
  return out;
}

/// Stage 3: learned MAS (method mas with config.learn_steps > 0) from `init.factors`, on the
/// problem's token sample with the modality-weighted loss (problem.modality_weights()), the
/// config's quantizers, seed and threads; otherwise the factors pass through unchanged. Without
/// a token sample learning is skipped and the stage value says so. Progress is reported as
/// calibration_phase::learning, one call per step. Throws errc::shape_mismatch or
/// errc::invalid_argument for factors that do not fit the problem.
template <class Deferred = void>
learning_stage learn_factors(const calibration_problem& problem,
                             const calibration_statistics& stats, const smoothing_stage& init) {
  const calibration_config& config = problem.config();
  detail::check_factors(problem, init.factors);
  learning_stage out;
  out.factors = init.factors;
  if (config.method != smoothing_method::mas || config.learn_steps == 0) return out;
  if (problem.sample_tokens() == 0) {
    out.skipped.push_back({calibration_phase::learning,
                           "learned MAS needs calibration tokens (none given): the initial "
                           "factors are kept"});
    return out;
  }
  mas_options mo;
  mo.weight_spec = config.weight_spec();
  mo.act_spec = config.activation_spec();
  mo.parallel = config.parallel;
  static_cast<mas_optimizer_options&>(mo) = config.learning;
  mo.loss = config.learning.loss;
  mo.modality_weights = problem.modality_weights();
  mo.steps = config.learn_steps;
  mo.seed = config.seed;
  mo.progress = [&problem](const mas_progress& p) {
    problem.notify(calibration_phase::learning, p.step, p.steps, p.loss);
  };
  mas_result learned = detail::learn_mas_checked(detail::group_of(problem), problem.sample(),
                                                 init.factors, mo, mo.modality_weights, 0);
  out.factors = std::move(learned.factors);
  detail::share_reference_factor(stats, out.factors);
  out.report = {config.learn_steps, learned.initial_loss, learned.final_loss,
                learned.skipped_steps};
  return out;
}

#ifdef MASQUANT_SEPARATE_COMPILATION
extern template smoothing_stage initial_factors<void>(const calibration_problem&,
                                                      const calibration_statistics&);
extern template learning_stage learn_factors<void>(const calibration_problem&,
                                                   const calibration_statistics&,
                                                   const smoothing_stage&);
#endif

}  // namespace masquant
