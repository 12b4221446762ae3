// quantized_linear.hpp: the deployable MASQuant linear — per-token modality smoothing fused into
// dynamic int8 quantization, one INT8 GEMM over all tokens, and the low-rank Cross-Modal
// Compensation on the rows of each non-reference modality (docs/deployment.md).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <masquant/gemm/detail/float_families.hpp>
#include <masquant/gemm/detail/panels.hpp>
#include <masquant/gemm/int8_gemm.hpp>
#include <masquant/gemm/packed_weights.hpp>
#include <masquant/isa.hpp>
#include <masquant/layer/detail/token_pass.hpp>
#include <masquant/layer/linear_io.hpp>
#include <masquant/layer/linear_params.hpp>
#include <masquant/layer/linear_workspace.hpp>
#include <masquant/modality/modality.hpp>
#include <masquant/parallel.hpp>
#include <masquant/quant/reference.hpp>
#include <masquant/tensor/eigen.hpp>
#include <masquant/tensor/view.hpp>
#include <string>
#include <utility>
#include <vector>

namespace masquant {

namespace detail {
struct packed_image_codec;  // layer/packed_image.hpp
}  // namespace detail

// GCC before 13 reports a scoped enumerator named like a type of the namespace (bfloat16) as
// shadowing it under -Wshadow; it shadows nothing, being reachable only as
// lowrank_storage::bfloat16.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wshadow"
#endif
/// How the low-rank factors L and R are held (chosen at construction).
enum class lowrank_storage : std::uint8_t {
  bfloat16,  ///< rounded once to bf16 (nearest even), as the reference implementation stores them
  float32,   ///< kept exactly as given
};
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

/// How the low-rank products are computed (chosen per call).
enum class lowrank_compute : std::uint8_t {
  /// bf16 dot products (vdpbf16ps, float accumulation) when the factors are stored as bf16, the
  /// avx512 family runs and the CPU has AVX512_BF16 (lowrank_uses_bf16()); x ⊘ s and x̃·L are
  /// then rounded to bf16 as the reference does. Otherwise float32.
  automatic,
  /// Float32 activations and accumulation (exact products of the stored factors).
  float32,
};

/// Whether this translation unit contains the vdpbf16ps kernel (with the avx512 family; it runs
/// where the CPU has AVX512_BF16, cpu_has_bf16_dot()).
inline constexpr bool lowrank_bf16_dot_compiled = MASQUANT_COMPILE_BF16 != 0;

/// Construction options of quantized_linear.
struct linear_options {
  lowrank_storage storage = lowrank_storage::bfloat16;
};

/// Options of quantized_linear::forward.
struct forward_options {
  /// Runs the tasks of every stage; empty: serial on the calling thread. Results are bitwise
  /// identical for any thread count. Exceptions thrown by tasks must reach the caller (as
  /// thread_pool does).
  parallel_for_fn parallel;
  /// Scratch memory; null: a thread_local workspace of the calling thread.
  linear_workspace* workspace = nullptr;
  lowrank_compute lowrank = lowrank_compute::automatic;
  /// Instruction-set family of every stage (token pass, INT8 GEMM, low-rank products; isa.hpp);
  /// `automatic` is best_isa(). Forcing one that is not available is errc::not_supported.
  isa_family isa = isa_family::automatic;
  /// Add into y instead of overwriting it (y += the layer's output, e.g. into the residual
  /// stream): y_new = y + out with one rounding in float (and once more to bf16 for a bf16 y),
  /// exactly what a separate add of forward's result would give. The layer's output is computed
  /// in the workspace first (M x d_out floats) and added by the pass that checks it.
  bool accumulate = false;
  /// Leave out the low-rank compensation: every token gets Q_a(x ⊘ s_m)·Ŵᵀ + b, what the shared
  /// weight alone computes (calibrate()'s report measures its shared_no_cmc stage so).
  bool skip_lowrank = false;
};

/// The deployable MASQuant linear: y_n = Q_a(x_n ⊘ s_m)·Ŵᵀ + b + [m ≠ 0]·(x_n ⊘ s_m)·L_m·R_m for
/// token n of modality m (quantized_linear_params gives the details).
///
/// Construction validates the parameters and packs the weight once (INT4 when weight_bits <= 4,
/// INT8 otherwise; for activation_bits >= 16 an exact bf16 copy of the levels for the float
/// product) and the factors L, R (see lowrank_storage). The object is immutable afterwards:
/// forward and reference_forward are const and may run concurrently from any number of
/// threads, each with its own workspace.
///
/// Example (prefill of a sequence with an image span, then decode):
/// \code
///   masquant::quantized_linear layer(std::move(params));      // from calibrate, or a file
///   std::vector<masquant::modality_id> ids = masquant::ids_from_spans({{5, 261, 1}}, tokens);
///   masquant::forward_options opt;
///   opt.parallel = pool.as_function();
///   layer.forward(x, ids, y, opt);          // x [tokens, d_in], y [tokens, d_out]
///   layer.forward(x_next, y_next, opt);     // decode: reference path only
/// \endcode
class quantized_linear {
 public:
  /// Validates `params` (quantized_linear_params::validate) and packs the kernels' operands, one
  /// task per column block or panel on `parallel` (serial when empty; the packed form does not
  /// depend on it). The levels and factors are not kept beside their packed form: params()
  /// unpacks them.
  explicit quantized_linear(quantized_linear_params params, const linear_options& options = {},
                            const parallel_for_fn& parallel = {});

