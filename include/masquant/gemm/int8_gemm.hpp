// int8_gemm.hpp: C = (int8 activations with per-row scales) x (packed int8/int4 weights with
// per-channel scales), int32 accumulation, fused float epilogue (scales, bias, accumulate).
#pragma once

#include <cmath>
#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <masquant/gemm/detail/int8_families.hpp>
#include <masquant/gemm/packed_weights.hpp>
#include <masquant/gemm/quantized_activations.hpp>
#include <masquant/isa.hpp>
#include <masquant/parallel.hpp>
#include <masquant/tensor/view.hpp>
#include <string>

namespace masquant {

/// Options of int8_gemm.
struct gemm_options {
  /// Per-output-channel bias [N] added to every row, or empty for none.
  vector_view<const float> bias;
  /// C += result instead of C = result.
  bool accumulate = false;
  /// Runs the output tiles; empty: serial on the calling thread. Results are bitwise identical
  /// for any thread count (tiles partition the output, K is never split across tasks).
  parallel_for_fn parallel;
  /// Instruction-set family; `automatic` picks best_isa() (isa.hpp). Forcing one that is not
  /// available (isa_available()) is errc::not_supported.
  isa_family isa = isa_family::automatic;
};

/// Outcome of can_implement(): ok(), or the error code and message int8_gemm would throw.
struct gemm_status {
  errc code = errc::invalid_argument;
  std::string message;  ///< empty when ok
  bool ok() const noexcept { return message.empty(); }
  explicit operator bool() const noexcept { return ok(); }
};

/// Whether int8_gemm supports an M x K by K x N product (CUTLASS-style query; runs nothing):
/// extents must be >= 0 and K <= int8_gemm_max_k.
inline gemm_status can_implement(index_t m, index_t k, index_t n) {
  if (m < 0 || k < 0 || n < 0) {
    return {errc::invalid_argument,
            detail::cat("int8_gemm: negative extent M = ", m, ", K = ", k, ", N = ", n)};
  }
  if (k > int8_gemm_max_k) {
    return {errc::overflow, detail::cat("int8_gemm: K = ", k, " exceeds int8_gemm_max_k = ",
                                        int8_gemm_max_k, " (int32 accumulation could overflow)")};
  }
  return {};
}

namespace detail::gemm {

// Checks what every entry shares and fills the A and B parts of the problem.
inline problem prepare(const char* op, const quantized_activations_view& a, const packed_weights& b,
                       index_t c_rows, index_t c_cols) {
  const index_t m = a.values.rows(), k = a.values.cols(), n = b.rows();
  if (gemm_status s = can_implement(m, k, n); !s) raise(s.code, s.message);
  MASQUANT_CHECK(k == b.cols(), errc::shape_mismatch, op, ": activations are ", m, "x", k,
                 " but the weights are ", n, "x", b.cols(), " (K differs)");
  MASQUANT_CHECK(c_rows == m && c_cols == n, errc::shape_mismatch, op, ": output is ", c_rows, "x",
                 c_cols, ", expected ", m, "x", n, " (activation rows x weight rows)");
  MASQUANT_CHECK(a.row_sums.empty() || a.row_sums.size() == m, errc::shape_mismatch, op,
                 ": row_sums has ", a.row_sums.size(), " entries for ", m, " activation rows");
  problem p;
  p.a = a.values.data();
  p.lda = a.values.stride();
  p.row_sums = a.row_sums.empty() ? nullptr : a.row_sums.data();
  p.m = m;
  p.n = n;
  p.k = k;
  p.b = b.data();
  p.block_bytes = b.block_bytes();
  p.blocks = b.blocks();
  p.zero_point = b.zero_point();
  p.int4 = b.bits() == 4;
  p.b_scale = b.padded_scales();
  return p;
}

}  // namespace detail::gemm

namespace detail::MASQUANT_BUILD {

/// Runs the validated problem with the kernels of family `isa` (concrete, available).
inline void run_int8_gemm(const gemm::problem& p, isa_family isa, const parallel_for_fn& parallel) {
  on_family<hot_path::int8_gemm>(isa, [&](auto family) { run_int8_gemm(family, p, parallel); });
}

}  // namespace detail::MASQUANT_BUILD

/// C = diag(a.scales) * (a.values x B^T) * diag(B.scales) (+ bias) (+ C when accumulate):
/// the lower-level entry for producers that write quantized activations directly (see
/// quantized_activations).
///
/// Shapes: a.values [M, K], a.scales [M], a.row_sums [M] or empty, b [N, K], c [M, N], bias [N]
/// or empty. The int32 products are exact (K <= int8_gemm_max_k); the epilogue computes
/// float(acc) * (a_scale[m] * b_scale[n]), then adds bias[n], then C, in float.
/// Throws errc::shape_mismatch naming the operands whose extents disagree, errc::non_finite for
/// a NaN/Inf activation scale or bias (naming the row or channel), errc::overflow for K too
/// large, errc::not_supported when opt.isa is not available. Nothing is written on error.
/// Allocates nothing (the thread pool of opt.parallel aside). Outputs of >= 16 MiB whose rows
/// start on 64-byte boundaries are written past the caches (docs/gemm.md, "Blocking and
/// threading").
MASQUANT_BUILD_TAG inline void int8_gemm(const quantized_activations_view& a,
                                         const packed_weights& b, matrix_view<float> c,
                                         const gemm_options& opt = {}) {
  detail::gemm::problem p = detail::gemm::prepare("int8_gemm", a, b, c.rows(), c.cols());
  MASQUANT_CHECK(a.scales.size() == p.m, errc::shape_mismatch, "int8_gemm: activation scales have ",
                 a.scales.size(), " entries for ", p.m, " rows");
  MASQUANT_CHECK(opt.bias.empty() || opt.bias.size() == p.n, errc::shape_mismatch,
                 "int8_gemm: bias has ", opt.bias.size(), " entries for ", p.n, " output channels");
  for (index_t i = 0; i < p.m; ++i) {
    MASQUANT_CHECK(std::isfinite(a.scales[i]), errc::non_finite,
                   "int8_gemm: activation scale of row ", i, " is ", a.scales[i]);
  }
  for (index_t i = 0; i < opt.bias.size(); ++i) {
    MASQUANT_CHECK(std::isfinite(opt.bias[i]), errc::non_finite, "int8_gemm: bias of channel ", i,
                   " is ", opt.bias[i]);
  }
  const isa_family isa = detail::MASQUANT_BUILD::resolve("int8_gemm", opt.isa);
  p.a_scale = a.scales.data();
  p.bias = opt.bias.empty() ? nullptr : opt.bias.data();
  p.accumulate = opt.accumulate;
  p.c = c.data();
  p.ldc = c.stride();
  detail::MASQUANT_BUILD::run_int8_gemm(p, isa, opt.parallel);
}

/// C = diag(a_scale) * (a x B^T) * diag(B.scales) (+ bias) (+ C): int8 activations [M, K] (any
/// row stride) with per-row scales [M]. See the overload above for errors and rounding.
///
/// Example:
/// \code
///   auto packed = masquant::packed_weights::pack(w, w_scale);  // once, [N, K]
///   masquant::thread_pool pool(2);
///   masquant::gemm_options opt;
///   opt.bias = bias;                                            // [N]
///   opt.parallel = pool.as_function();
///   masquant::int8_gemm(a, a_scale, packed, y, opt);            // y: [M, N] float
/// \endcode
MASQUANT_BUILD_TAG inline void int8_gemm(matrix_view<const std::int8_t> a,
                                         vector_view<const float> a_scale, const packed_weights& b,
                                         matrix_view<float> c, const gemm_options& opt = {}) {
  int8_gemm(quantized_activations_view{a, a_scale, {}}, b, c, opt);
}

/// C[m, n] = sum_k a(m, k) * w(n, k) as exact int32 (no scales, no epilogue): for custom
/// epilogues and tests. a.scales is ignored; opt.bias and opt.accumulate must be unset
/// (errc::invalid_argument). Other errors, allocation and large outputs as int8_gemm.
MASQUANT_BUILD_TAG inline void int8_gemm_int32(const quantized_activations_view& a,
                                               const packed_weights& b, matrix_view<std::int32_t> c,
                                               const gemm_options& opt = {}) {
  detail::gemm::problem p = detail::gemm::prepare("int8_gemm_int32", a, b, c.rows(), c.cols());
  MASQUANT_CHECK(opt.bias.empty() && !opt.accumulate, errc::invalid_argument,
                 "int8_gemm_int32: bias and accumulate apply to the float output only");
  const isa_family isa = detail::MASQUANT_BUILD::resolve("int8_gemm_int32", opt.isa);
  p.c_int = c.data();
  p.ldc = c.stride();
  detail::MASQUANT_BUILD::run_int8_gemm(p, isa, opt.parallel);
}

/// int8_gemm_int32 on plain int8 activations [M, K].
MASQUANT_BUILD_TAG inline void int8_gemm_int32(matrix_view<const std::int8_t> a,
                                               const packed_weights& b, matrix_view<std::int32_t> c,
                                               const gemm_options& opt = {}) {
  int8_gemm_int32(quantized_activations_view{a, {}, {}}, b, c, opt);
}

}  // namespace masquant
