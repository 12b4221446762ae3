// alpha_search.hpp: per-modality grid search of SmoothQuant's α on the quantized output SQNR,
// and the reference's optional split-versus-merged choice (auto_scale).
#pragma once

#include <cmath>
#include <limits>
#include <masquant/error.hpp>
#include <masquant/smooth/detail/checks.hpp>
#include <masquant/smooth/detail/fake_quant_model.hpp>
#include <masquant/smooth/objective.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/smooth/smoothquant.hpp>
#include <masquant/smooth/sqnr.hpp>
#include <vector>

namespace masquant {

/// The default α grid: 0.30, 0.35, ..., 0.90 (13 points).
inline std::vector<double> default_alpha_grid() {
  std::vector<double> g;
  for (int k = 30; k <= 90; k += 5) g.push_back(k / 100.0);
  return g;
}

/// The search's own settings (what calibration_config::alpha_grid holds).
struct alpha_grid_options {
  /// Candidate α values in [0, 1]; empty: default_alpha_grid().
  std::vector<double> grid{};
  /// The reference's auto_scale: after the search, compare Σ_m w_m·SQNR_m of the per-modality
  /// factors with that of s_all for every modality, and keep s_all everywhere when it scores
  /// higher. Off by default (as in every released script).
  bool choose_split_or_merged = false;