  /// The parameters, unpacked from what the layer runs (for inspection and saving; allocates
  /// d_out·d_in bytes for the levels and the factors in float): as given, except that under
  /// lowrank_storage::bfloat16 L and R are the bf16-rounded values, and `lowrank` is empty when
  /// no modality has factors. The accessors below read the small fields without unpacking.
  quantized_linear_params params() const;
  int weight_bits() const noexcept { return p_.weight_bits; }
  int activation_bits() const noexcept { return p_.activation_bits; }
  /// Modality names in id order, as given (empty when none were given: modality_name() numbers).
  const std::vector<std::string>& modality_names() const noexcept { return p_.modality_names; }
  std::string modality_name(index_t m) const { return p_.modality_name(m); }
  /// s_m [d_in] of modality m (0 <= m < modalities()).
  vector_view<const float> smooth(index_t m) const {
    MASQUANT_CHECK(m >= 0 && m < modalities(), errc::out_of_range,
                   "quantized_linear::smooth: modality ", m, " of ", modalities());
    return vector_view<const float>(p_.smooth[static_cast<std::size_t>(m)]);
  }
  /// Per-channel weight scales [d_out].
  vector_view<const float> wscale() const noexcept { return vector_view<const float>(p_.wscale); }
  /// The bias [d_out], or empty.
  vector_view<const float> bias() const noexcept { return vector_view<const float>(p_.bias); }
  /// The factors of modality m as the layer runs them (bf16-rounded under
  /// lowrank_storage::bfloat16), unpacked; empty when it has none.
  lowrank_factors lowrank(index_t m) const;
  /// Integer level (n, k) of the weight as the layer runs it (not for speed).
  std::int8_t weight_level(index_t n, index_t k) const;
  /// Bytes this object holds (packed weight and scales, packed factors, smoothing vectors, bias
  /// and the A16 weight), shared copies counted in full; the workspace is not included.
  std::size_t resident_bytes() const noexcept;
  const linear_options& options() const noexcept { return options_; }
  index_t d_in() const noexcept { return p_.d_in; }
  index_t d_out() const noexcept { return p_.d_out; }
  index_t modalities() const noexcept { return p_.modalities(); }
  /// Whether modality m has a low-rank correction, and its rank (0 when none).
  bool has_lowrank(index_t m) const noexcept { return rank(m) > 0; }
  index_t rank(index_t m) const noexcept {
    return m >= 0 && m < static_cast<index_t>(lowrank_.size())
               ? lowrank_[static_cast<std::size_t>(m)].rank
               : 0;
  }
  /// The packed INT8/INT4 weight (empty for activation_bits >= 16).
  const packed_weights& packed() const noexcept { return packed_; }
  /// Bytes of the packed low-rank factors of all modalities (the memory CMC adds).
  std::size_t lowrank_bytes() const noexcept;
  /// Bytes of workspace that any forward of up to `max_tokens` tokens needs (any ids, any split
  /// among the modalities), with these options and output element type (a bf16 output and
  /// accumulation add M x d_out floats): what linear_workspace(buffer, bytes) must hold (up to
  /// 63 bytes of it may go to aligning the buffer) and what linear_workspace::reserve() sets
  /// aside. Throws errc::invalid_argument for a negative count, errc::not_supported when opt.isa
  /// is not available.
  std::size_t workspace_bytes(index_t max_tokens) const {
    return workspace_bytes(max_tokens, forward_options{}, element_type::float32);
  }
  MASQUANT_BUILD_TAG std::size_t workspace_bytes(index_t max_tokens, const forward_options& opt,
                                                 element_type output = element_type::float32) const;

  /// Whether forward with these options computes the low-rank branch with bf16 dot products
  /// (errc::not_supported when opt.isa is not available).
  MASQUANT_BUILD_TAG bool lowrank_uses_bf16(const forward_options& opt = {}) const {
    return uses_bf16(
        detail::MASQUANT_BUILD::resolve("quantized_linear::lowrank_uses_bf16", opt.isa), opt);
  }

  /// Prefill: y [M, d_out] from x [M, d_in] and the modality of every token, ids [M] (or empty:
  /// every token is of the reference modality). Tokens of the reference modality, and of
  /// modalities without factors, take no low-rank work.
  ///
  /// x is a matrix_view of float, bfloat16 or half (linear_input): bf16 and fp16 rows are widened
  /// to float inside the token pass, and the result is the float path's on the widened values,
  /// bit for bit. y is a matrix_view of float or bfloat16 (linear_output): bf16 outputs are the
  /// float outputs rounded once to nearest even (computed in the workspace, M x d_out floats).
  ///
  /// Throws errc::shape_mismatch naming the operands whose extents disagree, errc::out_of_range
  /// naming the first token whose id is not a modality of this layer (a modality absent from
  /// calibration), errc::non_finite naming the row with a NaN/Inf x / s, errc::not_supported for
  /// an unavailable opt.isa: these checks happen before y is written. No NaN or Inf leaves: when
  /// finite inputs and parameters overflow float all the same (a huge wscale, L or R, or huge
  /// activations), errc::overflow names the first such output, its token's modality and the
  /// term that overflows (or the output beyond bfloat16's range, for a bf16 y), and y is left
  /// unspecified. Allocates only when a workspace must grow (the first calls).
  MASQUANT_BUILD_TAG void forward(linear_input x, vector_view<const modality_id> ids,
                                  linear_output y, const forward_options& opt = {}) const;

  /// Decode (and any call without modality information): every token takes the reference
  /// path — the same result as all ids 0, with no low-rank work at all.
  MASQUANT_BUILD_TAG void forward(linear_input x, linear_output y,
                                  const forward_options& opt = {}) const {
    forward(x, vector_view<const modality_id>(), y, opt);
  }

  /// The same math in float64, for validation: activations fake-quantized by
  /// masquant::reference (float semantics: x / s and Δ in float) and then exact in double;
  /// Ŵ = qweight·wscale, L and R as stored (bf16-rounded under lowrank_storage::bfloat16), all
  /// products and sums in double. Errors as forward (non-finite rows are reported by the quant
  /// reference, naming the row).
  void reference_forward(matrix_view<const float> x, vector_view<const modality_id> ids,
                         matrix_view<double> y) const;

 private:
  struct lowrank_pack {
    index_t rank = 0;
    detail::gemm::panels<std::uint16_t> l16, r16;
    detail::gemm::panels<float> l32, r32;
  };

  friend class linear_workspace;
  friend struct detail::packed_image_codec;

  quantized_linear() = default;  // for adopt_packed_image, which fills in every member

  // Byte offsets of a call's buffers in the workspace block (each on a cache line).
  struct scratch_layout {
    std::size_t q = 0, scale = 0, sum = 0, xs = 0, gf = 0, gb = 0, t = 0, tb = 0, staged = 0,
                pos = 0, rows = 0, total = 0;
  };

  static constexpr index_t token_block = 32;  // tokens per task of the token pass
  static constexpr index_t row_block = 48;    // rows per task of the float products
  static constexpr index_t panel_block = 32;  // panels (512 columns) per task of t·R and A16

  static linear_workspace& thread_workspace() {
    thread_local linear_workspace ws;
    return ws;
  }

  // Runs task(0..count) on `parallel` (serially without one). The std::function wraps a
  // reference to the task, which never allocates, whatever the task captures.
  template <class Task>
  static void run(const parallel_for_fn& parallel, index_t count, const Task& task) {
    if (parallel && count > 1) {
      parallel(count, std::function<void(index_t)>(std::cref(task)));
    } else {
      for (index_t i = 0; i < count; ++i) task(i);
    }
  }

