// src/calibrate.cpp: part 5 of masquant_compiled (CMakeLists.txt), see <masquant/src.hpp>.
#define MASQUANT_SRC_PART 5
#include <masquant/src.hpp>
