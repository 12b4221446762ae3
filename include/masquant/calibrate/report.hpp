// report.hpp: what calibrate() measured — per modality, the output SQNR of every quantization
// stage, the compensation rank and spectrum, where the time went and what could not be computed.
// The two tables of calibration live here: its phases (progress, timings) and the report's stages.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <masquant/config.hpp>
#include <masquant/enum_names.hpp>
#include <optional>
#include <string>
#include <vector>

namespace masquant {

/// The phases of calibrate(), in order; each is one stage function (calibrate/*.hpp). Their
/// names are the keys of calibration_timings and of the tool's report.
enum class calibration_phase : int {
  statistics,    ///< per-modality absmax and Gram matrices (collect_statistics)
  smoothing,     ///< the initial factors: SmoothQuant's, α fixed or searched (initial_factors)
  learning,      ///< learned MAS (learn_factors)
  quantization,  ///< the shared weight Q_w(W·diag(s_ref)) (quantize_shared_weight)
  compensation,  ///< the low-rank L·R of every non-reference modality (compensate)
  report,        ///< the SQNR of every stage (evaluate_report)
};
inline constexpr int calibration_phase_count = 6;

/// The phases' names, in order.
inline constexpr std::array<enum_name<calibration_phase>, calibration_phase_count>
    calibration_phase_names{{
        {calibration_phase::statistics, "statistics"},
        {calibration_phase::smoothing, "smoothing"},
        {calibration_phase::learning, "learning"},
        {calibration_phase::quantization, "quantization"},
        {calibration_phase::compensation, "compensation"},
        {calibration_phase::report, "report"},
    }};

/// The phase's name ("statistics").
inline const char* to_string(calibration_phase p) noexcept {
  return name_in(calibration_phase_names, p);
}

/// The stages of the report, in order (names are the report's and the CLI's JSON keys).
enum class report_stage : int { rtn, smoothquant, mas_multiweight, shared_no_cmc, cmc };
inline constexpr int report_stage_count = 5;

/// Which smoothing factor a stage uses for a modality m.
enum class stage_factor : std::uint8_t {
  none,       ///< s ≡ 1
  merged,     ///< SmoothQuant's s_all, the same for every modality
  own,        ///< the modality's own s_m
  reference,  ///< the reference modality's s_ref: the shared weight
};

/// What a report stage computes for the tokens x of modality m:
/// ŷ = Q_a(x ⊘ a)·Q_w(W·diag(b))ᵀ + b [+ (x ⊘ a)·L_m·R_m when `compensated`].
struct report_stage_definition {
  const char* name;
  stage_factor activation;  ///< a
  stage_factor weight;      ///< b
  bool compensated;
};

/// The report's stages, defined once (index with static_cast<int>(report_stage)):
/// - rtn: no smoothing, Q_a(x)·Q_w(W)ᵀ + b;
/// - smoothquant: one merged factor s_all for every modality;
/// - mas_multiweight: each modality its own factor *and* its own quantized weight Q_w(W·diag(s_m));
/// - shared_no_cmc: each modality its own factor, one shared weight Q_w(W·diag(s_ref));
/// - cmc: shared_no_cmc plus the low-rank compensation: the deployable result.
inline constexpr std::array<report_stage_definition, report_stage_count> report_stages{{
    {"rtn", stage_factor::none, stage_factor::none, false},
    {"smoothquant", stage_factor::merged, stage_factor::merged, false},
    {"mas_multiweight", stage_factor::own, stage_factor::own, false},
    {"shared_no_cmc", stage_factor::own, stage_factor::reference, false},
    {"cmc", stage_factor::own, stage_factor::reference, true},
}};

/// The stage's report name ("mas_multiweight").
inline const char* to_string(report_stage s) noexcept {
  const int i = static_cast<int>(s);
  return i >= 0 && i < report_stage_count ? report_stages[static_cast<std::size_t>(i)].name
                                          : "unknown";
}

/// Whether a modality's SQNR scores were computed, and if not, why.
enum class score_status : std::uint8_t {
  computed,       ///< sqnr_db holds the scores (a score may still be NaN or ±inf)
  not_requested,  ///< calibration_config::report was false
  no_tokens,      ///< the modality had no calibration tokens
  no_sample,      ///< calibrated from statistics without tokens of this modality to measure on
};

/// The statuses' stable names (the tool's JSON "sqnr_status").
inline constexpr std::array<enum_name<score_status>, 4> score_status_names{{
    {score_status::computed, "computed"},
    {score_status::not_requested, "not_requested"},
    {score_status::no_tokens, "no_tokens"},
    {score_status::no_sample, "no_sample"},
}};

/// Short stable name ("no_tokens").
inline const char* to_string(score_status s) noexcept {
  return name_in(score_status_names, s);
}

/// What the compensation of one modality reports (compensate()).
struct compensation_report {
  index_t rank = 0;           ///< rank of its compensation (0: none)
  double effective_rank = 0;  ///< of the whitened spectrum (see compensation::effective_rank)
  /// ‖X̃(ΔWᵀ − LR)‖/‖X̃ΔWᵀ‖ of its compensation, when computed.
  std::optional<double> relative_residual;
  /// Singular values of T·ΔWᵀ (all, or the leading r + p on the randomized path).
  std::vector<double> singular_values;
  double damping = 0;  ///< whitening damping λ used
};

/// One modality's line of the report: its scores, α and compensation.
struct modality_report : compensation_report {
  std::string name;
  /// Calibration tokens of the modality (those its statistics were accumulated over).
  index_t tokens = 0;
  /// Whether sqnr_db was computed (see score_status).
  score_status scores = score_status::not_requested;
  /// SQNR in dB of the layer output against x·Wᵀ + b over this modality's calibration tokens
  /// (or its token sample), per report_stage (index with static_cast<int>(stage)); computed in
  /// double. NaN unless `scores` is computed; +inf for an exact output.
  std::array<double, report_stage_count> sqnr_db;
  double alpha = std::numeric_limits<double>::quiet_NaN();  ///< α of its SmoothQuant factor

  modality_report() { sqnr_db.fill(std::numeric_limits<double>::quiet_NaN()); }
  double sqnr(report_stage s) const { return sqnr_db[static_cast<std::size_t>(s)]; }
};

/// Wall-clock seconds per phase of calibrate(), and in total.
struct calibration_timings {
  std::array<double, calibration_phase_count> phase{};  ///< by calibration_phase
  double total = 0;

  double operator[](calibration_phase p) const { return phase[static_cast<std::size_t>(p)]; }
  double& operator[](calibration_phase p) { return phase[static_cast<std::size_t>(p)]; }
};

/// Learned-MAS summary (when learning ran).
struct learning_report {
  index_t steps = 0;
  double initial_loss = std::numeric_limits<double>::quiet_NaN();  ///< exact objective before
  double final_loss = std::numeric_limits<double>::quiet_NaN();    ///< exact objective after
  index_t skipped_steps = 0;
};

/// A part of calibration the config asked for that did not run, and why (e.g. learned MAS
/// without calibration tokens).
struct skipped_work {
  calibration_phase phase;
  std::string reason;
};

/// What calibrate() reports about one linear.
struct calibration_report {
  /// The compensation rank the policy gives this layer (the largest used by any modality).
  index_t rank = 0;
  std::vector<modality_report> modalities;  ///< by modality id
  learning_report learning;
  calibration_timings seconds;
  /// What was asked for and not done, in phase order (empty when everything ran).
  std::vector<skipped_work> skipped;
};

}  // namespace masquant