  // Runs row_ok(r) for every row, row_block rows per task on `parallel`; returns the first row
  // where it was false (rows when none), whatever the thread count. A task stops at its first
  // such row.
  template <class RowOk>
  static index_t first_bad_row(const parallel_for_fn& parallel, index_t rows, const RowOk& row_ok) {
    std::atomic<index_t> first{rows};
    run(parallel, (rows + row_block - 1) / row_block, [&](index_t b) {
      for (index_t r = b * row_block; r < std::min(rows, (b + 1) * row_block); ++r) {
        if (row_ok(r)) continue;
        index_t seen = first.load();
        while (r < seen && !first.compare_exchange_weak(seen, r)) {
        }
        return;
      }
    });
    return first.load();
  }

  void check_call(const char* op, index_t x_rows, index_t x_cols,
                  vector_view<const modality_id> ids, index_t y_rows, index_t y_cols) const;
  // Tagged like forward(): their loops vectorise with the translation unit's flags.
  MASQUANT_BUILD_TAG void check_output(const linear_input& x, vector_view<const modality_id> ids,
                                       matrix_view<const float> y,
                                       const parallel_for_fn& parallel) const;
  MASQUANT_BUILD_TAG void store_output(matrix_view<const float> out, const linear_output& y,
                                       bool accumulate, const parallel_for_fn& parallel) const;
  [[noreturn]] void raise_overflow(const linear_input& x, vector_view<const modality_id> ids,
                                   index_t row, index_t col, float value) const;
  scratch_layout layout(index_t m_rows, index_t lowrank_rows, index_t t_size, index_t tb_size,
                        bool dot, bool staged) const noexcept;
  // Tasks of the low-rank branch for at most `rows` routed tokens (their capacity, for reserve).
  std::size_t lowrank_tasks(index_t rows) const noexcept;
  void count_routes(vector_view<const modality_id> ids, linear_workspace& ws) const;
  void route(vector_view<const modality_id> ids, linear_workspace& ws) const;
  bool uses_bf16(isa_family family, const forward_options& opt) const noexcept {
    return detail::MASQUANT_BUILD::bf16_dot_runs(family) &&
           options_.storage == lowrank_storage::bfloat16 &&
           opt.lowrank == lowrank_compute::automatic;
  }
  MASQUANT_BUILD_TAG void lowrank_branch(linear_workspace& ws, matrix_view<float> y, bool dot,
                                         isa_family family, const parallel_for_fn& parallel) const;
  MASQUANT_BUILD_TAG void a16_product(linear_workspace& ws, matrix_view<float> y, isa_family family,
                                      const parallel_for_fn& parallel) const;

  // The parameters without qweight and lowrank (their packed forms below are what runs).
  quantized_linear_params p_;
  linear_options options_;
  packed_weights packed_;
  detail::gemm::panels<std::uint16_t> a16_weight_;  // levels [d_in, d_out], exact in bf16
  std::vector<float> a16_scale_, a16_bias_;         // padded to whole panels
  std::vector<lowrank_pack> lowrank_;               // [modalities]
};

// --- implementation -------------------------------------------------------------------------

inline quantized_linear::quantized_linear(quantized_linear_params params,
                                          const linear_options& options,
                                          const parallel_for_fn& parallel)
    : p_(std::move(params)), options_(options) {
  using namespace detail::gemm;
  p_.validate();
  const index_t k = p_.d_in, n = p_.d_out;
  if (p_.activation_bits < 16) {
    packed_ = packed_weights::pack(matrix_view<const std::int8_t>(p_.qweight.data(), n, k),
                                   vector_view<const float>(p_.wscale), p_.weight_bits <= 4 ? 4 : 8,
                                   parallel);
  } else {
    // |level| <= 127 has at most 7 significant bits: exact in bf16; wscale goes to the epilogue.
    a16_weight_ = pack_bf16(
        k, n,
        [&](index_t i, index_t c) {
          return static_cast<float>(p_.qweight[static_cast<std::size_t>(c * k + i)]);
        },
        parallel);
    a16_scale_.assign(static_cast<std::size_t>(round_up(n, panel_cols)), 0.0f);
    std::copy(p_.wscale.begin(), p_.wscale.end(), a16_scale_.begin());
    if (!p_.bias.empty()) {
      a16_bias_.assign(a16_scale_.size(), 0.0f);
      std::copy(p_.bias.begin(), p_.bias.end(), a16_bias_.begin());
    }
  }
  lowrank_.resize(static_cast<std::size_t>(p_.modalities()));
  for (index_t m = 1; m < p_.modalities(); ++m) {
    if (!p_.has_lowrank(m)) continue;
    const auto& f = p_.lowrank[static_cast<std::size_t>(m)];
    auto& pk = lowrank_[static_cast<std::size_t>(m)];
    pk.rank = f.rank();
    const auto l = [&f](index_t i, index_t c) { return f.L(i, c); };
    const auto r = [&f](index_t i, index_t c) { return f.R(i, c); };
    if (options_.storage == lowrank_storage::bfloat16) {
      pk.l16 = pack_bf16(k, pk.rank, l, parallel);
      pk.r16 = pack_bf16(pk.rank, n, r, parallel);
    } else {
      pk.l32 = pack_f32(k, pk.rank, l, parallel);
      pk.r32 = pack_f32(pk.rank, n, r, parallel);
    }
  }
  // What runs is packed: the levels and factors as given would only double the memory.
  std::vector<std::int8_t>().swap(p_.qweight);
  std::vector<lowrank_factors>().swap(p_.lowrank);
}

inline std::int8_t quantized_linear::weight_level(index_t n, index_t k) const {
  MASQUANT_CHECK(n >= 0 && n < p_.d_out && k >= 0 && k < p_.d_in, errc::out_of_range,
                 "quantized_linear::weight_level: (", n, ", ", k, ") outside ", p_.d_out, "x",
                 p_.d_in);
  if (p_.activation_bits < 16) return packed_.value(n, k);
  return static_cast<std::int8_t>(detail::gemm::panel_value(a16_weight_, k, n));
}

inline quantized_linear_params quantized_linear::params() const {
  quantized_linear_params out = p_;
  const index_t k = p_.d_in, n = p_.d_out;
  out.qweight.resize(static_cast<std::size_t>(n * k));
  if (p_.activation_bits < 16) {
    packed_.unpack(matrix_view<std::int8_t>(out.qweight.data(), n, k));
  } else {
    for (index_t o = 0; o < n; ++o)
      for (index_t i = 0; i < k; ++i)
        out.qweight[static_cast<std::size_t>(o * k + i)] = weight_level(o, i);
  }
  const auto mods = static_cast<std::size_t>(p_.modalities());
  for (std::size_t m = 1; m < mods; ++m) {
    if (lowrank_[m].rank == 0) continue;
    out.lowrank.resize(mods);
    out.lowrank[m] = lowrank(static_cast<index_t>(m));
  }
  return out;
}

inline lowrank_factors quantized_linear::lowrank(index_t m) const {
  lowrank_factors out;
  if (!has_lowrank(m)) return out;
  const lowrank_pack& f = lowrank_[static_cast<std::size_t>(m)];
  const index_t k = p_.d_in, n = p_.d_out;
  out.L.resize(k, f.rank);
  out.R.resize(f.rank, n);
  const bool bf16 = options_.storage == lowrank_storage::bfloat16;
  for (index_t i = 0; i < k; ++i)
    for (index_t c = 0; c < f.rank; ++c)
      out.L(i, c) =
          bf16 ? detail::gemm::panel_value(f.l16, i, c) : detail::gemm::panel_value(f.l32, i, c);
  for (index_t i = 0; i < f.rank; ++i)
    for (index_t c = 0; c < n; ++c)
      out.R(i, c) =
          bf16 ? detail::gemm::panel_value(f.r16, i, c) : detail::gemm::panel_value(f.r32, i, c);
  return out;
}

inline std::size_t quantized_linear::resident_bytes() const noexcept {
  std::size_t bytes =
      sizeof(*this) + packed_.resident_bytes() + lowrank_bytes() + a16_weight_.data.size() * 2 +
      (a16_scale_.capacity() + a16_bias_.capacity() + p_.wscale.capacity() + p_.bias.capacity()) *
          sizeof(float) +
      lowrank_.capacity() * sizeof(lowrank_pack);
  for (const auto& s : p_.smooth)
    bytes += s.capacity() * sizeof(float) + sizeof(std::vector<float>);
  for (const auto& name : p_.modality_names) bytes += name.capacity() + sizeof(std::string);
  return bytes;
}

inline std::size_t quantized_linear::lowrank_bytes() const noexcept {
  std::size_t bytes = 0;
  for (const auto& f : lowrank_) {
    bytes +=
        (f.l16.data.size() + f.r16.data.size()) * 2 + (f.l32.data.size() + f.r32.data.size()) * 4;
  }
  return bytes;
}

inline void quantized_linear::check_call(const char* op, index_t x_rows, index_t x_cols,
                                         vector_view<const modality_id> ids, index_t y_rows,
                                         index_t y_cols) const {
  MASQUANT_CHECK(x_cols == p_.d_in, errc::shape_mismatch, op, ": x is ", x_rows, "x", x_cols,
                 " but the layer has d_in = ", p_.d_in);
  MASQUANT_CHECK(y_rows == x_rows && y_cols == p_.d_out, errc::shape_mismatch, op, ": y is ",
                 y_rows, "x", y_cols, ", expected ", x_rows, "x", p_.d_out,
                 " (tokens of x by d_out)");
  MASQUANT_CHECK(ids.empty() || ids.size() == x_rows, errc::shape_mismatch, op, ": ids has ",
                 ids.size(), " entries for ", x_rows, " tokens of x");
  const index_t mods = p_.modalities();
  for (index_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < mods) continue;
    std::string known;
    for (index_t m = 0; m < mods; ++m) known += (m ? ", " : "") + p_.modality_name(m);
    raise(errc::out_of_range,
          detail::cat(op, ": token ", i, " has modality id ", int{ids[i]},
                      " but the layer was calibrated for ", mods, " modalities (", known, ")"));
  }
}

