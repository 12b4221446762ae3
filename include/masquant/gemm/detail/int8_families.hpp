// int8_families.hpp: the INT8 GEMM compiled for every family of this build (int8_gemm-inl.hpp,
// detail/isa/foreach_family.hpp); int8_gemm.hpp dispatches to them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <masquant/config.hpp>
#include <masquant/gemm/detail/layout.hpp>
#include <masquant/gemm/detail/tile.hpp>
#include <masquant/isa.hpp>
#include <masquant/parallel.hpp>

// NOLINTNEXTLINE(bugprone-macro-parentheses): an #include path
#define MASQUANT_FAMILY_SOURCE <masquant/gemm/detail/int8_gemm-inl.hpp>
#define MASQUANT_FAMILY_AVX_VNNI  // the ymm VNNI kernel
#include <masquant/detail/isa/foreach_family.hpp>
