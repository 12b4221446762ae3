// result.hpp: what calibrate() returns.
#pragma once

#include <masquant/calibrate/report.hpp>
#include <masquant/layer/linear_params.hpp>
#include <vector>

namespace masquant {

/// The outcome of calibrate(): what the engine deploys, and what calibration measured.
struct calibration_result {
  /// The deployable parameters: build a quantized_linear from them, or save them (file contract).
  quantized_linear_params params;
  calibration_report report;
  /// s_all, SmoothQuant's merged factor (what --method smoothquant deploys for every modality).
  std::vector<float> merged_factor;
};

}  // namespace masquant
