// formulas-inl.hpp: Δ and z of the quantizers, as float32 operations in the reference's order.
// Included into masquant::detail (by common.hpp, for masquant::reference) and into every family
// of the quant kernels (kernels-inl.hpp), so each family has its own copy.

// The clamps are masquant::quant_min_scale, quant_max_scale and quant_zero_point_clamp
// (quant/spec.hpp), defined once.
using ::masquant::quant_max_scale;
using ::masquant::quant_min_scale;
using ::masquant::quant_zero_point_clamp;

/// Δ of a symmetric quantizer: clamp(absmax / qmax, 1e-5, 1e4), a float32 division.
inline float symmetric_scale(float absmax, std::int32_t qmax) noexcept {
  return std::min(std::max(absmax / static_cast<float>(qmax), quant_min_scale), quant_max_scale);
}

/// Δ of an asymmetric quantizer: clamp((max - min) / qmax, 1e-5, 1e4) (max - min may overflow
/// to +Inf, which the clamp maps to 1e4).
inline float asymmetric_scale(float lo, float hi, std::int32_t qmax) noexcept {
  return std::min(std::max((hi - lo) / static_cast<float>(qmax), quant_min_scale), quant_max_scale);
}

/// z of an asymmetric quantizer: rne(clamp(-min / Δ, -1e4, 1e4)).
inline std::int32_t asymmetric_zero_point(float lo, float delta) noexcept {
  const float t = std::min(std::max(-lo / delta, -quant_zero_point_clamp), quant_zero_point_clamp);
  return static_cast<std::int32_t>(std::nearbyint(t));
}