inline quantized_linear::scratch_layout quantized_linear::layout(index_t m_rows,
                                                                 index_t lowrank_rows,
                                                                 index_t t_size, index_t tb_size,
                                                                 bool dot,
                                                                 bool staged) const noexcept {
  using detail::gemm::panel_cols;
  std::size_t end = 0;
  const auto take = [&end](index_t count, std::size_t size) {
    const std::size_t start = end;
    constexpr std::size_t line = linear_workspace::alignment;
    end += (static_cast<std::size_t>(count) * size + line - 1) / line * line;
    return start;
  };
  scratch_layout l;
  const index_t k = p_.d_in;
  if (p_.activation_bits >= 16) {
    l.xs = take(m_rows * detail::round_up(k, panel_cols), sizeof(float));
  } else {
    l.q = take(m_rows * k, 1);
    l.scale = take(m_rows, sizeof(float));
    l.sum = take(m_rows, sizeof(std::int32_t));
  }
  if (lowrank_rows > 0) {
    l.pos = take(m_rows, sizeof(index_t));
    l.rows = take(lowrank_rows, sizeof(index_t));
    if (dot) {
      l.gb = take(lowrank_rows * detail::round_up(k, index_t{32}), 2);
      l.tb = take(tb_size, 2);
    } else {
      l.gf = take(lowrank_rows * detail::round_up(k, panel_cols), sizeof(float));
    }
    l.t = take(t_size, sizeof(float));
  }
  if (staged) l.staged = take(m_rows * p_.d_out, sizeof(float));
  l.total = end;
  return l;
}

inline std::size_t quantized_linear::workspace_bytes(index_t max_tokens, const forward_options& opt,
                                                     element_type output) const {
  using detail::gemm::panel_cols;
  MASQUANT_CHECK(max_tokens >= 0, errc::invalid_argument,
                 "quantized_linear::workspace_bytes: negative token count ", max_tokens);
  const isa_family family =
      detail::MASQUANT_BUILD::resolve("quantized_linear::workspace_bytes", opt.isa);
  index_t max_rank = 0;
  for (const auto& f : lowrank_) max_rank = std::max(max_rank, f.rank);
  // The most any split of the tokens needs: all of them in the modality of the largest rank.
  const index_t lr = opt.skip_lowrank || max_rank == 0 ? 0 : max_tokens;
  const scratch_layout l =
      layout(max_tokens, lr, lr * detail::round_up(max_rank, panel_cols),
             lr * detail::round_up(max_rank, index_t{32}), uses_bf16(family, opt),
             output != element_type::float32 || opt.accumulate);
  return l.total + linear_workspace::alignment - 1;
}

