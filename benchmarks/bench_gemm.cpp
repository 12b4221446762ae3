// bench_gemm.cpp: masquant's INT8 GEMM (int8 and int4 weights) against oneDNN's
// dnnl_gemm_u8s8s32 (raw, and plus the per-token / per-channel scale pass a quantized linear
// needs), OpenBLAS sgemm (sgemv at M = 1) and Eigen's float GEMM, in one process on the same
// shapes and data.
//
// Names: gemm/K<K>xN<N>/M:<M>/threads:<T>/<who>. Within one (shape, M, threads) group the peers
// run first and masquant last; masquant's rows carry counters vs_<peer> = t_peer / t_ours
// (> 1: masquant is faster) and, at M = 1, bw_frac_read / bw_frac_copy: the rate at which it
// streams its weight bytes as a fraction of plain streaming of the same bytes (mem_read: sum,
// mem_copy: memcpy counted as read + written bytes, the STREAM convention). A summary table of
// the ratios (fastest run of each participant) is printed at the end.
//
// Weights are cold: every iteration uses the next of a rotating set of weight copies whose total
// size (>= 96 MiB per participant) exceeds the 32 MiB LLC, so weights stream from DRAM as in a
// real model (each layer's weights are touched once per token). Activations and outputs are warm.
//
// Run with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset and OMP_PROC_BIND unset, e.g.
//   env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE -u OMP_PROC_BIND ./bench_gemm
// --benchmark_filter works as usual (e.g. 'M:1/' or 'K2048xN2048/M:128/threads:1').

#include <benchmark/benchmark.h>

#include <Eigen/Core>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <masquant/gemm/int8_gemm.hpp>
#include <masquant/parallel.hpp>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#ifdef MASQUANT_BENCH_HAVE_DNNL
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>
#endif
#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace {

using masquant::index_t;
using clock_type = std::chrono::steady_clock;

constexpr std::size_t rotating_bytes = std::size_t{96} << 20;

struct shape {
  index_t k, n;
};

// --- data shared by every participant of one (K, N) shape -------------------------------------

struct shape_data {
  index_t k = 0, n = 0;
  std::vector<float> w_scale;
  std::vector<masquant::packed_weights> ours8, ours4;  // rotating copies
  std::vector<std::vector<std::int8_t>> raw8;          // [N, K] int8 for oneDNN
  std::vector<std::vector<float>> wf;                  // [N, K] float for the fp32 peers
  bool have_raw8 = false, have_wf = false;
};

std::size_t copies_for(std::size_t bytes) {
  return std::max<std::size_t>(2, (rotating_bytes + bytes - 1) / bytes);
}

shape_data& data_for(index_t k, index_t n) {
  static std::unique_ptr<shape_data> current;
  if (current && current->k == k && current->n == n) return *current;
  current.reset();  // free the previous shape first
  current = std::make_unique<shape_data>();
  auto& d = *current;
  d.k = k;
  d.n = n;
  std::mt19937_64 gen(1234);
  std::uniform_int_distribution<int> q8(-127, 127), q4(-7, 7);
  std::uniform_real_distribution<float> s(1e-3f, 2e-2f);
  d.w_scale.resize(static_cast<std::size_t>(n));
  for (auto& v : d.w_scale) v = s(gen);
  std::vector<std::int8_t> w8(static_cast<std::size_t>(n * k)), w4(w8.size());
  for (auto& v : w8) v = static_cast<std::int8_t>(q8(gen));
  for (auto& v : w4) v = static_cast<std::int8_t>(q4(gen));
  const masquant::matrix_view<const std::int8_t> v8(w8.data(), n, k), v4(w4.data(), n, k);
  const std::size_t bytes = static_cast<std::size_t>(n * k);
  for (std::size_t i = 0; i < copies_for(bytes); ++i) {
    d.ours8.push_back(masquant::packed_weights::pack(v8, d.w_scale, 8));
  }
  for (std::size_t i = 0; i < copies_for(bytes / 2); ++i) {
    d.ours4.push_back(masquant::packed_weights::pack(v4, d.w_scale, 4));
  }
  return d;
}