  /// Throws errc::invalid_argument naming `op` for a grid value outside [0, 1].
  void validate(const char* op) const {
    for (double a : grid)
      MASQUANT_CHECK(a >= 0.0 && a <= 1.0, errc::invalid_argument, op, ": grid value ", a,
                     " outside [0, 1]");
  }
};

/// Options of search_alpha: the quantizers and threads (smoothing_eval_options), the grid
/// (alpha_grid_options), the SmoothQuant settings of the factors and the modality weights.
struct alpha_search_options : smoothing_eval_options, alpha_grid_options {
  zero_channel_policy zero_channels = zero_channel_policy::unit;
  float min_factor = smoothing_min_factor;
  /// α of a modality without calibration tokens (not searched).
  double default_alpha = 0.5;
  /// α of the merged factor s_all.
  double merged_alpha = 0.5;
  /// w_m of the split-or-merged score by modality id; empty: 1 for every modality (pass
  /// default_modality_weights(names) for the reference's SQNR_t + SQNR_a + 0.5·SQNR_v).
  std::vector<double> modality_weights{};
};

/// Outcome of search_alpha.
struct alpha_search_result {
  std::vector<double> grid;   ///< the α values tried
  std::vector<double> alpha;  ///< chosen α per modality
  /// SQNR in dB per modality and grid point ([modality][k]; empty for a modality without tokens).
  std::vector<std::vector<double>> sqnr_db;
  /// Factors per modality: s_m(α_m) (a modality without tokens: as smoothquant_modality_factors
  /// with default_alpha), or s_all everywhere when merged_chosen.
  smoothing_factors factors;
  std::vector<float> merged;  ///< s_all
  bool merged_chosen = false;
  /// Σ_m w_m·SQNR_m of the split and of the merged factors (NaN unless choose_split_or_merged).
  double split_score = std::numeric_limits<double>::quiet_NaN();
  double merged_score = std::numeric_limits<double>::quiet_NaN();
};

namespace detail {

/// search_alpha on validated arguments (`weights` resolved when choose_split_or_merged).
inline alpha_search_result search_alpha_checked(const linear_group& group,
                                                const modality_inputs& inputs,
                                                const std::vector<std::vector<float>>& act_absmax,
                                                vector_view<const float> weight_absmax,
                                                const alpha_search_options& options,
                                                const std::vector<double>& weights) {
  const std::size_t nm = inputs.size();
  alpha_search_result r;
  r.grid = options.grid.empty() ? default_alpha_grid() : options.grid;

  // Validates the statistics and gives the defaults (a modality without tokens keeps these).
  smoothquant_options sq;
  sq.alpha = {options.default_alpha};
  sq.merged_alpha = options.merged_alpha;
  sq.zero_channels = options.zero_channels;
  sq.min_factor = options.min_factor;
  auto base = smoothquant_modality_factors(act_absmax, weight_absmax, sq);
  r.merged = std::move(base.merged);
  r.factors = std::move(base.per_modality);
  r.alpha.assign(nm, options.default_alpha);
  r.sqnr_db.resize(nm);

  fake_quant_model<float> ev(group, inputs, options.weight_spec, options.act_spec, options.parallel,
                             smooth_output_cache_elements);
  auto db_of = [&](std::size_t m, const std::vector<float>& s) {
    const auto sums =
        ev.run(static_cast<index_t>(m), s.data(), s.data(), nullptr, inputs[m].rows(), true);
    return sqnr_db(sums.signal, sums.noise);
  };
  std::vector<double> best(nm, std::numeric_limits<double>::quiet_NaN());
  for (std::size_t m = 0; m < nm; ++m) {
    if (inputs[m].rows() == 0) continue;
    for (double a : r.grid) {
      auto s = smoothquant_factors(act_absmax[m], weight_absmax, a, options.zero_channels,
                                   options.min_factor);
      const double db = db_of(m, s);
      r.sqnr_db[m].push_back(db);
      // The first of equal values wins; a NaN only while nothing else has been seen.
      if (r.sqnr_db[m].size() == 1 || db > best[m] || std::isnan(best[m])) {
        best[m] = db;
        r.alpha[m] = a;
        r.factors[m] = std::move(s);
      }
    }
  }
  if (options.choose_split_or_merged) {
    r.split_score = 0;
    r.merged_score = 0;
    for (std::size_t m = 0; m < nm; ++m) {
      if (inputs[m].rows() == 0 || weights[m] == 0) continue;
      r.split_score += weights[m] * best[m];
      r.merged_score += weights[m] * db_of(m, r.merged);
    }
    if (r.merged_score > r.split_score) {
      r.merged_chosen = true;
      for (auto& f : r.factors) f = r.merged;
    }
  }
  return r;
}

}  // namespace detail

/// For every modality m with calibration tokens, picks the α of the grid that maximises the SQNR
/// of Q_a(X_m ⊘ s_m(α))·Q_w(W·diag(s_m(α)))ᵀ (+ bias) against X_m·Wᵀ (+ bias) over modality m's
/// tokens and the group's concatenated outputs, with s_m(α) SmoothQuant's factor from a_m and w
/// (each modality has its own quantized weight here, so the choices are independent). Ties go
/// to the first grid point. Optionally applies the split-versus-merged choice (see options).
///
/// act_absmax: [modalities][d_in] (e.g. per_modality_absmax or the stats layer); weight_absmax:
/// [d_in] (weight_input_absmax of the linear, of the group's first linear, or of the group).
/// For independent factors of a group, call it once per linear. Throws errc::invalid_argument
/// (grid, α, weights), errc::shape_mismatch, errc::non_finite, errc::not_supported.
///
/// Example:
/// \code
///   masquant::alpha_search_options opt;
///   opt.weight_spec.bits = 4;
///   auto r = masquant::search_alpha({{w}}, inputs, masquant::per_modality_absmax(inputs, d_in),
///                                   masquant::weight_input_absmax({w}), opt);
///   // r.alpha[m], r.factors[m]
/// \endcode
inline alpha_search_result search_alpha(const linear_group& group, const modality_inputs& inputs,
                                        const std::vector<std::vector<float>>& act_absmax,
                                        vector_view<const float> weight_absmax,
                                        const alpha_search_options& options = {}) {
  constexpr const char* op = "search_alpha";
  detail::smooth_check_group(op, group);
  detail::smooth_check_inputs(op, inputs, group.d_in());
  detail::smooth_check_specs(op, options.weight_spec, options.act_spec);
  const std::size_t nm = inputs.size();
  MASQUANT_CHECK(act_absmax.size() == nm, errc::shape_mismatch, op, ": activation absmax for ",
                 act_absmax.size(), " modalities, inputs for ", nm);
  MASQUANT_CHECK(weight_absmax.size() == group.d_in(), errc::shape_mismatch, op,
                 ": weight absmax has ", weight_absmax.size(), " channels, the group ",
                 group.d_in());
  options.validate(op);
  const auto weights = options.choose_split_or_merged
                           ? detail::resolve_modality_weights(op, options.modality_weights, nm)
                           : std::vector<double>{};
  return detail::search_alpha_checked(group, inputs, act_absmax, weight_absmax, options, weights);
}

}  // namespace masquant