inline std::size_t quantized_linear::lowrank_tasks(index_t rows) const noexcept {
  const index_t panels = (p_.d_out + detail::gemm::panel_cols - 1) / detail::gemm::panel_cols;
  return static_cast<std::size_t>((rows / row_block + p_.modalities()) *
                                  ((panels + panel_block - 1) / panel_block));
}

inline void linear_workspace::reserve(const quantized_linear& layer, index_t max_tokens) {
  reserve(layer, max_tokens, forward_options{}, element_type::float32);
}

inline void linear_workspace::reserve(const quantized_linear& layer, index_t max_tokens,
                                      const forward_options& opt, element_type output) {
  constexpr const char* op = "linear_workspace::reserve";
  // The block itself (an owned one is allocated and touched now: no page faults later).
  block(layer.workspace_bytes(max_tokens, opt, output) - (alignment - 1), op);
  const auto mods = static_cast<std::size_t>(layer.modalities());
  for (auto* v : {&count_, &first_, &fill_, &t_off_, &tb_off_}) v->reserve(mods);
  gf_ptr_.reserve(mods);
  gb_ptr_.reserve(mods);
  tasks_.reserve(layer.lowrank_tasks(max_tokens));
}

inline void quantized_linear::count_routes(vector_view<const modality_id> ids,
                                           linear_workspace& ws) const {
  const auto mods = static_cast<std::size_t>(p_.modalities());
  ws.count_.assign(mods, 0);
  ws.lowrank_rows_ = 0;
  if (ids.empty()) return;
  for (index_t i = 0; i < ids.size(); ++i) {
    if (lowrank_[ids[i]].rank > 0) ++ws.count_[ids[i]];
  }
  for (std::size_t m = 0; m < mods; ++m) ws.lowrank_rows_ += ws.count_[m];
  if (ws.lowrank_rows_ == 0) return;
  ws.first_.assign(mods, 0);
  for (std::size_t m = 1; m < mods; ++m) ws.first_[m] = ws.first_[m - 1] + ws.count_[m - 1];
}

inline void quantized_linear::route(vector_view<const modality_id> ids,
                                    linear_workspace& ws) const {
  const auto mods = static_cast<std::size_t>(p_.modalities());
  std::vector<index_t>& fill = ws.fill_;
  fill.assign(mods, 0);
  for (index_t i = 0; i < ids.size(); ++i) {
    const modality_id m = ids[i];
    if (lowrank_[m].rank == 0) {
      ws.pos_[static_cast<std::size_t>(i)] = -1;
      continue;
    }
    const index_t g = fill[m]++;
    ws.pos_[static_cast<std::size_t>(i)] = g;
    ws.rows_[static_cast<std::size_t>(ws.first_[m] + g)] = i;
  }
}

inline void quantized_linear::forward(linear_input x, vector_view<const modality_id> ids,
                                      linear_output y, const forward_options& opt) const {
  using namespace detail::gemm;
  constexpr const char* op = "quantized_linear::forward";
  check_call(op, x.rows(), x.cols(), ids, y.rows(), y.cols());
  const isa_family family = detail::MASQUANT_BUILD::resolve(op, opt.isa);
  linear_workspace& ws = opt.workspace != nullptr ? *opt.workspace : thread_workspace();
  ws.has_activations_ = false;
  ws.isa_ = family;
  const vector_view<const modality_id> routed =
      opt.skip_lowrank ? vector_view<const modality_id>() : ids;
  count_routes(routed, ws);
  const index_t m_rows = x.rows(), k = p_.d_in;
  if (m_rows == 0) return;
  const bool a16 = p_.activation_bits >= 16;
  const bool dot = uses_bf16(family, opt);
  // The float result: y itself, or the workspace for bf16 outputs and accumulation (added and
  // rounded once at the end).
  const bool staged = y.type() != element_type::float32 || opt.accumulate;

  // The workspace block: every buffer of this call, laid out before anything is written.
  const auto mods = static_cast<std::size_t>(p_.modalities());
  index_t t_size = 0, tb_size = 0;
  if (ws.lowrank_rows_ > 0) {
    ws.t_off_.assign(mods, 0);
    ws.tb_off_.assign(mods, 0);
    for (std::size_t m = 0; m < mods; ++m) {
      ws.t_off_[m] = t_size;
      ws.tb_off_[m] = tb_size;
      t_size += ws.count_[m] * round_up(lowrank_[m].rank, panel_cols);
      tb_size += ws.count_[m] * round_up(lowrank_[m].rank, 32);
    }
  }
  const scratch_layout at = layout(m_rows, ws.lowrank_rows_, t_size, tb_size, dot, staged);
  unsigned char* base = ws.block(at.total, op);
  // NOLINTBEGIN(cppcoreguidelines-pro-type-reinterpret-cast): typed regions of the raw block
  ws.q_ = reinterpret_cast<std::int8_t*>(base + at.q);
  ws.scale_ = reinterpret_cast<float*>(base + at.scale);
  ws.sum_ = reinterpret_cast<std::int32_t*>(base + at.sum);
  ws.xs_ = reinterpret_cast<float*>(base + at.xs);
  ws.gathered_f_ = reinterpret_cast<float*>(base + at.gf);
  ws.gathered_b_ = reinterpret_cast<std::uint16_t*>(base + at.gb);
  ws.t_ = reinterpret_cast<float*>(base + at.t);
  ws.tb_ = reinterpret_cast<std::uint16_t*>(base + at.tb);
  ws.staged_ = reinterpret_cast<float*>(base + at.staged);
  ws.pos_ = reinterpret_cast<index_t*>(base + at.pos);
  ws.rows_ = reinterpret_cast<index_t*>(base + at.rows);
  // NOLINTEND(cppcoreguidelines-pro-type-reinterpret-cast)
  if (ws.lowrank_rows_ > 0) route(routed, ws);

  matrix_view<float> out;
  if (staged) {
    out = matrix_view<float>(ws.staged_, m_rows, p_.d_out);
  } else {
    out = matrix_view<float>(static_cast<float*>(y.data()), y.rows(), y.cols(), y.stride());
  }

  detail::layer::token_pass_args ta;
  ta.x = x;
  ta.ids = ids.empty() ? nullptr : ids.data();
  ta.smooth = &p_.smooth;
  if (a16) {
    ta.bits = 0;
    ta.ldxs = round_up(k, panel_cols);
    ta.xs = ws.xs_;
  } else {
    ta.bits = p_.activation_bits;
    ws.qa_rows_ = m_rows;
    ws.qa_cols_ = k;
    ta.q = ws.q_;
    ta.scale = ws.scale_;
    ta.sum = ws.sum_;
  }
  if (ws.lowrank_rows_ > 0) {
    // Gathered smoothed rows of every modality with factors, one block per modality.
    ws.gf_ptr_.assign(mods, nullptr);
    ws.gb_ptr_.assign(mods, nullptr);
    ta.pos = ws.pos_;
    if (dot) {
      ta.ldb = round_up(k, 32);
      for (std::size_t m = 0; m < mods; ++m) ws.gb_ptr_[m] = ws.gathered_b_ + ws.first_[m] * ta.ldb;
      ta.gathered_b = ws.gb_ptr_.data();
    } else {
      ta.ldf = round_up(k, panel_cols);
      for (std::size_t m = 0; m < mods; ++m) ws.gf_ptr_[m] = ws.gathered_f_ + ws.first_[m] * ta.ldf;
      ta.gathered_f = ws.gf_ptr_.data();
    }
  }

  run(opt.parallel, (m_rows + token_block - 1) / token_block, [&](index_t t) {
    detail::MASQUANT_BUILD::on_family<hot_path::token_pass>(family, [&](auto f) {
      run_token_pass(f, ta, t * token_block, std::min(m_rows, (t + 1) * token_block));
    });
  });

  if (a16) {
    a16_product(ws, out, family, opt.parallel);
  } else {
    gemm_options g;
    g.bias = vector_view<const float>(p_.bias);
    g.parallel = opt.parallel;
    g.isa = family;
    int8_gemm(ws.activations_of_call(), packed_, out, g);
    ws.has_activations_ = true;
  }
  if (ws.lowrank_rows_ > 0) lowrank_branch(ws, out, dot, family, opt.parallel);
  check_output(x, ids, out, opt.parallel);
  if (staged) store_output(out, y, opt.accumulate, opt.parallel);
}

