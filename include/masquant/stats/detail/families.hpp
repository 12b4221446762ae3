// families.hpp: the statistics kernels compiled for every family of this build (kernels-inl.hpp,
// detail/isa/foreach_family.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <masquant/config.hpp>
#include <masquant/isa.hpp>
#include <masquant/parallel.hpp>
#include <masquant/stats/detail/workspace.hpp>
#include <utility>
#include <vector>

// NOLINTNEXTLINE(bugprone-macro-parentheses): an #include path
#define MASQUANT_FAMILY_SOURCE <masquant/stats/detail/kernels-inl.hpp>
#include <masquant/detail/isa/foreach_family.hpp>
