// bench_stats.cpp: masquant's statistics pass and Gram accumulation against their peers, in one
// process on the same data.
//
// stats/...: channel_stats::add (absmax/min/max/mean/variance) and modality_stats::add on
//   8192 x 4096 fp32 activations (128 MiB, DRAM-resident), in GB/s of activations read. The
//   peers are plain SIMD sums over the same data (the read bandwidth this pass can reach), in
//   row order (read) and over four streams at once (read4): counters vs_read, vs_read4 =
//   GB/s ours / GB/s peer.
// gram/...: XᵀX of 2048 x 4096 fp32 activations. masquant (double accuracy: exact products,
//   double sums, channel_stats with_gram) against Eigen's selfadjointView<Upper>().rankUpdate
//   in float and in double, OpenBLAS ssyrk and dsyrk. The double peers read data converted to
//   double beforehand (not timed). Counters vs_<peer> = t_peer / t_ours (> 1: masquant faster).
//
// With one thread, times are the calling thread's CPU time (robust on a shared, busy machine);
// with two, wall time. Within a group the peers run first and masquant last. Run with
// OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset, e.g.
//   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE ./bench_stats
// --benchmark_filter works as usual (e.g. 'gram/threads:1').

// GCC 12 reports a false -Wmaybe-uninitialized inside Eigen's AVX-512 kernels (the undefined
// pass-through operand of _mm512 intrinsics); it is not our code and not a real read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <map>
#include <masquant/parallel.hpp>
#include <masquant/stats/channel_stats.hpp>
#include <masquant/stats/modality_stats.hpp>
#include <masquant/tensor/eigen.hpp>
#include <memory>
#include <random>
#include <string>
#include <vector>

#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace {

using masquant::index_t;
using clock_type = std::chrono::steady_clock;

constexpr index_t stats_tokens = 8192, gram_tokens = 2048, channels = 4096;

// Activations: N(0, 1) with a few outlier channels, as LLM activations have.
const std::vector<float>& activations(index_t tokens) {
  static std::map<index_t, std::vector<float>> cache;
  auto& x = cache[tokens];
  if (x.empty()) {
    x.resize(static_cast<std::size_t>(tokens * channels));
    std::mt19937 gen(42);
    std::normal_distribution<float> dist(0.0f, 1.0f);
    for (std::size_t i = 0; i < x.size(); ++i)
      x[i] = dist(gen) * (i % static_cast<std::size_t>(channels) % 97 == 0 ? 20.0f : 1.0f);
  }
  return x;
}

masquant::matrix_view<const float> view(index_t tokens) {
  return masquant::matrix_view<const float>(activations(tokens).data(), tokens, channels);
}

// Seconds per iteration of the last peer run of each group, for the ratio counters.
std::map<std::string, double>& peer_seconds() {
  static std::map<std::string, double> s;
  return s;
}

masquant::thread_pool& pool(int threads) {
  static std::map<int, std::unique_ptr<masquant::thread_pool>> pools;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<masquant::thread_pool>(threads);
  return *p;
}

// CPU time of the calling thread, in seconds.
double thread_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// Times `body` per iteration and returns the mean seconds. With one thread the time is the
// calling thread's CPU time: the machine is shared, and a descheduled thread would otherwise
// charge its peer's or its own waiting to the kernel. With more threads it is wall time.
template <class Body>
double run(benchmark::State& state, int threads, Body&& body) {
  double total = 0;
  for (auto _ : state) {
    const auto w0 = clock_type::now();
    const double c0 = thread_seconds();
    body();
    const double s = threads == 1 ? thread_seconds() - c0
                                  : std::chrono::duration<double>(clock_type::now() - w0).count();
    state.SetIterationTime(s);
    total += s;
  }
  return total / static_cast<double>(state.iterations());
}

void ratio_counters(benchmark::State& state, const std::string& group, double ours,
                    const std::vector<std::string>& peers) {
  for (const auto& p : peers) {
    const auto it = peer_seconds().find(group + p);
    if (it != peer_seconds().end()) state.counters["vs_" + p] = it->second / ours;
  }
}

// --- statistics pass ---------------------------------------------------------------------------

