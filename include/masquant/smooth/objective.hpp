// objective.hpp: the modality-weighted reconstruction loss that learned MAS minimises.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <masquant/enum_names.hpp>
#include <masquant/error.hpp>
#include <masquant/smooth/detail/checks.hpp>
#include <masquant/smooth/detail/fake_quant_model.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/smooth/sqnr.hpp>
#include <string>
#include <vector>

namespace masquant {

/// Per-element error of the reconstruction loss.
enum class loss_kind : std::uint8_t {
  mae,  ///< |ŷ - y| (the reference's `loss_multi_modal_mae_alpha`; default)
  mse,  ///< (ŷ - y)²
};

/// The losses' stable names.
inline constexpr std::array<enum_name<loss_kind>, 2> loss_kind_names{{
    {loss_kind::mae, "mae"},
    {loss_kind::mse, "mse"},
}};

/// Short stable name ("mae", "mse").
inline const char* to_string(loss_kind k) noexcept {
  return name_in(loss_kind_names, k);
}

/// The reference's modality weights w_m, decided by each modality's name: 0.5 for "vision" or
/// "image", 1 for every other (its text 1, audio 1, vision 0.5, whatever the order of the ids).
/// calibrate() uses them when calibration_config::modality_weights is empty.
inline std::vector<double> default_modality_weights(const std::vector<std::string>& names) {
  std::vector<double> w(names.size(), 1.0);
  for (std::size_t m = 0; m < names.size(); ++m)
    if (names[m] == "vision" || names[m] == "image") w[m] = 0.5;
  return w;
}

/// The objective: quantizers, per-element error and modality weights.
struct objective_options : smoothing_eval_options {
  loss_kind loss = loss_kind::mae;
  /// w_m by modality id, finite and >= 0; empty: 1 for every modality (the solvers know ids,
  /// not names: pass default_modality_weights(names) for the reference's weights).
  std::vector<double> modality_weights{};
};

namespace detail {

/// The weights to use for n modalities (validated): `w`, or 1 for each when `w` is empty.
inline std::vector<double> resolve_modality_weights(const char* op, const std::vector<double>& w,
                                                    std::size_t n) {
  if (w.empty()) return std::vector<double>(n, 1.0);
  MASQUANT_CHECK(w.size() == n, errc::shape_mismatch, op, ": ", w.size(), " modality weights for ",
                 n, " modalities");
  for (std::size_t m = 0; m < n; ++m)
    MASQUANT_CHECK(std::isfinite(w[m]) && w[m] >= 0.0, errc::invalid_argument, op,
                   ": modality weight ", m, " is ", w[m], " (must be finite and >= 0)");
  return w;
}

/// The objective over every token of every modality, factors[m] a [d_in] pointer per modality.
inline double exact_objective(fake_quant_model<float>& ev, const modality_inputs& inputs,
                              const std::vector<const float*>& factors,
                              const std::vector<double>& weights, bool squared) {
  index_t n = 0;
  double total = 0;
  for (std::size_t m = 0; m < inputs.size(); ++m) {
    const index_t nm = inputs[m].rows();
    if (nm == 0) continue;
    n += nm;
    total += weights[m] *
             ev.run(static_cast<index_t>(m), factors[m], factors[m], nullptr, nm, squared).loss;
  }
  return total / (static_cast<double>(ev.outputs()) * static_cast<double>(n));
}

}  // namespace detail

/// The MAS training objective over every calibration token,
///
///   L = Σ_m w_m Σ_{n∈m} Σ_o e(ŷ_no - y_no) / (D·N),
///   ŷ_n = Q_a(x_n ⊘ s_m)·Q_w(W·diag(s_m))ᵀ, y_n = x_n·Wᵀ,
///
/// with e = |·| (mae) or (·)², D = Σ d_out over the group and N = Σ_m N_m the unweighted token
/// count (docs/smoothing.md, "Learned MAS"). Biases cancel. Throws errc::invalid_argument when
/// there are no calibration tokens, and as modality_sqnr() for bad arguments.
inline double reconstruction_loss(const linear_group& group, const modality_inputs& inputs,
                                  const smoothing_factors& factors,
                                  const objective_options& options = {}) {
  constexpr const char* op = "reconstruction_loss";
  detail::smooth_check_group(op, group);
  detail::smooth_check_inputs(op, inputs, group.d_in());
  detail::smooth_check_factors(op, "factors", factors, inputs.size(), group.d_in(), false);
  detail::smooth_check_specs(op, options.weight_spec, options.act_spec);
  const auto w = detail::resolve_modality_weights(op, options.modality_weights, inputs.size());
  index_t n = 0;
  for (const auto& x : inputs) n += x.rows();
  MASQUANT_CHECK(n > 0, errc::invalid_argument, op, ": no calibration tokens");
  detail::fake_quant_model<float> ev(group, inputs, options.weight_spec, options.act_spec,
                                     options.parallel);
  std::vector<const float*> f;
  for (const auto& v : factors) f.push_back(v.data());
  return detail::exact_objective(ev, inputs, f, w, options.loss == loss_kind::mse);
}

}  // namespace masquant