void ensure_raw8(shape_data& d) {
  if (d.have_raw8) return;
  std::vector<std::int8_t> w(static_cast<std::size_t>(d.n * d.k));
  d.ours8.front().unpack(masquant::matrix_view<std::int8_t>(w.data(), d.n, d.k));
  d.raw8.assign(copies_for(w.size()), w);
  d.have_raw8 = true;
}

void ensure_wf(shape_data& d) {
  if (d.have_wf) return;
  std::vector<std::int8_t> w(static_cast<std::size_t>(d.n * d.k));
  d.ours8.front().unpack(masquant::matrix_view<std::int8_t>(w.data(), d.n, d.k));
  std::vector<float> f(w.size());
  for (index_t r = 0; r < d.n; ++r) {
    for (index_t c = 0; c < d.k; ++c) {
      const auto i = static_cast<std::size_t>(r * d.k + c);
      f[i] = w[i] * d.w_scale[static_cast<std::size_t>(r)];
    }
  }
  d.wf.assign(copies_for(f.size() * sizeof(float)), f);
  d.have_wf = true;
}

// Activations of one M (warm): int8 with per-row scales, the same +128 as uint8, and float.
struct activations {
  index_t m = 0, k = 0;
  std::vector<std::int8_t> a8;
  std::vector<std::uint8_t> au8;
  std::vector<float> scale, af;
};

const activations& activations_for(index_t m, index_t k) {
  static std::unique_ptr<activations> current;
  if (current && current->m == m && current->k == k) return *current;
  current.reset();
  current = std::make_unique<activations>();
  auto& x = *current;
  x.m = m;
  x.k = k;
  std::mt19937_64 gen(99);
  std::uniform_int_distribution<int> q(-127, 127);
  std::uniform_real_distribution<float> s(1e-2f, 1.0f);
  x.a8.resize(static_cast<std::size_t>(m * k));
  x.au8.resize(x.a8.size());
  x.af.resize(x.a8.size());
  x.scale.resize(static_cast<std::size_t>(m));
  for (auto& v : x.scale) v = s(gen);
  for (std::size_t i = 0; i < x.a8.size(); ++i) {
    x.a8[i] = static_cast<std::int8_t>(q(gen));
    x.au8[i] = static_cast<std::uint8_t>(x.a8[i] + 128);
    x.af[i] = x.a8[i] * x.scale[i / static_cast<std::size_t>(k)];
  }
  return x;
}

template <class T>
std::vector<T>& output(index_t m, index_t n) {
  static std::vector<T> c;
  c.resize(static_cast<std::size_t>(m * n));
  return c;
}

masquant::thread_pool& pool(int threads) {
  static std::map<int, std::unique_ptr<masquant::thread_pool>> pools;
  auto& p = pools[threads];
  if (!p) p = std::make_unique<masquant::thread_pool>(threads);
  return *p;
}

// --- peers' thread control ----------------------------------------------------------------------

void set_peer_threads(int threads) {
#ifdef MASQUANT_BENCH_HAVE_DNNL
  // libdnnl (Debian) runs on libgomp; it is loaded with libdnnl, so look the setter up there.
  using setter = void (*)(int);
  static const auto omp_set = reinterpret_cast<setter>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"));
  if (omp_set != nullptr) omp_set(threads);
#endif
#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
  openblas_set_num_threads(threads);
#endif
  (void)threads;
}

// --- timing and ratios --------------------------------------------------------------------------

using key = std::tuple<index_t, index_t, index_t, int>;  // K, N, M, threads
std::map<key, std::map<std::string, double>> seconds_per_call;
std::string last_runner;

