// calibrate.hpp: one call from a float linear and per-modality calibration tokens to the
// deployable MASQuant parameters (shared quantized weight, per-modality smoothing, low-rank
// compensation) and a per-modality report — a short pipeline of the stage functions of
// calibrate/ (statistics, factors, shared weight, compensation, report).
//
// Header-only by default: calibrate() and its stages are function templates (Deferred is always
// void), so only the translation units that call them instantiate the pipeline — statistics,
// smoothing, Eigen's SVDs and eigensolvers, the INT8 layer. A project calling them from several
// files can compile them once instead: define MASQUANT_SEPARATE_COMPILATION (then every header
// declares them `extern template`) and include <masquant/src.hpp> in one .cpp file
// (docs/api.md, "Compile time").
#pragma once

#include <algorithm>
#include <chrono>
#include <masquant/calibrate/compensate.hpp>
#include <masquant/calibrate/config.hpp>
#include <masquant/calibrate/evaluate.hpp>
#include <masquant/calibrate/factors.hpp>
#include <masquant/calibrate/problem.hpp>
#include <masquant/calibrate/report.hpp>
#include <masquant/calibrate/result.hpp>
#include <masquant/calibrate/shared_weight.hpp>
#include <masquant/calibrate/statistics.hpp>
#include <masquant/error.hpp>
#include <masquant/modality/modality.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/tensor/eigen.hpp>
#include <masquant/tensor/view.hpp>
#include <string>
#include <utility>
#include <vector>

namespace masquant {

namespace detail {

class stopwatch {
 public:
  /// Seconds since the previous lap (or construction).
  double lap() {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    return s;
  }

