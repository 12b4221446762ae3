// linear_workspace.hpp: the reusable scratch memory of quantized_linear::forward.
#pragma once

#include <cstddef>
#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/detail/aligned_buffer.hpp>
#include <masquant/gemm/quantized_activations.hpp>
#include <masquant/isa.hpp>
#include <vector>

namespace masquant {

class quantized_linear;

/// Scratch memory of quantized_linear::forward: the int8 activations, the smoothed rows of the
/// low-rank branch and its small products, and the token routing. Buffers only grow (to the
/// largest call seen) and are reused, so steady-state calls allocate nothing — first touches of
/// new memory are very expensive on some machines (page faults), see docs/performance.md.
///
/// One workspace serves any number of layers, one call at a time: give each thread that calls
/// forward concurrently its own (forward uses a thread_local one when none is given).
///
/// Example:
/// \code
///   masquant::linear_workspace ws;           // e.g. one per engine thread
///   masquant::forward_options opt;
///   opt.workspace = &ws;
///   for (auto& layer : layers) layer.forward(x, ids, y, opt);
/// \endcode
class linear_workspace {
 public:
  linear_workspace() = default;

  /// The int8 activations of the last quantized forward on this workspace: values [M, d_in],
  /// per-token scales [M], row sums [M] (empty before the first call and after an A16 call).
  quantized_activations_view activations() const {
    if (!has_activations_) return {};
    return qa_.view();
  }

  /// Tokens of the last forward that took the low-rank branch (0 for decode and for calls
  /// without non-reference tokens).
  index_t lowrank_rows() const noexcept { return lowrank_rows_; }

  /// The instruction-set family the last forward on this workspace ran (`automatic` before the
  /// first call); isa_of(hot_path, family) says which kernels each of its stages ran.
  isa_family isa() const noexcept { return isa_; }

  /// Bytes of scratch memory held.
  std::size_t bytes() const noexcept {
    return static_cast<std::size_t>(qa_.rows() * (qa_.cols() + 8)) + xs_.size() * 4 +
           gathered_f_.size() * 4 + gathered_b_.size() * 2 + t_.size() * 4 + tb_.size() * 2 +
           staged_.size() * 4 + (pos_.capacity() + rows_.capacity()) * sizeof(index_t);
  }

 private:
  friend class quantized_linear;

  struct task {
    index_t m, r0, r1, p0, p1;
  };

  quantized_activations qa_;
  bool has_activations_ = false;
  isa_family isa_ = isa_family::automatic;
  index_t lowrank_rows_ = 0;
  detail::aligned_buffer<float> xs_;                  // A16: smoothed rows
  detail::aligned_buffer<float> gathered_f_;          // low-rank rows x ⊘ s, float
  detail::aligned_buffer<std::uint16_t> gathered_b_;  // the same in bf16
  detail::aligned_buffer<float> t_;                   // x̃·L per low-rank row
  detail::aligned_buffer<std::uint16_t> tb_;          // the same in bf16
  detail::aligned_buffer<float> staged_;              // float outputs of a bf16 y
  std::vector<index_t> pos_;             // [M]: row of token i in its modality's block, or -1
  std::vector<index_t> rows_;            // token indices grouped by modality
  std::vector<index_t> count_;           // [modalities]: low-rank tokens per modality
  std::vector<index_t> first_;           // [modalities]: first entry of the modality in rows_
  std::vector<index_t> fill_;            // [modalities]: routing cursor
  std::vector<index_t> t_off_, tb_off_;  // [modalities]: block starts in t_ and tb_
  std::vector<float*> gf_ptr_;           // [modalities]: block starts
  std::vector<std::uint16_t*> gb_ptr_;
  std::vector<task> tasks_;
};

}  // namespace masquant