// Runs `call(i)` (i = iteration index, for rotating copies) under the benchmark loop and records
// the mean wall time per call.
template <class F>
void timed_loop(benchmark::State& state, const key& id, const std::string& who, F&& call) {
  const auto start = clock_type::now();
  std::size_t i = 0;
  for (auto _ : state) {
    call(i++);
    benchmark::ClobberMemory();
  }
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  if (state.iterations() > 0) {
    // The fastest mean over the runs of this benchmark (several with --benchmark_repetitions):
    // on a shared machine, interference only ever slows a run down.
    const double per_call = elapsed / static_cast<double>(state.iterations());
    auto& slot = seconds_per_call[id][who];
    if (slot == 0.0 || per_call < slot) slot = per_call;
  }
  const auto [k, n, m, threads] = id;
  (void)threads;
  state.counters["GOPS"] = benchmark::Counter(2.0 * static_cast<double>(m * n * k),
                                              benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
  last_runner = who;
}

void weight_rate(benchmark::State& state, double bytes) {
  state.counters["weight_GBps"] = benchmark::Counter(
      bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate, benchmark::Counter::kIs1000);
}

// --- participants -------------------------------------------------------------------------------

void run_ours(benchmark::State& state, shape s, index_t m, int threads, int bits) {
  if (last_runner.rfind("ours", 0) != 0) {
    // Let the peers' spinning worker threads (OpenMP, OpenBLAS) go to sleep first.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  auto& d = data_for(s.k, s.n);
  const auto& x = activations_for(m, s.k);
  auto& c = output<float>(m, s.n);
  auto& copies = bits == 8 ? d.ours8 : d.ours4;
  masquant::gemm_options opt;
  if (threads > 1) opt.parallel = pool(threads).as_function();
  const masquant::matrix_view<const std::int8_t> a(x.a8.data(), m, s.k);
  const masquant::matrix_view<float> cv(c.data(), m, s.n);
  const key id{s.k, s.n, m, threads};
  const std::string who = bits == 8 ? "ours_int8" : "ours_int4";
  timed_loop(state, id, who, [&](std::size_t i) {
    masquant::int8_gemm(a, x.scale, copies[i % copies.size()], cv, opt);
  });
  if (m == 1) weight_rate(state, static_cast<double>(s.n * s.k) * bits / 8.0);
  const double ours = seconds_per_call[id][who];
  for (const auto& [peer, t] : seconds_per_call[id]) {
    if (peer.rfind("ours", 0) == 0) continue;
    // For mem_copy the bytes moved are twice the weights: the ratio is the fraction of the
    // copy bandwidth (STREAM convention) the GEMM streams weights at, as for mem_read.
    const double bytes_ratio = peer == "mem_copy" ? 2.0 : 1.0;
    const double weight_share = bits == 8 ? 1.0 : 0.5;
    if (peer.rfind("mem_", 0) == 0) {
      state.counters["bw_frac_" + peer.substr(4)] = t / ours * weight_share / bytes_ratio;
    } else {
      state.counters["vs_" + peer] = t / ours;
    }
  }
}

#ifdef MASQUANT_BENCH_HAVE_DNNL
void run_dnnl(benchmark::State& state, shape s, index_t m, int threads, bool scaled) {
  auto& d = data_for(s.k, s.n);
  ensure_raw8(d);
  const auto& x = activations_for(m, s.k);
  auto& ci = output<std::int32_t>(m, s.n);
  auto& cf = output<float>(m, s.n);
  set_peer_threads(threads);
  const std::int32_t zero = 0;
  // The scale pass of a quantized linear: y = float(acc) * a_scale[m] * w_scale[n], parallel
  // over rows with the same pool masquant uses (oneDNN cannot fuse a per-token scale).
  auto scale_rows = [&](index_t r) {
    const std::int32_t* in = ci.data() + r * s.n;
    float* out = cf.data() + r * s.n;
    const float as = x.scale[static_cast<std::size_t>(r)];
    for (index_t j = 0; j < s.n; ++j)
      out[j] = static_cast<float>(in[j]) * (as * d.w_scale[static_cast<std::size_t>(j)]);
  };
  const key id{s.k, s.n, m, threads};
  timed_loop(state, id, scaled ? "dnnl" : "dnnl_raw", [&](std::size_t i) {
    const auto& w = d.raw8[i % d.raw8.size()];
    dnnl_gemm_u8s8s32('N', 'T', 'F', m, s.n, s.k, 1.0f, x.au8.data(), s.k, 0, w.data(), s.k, 0,
                      0.0f, ci.data(), s.n, &zero);
    if (scaled) {
      if (threads > 1 && m > 1) {
        pool(threads).parallel_for(m, scale_rows);
      } else {
        for (index_t r = 0; r < m; ++r) scale_rows(r);
      }
    }
  });
  if (m == 1) weight_rate(state, static_cast<double>(s.n * s.k));
}
#endif

#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
void run_openblas(benchmark::State& state, shape s, index_t m, int threads) {
  auto& d = data_for(s.k, s.n);
  ensure_wf(d);
  const auto& x = activations_for(m, s.k);
  auto& c = output<float>(m, s.n);
  set_peer_threads(threads);
  const key id{s.k, s.n, m, threads};
  timed_loop(state, id, "openblas", [&](std::size_t i) {
    const auto& w = d.wf[i % d.wf.size()];
    const auto n = static_cast<blasint>(s.n), k = static_cast<blasint>(s.k);
    if (m == 1) {
      cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w.data(), k, x.af.data(), 1, 0.0f,
                  c.data(), 1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), n, k, 1.0f,
                  x.af.data(), k, w.data(), k, 0.0f, c.data(), n);
    }
  });
  if (m == 1) weight_rate(state, 4.0 * static_cast<double>(s.n * s.k));
}
#endif

