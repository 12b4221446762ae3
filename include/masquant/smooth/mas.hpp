// mas.hpp: learned Modality-Aware Smoothing — per-modality factors optimised with Adam on the
// modality-weighted reconstruction loss, rounding straight-through, gradients through the
// dynamic quantization scales.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <masquant/error.hpp>
#include <masquant/smooth/detail/checks.hpp>
#include <masquant/smooth/detail/fake_quant_model.hpp>
#include <masquant/smooth/detail/random.hpp>
#include <masquant/smooth/objective.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/smooth/smoothquant.hpp>
#include <vector>

namespace masquant {

/// What learn_mas reports after every step.
struct mas_progress {
  index_t linear = 0;    ///< linear of the group (learn_mas_independent); 0 for learn_mas
  index_t step = 0;      ///< 0-based index of the step just run
  index_t steps = 0;     ///< steps in total
  double loss = 0;       ///< minibatch loss at the factors this step started from
  bool skipped = false;  ///< the update was skipped (non-finite loss or gradient)
};

/// The optimiser of learned MAS: the settings that belong to it alone (calibration_config::learning
/// embeds them; the quantizers, modality weights, threads, step count and seed are the caller's
/// and live in mas_options or in the calibration config).
struct mas_optimizer_options {
  /// Tokens per step over all modalities; 0 or >= the token count: every token every step.
  /// A minibatch is stratified: modality m contributes round(B·N_m/N) tokens (at least 1,
  /// at most N_m), drawn without replacement from a seeded shuffle.
  index_t batch_tokens = 512;
  /// Adam on θ = ln s (PyTorch Adam/AdamW with weight decay 0; the reference's lr 5e-2).
  double learning_rate = 5e-2;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double epsilon = 1e-8;
  /// Factors are kept >= min_factor (projection θ >= ln min_factor after every step; initial
  /// factors below it are raised to it).
  float min_factor = smoothing_min_factor;
  /// true: return the factors with the lowest exact objective among the initial ones, the final
  /// ones and (when every step sees every token) those of every step; false: the final ones.
  bool keep_best = true;

