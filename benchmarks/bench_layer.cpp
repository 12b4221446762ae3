// bench_layer.cpp: the deployable MASQuant linear (quantized_linear::forward: per-token
// smoothing + dynamic int8 quantization + INT8 GEMM + dequant epilogue, and the low-rank CMC
// branch) against the fp32 layer it replaces (OpenBLAS sgemm / sgemv, Eigen), in one process on
// the same data.
//
// Scenarios (K = N = 2048, bias on):
//   layer/prefill/M:512/threads:T  ours W8A8 and W4A8 (all tokens text) vs OpenBLAS sgemm and
//       Eigen float GEMM on the float layer; also the bare INT8 GEMM on already-quantized
//       activations, to show what the token pass costs. Counters vs_<peer> = t_peer / t_ours.
//   layer/cmc/M:512/threads:T  half the tokens (the second half, as an image span) of a
//       non-reference modality with rank r = max(32, ⌊0.05·2048⌋) = 102 factors: CMC with bf16
//       dot products and with float32, against the same linear and ids without factors.
//       Counters overhead_<who>_pct = 100·(t_who / t_no_cmc − 1).
//   layer/decode/M:1/threads:T  one token, no ids: ours W8A8 / W4A8 vs sgemv and Eigen.
// Every participant runs round-robin inside one benchmark (each round calls each participant
// once), so machine noise hits all of them alike; a participant's time is its best call
// (`<who>_ms`), and its median (`<who>_med_ms`) is reported too. At 1 thread the calling
// thread's CPU time is recorded as well (`<who>_cpu_ms`, ratios `cpu_*`): on a shared machine it
// leaves out the time the thread is descheduled, which wall time cannot. Weights are cold: every
// call uses the next of a rotating set of copies whose total size (>= 96 MiB per participant)
// exceeds the 32 MiB LLC, as in a model where each layer's weights are read once per step. Eigen
// has no thread pool in this build (no OpenMP): its times are 1-thread at any T.
//
// Run with OPENBLAS_CORETYPE, OPENBLAS_L2_SIZE and OMP_PROC_BIND unset:
//   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE -u OMP_PROC_BIND ./bench_layer

// GCC 12 reports a false -Wmaybe-uninitialized inside Eigen's AVX-512 GEMM kernel.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <map>
#include <masquant/gemm/int8_gemm.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/parallel.hpp>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace {

using masquant::index_t;
using clock_type = std::chrono::steady_clock;
using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr index_t dim = 2048;      // K = N
constexpr index_t cmc_rank = 102;  // max(32, floor(0.05 * 2048))
constexpr std::size_t rotating_bytes = std::size_t{96} << 20;

std::size_t copies_for(std::size_t bytes) {
  return std::max<std::size_t>(2, (rotating_bytes + bytes - 1) / bytes);
}

// --- the layer: float weights, and its calibrated quantized form --------------------------------

struct model {
  std::vector<float> w, bias;                                   // [N, K] float layer
  std::vector<std::vector<float>> wf;                           // rotating copies of w
  std::vector<masquant::quantized_linear> w8, w4, cmc, no_cmc;  // rotating copies
};

