// isa.hpp: the old home of the INT8 GEMM's instruction-set queries; they are now in
// <masquant/isa.hpp> (gemm_isa is isa_family, best_gemm_isa() is best_isa(), ...) and cover
// every hot path.
#pragma once

#include <masquant/isa.hpp>
