// config.hpp: what calibrate() does — bit widths, smoothing method, learning, compensation rank,
// whitening — and how it reports progress.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <masquant/calibrate/report.hpp>
#include <masquant/config.hpp>
#include <masquant/enum_names.hpp>
#include <masquant/error.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/linalg/compensation.hpp>
#include <masquant/linalg/rank_policy.hpp>
#include <masquant/linalg/whitening.hpp>
#include <masquant/parallel.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/smooth/alpha_search.hpp>
#include <masquant/smooth/mas.hpp>
#include <masquant/smooth/objective.hpp>
#include <masquant/smooth/smoothquant.hpp>
#include <string>
#include <vector>

namespace masquant {

/// How the per-modality smoothing factors are chosen.
enum class smoothing_method : std::uint8_t {
  rtn,          ///< no smoothing: s ≡ 1 for every modality (round-to-nearest baseline)
  smoothquant,  ///< one factor s_all for every modality, from the absmax over all tokens
  mas,          ///< one factor per modality: SmoothQuant-initialised, learned when learn_steps > 0
};

/// The methods' stable names (the tool's --method values).
inline constexpr std::array<enum_name<smoothing_method>, 3> smoothing_method_names{{
    {smoothing_method::rtn, "rtn"},
    {smoothing_method::smoothquant, "smoothquant"},
    {smoothing_method::mas, "mas"},
}};

/// Short stable name ("rtn", "smoothquant", "mas").
inline const char* to_string(smoothing_method m) noexcept {
  return name_in(smoothing_method_names, m);
}

/// What calibration_config::learning holds: the loss and the optimiser of learned MAS (its steps,
/// seed, quantizers, modality weights and threads are the config's own fields).
struct mas_learning_options : mas_optimizer_options {
  loss_kind loss = loss_kind::mae;  ///< per-element error of the objective
};

/// Where calibrate() is; passed to calibration_config::progress.
struct calibration_progress {
  calibration_phase phase = calibration_phase::statistics;
  index_t step = 0;   ///< 0-based step within the phase (learning step, modality, ...)
  index_t steps = 1;  ///< steps of the phase
  double loss = std::numeric_limits<double>::quiet_NaN();  ///< learning: minibatch loss
};

/// Everything calibrate() needs besides the data.
///
/// Each setting lives in one place. The knobs every stage shares — bit widths, seed, threads,
/// modality weights — are fields of this struct; the embedded option structs (learning,
/// alpha_grid, whitening, svd, rank, deploy) hold only what belongs to their solver. calibrate()
/// hands the shared knobs to every solver and overwrites nothing set here.
///
/// Defaults: W8A8, MAS with α = 0.5 and no learning, compensation at ρ = 0.05 with minimum rank
/// 32, Cholesky whitening with damping 1e-6·mean(diag C), the report on. (The masquant tool
/// starts from these and learns 50 steps by default: docs/cli.md.)
struct calibration_config {
  // --- shared by every stage -----------------------------------------------------------------
  /// Weight bits, 2..8: symmetric, per output channel (<= 4 runs as packed INT4).
  int weight_bits = 8;
  /// Activation bits, 2..8 symmetric per token (dynamic), or >= 16 for unquantized activations.
  int activation_bits = 8;
  /// Seed of everything random (learning minibatches; the randomized SVD of modality m uses
  /// seed + m); equal seeds give equal results.
  std::uint64_t seed = 2;
  /// Parallel loop for the heavy steps (default: serial). Results do not depend on it.
  parallel_for_fn parallel{};
  /// w_m of the learning loss and of the α search's split-or-merged score, by modality id,
  /// finite and >= 0; empty: default_modality_weights(names), the reference's rule by name
  /// (0.5 for "vision" or "image", 1 for every other modality).
  std::vector<double> modality_weights{};

  // --- smoothing factors ---------------------------------------------------------------------
  smoothing_method method = smoothing_method::mas;
  /// α of every SmoothQuant factor (per modality and merged) unless alpha_search is set.
  double alpha = 0.5;
  zero_channel_policy zero_channels = zero_channel_policy::unit;
  /// Search α per modality on the grid (method mas; the tool's `--alpha auto`).
  bool alpha_search = false;
  /// The search's grid and its split-versus-merged choice.
  alpha_grid_options alpha_grid{};
  /// Learned MAS steps (method mas only); 0 keeps the SmoothQuant factors.
  index_t learn_steps = 0;
  /// The learning loss and optimiser: batch, learning rate, Adam constants, floor of the factors.
  mas_learning_options learning{};

  // --- compensation --------------------------------------------------------------------------
  /// Rank of the cross-modal compensation; rank 0 turns it off.
  rank_policy rank{};
  whitening_options whitening{};
  svd_solver_options svd{};
  /// The reference's quant_cmc = 1: compensate towards Q_w(W·diag(s_m)) instead of W·diag(s_m),
  /// so every modality keeps strict weight-quantization semantics.
  bool quantized_compensation = false;

  // --- report --------------------------------------------------------------------------------
  /// Compute the per-stage SQNR report (costs one forward per stage over the calibration tokens).
  bool report = true;
  /// How the report builds the deployable linear: its cmc stage measures exactly what a
  /// quantized_linear constructed with these options computes (default: L and R held in bf16,
  /// as the reference and the default quantized_linear do; float32 for an exact branch).
  linear_options deploy{};
  /// Called as calibration advances (may be empty).
  std::function<void(const calibration_progress&)> progress{};

  /// Q_w: weight_bits, symmetric, per output channel.
  quant_spec weight_spec() const noexcept { return {weight_bits, true, granularity::per_row, 0}; }
  /// Q_a: activation_bits, symmetric, per token.
  quant_spec activation_spec() const noexcept {
    return {activation_bits, true, granularity::per_row, 0};
  }

  /// Throws errc::invalid_argument naming the first bad field.
  void validate() const {
    constexpr const char* op = "calibration_config";
    MASQUANT_CHECK(weight_bits >= 2 && weight_bits <= 8, errc::invalid_argument, op,
                   ": weight_bits must be in [2, 8], got ", weight_bits);
    MASQUANT_CHECK((activation_bits >= 2 && activation_bits <= 8) || activation_bits >= 16,
                   errc::invalid_argument, op,
                   ": activation_bits must be in [2, 8] or >= 16 (unquantized), got ",
                   activation_bits);
    MASQUANT_CHECK(std::isfinite(alpha) && alpha >= 0 && alpha <= 1, errc::invalid_argument, op,
                   ": alpha must be in [0, 1], got ", alpha);
    MASQUANT_CHECK(learn_steps >= 0, errc::invalid_argument, op, ": learn_steps must be >= 0, got ",
                   learn_steps);
    for (double w : modality_weights)
      MASQUANT_CHECK(std::isfinite(w) && w >= 0, errc::invalid_argument, op,
                     ": modality weights must be finite and >= 0, got ", w);
    alpha_grid.validate(op);
    learning.validate(op);
    rank.resolve(1, 1);  // validates the policy's fields
    whitening.validate(op);
    svd.validate(op);
  }
};

}  // namespace masquant
