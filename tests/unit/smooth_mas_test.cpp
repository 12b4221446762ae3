// Tests of smooth/mas.hpp and smooth/objective.hpp: the analytic gradient against float64
// finite differences (quantizers off) and against the frozen straight-through surrogate
// (quantizers on, through both dynamic scales); the loss normalisation of algorithm.md §11.8;
// learning, determinism, tied and independent groups, zero channels, empty modalities.

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <masquant/quant/smoothed_weight.hpp>
#include <masquant/smooth/detail/fake_quant_model.hpp>
#include <masquant/smooth/mas.hpp>
#include <random>
#include <vector>

#include "support/smooth_testing.hpp"

using namespace masquant;
using namespace masquant::testing;

namespace {

const quant_spec identity{16, true, granularity::per_row, 0};

std::vector<double> random_positive(index_t d, std::uint64_t seed, double lo, double hi) {
  std::mt19937_64 gen(seed);
  std::uniform_real_distribution<double> u(std::log(lo), std::log(hi));
  std::vector<double> s(static_cast<std::size_t>(d));
  for (auto& v : s) v = std::exp(u(gen));
  return s;
}

bool close(double a, double b, double rel, double abs) {
  return std::abs(a - b) <= rel * std::max(std::abs(a), std::abs(b)) + abs;
}

/// Σ_m w_m·loss_m / (D·N) and its gradients w.r.t. the activation factors a_m and the weight
/// factors b_m, from the double evaluator.
struct evaluated {
  double loss = 0;
  std::vector<std::vector<double>> ga, gb;
};
evaluated evaluate(detail::fake_quant_model<double>& ev, const modality_inputs& in,
                   const std::vector<std::vector<double>>& a,
                   const std::vector<std::vector<double>>& b, const std::vector<double>& w,
                   bool squared) {
  index_t n = 0;
  for (const auto& x : in) n += x.rows();
  const double norm = static_cast<double>(ev.outputs()) * static_cast<double>(n);
  evaluated e;
  for (std::size_t m = 0; m < in.size(); ++m) {
    e.ga.emplace_back(static_cast<std::size_t>(ev.d_in()), 0.0);
    e.gb.emplace_back(static_cast<std::size_t>(ev.d_in()), 0.0);
    const auto s = ev.run(static_cast<index_t>(m), a[m].data(), b[m].data(), nullptr, in[m].rows(),
                          squared, w[m] / norm, e.ga[m].data(), e.gb[m].data());
    e.loss += w[m] * s.loss / norm;
  }
  return e;
}

mas_options small_options(int wbits, index_t steps, index_t batch) {
  mas_options o;
  o.weight_spec.bits = wbits;
  o.steps = steps;
  o.batch_tokens = batch;
  return o;
}

smoothing_factors sq_init(const synthetic_layer& l) {
  const auto in = l.inputs();
  return smoothquant_modality_factors(per_modality_absmax(in, l.weight.cols),
                                      weight_input_absmax({l.weight.cview()}))
      .per_modality;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(smooth_mas)

// (3a) Quantizers off: ŷ = x·diag(b/a)·Wᵀ is smooth in a and b (a ≠ b; with a = b the loss is
// constant by invariance), so each chain-rule path must match central differences.
BOOST_AUTO_TEST_CASE(gradient_matches_finite_differences_with_quantizers_off) {
  auto l = make_layer(7, 4, {6, 5, 4}, {2}, 30.0f, 51);
  auto k = random_normal(3, 7, 0.3f, 52);
  linear_group g{{l.weight.cview(), k.cview()}, {}};  // a group: stacked outputs
  const auto in = l.inputs();
  detail::fake_quant_model<double> ev(g, in, identity, identity, {});
  const std::vector<double> w{1.0, 0.5, 1.0};
  std::vector<std::vector<double>> a, b;
  for (std::uint64_t m = 0; m < 3; ++m) {
    a.push_back(random_positive(7, 10 + m, 0.2, 5.0));
    b.push_back(random_positive(7, 20 + m, 0.2, 5.0));
  }
  int checked = 0;
  for (bool squared : {false, true}) {
    const auto e = evaluate(ev, in, a, b, w, squared);
    BOOST_TEST(e.loss > 0);
    for (std::size_t m = 0; m < 3; ++m)
      for (std::size_t j = 0; j < 7; ++j)
        for (bool act : {true, false}) {
          auto& f = act ? a : b;
          const double x0 = f[m][j], h = 1e-6 * x0;
          f[m][j] = x0 + h;
          const double lp = evaluate(ev, in, a, b, w, squared).loss;
          f[m][j] = x0 - h;
          const double lm = evaluate(ev, in, a, b, w, squared).loss;
          f[m][j] = x0;
          const double fd = (lp - lm) / (2 * h);
          const double an = act ? e.ga[m][j] : e.gb[m][j];
          // The central difference itself is exact only to the rounding of the two losses,
          // a few ε·L over 2h (~1e-11 here, more than 1e-12 on some instruction sets).
          const double fd_noise = 8 * std::numeric_limits<double>::epsilon() *
                                  std::max(std::abs(lp), std::abs(lm)) / (2 * h);
          BOOST_TEST(close(an, fd, 1e-6, std::max(1e-12, fd_noise)),
                     (squared ? "mse" : "mae") << (act ? " a" : " b") << " m" << m << " j" << j
                                               << ": analytic " << an << ", FD " << fd);
          ++checked;
        }
    // a = b: invariance makes the two paths cancel.
    const auto same = evaluate(ev, in, a, a, w, squared);
    for (std::size_t m = 0; m < 3; ++m)
      for (std::size_t j = 0; j < 7; ++j)
        BOOST_TEST(std::abs(same.ga[m][j] + same.gb[m][j]) <= 1e-9 * (std::abs(e.ga[m][j]) + 1e-3));
  }
  BOOST_TEST(checked == 2 * 3 * 7 * 2);
}

// (3b) Quantizers on: the straight-through gradient, including the paths through the per-token
// activation scales and the per-row weight scales, equals the float64 derivative of the frozen
// surrogate, written independently here (rounding offsets, clamps and argmax fixed at s0).
BOOST_AUTO_TEST_CASE(gradient_matches_independent_ste_evaluation) {
  struct config {
    quant_spec wspec, aspec;
  };
  const std::vector<config> configs{
      {{4, true, granularity::per_row, 0}, {8, true, granularity::per_row, 0}},
      {{3, true, granularity::per_row, 0}, {4, true, granularity::per_row, 0}},
      {{4, false, granularity::per_group, 2}, {6, true, granularity::per_group, 3}},
      {{4, true, granularity::per_tensor, 0}, {5, false, granularity::per_row, 0}},
  };
  const index_t d_in = 5, d_out = 3;
  auto l = make_layer(d_in, d_out, {4, 3}, {1}, 30.0f, 53);
  const auto in = l.inputs();
  const std::vector<double> w{1.0, 0.5};
  for (const auto& c : configs) {
    detail::fake_quant_model<double> ev(l.group(), in, c.wspec, c.aspec, {});
    std::vector<std::vector<double>> s{random_positive(d_in, 60, 0.3, 3.0),
                                       random_positive(d_in, 61, 0.3, 3.0)};
    const auto e = evaluate(ev, in, s, s, w, false);

    // The surrogate loss of modality m as a function of its factor, frozen at s0 = s[m].
    auto surrogate = [&](std::size_t m, const std::vector<double>& s0,
                         const std::vector<double>& sv, bool freeze_scale) {
      const auto& x = l.tokens[m];
      const index_t n = x.rows;
      std::vector<double> u0(static_cast<std::size_t>(n * d_in)), u(u0.size());
      std::vector<double> v0(static_cast<std::size_t>(d_out * d_in)), v(v0.size());
      for (index_t t = 0; t < n; ++t)
        for (index_t j = 0; j < d_in; ++j) {
          u0[static_cast<std::size_t>(t * d_in + j)] =
              double(x(t, j)) / s0[static_cast<std::size_t>(j)];
          u[static_cast<std::size_t>(t * d_in + j)] =
              double(x(t, j)) / sv[static_cast<std::size_t>(j)];
        }
      for (index_t o = 0; o < d_out; ++o)
        for (index_t j = 0; j < d_in; ++j) {
          v0[static_cast<std::size_t>(o * d_in + j)] =
              double(l.weight(o, j)) * s0[static_cast<std::size_t>(j)];
          v[static_cast<std::size_t>(o * d_in + j)] =
              double(l.weight(o, j)) * sv[static_cast<std::size_t>(j)];
        }
      const auto aq = frozen_quantizer{c.aspec, u0, n, d_in, freeze_scale}.outputs(u);
      const auto wq = frozen_quantizer{c.wspec, v0, d_out, d_in, freeze_scale}.outputs(v);
      double total = 0;
      for (index_t t = 0; t < n; ++t)
        for (index_t o = 0; o < d_out; ++o) {
          double yh = 0, y = 0;
          for (index_t j = 0; j < d_in; ++j) {
            yh += aq[static_cast<std::size_t>(t * d_in + j)] *
                  wq[static_cast<std::size_t>(o * d_in + j)];
            y += double(x(t, j)) * double(l.weight(o, j));
          }
          total += std::abs(yh - y);
        }
      return total;
    };
    const double norm = double(d_out) * 7.0;  // D·N, N = 4 + 3 tokens
    double worst_detached = 0;
    for (std::size_t m = 0; m < 2; ++m)
      for (std::size_t j = 0; j < static_cast<std::size_t>(d_in); ++j) {
        auto fd_of = [&](bool freeze) {
          auto sp = s[m], sm = s[m];
          const double h = 1e-7 * s[m][j];
          sp[j] += h;
          sm[j] -= h;
          return w[m] * (surrogate(m, s[m], sp, freeze) - surrogate(m, s[m], sm, freeze)) /
                 (2 * h) / norm;
        };
        const double an = e.ga[m][j] + e.gb[m][j];
        const double fd = fd_of(false);
        BOOST_TEST(close(an, fd, 1e-6, 1e-10), c.wspec << " / " << c.aspec << " m" << m << " j" << j
                                                       << ": STE " << an << ", FD " << fd);
        worst_detached =
            std::max(worst_detached, std::abs(fd_of(true) - fd) / (std::abs(fd) + 1e-3));
      }
    // The control: a gradient that detaches the scales is measurably different, so the check
    // above does exercise the paths through Δ.
    BOOST_TEST(worst_detached > 1e-2, c.wspec << " / " << c.aspec);
  }
}

// Minibatch rows with and without the cache of float outputs give the same loss and gradient.
BOOST_AUTO_TEST_CASE(output_cache_is_transparent) {
  auto l = make_layer(20, 300, {700, 50}, {3}, 30.0f, 64);
  const auto in = l.inputs();
  const quant_spec w4{4, true, granularity::per_row, 0}, a8{};
  detail::fake_quant_model<float> plain(l.group(), in, w4, a8, {});
  detail::fake_quant_model<float> cached(l.group(), in, w4, a8, {}, 1 << 20);
  const auto s = sq_init(l);
  std::vector<index_t> rows;
  for (index_t n = 3; n < 700; n += 2) rows.push_back(n);
  for (int call = 0; call < 2; ++call) {  // the first call fills the cache
    std::vector<double> ga0(20), gb0(20), ga1(20), gb1(20);
    const auto p =
        plain.run(0, s[0].data(), s[0].data(), rows.data(), static_cast<index_t>(rows.size()),
                  false, 1e-3, ga0.data(), gb0.data());
    const auto c =
        cached.run(0, s[0].data(), s[0].data(), rows.data(), static_cast<index_t>(rows.size()),
                   false, 1e-3, ga1.data(), gb1.data());
    BOOST_TEST(c.loss == p.loss, boost::test_tools::tolerance(1e-9));
    BOOST_TEST(c.signal == p.signal, boost::test_tools::tolerance(1e-9));
    for (std::size_t j = 0; j < 20; ++j) {
      BOOST_TEST(close(ga1[j], ga0[j], 1e-6, 1e-12));
      BOOST_TEST(close(gb1[j], gb0[j], 1e-6, 1e-12));
    }
  }
}

// §11.8: weighted MAE normalised by d·(total token count, unweighted).
// The solvers' model quantizes W·diag(b) exactly as quantize_smoothed() does (the shared weight
// and every report stage): its dequantized weight equals the levels times their scales, bit for
// bit, for symmetric and asymmetric, per-row, per-group and per-tensor quantizers.
BOOST_AUTO_TEST_CASE(model_weight_is_quantize_smoothed) {
  auto l = make_layer(20, 30, {40}, {3}, 30.0f, 70);
  const auto in = l.inputs();
  const auto s = sq_init(l)[0];
  for (const quant_spec spec :
       {quant_spec{4, true, granularity::per_row, 0}, quant_spec{8, true, granularity::per_row, 0},
        quant_spec{3, false, granularity::per_group, 8},
        quant_spec{8, true, granularity::per_tensor, 0}}) {
    detail::fake_quant_model<float> model(l.group(), in, spec, identity, {});
    model.run(0, s.data(), s.data(), nullptr, 4, false);
    const quantized_matrix q =
        quantize_smoothed(l.weight.cview(), vector_view<const float>(s), spec);
    matrix<float> want(q.rows, q.cols);
    dequantize(q.view(), spec, q.params, want.view());
    bool same = true;
    for (index_t o = 0; o < q.rows; ++o)
      for (index_t j = 0; j < q.cols; ++j)
        same = same && model.quantized_weight()(o, j) == want(o, j);
    BOOST_TEST(same, spec);
  }
}

// The solvers decide nothing by modality id: without weights every modality counts 1 (the old
// default halved id 1, i.e. audio in the tool's order text, audio, vision), and the reference's
// weights come from default_modality_weights(names).
BOOST_AUTO_TEST_CASE(no_default_weights_by_modality_id) {
  auto l = make_layer(16, 12, {64, 48, 32}, {2, 9}, 20.0f, 71);
  const auto in = l.inputs();
  mas_options o = small_options(4, 6, 0);
  const auto unweighted = learn_mas(l.group(), in, sq_init(l), o);
  o.modality_weights = {1.0, 1.0, 1.0};
  const auto ones = learn_mas(l.group(), in, sq_init(l), o);
  BOOST_TEST(unweighted.factors == ones.factors);
  BOOST_TEST(unweighted.final_loss == ones.final_loss);
  o.modality_weights = default_modality_weights({"text", "audio", "vision"});  // 1, 1, 0.5
  const auto by_name = learn_mas(l.group(), in, sq_init(l), o);
  BOOST_TEST(by_name.final_loss != ones.final_loss);
}

BOOST_AUTO_TEST_CASE(loss_normalisation) {
  auto l = make_layer(12, 8, {30, 20, 10}, {4}, 30.0f, 54);
  const auto in = l.inputs();
  const auto f = sq_init(l);
  objective_options o;
  o.weight_spec.bits = 4;
  const auto naive = [&](std::size_t m) {
    return naive_forward(l.weight, {}, l.tokens[m], f[m], f[m], o.weight_spec, o.act_spec);
  };
  const double e0 = naive(0).abs_err, e1 = naive(1).abs_err, e2 = naive(2).abs_err;
  // No weights: 1 for every modality (the solvers know ids, not names).
  BOOST_TEST(reconstruction_loss(l.group(), in, f, o) == (e0 + e1 + e2) / (8.0 * 60.0),
             boost::test_tools::tolerance(1e-5));
  o.modality_weights = {1.0, 0.55, 0.15};
  BOOST_TEST(
      reconstruction_loss(l.group(), in, f, o) == (e0 + 0.55 * e1 + 0.15 * e2) / (8.0 * 60.0),
      boost::test_tools::tolerance(1e-5));
  o.loss = loss_kind::mse;
  BOOST_TEST(reconstruction_loss(l.group(), in, f, o) ==
                 (naive(0).noise + 0.55 * naive(1).noise + 0.15 * naive(2).noise) / (8.0 * 60.0),
             boost::test_tools::tolerance(1e-5));
  // The reference's weights go by name, whatever the order of the ids.
  BOOST_TEST(default_modality_weights({"text", "vision", "audio"}) ==
             (std::vector<double>{1.0, 0.5, 1.0}));
  BOOST_TEST(default_modality_weights({"text", "audio", "vision", "image"}) ==
             (std::vector<double>{1.0, 1.0, 0.5, 0.5}));
  o.loss = loss_kind::mae;
  o.modality_weights = default_modality_weights({"text", "audio", "vision"});
  BOOST_TEST(reconstruction_loss(l.group(), in, f, o) == (e0 + e1 + 0.5 * e2) / (8.0 * 60.0),
             boost::test_tools::tolerance(1e-5));
}

BOOST_AUTO_TEST_CASE(learning_decreases_the_loss_and_beats_the_init) {
  auto l = make_layer(32, 24, {256, 192, 128}, {3, 17, 25}, 30.0f, 55);
  const auto in = l.inputs();
  const auto init = sq_init(l);
  for (index_t batch : {index_t{128}, index_t{0}}) {
    auto o = small_options(4, 120, batch);
    auto r = learn_mas(l.group(), in, init, o);
    BOOST_TEST_MESSAGE("batch " << batch << ": initial " << r.initial_loss << ", final "
                                << r.final_loss << " (step " << r.returned_step << "), first "
                                << r.first_loss << ", last " << r.last_loss);
    BOOST_TEST(r.initial_loss == reconstruction_loss(l.group(), in, init, o));
    BOOST_TEST(r.final_loss == reconstruction_loss(l.group(), in, r.factors, o));
    BOOST_TEST(r.final_loss < 0.9 * r.initial_loss);
    BOOST_TEST(r.losses.size() == 120u);
    BOOST_TEST(r.skipped_steps == 0);
    for (const auto& f : r.factors)
      for (float v : f) BOOST_TEST((std::isfinite(v) && v >= 0.01f));
    if (batch == 0) {
      // Every step sees every token: step 0's loss is the exact initial objective, and the
      // returned factors are the best visited.
      BOOST_TEST(r.losses.front() == r.initial_loss);
      BOOST_TEST(r.final_loss <= r.best_loss);
    }
  }
}

BOOST_AUTO_TEST_CASE(keep_best_and_zero_steps) {
  auto l = make_layer(16, 8, {64, 64}, {5}, 30.0f, 56);
  const auto in = l.inputs();
  const auto init = sq_init(l);
  auto o = small_options(4, 0, 0);
  auto r = learn_mas(l.group(), in, init, o);
  BOOST_TEST(r.factors == init);
  BOOST_TEST(r.losses.empty());
  BOOST_TEST(std::isnan(r.first_loss));
  BOOST_TEST(r.final_loss == r.initial_loss);
  // A learning rate far too high: keep_best returns the init, keep_best = false the last step.
  o.steps = 5;
  o.learning_rate = 3.0;
  auto best = learn_mas(l.group(), in, init, o);
  o.keep_best = false;
  auto last = learn_mas(l.group(), in, init, o);
  BOOST_TEST(best.final_loss <= best.initial_loss);
  BOOST_TEST(last.returned_step == 5);
  BOOST_TEST(last.final_loss == reconstruction_loss(l.group(), in, last.factors, o));
  BOOST_TEST(best.final_loss <= last.final_loss);
}

BOOST_AUTO_TEST_CASE(deterministic_for_a_seed_and_any_thread_count) {
  auto l =
      make_layer(16, 300, {600, 200}, {6, 11}, 30.0f, 57);  // several slabs, token and row chunks
  const auto in = l.inputs();
  const auto init = sq_init(l);
  auto o = small_options(4, 6, 700);
  std::vector<mas_progress> seen;
  o.progress = [&](const mas_progress& p) { seen.push_back(p); };
  const auto ref = learn_mas(l.group(), in, init, o);
  BOOST_TEST(seen.size() == 6u);
  for (std::size_t t = 0; t < seen.size(); ++t) {
    BOOST_TEST(seen[t].step == static_cast<index_t>(t));
    BOOST_TEST(seen[t].steps == 6);
    BOOST_TEST(seen[t].loss == ref.losses[t]);
  }
  o.progress = nullptr;
  BOOST_TEST(learn_mas(l.group(), in, init, o).factors == ref.factors);
  for (int threads : {2, 3}) {
    thread_pool pool(threads);
    o.parallel = pool.as_function();
    const auto r = learn_mas(l.group(), in, init, o);
    BOOST_TEST(r.factors == ref.factors);
    BOOST_TEST(r.losses == ref.losses);
  }
  o.parallel = nullptr;
  o.seed = 3;
  BOOST_TEST(learn_mas(l.group(), in, init, o).losses != ref.losses);
}

BOOST_AUTO_TEST_CASE(tied_and_independent_groups) {
  auto l = make_layer(24, 16, {160, 96}, {2, 13}, 30.0f, 58);
  auto k = random_normal(8, 24, 0.4f, 59);
  linear_group g{{l.weight.cview(), k.cview()}, {}};
  const auto in = l.inputs();
  const auto a = per_modality_absmax(in, 24);
  const auto init = smoothquant_group_factors(g, a, weight_absmax_source::first);
  auto o = small_options(4, 40, 128);

  // Tied: one set for the group; the objective covers both outputs.
  const auto tied = learn_mas(g, in, init[0].per_modality, o);
  BOOST_TEST(tied.factors.size() == 2u);
  BOOST_TEST(tied.final_loss == reconstruction_loss(g, in, tied.factors, o));
  BOOST_TEST(tied.final_loss < tied.initial_loss);

  // Independent: each linear its own vectors, the same as learning each linear alone.
  std::vector<index_t> linears;
  o.progress = [&](const mas_progress& p) { linears.push_back(p.linear); };
  const auto ind = learn_mas_independent(g, in, {init[0].per_modality}, o);
  o.progress = nullptr;
  BOOST_TEST(ind.size() == 2u);
  BOOST_TEST(linears.size() == 80u);
  BOOST_TEST(linears.front() == 0);
  BOOST_TEST(linears.back() == 1);
  const auto q_alone = learn_mas({{l.weight.cview()}, {}}, in, init[0].per_modality, o);
  const auto k_alone = learn_mas({{k.cview()}, {}}, in, init[0].per_modality, o);
  BOOST_TEST(ind[0].factors == q_alone.factors);
  BOOST_TEST(ind[1].factors == k_alone.factors);
  BOOST_TEST(ind[0].factors != ind[1].factors);
  BOOST_TEST(ind[0].factors != tied.factors);
  // Each linear's objective is at most that of the tied factors on that linear.
  BOOST_TEST(ind[1].final_loss <=
             reconstruction_loss({{k.cview()}, {}}, in, init[0].per_modality, o));
  // Own-weight initialisation is accepted per linear.
  const auto own = smoothquant_group_factors(g, a, weight_absmax_source::own);
  const auto ind_own = learn_mas_independent(g, in, {own[0].per_modality, own[1].per_modality}, o);
  BOOST_TEST(ind_own[1].initial_loss ==
             reconstruction_loss({{k.cview()}, {}}, in, own[1].per_modality, o));
}

BOOST_AUTO_TEST_CASE(zero_channels_and_empty_modality) {
  auto l = make_layer(16, 12, {96, 64, 0}, {1}, 30.0f, 60);
  for (index_t n = 0; n < l.tokens[0].rows; ++n) l.tokens[0](n, 4) = 0.0f;  // dead text channel
  for (index_t o = 0; o < l.weight.rows; ++o) l.weight(o, 9) = 0.0f;        // zero weight column
  const auto in = l.inputs();
  const auto a = per_modality_absmax(in, 16);
  const auto wmax = weight_input_absmax({l.weight.cview()});
  for (auto policy : {zero_channel_policy::unit, zero_channel_policy::floor}) {
    smoothquant_options so;
    so.zero_channels = policy;
    auto init = smoothquant_modality_factors(a, wmax, so).per_modality;
    init[2] = std::vector<float>(16, 0.7f);  // the audio modality has no tokens
    auto o = small_options(4, 60, 64);
    o.loss = policy == zero_channel_policy::unit ? loss_kind::mae : loss_kind::mse;
    const auto r = learn_mas(l.group(), in, init, o);
    BOOST_TEST(std::isfinite(r.initial_loss));
    BOOST_TEST(std::isfinite(r.final_loss));
    BOOST_TEST(r.skipped_steps == 0);
    for (double v : r.losses) BOOST_TEST(std::isfinite(v));
    for (const auto& f : r.factors)
      for (float v : f) BOOST_TEST((std::isfinite(v) && v >= 0.01f));
    BOOST_TEST(r.factors[2] == init[2]);  // no tokens: exactly its initial factor
    BOOST_TEST(r.factors[0] != init[0]);
  }
}

BOOST_AUTO_TEST_CASE(degenerate_shapes) {
  // d_in = 1, d_out = 1, single tokens, odd sizes: everything stays finite and valid.
  for (auto shape : {std::vector<index_t>{1, 1}, std::vector<index_t>{3, 1},
                     std::vector<index_t>{1, 5}, std::vector<index_t>{7, 3}}) {
    auto l = make_layer(shape[0], shape[1], {1, 3}, {0}, 30.0f, 63);
    const auto in = l.inputs();
    const auto init = sq_init(l);
    auto o = small_options(4, 20, 0);
    const auto r = learn_mas(l.group(), in, init, o);
    BOOST_TEST(r.final_loss <= r.initial_loss);
    for (const auto& f : r.factors)
      for (float v : f) BOOST_TEST((std::isfinite(v) && v >= 0.01f));
    for (const auto& st : modality_sqnr(l.group(), in, r.factors, o))
      BOOST_TEST(!std::isnan(st.db), shape[0] << "x" << shape[1]);
    o.batch_tokens = 2;  // minibatches of one token per modality
    BOOST_TEST(learn_mas(l.group(), in, init, o).losses.size() == 20u);
  }
}

BOOST_AUTO_TEST_CASE(non_finite_steps_are_skipped) {
  // Values near the float limit overflow once divided by a factor < 1: every loss is Inf/NaN,
  // every update is skipped, and the factors stay finite (the initial ones).
  auto l = make_layer(8, 4, {16, 16}, {}, 1.0f, 61);
  for (index_t n = 0; n < 16; ++n) l.tokens[1](n, 0) = 3e38f;
  smoothing_factors init(2, std::vector<float>(8, 0.5f));
  auto o = small_options(8, 4, 0);
  o.keep_best = false;
  const auto r = learn_mas(l.group(), l.inputs(), init, o);
  BOOST_TEST(r.skipped_steps == 4);
  BOOST_TEST(r.factors == init);
}

BOOST_AUTO_TEST_CASE(bad_arguments) {
  auto l = make_layer(8, 4, {16, 16}, {}, 1.0f, 62);
  const auto in = l.inputs();
  smoothing_factors init(2, std::vector<float>(8, 1.0f));
  auto code = [](auto&& f) {
    try {
      f();
    } catch (const error& e) {
      return e.code();
    }
    return errc{};
  };
  BOOST_TEST(code([&] {
               learn_mas(l.group(), in, smoothing_factors(2, std::vector<float>(7, 1.0f)));
             }) == errc::shape_mismatch);
  mas_options o;
  o.steps = -1;
  BOOST_TEST(code([&] { learn_mas(l.group(), in, init, o); }) == errc::invalid_argument);
  o = {};
  o.learning_rate = 0;
  BOOST_TEST(code([&] { learn_mas(l.group(), in, init, o); }) == errc::invalid_argument);
  o = {};
  o.modality_weights = {1.0};
  BOOST_TEST(code([&] { learn_mas(l.group(), in, init, o); }) == errc::shape_mismatch);
  const modality_inputs empty{matrix_view<const float>(), matrix_view<const float>()};
  BOOST_TEST(code([&] { learn_mas(l.group(), empty, init); }) == errc::invalid_argument);
  BOOST_TEST(code([&] {
               learn_mas_independent(l.group(), in, {init, init, init});
             }) == errc::shape_mismatch);
}

BOOST_AUTO_TEST_SUITE_END()
