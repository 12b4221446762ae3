// Tests of smooth/smoothquant.hpp: the SmoothQuant formula against a float64 transcription,
// floors and truncation, the zero-channel policies, absent modalities, group weight sources.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <masquant/smooth/smoothquant.hpp>
#include <vector>

#include "support/testing.hpp"

using namespace masquant;

namespace {

/// algorithm.md §5.2 in double, then rounded to float and truncated at 0.01.
float formula(double a, double w, double alpha) {
  const double s =
      std::max(1e-5, std::pow(std::max(a, 1e-5), alpha) / std::pow(std::max(w, 1e-5), 1.0 - alpha));
  return std::max(static_cast<float>(s), 0.01f);
}

bool all_finite_positive(const std::vector<float>& v) {
  for (float x : v)
    if (!(std::isfinite(x) && x > 0.0f)) return false;
  return true;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(smooth_factors)

BOOST_AUTO_TEST_CASE(formula_matches_float64_transcription) {
  std::vector<float> a{0.5f, 3.0f, 120.0f, 0.02f, 7.5f, 1e-3f};
  std::vector<float> w{0.1f, 0.02f, 0.5f, 1.5f, 7.5f, 0.3f};
  for (double alpha : {0.0, 0.3, 0.5, 0.75, 1.0}) {
    auto s = smoothquant_factors(a, w, alpha, zero_channel_policy::floor);
    for (std::size_t j = 0; j < a.size(); ++j)
      BOOST_TEST(s[j] == formula(a[j], w[j], alpha), "alpha " << alpha << " channel " << j);
  }
  // alpha = 0.5 by hand: sqrt(3 / 0.02) = 12.247...
  auto s = smoothquant_factors(a, w, 0.5);
  BOOST_TEST(s[1] == static_cast<float>(std::sqrt(3.0 / 0.02)));
}

BOOST_AUTO_TEST_CASE(truncation_keeps_factors_at_least_min_factor) {
  // a tiny, w large: the raw factor is 1e-3, truncated to 0.01 (or kept with a lower minimum).
  std::vector<float> a{1e-4f}, w{10.0f};
  BOOST_TEST(smoothquant_factors(a, w, 0.5)[0] == 0.01f);
  const float raw = smoothquant_factors(a, w, 0.5, zero_channel_policy::unit,
                                        static_cast<float>(smoothquant_floor))[0];
  BOOST_TEST(raw == static_cast<float>(std::sqrt(1e-4f) / std::sqrt(10.0)),
             boost::test_tools::tolerance(1e-6f));
}

BOOST_AUTO_TEST_CASE(zero_channels_follow_the_policy_and_never_give_nan) {
  // channel 0: a = 0; channel 1: w = 0 (zero weight column); channel 2: both 0; 3: normal.
  std::vector<float> a{0.0f, 4.0f, 0.0f, 2.0f}, w{0.5f, 0.0f, 0.0f, 0.5f};
  for (double alpha : {0.0, 0.5, 0.9, 1.0}) {
    auto unit = smoothquant_factors(a, w, alpha, zero_channel_policy::unit);
    auto floor = smoothquant_factors(a, w, alpha, zero_channel_policy::floor);
    BOOST_TEST(all_finite_positive(unit));
    BOOST_TEST(all_finite_positive(floor));
    BOOST_TEST(unit[0] == 1.0f);
    BOOST_TEST(unit[1] == 1.0f);
    BOOST_TEST(unit[2] == 1.0f);
    BOOST_TEST(unit[3] == formula(2.0, 0.5, alpha));
    for (std::size_t j = 0; j < a.size(); ++j) BOOST_TEST(floor[j] == formula(a[j], w[j], alpha));
  }
  // Values at the floor count as zero under the unit policy.
  std::vector<float> tiny{1e-6f}, one{1.0f};
  BOOST_TEST(smoothquant_factors(tiny, one, 0.5)[0] == 1.0f);
}

BOOST_AUTO_TEST_CASE(bad_arguments_throw) {
  std::vector<float> a{1.0f, 2.0f}, w{1.0f, 2.0f}, w3{1.0f, 2.0f, 3.0f};
  auto code = [](auto&& f) {
    try {
      f();
    } catch (const error& e) {
      return e.code();
    }
    return errc{};
  };
  BOOST_TEST(code([&] { smoothquant_factors(a, w3, 0.5); }) == errc::shape_mismatch);
  BOOST_TEST(code([&] { smoothquant_factors(a, w, 1.5); }) == errc::invalid_argument);
  BOOST_TEST(code([&] { smoothquant_factors(a, w, 0.5, zero_channel_policy::unit, 0.0f); }) ==
             errc::invalid_argument);
  std::vector<float> nan{1.0f, std::numeric_limits<float>::quiet_NaN()};
  BOOST_TEST(code([&] { smoothquant_factors(nan, w, 0.5); }) == errc::non_finite);
  std::vector<float> neg{1.0f, -1.0f};
  BOOST_TEST(code([&] { smoothquant_factors(a, neg, 0.5); }) == errc::invalid_argument);
  smoothquant_options o;
  o.alpha = {0.5, 0.6};
  BOOST_TEST(code([&] {
               smoothquant_modality_factors({a, a, a}, w, o);
             }) == errc::invalid_argument);
  // The message names the operation and the channel.
  try {
    smoothquant_factors(a, w, -0.1);
    BOOST_FAIL("no throw");
  } catch (const error& e) {
    BOOST_TEST(std::string(e.what()).find("smoothquant_factors") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(per_modality_and_merged_factors) {
  // text small everywhere; vision 30x larger in channels 1 and 3; audio absent (all zero).
  std::vector<float> text{1.0f, 1.0f, 0.5f, 2.0f}, vision{1.0f, 30.0f, 0.5f, 60.0f}, audio(4, 0.0f),
      w{0.2f, 0.4f, 0.1f, 0.3f};
  smoothquant_options o;
  o.alpha = {0.5, 0.7, 0.5};
  o.merged_alpha = 0.6;
  auto r = smoothquant_modality_factors({text, vision, audio}, w, o);
  BOOST_TEST(r.per_modality.size() == 3u);
  for (std::size_t j = 0; j < 4; ++j) {
    BOOST_TEST(r.per_modality[0][j] == formula(text[j], w[j], 0.5));
    BOOST_TEST(r.per_modality[1][j] == formula(vision[j], w[j], 0.7));
    BOOST_TEST(r.merged[j] == formula(std::max(text[j], vision[j]), w[j], 0.6));
  }
  // The absent modality gets the merged factor.
  BOOST_TEST(r.per_modality[2] == r.merged);
  // Over-smoothing ratio of §2: s_all / s_text = (a_all / a_text)^α at equal α.
  o.alpha = {0.5};
  o.merged_alpha = 0.5;
  r = smoothquant_modality_factors({text, vision, audio}, w, o);
  BOOST_TEST(r.merged[3] / r.per_modality[0][3] == std::sqrt(30.0f),
             boost::test_tools::tolerance(1e-5f));
}

BOOST_AUTO_TEST_CASE(absmax_helpers) {
  auto x = masquant::testing::random_normal(7, 5, 1.0f, 4);
  auto y = masquant::testing::random_normal(3, 5, 10.0f, 5);
  auto a = per_modality_absmax({x.cview(), y.cview(), matrix_view<const float>()}, 5);
  BOOST_TEST(a.size() == 3u);
  for (index_t j = 0; j < 5; ++j) {
    float mx = 0, my = 0;
    for (index_t n = 0; n < 7; ++n) mx = std::max(mx, std::abs(x(n, j)));
    for (index_t n = 0; n < 3; ++n) my = std::max(my, std::abs(y(n, j)));
    BOOST_TEST(a[0][static_cast<std::size_t>(j)] == mx);
    BOOST_TEST(a[1][static_cast<std::size_t>(j)] == my);
    BOOST_TEST(a[2][static_cast<std::size_t>(j)] == 0.0f);
  }
  // weight_input_absmax: column absmax; over a group, the max over the group.
  auto w1 = masquant::testing::random_normal(4, 5, 1.0f, 6);
  auto w2 = masquant::testing::random_normal(2, 5, 3.0f, 7);
  auto c1 = weight_input_absmax({w1.cview()});
  auto c12 = weight_input_absmax({w1.cview(), w2.cview()});
  for (index_t j = 0; j < 5; ++j) {
    float m1 = 0, m2 = 0;
    for (index_t o = 0; o < 4; ++o) m1 = std::max(m1, std::abs(w1(o, j)));
    for (index_t o = 0; o < 2; ++o) m2 = std::max(m2, std::abs(w2(o, j)));
    BOOST_TEST(c1[static_cast<std::size_t>(j)] == m1);
    BOOST_TEST(c12[static_cast<std::size_t>(j)] == std::max(m1, m2));
  }
  x(2, 3) = std::numeric_limits<float>::infinity();
  try {
    per_modality_absmax({x.cview()}, 5);
    BOOST_FAIL("no throw");
  } catch (const error& e) {
    BOOST_TEST(e.code() == errc::non_finite);
    BOOST_TEST(std::string(e.what()).find("row 2, column 3") != std::string::npos);
  }
}

BOOST_AUTO_TEST_CASE(group_weight_sources) {
  auto q = masquant::testing::random_normal(6, 4, 1.0f, 8);
  auto k = masquant::testing::random_normal(3, 4, 5.0f, 9);
  linear_group g{{q.cview(), k.cview()}, {}};
  std::vector<std::vector<float>> act{{1.0f, 2.0f, 3.0f, 4.0f}, {4.0f, 3.0f, 2.0f, 1.0f}};
  auto first = smoothquant_group_factors(g, act, weight_absmax_source::first);
  auto own = smoothquant_group_factors(g, act, weight_absmax_source::own);
  auto gmax = smoothquant_group_factors(g, act, weight_absmax_source::group_max);
  BOOST_TEST(first.size() == 2u);
  const auto wq = weight_input_absmax({q.cview()}), wk = weight_input_absmax({k.cview()}),
             wqk = weight_input_absmax({q.cview(), k.cview()});
  for (std::size_t m = 0; m < 2; ++m) {
    BOOST_TEST(first[0].per_modality[m] == smoothquant_factors(act[m], wq, 0.5));
    BOOST_TEST(first[1].per_modality[m] == first[0].per_modality[m]);  // k copies q's init
    BOOST_TEST(own[1].per_modality[m] == smoothquant_factors(act[m], wk, 0.5));
    BOOST_TEST(gmax[0].per_modality[m] == smoothquant_factors(act[m], wqk, 0.5));
    BOOST_TEST(gmax[1].per_modality[m] == gmax[0].per_modality[m]);
  }
}

BOOST_AUTO_TEST_SUITE_END()
