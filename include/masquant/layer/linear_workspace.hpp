// linear_workspace.hpp: the reusable scratch memory of quantized_linear::forward.
#pragma once

#include <cstddef>
#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/detail/aligned_buffer.hpp>
#include <masquant/error.hpp>
#include <masquant/gemm/quantized_activations.hpp>
#include <masquant/isa.hpp>
#include <masquant/layer/linear_io.hpp>
#include <vector>

namespace masquant {

class quantized_linear;
struct forward_options;

/// Scratch memory of quantized_linear::forward: the int8 activations, the smoothed rows of the
/// low-rank branch and its small products, the float outputs of a bf16 or accumulating call, and
/// the token routing — one block of memory, laid out afresh by each call.
///
/// The block either belongs to the workspace, which grows it to the largest call seen and reuses
/// it (steady-state calls allocate nothing; first touches of new memory are very expensive on
/// some machines, see docs/performance.md), or is the caller's: `linear_workspace(buffer, bytes)`
/// never allocates it, and a call that needs more than `bytes` is errc::invalid_argument before
/// anything is written. quantized_linear::workspace_bytes(max_tokens) sizes it; reserve() grows
/// an owned block up front so that even the first call of up to max_tokens tokens allocates none
/// of it. A few bytes per modality for the routing and the task list of the low-rank branch stay
/// on the heap: reserve() sizes them too (call it on a caller's buffer as well, which it also
/// checks), after which no call of up to max_tokens tokens allocates anything. The token pass
/// keeps one thread_local row of 2·d_in floats per thread, sized on that thread's first call.
///
/// One workspace serves any number of layers, one call at a time: give each thread that calls
/// forward concurrently its own (forward uses a thread_local one when none is given).
///
/// Example:
/// \code
///   masquant::linear_workspace ws;           // e.g. one per engine thread
///   ws.reserve(layer, max_tokens);           // the largest prefill, before serving
///   masquant::forward_options opt;
///   opt.workspace = &ws;
///   for (auto& layer : layers) layer.forward(x, ids, y, opt);
/// \endcode
class linear_workspace {
 public:
  /// A workspace that owns its memory (none until the first call or reserve()).
  linear_workspace() = default;
  /// A workspace in the caller's memory: `bytes` bytes at `buffer` (any alignment; it must
  /// outlive the workspace and not be used by anything else meanwhile). Throws
  /// errc::invalid_argument for a null buffer with a positive size.
  linear_workspace(void* buffer, std::size_t bytes) : base_(static_cast<unsigned char*>(buffer)) {
    MASQUANT_CHECK(buffer != nullptr || bytes == 0, errc::invalid_argument,
                   "linear_workspace: null buffer of ", bytes, " bytes");
    // Aligned to a cache line (what the kernels read in whole lines); the rest is the capacity.
    const auto at = reinterpret_cast<std::uintptr_t>(buffer);
    const std::size_t skip = (alignment - at % alignment) % alignment;
    capacity_ = bytes > skip ? bytes - skip : 0;
    base_ += bytes > skip ? skip : 0;
    external_ = true;
  }
  // Bound to one place (a thread, an engine slot): hold it by pointer to move it around.
  linear_workspace(const linear_workspace&) = delete;
  linear_workspace& operator=(const linear_workspace&) = delete;

  /// Makes room for every call of `layer` with up to `max_tokens` tokens (with these options and
  /// output element type; the defaults: float outputs, no accumulation): grows the owned block to
  /// layer.workspace_bytes(max_tokens, opt, output) and sizes the routing, so that such calls
  /// allocate nothing. For a caller's buffer, checks that it is large enough
  /// (errc::invalid_argument otherwise). Defined in quantized_linear.hpp.
  void reserve(const quantized_linear& layer, index_t max_tokens);
  void reserve(const quantized_linear& layer, index_t max_tokens, const forward_options& opt,
               element_type output);

  /// The int8 activations of the last quantized forward on this workspace: values [M, d_in],
  /// per-token scales [M], row sums [M] (empty before the first call and after an A16 call).
  quantized_activations_view activations() const {
    if (!has_activations_) return {};
    return activations_of_call();
  }

  /// Tokens of the last forward that took the low-rank branch (0 for decode and for calls
  /// without non-reference tokens).
  index_t lowrank_rows() const noexcept { return lowrank_rows_; }

  /// The instruction-set family the last forward on this workspace ran (`automatic` before the
  /// first call); isa_of(hot_path, family) says which kernels each of its stages ran.
  isa_family isa() const noexcept { return isa_; }

  /// Bytes of the scratch block (owned or the caller's, after alignment).
  std::size_t bytes() const noexcept { return capacity_; }
  /// Whether the block is the caller's.
  bool external() const noexcept { return external_; }

 private:
  friend class quantized_linear;

  static constexpr std::size_t alignment = 64;

  struct task {
    index_t m, r0, r1, p0, p1;
  };

  quantized_activations_view activations_of_call() const {
    return {matrix_view<const std::int8_t>(q_, qa_rows_, qa_cols_),
            vector_view<const float>(scale_, qa_rows_),
            vector_view<const std::int32_t>(sum_, qa_rows_)};
  }

  // A block of at least `size` bytes (contents not kept); the caller's must already hold it.
  unsigned char* block(std::size_t size, const char* op) {
    if (size <= capacity_) return base_;
    MASQUANT_CHECK(!external_, errc::invalid_argument, op, ": this call needs ", size,
                   " bytes of workspace but the caller's buffer holds ", capacity_,
                   " (quantized_linear::workspace_bytes sizes it)");
    owned_ = detail::aligned_buffer<unsigned char>(size);
    base_ = owned_.data();
    capacity_ = size;
    return base_;
  }

  detail::aligned_buffer<unsigned char> owned_;
  unsigned char* base_ = nullptr;
  std::size_t capacity_ = 0;
  bool external_ = false;

  // Where the last call put things (inside the block).
  std::int8_t* q_ = nullptr;  // int8 activations [M, K], scales [M], row sums [M]
  float* scale_ = nullptr;
  std::int32_t* sum_ = nullptr;
  index_t qa_rows_ = 0, qa_cols_ = 0;
  bool has_activations_ = false;
  isa_family isa_ = isa_family::automatic;
  index_t lowrank_rows_ = 0;
  float* xs_ = nullptr;                  // A16: smoothed rows
  float* gathered_f_ = nullptr;          // low-rank rows x ⊘ s, float
  std::uint16_t* gathered_b_ = nullptr;  // the same in bf16
  float* t_ = nullptr;                   // x̃·L per low-rank row
  std::uint16_t* tb_ = nullptr;          // the same in bf16
  float* staged_ = nullptr;              // float outputs of a bf16 or accumulating call
  index_t* pos_ = nullptr;               // [M]: row of token i in its modality's block, or -1
  index_t* rows_ = nullptr;              // token indices grouped by modality
  std::vector<index_t> count_;           // [modalities]: low-rank tokens per modality
  std::vector<index_t> first_;           // [modalities]: first entry of the modality in rows_
  std::vector<index_t> fill_;            // [modalities]: routing cursor
  std::vector<index_t> t_off_, tb_off_;  // [modalities]: block starts in t_ and tb_
  std::vector<float*> gf_ptr_;           // [modalities]: block starts
  std::vector<std::uint16_t*> gb_ptr_;
  std::vector<task> tasks_;
};

}  // namespace masquant
