// calibrate.hpp: one call from a float linear and per-modality calibration tokens to the
// deployable MASQuant parameters (shared quantized weight, per-modality smoothing, low-rank
// compensation) and a per-modality report.
//
// Header-only by default. calibrate() instantiates the whole pipeline (statistics, smoothing,
// Eigen's SVDs and eigensolvers, the INT8 layer): about a minute of compile time in each
// translation unit that calls it. It is a function template for that reason alone (Deferred is
// always void): only the files that call it instantiate the pipeline, not every file that
// includes this header. A project calling it from several files can compile it once instead:
// define MASQUANT_SEPARATE_COMPILATION and include <masquant/src.hpp> in one .cpp file
// (docs/api.md, "Compile time").
#pragma once

#include <masquant/calibrate/config.hpp>
#include <masquant/calibrate/result.hpp>
#include <masquant/modality/modality.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/tensor/view.hpp>
#include <string>
#include <vector>

namespace masquant {

/// Calibrates one linear y = x·Wᵀ + b for multimodal tokens (algorithm.md §5–6):
/// 1. per-modality activation statistics (absmax; the Gram of every non-reference modality when
///    compensation is on), in double;
/// 2. smoothing factors by `config.method`: none (rtn), SmoothQuant's merged s_all for every
///    modality, or MAS — per-modality SmoothQuant factors (α fixed or searched), learned with
///    the modality-weighted reconstruction loss when learn_steps > 0;
/// 3. the shared weight Ŵ = Q_w(W·diag(s_ref)), symmetric per output channel;
/// 4. for every non-reference modality m with tokens: ΔW_m = W·diag(s_m) − Ŵ and its rank-r
///    compensation L_m·R_m ≈ ΔW_mᵀ, optimal in the output metric of m's smoothed tokens;
/// 5. the report: per modality, the output SQNR of the stages rtn, smoothquant,
///    mas_multiweight, shared_no_cmc and cmc (cmc runs the deployable quantized_linear itself).
///
/// weight: [d_out, d_in]; bias: [d_out] or empty; inputs[m]: [N_m, d_in] calibration tokens of
/// modality m (id m; id 0 is the reference modality, N_m may be 0); names: one per modality, or
/// empty for the default text/vision/audio naming ("modality3", ... beyond three).
/// A modality without tokens gets the reference factor and no compensation; a reference
/// modality without tokens gets the merged factor of the others.
///
/// Throws errc::invalid_argument (config, names), errc::shape_mismatch (naming the tensor and
/// modality), errc::non_finite (naming the tensor, modality, row and column), and what the
/// layers report (e.g. errc::numerical_issue from a whitening that fails even with maximal
/// damping). Deterministic for a seed, whatever config.parallel runs on.
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
                             std::vector<std::string> names = {});

/// calibrate() for tokens given as one block with a modality id per token: gathers each
/// modality's rows (a copy), then calibrates. The modality count is names.size(), or the largest
/// id + 1 when names is empty. Throws as calibrate(), and errc::out_of_range for an id beyond
/// the names.
template <class Deferred = void>
calibration_result calibrate(matrix_view<const float> weight, vector_view<const float> bias,
                             matrix_view<const float> x, vector_view<const modality_id> ids,
                             const calibration_config& config = {},
                             std::vector<std::string> names = {});

}  // namespace masquant

// Under MASQUANT_SEPARATE_COMPILATION the definitions are instantiated once, by src.hpp.
#ifndef MASQUANT_SEPARATE_COMPILATION
#include <masquant/calibrate/detail/calibrate_impl.hpp>
#endif
