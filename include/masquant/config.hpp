// config.hpp: compile-time configuration of masquant (index type, exceptions, debug asserts).
#pragma once

#include <cstddef>

namespace masquant {

/// Signed index type for extents and strides (matches Eigen::Index and std::ptrdiff_t).
using index_t = std::ptrdiff_t;

}  // namespace masquant

// Define MASQUANT_NO_EXCEPTIONS (or build with -fno-exceptions) to turn every reported error into
// a call of MASQUANT_ERROR_HANDLER followed by std::abort().
#if !defined(MASQUANT_NO_EXCEPTIONS) && !defined(__cpp_exceptions) && !defined(__EXCEPTIONS)
#define MASQUANT_NO_EXCEPTIONS
#endif

// MASQUANT_ASSERT guards internal invariants that no input can break; it is active in debug
// builds and can be redefined by the host (as Eigen's eigen_assert).
#ifndef MASQUANT_ASSERT
#ifdef NDEBUG
#define MASQUANT_ASSERT(cond) static_cast<void>(0)
#else
#include <cassert>
#define MASQUANT_ASSERT(cond) assert(cond)
#endif
#endif
