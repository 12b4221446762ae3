// src/report.cpp: part 4 of masquant_compiled (CMakeLists.txt), see <masquant/src.hpp>.
#define MASQUANT_SRC_PART 4
#include <masquant/src.hpp>
