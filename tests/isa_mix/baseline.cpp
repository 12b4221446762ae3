// baseline.cpp: built with -march=x86-64-v2 -DMASQUANT_NO_DISPATCH (tests/CMakeLists.txt).
#include "isa_mix/mixed.hpp"
#include "support/isa_testing.hpp"

namespace isa_mix {
namespace {
struct unit {
  static masquant::isa_family expected() { return masquant::testing::expected_family(false); }
};
}  // namespace

result run_baseline(const masquant::quantized_linear& layer, masquant::matrix_view<const float> x,
                    const std::vector<masquant::modality_id>& ids) {
  return run<unit>(layer, x, ids);
}

}  // namespace isa_mix
