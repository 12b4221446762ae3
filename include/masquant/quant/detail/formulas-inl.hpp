// formulas-inl.hpp: Δ and z of the quantizers, as float32 operations in the reference's order.
// Included into masquant::detail (by common.hpp, for masquant::reference) and into every family
// of the quant kernels (kernels-inl.hpp), so each family has its own copy.

/// Lower and upper clamp of Δ, and the clamp of -min/Δ before the zero point is rounded
/// (the reference's CLIPMIN and 1e4, as float32).
inline constexpr float quant_min_scale = 1e-5f;
inline constexpr float quant_max_scale = 1e4f;
inline constexpr float quant_zero_point_clamp = 1e4f;

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
