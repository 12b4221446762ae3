// Tests of smooth/sqnr.hpp and the smoothed forward: computational invariance with the
// quantizers off, agreement with an independent float64 evaluation, the misalignment effect of
// a merged factor (algorithm.md §2, §11.2, §11.3), report stages, determinism, errors.

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <masquant/smooth/detail/fake_quant_model.hpp>
#include <masquant/smooth/smoothquant.hpp>
#include <masquant/smooth/sqnr.hpp>
#include <random>
#include <vector>

#include "support/smooth_testing.hpp"

using namespace masquant;
using namespace masquant::testing;

namespace {

const quant_spec identity{16, true, granularity::per_row, 0};

std::vector<float> random_factors(index_t d, std::uint64_t seed, float lo = 0.05f,
                                  float hi = 20.0f) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<float> u(std::log(lo), std::log(hi));
  std::vector<float> s(static_cast<std::size_t>(d));
  for (auto& v : s) v = std::exp(u(gen));
  return s;
}

template <class F>
errc code_of(F&& f) {
  try {
    f();
  } catch (const error& e) {
    return e.code();
  }
  return errc{};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(smooth_sqnr)

BOOST_AUTO_TEST_CASE(invariance_with_quantizers_off_float64) {
  // ŷ = (x ⊘ s)(W·diag(s))ᵀ = x·Wᵀ for any positive s: split (one s per modality) and merged.
  auto l = make_layer(24, 10, {50, 40, 30}, {2, 11}, 30.0f, 21);
  const auto g = l.group();
  const auto in = l.inputs();
  detail::fake_quant_model<double> ev(g, in, identity, identity, {});
  std::vector<std::vector<double>> s;
  for (std::uint64_t m = 0; m < 3; ++m) {
    auto f = random_factors(24, 100 + m, 1e-2f, 1e3f);
    s.emplace_back(f.begin(), f.end());
  }
  for (index_t m = 0; m < 3; ++m) {
    const auto& sm = s[static_cast<std::size_t>(m)];
    auto split = ev.run(m, sm.data(), sm.data(), nullptr, in[m].rows(), true);
    auto merged = ev.run(m, s[0].data(), s[0].data(), nullptr, in[m].rows(), true);
    BOOST_TEST(split.signal > 0);
    // Relative RMS error below 1e-12.
    BOOST_TEST(split.noise <= 1e-24 * split.signal);
    BOOST_TEST(merged.noise <= 1e-24 * merged.signal);
    // The control: mismatched activation and weight factors break invariance.
    auto broken = ev.run(m, sm.data(), s[(m + 1) % 3].data(), nullptr, in[m].rows(), true);
    BOOST_TEST(broken.noise > 1e-3 * broken.signal);
  }
}

BOOST_AUTO_TEST_CASE(invariance_with_quantizers_off_float) {
  auto l = make_layer(16, 8, {40, 40}, {5}, 30.0f, 22);
  smoothing_eval_options o;
  o.weight_spec = identity;
  o.act_spec = identity;
  smoothing_factors f{random_factors(16, 1), random_factors(16, 2)};
  auto st = modality_sqnr(l.group(), l.inputs(), f, o);
  for (const auto& s : st) {
    BOOST_TEST(s.tokens == 40);
    BOOST_TEST(s.db > 110.0);  // float GEMM rounding only
  }
}

BOOST_AUTO_TEST_CASE(matches_independent_float64_evaluation) {
  auto l = make_layer(20, 12, {60, 45, 0}, {1, 7, 13}, 30.0f, 23);
  const auto in = l.inputs();
  const auto a = per_modality_absmax(in, 20);
  const auto w = weight_input_absmax({l.weight.cview()});
  const auto sq = smoothquant_modality_factors(a, w);
  struct config {
    quant_spec wspec, aspec;
  };
  const std::vector<config> configs{
      {{8, true, granularity::per_row, 0}, {8, true, granularity::per_row, 0}},
      {{4, true, granularity::per_row, 0}, {8, true, granularity::per_row, 0}},
      {{4, true, granularity::per_row, 0}, {6, true, granularity::per_row, 0}},
      {{4, false, granularity::per_group, 8}, identity},
      {{3, true, granularity::per_tensor, 0}, {8, false, granularity::per_group, 6}},
  };
  for (const auto& c : configs) {
    smoothing_eval_options o;
    o.weight_spec = c.wspec;
    o.act_spec = c.aspec;
    // multiweight, smoothquant, rtn and shared-weight stages.
    const smoothing_factors merged(3, sq.merged), none(3);
    const smoothing_factors shared(3, sq.per_modality[0]);
    struct stage {
      const char* name;
      const smoothing_factors& act;
      const smoothing_factors& wgt;
    };
    for (const stage& st : {stage{"multiweight", sq.per_modality, sq.per_modality},
                            stage{"smoothquant", merged, merged}, stage{"rtn", none, none},
                            stage{"shared", sq.per_modality, shared}}) {
      auto got = modality_sqnr(l.group(), in, st.act, st.wgt, o);
      BOOST_TEST(got.size() == 3u);
      for (std::size_t m = 0; m < 2; ++m) {
        auto ref =
            naive_forward(l.weight, l.bias, l.tokens[m], st.act[m], st.wgt[m], c.wspec, c.aspec);
        BOOST_TEST_CONTEXT(st.name << " " << c.wspec << " / " << c.aspec << " modality " << m) {
          BOOST_TEST(got[m].signal == ref.signal, boost::test_tools::tolerance(1e-5));
          BOOST_TEST(got[m].noise == ref.noise, boost::test_tools::tolerance(1e-3));
          BOOST_TEST(got[m].db == db(ref.signal, ref.noise), boost::test_tools::tolerance(1e-4));
        }
      }
      BOOST_TEST(got[2].tokens == 0);
      BOOST_TEST(std::isnan(got[2].db));
    }
  }
}

BOOST_AUTO_TEST_CASE(group_sqnr_is_over_the_concatenated_outputs) {
  auto l = make_layer(16, 6, {50, 30}, {3}, 30.0f, 24);
  auto k = random_normal(9, 16, 0.5f, 25);
  std::vector<float> kb(9, 0.25f);
  linear_group g{{l.weight.cview(), k.cview()}, {l.bias, kb}};
  smoothing_eval_options o;
  o.weight_spec.bits = 4;
  smoothing_factors f{random_factors(16, 3, 0.5f, 2.0f), random_factors(16, 4, 0.5f, 2.0f)};
  auto got = modality_sqnr(g, l.inputs(), f, o);
  for (std::size_t m = 0; m < 2; ++m) {
    auto q = naive_forward(l.weight, l.bias, l.tokens[m], f[m], f[m], o.weight_spec, o.act_spec);
    auto kk = naive_forward(k, kb, l.tokens[m], f[m], f[m], o.weight_spec, o.act_spec);
    BOOST_TEST(got[m].signal == q.signal + kk.signal, boost::test_tools::tolerance(1e-5));
    BOOST_TEST(got[m].noise == q.noise + kk.noise, boost::test_tools::tolerance(1e-3));
  }
}

BOOST_AUTO_TEST_CASE(merged_factor_hurts_the_non_dominant_modality) {
  // Vision is 30x larger than text in 3 of 32 channels. SmoothQuant's merged factor is set by
  // vision there (κ = 30^α over-smoothing for text) and costs text SQNR; text's own factor
  // does not (Fig. 1's direction). Several seeds, W4A8 and W8A8.
  for (std::uint64_t seed : {31u, 32u, 33u}) {
    auto l = make_layer(32, 24, {256, 256}, {3, 17, 25}, 30.0f, seed);
    const auto in = l.inputs();
    const auto sq = smoothquant_modality_factors(per_modality_absmax(in, 32),
                                                 weight_input_absmax({l.weight.cview()}));
    for (std::size_t j = 0; j < 32; ++j) BOOST_TEST(sq.merged[j] >= sq.per_modality[0][j]);
    for (int wbits : {4, 8}) {
      smoothing_eval_options o;
      o.weight_spec.bits = wbits;
      const smoothing_factors merged(2, sq.merged);
      auto split = modality_sqnr(l.group(), in, sq.per_modality, o);
      auto all = modality_sqnr(l.group(), in, merged, o);
      BOOST_TEST_MESSAGE("seed " << seed << " W" << wbits << "A8 text: own " << split[0].db
                                 << " dB, merged " << all[0].db << " dB; vision: own "
                                 << split[1].db << ", merged " << all[1].db);
      BOOST_TEST(split[0].db > all[0].db + 1.0, "seed " << seed << " W" << wbits);
    }
  }
}

BOOST_AUTO_TEST_CASE(evaluator_reuses_outputs_across_stages) {
  auto l = make_layer(24, 300, {600, 90, 0}, {2, 7}, 30.0f, 28);
  const auto in = l.inputs();
  const auto sq = smoothquant_modality_factors(per_modality_absmax(in, 24),
                                               weight_input_absmax({l.weight.cview()}));
  smoothing_eval_options o;
  o.weight_spec.bits = 4;
  sqnr_evaluator eval(l.group(), in, o);
  const smoothing_factors none(3), merged(3, sq.merged), shared(3, sq.per_modality[0]);
  struct stage {
    const smoothing_factors& act;
    const smoothing_factors& wgt;
  };
  for (int pass = 0; pass < 2; ++pass)
    for (const stage& st :
         {stage{none, none}, stage{merged, merged}, stage{sq.per_modality, sq.per_modality},
          stage{sq.per_modality, shared}}) {
      const auto got = eval(st.act, st.wgt);
      const auto ref = modality_sqnr(l.group(), in, st.act, st.wgt, o);
      for (std::size_t m = 0; m < 2; ++m) {
        BOOST_TEST(got[m].signal == ref[m].signal, boost::test_tools::tolerance(1e-12));
        BOOST_TEST(got[m].noise == ref[m].noise, boost::test_tools::tolerance(1e-9));
      }
      BOOST_TEST(got[2].tokens == 0);
    }
  BOOST_TEST(eval(sq.per_modality)[0].noise == eval(sq.per_modality, sq.per_modality)[0].noise);
  thread_pool pool(3);
  o.parallel = pool.as_function();
  sqnr_evaluator par(l.group(), in, o);
  BOOST_TEST(par(merged)[0].noise == eval(merged)[0].noise);
  BOOST_CHECK_THROW(eval(smoothing_factors(2)), error);
}

BOOST_AUTO_TEST_CASE(same_result_for_any_thread_count) {
  auto l = make_layer(40, 600, {700, 130}, {4}, 30.0f, 26);  // several slabs, token and row chunks
  smoothing_eval_options o;
  o.weight_spec.bits = 4;
  smoothing_factors f{random_factors(40, 5, 0.5f, 2.0f), random_factors(40, 6, 0.5f, 2.0f)};
  auto serial = modality_sqnr(l.group(), l.inputs(), f, o);
  for (int threads : {2, 3}) {
    thread_pool pool(threads);
    o.parallel = pool.as_function();
    auto par = modality_sqnr(l.group(), l.inputs(), f, o);
    for (std::size_t m = 0; m < 2; ++m) {
      BOOST_TEST(par[m].signal == serial[m].signal);
      BOOST_TEST(par[m].noise == serial[m].noise);
    }
  }
}

BOOST_AUTO_TEST_CASE(errors_name_the_problem) {
  auto l = make_layer(8, 4, {10, 10}, {}, 1.0f, 27);
  smoothing_factors f(2, std::vector<float>(8, 1.0f));
  BOOST_TEST(code_of([&] { modality_sqnr(l.group(), l.inputs(), smoothing_factors(1), {}); }) ==
             errc::shape_mismatch);
  auto bad = f;
  bad[1][3] = 0.0f;
  BOOST_TEST(code_of([&] { modality_sqnr(l.group(), l.inputs(), bad, {}); }) ==
             errc::invalid_argument);
  smoothing_eval_options o;
  o.act_spec.gran = granularity::per_tensor;
  BOOST_TEST(code_of([&] { modality_sqnr(l.group(), l.inputs(), f, o); }) == errc::not_supported);
  l.tokens[1](7, 2) = std::numeric_limits<float>::quiet_NaN();
  try {
    modality_sqnr(l.group(), l.inputs(), f);
    BOOST_FAIL("no throw");
  } catch (const error& e) {
    BOOST_TEST(e.code() == errc::non_finite);
    const std::string msg = e.what();
    BOOST_TEST(msg.find("modality 1") != std::string::npos);
    BOOST_TEST(msg.find("row 7, column 2") != std::string::npos);
  }
  auto w2 = random_normal(3, 9, 1.0f, 1);
  linear_group mixed{{l.weight.cview(), w2.cview()}, {}};
  BOOST_TEST(code_of([&] { modality_sqnr(mixed, l.inputs(), f); }) == errc::shape_mismatch);
}

BOOST_AUTO_TEST_SUITE_END()