// The read-bandwidth peers: a sum of every float (4 independent accumulators), split by rows.
// `streams` = 1 reads each thread's rows in order; 4 reads four quarters of them side by side,
// which one core of this machine reads 1.1-1.4x faster than a single stream.
// (GCC / clang vector extension: 16 floats, split into the registers the target has.)
typedef float line16 __attribute__((vector_size(64)));

float read_all(masquant::matrix_view<const float> x, int threads, int streams) {
  constexpr index_t w = 16;
  std::vector<float> partial(static_cast<std::size_t>(threads), 0.0f);
  pool(threads).parallel_for(threads, [&](index_t k) {
    line16 acc[4] = {};
    const index_t r0 = x.rows() * k / threads, r1 = x.rows() * (k + 1) / threads;
    const index_t span = (r1 - r0) / streams;  // rows per stream; x.rows() is a multiple of 8
    for (index_t r = r0; r < r0 + span; ++r) {
      for (index_t c = 0; c + w <= x.cols(); c += w) {
        for (int u = 0; u < streams; ++u) {
          line16 v;
          std::memcpy(&v, x.row_data(r + u * span) + c, sizeof v);  // an unaligned load
          acc[u % 4] += v;
        }
      }
    }
    const line16 total = acc[0] + acc[1] + acc[2] + acc[3];
    float sum = 0.0f;
    for (index_t i = 0; i < w; ++i) sum += total[i];
    partial[static_cast<std::size_t>(k)] = sum;
  });
  float s = 0;
  for (float v : partial) s += v;
  return s;
}

void bm_read(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const int streams = static_cast<int>(state.range(1));
  const auto x = view(stats_tokens);
  const double s =
      run(state, threads, [&] { benchmark::DoNotOptimize(read_all(x, threads, streams)); });
  peer_seconds()["stats/threads:" + std::to_string(threads) + (streams == 1 ? "/read" : "/read4")] =
      s;
  state.SetBytesProcessed(state.iterations() * x.size() * 4);
}

void bm_channel_stats(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const auto x = view(stats_tokens);
  masquant::channel_stats stats(channels);
  const masquant::parallel_for_fn parallel =
      threads > 1 ? pool(threads).as_function() : masquant::parallel_for_fn{};
  const double s = run(state, threads, [&] { stats.add(x, parallel); });
  state.SetBytesProcessed(state.iterations() * x.size() * 4);
  ratio_counters(state, "stats/threads:" + std::to_string(threads) + "/", s, {"read", "read4"});
}

// Three modalities: contiguous spans (a prompt with an image and an audio clip) or every token
// drawn at random (the worst case for routing).
void bm_modality_stats(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const bool interleaved = state.range(1) != 0;
  const auto x = view(stats_tokens);
  std::vector<masquant::modality_id> ids(static_cast<std::size_t>(stats_tokens));
  std::mt19937 gen(7);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    ids[i] = interleaved ? static_cast<masquant::modality_id>(gen() % 3)
                         : static_cast<masquant::modality_id>(i < ids.size() / 4       ? 0
                                                              : i < ids.size() * 3 / 4 ? 1
                                                                                       : 2);
  }
  masquant::modality_stats stats(channels, 3);
  const masquant::parallel_for_fn parallel =
      threads > 1 ? pool(threads).as_function() : masquant::parallel_for_fn{};
  const double s = run(state, threads, [&] { stats.add(x, ids, parallel); });
  state.SetBytesProcessed(state.iterations() * x.size() * 4);
  ratio_counters(state, "stats/threads:" + std::to_string(threads) + "/", s, {"read", "read4"});
}

// --- Gram --------------------------------------------------------------------------------------

const std::vector<double>& activations_double() {
  static std::vector<double> xd;
  if (xd.empty()) {
    const auto& x = activations(gram_tokens);
    xd.assign(x.begin(), x.end());
  }
  return xd;
}

std::string gram_group(int threads) {
  return "gram/threads:" + std::to_string(threads) + "/";
}

void bm_gram_eigen_float(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  Eigen::Map<const masquant::row_matrix<float>> x(activations(gram_tokens).data(), gram_tokens,
                                                  channels);
  Eigen::MatrixXf g = Eigen::MatrixXf::Zero(channels, channels);
  const double s =
      run(state, threads, [&] { g.selfadjointView<Eigen::Upper>().rankUpdate(x.transpose()); });
  benchmark::DoNotOptimize(g.data());
  peer_seconds()[gram_group(threads) + "eigen_f32"] = s;
}