void run_eigen(benchmark::State& state, shape s, index_t m) {
  using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  auto& d = data_for(s.k, s.n);
  ensure_wf(d);
  const auto& x = activations_for(m, s.k);
  auto& c = output<float>(m, s.n);
  Eigen::Map<const row_major> xa(x.af.data(), m, s.k);
  Eigen::Map<row_major> y(c.data(), m, s.n);
  const key id{s.k, s.n, m, 1};
  timed_loop(state, id, "eigen", [&](std::size_t i) {
    Eigen::Map<const row_major> w(d.wf[i % d.wf.size()].data(), s.n, s.k);
    y.noalias() = xa * w.transpose();
  });
  if (m == 1) weight_rate(state, 4.0 * static_cast<double>(s.n * s.k));
}

// Streams the same rotating int8 weight copies without computing: the memory system's limit for
// a decode step. "read" sums them; "copy" copies them (STREAM convention: read + written bytes).
void run_memory(benchmark::State& state, shape s, int threads, bool copy) {
  auto& d = data_for(s.k, s.n);
  const std::size_t bytes = d.ours8.front().packed_bytes();
  static std::vector<std::vector<std::uint64_t>> dst;  // kept across calls: no page faults
  if (copy && (dst.size() != d.ours8.size() || dst.front().size() != bytes / 8)) {
    dst.assign(d.ours8.size(), std::vector<std::uint64_t>(bytes / 8, 1));
  }
  const key id{s.k, s.n, 1, threads};
  timed_loop(state, id, copy ? "mem_copy" : "mem_read", [&](std::size_t i) {
    const std::size_t c = i % d.ours8.size();
    const auto* src = reinterpret_cast<const std::uint64_t*>(d.ours8[c].data());
    const auto words = static_cast<index_t>(bytes / 8);
    const index_t parts = threads;
    auto part = [&](index_t t) {
      const index_t w0 = words * t / parts, w1 = words * (t + 1) / parts;
      if (copy) {
        std::memcpy(dst[c].data() + w0, src + w0, static_cast<std::size_t>(w1 - w0) * 8);
      } else {
        std::uint64_t acc = 0;
        for (index_t w = w0; w < w1; ++w) acc += src[w];
        benchmark::DoNotOptimize(acc);
      }
    };
    if (threads > 1) {
      pool(threads).parallel_for(parts, part);
    } else {
      part(0);
    }
  });
  weight_rate(state, static_cast<double>(bytes) * (copy ? 2.0 : 1.0));
}

// --- registration and summary -------------------------------------------------------------------

const shape shapes[] = {{2048, 2048}, {2048, 11008}, {11008, 2048}, {3584, 3584}};
const index_t ms[] = {1, 16, 128, 512, 2048};
const int thread_counts[] = {1, 2};

std::string name(shape s, index_t m, int threads, const char* who) {
  return "gemm/K" + std::to_string(s.k) + "xN" + std::to_string(s.n) + "/M:" + std::to_string(m) +
         "/threads:" + std::to_string(threads) + "/" + who;
}

