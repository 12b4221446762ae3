// checks.hpp: argument validation shared by the smoothing solvers (one-line errors naming the
// operation, tensor, row and shape).
#pragma once

#include <cmath>
#include <masquant/detail/finite.hpp>
#include <masquant/error.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/tensor/view.hpp>
#include <string>
#include <vector>

namespace masquant::detail {

/// Validates a group: at least one weight, every weight non-empty with the same d_in, biases
/// empty or one per weight of matching size, every value finite.
inline void smooth_check_group(const char* op, const linear_group& g) {
  MASQUANT_CHECK(!g.weights.empty(), errc::invalid_argument, op, ": the linear group is empty");
  const index_t d_in = g.d_in();
  for (std::size_t k = 0; k < g.weights.size(); ++k) {
    const auto& w = g.weights[k];
    MASQUANT_CHECK(w.rows() >= 1 && w.cols() >= 1, errc::invalid_argument, op, ": weight ", k,
                   " is ", w.rows(), "x", w.cols(), " (needs at least one row and column)");
    MASQUANT_CHECK(w.cols() == d_in, errc::shape_mismatch, op, ": weight ", k, " is ", w.rows(),
                   "x", w.cols(), " but weight 0 has ", d_in, " input channels");
    check_finite(op, cat("weight ", k), w);
  }
  MASQUANT_CHECK(g.biases.empty() || g.biases.size() == g.weights.size(), errc::shape_mismatch, op,
                 ": ", g.biases.size(), " biases for ", g.weights.size(), " weights");
  for (std::size_t k = 0; k < g.biases.size(); ++k) {
    const auto& b = g.biases[k];
    MASQUANT_CHECK(b.empty() || b.size() == g.weights[k].rows(), errc::shape_mismatch, op,
                   ": bias ", k, " has ", b.size(), " values for a weight with ",
                   g.weights[k].rows(), " rows");
    check_finite(op, cat("bias ", k), b);
  }
}

/// Validates per-modality calibration inputs: 1..256 modalities, each [N_m, d_in] (any column
/// count when N_m = 0), every value finite.
inline void smooth_check_inputs(const char* op, const modality_inputs& inputs, index_t d_in) {
  MASQUANT_CHECK(!inputs.empty() && inputs.size() <= 256, errc::invalid_argument, op,
                 ": need 1 to 256 modalities of calibration inputs, got ", inputs.size());
  for (std::size_t m = 0; m < inputs.size(); ++m) {
    const auto& x = inputs[m];
    MASQUANT_CHECK(x.rows() == 0 || x.cols() == d_in, errc::shape_mismatch, op,
                   ": inputs of modality ", m, " are ", x.rows(), "x", x.cols(), ", expected ",
                   d_in, " columns");
    check_finite(op, cat("input of modality ", m), x);
  }
}

/// Validates a factor set for `n_modalities` modalities of d_in channels: each vector has d_in
/// positive finite values (or is empty when `allow_empty`).
inline void smooth_check_factors(const char* op, const char* what, const smoothing_factors& f,
                                 std::size_t n_modalities, index_t d_in, bool allow_empty) {
  MASQUANT_CHECK(f.size() == n_modalities, errc::shape_mismatch, op, ": ", what, " has ", f.size(),
                 " vectors for ", n_modalities, " modalities");
  for (std::size_t m = 0; m < f.size(); ++m) {
    const auto& s = f[m];
    if (s.empty() && allow_empty) continue;
    MASQUANT_CHECK(static_cast<index_t>(s.size()) == d_in, errc::shape_mismatch, op, ": ", what,
                   " of modality ", m, " has ", s.size(), " values, expected ", d_in);
    for (std::size_t j = 0; j < s.size(); ++j)
      MASQUANT_CHECK(std::isfinite(s[j]) && s[j] > 0.0f, errc::invalid_argument, op, ": ", what,
                     " of modality ", m, " is ", s[j], " at channel ", j,
                     " (must be positive and finite)");
  }
}

/// Validates the quantizers of a solver: the weight spec may be anything the quant layer accepts;
/// activations are quantized dynamically per token or per group (per_tensor would couple every
/// token of a batch, which no reference setting does).
inline void smooth_check_specs(const char* op, const quant_spec& weight, const quant_spec& act) {
  weight.validate(op);
  act.validate(op);
  MASQUANT_CHECK(act.is_identity() || act.gran != granularity::per_tensor, errc::not_supported, op,
                 ": per_tensor activation quantization is not supported by the smoothing "
                 "solvers (use per_row, i.e. dynamic per token, or per_group)");
}

}  // namespace masquant::detail
