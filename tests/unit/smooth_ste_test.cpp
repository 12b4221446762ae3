// Tests of smooth/detail/ste_quantizer.hpp: the forward equals the quant layer's normative
// reference bit for bit, and the straight-through backward equals the exact derivative of the
// "frozen" surrogate (rounding offsets, clamp decisions and extreme elements fixed at the point),
// computed by float64 central differences.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstring>
#include <masquant/quant/reference.hpp>
#include <masquant/smooth/detail/ste_quantizer.hpp>
#include <random>
#include <vector>

#include "support/smooth_testing.hpp"

using namespace masquant;
using masquant::testing::frozen_quantizer;
using masquant::testing::matrix;

namespace {

std::vector<quant_spec> all_specs() {
  std::vector<quant_spec> specs;
  for (int bits : {2, 4, 6, 8})
    for (bool sym : {true, false}) {
      specs.push_back({bits, sym, granularity::per_row, 0});
      specs.push_back({bits, sym, granularity::per_tensor, 0});
      specs.push_back({bits, sym, granularity::per_group, 4});
      specs.push_back({bits, sym, granularity::per_group, 7});
    }
  specs.push_back({16, true, granularity::per_row, 0});
  return specs;
}

/// Rows with the awkward cases: normal values, exact ties of the absmax, zeros and -0, a row
/// of tiny values (Δ clamped at 1e-5), huge values (Δ clamped at 1e4), values at x/Δ = k + 0.5.
matrix<float> awkward(index_t rows, index_t cols, std::uint64_t seed) {
  auto x = masquant::testing::random_normal(rows, cols, 1.0f, seed);
  for (index_t c = 0; c < cols; ++c) {
    x(0, c) = (c % 3 == 0) ? -0.0f : x(0, c);
    if (rows > 1) x(1, c) = 1e-7f * (static_cast<float>(c) - 0.5f * static_cast<float>(cols));
    if (rows > 2) x(2, c) = 3e6f * static_cast<float>((c % 5) - 2);
    if (rows > 3) x(3, c) = (c % 2 ? 2.0f : -2.0f);  // absmax ties, both signs
    if (rows > 4) x(4, c) = 127.0f / 2.0f + 0.5f * static_cast<float>(c);  // halves after /Δ
  }
  return x;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(smooth_ste)

BOOST_AUTO_TEST_CASE(forward_equals_quant_reference_bit_for_bit) {
  for (const auto& spec : all_specs()) {
    for (index_t cols : {1, 5, 13, 64}) {
      auto x = awkward(9, cols, 7 + static_cast<std::uint64_t>(cols));
      matrix<float> ref(x.rows, x.cols), got(x.rows, x.cols);
      reference::fake_quant(x.cview(), spec, ref.view());
      detail::ste_forward<float>(spec, x.data.data(), cols, 0, x.rows, cols, got.data.data(), cols);
      BOOST_TEST_CONTEXT("spec " << spec << ", cols " << cols) {
        BOOST_TEST(std::memcmp(ref.data.data(), got.data.data(), ref.data.size() * sizeof(float)) ==
                   0);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(forward_of_a_row_range_leaves_other_rows) {
  const quant_spec spec{4, true, granularity::per_row, 0};
  auto x = masquant::testing::random_normal(6, 8, 1.0f, 3);
  matrix<float> y(6, 8, 42.0f), ref(6, 8);
  detail::ste_forward<float>(spec, x.data.data(), 8, 2, 4, 8, y.data.data(), 8);
  reference::fake_quant(x.cview(), spec, ref.view());
  for (index_t r = 0; r < 6; ++r)
    for (index_t c = 0; c < 8; ++c) BOOST_TEST(y(r, c) == ((r >= 2 && r < 4) ? ref(r, c) : 42.0f));
}

BOOST_AUTO_TEST_CASE(backward_is_the_derivative_of_the_frozen_surrogate) {
  std::mt19937_64 gen(11);
  std::normal_distribution<double> normal;
  int checked = 0;
  for (int bits : {3, 4, 8})
    for (bool sym : {true, false})
      for (granularity gran :
           {granularity::per_row, granularity::per_group, granularity::per_tensor}) {
        const quant_spec spec{bits, sym, gran, gran == granularity::per_group ? 3 : 0};
        // Row 0-1: ordinary; row 2: huge (Δ clamped at 1e4, most levels clamped, no gradient
        // through Δ); row 3: tiny (Δ clamped at 1e-5).
        const index_t rows = 4, cols = 7;
        std::vector<double> x(rows * cols), up(rows * cols), gx(rows * cols);
        for (index_t i = 0; i < rows * cols; ++i) {
          const double scale = i / cols == 2 ? 2e6 : i / cols == 3 ? 1e-6 : 2.0;
          x[static_cast<std::size_t>(i)] = normal(gen) * scale;
        }
        for (auto& v : up) v = normal(gen);
        detail::ste_backward<double>(spec, x.data(), cols, up.data(), cols, 0, rows, cols,
                                     gx.data());
        frozen_quantizer fq{spec, x, rows, cols, false};
        for (index_t i = 0; i < rows * cols; ++i) {
          const double h = 1e-6 * std::max(1.0, std::abs(x[i]));
          const double fd = fq.central_difference(x, up, static_cast<std::size_t>(i), h);
          BOOST_TEST_CONTEXT(spec << " element " << i << ": STE " << gx[i] << ", FD " << fd) {
            BOOST_TEST(std::abs(gx[i] - fd) <= 1e-6 * std::abs(fd) + 1e-8);
          }
          ++checked;
        }
      }
  BOOST_TEST(checked == 3 * 2 * 3 * 28);
}

BOOST_AUTO_TEST_CASE(backward_reaches_the_scale_and_respects_its_clamp) {
  // One row [3, 1, -0.5] at 4 bits symmetric: Δ = 3/7. With upstream g on element 1 only,
  // ∂/∂x1 = g (inside) and ∂/∂x0 = g·(rne(v1) - v1)/7 through Δ = |x0|/7.
  const quant_spec spec{4, true, granularity::per_row, 0};
  std::vector<double> x{3.0, 1.0, -0.5}, up{0.0, 2.0, 0.0}, gx(3);
  detail::ste_backward<double>(spec, x.data(), 3, up.data(), 3, 0, 1, 3, gx.data());
  const double v1 = 1.0 / (3.0 / 7.0);
  BOOST_TEST(gx[1] == 2.0);
  BOOST_TEST(gx[0] == 2.0 * (std::nearbyint(v1) - v1) / 7.0, boost::test_tools::tolerance(1e-14));
  BOOST_TEST(gx[2] == 0.0);
  // A row of tiny values: Δ is clamped at 1e-5, so no gradient flows to the extreme through it.
  std::vector<double> tiny{3e-5, 1e-5, -2e-5}, gt(3);
  detail::ste_backward<double>(spec, tiny.data(), 3, up.data(), 3, 0, 1, 3, gt.data());
  BOOST_TEST(gt[0] == 0.0);
  BOOST_TEST(gt[1] == 2.0);
  // Ties of the absmax share the scale gradient evenly, with the sign of each element.
  std::vector<double> tie{2.0, -2.0, 0.3}, up2{0.0, 0.0, 1.0}, gtie(3);
  detail::ste_backward<double>(spec, tie.data(), 3, up2.data(), 3, 0, 1, 3, gtie.data());
  BOOST_TEST(gtie[0] == -gtie[1]);
  BOOST_TEST(gtie[0] != 0.0);
}

BOOST_AUTO_TEST_CASE(identity_spec_passes_values_and_gradients) {
  const quant_spec spec{16, true, granularity::per_row, 0};
  std::vector<float> x{1.5f, -2.25f, 0.0f, 7.0f}, y(4), g{0.5f, 1.0f, -1.0f, 2.0f}, gx(4);
  detail::ste_forward<float>(spec, x.data(), 2, 0, 2, 2, y.data(), 2);
  detail::ste_backward<float>(spec, x.data(), 2, g.data(), 2, 0, 2, 2, gx.data());
  BOOST_TEST(y == x);
  BOOST_TEST(gx == g);
}

BOOST_AUTO_TEST_SUITE_END()
