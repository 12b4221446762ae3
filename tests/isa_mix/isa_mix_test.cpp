// isa_mix_test.cpp: one program, two translation units built with different -march flags and
// dispatch settings (baseline.cpp: x86-64-v2, MASQUANT_NO_DISPATCH; native.cpp: -march=native,
// dispatch), both calling the same layer. Each must run its own family — the portable one and
// the best of this CPU — whichever translation unit the linker sees first: CMake builds this
// test twice, with the two linked in either order. Before the per-build names (detail/isa/
// build.hpp), the linker kept one copy of the layer's code for both.
#include <boost/test/unit_test.hpp>
#include <cmath>

#include "isa_mix/mixed.hpp"
#include "support/layer_testing.hpp"

using namespace masquant;

BOOST_AUTO_TEST_SUITE(isa_mix)

BOOST_AUTO_TEST_CASE(each_translation_unit_runs_its_own_family) {
  testing::layer_case c;
  c.d_in = 96;
  c.d_out = 80;
  c.ranks = {0, 6};
  const quantized_linear layer(testing::random_params(c));
  const auto x = testing::random_input(21, c.d_in, 5);
  const auto ids = testing::random_ids(21, 2, 6);
  const isa_mix::result a = isa_mix::run_baseline(layer, x.cview(), ids);
  const isa_mix::result b = isa_mix::run_native(layer, x.cview(), ids);
  BOOST_TEST_MESSAGE("x86-64-v2 without dispatch ran " << a.ran << ", native ran " << b.ran);
  BOOST_TEST((a.expected == isa_family::portable));
  BOOST_TEST((a.ran == a.expected), "baseline ran " << a.ran);
  BOOST_TEST((b.ran == b.expected), "native ran " << b.ran << ", expected " << b.expected);
  // Same results where every family promises them: the token pass bit for bit, the outputs
  // within the layer's error bound.
  BOOST_TEST(a.q == b.q);
  testing::matrix<double> ref(x.rows, c.d_out);
  layer.reference_forward(x.cview(), ids, ref.view());
  const auto bound = testing::error_bound(layer, x, ids, true);
  for (const isa_mix::result* r : {&a, &b}) {
    for (index_t i = 0; i < x.rows; ++i)
      for (index_t j = 0; j < c.d_out; ++j)
        BOOST_TEST(
            std::abs(r->y[static_cast<std::size_t>(i * c.d_out + j)] - ref(i, j)) <= bound(i, j),
            r->ran << " (" << i << ", " << j << ")");
  }
}

BOOST_AUTO_TEST_SUITE_END()
