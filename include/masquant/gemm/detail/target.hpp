// target.hpp: which GEMM kernels this build compiles, and the function attributes they carry.
//
// Static selection (the default): a kernel is compiled when the translation unit's flags enable
// its instruction set (__AVX512VNNI__, __AVXVNNI__, __AVX2__). Runtime dispatch (define
// MASQUANT_GEMM_RUNTIME_DISPATCH in every TU, built with the same baseline -march): every x86
// kernel is compiled, each with its own __attribute__((target)), and the CPU picks at run time.
//
// ODR: each kernel is a template on its own kernel type and carries the same target attribute in
// every TU, so no symbol is ever compiled with two different instruction sets. This holds as long
// as every TU of a program sees the same -march and the same MASQUANT_GEMM_* macros, as for any
// header-only library.
#pragma once

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define MASQUANT_GEMM_X86 1
#include <immintrin.h>
#else
#define MASQUANT_GEMM_X86 0
#endif

#if MASQUANT_GEMM_X86 && defined(MASQUANT_GEMM_RUNTIME_DISPATCH)
#define MASQUANT_GEMM_HAVE_AVX2 1
#define MASQUANT_GEMM_HAVE_YMM_VNNI 1
#define MASQUANT_GEMM_YMM_VNNI_VEX 1  // the VEX form runs on every AVX-VNNI CPU
#define MASQUANT_GEMM_HAVE_AVX512_VNNI 1
#elif MASQUANT_GEMM_X86
#if defined(__AVX2__) && defined(__FMA__)
#define MASQUANT_GEMM_HAVE_AVX2 1
#else
#define MASQUANT_GEMM_HAVE_AVX2 0
#endif
#if defined(__AVXVNNI__) && defined(__AVX2__) && defined(__FMA__)
#define MASQUANT_GEMM_HAVE_YMM_VNNI 1
#define MASQUANT_GEMM_YMM_VNNI_VEX 1
#elif defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__) && defined(__FMA__)
// No AVX-VNNI, but the EVEX encoding of the same ymm instruction exists (AVX512-VL VNNI).
#define MASQUANT_GEMM_HAVE_YMM_VNNI 1
#define MASQUANT_GEMM_YMM_VNNI_VEX 0
#else
#define MASQUANT_GEMM_HAVE_YMM_VNNI 0
#define MASQUANT_GEMM_YMM_VNNI_VEX 0
#endif
#if defined(__AVX512VNNI__) && defined(__AVX512VL__) && defined(__AVX512BW__) && defined(__FMA__)
#define MASQUANT_GEMM_HAVE_AVX512_VNNI 1
#else
#define MASQUANT_GEMM_HAVE_AVX512_VNNI 0
#endif
#else
#define MASQUANT_GEMM_HAVE_AVX2 0
#define MASQUANT_GEMM_HAVE_YMM_VNNI 0
#define MASQUANT_GEMM_YMM_VNNI_VEX 0
#define MASQUANT_GEMM_HAVE_AVX512_VNNI 0
#endif

#if MASQUANT_GEMM_X86
#define MASQUANT_GEMM_TARGET_AVX2 __attribute__((target("avx2,fma")))
#if MASQUANT_GEMM_YMM_VNNI_VEX
#define MASQUANT_GEMM_TARGET_YMM_VNNI __attribute__((target("avx2,fma,avxvnni")))
#else
#define MASQUANT_GEMM_TARGET_YMM_VNNI \
  __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")))
#endif
#define MASQUANT_GEMM_TARGET_AVX512 \
  __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")))
#endif
