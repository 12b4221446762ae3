// token_pass-inl.hpp: the per-token pass of the quantized linear for one family — divide the row
// by its modality's smoothing factors, quantize it dynamically to int8 straight into the GEMM's
// activation format (values, scale, row sum), and hand the smoothed row to the low-rank branch
// when it needs it. Family source (detail/isa/foreach_family.hpp), compiled per family by
// token_pass.hpp after the quant kernels and the float products of the same family.
//
// It is built from the quant layer's row kernels (absmax of x ⊘ s, then levels) with the same
// IEEE operations as quantize_row_symmetric_smoothed (float division x / s, Δ, rne(v / Δ), clamp),
// so the levels and the scale are bit-identical to it and to masquant::reference on the
// materialised x ⊘ s.

namespace token_pass {

using masquant::detail::layer::token_pass_args;
using simd::vf;

/// Writes levels as int8 and adds them up (the row sum the GEMM's zero-point correction needs):
/// vector lanes into vsum, the scalar tail into sum.
struct summing_sink {
  std::int8_t* q;
  simd::vi* vsum;
  std::int32_t* sum;
  void put(index_t j, float level) const noexcept {
    const auto v = static_cast<std::int32_t>(level);
    q[j] = static_cast<std::int8_t>(v);
    *sum += v;
  }
  void put(index_t j, vf level) const noexcept {
    const simd::vi v = simd::to_int(level);  // exact: integer-valued
    simd::store_i8(q + j, v);
    *vsum = *vsum + v;
  }
};

/// Reads x[j] / s[j] like quant::smoothed_source and keeps every quotient in out[j]: absmax_run
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
  vf load(index_t j) const noexcept {
    const vf v = simd::loadu(x + j) / simd::loadu(s + j);
    simd::storeu(out + j, v);
    return v;
  }
};

/// Levels of src into q (with their sum) under Δ = symmetric_scale(absmax, qmax); returns Δ.
template <class Src>
inline float quantize_levels(const Src& src, index_t k, float absmax, int bits, std::int8_t* q,
                             std::int32_t& sum) {
  const std::int32_t qmax = (std::int32_t{1} << (bits - 1)) - 1;
  quant::level_params lp;
  lp.delta = quant::symmetric_scale(absmax, qmax);
  lp.qmin = -static_cast<float>(qmax);
  lp.qmax = static_cast<float>(qmax);
  sum = 0;
  simd::vi vsum = simd::isplat(0);
  quant::quantize_run(src, k, lp, summing_sink{q, &vsum, &sum});
  alignas(64) std::int32_t lanes[simd::float_lanes];
  simd::storeu(lanes, vsum);
  if constexpr (simd::enabled) {
    for (std::int32_t lane : lanes) sum += lane;
  }
  return lp.delta;
}

/// bf16 bits to float: the upper half of the float (exact).
inline void widen_bf16(const std::uint16_t* src, index_t n, float* dst) noexcept {
  for (index_t j = 0; j < n; ++j) {
    const std::uint32_t u = static_cast<std::uint32_t>(src[j]) << 16;
    std::memcpy(dst + j, &u, sizeof u);
  }
}

/// IEEE binary16 bits to float (exact, subnormals, Inf and NaN included), branch-free so that it
/// vectorises: the exponent is rebiased by 112; Inf/NaN get the rest of float's bias; a
/// subnormal half is built as 2^-14·(1 + m/1024) and 2^-14 taken off.
inline void widen_f16(const std::uint16_t* src, index_t n, float* dst) noexcept {
  constexpr std::uint32_t exp_mask = 0x0f800000u;  // the half's exponent after the shift
  constexpr float min_normal = 6.103515625e-05f;   // 2^-14
  for (index_t j = 0; j < n; ++j) {
    const std::uint32_t h = src[j];
    std::uint32_t u = ((h & 0x7fffu) << 13) + (112u << 23);
    const std::uint32_t e = (h & 0x7c00u) << 13;
    u += e == exp_mask ? 112u << 23 : 0u;
    const std::uint32_t sub = u + (1u << 23);
    float f, g;
    std::memcpy(&f, &u, sizeof f);
    std::memcpy(&g, &sub, sizeof g);
    f = e == 0 ? g - min_normal : f;
    std::memcpy(&u, &f, sizeof u);
    u |= (h & 0x8000u) << 16;
    std::memcpy(dst + j, &u, sizeof u);
  }
}

