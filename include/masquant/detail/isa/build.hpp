// build.hpp: which instruction-set families this translation unit compiles, and the names that
// keep its code apart from translation units compiled with other flags.
//
// Families, in order of preference: portable (scalar C++), avx2 (AVX2 + FMA), avx_vnni (VEX
// vpdpbusd on ymm), avx512 (AVX-512 F/BW/VL/VNNI; BF16 kernels besides, used where the CPU has
// it). The *static* family is the best one the translation unit's own flags enable; it is
// compiled with those flags. With dispatch (the default on x86 with GCC or clang), every family
// above it is compiled as well, each inside a `#pragma GCC target` / `#pragma clang attribute`
// region that enables exactly its instruction set (detail/isa/foreach_family.hpp); families
// below it are not compiled (the static one is at least as good). MASQUANT_NO_DISPATCH compiles
// the static family only.
//
// ODR: all of it lives in namespace masquant::detail::MASQUANT_BUILD, whose name encodes the
// instruction-set flags of the translation unit and the dispatch mode, and the public functions
// that reach it carry MASQUANT_BUILD_TAG (an ABI tag with the same name). So translation units
// compiled with different -march flags never share a symbol on a hot path: each keeps its own
// kernels and its own dispatcher, whatever the link order.
#pragma once

#define MASQUANT_ISA_PORTABLE 1
#define MASQUANT_ISA_AVX2 2
#define MASQUANT_ISA_AVX_VNNI 3
#define MASQUANT_ISA_AVX512 4

#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__))
#define MASQUANT_X86 1
#else
#define MASQUANT_X86 0
#endif

// --- the static family ------------------------------------------------------------------------

#if MASQUANT_X86 && defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && \
    defined(__AVX512VNNI__) && defined(__AVX2__) && defined(__FMA__)
#define MASQUANT_ISA_STATIC MASQUANT_ISA_AVX512
#define MASQUANT_STATIC_NS isa_avx512
#elif MASQUANT_X86 && defined(__AVXVNNI__) && defined(__AVX2__) && defined(__FMA__)
#define MASQUANT_ISA_STATIC MASQUANT_ISA_AVX_VNNI
#define MASQUANT_STATIC_NS isa_avx_vnni
#elif MASQUANT_X86 && defined(__AVX2__) && defined(__FMA__)
#define MASQUANT_ISA_STATIC MASQUANT_ISA_AVX2
#define MASQUANT_STATIC_NS isa_avx2
#else
#define MASQUANT_ISA_STATIC MASQUANT_ISA_PORTABLE
#define MASQUANT_STATIC_NS isa_portable
#endif

// --- the dispatched families --------------------------------------------------------------------

#if MASQUANT_X86 && !defined(MASQUANT_NO_DISPATCH)
#define MASQUANT_DISPATCH 1
#else
#define MASQUANT_DISPATCH 0
#endif

#define MASQUANT_COMPILE_AVX2 (MASQUANT_DISPATCH && MASQUANT_ISA_STATIC < MASQUANT_ISA_AVX2)
#define MASQUANT_COMPILE_AVX_VNNI (MASQUANT_DISPATCH && MASQUANT_ISA_STATIC < MASQUANT_ISA_AVX_VNNI)
#define MASQUANT_COMPILE_AVX512 (MASQUANT_DISPATCH && MASQUANT_ISA_STATIC < MASQUANT_ISA_AVX512)
// The avx512 family's BF16 kernels (their own target region: the CPU may lack AVX512_BF16).
#define MASQUANT_COMPILE_BF16 \
  (MASQUANT_ISA_STATIC == MASQUANT_ISA_AVX512 || MASQUANT_COMPILE_AVX512)

// --- the build's name: one hex digit per four instruction-set macros of the compiler ------------