inline void quantized_linear::check_output(const linear_input& x,
                                           vector_view<const modality_id> ids,
                                           matrix_view<const float> y,
                                           const parallel_for_fn& parallel) const {
  // A float is NaN or Inf when its exponent bits are all set: min over the row of
  // (bits & exp) ^ exp is 0 exactly then (an integer reduction, which vectorises).
  constexpr std::uint32_t exponent = 0x7f800000u;
  const index_t rows = y.rows(), cols = y.cols();
  const index_t r = first_bad_row(parallel, rows, [&](index_t row_index) {
    const float* row = y.row_data(row_index);
    std::uint32_t least = exponent;
    for (index_t c = 0; c < cols; ++c) {
      std::uint32_t bits;
      std::memcpy(&bits, row + c, sizeof bits);
      least = std::min(least, (bits & exponent) ^ exponent);
    }
    return least != 0;
  });
  if (r == rows) return;
  const float* row = y.row_data(r);
  for (index_t c = 0; c < cols; ++c)
    if (!std::isfinite(row[c])) raise_overflow(x, ids, r, c, row[c]);
}

inline void quantized_linear::store_output(matrix_view<const float> out, const linear_output& y,
                                           bool accumulate, const parallel_for_fn& parallel) const {
  // y (+)= out in float, rounded to nearest even on the bits for a bf16 y (out is finite). A sum
  // or a rounded value whose exponent is all ones is not finite: that element keeps y's old
  // value, and the first such row is reported.
  constexpr std::uint32_t exponent = 0x7f800000u;
  const bool bf16 = y.type() == element_type::bfloat16;
  const index_t rows = out.rows(), cols = out.cols();
  const index_t r = first_bad_row(parallel, rows, [&](index_t row) {
    const float* src = out.row_data(row);
    std::uint32_t least = exponent;
    if (bf16) {
      std::uint16_t* dst = static_cast<std::uint16_t*>(y.data()) + row * y.stride();
      for (index_t c = 0; c < cols; ++c) {
        float v = src[c];
        if (accumulate) v += detail::gemm::from_bf16(dst[c]);
        std::uint32_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        const std::uint32_t h = detail::gemm::to_bf16(v);
        const std::uint32_t bad =
            std::min((bits & exponent) ^ exponent, ((h << 16) & exponent) ^ exponent);
        dst[c] = bad != 0 ? static_cast<std::uint16_t>(h) : dst[c];
        least = std::min(least, bad);
      }
    } else {
      float* dst = static_cast<float*>(y.data()) + row * y.stride();
      for (index_t c = 0; c < cols; ++c) {
        const float v = dst[c] + src[c];
        std::uint32_t bits;
        std::memcpy(&bits, &v, sizeof bits);
        const std::uint32_t bad = (bits & exponent) ^ exponent;
        dst[c] = bad != 0 ? v : dst[c];
        least = std::min(least, bad);
      }
    }
    return least != 0;
  });
  if (r == rows) return;
  // The first bad column of row r: the element that kept y's old value.
  const auto old_value = [&](index_t c) {
    return bf16 ? static_cast<float>(static_cast<const bfloat16*>(y.data())[r * y.stride() + c])
                : static_cast<const float*>(y.data())[r * y.stride() + c];
  };
  for (index_t c = 0; c < cols; ++c) {
    const float old = accumulate ? old_value(c) : 0.0f;
    const float v = out(r, c) + old;
    const bool fits =
        bf16 ? std::isfinite(static_cast<float>(static_cast<bfloat16>(v))) : std::isfinite(v);
    if (fits) continue;
    const std::string where =
        detail::cat("quantized_linear::forward: output (row ", r, ", column ", c, ") ");
    MASQUANT_CHECK(std::isfinite(old), errc::non_finite, where, "accumulates into y = ", old);
    if (accumulate) {
      raise(errc::overflow,
            detail::cat(where, "is ", out(r, c), " and y holds ", old, ": their sum is beyond ",
                        bf16 ? "bfloat16" : "float", "'s range"));
    }
    raise(errc::overflow, detail::cat(where, "is ", out(r, c),
                                      ", beyond bfloat16's range (largest finite 3.3895314e+38)"));
  }
}

