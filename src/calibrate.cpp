// src/calibrate.cpp: part 4 of masquant_compiled (CMakeLists.txt), the stages, the pipeline and the
// report; see <masquant/src.hpp>.
#define MASQUANT_SRC_PART 4
#include <masquant/src.hpp>