void register_all() {
  for (shape s : shapes) {
    for (index_t m : ms) {
      for (int t : thread_counts) {
        auto reg = [&](const char* who, auto fn) {
          benchmark::RegisterBenchmark(name(s, m, t, who).c_str(), fn)
              ->UseRealTime()
              ->MinTime(0.3)
              ->Unit(benchmark::kMicrosecond);
        };
#ifdef MASQUANT_BENCH_HAVE_DNNL
        reg("dnnl_raw", [=](benchmark::State& st) { run_dnnl(st, s, m, t, false); });
        reg("dnnl", [=](benchmark::State& st) { run_dnnl(st, s, m, t, true); });
#endif
#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
        reg("openblas", [=](benchmark::State& st) { run_openblas(st, s, m, t); });
#endif
        // Eigen is built here without OpenMP, so it runs on one thread only.
        if (t == 1) reg("eigen", [=](benchmark::State& st) { run_eigen(st, s, m); });
        if (m == 1) {
          reg("mem_read", [=](benchmark::State& st) { run_memory(st, s, t, false); });
          reg("mem_copy", [=](benchmark::State& st) { run_memory(st, s, t, true); });
        }
        reg("ours_int8", [=](benchmark::State& st) { run_ours(st, s, m, t, 8); });
        reg("ours_int4", [=](benchmark::State& st) { run_ours(st, s, m, t, 4); });
      }
    }
  }
}

void print_summary() {
  std::printf(
      "\n| K x N | M | threads | ours int8 GOPS | vs dnnl | vs dnnl raw | int4 vs int8 |"
      " vs openblas | vs eigen | int8 weight GB/s | of copy bw | of read bw |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& entry : seconds_per_call) {
    const auto [k, n, m, threads] = entry.first;
    const auto& times = entry.second;
    auto get = [&times](const char* who) {
      const auto it = times.find(who);
      return it == times.end() ? 0.0 : it->second;
    };
    const double ours = get("ours_int8");
    if (ours == 0.0) continue;
    auto ratio = [&](const char* who) {
      const double p = get(who);
      char buf[32];
      std::snprintf(buf, sizeof buf, p > 0.0 ? "%.2f" : "-", p / ours);
      return std::string(buf);
    };
    const double int4 = get("ours_int4");
    char int4_ratio[32] = "-", gbps[32] = "-", of_copy[32] = "-", of_read[32] = "-";
    if (int4 > 0.0) std::snprintf(int4_ratio, sizeof int4_ratio, "%.2f", ours / int4);
    if (m == 1) {
      const double rate = static_cast<double>(n * k) / ours;  // int8 weight bytes per second
      std::snprintf(gbps, sizeof gbps, "%.1f", rate * 1e-9);
      if (get("mem_copy") > 0.0) {
        std::snprintf(of_copy, sizeof of_copy, "%.0f%%",
                      100.0 * rate / (2.0 * static_cast<double>(n * k) / get("mem_copy")));
      }
      if (get("mem_read") > 0.0) {
        std::snprintf(of_read, sizeof of_read, "%.0f%%",
                      100.0 * rate / (static_cast<double>(n * k) / get("mem_read")));
      }
    }
    std::printf("| %ldx%ld | %ld | %d | %.0f | %s | %s | %s | %s | %s | %s | %s | %s |\n",
                static_cast<long>(k), static_cast<long>(n), static_cast<long>(m), threads,
                2.0 * static_cast<double>(m * n * k) / ours * 1e-9, ratio("dnnl").c_str(),
                ratio("dnnl_raw").c_str(), int4_ratio, ratio("openblas").c_str(),
                ratio("eigen").c_str(), gbps, of_copy, of_read);
  }
}

}  // namespace

int main(int argc, char** argv) {
  for (const char* var : {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_PROC_BIND"}) {
    if (std::getenv(var) != nullptr) {
      std::fprintf(stderr, "bench_gemm: warning: %s is set; peers may not run at their best\n",
                   var);
    }
  }
  std::printf("masquant int8_gemm kernel: %s\n", masquant::to_string(masquant::best_gemm_isa()));
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  print_summary();
  return 0;
}
