// variant.hpp: the hot paths bench_isa times, as one translation unit (variant.cpp) compiled
// twice with different flags and linked into one program: `native` with -march=native and
// MASQUANT_NO_DISPATCH (the static build a consumer gets with its own -march), `dispatch` with
// no -march and dispatch on (what a consumer gets by default). Each copy lives in its own
// namespace (BENCH_ISA_VARIANT).
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace bench_isa {

/// One hot path, ready to run: setup is done (data allocated and touched, weights packed).
struct hot_case {
  std::string name;           ///< e.g. "gemm/M:16"
  std::string family;         ///< the family this variant runs for it (isa_of)
  std::function<void()> run;  ///< one call
};

}  // namespace bench_isa

namespace bench_isa::native {
std::vector<hot_case> cases();
std::string describe();
}  // namespace bench_isa::native

namespace bench_isa::dispatch {
std::vector<hot_case> cases();
std::string describe();
}  // namespace bench_isa::dispatch
