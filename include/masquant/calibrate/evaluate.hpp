// evaluate.hpp: the last stage of calibration — the report's output SQNR of every stage of
// report_stages, measured by running the deployable quantized_linear on the token sample.
#pragma once

#include <algorithm>
#include <array>
#include <limits>
#include <masquant/calibrate/problem.hpp>
#include <masquant/calibrate/report.hpp>
#include <masquant/calibrate/statistics.hpp>
#include <masquant/error.hpp>
#include <masquant/layer/linear_params.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/parallel.hpp>
#include <masquant/quant/smoothed_weight.hpp>
#include <masquant/smooth/sqnr.hpp>
#include <masquant/tensor/eigen.hpp>
#include <optional>
#include <vector>

namespace masquant {

/// One modality's scores: the report stages' SQNR, or why there are none.
struct modality_scores {
  score_status status = score_status::not_requested;
  std::array<double, report_stage_count> sqnr_db;
  modality_scores() { sqnr_db.fill(std::numeric_limits<double>::quiet_NaN()); }
};

namespace detail {

/// Tokens per task of the report: fixed, so the sums do not depend on the thread count.
inline constexpr index_t report_chunk_tokens = 128;

// The table's stages that keep a weight of their own smooth their tokens by the same factor.
static_assert([] {
  for (const auto& s : report_stages)
    if (s.weight != stage_factor::reference && s.activation != s.weight) return false;
  return true;
}());

/// A one-modality linear that smooths every token by s (empty: no smoothing) and holds its own
/// quantized weight Q_w(W·diag(s)): a report stage that does not use the shared weight.
inline quantized_linear single_factor_linear(const calibration_problem& problem,
                                             const std::vector<float>& s) {
  const calibration_config& config = problem.config();
  const quantized_matrix q =
      quantize_smoothed(problem.weight(), vector_view<const float>(s), config.weight_spec());
  quantized_linear_params p;
  p.d_in = problem.d_in();
  p.d_out = problem.d_out();
  p.weight_bits = config.weight_bits;
  p.activation_bits = config.activation_bits;
  p.bias.assign(problem.bias().begin(), problem.bias().end());
  p.qweight = q.levels;
  p.wscale = q.params.scales;
  p.smooth = {s.empty() ? std::vector<float>(static_cast<std::size_t>(p.d_in), 1.0f) : s};
  return quantized_linear(std::move(p), config.deploy);
}

}  // namespace detail

/// Stage 6: for every modality with tokens in the problem's sample, the SQNR in dB of each
/// report stage (report_stages) against the float output x·Wᵀ + b over those tokens, sums in
/// double. The stages on the shared weight run `params` — the deployable result — as one
/// quantized_linear (shared_no_cmc with forward_options::skip_lowrank); the others a linear with
/// a weight of their own. A modality gets score_status::no_tokens when its statistics saw no
/// token, no_sample when the sample has none of its tokens, not_requested for every modality
/// when config.report is false.
template <class Deferred = void>
std::vector<modality_scores> evaluate_report(const calibration_problem& problem,
                                             const calibration_statistics& stats,
                                             const quantized_linear_params& params,
                                             const std::vector<float>& merged) {
  check_statistics(problem, stats);
  const calibration_config& config = problem.config();
  const index_t nm = problem.modalities(), d_out = problem.d_out();
  std::vector<modality_scores> out(static_cast<std::size_t>(nm));
  for (index_t m = 0; m < nm; ++m) {
    auto& status = out[static_cast<std::size_t>(m)].status;
    status = !config.report         ? score_status::not_requested
             : stats.tokens(m) == 0 ? score_status::no_tokens
             : problem.sample()[static_cast<std::size_t>(m)].rows() == 0 ? score_status::no_sample
                                                                         : score_status::computed;
  }
  const bool any = std::any_of(out.begin(), out.end(), [](const modality_scores& m) {
    return m.status == score_status::computed;
  });
  if (!any) return out;
  problem.notify(calibration_phase::report);
  const quantized_linear deployed(params, config.deploy);
  const matrix_view<const float> weight = problem.weight();
  const vector_view<const float> bias = problem.bias();
  // The stages whose weight does not depend on the modality are built once.
  std::array<std::optional<quantized_linear>, report_stage_count> common;
  for (std::size_t st = 0; st < report_stage_count; ++st) {
    if (report_stages[st].weight == stage_factor::none)
      common[st].emplace(detail::single_factor_linear(problem, {}));
    if (report_stages[st].weight == stage_factor::merged)
      common[st].emplace(detail::single_factor_linear(problem, merged));
  }

  for (index_t m = 0; m < nm; ++m) {
    auto& scores = out[static_cast<std::size_t>(m)];
    if (scores.status != score_status::computed) continue;
    const matrix_view<const float> x = problem.sample()[static_cast<std::size_t>(m)];
    problem.notify(calibration_phase::report, m, nm);
    const quantized_linear own =
        detail::single_factor_linear(problem, params.smooth[static_cast<std::size_t>(m)]);
    const index_t chunks =
        (x.rows() + detail::report_chunk_tokens - 1) / detail::report_chunk_tokens;
    // Per chunk: Σy² and Σ(ŷ - y)² of every stage.
    std::vector<std::array<double, report_stage_count + 1>> sums(static_cast<std::size_t>(chunks));
    auto task = [&](index_t c) {
      const index_t r0 = c * detail::report_chunk_tokens;
      const index_t n = std::min(detail::report_chunk_tokens, x.rows() - r0);
      const matrix_view<const float> xc = x.middle_rows(r0, n);
      row_matrix<float> y = as_eigen(xc) * as_eigen(weight).transpose();
      if (!bias.empty()) y.rowwise() += as_eigen(bias).transpose();
      row_matrix<float> yhat(n, d_out);
      const std::vector<modality_id> ids(static_cast<std::size_t>(n), static_cast<modality_id>(m));
      auto& s = sums[static_cast<std::size_t>(c)];
      s.fill(0.0);
      s[0] = y.cast<double>().squaredNorm();
      for (std::size_t st = 0; st < report_stage_count; ++st) {
        const report_stage_definition& def = report_stages[st];
        if (def.weight == stage_factor::reference) {
          forward_options fo;
          fo.skip_lowrank = !def.compensated;
          deployed.forward(xc, ids, view_of(yhat), fo);
        } else {
          (common[st] ? *common[st] : own).forward(xc, view_of(yhat));
        }
        s[st + 1] = (yhat - y).cast<double>().squaredNorm();
      }
    };
    if (config.parallel)
      config.parallel(chunks, task);
    else
      serial_for(chunks, task);
    std::array<double, report_stage_count + 1> total{};
    for (const auto& s : sums)
      for (std::size_t i = 0; i < total.size(); ++i) total[i] += s[i];
    for (std::size_t st = 0; st < report_stage_count; ++st)
      scores.sqnr_db[st] = sqnr_db(total[0], total[st + 1]);
  }
  return out;
}

#ifdef MASQUANT_SEPARATE_COMPILATION
extern template std::vector<modality_scores> evaluate_report<void>(const calibration_problem&,
                                                                   const calibration_statistics&,
                                                                   const quantized_linear_params&,
                                                                   const std::vector<float>&);
#endif

}  // namespace masquant
