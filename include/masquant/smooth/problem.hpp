// problem.hpp: what the smoothing solvers work on — a group of linears that read one input,
// calibration tokens per modality, and one smoothing vector per modality.
#pragma once

#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <masquant/tensor/view.hpp>
#include <vector>

namespace masquant {

/// The linears that read the same input: one linear, or a group such as q/k/v or gate/up.
///
/// weights[k] is `[d_out_k, d_in]` (PyTorch `nn.Linear` layout), every weight with the same d_in.
/// biases is empty (no biases) or holds one view per weight, `[d_out_k]` or empty (that linear
/// has no bias). Biases never change what the solvers optimise (they cancel in ŷ - y); they only
/// enter the SQNR signal Σ y². Outputs of a group are seen as one concatenated output of width
/// Σ d_out_k. The group does not own its memory.
///
/// Example:
/// \code
///   masquant::linear_group qkv{{q_w, k_w, v_w}};  // tied or independent factors, see learn_mas
///   masquant::linear_group up{{up_w}, {up_b}};
/// \endcode
struct linear_group {
  std::vector<matrix_view<const float>> weights;
  std::vector<vector_view<const float>> biases;

  /// Input channels (the weights' column count; 0 for an empty group).
  index_t d_in() const noexcept { return weights.empty() ? 0 : weights.front().cols(); }
  /// Σ d_out_k: the width of the concatenated output.
  index_t outputs() const noexcept {
    index_t n = 0;
    for (const auto& w : weights) n += w.rows();
    return n;
  }
};

/// Smoothing factors of one linear (or of one tied group), indexed by modality id: factors[m] is
/// the `[d_in]` vector s_m that modality m's tokens are divided by (x ⊘ s_m) and the weight's
/// columns multiplied by (W·diag(s_m)). Every entry is positive and finite. Where a function says
/// so, an empty vector means "no smoothing" (s ≡ 1).
using smoothing_factors = std::vector<std::vector<float>>;

/// Calibration tokens by modality id: inputs[m] is `[N_m, d_in]`, the inputs of the group for
/// the tokens of modality m (N_m may be 0: the modality has no calibration tokens). Views, not
/// owned. A model with modality ids per token splits them first (e.g. with tokens_of()).
using modality_inputs = std::vector<matrix_view<const float>>;

}  // namespace masquant
