// token_pass.hpp: the per-token pass of the quantized linear — divide the row by its modality's
// smoothing factors, quantize it dynamically to int8 straight into the GEMM's activation format
// (values, scale, row sum), and hand the smoothed row to the low-rank branch when it needs it.
//
// It is built from the quant layer's row kernels (absmax of x ⊘ s, then levels) with the same
// IEEE operations as quantize_row_symmetric_smoothed (float division x / s, Δ, rne(v / Δ), clamp),
// so the levels and the scale are bit-identical to it and to masquant::reference on the
// materialised x ⊘ s.
#pragma once

#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/layer/detail/panels.hpp>
#include <masquant/layer/detail/product.hpp>
#include <masquant/modality/modality.hpp>
#include <masquant/quant/detail/common.hpp>
#include <masquant/quant/detail/kernels.hpp>
#include <masquant/tensor/view.hpp>
#include <vector>
#include <xsimd/xsimd.hpp>

namespace masquant::detail::layer {

/// Writes levels as int8 and adds them up (the row sum the GEMM's zero-point correction needs).
template <class Arch, bool Simd = qsimd::has_simd<Arch>>
struct summing_sink {
  std::int8_t* q;
  xsimd::batch<std::int32_t, Arch>* vsum;
  std::int32_t* sum;
  void put(index_t j, float level) const noexcept {
    const auto v = static_cast<std::int32_t>(level);
    q[j] = static_cast<std::int8_t>(v);
    *sum += v;
  }
  template <class A>
  void put(index_t j, const xsimd::batch<float, A>& level) const noexcept {
    const auto v = xsimd::batch_cast<std::int32_t>(level);  // exact: integer-valued
    qsimd::store_i8<A>(q + j, v, A{});
    *vsum += v;
  }
};
template <class Arch>
struct summing_sink<Arch, false> {
  std::int8_t* q;
  std::int32_t* sum;
  void put(index_t j, float level) const noexcept {
    const auto v = static_cast<std::int32_t>(level);
    q[j] = static_cast<std::int8_t>(v);
    *sum += v;
  }
};

/// Everything the pass reads and writes, for all tokens.
struct token_pass_args {
  matrix_view<const float> x;                     // [M, K]
  const modality_id* ids = nullptr;               // [M], or null: every token is the reference
  const std::vector<std::vector<float>>* smooth;  // [modalities][K]
  int bits = 8;                                   // activation bits; 0: not quantized (A16)
  // Quantized activations (bits > 0): q [M, K] (stride K), scale [M], sum [M].
  std::int8_t* q = nullptr;
  float* scale = nullptr;
  std::int32_t* sum = nullptr;
  // A16: smoothed rows, [M, round_up(K, 16)].
  float* xs = nullptr;
  index_t ldxs = 0;
  // Low-rank rows: token i goes to row pos[i] (-1: none) of its modality's gathered block, which
  // starts at gathered_f[m] (float, stride ldf) or gathered_b[m] (bf16, stride ldb).
  const index_t* pos = nullptr;
  float* const* gathered_f = nullptr;
  std::uint16_t* const* gathered_b = nullptr;
  index_t ldf = 0, ldb = 0;
};

/// Reads x[j] / s[j] like qsimd::smoothed_source and keeps every quotient in out[j]: absmax_run
/// loads each index exactly once, so the row x ⊘ s the low-rank branch needs costs no extra
/// division.
struct storing_smoothed_source {
  const float* x;
  const float* s;
  float* out;
  float at(index_t j) const noexcept {
    const float v = x[j] / s[j];
    out[j] = v;
    return v;
  }
  template <class Arch>
  xsimd::batch<float, Arch> load(index_t j) const noexcept {
    using B = xsimd::batch<float, Arch>;
    const B v = B::load_unaligned(x + j) / B::load_unaligned(s + j);
    v.store_unaligned(out + j);
    return v;
  }
};

/// Levels of src into q (with their sum) under Δ = symmetric_scale(absmax, qmax); returns Δ.
template <class Arch, class Src>
inline float quantize_levels(const Src& src, index_t k, float absmax, int bits, std::int8_t* q,
                             std::int32_t& sum) {
  const std::int32_t qmax = (std::int32_t{1} << (bits - 1)) - 1;
  qsimd::level_params lp;
  lp.delta = symmetric_scale(absmax, qmax);
  lp.qmin = -static_cast<float>(qmax);
  lp.qmax = static_cast<float>(qmax);
  sum = 0;
  if constexpr (qsimd::has_simd<Arch>) {
    xsimd::batch<std::int32_t, Arch> vsum(0);
    qsimd::quantize_run<Arch>(src, k, lp, summing_sink<Arch>{q, &vsum, &sum});
    alignas(64) std::int32_t lanes[xsimd::batch<std::int32_t, Arch>::size];
    vsum.store_aligned(lanes);
    for (std::int32_t lane : lanes) sum += lane;
  } else {
    qsimd::quantize_run<Arch>(src, k, lp, summing_sink<Arch>{q, &sum});
  }
  return lp.delta;
}

/// A per-thread row of K floats for x ⊘ s of rows with no other destination; grows to the
/// longest row seen and is reused (no allocation in steady state).
inline float* row_scratch(index_t n) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < static_cast<std::size_t>(n)) buffer.resize(static_cast<std::size_t>(n));
  return buffer.data();
}

/// Runs the pass on tokens [i0, i1). Throws errc::non_finite naming the first row with a NaN/Inf
/// quotient x / s (as quantize_row_symmetric_smoothed does).
///
/// The absmax pass keeps x ⊘ s — in the token's gathered float row (low-rank branch in float),
/// its A16 row, or a per-thread row that stays in L1 — and the levels are computed from it: two
/// divisions per element instead of three (1.5x faster on 512 x 2048 rows in cache), the same
/// divisions as the quant layer's, so the same bits.
template <class Arch>
inline void token_pass(const token_pass_args& t, index_t i0, index_t i1) {
  const index_t k = t.x.cols();
  float* scratch = row_scratch(k);
  for (index_t i = i0; i < i1; ++i) {
    const modality_id m = t.ids != nullptr ? t.ids[i] : reference_modality;
    const float* x = t.x.row_data(i);
    const float* s = (*t.smooth)[m].data();
    const index_t g = t.pos != nullptr ? t.pos[i] : -1;
    float* gf = g >= 0 && t.gathered_f != nullptr ? t.gathered_f[m] + g * t.ldf : nullptr;
    float* padded = t.xs != nullptr ? t.xs + i * t.ldxs : gf;  // rows with room for a pad
    float* v = padded != nullptr ? padded : scratch;

    qsimd::run_stats st;
    qsimd::absmax_run<Arch>(storing_smoothed_source{x, s, v}, k, st);
    if (!st.finite) raise_non_finite_row("quantized_linear::forward", x, s, k, i);
    if (padded != nullptr && k % 2 != 0) v[k] = 0.0f;  // the pad a bf16-pair product reads

    if (t.bits > 0) {
      std::int32_t sum;
      t.scale[i] =
          quantize_levels<Arch>(qsimd::plain_source{v}, k, st.hi, t.bits, t.q + i * k, sum);
      t.sum[i] = sum;
    }

    if (g >= 0) {
      if (gf != nullptr && gf != v) {
        std::copy(v, v + k + k % 2, gf);  // A16: v is the padded xs row
      } else if (t.gathered_b != nullptr) {
#if MASQUANT_LAYER_HAVE_BF16_DOT
        to_bf16_row(v, k, t.gathered_b[m] + g * t.ldb);
#endif
      }
    }
  }
}

}  // namespace masquant::detail::layer