void bm_gram_eigen_double(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  Eigen::Map<const masquant::row_matrix<double>> x(activations_double().data(), gram_tokens,
                                                   channels);
  Eigen::MatrixXd g = Eigen::MatrixXd::Zero(channels, channels);
  const double s =
      run(state, threads, [&] { g.selfadjointView<Eigen::Upper>().rankUpdate(x.transpose()); });
  benchmark::DoNotOptimize(g.data());
  peer_seconds()[gram_group(threads) + "eigen_f64"] = s;
}

#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
void bm_gram_ssyrk(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  openblas_set_num_threads(threads);
  const float* x = activations(gram_tokens).data();
  std::vector<float> g(static_cast<std::size_t>(channels * channels), 0.0f);
  const double s = run(state, threads, [&] {
    cblas_ssyrk(CblasRowMajor, CblasUpper, CblasTrans, channels, gram_tokens, 1.0f, x, channels,
                1.0f, g.data(), channels);
  });
  benchmark::DoNotOptimize(g.data());
  peer_seconds()[gram_group(threads) + "ssyrk"] = s;
}

void bm_gram_dsyrk(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  openblas_set_num_threads(threads);
  const double* x = activations_double().data();
  std::vector<double> g(static_cast<std::size_t>(channels * channels), 0.0);
  const double s = run(state, threads, [&] {
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, channels, gram_tokens, 1.0, x, channels, 1.0,
                g.data(), channels);
  });
  benchmark::DoNotOptimize(g.data());
  peer_seconds()[gram_group(threads) + "dsyrk"] = s;
}
#endif

void bm_gram_masquant(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  const auto x = view(gram_tokens);
  masquant::channel_stats stats(channels, /*with_gram=*/true);
  const masquant::parallel_for_fn parallel =
      threads > 1 ? pool(threads).as_function() : masquant::parallel_for_fn{};
  stats.add(x.middle_rows(0, 8), parallel);  // first touch of the workspace, not timed
  const double s = run(state, threads, [&] { stats.add(x, parallel); });
  benchmark::DoNotOptimize(stats.gram_upper().data());
  // T * C * (C + 1) flops, as a syrk of the upper triangle counts them.
  state.counters["GFLOPS"] = static_cast<double>(gram_tokens) * channels * (channels + 1) / s / 1e9;
  ratio_counters(state, gram_group(threads), s, {"dsyrk", "ssyrk", "eigen_f64", "eigen_f32"});
}

void register_all() {
  for (int threads : {1, 2}) {
    const std::string t = "/threads:" + std::to_string(threads);
    benchmark::RegisterBenchmark(("stats" + t + "/read").c_str(), bm_read)
        ->Args({threads, 1})
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("stats" + t + "/read4").c_str(), bm_read)
        ->Args({threads, 4})
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("stats" + t + "/channel_stats").c_str(), bm_channel_stats)
        ->Arg(threads)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("stats" + t + "/modality_stats:spans").c_str(), bm_modality_stats)
        ->Args({threads, 0})
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
    benchmark::RegisterBenchmark(("stats" + t + "/modality_stats:interleaved").c_str(),
                                 bm_modality_stats)
        ->Args({threads, 1})
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
  }
  for (int threads : {1, 2}) {
    const std::string t = "gram/threads:" + std::to_string(threads);
    const auto add = [&](const std::string& who, void (*fn)(benchmark::State&)) {
      benchmark::RegisterBenchmark((t + "/" + who).c_str(), fn)
          ->Arg(threads)
          ->UseManualTime()
          ->Unit(benchmark::kMillisecond)
          ->MinTime(1.0);
    };
#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
    add("dsyrk", bm_gram_dsyrk);
    add("ssyrk", bm_gram_ssyrk);
#endif
    if (threads == 1) {  // Eigen is built without OpenMP here: single-threaded only
      add("eigen_f64", bm_gram_eigen_double);
      add("eigen_f32", bm_gram_eigen_float);
    }
    add("masquant", bm_gram_masquant);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
#ifndef MASQUANT_BENCH_HAVE_OPENBLAS
  std::printf("OpenBLAS not found: the ssyrk/dsyrk peers are not run\n");
#endif
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
