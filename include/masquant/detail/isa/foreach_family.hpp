// foreach_family.hpp: compiles the family source MASQUANT_FAMILY_SOURCE (a header path) once for
// every family of this build (detail/isa/build.hpp), each time in its own namespace
// masquant::detail::MASQUANT_BUILD::isa_<family> and, for the dispatched families, inside a
// region that gives every function defined there the family's instruction set (templates and
// lambdas included): `#pragma GCC target` with GCC, `#pragma clang attribute` with clang, as
// Highway's HWY_BEFORE_NAMESPACE does. The static family is compiled with the translation unit's
// own flags. MASQUANT_FAMILY_SOURCE_BF16, when defined, is compiled once more for the avx512
// family with AVX512_BF16 added.
//
// Include this from a header with `#pragma once`, after everything the source needs; a family
// source includes nothing itself and sees MASQUANT_FAMILY (its MASQUANT_ISA_* level) and the SIMD
// helpers of its family (namespace simd, detail/simd/simd-inl.hpp).
//
// No include guard: included once per family source.

#ifndef MASQUANT_FAMILY_SOURCE
#error "define MASQUANT_FAMILY_SOURCE before including foreach_family.hpp"
#endif

// What family sources and the SIMD helpers may use (they include nothing themselves).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <masquant/config.hpp>
#include <masquant/detail/isa/build.hpp>
#include <type_traits>
#if MASQUANT_X86
#include <immintrin.h>
#endif

// GCC 12.2 reports the _mm512_undefined_*() operands inside AVX-512 intrinsics as uninitialized
// (GCC bug 105593, fixed in 12.3); the warning is wrong, and would surface in every caller.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#endif

// --- the static family: the translation unit's own flags ---------------------------------------
#define MASQUANT_FAMILY MASQUANT_ISA_STATIC
namespace masquant::detail::MASQUANT_BUILD::MASQUANT_STATIC_NS {
#ifndef MASQUANT_SIMD_STATIC_DONE
#define MASQUANT_SIMD_STATIC_DONE
#include <masquant/detail/simd/simd-inl.hpp>
#endif
#include MASQUANT_FAMILY_SOURCE
}  // namespace masquant::detail::MASQUANT_BUILD::MASQUANT_STATIC_NS
#undef MASQUANT_FAMILY

// --- avx2 --------------------------------------------------------------------------------------
#if MASQUANT_COMPILE_AVX2
#define MASQUANT_FAMILY MASQUANT_ISA_AVX2
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
namespace masquant::detail::MASQUANT_BUILD::isa_avx2 {
#ifndef MASQUANT_SIMD_AVX2_DONE
#define MASQUANT_SIMD_AVX2_DONE
#include <masquant/detail/simd/simd-inl.hpp>
#endif
#include MASQUANT_FAMILY_SOURCE
}  // namespace masquant::detail::MASQUANT_BUILD::isa_avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#undef MASQUANT_FAMILY
#endif

// --- avx_vnni: only sources that have code of their own for it (MASQUANT_FAMILY_AVX_VNNI) -----
#if MASQUANT_COMPILE_AVX_VNNI && defined(MASQUANT_FAMILY_AVX_VNNI)
#define MASQUANT_FAMILY MASQUANT_ISA_AVX_VNNI
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,avxvnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,avxvnni")
#endif
namespace masquant::detail::MASQUANT_BUILD::isa_avx_vnni {
#ifndef MASQUANT_SIMD_AVX_VNNI_DONE
#define MASQUANT_SIMD_AVX_VNNI_DONE
#include <masquant/detail/simd/simd-inl.hpp>
#endif
#include MASQUANT_FAMILY_SOURCE
}  // namespace masquant::detail::MASQUANT_BUILD::isa_avx_vnni
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#undef MASQUANT_FAMILY
#endif

// --- avx512 ------------------------------------------------------------------------------------
#if MASQUANT_COMPILE_AVX512
#define MASQUANT_FAMILY MASQUANT_ISA_AVX512
#if defined(__clang__)
// clang-format off
#pragma clang attribute push(__attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni"))), apply_to = function)
// clang-format on
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")
#endif
namespace masquant::detail::MASQUANT_BUILD::isa_avx512 {
#ifndef MASQUANT_SIMD_AVX512_DONE
#define MASQUANT_SIMD_AVX512_DONE
#include <masquant/detail/simd/simd-inl.hpp>
#endif
#include MASQUANT_FAMILY_SOURCE
}  // namespace masquant::detail::MASQUANT_BUILD::isa_avx512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#undef MASQUANT_FAMILY
#endif

// --- avx512 with AVX512_BF16 (only the kernels that use it; the CPU may lack it) ---------------
#if MASQUANT_COMPILE_BF16 && defined(MASQUANT_FAMILY_SOURCE_BF16)
#define MASQUANT_FAMILY MASQUANT_ISA_AVX512
#if defined(__clang__)
// clang-format off
#pragma clang attribute push(__attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16"))), apply_to = function)
// clang-format on
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16")
#endif
namespace masquant::detail::MASQUANT_BUILD::isa_avx512 {
#include MASQUANT_FAMILY_SOURCE_BF16
}  // namespace masquant::detail::MASQUANT_BUILD::isa_avx512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#undef MASQUANT_FAMILY
#endif

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

#undef MASQUANT_FAMILY_SOURCE
#undef MASQUANT_FAMILY_SOURCE_BF16
#undef MASQUANT_FAMILY_AVX_VNNI
