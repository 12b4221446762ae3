// Tests of smooth/alpha_search.hpp: the chosen α is the grid point with the best SQNR (against
// a brute force with the independent float64 forward), per modality; modalities without tokens;
// the split-versus-merged choice.

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <masquant/smooth/alpha_search.hpp>
#include <vector>

#include "support/smooth_testing.hpp"

using namespace masquant;
using namespace masquant::testing;

BOOST_AUTO_TEST_SUITE(smooth_alpha)

BOOST_AUTO_TEST_CASE(default_grid) {
  const auto g = default_alpha_grid();
  BOOST_TEST(g.size() == 13u);
  BOOST_TEST(g.front() == 0.3);
  BOOST_TEST(g.back() == 0.9);
  for (std::size_t k = 1; k < g.size(); ++k)
    BOOST_TEST(g[k] - g[k - 1] == 0.05, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(picks_the_best_grid_point_per_modality) {
  auto l = make_layer(24, 16, {160, 120}, {2, 9, 20}, 30.0f, 41);
  const auto in = l.inputs();
  const auto a = per_modality_absmax(in, 24);
  const auto w = weight_input_absmax({l.weight.cview()});
  for (int wbits : {4, 8}) {
    alpha_search_options o;
    o.weight_spec.bits = wbits;
    o.grid = {0.1, 0.3, 0.5, 0.7, 0.9};
    auto r = search_alpha(l.group(), in, a, w, o);
    BOOST_TEST(r.grid == o.grid);
    for (std::size_t m = 0; m < 2; ++m) {
      // Brute force with the independent forward.
      std::vector<double> brute;
      for (double alpha : o.grid) {
        auto s = smoothquant_factors(a[m], w, alpha);
        auto ref = naive_forward(l.weight, l.bias, l.tokens[m], s, s, o.weight_spec, o.act_spec);
        brute.push_back(db(ref.signal, ref.noise));
      }
      BOOST_TEST_CONTEXT("W" << wbits << " modality " << m) {
        BOOST_TEST(r.sqnr_db[m].size() == o.grid.size());
        std::size_t best = 0;
        for (std::size_t k = 0; k < brute.size(); ++k) {
          BOOST_TEST(r.sqnr_db[m][k] == brute[k], boost::test_tools::tolerance(1e-4));
          if (brute[k] > brute[best]) best = k;
        }
        // The chosen α is the argmax of its own table, and optimal for the brute force up to
        // float-GEMM noise (1e-3 dB).
        std::size_t chosen = 0;
        while (o.grid[chosen] != r.alpha[m]) ++chosen;
        for (double v : r.sqnr_db[m]) BOOST_TEST(r.sqnr_db[m][chosen] >= v);
        BOOST_TEST(brute[chosen] >= brute[best] - 1e-3);
        BOOST_TEST(r.factors[m] == smoothquant_factors(a[m], w, r.alpha[m]));
      }
    }
    BOOST_TEST(!r.merged_chosen);
    BOOST_TEST(std::isnan(r.split_score));
  }
}

BOOST_AUTO_TEST_CASE(modality_without_tokens_keeps_its_default) {
  auto l = make_layer(16, 8, {80, 0, 60}, {1, 5}, 30.0f, 42);
  const auto in = l.inputs();
  auto a = per_modality_absmax(in, 16);
  const auto w = weight_input_absmax({l.weight.cview()});
  alpha_search_options o;
  o.default_alpha = 0.6;
  auto r = search_alpha(l.group(), in, a, w, o);
  BOOST_TEST(r.sqnr_db[1].empty());
  BOOST_TEST(r.alpha[1] == 0.6);
  BOOST_TEST(r.factors[1] == r.merged);  // its absmax is all zero: absent, so s_all
  BOOST_TEST(r.sqnr_db[0].size() == 13u);
  BOOST_TEST(r.sqnr_db[2].size() == 13u);
  // Statistics from elsewhere (non-zero absmax, but no tokens here): SmoothQuant with the default.
  a[1] = a[2];
  r = search_alpha(l.group(), in, a, w, o);
  BOOST_TEST(r.factors[1] == smoothquant_factors(a[1], w, 0.6));
}

BOOST_AUTO_TEST_CASE(split_or_merged_choice) {
  const auto w_of = [](const synthetic_layer& l) {
    return weight_input_absmax({l.weight.cview()});
  };
  // Misaligned modalities: the split factors win.
  {
    auto l = make_layer(24, 16, {128, 128}, {3, 11}, 30.0f, 43);
    const auto in = l.inputs();
    const auto a = per_modality_absmax(in, 24);
    alpha_search_options o;
    o.weight_spec.bits = 4;
    o.choose_split_or_merged = true;
    // Without weights every modality counts 1 (the solvers know ids, not names).
    auto plain = search_alpha(l.group(), in, a, w_of(l), o);
    o.modality_weights = default_modality_weights({"text", "vision"});
    auto r = search_alpha(l.group(), in, a, w_of(l), o);
    BOOST_TEST(!r.merged_chosen);
    {
      auto split = modality_sqnr(l.group(), in, plain.factors, o);
      BOOST_TEST(plain.split_score == split[0].db + split[1].db,
                 boost::test_tools::tolerance(1e-12));
    }
    // Scores as the reference defines them: Σ_m w_m·SQNR_m (text 1, vision 0.5).
    auto split = modality_sqnr(l.group(), in, r.factors, o);
    auto merged = modality_sqnr(l.group(), in, smoothing_factors(2, r.merged), o);
    BOOST_TEST(r.split_score == split[0].db + 0.5 * split[1].db,
               boost::test_tools::tolerance(1e-12));
    BOOST_TEST(r.merged_score == merged[0].db + 0.5 * merged[1].db,
               boost::test_tools::tolerance(1e-12));
    BOOST_TEST(r.split_score > r.merged_score);
  }
  // A grid of one poor α at W4 (1: s = a, all the difficulty moved into the weight) against a
  // merged α of 0.5 on aligned modalities: merged wins.
  {
    auto l = make_layer(24, 16, {128, 128}, {}, 1.0f, 44);
    const auto in = l.inputs();
    const auto a = per_modality_absmax(in, 24);
    alpha_search_options o;
    o.weight_spec.bits = 4;
    o.grid = {1.0};
    o.choose_split_or_merged = true;
    o.modality_weights = {1.0, 1.0};
    auto r = search_alpha(l.group(), in, a, w_of(l), o);
    BOOST_TEST(r.merged_score > r.split_score);
    BOOST_TEST(r.merged_chosen);
    for (const auto& f : r.factors) BOOST_TEST(f == r.merged);
  }
}

BOOST_AUTO_TEST_CASE(bad_arguments) {
  auto l = make_layer(8, 4, {10, 10}, {}, 1.0f, 45);
  const auto in = l.inputs();
  const auto a = per_modality_absmax(in, 8);
  const auto w = weight_input_absmax({l.weight.cview()});
  alpha_search_options o;
  o.grid = {0.5, 1.5};
  BOOST_CHECK_THROW(search_alpha(l.group(), in, a, w, o), error);
  BOOST_CHECK_THROW(search_alpha(l.group(), in, {a[0]}, w, {}), error);
  BOOST_CHECK_THROW(search_alpha(l.group(), in, a, std::vector<float>(7, 1.0f), {}), error);
}

BOOST_AUTO_TEST_SUITE_END()
