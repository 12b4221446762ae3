// report.hpp: what calibrate() measured — per modality, the output SQNR of every quantization
// stage, the compensation rank and spectrum, and where the time went.
#pragma once

#include <array>
#include <limits>
#include <masquant/config.hpp>
#include <optional>
#include <string>
#include <vector>

namespace masquant {

/// The stages of the report, in order (names are the report's and the CLI's JSON keys):
/// - rtn: no smoothing, Q_a(x)·Q_w(W)ᵀ + b;
/// - smoothquant: one merged factor s_all for every modality;
/// - mas_multiweight: each modality its own factor *and* its own quantized weight Q_w(W·diag(s_m));
/// - shared_no_cmc: each modality its own factor, one shared weight Q_w(W·diag(s_ref));
/// - cmc: shared_no_cmc plus the low-rank compensation: the deployable result.
enum class report_stage : int { rtn, smoothquant, mas_multiweight, shared_no_cmc, cmc };
inline constexpr int report_stage_count = 5;

/// The stage's report name ("mas_multiweight").
inline const char* to_string(report_stage s) noexcept {
  constexpr const char* names[report_stage_count] = {"rtn", "smoothquant", "mas_multiweight",
                                                     "shared_no_cmc", "cmc"};
  const int i = static_cast<int>(s);
  return i >= 0 && i < report_stage_count ? names[i] : "unknown";
}

/// One modality's line of the report.
struct modality_report {
  std::string name;
  index_t tokens = 0;  ///< calibration tokens
  /// SQNR in dB of the layer output against x·Wᵀ + b over this modality's calibration tokens,
  /// per report_stage (index with static_cast<int>(stage)); computed in double. NaN when the
  /// modality has no tokens or the report was not computed; +inf for an exact output.
  std::array<double, report_stage_count> sqnr_db;
  double alpha = std::numeric_limits<double>::quiet_NaN();  ///< α of its SmoothQuant factor
  index_t rank = 0;                                         ///< rank of its compensation (0: none)
  double effective_rank = 0;  ///< of the whitened spectrum (see compensation::effective_rank)
  /// ‖X̃(ΔWᵀ − LR)‖/‖X̃ΔWᵀ‖ of its compensation, when computed.
  std::optional<double> relative_residual;
  /// Singular values of T·ΔWᵀ (all, or the leading r + p on the randomized path).
  std::vector<double> singular_values;
  double damping = 0;  ///< whitening damping λ used

  modality_report() { sqnr_db.fill(std::numeric_limits<double>::quiet_NaN()); }
  double sqnr(report_stage s) const { return sqnr_db[static_cast<std::size_t>(s)]; }
};

/// Wall-clock seconds per phase of calibrate().
struct calibration_timings {
  double statistics = 0, smoothing = 0, learning = 0, quantization = 0, compensation = 0,
         report = 0, total = 0;
};

/// Learned-MAS summary (when learning ran).
struct learning_report {
  index_t steps = 0;
  double initial_loss = std::numeric_limits<double>::quiet_NaN();  ///< exact objective before
  double final_loss = std::numeric_limits<double>::quiet_NaN();    ///< exact objective after
  index_t skipped_steps = 0;
};

/// What calibrate() reports about one linear.
struct calibration_report {
  /// The compensation rank the policy gives this layer (the largest used by any modality).
  index_t rank = 0;
  std::vector<modality_report> modalities;  ///< by modality id
  learning_report learning;
  calibration_timings seconds;
};

}  // namespace masquant
