// smoothquant.hpp: SmoothQuant smoothing factors, per modality and merged, from per-channel
// activation and weight absmax.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <masquant/detail/finite.hpp>
#include <masquant/enum_names.hpp>
#include <masquant/error.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/tensor/view.hpp>
#include <vector>

namespace masquant {

/// Floor of a_j, w_j and s_j in the SmoothQuant formula (the reference's CLIPMIN).
inline constexpr double smoothquant_floor = 1e-5;

/// Smallest smoothing factor used for inference and learning (the reference truncates |s| to
/// at least 0.01 before every forward).
inline constexpr float smoothing_min_factor = 0.01f;

/// What a factor becomes where the statistics carry no information: a channel whose activation
/// absmax a_j or whose weight column absmax w_j is not above the floor 1e-5 (a channel a
/// modality never activates, or an all-zero weight column).
enum class zero_channel_policy : std::uint8_t {
  /// s_j = 1: leave the channel alone (default; what most peers do). A channel never seen in
  /// calibration keeps its scale at inference, and a zero column needs no smoothing.
  unit,
  /// The reference: floor a_j and w_j at 1e-5 and apply the formula. Finite by construction,
  /// but a channel never active in calibration gets a tiny factor (clamped to min_factor), so
  /// an unexpected activation there is amplified up to 100x at inference.
  floor,
};

/// The policies' stable names.
inline constexpr std::array<enum_name<zero_channel_policy>, 2> zero_channel_policy_names{{
    {zero_channel_policy::unit, "unit"},
    {zero_channel_policy::floor, "floor"},
}};

/// Short stable name ("unit", "floor").
inline const char* to_string(zero_channel_policy p) noexcept {
  return name_in(zero_channel_policy_names, p);
}

/// Per-input-channel absmax of a group of weights [d_out_k, d_in]: w_j = max_k max_o |W_k[o, j]|.
/// Pass one weight for "the linear's own weight" (the reference; docs/algorithm.md, choice 5) or
/// the whole group for SmoothQuant's max over q|k|v. Throws errc::invalid_argument for an empty
/// list, errc::shape_mismatch for differing column counts, errc::non_finite naming the weight and
/// element.
inline std::vector<float> weight_input_absmax(
    const std::vector<matrix_view<const float>>& weights) {
  MASQUANT_CHECK(!weights.empty(), errc::invalid_argument, "weight_input_absmax: no weights");
  const index_t d_in = weights.front().cols();
  std::vector<float> w(static_cast<std::size_t>(d_in), 0.0f);
  for (std::size_t k = 0; k < weights.size(); ++k) {
    const auto& wk = weights[k];
    MASQUANT_CHECK(wk.cols() == d_in, errc::shape_mismatch, "weight_input_absmax: weight ", k,
                   " is ", wk.rows(), "x", wk.cols(), ", weight 0 has ", d_in, " columns");
    for (index_t o = 0; o < wk.rows(); ++o) {
      const float* row = wk.row_data(o);
      for (index_t j = 0; j < d_in; ++j) {
        if (!std::isfinite(row[j]))
          detail::raise_non_finite("weight_input_absmax", detail::cat("weight ", k), wk.rows(),
                                   d_in, row[j], o, j);
        w[static_cast<std::size_t>(j)] = std::max(w[static_cast<std::size_t>(j)], std::abs(row[j]));
      }
    }
  }
  return w;
}

/// Per-channel absmax of each modality's calibration tokens: result[m][j] = max_n |inputs[m][n, j]|
/// (all zeros for a modality without tokens). Throws errc::shape_mismatch when a non-empty block
/// does not have d_in columns, errc::non_finite naming the modality, row and column.
inline std::vector<std::vector<float>> per_modality_absmax(const modality_inputs& inputs,
                                                           index_t d_in) {
  MASQUANT_CHECK(d_in >= 0, errc::invalid_argument, "per_modality_absmax: negative d_in ", d_in);
  std::vector<std::vector<float>> a(inputs.size(),
                                    std::vector<float>(static_cast<std::size_t>(d_in), 0.0f));
  for (std::size_t m = 0; m < inputs.size(); ++m) {
    const auto& x = inputs[m];
    MASQUANT_CHECK(x.rows() == 0 || x.cols() == d_in, errc::shape_mismatch,
                   "per_modality_absmax: inputs of modality ", m, " are ", x.rows(), "x", x.cols(),
                   ", expected ", d_in, " columns");
    for (index_t n = 0; n < x.rows(); ++n) {
      const float* row = x.row_data(n);
      for (index_t j = 0; j < d_in; ++j) {
        if (!std::isfinite(row[j]))
          detail::raise_non_finite("per_modality_absmax", detail::cat("input of modality ", m),
                                   x.rows(), d_in, row[j], n, j);
        a[m][static_cast<std::size_t>(j)] =
            std::max(a[m][static_cast<std::size_t>(j)], std::abs(row[j]));
      }
    }
  }
  return a;
}

/// The merged statistic of SmoothQuant: a_all,j = max_m a_m,j. Throws errc::invalid_argument for
/// an empty list, errc::shape_mismatch for differing lengths.
inline std::vector<float> merged_absmax(const std::vector<std::vector<float>>& per_modality) {
  MASQUANT_CHECK(!per_modality.empty(), errc::invalid_argument, "merged_absmax: no modalities");
  std::vector<float> all = per_modality.front();
  for (std::size_t m = 1; m < per_modality.size(); ++m) {
    MASQUANT_CHECK(per_modality[m].size() == all.size(), errc::shape_mismatch,
                   "merged_absmax: modality ", m, " has ", per_modality[m].size(),
                   " channels, modality 0 has ", all.size());
    for (std::size_t j = 0; j < all.size(); ++j) all[j] = std::max(all[j], per_modality[m][j]);
  }
  return all;
}

/// SmoothQuant factors s_j = max(1e-5, a_j^α / w_j^(1-α)) with a_j, w_j floored at 1e-5,
/// computed in double, rounded to float and raised to at least `min_factor`; channels without
/// information follow `policy` (see zero_channel_policy).
///
/// act_absmax, weight_absmax: [d_in], finite, >= 0. alpha in [0, 1]. min_factor > 0 (default
/// 0.01, the reference truncation; pass smoothquant_floor for the untruncated formula).
/// Throws errc::shape_mismatch, errc::invalid_argument (alpha, min_factor, negative absmax),
/// errc::non_finite (a NaN or Inf absmax, or a factor beyond the float range).
///
/// Example: `auto s = masquant::smoothquant_factors(a_text, weight_input_absmax({w}), 0.5);`
inline std::vector<float> smoothquant_factors(
    vector_view<const float> act_absmax, vector_view<const float> weight_absmax, double alpha,
    zero_channel_policy policy = zero_channel_policy::unit,
    float min_factor = smoothing_min_factor) {
  const char* op = "smoothquant_factors";
  MASQUANT_CHECK(act_absmax.size() == weight_absmax.size(), errc::shape_mismatch, op,
                 ": activation absmax has ", act_absmax.size(), " channels, weight absmax ",
                 weight_absmax.size());
  MASQUANT_CHECK(alpha >= 0.0 && alpha <= 1.0, errc::invalid_argument, op, ": alpha ", alpha,
                 " outside [0, 1]");
  MASQUANT_CHECK(std::isfinite(min_factor) && min_factor > 0.0f, errc::invalid_argument, op,
                 ": min_factor ", min_factor, " must be positive and finite");
  std::vector<float> s(static_cast<std::size_t>(act_absmax.size()));
  for (index_t j = 0; j < act_absmax.size(); ++j) {
    const double a = act_absmax[j], w = weight_absmax[j];
    MASQUANT_CHECK(std::isfinite(a) && std::isfinite(w), errc::non_finite, op,
                   ": non-finite absmax at channel ", j, " (activation ", a, ", weight ", w, ")");
    MASQUANT_CHECK(a >= 0.0 && w >= 0.0, errc::invalid_argument, op,
                   ": negative absmax at channel ", j, " (activation ", a, ", weight ", w, ")");
    double v;
    if (policy == zero_channel_policy::unit && (a <= smoothquant_floor || w <= smoothquant_floor)) {
      v = 1.0;
    } else {
      v = std::pow(std::max(a, smoothquant_floor), alpha) /
          std::pow(std::max(w, smoothquant_floor), 1.0 - alpha);
      v = std::max(v, smoothquant_floor);
    }
    const float f = static_cast<float>(v);
    MASQUANT_CHECK(std::isfinite(f), errc::non_finite, op, ": factor ", v, " at channel ", j,
                   " exceeds the float range (activation absmax ", a, ")");
    s[static_cast<std::size_t>(j)] = std::max(f, min_factor);
  }
  return s;
}

/// Options of smoothquant_modality_factors().
struct smoothquant_options {
  /// α by modality id; a single value applies to every modality (default 0.5, the reference).
  std::vector<double> alpha{0.5};
  /// α of the merged factor s_all.
  double merged_alpha = 0.5;
  zero_channel_policy zero_channels = zero_channel_policy::unit;
  float min_factor = smoothing_min_factor;
};

/// Per-modality and merged SmoothQuant factors of one linear (or group).
struct smoothquant_result {
  smoothing_factors per_modality;  ///< s_m, [modalities][d_in]
  std::vector<float> merged;       ///< s_all from a_all = max_m a_m, [d_in]
};

/// s_m from each modality's absmax with α_m, and s_all from the merged absmax with merged_alpha.
/// A modality whose absmax is 0 in every channel (absent from calibration, as the reference's
/// statistics leave it) gets s_all: nothing is known about it, so it is treated as SmoothQuant
/// would treat it.
///
/// act_absmax: [modalities][d_in]; weight_absmax: [d_in] (see weight_input_absmax). Throws as
/// smoothquant_factors(), and errc::invalid_argument when alpha has neither 1 nor `modalities`
/// values.
///
/// Example:
/// \code
///   auto a = masquant::per_modality_absmax(inputs, d_in);        // or from the stats layer
///   auto sq = masquant::smoothquant_modality_factors(a, masquant::weight_input_absmax({w}));
///   // sq.per_modality[m]: modality m's factor; sq.merged: the SmoothQuant baseline
/// \endcode
inline smoothquant_result smoothquant_modality_factors(
    const std::vector<std::vector<float>>& act_absmax, vector_view<const float> weight_absmax,
    const smoothquant_options& options = {}) {
  const std::size_t n = act_absmax.size();
  MASQUANT_CHECK(n >= 1, errc::invalid_argument, "smoothquant_modality_factors: no modalities");
  MASQUANT_CHECK(options.alpha.size() == 1 || options.alpha.size() == n, errc::invalid_argument,
                 "smoothquant_modality_factors: ", options.alpha.size(), " alpha values for ", n,
                 " modalities (give 1 or ", n, ")");
  for (double a : options.alpha)
    MASQUANT_CHECK(a >= 0.0 && a <= 1.0, errc::invalid_argument,
                   "smoothquant_modality_factors: alpha ", a, " outside [0, 1]");
  smoothquant_result r;
  const auto all = merged_absmax(act_absmax);
  r.merged = smoothquant_factors(all, weight_absmax, options.merged_alpha, options.zero_channels,
                                 options.min_factor);
  r.per_modality.resize(n);
  for (std::size_t m = 0; m < n; ++m) {
    const bool absent =
        std::all_of(act_absmax[m].begin(), act_absmax[m].end(), [](float v) { return v == 0.0f; });
    r.per_modality[m] = absent
                            ? r.merged
                            : smoothquant_factors(act_absmax[m], weight_absmax,
                                                  options.alpha[options.alpha.size() == 1 ? 0 : m],
                                                  options.zero_channels, options.min_factor);
  }
  return r;
}

/// Which weights give w_j when a group of linears shares one input (q/k/v, gate/up).
enum class weight_absmax_source : std::uint8_t {
  first,      ///< the group's first linear for every linear (the reference: q for q/k/v; default)
  own,        ///< each linear its own weight
  group_max,  ///< the max over the whole group (SmoothQuant's q|k|v concatenation)
};

/// The sources' stable names.
inline constexpr std::array<enum_name<weight_absmax_source>, 3> weight_absmax_source_names{{
    {weight_absmax_source::first, "first"},
    {weight_absmax_source::own, "own"},
    {weight_absmax_source::group_max, "group_max"},
}};

/// Short stable name ("first", "own", "group_max").
inline const char* to_string(weight_absmax_source w) noexcept {
  return name_in(weight_absmax_source_names, w);
}

/// SmoothQuant factors for every linear of a group: result[k] as smoothquant_modality_factors()
/// with w_j taken from `source`. Tied factors use result[0]; independent ones result[k]. Throws
/// as weight_input_absmax() and smoothquant_modality_factors().
inline std::vector<smoothquant_result> smoothquant_group_factors(
    const linear_group& group, const std::vector<std::vector<float>>& act_absmax,
    weight_absmax_source source = weight_absmax_source::first,
    const smoothquant_options& options = {}) {
  MASQUANT_CHECK(!group.weights.empty(), errc::invalid_argument,
                 "smoothquant_group_factors: the linear group is empty");
  std::vector<smoothquant_result> out;
  std::vector<float> shared;
  if (source != weight_absmax_source::own)
    shared = source == weight_absmax_source::first ? weight_input_absmax({group.weights.front()})
                                                   : weight_input_absmax(group.weights);
  for (const auto& w : group.weights)
    out.push_back(smoothquant_modality_factors(
        act_absmax, source == weight_absmax_source::own ? weight_input_absmax({w}) : shared,
        options));
  return out;
}

}  // namespace masquant