/// Row i of the activations as float: the row itself, or widened into `buffer`.
inline const float* input_row(const linear_input& x, index_t i, float* buffer) noexcept {
  switch (x.type()) {
    case element_type::bfloat16:
      widen_bf16(static_cast<const std::uint16_t*>(x.data()) + i * x.stride(), x.cols(), buffer);
      return buffer;
    case element_type::float16:
      widen_f16(static_cast<const std::uint16_t*>(x.data()) + i * x.stride(), x.cols(), buffer);
      return buffer;
    case element_type::float32:
      break;
  }
  return static_cast<const float*>(x.data()) + i * x.stride();
}

/// A per-thread row of K floats for x ⊘ s of rows with no other destination; grows to the
/// longest row seen and is reused (no allocation in steady state).
inline float* row_scratch(index_t n) {
  thread_local std::vector<float> buffer;
  if (buffer.size() < static_cast<std::size_t>(n)) buffer.resize(static_cast<std::size_t>(n));
  return buffer.data();
}

}  // namespace token_pass

/// Runs the pass on tokens [i0, i1); bf16 and fp16 rows are widened to float first, one row at a
/// time into a per-thread row that stays in L1. Throws errc::non_finite naming the first row with a
/// NaN/Inf quotient x / s (as quantize_row_symmetric_smoothed does).
///
/// The absmax pass keeps x ⊘ s — in the token's gathered float row (low-rank branch in float),
/// its A16 row, or a per-thread row that stays in L1 — and the levels are computed from it: two
/// divisions per element instead of three (1.5x faster on 512 x 2048 rows in cache), the same
/// divisions as the quant layer's, so the same bits.
inline void run_token_pass(tag, const masquant::detail::layer::token_pass_args& t, index_t i0,
                           index_t i1) {
  using namespace token_pass;
  const index_t k = t.x.cols();
  float* scratch = row_scratch(2 * k);  // [0, k): x ⊘ s with no other home; [k, 2k): widened x
  for (index_t i = i0; i < i1; ++i) {
    const modality_id m = t.ids != nullptr ? t.ids[i] : reference_modality;
    const float* x = input_row(t.x, i, scratch + k);
    const float* s = (*t.smooth)[m].data();
    const index_t g = t.pos != nullptr ? t.pos[i] : -1;
    float* gf = g >= 0 && t.gathered_f != nullptr ? t.gathered_f[m] + g * t.ldf : nullptr;
    float* padded = t.xs != nullptr ? t.xs + i * t.ldxs : gf;  // rows with room for a pad
    float* v = padded != nullptr ? padded : scratch;

    quant::run_stats st;
    quant::absmax_run(storing_smoothed_source{x, s, v}, k, st);
    if (!st.finite) masquant::detail::raise_non_finite_row("quantized_linear::forward", x, s, k, i);
    if (padded != nullptr && k % 2 != 0) v[k] = 0.0f;  // the pad a bf16-pair product reads

    if (t.bits > 0) {
      std::int32_t sum;
      t.scale[i] = quantize_levels(quant::plain_source{v}, k, st.hi, t.bits, t.q + i * k, sum);
      t.sum[i] = sum;
    }

    if (g >= 0) {
      if (gf != nullptr && gf != v) {
        std::copy(v, v + k + k % 2, gf);  // A16: v is the padded xs row
      } else if (t.gathered_b != nullptr) {
#if MASQUANT_FAMILY == MASQUANT_ISA_AVX512
        run_to_bf16_row(tag{}, v, k, t.gathered_b[m] + g * t.ldb);
#endif
      }
    }
  }
}
