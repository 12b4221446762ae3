// isa.hpp: the instruction-set paths of the INT8 GEMM, and which of them this build and CPU run.
//
// Kernels are selected at compile time from the target flags: AVX-512 VNNI (zmm vpdpbusd) when
// __AVX512VNNI__ (with VL and BW) is defined, the ymm VNNI kernel when __AVXVNNI__ (VEX
// encoding) or AVX512-VL VNNI (EVEX encoding of the same instruction) is, AVX2 (exact vpmaddwd)
// when __AVX2__ is, and a portable C++ path always. Define MASQUANT_GEMM_RUNTIME_DISPATCH in
// every translation unit (all built with the same baseline -march, e.g. x86-64-v2) to compile
// every x86 kernel with function-level target attributes and pick the best one the CPU runs at
// run time. See docs/gemm.md.
#pragma once

#include <cstdint>
#include <masquant/gemm/detail/cpu.hpp>
#include <masquant/gemm/detail/target.hpp>
#include <ostream>
#include <vector>

namespace masquant {

/// An INT8 GEMM kernel family; `automatic` means "the best available".
enum class gemm_isa : std::uint8_t {
  automatic,    ///< best_gemm_isa()
  portable,     ///< plain C++ (always available)
  avx2,         ///< AVX2 without VNNI: exact int16 vpmaddwd
  avx_vnni,     ///< ymm vpdpbusd (AVX-VNNI, or its AVX512-VL EVEX encoding in static builds)
  avx512_vnni,  ///< zmm vpdpbusd (AVX-512 F/BW/VL/VNNI)
};

/// Stable name of an ISA ("avx512_vnni").
inline const char* to_string(gemm_isa isa) noexcept {
  switch (isa) {
    case gemm_isa::automatic:
      return "automatic";
    case gemm_isa::portable:
      return "portable";
    case gemm_isa::avx2:
      return "avx2";
    case gemm_isa::avx_vnni:
      return "avx_vnni";
    case gemm_isa::avx512_vnni:
      return "avx512_vnni";
  }
  return "unknown";
}

/// Writes the ISA's name.
inline std::ostream& operator<<(std::ostream& out, gemm_isa isa) {
  return out << to_string(isa);
}

/// Whether this build contains the kernel of `isa` (`automatic` and `portable`: always).
inline bool gemm_isa_compiled(gemm_isa isa) noexcept {
  if (isa == gemm_isa::avx2) return MASQUANT_GEMM_HAVE_AVX2 != 0;
  if (isa == gemm_isa::avx_vnni) return MASQUANT_GEMM_HAVE_YMM_VNNI != 0;
  if (isa == gemm_isa::avx512_vnni) return MASQUANT_GEMM_HAVE_AVX512_VNNI != 0;
  return isa == gemm_isa::automatic || isa == gemm_isa::portable;
}

/// Whether `isa` is compiled in and the CPU (and OS) running this process executes it.
inline bool gemm_isa_available(gemm_isa isa) noexcept {
  if (!gemm_isa_compiled(isa)) return false;
  const auto& cpu = detail::gemm::cpu();
  switch (isa) {
    case gemm_isa::automatic:
    case gemm_isa::portable:
      return true;
    case gemm_isa::avx2:
      return cpu.avx2;
    case gemm_isa::avx_vnni:
      return MASQUANT_GEMM_YMM_VNNI_VEX ? cpu.avx_vnni : cpu.avx512_vnni;
    case gemm_isa::avx512_vnni:
      return cpu.avx512_vnni;
  }
  return false;
}

/// The kernel int8_gemm runs for gemm_isa::automatic: the widest available one.
inline gemm_isa best_gemm_isa() noexcept {
  for (gemm_isa isa : {gemm_isa::avx512_vnni, gemm_isa::avx_vnni, gemm_isa::avx2}) {
    if (gemm_isa_available(isa)) return isa;
  }
  return gemm_isa::portable;
}

/// Every concrete ISA available here, portable first (for tests and benchmarks).
inline std::vector<gemm_isa> available_gemm_isas() {
  std::vector<gemm_isa> out;
  for (gemm_isa isa :
       {gemm_isa::portable, gemm_isa::avx2, gemm_isa::avx_vnni, gemm_isa::avx512_vnni}) {
    if (gemm_isa_available(isa)) out.push_back(isa);
  }
  return out;
}

}  // namespace masquant
