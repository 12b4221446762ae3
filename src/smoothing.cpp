// src/smoothing.cpp: part 3 of masquant_compiled (CMakeLists.txt), the smoothing solvers'
// fake-quant model; see <masquant/src.hpp>.
#define MASQUANT_SRC_PART 3
#include <masquant/src.hpp>
