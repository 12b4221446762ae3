// src/smoothing.cpp: part 3 of masquant_compiled (CMakeLists.txt), see <masquant/src.hpp>.
#define MASQUANT_SRC_PART 3
#include <masquant/src.hpp>
