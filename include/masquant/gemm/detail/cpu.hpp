// cpu.hpp: the x86 features the GEMM kernels need, read once from cpuid and xgetbv.
#pragma once

#include <cstdint>
#include <masquant/gemm/detail/target.hpp>

#if MASQUANT_GEMM_X86
#include <cpuid.h>
#endif

namespace masquant::detail::gemm {

/// Instruction sets the CPU and the operating system both enable.
struct cpu_features {
  bool avx2 = false;         ///< AVX2 and FMA, ymm state saved by the OS
  bool avx_vnni = false;     ///< AVX-VNNI (VEX vpdpbusd on ymm)
  bool avx512_vnni = false;  ///< AVX-512 F/BW/VL/VNNI, zmm state saved by the OS
};

inline cpu_features detect_cpu() noexcept {
  cpu_features f;
#if MASQUANT_GEMM_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool fma = (c >> 12) & 1u;
  const bool osxsave = (c >> 27) & 1u;
  const bool avx = (c >> 28) & 1u;
  if (!osxsave || !avx) return f;
  std::uint32_t xcr0_lo = 0, xcr0_hi = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool ymm_state = (xcr0_lo & 0x6u) == 0x6u;
  const bool zmm_state = (xcr0_lo & 0xE6u) == 0xE6u;
  if (!ymm_state) return f;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const bool avx2 = (b >> 5) & 1u;
  const bool avx512f = (b >> 16) & 1u;
  const bool avx512bw = (b >> 30) & 1u;
  const bool avx512vl = (b >> 31) & 1u;
  const bool avx512vnni = (c >> 11) & 1u;
  f.avx2 = avx2 && fma;
  f.avx512_vnni = f.avx2 && zmm_state && avx512f && avx512bw && avx512vl && avx512vnni;
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) f.avx_vnni = f.avx2 && ((a >> 4) & 1u);
#endif
  return f;
}

/// The features of the CPU this process runs on (detected on first use).
inline const cpu_features& cpu() noexcept {
  static const cpu_features features = detect_cpu();
  return features;
}

}  // namespace masquant::detail::gemm
