// version.hpp: masquant's version; CMake reads the project version from these lines.
#pragma once

#define MASQUANT_VERSION_MAJOR 0  // incompatible API changes
#define MASQUANT_VERSION_MINOR 1  // added functionality, backwards compatible
#define MASQUANT_VERSION_PATCH 0  // bug fixes
#define MASQUANT_VERSION_STRING "0.1.0"

namespace masquant {

/// The library version as "MAJOR.MINOR.PATCH" (written into calibrated files' metadata).
inline constexpr const char* version_string = MASQUANT_VERSION_STRING;

}  // namespace masquant