// A plausible calibrated layer: W ~ N(0, 1/K), text and vision smoothing factors, levels of
// Q(W·diag(s_text)) per output channel, random rank-102 vision factors.
masquant::quantized_linear_params make_params(const std::vector<float>& w,
                                              const std::vector<float>& bias, int bits,
                                              bool factors) {
  std::mt19937_64 gen(7);
  std::uniform_real_distribution<float> u(0.3f, 3.0f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  masquant::quantized_linear_params p;
  p.d_in = dim;
  p.d_out = dim;
  p.weight_bits = bits;
  p.activation_bits = 8;
  p.bias = bias;
  p.smooth.assign(2, std::vector<float>(dim));
  for (auto& s : p.smooth)
    for (auto& v : s) v = u(gen);
  p.modality_names = {"text", "vision"};
  const int qmax = (1 << (bits - 1)) - 1;
  p.qweight.resize(static_cast<std::size_t>(dim * dim));
  p.wscale.resize(dim);
  for (index_t n = 0; n < dim; ++n) {
    float absmax = 0.0f;
    for (index_t k = 0; k < dim; ++k)
      absmax = std::max(absmax, std::abs(w[n * dim + k] * p.smooth[0][k]));
    const float delta = absmax / static_cast<float>(qmax);
    p.wscale[n] = delta;
    for (index_t k = 0; k < dim; ++k) {
      const float q = std::nearbyint(w[n * dim + k] * p.smooth[0][k] / delta);
      p.qweight[n * dim + k] = static_cast<std::int8_t>(std::clamp<float>(q, -qmax, qmax));
    }
  }
  p.lowrank.resize(2);
  if (factors) {
    auto& f = p.lowrank[1];
    f.L.resize(dim, cmc_rank);
    f.R.resize(cmc_rank, dim);
    for (index_t i = 0; i < f.L.size(); ++i) f.L.data()[i] = normal(gen) / std::sqrt(float(dim));
    for (index_t i = 0; i < f.R.size(); ++i) f.R.data()[i] = 0.05f * normal(gen);
  }
  return p;
}

model& the_model() {
  static std::unique_ptr<model> m;
  if (m) return *m;
  m = std::make_unique<model>();
  std::mt19937_64 gen(3);
  std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(float(dim)));
  m->w.resize(static_cast<std::size_t>(dim * dim));
  for (auto& v : m->w) v = normal(gen);
  m->bias.resize(dim);
  for (auto& v : m->bias) v = normal(gen);
  m->wf.assign(copies_for(m->w.size() * 4), m->w);
  const auto p8 = make_params(m->w, m->bias, 8, false);
  const auto p4 = make_params(m->w, m->bias, 4, false);
  const auto pc = make_params(m->w, m->bias, 8, true);
  const std::size_t int8_bytes = static_cast<std::size_t>(dim * dim);
  for (std::size_t i = 0; i < copies_for(int8_bytes); ++i) {
    m->w8.emplace_back(p8);
    m->no_cmc.emplace_back(p8);
    m->cmc.emplace_back(pc);
  }
  for (std::size_t i = 0; i < copies_for(int8_bytes / 2); ++i) m->w4.emplace_back(p4);
  return *m;
}

// Activations [M, K]: N(0, 1) with a few outlier channels; ids: the second half vision.
struct inputs {
  std::vector<float> x, y;
  std::vector<masquant::modality_id> half_vision;
  explicit inputs(index_t m) {
    std::mt19937_64 gen(11);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    x.resize(static_cast<std::size_t>(m * dim));
    for (auto& v : x) v = normal(gen);
    for (index_t r = 0; r < m; ++r)
      for (index_t c = 0; c < dim; c += 211) x[r * dim + c] *= 30.0f;
    y.assign(static_cast<std::size_t>(m * dim), 0.0f);
    half_vision.assign(static_cast<std::size_t>(m), 0);
    for (index_t r = m / 2; r < m; ++r) half_vision[r] = 1;
  }
  masquant::matrix_view<const float> xv(index_t m) const { return {x.data(), m, dim}; }
  masquant::matrix_view<float> yv(index_t m) { return {y.data(), m, dim}; }
};

masquant::thread_pool& pool(int threads) {
  static std::map<int, std::unique_ptr<masquant::thread_pool>> pools;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<masquant::thread_pool>(threads);
  return *p;
}

// --- round-robin timing -------------------------------------------------------------------------

struct participant {
  participant(std::string n, std::function<void(std::size_t)> f)
      : name(std::move(n)), call(std::move(f)) {}
  std::string name;
  std::function<void(std::size_t)> call;  // argument: call index (selects the rotating copy)
  std::vector<double> seconds, cpu_seconds;
  double best() const { return *std::min_element(seconds.begin(), seconds.end()); }
  double median() const { return median_of(seconds); }
  double best_cpu() const { return *std::min_element(cpu_seconds.begin(), cpu_seconds.end()); }
  double median_cpu() const { return median_of(cpu_seconds); }
  static double median_of(std::vector<double> s) {
    std::nth_element(s.begin(), s.begin() + s.size() / 2, s.end());
    return s[s.size() / 2];
  }
};