inline void quantized_linear::raise_overflow(const linear_input& x,
                                             vector_view<const modality_id> ids, index_t row,
                                             index_t col, float value) const {
  // Which term overflows, bounded for this output in double: the main product by
  // Σ|q|·|x ⊘ s|·wscale (the activation quantizer keeps |Q(v)| <= |v| up to rounding), the
  // low-rank correction by Σ|x ⊘ s|·|L| (each entry of (x ⊘ s)·L) and then Σ(...)·|R|. A float
  // computation that overflows has a partial sum beyond float's range, so one of the bounds is.
  constexpr double float_max = static_cast<double>(std::numeric_limits<float>::max());
  const index_t m = ids.empty() ? 0 : ids[row], k = p_.d_in;
  std::vector<float> x_row(static_cast<std::size_t>(k));
  x.row_to_float(row, x_row.data());
  const float* xr = x_row.data();
  const std::vector<float>& s = p_.smooth[static_cast<std::size_t>(m)];
  std::vector<double> xs(static_cast<std::size_t>(k));
  double xs_max = 0, main = 0;
  for (index_t i = 0; i < k; ++i) {
    const auto iu = static_cast<std::size_t>(i);
    xs[iu] = std::abs(static_cast<double>(xr[i] / s[iu]));
    xs_max = std::max(xs_max, xs[iu]);
    main += std::abs(static_cast<double>(weight_level(col, i))) * xs[iu];
  }
  main *= static_cast<double>(p_.wscale[static_cast<std::size_t>(col)]);
  double t_max = 0, correction = 0;
  const lowrank_pack& f = lowrank_[static_cast<std::size_t>(m)];
  const bool bf16 = options_.storage == lowrank_storage::bfloat16;
  for (index_t j = 0; j < f.rank; ++j) {
    double t = 0;
    for (index_t i = 0; i < k; ++i) {
      const float l =
          bf16 ? detail::gemm::panel_value(f.l16, i, j) : detail::gemm::panel_value(f.l32, i, j);
      t += xs[static_cast<std::size_t>(i)] * std::abs(static_cast<double>(l));
    }
    t_max = std::max(t_max, t);
    const float r =
        bf16 ? detail::gemm::panel_value(f.r16, j, col) : detail::gemm::panel_value(f.r32, j, col);
    correction += t * std::abs(static_cast<double>(r));
  }
  const std::string name = p_.modality_name(m);
  std::string cause;
  if (main > float_max) {
    cause = detail::cat("the product with the quantized weight exceeds float's range (wscale[", col,
                        "] = ", p_.wscale[static_cast<std::size_t>(col)], ", |x ⊘ s| up to ",
                        xs_max, ")");
  } else if (t_max > float_max) {
    cause = detail::cat("(x ⊘ s)·L of modality '", name, "' exceeds float's range (lowrank[", m,
                        "].L; |x ⊘ s| up to ", xs_max, ")");
  } else if (correction > float_max) {
    cause = detail::cat("the low-rank correction (x ⊘ s)·L·R of modality '", name,
                        "' exceeds float's range (lowrank[", m, "].L and .R)");
  } else {
    cause =
        detail::cat("the sum of the product (up to ", main, "), the low-rank correction (up to ",
                    correction, ") and the bias exceeds float's range");
  }
  raise(errc::overflow,
        detail::cat("quantized_linear::forward: output (row ", row, ", column ", col,
                    ") of a token of modality '", name, "' is ", value, ": ", cause));
}

inline void quantized_linear::a16_product(linear_workspace& ws, matrix_view<float> y,
                                          isa_family family,
                                          const parallel_for_fn& parallel) const {
  using namespace detail::gemm;
  product_args<float> pa;
  pa.a = ws.xs_;
  pa.lda = round_up(p_.d_in, panel_cols);
  pa.c = y.data();
  pa.ldc = y.stride();
  pa.n = p_.d_out;
  pa.col_scale = a16_scale_.data();
  pa.bias = a16_bias_.empty() ? nullptr : a16_bias_.data();
  const index_t rows = y.rows(), panels = a16_weight_.count;
  const index_t row_tasks = (rows + row_block - 1) / row_block;
  const index_t col_tasks = (panels + panel_block - 1) / panel_block;
  run(parallel, row_tasks * col_tasks, [&](index_t t) {
    const index_t r0 = (t / col_tasks) * row_block, p0 = (t % col_tasks) * panel_block;
    detail::MASQUANT_BUILD::on_family<hot_path::float_gemm>(family, [&](auto f) {
      run_float_gemm(f, pa, a16_weight_, r0, std::min(rows, r0 + row_block), p0,
                     std::min(panels, p0 + panel_block));
    });
  });
}

