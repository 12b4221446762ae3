// cpu.hpp: the instruction sets the CPU and the operating system enable, read once from cpuid
// and xgetbv.
#pragma once

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <masquant/detail/isa/build.hpp>
#include <string>

#if MASQUANT_X86
#include <cpuid.h>
#endif
#if MASQUANT_X86 && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace masquant::detail::MASQUANT_BUILD {

/// What each family needs, as the CPU reports it (and the OS saves the registers).
struct cpu_features {
  bool avx2 = false;         ///< AVX2 and FMA, ymm state saved
  bool avx_vnni = false;     ///< AVX-VNNI (VEX vpdpbusd on ymm)
  bool avx512 = false;       ///< AVX-512 F/BW/VL/VNNI, zmm state saved
  bool avx512_bf16 = false;  ///< AVX512_BF16 on top of avx512
  bool amx_int8 = false;     ///< AMX-TILE and AMX-INT8 on top of avx512 (the OS may still refuse)
};

inline cpu_features detect_cpu() noexcept {
  cpu_features f;
#if MASQUANT_X86
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
  f.avx512 = f.avx2 && zmm_state && avx512f && avx512bw && avx512vl && avx512vnni;
  f.amx_int8 = f.avx512 && ((d >> 24) & 1u) && ((d >> 25) & 1u);
  if (__get_cpuid_count(7, 1, &a, &b, &c, &d)) {
    f.avx_vnni = f.avx2 && ((a >> 4) & 1u);
    f.avx512_bf16 = f.avx512 && ((a >> 5) & 1u);
  }
#endif
  return f;
}

/// The features of the CPU this process runs on (detected on first use).
inline const cpu_features& cpu() noexcept {
  static const cpu_features features = detect_cpu();
  return features;
}

/// Whether AMX tiles can run here: the CPU has AMX-INT8 and Linux granted this process the tile
/// data state (arch_prctl ARCH_REQ_XCOMP_PERM, asked once, on first use; Linux >= 5.16). A
/// process that uses AMX gets larger signal frames, as with any AMX library (oneDNN asks too).
/// MASQUANT_NO_AMX=1 in the environment turns it off (the avx512 family then runs vpdpbusd).
inline bool amx_int8_ready() noexcept {
  static const bool ready = [] {
#if MASQUANT_X86 && defined(__linux__)
    if (!cpu().amx_int8) return false;
    const char* off = std::getenv("MASQUANT_NO_AMX");
    if (off != nullptr && off[0] != '\0' && std::strcmp(off, "0") != 0) return false;
    constexpr long arch_req_xcomp_perm = 0x1023, xfeature_xtiledata = 18;
    if (::syscall(SYS_arch_prctl, arch_req_xcomp_perm, xfeature_xtiledata) != 0) return false;
    std::uint32_t xcr0_lo = 0, xcr0_hi = 0;
    __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    return (xcr0_lo & 0x60000u) == 0x60000u;  // XTILECFG and XTILEDATA enabled
#else
    return false;
#endif
  }();
  return ready;
}

/// The processor's brand string ("AMD EPYC 7B13"), or "" where cpuid has none.
inline std::string cpu_brand() {
  std::string name;
#if MASQUANT_X86
  unsigned top = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(0x80000000u, &top, &b, &c, &d) || top < 0x80000004u) return name;
  for (unsigned leaf = 0x80000002u; leaf <= 0x80000004u; ++leaf) {
    unsigned r[4] = {};
    __get_cpuid(leaf, &r[0], &r[1], &r[2], &r[3]);
    char part[17] = {};
    std::memcpy(part, r, 16);
    name += part;
  }
  const auto first = name.find_first_not_of(' ');
  name = first == std::string::npos ? std::string() : name.substr(first);
  while (!name.empty() && name.back() == ' ') name.pop_back();
#endif
  return name;
}

}  // namespace masquant::detail::MASQUANT_BUILD