// CPU time of the calling thread: unlike wall time it excludes the time the thread waits while
// other processes run, the main noise on a shared machine; it measures 1-thread calls only.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// One warm-up call each, then rounds of one call per participant for every benchmark
// iteration; records `<name>_ms` and `<name>_med_ms`.
void round_robin(benchmark::State& state, std::vector<participant>& ps) {
  std::size_t i = 0;
  for (auto& p : ps) p.call(i++);
  for (auto _ : state) {
    for (auto& p : ps) {
      const double cpu = thread_cpu_seconds();
      const auto start = clock_type::now();
      p.call(i++);
      benchmark::ClobberMemory();
      p.seconds.push_back(std::chrono::duration<double>(clock_type::now() - start).count());
      p.cpu_seconds.push_back(thread_cpu_seconds() - cpu);
    }
  }
  for (auto& p : ps) {
    state.counters[p.name + "_ms"] = p.best() * 1e3;
    state.counters[p.name + "_med_ms"] = p.median() * 1e3;
    if (state.range(1) == 1) state.counters[p.name + "_cpu_ms"] = p.best_cpu() * 1e3;
  }
}

const participant& find(const std::vector<participant>& ps, const std::string& name) {
  for (const auto& p : ps)
    if (p.name == name) return p;
  std::fprintf(stderr, "no participant %s\n", name.c_str());
  std::abort();
}

void set_blas_threads(int threads) {
#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
  openblas_set_num_threads(threads);
#endif
  (void)threads;
}

// The fp32 peers on x [m, K] -> y [m, N].
void add_fp32_peers(std::vector<participant>& ps, model& md, inputs& in, index_t m) {
#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
  ps.push_back({m == 1 ? "openblas_sgemv" : "openblas_sgemm", [&md, &in, m](std::size_t i) {
                  const float* w = md.wf[i % md.wf.size()].data();
                  std::copy(md.bias.begin(), md.bias.end(), in.y.begin());
                  if (m == 1) {
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, dim, dim, 1.0f, w, dim, in.x.data(), 1,
                                1.0f, in.y.data(), 1);
                  } else {
                    for (index_t r = 1; r < m; ++r)
                      std::copy(md.bias.begin(), md.bias.end(), in.y.begin() + r * dim);
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m),
                                dim, dim, 1.0f, in.x.data(), dim, w, dim, 1.0f, in.y.data(), dim);
                  }
                }});
#endif
  ps.push_back({"eigen", [&md, &in, m](std::size_t i) {
                  Eigen::Map<const row_major> x(in.x.data(), m, dim);
                  Eigen::Map<const row_major> w(md.wf[i % md.wf.size()].data(), dim, dim);
                  Eigen::Map<row_major> y(in.y.data(), m, dim);
                  Eigen::Map<const Eigen::RowVectorXf> b(md.bias.data(), dim);
                  y.noalias() = x * w.transpose();
                  y.rowwise() += b;
                }});
}

// Best time of the fastest fp32 peer (wall, or thread CPU time).
double best_fp32(const std::vector<participant>& ps, bool cpu) {
  double t = 1e30;
  for (const auto& p : ps)
    if (p.name.rfind("openblas", 0) == 0 || p.name == "eigen")
      t = std::min(t, cpu ? p.best_cpu() : p.best());
  return t;
}

void prefill(benchmark::State& state) {
  const index_t m = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  auto& md = the_model();
  inputs in(m);
  set_blas_threads(threads);
  masquant::forward_options opt;
  if (threads > 1) opt.parallel = pool(threads).as_function();
  masquant::linear_workspace ws;
  opt.workspace = &ws;
  std::vector<participant> ps;
  add_fp32_peers(ps, md, in, m);
  ps.push_back({"ours_w8a8",
                [&](std::size_t i) { md.w8[i % md.w8.size()].forward(in.xv(m), in.yv(m), opt); }});
  ps.push_back({"ours_w4a8",
                [&](std::size_t i) { md.w4[i % md.w4.size()].forward(in.xv(m), in.yv(m), opt); }});
  // The bare GEMM on the activations the last ours_w8a8 call quantized (same bias, threads).
  masquant::gemm_options g;
  g.bias = masquant::vector_view<const float>(md.bias);
  g.parallel = opt.parallel;
  ps.push_back({"int8_gemm_only", [&](std::size_t i) {
                  masquant::int8_gemm(ws.activations(), md.w8[i % md.w8.size()].packed(), in.yv(m),
                                      g);
                }});
  round_robin(state, ps);
  const double fp32 = best_fp32(ps, false), ours = find(ps, "ours_w8a8").best();
#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
  state.counters["vs_openblas"] =
      find(ps, m == 1 ? "openblas_sgemv" : "openblas_sgemm").best() / ours;
#endif
  state.counters["vs_eigen"] = find(ps, "eigen").best() / ours;
  state.counters["vs_best_fp32"] = fp32 / ours;
  state.counters["w4_vs_best_fp32"] = fp32 / find(ps, "ours_w4a8").best();
  state.counters["token_pass_pct"] = 100.0 * (ours / find(ps, "int8_gemm_only").best() - 1.0);
  state.counters["ours_GOPS"] = 2.0 * double(m) * dim * dim / ours * 1e-9;
  if (threads == 1) {
    const double ours_cpu = find(ps, "ours_w8a8").best_cpu();
    state.counters["cpu_vs_best_fp32"] = best_fp32(ps, true) / ours_cpu;
    state.counters["cpu_w4_vs_best_fp32"] = best_fp32(ps, true) / find(ps, "ours_w4a8").best_cpu();
    state.counters["cpu_token_pass_pct"] =
        100.0 * (ours_cpu / find(ps, "int8_gemm_only").best_cpu() - 1.0);
  }
}

