// native.cpp: built with -march=native, dispatch on (tests/CMakeLists.txt).
#include "isa_mix/mixed.hpp"
#include "support/isa_testing.hpp"

namespace isa_mix {
namespace {
struct unit {
  static masquant::isa_family expected() { return masquant::testing::expected_family(true); }
};
}  // namespace

result run_native(const masquant::quantized_linear& layer, masquant::matrix_view<const float> x,
                  const std::vector<masquant::modality_id>& ids) {
  return run<unit>(layer, x, ids);
}

}  // namespace isa_mix
