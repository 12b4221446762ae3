// src/compensation.cpp: part 2 of masquant_compiled (CMakeLists.txt), whitening and the randomized
// SVD; see <masquant/src.hpp>.
#define MASQUANT_SRC_PART 2
#include <masquant/src.hpp>