void cmc(benchmark::State& state) {
  const index_t m = state.range(0);
  const int threads = static_cast<int>(state.range(1));
  auto& md = the_model();
  inputs in(m);
  masquant::forward_options opt;
  if (threads > 1) opt.parallel = pool(threads).as_function();
  masquant::linear_workspace ws;
  opt.workspace = &ws;
  masquant::forward_options opt_f32 = opt;
  opt_f32.lowrank = masquant::lowrank_compute::float32;
  const masquant::vector_view<const masquant::modality_id> ids(in.half_vision);
  std::vector<participant> ps;
  ps.push_back({"no_cmc", [&](std::size_t i) {
                  md.no_cmc[i % md.no_cmc.size()].forward(in.xv(m), ids, in.yv(m), opt);
                }});
  ps.push_back({"cmc_bf16", [&](std::size_t i) {
                  md.cmc[i % md.cmc.size()].forward(in.xv(m), ids, in.yv(m), opt);
                }});
  ps.push_back({"cmc_f32", [&](std::size_t i) {
                  md.cmc[i % md.cmc.size()].forward(in.xv(m), ids, in.yv(m), opt_f32);
                }});
  ps.push_back({"all_text", [&](std::size_t i) {
                  md.cmc[i % md.cmc.size()].forward(in.xv(m), in.yv(m), opt);
                }});
  round_robin(state, ps);
  const participant& base = find(ps, "no_cmc");
  for (const char* who : {"cmc_bf16", "cmc_f32"}) {
    const participant& p = find(ps, who);
    state.counters[std::string("overhead_") + who + "_pct"] =
        100.0 * (p.best() / base.best() - 1.0);
    state.counters[std::string("overhead_") + who + "_med_pct"] =
        100.0 * (p.median() / base.median() - 1.0);
    if (threads == 1) {
      state.counters[std::string("cpu_overhead_") + who + "_pct"] =
          100.0 * (p.best_cpu() / base.best_cpu() - 1.0);
      state.counters[std::string("cpu_overhead_") + who + "_med_pct"] =
          100.0 * (p.median_cpu() / base.median_cpu() - 1.0);
    }
  }
  state.counters["bf16_dot"] = md.cmc.front().lowrank_uses_bf16() ? 1.0 : 0.0;
  state.counters["lowrank_MiB"] = double(md.cmc.front().lowrank_bytes()) / (1 << 20);
}

}  // namespace

int main(int argc, char** argv) {
  for (const char* v : {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_PROC_BIND"}) {
    if (std::getenv(v) != nullptr)
      std::fprintf(stderr, "warning: %s is set; OpenBLAS may not run at its best (unset it)\n", v);
  }
  std::printf("masquant quantized_linear: K = N = %ld, GEMM kernel %s, low-rank bf16 dot %s\n",
              static_cast<long>(dim), masquant::to_string(masquant::best_gemm_isa()),
              masquant::lowrank_bf16_dot_compiled ? "yes" : "no");
  the_model();  // build (and touch) every copy before any timing
  for (int threads : {1, 2}) {
    benchmark::RegisterBenchmark("layer/prefill", prefill)
        ->Args({512, threads})
        ->ArgNames({"M", "threads"})
        ->Iterations(30)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("layer/cmc", cmc)
        ->Args({512, threads})
        ->ArgNames({"M", "threads"})
        ->Iterations(60)
        ->UseRealTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark("layer/decode", prefill)
        ->Args({1, threads})
        ->ArgNames({"M", "threads"})
        ->Iterations(500)
        ->UseRealTime()
        ->Unit(benchmark::kMicrosecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
