// src/svd.cpp: part 1 of masquant_compiled (CMakeLists.txt), Eigen's BDCSVD; see
// <masquant/src.hpp>.
#define MASQUANT_SRC_PART 1
#include <masquant/src.hpp>
