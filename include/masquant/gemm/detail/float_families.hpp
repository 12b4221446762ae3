// float_families.hpp: the float and bf16 products compiled for every family of this build
// (float_gemm-inl.hpp; float_gemm_bf16-inl.hpp for the avx512 family), and their dispatch.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <masquant/config.hpp>
#include <masquant/gemm/detail/float_gemm.hpp>
#include <masquant/gemm/detail/panels.hpp>
#include <masquant/isa.hpp>
#include <type_traits>
#include <utility>

// NOLINTNEXTLINE(bugprone-macro-parentheses): an #include path
#define MASQUANT_FAMILY_SOURCE <masquant/gemm/detail/float_gemm-inl.hpp>
// NOLINTNEXTLINE(bugprone-macro-parentheses): an #include path
#define MASQUANT_FAMILY_SOURCE_BF16 <masquant/gemm/detail/float_gemm_bf16-inl.hpp>
#include <masquant/detail/isa/foreach_family.hpp>

namespace masquant::detail::MASQUANT_BUILD {

/// Calls fn(tag of the avx512 family) when this build has the bf16 kernels (the caller checks
/// that the CPU has AVX512_BF16 and that avx512 was chosen); otherwise nothing.
template <class Fn>
void on_bf16_family([[maybe_unused]] Fn&& fn) {
#if MASQUANT_COMPILE_BF16
  fn(isa_avx512::tag{});
#endif
}

/// Whether the bf16 kernels may run for the chosen family: compiled, avx512, and a CPU with
/// AVX512_BF16.
inline bool bf16_dot_runs(isa_family chosen) noexcept {
  return MASQUANT_COMPILE_BF16 && chosen == isa_family::avx512 && cpu().avx512_bf16;
}

}  // namespace masquant::detail::MASQUANT_BUILD
