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
//   AMX:      tdpbsud, 16 x 16 x 64 multiply-adds per instruction (where the avx512 family runs
//             its tiles)
#pragma once

#include <algorithm>
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
// through xmm (VEX zeroes the upper lanes); `.irp` writes the line once per destination 0-9.
#define MASQUANT_PEAK_LOOP(instruction, reg, n)                                                  \
  __asm__ volatile(                                                                              \
      "vpxor %%xmm0, %%xmm0, %%xmm0\n\t"                                                         \
      ".irp i,1,2,3,4,5,6,7,8,9\n\tvmovdqa %%xmm0, %%xmm\\i\n\t.endr\n\t"                        \
      "vpcmpeqd %%xmm14, %%xmm14, %%xmm14\n\t"                                                   \
      "vmovdqa %%xmm14, %%xmm15\n\t"                                                             \
      "1:\n\t"                                                                                   \
      ".irp i,0,1,2,3,4,5,6,7,8,9\n\t" instruction " %%" reg "15, %%" reg "14, %%" reg           \
      "\\i\n\t.endr\n\t"                                                                         \
      "dec %0\n\t"                                                                               \
      "jnz 1b\n\t"                                                                               \
      : "+r"(n)                                                                                  \
      :                                                                                          \
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm14", \
        "xmm15", "cc")

/// GOPS of `chains * peak_iters` instructions of `ops` operations each, started at t0.
inline double gops(double ops, std::chrono::steady_clock::time_point t0) {
  return ops * chains * static_cast<double>(peak_iters) / seconds_since(t0) * 1e-9;
}

inline double peak_avx2() {
  std::int64_t n = peak_iters;
  const auto t0 = std::chrono::steady_clock::now();
  MASQUANT_PEAK_LOOP("vpmaddwd", "ymm", n);
  return gops(32.0, t0);
}

inline double peak_avx512() {
  std::int64_t n = peak_iters;
  const auto t0 = std::chrono::steady_clock::now();
  MASQUANT_PEAK_LOOP("vpdpbusd", "zmm", n);
  return gops(128.0, t0);
}

inline double peak_ymm_evex() {
  std::int64_t n = peak_iters;
  const auto t0 = std::chrono::steady_clock::now();
  MASQUANT_PEAK_LOOP("%{evex%} vpdpbusd", "ymm", n);
  return gops(64.0, t0);
}

inline double peak_ymm_vex() {
  std::int64_t n = peak_iters;
  const auto t0 = std::chrono::steady_clock::now();
  MASQUANT_PEAK_LOOP("%{vex%} vpdpbusd", "ymm", n);
  return gops(64.0, t0);
}

#undef MASQUANT_PEAK_LOOP

// tdpbsud into four independent accumulator tiles (16 x 16 int32, 16 x 16 x 64 = 16384
// multiply-adds each) from two A and two B tiles of 16 x 64 bytes, as the GEMM's tiles are laid
// out. Only called where masquant's AMX path runs (the OS granted the tile state).
inline double peak_amx() {
  struct alignas(64) {
    std::uint8_t palette = 1, start_row = 0, reserved[14] = {};
    std::uint16_t colsb[16] = {64, 64, 64, 64, 64, 64, 64, 64};
    std::uint8_t rows[16] = {16, 16, 16, 16, 16, 16, 16, 16};
  } cfg;
  const std::int64_t iters = peak_iters / 16;
  std::int64_t n = iters;
  __asm__ volatile("ldtilecfg %0" ::"m"(cfg));
  const auto t0 = std::chrono::steady_clock::now();
  __asm__ volatile(
      "1:\n\t"
      "tdpbsud %%tmm6, %%tmm4, %%tmm0\n\t"
      "tdpbsud %%tmm7, %%tmm4, %%tmm1\n\t"
      "tdpbsud %%tmm6, %%tmm5, %%tmm2\n\t"
      "tdpbsud %%tmm7, %%tmm5, %%tmm3\n\t"
      "dec %0\n\t"
      "jnz 1b\n\t"
      : "+r"(n)
      :
      : "cc");
  const double seconds = seconds_since(t0);
  __asm__ volatile("tilerelease");
  return 4.0 * 2.0 * 16384.0 * static_cast<double>(iters) / seconds * 1e-9;
}

}  // namespace detail

/// Whether masquant's INT8 GEMM runs AMX tiles here (M >= 2, K a multiple of 64, INT8
/// weights; docs/gemm.md).
inline bool amx_tiles_run(isa_family family) {
  return family == isa_family::avx512 && masquant::detail::MASQUANT_BUILD::amx_int8_ready();
}

/// GOPS of one core on tdpbsud (best of 5 runs), or 0 where masquant does not run AMX tiles.
inline double measured_amx_peak_gops(isa_family family) {
  if (!amx_tiles_run(family)) return 0.0;
  double best = 0.0;
  for (int run = 0; run < 5; ++run) best = std::max(best, detail::peak_amx());
  return best;
}

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
