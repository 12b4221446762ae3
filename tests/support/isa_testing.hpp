// isa_testing.hpp: what the tests expect of the instruction-set layer, computed without
// masquant's own code: the CPU's families from the compiler's CPU model, the cap from the
// environment, the baseline from the compiler's predefined macros. Not installed.
#pragma once

#include <cstdlib>
#include <masquant/isa.hpp>

namespace masquant::testing {

// Internal linkage: the answers depend on the translation unit's own flags (isa_mix_test links
// translation units built with different ones).
namespace {

/// The family the translation unit's flags enable (its baseline).
inline isa_family flags_family() {
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512VNNI__) && defined(__AVX2__) && defined(__FMA__)
  return isa_family::avx512;
#elif defined(__AVXVNNI__) && defined(__AVX2__) && defined(__FMA__)
  return isa_family::avx_vnni;
#elif defined(__AVX2__) && defined(__FMA__)
  return isa_family::avx2;
#else
  return isa_family::portable;
#endif
}

/// Whether the CPU runs the family (__builtin_cpu_supports; cpuid leaf 7.1 for AVX-VNNI, which
/// GCC 12 and clang 14 do not name).
inline bool cpu_runs(isa_family f) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  switch (f) {
    case isa_family::portable:
      return true;
    case isa_family::avx2:
      return avx2;
    case isa_family::avx_vnni: {
      unsigned a = 0, b = 0, c = 0, d = 0;
      __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(1));
      return avx2 && ((a >> 4) & 1u);
    }
    case isa_family::avx512:
      return avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
             __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
    default:
      return false;
  }
#else
  return f == isa_family::portable;
#endif
}

/// The cap MASQUANT_MAX_ISA sets (automatic when unset or not a family).
inline isa_family env_cap() {
  const char* v = std::getenv("MASQUANT_MAX_ISA");
  isa_family f = isa_family::automatic;
  if (v != nullptr) parse_isa_family(v, f);
  return f;
}

/// The family a translation unit with these flags and dispatch setting should run here: the
/// best one the CPU has within the cap, never below the baseline (nothing below it is
/// compiled), the baseline alone without dispatch.
inline isa_family expected_family(bool dispatch) {
  const isa_family base = flags_family();
  if (!dispatch) return base;
  const isa_family cap = env_cap();
  isa_family best = isa_family::portable;
  for (isa_family f : isa_families)
    if (cpu_runs(f) && (cap == isa_family::automatic || f <= cap)) best = f;
  return best > base ? best : base;
}

}  // namespace
}  // namespace masquant::testing
