// peak.hpp: the int8 multiply-accumulate peak of one core, measured on the CPU at hand with the
// instruction a masquant GEMM family multiplies with, so that "fraction of peak" comes from the
// same run as the GEMM it judges (the peak differs by CPU: Zen 4 splits 512-bit vpdpbusd in two,
// Zen 5 does not).
//
// Ten independent destinations per iteration (accumulating chains for vpdpbusd) keep the
// instruction's pipes full; operands stay in registers. Ops count 2 per multiply-add, the
// convention of the GEMM's GOPS:
//   avx512:   vpdpbusd zmm, 64 u8 x s8 multiply-adds
//   avx_vnni: vpdpbusd ymm, 32 (VEX encoding when the CPU has AVX-VNNI, else EVEX)
//   avx2:     vpmaddwd ymm, 16 int16 multiply-adds (the exact AVX2 kernel's product; the vpaddd
//             that accumulates it is not counted)
#pragma once

#include <chrono>
#include <cstdint>
#include <masquant/isa.hpp>

namespace masquant::bench {

namespace detail {

constexpr std::int64_t peak_iters = std::int64_t{1} << 22;
// Ten independent destinations: more than latency x throughput of each instruction (3-5 cycles
// x 1-2 per cycle on the CPUs seen).
constexpr int chains = 10;

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The loops are written in assembly: compilers merge, spill or hoist intrinsic chains whose
// operands never change, and then time something else. Each is run only on a CPU that has its
// instruction (measured_peak_gops is called for an available family). The registers are zeroed
// through xmm (VEX zeroes the upper lanes).
inline double peak_avx2() {
  std::int64_t n = peak_iters;
  const auto t0 = std::chrono::steady_clock::now();
  __asm__ volatile(
      "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
      "vmovdqa %%xmm0, %%xmm1\n\t"
      "vmovdqa %%xmm0, %%xmm2\n\t"
      "vmovdqa %%xmm0, %%xmm3\n\t"
      "vmovdqa %%xmm0, %%xmm4\n\t"
      "vmovdqa %%xmm0, %%xmm5\n\t"
      "vmovdqa %%xmm0, %%xmm6\n\t"
      "vmovdqa %%xmm0, %%xmm7\n\t"
      "vmovdqa %%xmm0, %%xmm8\n\t"
      "vmovdqa %%xmm0, %%xmm9\n\t"
      "vpcmpeqd %%xmm14, %%xmm14, %%xmm14\n\t"
      "vmovdqa %%xmm14, %%xmm15\n\t"
      "1:\n\t"
      "vpmaddwd %%ymm15, %%ymm14, %%ymm0\n\t"
      "vpmaddwd %%ymm15, %%ymm14, %%ymm1\n\t"
      "vpmaddwd %%ymm15, %%ymm14, %%ymm2\n\t"
      "vpmaddwd %%ymm15, %%ymm14, %%ymm3\n\t"
      "vpmaddwd %%ymm15, %%ymm14, %%ymm4\n\t"
      "vpmaddwd %%ymm15, %%ymm14, %%ymm5\n\t"
      "vpmaddwd %%ymm15, %%ymm14, %%ymm6\n\t"
      "vpmaddwd %%ymm15, %%ymm14, %%ymm7\n\t"
      "vpmaddwd %%ymm15, %%ymm14, %%ymm8\n\t"
      "vpmaddwd %%ymm15, %%ymm14, %%ymm9\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      : "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm14",
        "xmm15", "cc");
  return 32.0 * chains * static_cast<double>(peak_iters) / seconds_since(t0) * 1e-9;
}

inline double peak_avx512() {
  std::int64_t n = peak_iters;
  const auto t0 = std::chrono::steady_clock::now();
  __asm__ volatile(
      "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
      "vmovdqa %%xmm0, %%xmm1\n\t"
      "vmovdqa %%xmm0, %%xmm2\n\t"
      "vmovdqa %%xmm0, %%xmm3\n\t"
      "vmovdqa %%xmm0, %%xmm4\n\t"
      "vmovdqa %%xmm0, %%xmm5\n\t"
      "vmovdqa %%xmm0, %%xmm6\n\t"
      "vmovdqa %%xmm0, %%xmm7\n\t"
      "vmovdqa %%xmm0, %%xmm8\n\t"
      "vmovdqa %%xmm0, %%xmm9\n\t"
      "vpcmpeqd %%xmm14, %%xmm14, %%xmm14\n\t"
      "vmovdqa %%xmm14, %%xmm15\n\t"
      "1:\n\t"
      "vpdpbusd %%zmm15, %%zmm14, %%zmm0\n\t"
      "vpdpbusd %%zmm15, %%zmm14, %%zmm1\n\t"
      "vpdpbusd %%zmm15, %%zmm14, %%zmm2\n\t"
      "vpdpbusd %%zmm15, %%zmm14, %%zmm3\n\t"
      "vpdpbusd %%zmm15, %%zmm14, %%zmm4\n\t"
      "vpdpbusd %%zmm15, %%zmm14, %%zmm5\n\t"
      "vpdpbusd %%zmm15, %%zmm14, %%zmm6\n\t"
      "vpdpbusd %%zmm15, %%zmm14, %%zmm7\n\t"
      "vpdpbusd %%zmm15, %%zmm14, %%zmm8\n\t"
      "vpdpbusd %%zmm15, %%zmm14, %%zmm9\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      : "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm14",
        "xmm15", "cc");
  return 128.0 * chains * static_cast<double>(peak_iters) / seconds_since(t0) * 1e-9;
}

inline double peak_ymm_evex() {
  std::int64_t n = peak_iters;
  const auto t0 = std::chrono::steady_clock::now();
  __asm__ volatile(
      "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
      "vmovdqa %%xmm0, %%xmm1\n\t"
      "vmovdqa %%xmm0, %%xmm2\n\t"
      "vmovdqa %%xmm0, %%xmm3\n\t"
      "vmovdqa %%xmm0, %%xmm4\n\t"
      "vmovdqa %%xmm0, %%xmm5\n\t"
      "vmovdqa %%xmm0, %%xmm6\n\t"
      "vmovdqa %%xmm0, %%xmm7\n\t"
      "vmovdqa %%xmm0, %%xmm8\n\t"
      "vmovdqa %%xmm0, %%xmm9\n\t"
      "vpcmpeqd %%xmm14, %%xmm14, %%xmm14\n\t"
      "vmovdqa %%xmm14, %%xmm15\n\t"
      "1:\n\t"
      "%{evex%} vpdpbusd %%ymm15, %%ymm14, %%ymm0\n\t"
      "%{evex%} vpdpbusd %%ymm15, %%ymm14, %%ymm1\n\t"
      "%{evex%} vpdpbusd %%ymm15, %%ymm14, %%ymm2\n\t"
      "%{evex%} vpdpbusd %%ymm15, %%ymm14, %%ymm3\n\t"
      "%{evex%} vpdpbusd %%ymm15, %%ymm14, %%ymm4\n\t"
      "%{evex%} vpdpbusd %%ymm15, %%ymm14, %%ymm5\n\t"
      "%{evex%} vpdpbusd %%ymm15, %%ymm14, %%ymm6\n\t"
      "%{evex%} vpdpbusd %%ymm15, %%ymm14, %%ymm7\n\t"
      "%{evex%} vpdpbusd %%ymm15, %%ymm14, %%ymm8\n\t"
      "%{evex%} vpdpbusd %%ymm15, %%ymm14, %%ymm9\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      : "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm14",
        "xmm15", "cc");
  return 64.0 * chains * static_cast<double>(peak_iters) / seconds_since(t0) * 1e-9;
}

inline double peak_ymm_vex() {
  std::int64_t n = peak_iters;
  const auto t0 = std::chrono::steady_clock::now();
  __asm__ volatile(
      "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"
      "vmovdqa %%xmm0, %%xmm1\n\t"
      "vmovdqa %%xmm0, %%xmm2\n\t"
      "vmovdqa %%xmm0, %%xmm3\n\t"
      "vmovdqa %%xmm0, %%xmm4\n\t"
      "vmovdqa %%xmm0, %%xmm5\n\t"
      "vmovdqa %%xmm0, %%xmm6\n\t"
      "vmovdqa %%xmm0, %%xmm7\n\t"
      "vmovdqa %%xmm0, %%xmm8\n\t"
      "vmovdqa %%xmm0, %%xmm9\n\t"
      "vpcmpeqd %%xmm14, %%xmm14, %%xmm14\n\t"
      "vmovdqa %%xmm14, %%xmm15\n\t"
      "1:\n\t"
      "%{vex%} vpdpbusd %%ymm15, %%ymm14, %%ymm0\n\t"
      "%{vex%} vpdpbusd %%ymm15, %%ymm14, %%ymm1\n\t"
      "%{vex%} vpdpbusd %%ymm15, %%ymm14, %%ymm2\n\t"
      "%{vex%} vpdpbusd %%ymm15, %%ymm14, %%ymm3\n\t"
      "%{vex%} vpdpbusd %%ymm15, %%ymm14, %%ymm4\n\t"
      "%{vex%} vpdpbusd %%ymm15, %%ymm14, %%ymm5\n\t"
      "%{vex%} vpdpbusd %%ymm15, %%ymm14, %%ymm6\n\t"
      "%{vex%} vpdpbusd %%ymm15, %%ymm14, %%ymm7\n\t"
      "%{vex%} vpdpbusd %%ymm15, %%ymm14, %%ymm8\n\t"
      "%{vex%} vpdpbusd %%ymm15, %%ymm14, %%ymm9\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      : "+r"(n)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm14",
        "xmm15", "cc");
  return 64.0 * chains * static_cast<double>(peak_iters) / seconds_since(t0) * 1e-9;
}

}  // namespace detail

/// The instruction the GEMM of `family` multiplies with, as printed beside its peak.
inline const char* peak_instruction(isa_family family) {
  switch (family) {
    case isa_family::avx512:
      return "vpdpbusd zmm";
    case isa_family::avx_vnni:
      return __builtin_cpu_supports("avxvnni") ? "vpdpbusd ymm (VEX)" : "vpdpbusd ymm (EVEX)";
    case isa_family::avx2:
      return "vpmaddwd ymm";
    default:
      return "none (portable kernel)";
  }
}

/// GOPS of one core on the multiply instruction of `family` (best of 5 runs of 10 x 2^22
/// instructions), or 0 for the portable family, whose speed is the compiler's.
inline double measured_peak_gops(isa_family family) {
  double best = 0.0;
  for (int run = 0; run < 5; ++run) {
    double g = 0.0;
    switch (family) {
      case isa_family::avx512:
        g = detail::peak_avx512();
        break;
      case isa_family::avx_vnni:
        g = __builtin_cpu_supports("avxvnni") ? detail::peak_ymm_vex() : detail::peak_ymm_evex();
        break;
      case isa_family::avx2:
        g = detail::peak_avx2();
        break;
      default:
        return 0.0;
    }
    if (g > best) best = g;
  }
  return best;
}

}  // namespace masquant::bench
