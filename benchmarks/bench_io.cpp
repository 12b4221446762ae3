// bench_io.cpp: the safetensors reader's header parsing and the writer's header, against
// nlohmann::json on the same text.
//
// parse/<tensors>/<order>: safetensors_file::from_memory (the scan, every entry's checks, both
//   sorts, the tiling check) on a header of that many 1-element tensors; "sorted" lists them in
//   name order (as the reference writer does within a dtype), "shuffled" not (both sorts run).
//   The largest case is a header just under the 100 MB limit. Counter MB_per_s = header bytes
//   per second; the peers parse the same JSON text: nlohmann::json::parse into a DOM
//   (nlohmann_dom, no duplicate-key or safetensors checks) and nlohmann::json::accept (syntax
//   only). Counter vs_<peer> = t_peer / t_ours (> 1: masquant faster).
// write/<tensors>: safetensors_writer::serialize of that many 1-element tensors (the header text
//   and the bytes).
//
// Times are CPU time of the calling thread (everything here is single-threaded), robust on a
// shared, busy machine.

#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstring>
#include <ctime>
#include <map>
#include <masquant/io/safetensors.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace {

double cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
}

// A file image of `tensors` U8 [1] tensors named like a model's; names in or out of name order.
const std::vector<std::uint8_t>& image(int tensors, bool sorted) {
  static std::map<std::pair<int, bool>, std::vector<std::uint8_t>> cache;
  auto& img = cache[{tensors, sorted}];
  if (!img.empty()) return img;
  std::string h = "{";
  char name[96];
  for (int i = 0; i < tensors; ++i) {
    if (sorted)
      std::snprintf(name, sizeof name, "model.layers.%07d.mlp.proj_%d.weight", i / 7, i % 7);
    else
      std::snprintf(name, sizeof name, "model.layers.%d.mlp.proj_%d.weight", i / 7, i % 7);
    if (i > 0) h += ',';
    h += "\"";
    h += name;
    h += "\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[" + std::to_string(i) + "," +
         std::to_string(i + 1) + "]}";
  }
  h += "}";
  h.append((8 - h.size() % 8) % 8, ' ');
  img.resize(8 + h.size() + static_cast<std::size_t>(tensors));
  for (int i = 0; i < 8; ++i)
    img[std::size_t(i)] = std::uint8_t(std::uint64_t(h.size()) >> (8 * i));
  std::memcpy(img.data() + 8, h.data(), h.size());
  return img;
}

template <class F>
double time_it(benchmark::State& state, F&& f) {
  double total = 0;
  for (auto _ : state) {
    const double t0 = cpu_seconds();
    f();
    const double t = cpu_seconds() - t0;
    state.SetIterationTime(t);
    total += t;
  }
  return total / double(state.iterations());
}

std::map<std::pair<int, bool>, double> peer_time;

void set_counters(benchmark::State& state, const std::vector<std::uint8_t>& img, double t) {
  state.counters["MB_per_s"] = double(img.size()) / t / 1e6;
  state.counters["header_MB"] = double(img.size()) / 1e6;
}

void peer_dom(benchmark::State& state, int tensors, bool sorted) {
  const auto& img = image(tensors, sorted);
  const char* first = reinterpret_cast<const char*>(img.data()) + 8;
  const char* last = reinterpret_cast<const char*>(img.data()) + img.size() - tensors;
  const double t =
      time_it(state, [&] { benchmark::DoNotOptimize(nlohmann::json::parse(first, last)); });
  set_counters(state, img, t);
  peer_time[{tensors, sorted}] = t;
}

void peer_accept(benchmark::State& state, int tensors, bool sorted) {
  const auto& img = image(tensors, sorted);
  const char* first = reinterpret_cast<const char*>(img.data()) + 8;
  const char* last = reinterpret_cast<const char*>(img.data()) + img.size() - tensors;
  const double t = time_it(state, [&] {
    bool ok = nlohmann::json::accept(first, last);
    benchmark::DoNotOptimize(ok);
  });
  set_counters(state, img, t);
}

void ours(benchmark::State& state, int tensors, bool sorted) {
  const auto& img = image(tensors, sorted);
  const double t = time_it(state, [&] {
    const auto f = masquant::safetensors_file::from_memory(img.data(), img.size());
    benchmark::DoNotOptimize(f.tensors().data());
  });
  set_counters(state, img, t);
  const auto it = peer_time.find({tensors, sorted});
  if (it != peer_time.end()) state.counters["vs_nlohmann_dom"] = it->second / t;
}

void write(benchmark::State& state, int tensors) {
  masquant::safetensors_writer w;
  const std::uint8_t one = 1;
  char name[96];
  for (int i = 0; i < tensors; ++i) {
    std::snprintf(name, sizeof name, "model.layers.%d.mlp.proj_%d.weight", i / 7, i % 7);
    w.add_raw(name, masquant::dtype::u8, masquant::tensor_shape{1}, &one, 1);
  }
  const double t = time_it(state, [&] { benchmark::DoNotOptimize(w.serialize()); });
  state.counters["tensors_per_s"] = double(tensors) / t;
}

// Just under the 100 MB header limit with these names (~98 bytes an entry).
constexpr int limit_tensors = 1'000'000;

void register_all() {
  for (int n : {10'000, 160'000, limit_tensors}) {
    for (bool sorted : {true, false}) {
      const std::string tail = std::to_string(n) + (sorted ? "/sorted" : "/shuffled");
      const int reps = n >= limit_tensors ? 3 : 10;
      benchmark::RegisterBenchmark(("parse/" + tail + "/nlohmann_dom").c_str(), peer_dom, n, sorted)
          ->UseManualTime()
          ->Iterations(reps)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("parse/" + tail + "/nlohmann_accept").c_str(), peer_accept, n,
                                   sorted)
          ->UseManualTime()
          ->Iterations(reps)
          ->Unit(benchmark::kMillisecond);
      benchmark::RegisterBenchmark(("parse/" + tail + "/masquant").c_str(), ours, n, sorted)
          ->UseManualTime()
          ->Iterations(reps)
          ->Unit(benchmark::kMillisecond);
    }
  }
  for (int n : {10'000, 160'000})
    benchmark::RegisterBenchmark(("write/" + std::to_string(n)).c_str(), write, n)
        ->UseManualTime()
        ->Iterations(5)
        ->Unit(benchmark::kMillisecond);
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
