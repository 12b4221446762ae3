// simd.hpp: architecture tags and the few SIMD helpers the statistics kernels need beyond
// xsimd 8.1.
#pragma once

#include <cstddef>
#include <masquant/config.hpp>
#include <type_traits>
#include <xsimd/xsimd.hpp>

namespace masquant::detail {

/// Tag of the portable scalar kernels (the normative reference the SIMD kernels are tested
/// against, and the path taken when xsimd knows no instruction set for the target).
struct scalar_arch {};

/// The architecture the statistics kernels are compiled for: xsimd's best for the compiler's
/// target flags (static dispatch), or the scalar kernels when there is none.
using stats_arch = std::conditional_t<std::is_same_v<xsimd::default_arch, xsimd::unavailable>,
                                      scalar_arch, xsimd::default_arch>;

/// Doubles per SIMD register of architecture A (1 for the scalar kernels).
template <class A>
constexpr index_t double_lanes() noexcept {
  if constexpr (std::is_same_v<A, scalar_arch>) {
    return 1;
  } else {
    return static_cast<index_t>(xsimd::batch<double, A>::size);
  }
}

/// Loads double_lanes<A>() consecutive floats, widened to double (exact). xsimd 8.1 converts
/// between types of different sizes through memory, so the common x86 cases use the widening
/// load directly.
template <class A>
xsimd::batch<double, A> load_widen(const float* p) noexcept {
  using batch = xsimd::batch<double, A>;
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>)
    return batch(_mm512_maskz_cvtps_pd(0xFF, _mm256_loadu_ps(p)));
#endif
#if defined(__AVX__)
  if constexpr (std::is_base_of_v<xsimd::avx, A>) return batch(_mm256_cvtps_pd(_mm_loadu_ps(p)));
#endif
#if defined(__SSE2__)
  if constexpr (std::is_base_of_v<xsimd::sse2, A>) {
    return batch(
        _mm_cvtps_pd(_mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)))));
  }
#endif
  alignas(64) double wide[batch::size];
  for (std::size_t i = 0; i < batch::size; ++i) wide[i] = static_cast<double>(p[i]);
  return batch::load_aligned(wide);
}

/// Lane-wise minimum (maximum): a where a < b (a > b), else b, as x86 minpd (maxpd). The
/// AVX-512 forms avoid xsimd's _mm512_min_pd, whose _mm512_undefined_pd trips GCC 12's
/// -Wmaybe-uninitialized.
template <class A>
xsimd::batch<double, A> lane_min(const xsimd::batch<double, A>& a,
                                 const xsimd::batch<double, A>& b) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) return _mm512_maskz_min_pd(0xFF, a, b);
#endif
  return xsimd::min(a, b);
}
template <class A>
xsimd::batch<double, A> lane_max(const xsimd::batch<double, A>& a,
                                 const xsimd::batch<double, A>& b) noexcept {
#if defined(__AVX512F__)
  if constexpr (std::is_base_of_v<xsimd::avx512f, A>) return _mm512_maskz_max_pd(0xFF, a, b);
#endif
  return xsimd::max(a, b);
}

}  // namespace masquant::detail
