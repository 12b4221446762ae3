// isa.hpp: masquant's instruction-set families — what this translation unit compiled, what the
// CPU runs, what each hot path runs, and the overrides.
//
// Every hot path (fake-quant and quantization, statistics and Gram, the layer's token pass, the
// INT8/INT4 GEMM, the float/bf16 products of the low-rank branch) is compiled for every family
// at or above the translation unit's own flags and picks the best one the CPU runs, once, at run
// time: a program built without -march runs AVX-512 or AVX2 kernels where the CPU has them.
// MASQUANT_MAX_ISA (environment, read once) caps the choice for the whole process, as oneDNN's
// ONEDNN_MAX_CPU_ISA does; gemm_options::isa / forward_options::isa force a family per call.
// Define MASQUANT_NO_DISPATCH to compile only the family of the translation unit's own flags.
// See docs/api.md, "Instruction sets".
#pragma once

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <masquant/detail/isa/build.hpp>
#include <masquant/detail/isa/cpu.hpp>
#include <masquant/error.hpp>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

// Every family's namespace, tag and SIMD helpers (an empty family source).
// NOLINTNEXTLINE(bugprone-macro-parentheses): an #include path
#define MASQUANT_FAMILY_SOURCE <masquant/detail/isa/tags-inl.hpp>
#define MASQUANT_FAMILY_AVX_VNNI
#include <masquant/detail/isa/foreach_family.hpp>