inline void quantized_linear::lowrank_branch(linear_workspace& ws, matrix_view<float> y, bool dot,
                                             isa_family family,
                                             const parallel_for_fn& parallel) const {
  using namespace detail::gemm;
  // Runs a float product of the chosen family (A float; B f32 or bf16 panels).
  const auto float_product = [family](const auto& pa, const auto& b, index_t r0, index_t r1,
                                      index_t p0, index_t p1) {
    detail::MASQUANT_BUILD::on_family<hot_path::float_gemm>(
        family, [&](auto f) { run_float_gemm(f, pa, b, r0, r1, p0, p1); });
  };
  const auto mods = static_cast<std::size_t>(p_.modalities());
  const bool f32 = options_.storage == lowrank_storage::float32;
  const index_t k = p_.d_in;
  // x̃·L into t (float, rows padded to whole panels), per modality block (forward laid out t_
  // and tb_).

  ws.tasks_.clear();
  for (std::size_t m = 0; m < mods; ++m) {
    for (index_t r0 = 0; r0 < ws.count_[m]; r0 += row_block) {
      ws.tasks_.push_back(
          {static_cast<index_t>(m), r0, std::min(ws.count_[m], r0 + row_block), 0, 0});
    }
  }
  run(parallel, static_cast<index_t>(ws.tasks_.size()), [&](index_t i) {
    const auto& tk = ws.tasks_[static_cast<std::size_t>(i)];
    const lowrank_pack& f = lowrank_[static_cast<std::size_t>(tk.m)];
    const index_t ldt = round_up(f.rank, panel_cols);
    float* t = ws.t_ + ws.t_off_[static_cast<std::size_t>(tk.m)];
    if (dot) {
      product_args<std::uint16_t> pa;
      pa.a = ws.gb_ptr_[static_cast<std::size_t>(tk.m)];
      pa.lda = round_up(k, 32);
      pa.c = t;
      pa.ldc = ldt;
      pa.n = ldt;
      std::uint16_t* tb = ws.tb_ + ws.tb_off_[static_cast<std::size_t>(tk.m)];
      const index_t ldtb = round_up(f.rank, 32);
      detail::MASQUANT_BUILD::on_bf16_family([&](auto bf16) {
        run_float_gemm(bf16, pa, f.l16, tk.r0, tk.r1, 0, f.l16.count);
        for (index_t r = tk.r0; r < tk.r1; ++r)
          run_to_bf16_row(bf16, t + r * ldt, ldt, tb + r * ldtb);
      });
    } else {
      product_args<float> pa;
      pa.a = ws.gf_ptr_[static_cast<std::size_t>(tk.m)];
      pa.lda = round_up(k, panel_cols);
      pa.c = t;
      pa.ldc = ldt;
      pa.n = ldt;
      if (f32) {
        float_product(pa, f.l32, tk.r0, tk.r1, 0, f.l32.count);
      } else {
        float_product(pa, f.l16, tk.r0, tk.r1, 0, f.l16.count);
      }
    }
  });

  // y rows of the modality += t·R, by row blocks and column blocks.
  const index_t panels = (p_.d_out + panel_cols - 1) / panel_cols;
  ws.tasks_.clear();
  for (std::size_t m = 0; m < mods; ++m) {
    for (index_t r0 = 0; r0 < ws.count_[m]; r0 += row_block) {
      for (index_t p0 = 0; p0 < panels; p0 += panel_block) {
        ws.tasks_.push_back({static_cast<index_t>(m), r0, std::min(ws.count_[m], r0 + row_block),
                             p0, std::min(panels, p0 + panel_block)});
      }
    }
  }
  run(parallel, static_cast<index_t>(ws.tasks_.size()), [&](index_t i) {
    const auto& tk = ws.tasks_[static_cast<std::size_t>(i)];
    const auto m = static_cast<std::size_t>(tk.m);
    const lowrank_pack& f = lowrank_[m];
    const index_t* rows = ws.rows_ + ws.first_[m];
    if (dot) {
      product_args<std::uint16_t> pa;
      pa.a = ws.tb_ + ws.tb_off_[m];
      pa.lda = round_up(f.rank, 32);
      pa.c = y.data();
      pa.c_rows = rows;
      pa.ldc = y.stride();
      pa.n = p_.d_out;
      pa.accumulate = true;
      detail::MASQUANT_BUILD::on_bf16_family(
          [&](auto bf16) { run_float_gemm(bf16, pa, f.r16, tk.r0, tk.r1, tk.p0, tk.p1); });
    } else {
      product_args<float> pa;
      pa.a = ws.t_ + ws.t_off_[m];
      pa.lda = round_up(f.rank, panel_cols);
      pa.c = y.data();
      pa.c_rows = rows;
      pa.ldc = y.stride();
      pa.n = p_.d_out;
      pa.accumulate = true;
      if (f32) {
        float_product(pa, f.r32, tk.r0, tk.r1, tk.p0, tk.p1);
      } else {
        float_product(pa, f.r16, tk.r0, tk.r1, tk.p0, tk.p1);
      }
    }
  });
}

inline void quantized_linear::reference_forward(matrix_view<const float> x,
                                                vector_view<const modality_id> ids,
                                                matrix_view<double> y) const {
  constexpr const char* op = "quantized_linear::reference_forward";
  check_call(op, x.rows(), x.cols(), ids, y.rows(), y.cols());
  const index_t m_rows = x.rows(), k = p_.d_in, n = p_.d_out;
  if (m_rows == 0) return;
  const auto id_of = [&](index_t i) -> index_t { return ids.empty() ? 0 : ids[i]; };

  // Activations: fake-quantized x ⊘ s (A16: x ⊘ s), and the smoothed rows x ⊘ s themselves.
  row_matrix<double> a(m_rows, k), xs(m_rows, k);
  std::vector<float> quot(static_cast<std::size_t>(k));
  std::vector<std::int8_t> q(static_cast<std::size_t>(k));
  for (index_t i = 0; i < m_rows; ++i) {
    const float* xr = x.row_data(i);
    const float* s = p_.smooth[static_cast<std::size_t>(id_of(i))].data();
    for (index_t j = 0; j < k; ++j) quot[static_cast<std::size_t>(j)] = xr[j] / s[j];
    if (p_.activation_bits >= 16) {
      for (index_t j = 0; j < k; ++j) {
        if (!std::isfinite(quot[static_cast<std::size_t>(j)]))
          detail::raise_non_finite_row(op, xr, s, k, i);
      }
      for (index_t j = 0; j < k; ++j) a(i, j) = quot[static_cast<std::size_t>(j)];
    } else {
      const float delta =
          reference::quantize_row_symmetric_smoothed(xr, s, k, p_.activation_bits, q.data(), i);
      for (index_t j = 0; j < k; ++j)
        a(i, j) = static_cast<double>(q[static_cast<std::size_t>(j)]) * static_cast<double>(delta);
    }
    for (index_t j = 0; j < k; ++j) xs(i, j) = quot[static_cast<std::size_t>(j)];
  }

  // Main product in column blocks of Ŵ (bounded memory for large layers).
  row_matrix<double> out(m_rows, n);
  constexpr index_t block = 256;
  for (index_t n0 = 0; n0 < n; n0 += block) {
    const index_t nc = std::min(block, n - n0);
    row_matrix<double> w(nc, k);
    for (index_t r = 0; r < nc; ++r) {
      const double scale = p_.wscale[static_cast<std::size_t>(n0 + r)];
      for (index_t j = 0; j < k; ++j)
        w(r, j) = static_cast<double>(weight_level(n0 + r, j)) * scale;
    }
    out.middleCols(n0, nc).noalias() = a * w.transpose();
  }
  if (!p_.bias.empty()) {
    for (index_t i = 0; i < m_rows; ++i)
      for (index_t c = 0; c < n; ++c) out(i, c) += p_.bias[static_cast<std::size_t>(c)];
  }

  // Low-rank corrections, with the factors as stored.
  for (index_t m = 1; m < p_.modalities(); ++m) {
    if (!has_lowrank(m)) continue;
    std::vector<index_t> rows;
    for (index_t i = 0; i < m_rows; ++i)
      if (id_of(i) == m) rows.push_back(i);
    if (rows.empty()) continue;
    const lowrank_factors stored = lowrank(m);
    const row_matrix<double> l = stored.L.cast<double>(), r = stored.R.cast<double>();
    row_matrix<double> xm(static_cast<index_t>(rows.size()), k);
    for (std::size_t g = 0; g < rows.size(); ++g) xm.row(static_cast<index_t>(g)) = xs.row(rows[g]);
    const row_matrix<double> corr = (xm * l) * r;
    for (std::size_t g = 0; g < rows.size(); ++g)
      out.row(rows[g]) += corr.row(static_cast<index_t>(g));
  }
  as_eigen(y) = out;
}

}  // namespace masquant