 private:
  std::chrono::steady_clock::time_point last_ = std::chrono::steady_clock::now();
};

}  // namespace detail

/// Stages 4 to 6 (quantize_shared_weight, compensate, evaluate_report) with smoothing factors
/// already chosen — by stages 2 and 3 on this problem, as calibrate(problem, stats) does, or once
/// for a group of linears with tied smoothing (the stages run on the group's stacked weight) —
/// and the assembly of the deployable parameters and the report. The statistics, smoothing and
/// learning phases take 0 s here. Throws as the stages do.
template <class Deferred = void>
calibration_result calibrate(const calibration_problem& problem,
                             const calibration_statistics& stats, smoothing_stage init,
                             learning_stage learned) {
  detail::stopwatch clock, total;
  check_statistics(problem, stats);
  detail::check_factors(problem, learned.factors);
  calibration_result result;
  calibration_report& report = result.report;
  auto& seconds = report.seconds;

  quantized_matrix shared = quantize_shared_weight(problem, learned.factors);
  seconds[calibration_phase::quantization] = clock.lap();
  compensation_stage comp = compensate(problem, stats, learned.factors, shared);
  seconds[calibration_phase::compensation] = clock.lap();

  quantized_linear_params& params = result.params;
  params.d_in = problem.d_in();
  params.d_out = problem.d_out();
  params.weight_bits = problem.config().weight_bits;
  params.activation_bits = problem.config().activation_bits;
  params.qweight = std::move(shared.levels);
  params.wscale = std::move(shared.params.scales);
  params.bias.assign(problem.bias().begin(), problem.bias().end());
  params.smooth = std::move(learned.factors);
  params.lowrank = std::move(comp.lowrank);
  params.modality_names = problem.names();
  result.merged_factor = std::move(init.merged);

  const std::vector<modality_scores> scores =
      evaluate_report(problem, stats, params, result.merged_factor);
  seconds[calibration_phase::report] = clock.lap();

  report.rank = comp.rank;
  report.learning = learned.report;
  report.skipped = std::move(init.skipped);
  report.skipped.insert(report.skipped.end(), learned.skipped.begin(), learned.skipped.end());
  const index_t nm = problem.modalities();
  report.modalities.resize(static_cast<std::size_t>(nm));
  bool measured = false;
  for (index_t m = 0; m < nm; ++m) {
    const auto i = static_cast<std::size_t>(m);
    modality_report& mr = report.modalities[i];
    static_cast<compensation_report&>(mr) = std::move(comp.modalities[i]);
    mr.name = problem.name(m);
    mr.tokens = static_cast<index_t>(stats.tokens(m));
    mr.alpha = init.alpha[i];
    mr.scores = scores[i].status;
    mr.sqnr_db = scores[i].sqnr_db;
    measured = measured || mr.scores == score_status::computed;
  }
  if (problem.config().report && !measured)
    report.skipped.push_back(
        {calibration_phase::report, "the report needs calibration tokens (none given): no scores"});
  seconds.total = total.lap();
  return result;
}

/// Runs stages 2 to 6 (initial_factors, learn_factors, quantize_shared_weight, compensate,
/// evaluate_report) on a problem and the statistics of its input, timing each phase, and
/// assembles the deployable parameters and the report. The statistics phase takes 0 s here.
/// Throws as the stages do.
template <class Deferred = void>
calibration_result calibrate(const calibration_problem& problem,
                             const calibration_statistics& stats) {
  detail::stopwatch clock;
  check_statistics(problem, stats);
  smoothing_stage init = initial_factors(problem, stats);
  const double smoothing = clock.lap();
  learning_stage learned = learn_factors(problem, stats, init);
  const double learning = clock.lap();
  calibration_result result = calibrate(problem, stats, std::move(init), std::move(learned));
  result.report.seconds[calibration_phase::smoothing] = smoothing;
  result.report.seconds[calibration_phase::learning] = learning;
  result.report.seconds.total += smoothing + learning;
  return result;
}

/// Calibrates one linear y = x·Wᵀ + b for multimodal tokens (docs/algorithm.md, "The stages"):
/// 1. per-modality activation statistics (absmax; the Gram of every non-reference modality when
///    compensation is on), in double (collect_statistics);
/// 2. smoothing factors by `config.method`: none (rtn), SmoothQuant's merged s_all for every
///    modality, or MAS — per-modality SmoothQuant factors, α fixed or searched
///    (initial_factors), learned with the modality-weighted reconstruction loss when
///    learn_steps > 0 (learn_factors);
/// 3. the shared weight Ŵ = Q_w(W·diag(s_ref)), symmetric per output channel
///    (quantize_shared_weight);
/// 4. for every non-reference modality m with tokens: ΔW_m = W·diag(s_m) − Ŵ and its rank-r
///    compensation L_m·R_m ≈ ΔW_mᵀ, optimal in the output metric of m's smoothed tokens
///    (compensate);
/// 5. the report: per modality, the output SQNR of the stages of report_stages (rtn,
///    smoothquant, mas_multiweight, shared_no_cmc, cmc), measured with the deployable
///    quantized_linear itself (evaluate_report).
///
/// weight: [d_out, d_in]; bias: [d_out] or empty; inputs[m]: [N_m, d_in] calibration tokens of
/// modality m (id m; id 0 is the reference modality, N_m may be 0); names: one per modality, or
/// empty for the default text/vision/audio naming ("modality3", ... beyond three).
/// A modality without tokens gets the reference factor and no compensation; a reference
/// modality without tokens gets the merged factor of the others.
///
/// Throws errc::invalid_argument (config, names, no tokens at all), errc::shape_mismatch (naming
/// the tensor and modality), errc::non_finite (naming the tensor, modality, row and column;
/// every input is checked once, before any work), and what the stages report (e.g.
/// errc::numerical_issue from a whitening that fails even with maximal damping).
/// Deterministic for a seed, whatever config.parallel runs on.
///
/// Example:
/// \code
///   masquant::modality_inputs inputs{text_tokens, vision_tokens};   // matrix_view<const float>
///   masquant::calibration_config config;                            // W8A8, MAS, rank 0.05
///   config.weight_bits = 4;
///   auto result = masquant::calibrate(w, bias, inputs, config, {"text", "vision"});
///   masquant::quantized_linear linear(result.params);
///   double vision_db = result.report.modalities[1].sqnr(masquant::report_stage::cmc);
/// \endcode
template <class Deferred = void>
calibration_result calibrate(matrix_view<const float> weight, vector_view<const float> bias,
                             const modality_inputs& inputs, const calibration_config& config = {},
                             std::vector<std::string> names = {}) {
  detail::stopwatch clock;
  if (names.empty()) names = default_modality_names(static_cast<index_t>(inputs.size()));
  const calibration_problem problem(weight, bias, std::move(names), inputs, config);
  const calibration_statistics stats = collect_statistics(problem);
  const double statistics_seconds = clock.lap();
  calibration_result result = calibrate(problem, stats);
  result.report.seconds[calibration_phase::statistics] = statistics_seconds;
  result.report.seconds.total += statistics_seconds;
  return result;
}

/// calibrate() for tokens given as one block with a modality id per token: gathers each
/// modality's rows (a copy), then calibrates. The modality count is names.size(), or the largest
/// id + 1 when names is empty. Throws as calibrate(), and errc::out_of_range for an id beyond
/// the names.
template <class Deferred = void>
calibration_result calibrate(matrix_view<const float> weight, vector_view<const float> bias,
                             matrix_view<const float> x, vector_view<const modality_id> ids,
                             const calibration_config& config = {},
                             std::vector<std::string> names = {}) {
  MASQUANT_CHECK(x.rows() == ids.size(), errc::shape_mismatch, "calibrate: ", x.rows(),
                 " tokens but ", ids.size(), " modality ids");
  index_t nm = static_cast<index_t>(names.size());
  if (nm == 0)
    for (index_t i = 0; i < ids.size(); ++i) nm = std::max<index_t>(nm, index_t(ids[i]) + 1);
  nm = std::max<index_t>(nm, 1);
  const auto counts = count_tokens(ids, nm);
  std::vector<row_matrix<float>> blocks(static_cast<std::size_t>(nm));
  for (index_t m = 0; m < nm; ++m) blocks[std::size_t(m)].resize(counts[std::size_t(m)], x.cols());
  std::vector<index_t> filled(static_cast<std::size_t>(nm), 0);
  for (index_t i = 0; i < x.rows(); ++i) {
    auto& b = blocks[ids[i]];
    std::copy(x.row_data(i), x.row_data(i) + x.cols(), b.row(filled[ids[i]]++).data());
  }
  modality_inputs inputs;
  for (auto& b : blocks) inputs.push_back(matrix_view<const float>(b.data(), b.rows(), x.cols()));
  return calibrate(weight, bias, inputs, config, std::move(names));
}

/// Calibrates one linear from per-modality statistics instead of tokens: for models whose raw
/// calibration inputs are too large to keep (docs/api.md, "Calibrating from statistics").
///
/// stats: one accumulator per modality id, with d_in channels — counts, absmax and, for every
/// non-reference modality with tokens when the rank policy gives the linear a rank, the Gram
/// matrix (modality_stats with gram_mode::non_reference). From them alone come the initial
/// factors (SmoothQuant's, or MAS's per-modality ones, with α = config.alpha), the shared weight
/// and the compensation: bit for bit what calibrate() computes from the tokens the statistics
/// were accumulated over (the same blocks added in the same order), with learning off. What
/// needs tokens — the α search, learned MAS and the report — runs on `sample`, a token sample
/// per modality (the tokens themselves, a subsample, or none: an empty vector, or 0 rows for a
/// modality). Without one, those parts are skipped and the report says so instead of inventing
/// numbers: report.skipped names each, and a modality without sample tokens has scores
/// score_status::no_sample. report.modalities[m].tokens counts the statistics' tokens.
///
/// Throws as calibrate(); errc::shape_mismatch when the statistics' channel count differs from
/// d_in or their modality count from the names; errc::invalid_argument when the statistics hold
/// no token, or a Gram matrix the compensation needs is missing (naming the modality).
///
/// Example:
/// \code
///   masquant::modality_stats stats(d_in, 3, masquant::gram_mode::non_reference);
///   stats.add(hidden, ids);                  // every calibration batch, then drop the tokens
///   auto result = masquant::calibrate(w, bias, stats, config, {"text", "vision", "audio"},
///                                     {text_sample, vision_sample, audio_sample});
/// \endcode
template <class Deferred = void>
calibration_result calibrate(matrix_view<const float> weight, vector_view<const float> bias,
                             const modality_stats& stats, const calibration_config& config = {},
                             std::vector<std::string> names = {},
                             const modality_inputs& sample = {}) {
  if (names.empty()) names = default_modality_names(stats.modalities());
  const calibration_problem problem(weight, bias, std::move(names), sample, config);
  return calibrate(problem, calibration_statistics::view(stats));
}

#ifdef MASQUANT_SEPARATE_COMPILATION
extern template calibration_result calibrate<void>(const calibration_problem&,
                                                   const calibration_statistics&, smoothing_stage,
                                                   learning_stage);
extern template calibration_result calibrate<void>(const calibration_problem&,
                                                   const calibration_statistics&);
extern template calibration_result calibrate<void>(matrix_view<const float>,
                                                   vector_view<const float>, const modality_inputs&,
                                                   const calibration_config&,
                                                   std::vector<std::string>);
extern template calibration_result calibrate<void>(matrix_view<const float>,
                                                   vector_view<const float>, const modality_stats&,
                                                   const calibration_config&,
                                                   std::vector<std::string>,
                                                   const modality_inputs&);
extern template calibration_result calibrate<void>(
    matrix_view<const float>, vector_view<const float>, matrix_view<const float>,
    vector_view<const modality_id>, const calibration_config&, std::vector<std::string>);
#endif

}  // namespace masquant