namespace masquant {

/// An instruction-set family of masquant's kernels, in order of preference (`automatic`: the
/// best available one).
enum class isa_family : std::uint8_t {
  automatic = 0,
  portable = MASQUANT_ISA_PORTABLE,  ///< plain C++, for the translation unit's own flags
  avx2 = MASQUANT_ISA_AVX2,          ///< AVX2 + FMA
  avx_vnni = MASQUANT_ISA_AVX_VNNI,  ///< AVX2 + FMA + AVX-VNNI (VEX vpdpbusd on ymm)
  avx512 = MASQUANT_ISA_AVX512,      ///< AVX-512 F/BW/VL/VNNI (+ BF16 kernels where the CPU has it)
  avx512_vnni = avx512,              ///< the old name of avx512 (gemm_isa::avx512_vnni)
};

/// The old name of isa_family (when only the GEMM dispatched).
using gemm_isa = isa_family;

/// Stable name of a family ("avx512"), as MASQUANT_MAX_ISA spells it.
inline const char* to_string(isa_family f) noexcept {
  switch (f) {
    case isa_family::automatic:
      return "automatic";
    case isa_family::portable:
      return "portable";
    case isa_family::avx2:
      return "avx2";
    case isa_family::avx_vnni:
      return "avx_vnni";
    case isa_family::avx512:
      return "avx512";
  }
  return "unknown";
}

/// Writes the family's name.
inline std::ostream& operator<<(std::ostream& out, isa_family f) {
  return out << to_string(f);
}

/// The concrete families, in order of preference from the lowest.
inline constexpr isa_family isa_families[] = {isa_family::portable, isa_family::avx2,
                                              isa_family::avx_vnni, isa_family::avx512};

/// Parses a family name, ignoring case ("AVX2"); false (and `out` untouched) for anything else.
inline bool parse_isa_family(std::string_view name, isa_family& out) noexcept {
  for (isa_family f : isa_families) {
    const std::string_view want = to_string(f);
    bool same = name.size() == want.size();
    for (std::size_t i = 0; same && i < name.size(); ++i)
      same = std::tolower(static_cast<unsigned char>(name[i])) == want[i];
    if (same) {
      out = f;
      return true;
    }
  }
  return false;
}

/// The hot paths, each compiled per family and dispatched on its own.
enum class hot_path : std::uint8_t {
  quant,       ///< fake-quant, quantize, dequantize, compute_params, the row quantizers
  stats,       ///< channel_stats / modality_stats moments
  gram,        ///< channel_stats Gram matrix XᵀX
  token_pass,  ///< quantized_linear: smoothing + dynamic quantization of the tokens
  int8_gemm,   ///< the INT8/INT4 GEMM
  float_gemm,  ///< the float/bf16 products: the low-rank branch and A16 layers
};

/// Stable name of a hot path ("int8_gemm").
inline const char* to_string(hot_path h) noexcept {
  switch (h) {
    case hot_path::quant:
      return "quant";
    case hot_path::stats:
      return "stats";
    case hot_path::gram:
      return "gram";
    case hot_path::token_pass:
      return "token_pass";
    case hot_path::int8_gemm:
      return "int8_gemm";
    case hot_path::float_gemm:
      return "float_gemm";
  }
  return "unknown";
}

inline std::ostream& operator<<(std::ostream& out, hot_path h) {
  return out << to_string(h);
}

namespace detail::MASQUANT_BUILD {

inline constexpr isa_family static_family = static_cast<isa_family>(MASQUANT_ISA_STATIC);

inline bool compiled(isa_family f) noexcept {
  switch (f) {
    case isa_family::automatic:
      return true;
    case isa_family::portable:
    case isa_family::avx2:
    case isa_family::avx_vnni:
    case isa_family::avx512:
      return f == static_family || (f == isa_family::avx2 && MASQUANT_COMPILE_AVX2) ||
             (f == isa_family::avx_vnni && MASQUANT_COMPILE_AVX_VNNI) ||
             (f == isa_family::avx512 && MASQUANT_COMPILE_AVX512);
  }
  return false;
}

inline bool cpu_runs(isa_family f) noexcept {
  switch (f) {
    case isa_family::automatic:
    case isa_family::portable:
      return true;
    case isa_family::avx2:
      return cpu().avx2;
    case isa_family::avx_vnni:
      return cpu().avx_vnni;
    case isa_family::avx512:
      return cpu().avx512;
  }
  return false;
}

inline isa_family read_max_isa() {
  const char* value = std::getenv("MASQUANT_MAX_ISA");
  if (value == nullptr || *value == '\0') return isa_family::automatic;
  isa_family f = isa_family::automatic;
  MASQUANT_CHECK(parse_isa_family(value, f), errc::invalid_argument, "MASQUANT_MAX_ISA=\"", value,
                 "\" is not an instruction-set family: use portable, avx2, avx_vnni or avx512 "
                 "(or leave it unset)");
  return f;
}

/// MASQUANT_MAX_ISA, read on first use (automatic when unset).
inline isa_family max_isa() {
  static const isa_family cap = read_max_isa();
  return cap;
}

/// Compiled, run by the CPU, and within the cap — which never removes the static family: the
/// translation unit is compiled for it, there is nothing below it to run.
inline bool available(isa_family f) {
  if (f == isa_family::automatic) return true;
  if (!compiled(f) || !cpu_runs(f)) return false;
  const isa_family cap = max_isa();
  return cap == isa_family::automatic || f <= cap || f == static_family;
}

inline isa_family best_uncached() {
  for (isa_family f : {isa_family::avx512, isa_family::avx_vnni, isa_family::avx2}) {
    if (available(f)) return f;
  }
  return static_family;
}

/// What `automatic` runs (chosen once).
inline isa_family best() {
  static const isa_family f = best_uncached();
  return f;
}

/// Throws errc::not_supported: `requested` (naming `op`) is not available, and why.
[[noreturn]] __attribute__((noinline, cold)) inline void raise_unavailable(const char* op,
                                                                           isa_family requested) {
  const char* why = !compiled(requested)   ? " is not compiled into this translation unit"
                    : !cpu_runs(requested) ? " is not supported by this CPU"
                                           : " is above MASQUANT_MAX_ISA";
  std::string names;
  for (isa_family f : isa_families)
    if (available(f)) names += (names.empty() ? "" : ", ") + std::string(to_string(f));
  raise(errc::not_supported, cat(op, ": instruction-set family ", to_string(requested), why,
                                 " (available: ", names, ")"));
}

/// The concrete family to run for `requested`; errc::not_supported (naming `op`) for one that
/// is not available.
inline isa_family resolve(const char* op, isa_family requested) {
  if (requested == isa_family::automatic) return best();
  if (!available(requested)) raise_unavailable(op, requested);
  return requested;
}

/// The family whose code hot path `h` runs when family `f` (concrete, available) is chosen:
/// only the INT8 GEMM has avx_vnni kernels; the other paths run their avx2 code there.
constexpr isa_family implementation(hot_path h, isa_family f) noexcept {
  if (f == isa_family::avx_vnni && h != hot_path::int8_gemm &&
      static_family != isa_family::avx_vnni)
    return isa_family::avx2;
  return f;
}

/// Calls fn(tag) with the tag of the family namespace that holds hot path H's code for the
/// concrete, available family f. Contains no instruction-set-specific code itself.
template <hot_path H, class Fn>
decltype(auto) on_family(isa_family f, Fn&& fn) {
  f = implementation(H, f);
#if MASQUANT_COMPILE_AVX512
  if (f == isa_family::avx512) return fn(isa_avx512::tag{});
#endif
#if MASQUANT_COMPILE_AVX_VNNI
  if constexpr (H == hot_path::int8_gemm) {
    if (f == isa_family::avx_vnni) return fn(isa_avx_vnni::tag{});
  }
#endif
#if MASQUANT_COMPILE_AVX2
  if (f == isa_family::avx2) return fn(isa_avx2::tag{});
#endif
  return fn(MASQUANT_STATIC_NS::tag{});
}

}  // namespace detail::MASQUANT_BUILD

// --- queries: the answers hold for the calling translation unit -------------------------------

/// The family the translation unit's own flags enable (compiled with them; nothing below it is
/// compiled).
MASQUANT_BUILD_TAG inline isa_family baseline_isa() noexcept {
  return detail::MASQUANT_BUILD::static_family;
}

/// Whether this translation unit dispatches at run time (false under MASQUANT_NO_DISPATCH, or
/// off x86 / GCC / clang).
MASQUANT_BUILD_TAG inline bool isa_dispatch_enabled() noexcept {
  return MASQUANT_DISPATCH != 0;
}

/// Whether this translation unit contains the family's kernels (`automatic`: true).
MASQUANT_BUILD_TAG inline bool isa_compiled(isa_family f) noexcept {
  return detail::MASQUANT_BUILD::compiled(f);
}

/// Whether the CPU (and OS) running this process executes the family (cpuid and xgetbv, read
/// once; `portable` and `automatic`: true).
MASQUANT_BUILD_TAG inline bool cpu_has_isa(isa_family f) noexcept {
  return detail::MASQUANT_BUILD::cpu_runs(f);
}

/// Whether the CPU has AVX512_BF16 (the low-rank branch's vdpbf16ps kernel, within avx512).
MASQUANT_BUILD_TAG inline bool cpu_has_bf16_dot() noexcept {
  return detail::MASQUANT_BUILD::cpu().avx512_bf16;
}

/// The processor's name as cpuid reports it ("" where it does not).
MASQUANT_BUILD_TAG inline std::string cpu_name() {
  return detail::MASQUANT_BUILD::cpu_brand();
}

/// The cap from the environment variable MASQUANT_MAX_ISA (portable, avx2, avx_vnni or avx512,
/// any case), read once; `automatic` when unset. Throws errc::invalid_argument naming the value
/// when it is not a family (every dispatched call then throws it too, rather than ignoring it).
MASQUANT_BUILD_TAG inline isa_family max_isa() {
  return detail::MASQUANT_BUILD::max_isa();
}

/// Whether a call may run the family: compiled here, executable by the CPU, and not above
/// max_isa() — except the baseline family, which stays available under any cap.
MASQUANT_BUILD_TAG inline bool isa_available(isa_family f) {
  return detail::MASQUANT_BUILD::available(f);
}

/// The family `automatic` runs: the best available one (chosen once).
MASQUANT_BUILD_TAG inline isa_family best_isa() {
  return detail::MASQUANT_BUILD::best();
}

/// Every available family, lowest first (tests loop over them; the last is best_isa()).
MASQUANT_BUILD_TAG inline std::vector<isa_family> available_isas() {
  std::vector<isa_family> out;
  for (isa_family f : isa_families)
    if (isa_available(f)) out.push_back(f);
  return out;
}

/// The family whose kernels hot path `h` runs when `requested` is chosen (`automatic`: the best
/// one): avx_vnni has kernels of its own for the INT8 GEMM only. Throws errc::not_supported
/// when `requested` is not available.
MASQUANT_BUILD_TAG inline isa_family isa_of(hot_path h,
                                            isa_family requested = isa_family::automatic) {
  return detail::MASQUANT_BUILD::implementation(
      h, detail::MASQUANT_BUILD::resolve("isa_of", requested));
}

// Old names (INT8 GEMM only).
MASQUANT_BUILD_TAG inline bool gemm_isa_compiled(gemm_isa f) noexcept {
  return isa_compiled(f);
}
MASQUANT_BUILD_TAG inline bool gemm_isa_available(gemm_isa f) {
  return isa_available(f);
}
MASQUANT_BUILD_TAG inline gemm_isa best_gemm_isa() {
  return best_isa();
}
MASQUANT_BUILD_TAG inline std::vector<gemm_isa> available_gemm_isas() {
  return available_isas();
}

}  // namespace masquant
