// config.hpp: what calibrate() does — bit widths, smoothing method, learning, compensation rank,
// whitening — and how it reports progress.
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/linalg/compensation.hpp>
#include <masquant/linalg/rank_policy.hpp>
#include <masquant/linalg/whitening.hpp>
#include <masquant/parallel.hpp>
#include <masquant/smooth/alpha_search.hpp>
#include <masquant/smooth/mas.hpp>
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

/// Short stable name ("rtn", "smoothquant", "mas").
inline const char* to_string(smoothing_method m) noexcept {
  switch (m) {
    case smoothing_method::rtn:
      return "rtn";
    case smoothing_method::smoothquant:
      return "smoothquant";
    case smoothing_method::mas:
      return "mas";
  }
  return "unknown";
}

/// Where calibrate() is; passed to calibration_config::progress.
struct calibration_progress {
  /// "statistics", "smoothing", "learning", "quantization", "compensation" or "report".
  std::string stage;
  index_t step = 0;   ///< 0-based step within the stage (learning step, modality, ...)
  index_t steps = 1;  ///< steps of the stage
  double loss = std::numeric_limits<double>::quiet_NaN();  ///< learning: minibatch loss
};

/// Everything calibrate() needs besides the data. Defaults are the CLI's (design.md): W8A8,
/// MAS with α = 0.5 and no learning, CMC at ρ = 0.05 with minimum rank 32, Cholesky whitening
/// with damping 1e-6·mean(diag C).
struct calibration_config {
  /// Weight bits, 2..8: symmetric, per output channel (<= 4 runs as packed INT4).
  int weight_bits = 8;
  /// Activation bits, 2..8 symmetric per token (dynamic), or >= 16 for unquantized activations.
  int activation_bits = 8;

  smoothing_method method = smoothing_method::mas;
  /// α of every SmoothQuant factor (per modality and merged) unless alpha_search is set.
  double alpha = 0.5;
  /// Search α per modality on the grid (the CLI's `--alpha auto`).
  bool alpha_search = false;
  /// Grid of the search; empty: 0.30, 0.35, ..., 0.90.
  std::vector<double> alpha_grid{};
  /// The reference's split-versus-merged choice after the α search (auto_scale).
  bool choose_split_or_merged = false;
  zero_channel_policy zero_channels = zero_channel_policy::unit;

  /// Learned MAS steps (method mas only); 0 keeps the SmoothQuant factors.
  index_t learn_steps = 0;
  /// Learning options (loss, learning rate, batch, seed, ...); steps, quantizers and threads are
  /// set from the fields of this config.
  mas_options learning{};
  /// Loss and auto_scale weights by modality id; empty: 0.5 for a modality named "vision" or
  /// "image", 1 for every other (the reference's text 1, audio 1, vision 0.5).
  std::vector<double> modality_weights{};

  /// Rank of the cross-modal compensation; rank 0 turns it off.
  rank_policy rank{};
  whitening_options whitening{};
  svd_options svd{};
  /// The reference's quant_cmc = 1: compensate towards Q_w(W·diag(s_m)) instead of W·diag(s_m),
  /// so every modality keeps strict weight-quantization semantics.
  bool quantized_compensation = false;

  /// Compute the per-stage SQNR report (costs one forward per stage over the calibration tokens).
  bool report = true;
  /// How the report's stages build the deployable linear: the cmc stage measures exactly what a
  /// quantized_linear constructed with these options computes (default: L and R held in bf16,
  /// as the reference and the default quantized_linear do; float32 for an exact branch).
  linear_options deploy{};
  /// Seed of everything random (minibatches, randomized SVD); equal seeds give equal results.
  std::uint64_t seed = 2;
  /// Parallel loop for the heavy steps (default: serial). Results do not depend on it.
  parallel_for_fn parallel{};
  /// Called as calibration advances (may be empty).
  std::function<void(const calibration_progress&)> progress{};

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
    rank.resolve(1, 1);  // validates the policy's fields
  }
};

}  // namespace masquant