  /// Throws errc::invalid_argument naming `op` and the first bad field.
  void validate(const char* op) const {
    MASQUANT_CHECK(batch_tokens >= 0, errc::invalid_argument, op, ": negative batch_tokens ",
                   batch_tokens);
    MASQUANT_CHECK(std::isfinite(learning_rate) && learning_rate > 0, errc::invalid_argument, op,
                   ": learning_rate ", learning_rate, " must be positive and finite");
    MASQUANT_CHECK(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, errc::invalid_argument, op,
                   ": Adam betas (", beta1, ", ", beta2, ") must lie in [0, 1)");
    MASQUANT_CHECK(std::isfinite(epsilon) && epsilon > 0, errc::invalid_argument, op, ": epsilon ",
                   epsilon, " must be positive and finite");
    MASQUANT_CHECK(std::isfinite(min_factor) && min_factor > 0, errc::invalid_argument, op,
                   ": min_factor ", min_factor, " must be positive and finite");
  }
};

/// Options of learn_mas: the objective (quantizers, threads, loss and modality weights;
/// objective_options), the optimiser (mas_optimizer_options), the step count and the seed.
struct mas_options : objective_options, mas_optimizer_options {
  /// Optimiser steps (0: only evaluate the initial factors).
  index_t steps = 200;
  /// Seed of the token sampler (the reference's seed is 2). Equal seeds give equal results,
  /// whatever the thread count.
  std::uint64_t seed = 2;
  /// Called after every step (may be empty).
  std::function<void(const mas_progress&)> progress{};
};

/// Outcome of learn_mas for one linear (or one tied group).
struct mas_result {
  smoothing_factors factors;   ///< the returned factors, [modalities][d_in], each >= min_factor
  std::vector<double> losses;  ///< minibatch loss of every step, at the factors it started from
  double first_loss = std::numeric_limits<double>::quiet_NaN();  ///< losses.front()
  double last_loss = std::numeric_limits<double>::quiet_NaN();   ///< losses.back()
  double best_loss = std::numeric_limits<double>::quiet_NaN();   ///< min(losses)
  double initial_loss = 0;  ///< exact objective (every token) at the initial factors
  /// Exact objective at the returned factors (<= initial_loss with keep_best).
  double final_loss = 0;
  /// The step whose starting factors were returned (0: the initial factors), or `steps` for the
  /// factors after the last step.
  index_t returned_step = 0;
  index_t skipped_steps = 0;  ///< updates skipped for a non-finite loss or gradient
};

namespace detail {

/// learn_mas on validated arguments; `weights` resolved, `linear` only labels progress.
inline mas_result learn_mas_checked(const linear_group& group, const modality_inputs& inputs,
                                    const smoothing_factors& init, const mas_options& o,
                                    const std::vector<double>& weights, index_t linear) {
  const std::size_t nm = inputs.size();
  const auto d = static_cast<std::size_t>(group.d_in());
  const bool squared = o.loss == loss_kind::mse;
  fake_quant_model<float> ev(group, inputs, o.weight_spec, o.act_spec, o.parallel,
                             smooth_output_cache_elements);

  // Current factors (what the forward uses) and θ = ln s with Adam moments, in double.
  smoothing_factors s(nm);
  std::vector<std::vector<double>> theta(nm), m1(nm), m2(nm), ga(nm), gb(nm);
  for (std::size_t m = 0; m < nm; ++m) {
    s[m].resize(d);
    theta[m].resize(d);
    for (std::size_t j = 0; j < d; ++j) {
      s[m][j] = std::max(init[m][j], o.min_factor);
      theta[m][j] = std::log(static_cast<double>(s[m][j]));
    }
    m1[m].assign(d, 0.0);
    m2[m].assign(d, 0.0);
    ga[m].resize(d);
    gb[m].resize(d);
  }
  auto pointers = [&] {
    std::vector<const float*> p;
    for (const auto& v : s) p.push_back(v.data());
    return p;
  };

  mas_result r;
  r.initial_loss = exact_objective(ev, inputs, pointers(), weights, squared);
  smoothing_factors best = s;
  double best_loss = r.initial_loss;
  index_t best_step = 0;

  index_t total = 0;
  for (const auto& x : inputs) total += x.rows();
  const bool full_batch = o.batch_tokens == 0 || o.batch_tokens >= total;
  std::vector<std::vector<index_t>> rows(nm);
  std::vector<index_t> count(nm, 0);
  std::vector<index_sampler> samplers;
  for (std::size_t m = 0; m < nm; ++m) {
    const index_t n = inputs[m].rows();
    if (full_batch) {
      count[m] = n;
    } else {
      samplers.emplace_back(n);
      if (n > 0)
        count[m] = std::clamp<index_t>(
            static_cast<index_t>(std::llround(static_cast<double>(o.batch_tokens) *
                                              static_cast<double>(n) / static_cast<double>(total))),
            1, n);
    }
  }
  index_t batch = 0;
  for (index_t c : count) batch += c;
  const double norm = static_cast<double>(ev.outputs()) * static_cast<double>(batch);
  const double theta_min = std::log(static_cast<double>(o.min_factor));
  splitmix64 rng(o.seed);
  index_t adam_t = 0;

  r.losses.reserve(static_cast<std::size_t>(o.steps));
  for (index_t step = 0; step < o.steps; ++step) {
    double loss = 0;
    for (std::size_t m = 0; m < nm; ++m) {
      if (count[m] == 0) continue;
      if (!full_batch) samplers[m].draw(count[m], rng, rows[m]);
      std::fill(ga[m].begin(), ga[m].end(), 0.0);
      std::fill(gb[m].begin(), gb[m].end(), 0.0);
      const auto sums = ev.run(static_cast<index_t>(m), s[m].data(), s[m].data(),
                               full_batch ? nullptr : rows[m].data(), count[m], squared,
                               weights[m] / norm, ga[m].data(), gb[m].data());
      loss += weights[m] * sums.loss;
    }
    loss /= norm;
    r.losses.push_back(loss);
    if (full_batch && loss < best_loss) {
      best = s;
      best_loss = loss;
      best_step = step;
    }
    // ∂L/∂θ = s ⊙ (∂L/∂a + ∂L/∂b) with a = b = s; stored in ga.
    bool finite = std::isfinite(loss);
    for (std::size_t m = 0; m < nm && finite; ++m)
      for (std::size_t j = 0; j < d; ++j) {
        ga[m][j] = static_cast<double>(s[m][j]) * (ga[m][j] + gb[m][j]);
        finite = finite && std::isfinite(ga[m][j]);
      }
    if (!finite) {
      ++r.skipped_steps;
    } else {
      ++adam_t;
      const double bc1 = 1 - std::pow(o.beta1, static_cast<double>(adam_t));
      const double bc2 = 1 - std::pow(o.beta2, static_cast<double>(adam_t));
      for (std::size_t m = 0; m < nm; ++m) {
        if (count[m] == 0) continue;  // no tokens, no gradient: the factor keeps its value
        for (std::size_t j = 0; j < d; ++j) {
          const double g = ga[m][j];
          m1[m][j] = o.beta1 * m1[m][j] + (1 - o.beta1) * g;
          m2[m][j] = o.beta2 * m2[m][j] + (1 - o.beta2) * g * g;
          const double delta =
              o.learning_rate / bc1 * m1[m][j] / (std::sqrt(m2[m][j]) / std::sqrt(bc2) + o.epsilon);
          if (delta == 0) continue;  // keeps s bit-exact where nothing moves
          theta[m][j] = std::max(theta[m][j] - delta, theta_min);
          s[m][j] = std::max(static_cast<float>(std::exp(theta[m][j])), o.min_factor);
        }
      }
    }
    if (o.progress) o.progress(mas_progress{linear, step, o.steps, loss, !finite});
  }

  if (!r.losses.empty()) {
    r.first_loss = r.losses.front();
    r.last_loss = r.losses.back();
    r.best_loss = *std::min_element(r.losses.begin(), r.losses.end());
  }
  const double final_loss =
      o.steps > 0 ? exact_objective(ev, inputs, pointers(), weights, squared) : r.initial_loss;
  if (o.keep_best && best_loss <= final_loss) {
    r.factors = std::move(best);
    r.final_loss = best_loss;
    r.returned_step = best_step;
  } else {
    r.factors = std::move(s);
    r.final_loss = final_loss;
    r.returned_step = o.steps;
  }
  return r;
}

inline void check_learn_args(const char* op, const linear_group& group,
                             const modality_inputs& inputs, const mas_options& options) {
  smooth_check_group(op, group);
  smooth_check_inputs(op, inputs, group.d_in());
  smooth_check_specs(op, options.weight_spec, options.act_spec);
  MASQUANT_CHECK(options.steps >= 0, errc::invalid_argument, op, ": negative step count ",
                 options.steps);
  options.validate(op);
  index_t n = 0;
  for (const auto& x : inputs) n += x.rows();
  MASQUANT_CHECK(n > 0, errc::invalid_argument, op, ": no calibration tokens");
}

}  // namespace detail

/// Learns one smoothing vector per modality for a linear, or for a group of linears that read
/// the same input with *tied* factors (one vector per modality for the whole group; the loss
/// covers the concatenated outputs), by minimising the objective of reconstruction_loss():
///
///   L(s) = Σ_m w_m Σ_{n∈m} |Q_a(x_n ⊘ s_m)·Q_w(W·diag(s_m))ᵀ - x_n·Wᵀ|₁ / (D·N).
///
/// Parametrised as s = exp(θ) (positive by construction) and optimised with Adam on stratified
/// token minibatches; rounding is straight-through and the gradient flows through each
/// quantizer's dynamic scale Δ (see docs/smoothing.md). After every step θ is projected onto
/// θ >= ln min_factor. A step whose loss or gradient is not finite is skipped. A modality without
/// tokens keeps its initial factor exactly. Deterministic for a seed, whatever the thread count.
///
/// init: [modalities][d_in] positive finite factors, usually SmoothQuant's
/// (smoothquant_modality_factors). Throws errc::invalid_argument, errc::shape_mismatch,
/// errc::non_finite (naming the tensor, row and column) or errc::not_supported.
///
/// Example:
/// \code
///   masquant::linear_group g{{w}};
///   auto a = masquant::per_modality_absmax(inputs, w.cols());
///   auto sq = masquant::smoothquant_modality_factors(a, masquant::weight_input_absmax({w}));
///   masquant::mas_options opt;
///   opt.weight_spec.bits = 4;  // W4A8
///   opt.steps = 100;
///   masquant::mas_result r = masquant::learn_mas(g, inputs, sq.per_modality, opt);
///   // r.factors[m]: the learned s_m; r.final_loss <= r.initial_loss
/// \endcode
inline mas_result learn_mas(const linear_group& group, const modality_inputs& inputs,
                            const smoothing_factors& init, const mas_options& options = {}) {
  constexpr const char* op = "learn_mas";
  detail::check_learn_args(op, group, inputs, options);
  detail::smooth_check_factors(op, "init", init, inputs.size(), group.d_in(), false);
  const auto w = detail::resolve_modality_weights(op, options.modality_weights, inputs.size());
  return detail::learn_mas_checked(group, inputs, init, options, w, 0);
}

/// Learns *independent* factors for every linear of a group (the reference's released "split"
/// setting): linear k gets its own vectors, learned on its own output with its own
/// normalisation (D = d_out_k), from init[k] — or from init[0] for every linear when init holds
/// one set (the reference initialises k and v from q's statistics; see
/// smoothquant_group_factors). Every linear sees the same token minibatches (same seed).
/// Returns one result per linear. Throws as learn_mas().
inline std::vector<mas_result> learn_mas_independent(const linear_group& group,
                                                     const modality_inputs& inputs,
                                                     const std::vector<smoothing_factors>& init,
                                                     const mas_options& options = {}) {
  constexpr const char* op = "learn_mas_independent";
  detail::check_learn_args(op, group, inputs, options);
  MASQUANT_CHECK(init.size() == 1 || init.size() == group.weights.size(), errc::shape_mismatch, op,
                 ": ", init.size(), " initial factor sets for ", group.weights.size(),
                 " linears (give 1 or one per linear)");
  for (const auto& f : init)
    detail::smooth_check_factors(op, "init", f, inputs.size(), group.d_in(), false);
  const auto w = detail::resolve_modality_weights(op, options.modality_weights, inputs.size());
  std::vector<mas_result> out;
  for (std::size_t k = 0; k < group.weights.size(); ++k) {
    linear_group one{{group.weights[k]}, {}};
    if (k < group.biases.size()) one.biases.push_back(group.biases[k]);
    out.push_back(detail::learn_mas_checked(one, inputs, init[init.size() == 1 ? 0 : k], options, w,
                                            static_cast<index_t>(k)));
  }
  return out;
}

}  // namespace masquant
