// bench_smooth: cost of the smoothing layer's two hot paths against the bare Eigen work they
// cannot avoid, on the same data in the same process.
//
//   sqnr/<d>/<tokens>:  modality_sqnr (smooth, fake-quantize activations and weight, two GEMMs,
//                       double sums) vs the textbook path: masquant::fake_quant (SIMD) on the
//                       whole smoothed matrices, then Eigen's ŷ = Xq·Wqᵀ and y = X·Wᵀ.
//   mas_step/<d>/<batch>: one learning step's forward + straight-through backward as learn_mas
//                       runs it (float outputs y cached, Adam excluded) vs the three Eigen GEMMs
//                       of those shapes alone (ŷ = A·Wqᵀ, ∂A = G·Wq, ∂Wq = Gᵀ·A).
//
// Counters: ratio = our time / peer time (lower is better), GFLOPS of the GEMM work.
#include <benchmark/benchmark.h>

#include <chrono>
#include <masquant/quant/fake_quant.hpp>
#include <masquant/smooth/detail/fake_quant_model.hpp>
#include <masquant/smooth/sqnr.hpp>
#include <masquant/tensor/eigen.hpp>
#include <random>
#include <vector>

namespace {

using masquant::index_t;
using rowf = masquant::row_matrix<float>;

struct problem {
  rowf w, x;
  std::vector<float> s;
  problem(index_t d, index_t tokens) : w(d, d), x(tokens, d), s(static_cast<std::size_t>(d)) {
    std::mt19937_64 gen(1);
    std::normal_distribution<float> n;
    for (index_t i = 0; i < w.size(); ++i) w.data()[i] = 0.05f * n(gen);
    for (index_t i = 0; i < x.size(); ++i) x.data()[i] = n(gen);
    for (index_t j = 0; j < d; ++j) {
      if (j % 97 == 0)
        for (index_t t = 0; t < tokens; ++t) x(t, j) *= 30.0f;  // outlier channels
      s[static_cast<std::size_t>(j)] = j % 97 == 0 ? 5.0f : 0.8f;
    }
  }
};

double seconds_of(const std::function<void()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void bm_sqnr(benchmark::State& state) {
  const index_t d = state.range(0), tokens = state.range(1);
  problem p(d, tokens);
  const masquant::linear_group g{{masquant::view_of(p.w)}, {}};
  const masquant::modality_inputs in{masquant::view_of(p.x)};
  const masquant::smoothing_factors f{p.s};
  const masquant::quant_spec spec{};
  rowf xs(tokens, d), ws(d, d), yh(tokens, d), y(tokens, d);
  auto textbook = [&] {
    for (index_t t = 0; t < tokens; ++t)
      for (index_t j = 0; j < d; ++j) xs(t, j) = p.x(t, j) / p.s[static_cast<std::size_t>(j)];
    for (index_t o = 0; o < d; ++o)
      for (index_t j = 0; j < d; ++j) ws(o, j) = p.w(o, j) * p.s[static_cast<std::size_t>(j)];
    masquant::fake_quant_inplace(masquant::view_of(xs), spec);
    masquant::fake_quant_inplace(masquant::view_of(ws), spec);
    yh.noalias() = xs * ws.transpose();
    y.noalias() = p.x * p.w.transpose();
    double sig = 0, noise = 0;
    for (index_t i = 0; i < y.size(); ++i) {
      const double e = double(yh.data()[i]) - double(y.data()[i]);
      sig += double(y.data()[i]) * double(y.data()[i]);
      noise += e * e;
    }
    benchmark::DoNotOptimize(sig / noise);
  };
  double ours = 0, peer = 0;
  for (auto _ : state) {
    ours += seconds_of([&] { benchmark::DoNotOptimize(masquant::modality_sqnr(g, in, f)); });
    peer += seconds_of(textbook);
  }
  const double flops = 2.0 * 2.0 * double(tokens) * double(d) * double(d);
  state.counters["ratio"] = ours / peer;
  state.counters["ours_GFLOPS"] = flops * double(state.iterations()) / ours * 1e-9;
  state.counters["peer_GFLOPS"] = flops * double(state.iterations()) / peer * 1e-9;
}

void bm_mas_step(benchmark::State& state) {
  const index_t d = state.range(0), batch = state.range(1);
  problem p(d, batch);
  const masquant::linear_group g{{masquant::view_of(p.w)}, {}};
  const masquant::modality_inputs in{masquant::view_of(p.x)};
  masquant::quant_spec w4{};
  w4.bits = 4;
  masquant::detail::fake_quant_model<float> ev(g, in, w4, masquant::quant_spec{}, {},
                                               masquant::detail::smooth_output_cache_elements);
  std::vector<double> ga(static_cast<std::size_t>(d)), gb(static_cast<std::size_t>(d));
  rowf a = p.x, r(batch, d), da(batch, d), dw(d, d);
  auto gemms = [&] {
    r.noalias() = a * p.w.transpose();
    da.noalias() = r * p.w;
    dw.noalias() = r.transpose() * a;
    benchmark::DoNotOptimize(dw.data());
  };
  auto step = [&] {
    benchmark::DoNotOptimize(
        ev.run(0, p.s.data(), p.s.data(), nullptr, batch, false, 1e-6, ga.data(), gb.data()));
  };
  step();  // fills the output cache, as learn_mas's initial evaluation does
  gemms();
  double ours = 0, peer = 0;
  for (auto _ : state) {
    ours += seconds_of(step);
    peer += seconds_of(gemms);
  }
  const double flops = 3.0 * 2.0 * double(batch) * double(d) * double(d);
  state.counters["ratio"] = ours / peer;
  state.counters["ours_GFLOPS"] = flops * double(state.iterations()) / ours * 1e-9;
  state.counters["peer_GFLOPS"] = flops * double(state.iterations()) / peer * 1e-9;
}

}  // namespace

BENCHMARK(bm_sqnr)->Args({2048, 512})->Args({2048, 2048})->Unit(benchmark::kMillisecond);
BENCHMARK(bm_mas_step)->Args({1024, 512})->Args({2048, 512})->Unit(benchmark::kMillisecond);
BENCHMARK_MAIN();