#if defined(__SSE3__)
#define MASQUANT_F0 1
#else
#define MASQUANT_F0 0
#endif
#if defined(__SSSE3__)
#define MASQUANT_F1 1
#else
#define MASQUANT_F1 0
#endif
#if defined(__SSE4_1__)
#define MASQUANT_F2 1
#else
#define MASQUANT_F2 0
#endif
#if defined(__SSE4_2__)
#define MASQUANT_F3 1
#else
#define MASQUANT_F3 0
#endif
#if defined(__POPCNT__)
#define MASQUANT_F4 1
#else
#define MASQUANT_F4 0
#endif
#if defined(__AVX__)
#define MASQUANT_F5 1
#else
#define MASQUANT_F5 0
#endif
#if defined(__AVX2__)
#define MASQUANT_F6 1
#else
#define MASQUANT_F6 0
#endif
#if defined(__FMA__)
#define MASQUANT_F7 1
#else
#define MASQUANT_F7 0
#endif
#if defined(__F16C__)
#define MASQUANT_F8 1
#else
#define MASQUANT_F8 0
#endif
#if defined(__BMI__)
#define MASQUANT_F9 1
#else
#define MASQUANT_F9 0
#endif
#if defined(__BMI2__)
#define MASQUANT_F10 1
#else
#define MASQUANT_F10 0
#endif
#if defined(__LZCNT__)
#define MASQUANT_F11 1
#else
#define MASQUANT_F11 0
#endif
#if defined(__MOVBE__)
#define MASQUANT_F12 1
#else
#define MASQUANT_F12 0
#endif
#if defined(__AVXVNNI__)
#define MASQUANT_F13 1
#else
#define MASQUANT_F13 0
#endif
#if defined(__AVX512F__)
#define MASQUANT_F14 1
#else
#define MASQUANT_F14 0
#endif
#if defined(__AVX512CD__)
#define MASQUANT_F15 1
#else
#define MASQUANT_F15 0
#endif
#if defined(__AVX512BW__)
#define MASQUANT_F16 1
#else
#define MASQUANT_F16 0
#endif
#if defined(__AVX512DQ__)
#define MASQUANT_F17 1
#else
#define MASQUANT_F17 0
#endif
#if defined(__AVX512VL__)
#define MASQUANT_F18 1
#else
#define MASQUANT_F18 0
#endif
#if defined(__AVX512VNNI__)
#define MASQUANT_F19 1
#else
#define MASQUANT_F19 0
#endif
#if defined(__AVX512BF16__)
#define MASQUANT_F20 1
#else
#define MASQUANT_F20 0
#endif
#if defined(__AVX512FP16__)
#define MASQUANT_F21 1
#else
#define MASQUANT_F21 0
#endif
#if defined(__AVX512VBMI__)
#define MASQUANT_F22 1
#else
#define MASQUANT_F22 0
#endif
#if defined(__AVX512VBMI2__)
#define MASQUANT_F23 1
#else
#define MASQUANT_F23 0
#endif
#if defined(__AVX512IFMA__)
#define MASQUANT_F24 1
#else
#define MASQUANT_F24 0
#endif
#if defined(__AVX512BITALG__)
#define MASQUANT_F25 1
#else
#define MASQUANT_F25 0
#endif
#if defined(__AVX512VPOPCNTDQ__)
#define MASQUANT_F26 1
#else
#define MASQUANT_F26 0
#endif
#if defined(__GFNI__)
#define MASQUANT_F27 1
#else
#define MASQUANT_F27 0
#endif
#if defined(__VAES__)
#define MASQUANT_F28 1
#else
#define MASQUANT_F28 0
#endif
#if defined(__VPCLMULQDQ__)
#define MASQUANT_F29 1
#else
#define MASQUANT_F29 0
#endif
#if defined(__SSE4A__) || defined(__FMA4__) || defined(__XOP__)
#define MASQUANT_F30 1
#else
#define MASQUANT_F30 0
#endif
#if defined(__ARM_NEON) || defined(__ARM_FEATURE_SVE) || defined(__ARM_FEATURE_DOTPROD)
#define MASQUANT_F31 1
#else
#define MASQUANT_F31 0
#endif
#if MASQUANT_DISPATCH
#define MASQUANT_MODE d
#else
#define MASQUANT_MODE s
#endif

#define MASQUANT_HEX_I(a, b, c, d) MASQUANT_HEX_##a##b##c##d
#define MASQUANT_HEX(a, b, c, d) MASQUANT_HEX_I(a, b, c, d)
#define MASQUANT_HEX_0000 0
#define MASQUANT_HEX_0001 1
#define MASQUANT_HEX_0010 2
#define MASQUANT_HEX_0011 3
#define MASQUANT_HEX_0100 4
#define MASQUANT_HEX_0101 5
#define MASQUANT_HEX_0110 6
#define MASQUANT_HEX_0111 7
#define MASQUANT_HEX_1000 8
#define MASQUANT_HEX_1001 9
#define MASQUANT_HEX_1010 a
#define MASQUANT_HEX_1011 b
#define MASQUANT_HEX_1100 c
#define MASQUANT_HEX_1101 d
#define MASQUANT_HEX_1110 e
#define MASQUANT_HEX_1111 f
#define MASQUANT_NAME_I(a, b, c, d, e, f, g, h, m) mq_##a##b##c##d##e##f##g##h##m
#define MASQUANT_NAME(a, b, c, d, e, f, g, h, m) MASQUANT_NAME_I(a, b, c, d, e, f, g, h, m)
#define MASQUANT_STR_I(x) #x
#define MASQUANT_STR(x) MASQUANT_STR_I(x)

/// The build's name, e.g. mq_00000ff7d: eight hex digits of instruction-set flags and the
/// dispatch mode (d: dispatch, s: static family only).
#define MASQUANT_BUILD                                                                \
  MASQUANT_NAME(MASQUANT_HEX(MASQUANT_F0, MASQUANT_F1, MASQUANT_F2, MASQUANT_F3),     \
                MASQUANT_HEX(MASQUANT_F4, MASQUANT_F5, MASQUANT_F6, MASQUANT_F7),     \
                MASQUANT_HEX(MASQUANT_F8, MASQUANT_F9, MASQUANT_F10, MASQUANT_F11),   \
                MASQUANT_HEX(MASQUANT_F12, MASQUANT_F13, MASQUANT_F14, MASQUANT_F15), \
                MASQUANT_HEX(MASQUANT_F16, MASQUANT_F17, MASQUANT_F18, MASQUANT_F19), \
                MASQUANT_HEX(MASQUANT_F20, MASQUANT_F21, MASQUANT_F22, MASQUANT_F23), \
                MASQUANT_HEX(MASQUANT_F24, MASQUANT_F25, MASQUANT_F26, MASQUANT_F27), \
                MASQUANT_HEX(MASQUANT_F28, MASQUANT_F29, MASQUANT_F30, MASQUANT_F31), \
                MASQUANT_MODE)

/// On every public function whose body reaches the build's dispatcher: its symbol then names
/// the build too (GCC and clang ABI tag), so the linker cannot hand one translation unit's
/// entry point to another built with other flags.
#if defined(__GNUC__) || defined(__clang__)
#define MASQUANT_BUILD_TAG __attribute__((abi_tag(MASQUANT_STR(MASQUANT_BUILD))))
#else
#define MASQUANT_BUILD_TAG
#endif
