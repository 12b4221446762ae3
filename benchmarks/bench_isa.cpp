// bench_isa.cpp: a consumer built without -march (dispatch, the default) against the same code
// built with -march=native and MASQUANT_NO_DISPATCH (a static build for this very CPU), side by
// side in one program: benchmarks/isa/variant.cpp is compiled once each way and both copies are
// linked here (which the per-build names of detail/isa/build.hpp make safe). Hot paths: the INT8
// GEMM at M = 1, 16, 512 (K = N = 4096), the linear's prefill (K = N = 2048, M = 512, 30% image
// tokens with rank-102 factors), fake-quant (4096 x 4096), the statistics moments (4096 x 4096)
// and the Gram matrix (1024 tokens x 1024 channels).
//
// Every benchmark runs both variants round-robin (each round calls each once, alternating which
// goes first), so machine noise hits both alike; per variant it records the median call
// (`native_ms`, `dispatch_ms`, wall time) and the median thread CPU time (`*_cpu_ms`, which
// leaves out the time the thread is descheduled on a shared machine), and the ratios
// `dispatch_vs_native` = t_native / t_dispatch (>= 0.95: the target of issue 17). A summary
// table with the CPU model follows.
//
// Run: ./bench_isa [--benchmark_filter=int8_gemm] [--benchmark_min_time=2]

#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "isa/variant.hpp"

namespace {

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

struct row {
  std::string native_family, dispatch_family;
  double native = 0, dispatch = 0, native_cpu = 0, dispatch_cpu = 0;
};
std::map<std::string, row>& summary() {
  static std::map<std::string, row> rows;
  return rows;
}

void side_by_side(benchmark::State& state, const bench_isa::hot_case& native,
                  const bench_isa::hot_case& dispatch) {
  const bench_isa::hot_case* variant[2] = {&native, &dispatch};
  for (const auto* v : variant) v->run();  // warm-up: caches, pages, thread-local buffers
  std::vector<double> wall[2], cpu[2];
  std::size_t round = 0;
  for (auto _ : state) {
    for (int i = 0; i < 2; ++i) {
      const int k = (i + static_cast<int>(round)) % 2;  // alternate who goes first
      const double c0 = thread_cpu_seconds();
      const auto t0 = std::chrono::steady_clock::now();
      variant[k]->run();
      const auto t1 = std::chrono::steady_clock::now();
      cpu[k].push_back(thread_cpu_seconds() - c0);
      wall[k].push_back(std::chrono::duration<double>(t1 - t0).count());
    }
    ++round;
  }
  row r{native.family,   dispatch.family, median(wall[0]),
        median(wall[1]), median(cpu[0]),  median(cpu[1])};
  state.counters["native_ms"] = 1e3 * r.native;
  state.counters["dispatch_ms"] = 1e3 * r.dispatch;
  state.counters["native_cpu_ms"] = 1e3 * r.native_cpu;
  state.counters["dispatch_cpu_ms"] = 1e3 * r.dispatch_cpu;
  state.counters["dispatch_vs_native"] = r.native / r.dispatch;
  state.counters["dispatch_vs_native_cpu"] = r.native_cpu / r.dispatch_cpu;
  state.SetLabel("native: " + native.family + ", no -march: " + dispatch.family);
  summary()[native.name] = r;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);)
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  std::printf("CPU: %s\nnative (-march=native, MASQUANT_NO_DISPATCH): %s\n", cpu_model().c_str(),
              bench_isa::native::describe().c_str());
  std::printf("no -march (dispatch): %s\n", bench_isa::dispatch::describe().c_str());
  static const auto native = bench_isa::native::cases();
  static const auto dispatch = bench_isa::dispatch::cases();
  for (std::size_t i = 0; i < native.size(); ++i) {
    benchmark::RegisterBenchmark(
        ("isa/" + native[i].name).c_str(),
        [i](benchmark::State& st) { side_by_side(st, native[i], dispatch[i]); })
        ->UseRealTime()
        ->MinTime(1.0)
        ->Unit(benchmark::kMillisecond);
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  std::printf(
      "\n| hot path | family native / no -march | native ms | no -march ms | "
      "no -march vs native (wall) | (thread CPU) |\n|---|---|---|---|---|---|\n");
  for (const auto& [name, r] : summary()) {
    std::printf("| %s | %s / %s | %.3f | %.3f | %.3f | %.3f |\n", name.c_str(),
                r.native_family.c_str(), r.dispatch_family.c_str(), 1e3 * r.native,
                1e3 * r.dispatch, r.native / r.dispatch, r.native_cpu / r.dispatch_cpu);
  }
  return 0;
}
