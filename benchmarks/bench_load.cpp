// bench_load.cpp: how long an engine waits for its quantized linears, from the page cache.
//
//   load/<layer>/linear_file     load_linear from a safetensors file + construction (validate and
//                                pack; the path before packed images), at 1 and 2 threads
//   load/<layer>/packed_image    load_packed_image: open, mmap, header and section checks
//   load/<layer>/packed_touched  the same, then one read per 4 KiB page of the image (the minor
//                                faults a first forward takes on a fresh mapping)
//
// Layers: the engine layer of issue 18 (4096 x 4096, W4A8, text + vision, rank 204, bf16
// factors) and one Qwen2.5-7B decoder block (q, k, v, o, gate, up, down; three modalities,
// ranks at 5% of min(d_in, d_out), down without compensation), and the 28 blocks of the whole
// decoder as 196 image files (the packed loads only). Files live in a scratch directory under
// $TMPDIR and are read once before timing, so they come from the page cache.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <masquant/io/linear_file.hpp>
#include <masquant/io/packed_image_file.hpp>
#include <masquant/io/safetensors_file.hpp>
#include <masquant/io/safetensors_writer.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/parallel.hpp>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench_context.hpp"

namespace {

using namespace masquant;
namespace fs = std::filesystem;

struct linear_shape {
  std::string name;
  index_t d_in, d_out;
  std::vector<index_t> ranks;  // per modality, [0] ignored
};

quantized_linear_params random_params(const linear_shape& s, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  quantized_linear_params p;
  p.d_in = s.d_in;
  p.d_out = s.d_out;
  p.weight_bits = 4;
  p.activation_bits = 8;
  p.qweight.resize(static_cast<std::size_t>(s.d_in * s.d_out));
  for (auto& q : p.qweight) q = static_cast<std::int8_t>(static_cast<int>(gen() % 15) - 7);
  p.wscale.assign(static_cast<std::size_t>(s.d_out), 0.01f);
  const std::vector<std::string> names = {"text", "vision", "audio"};
  std::normal_distribution<float> normal(0.0f, 0.05f);
  p.lowrank.resize(s.ranks.size());
  for (std::size_t m = 0; m < s.ranks.size(); ++m) {
    p.smooth.emplace_back(static_cast<std::size_t>(s.d_in), 1.0f);
    p.modality_names.push_back(names[m]);
    if (m == 0 || s.ranks[m] == 0) continue;
    auto& f = p.lowrank[m];
    f.L.resize(s.d_in, s.ranks[m]);
    f.R.resize(s.ranks[m], s.d_out);
    for (index_t i = 0; i < f.L.size(); ++i) f.L.data()[i] = normal(gen);
    for (index_t i = 0; i < f.R.size(); ++i) f.R.data()[i] = normal(gen);
  }
  return p;
}

// The scratch files of one layer set: a safetensors file of the parameters and a packed image
// per linear, made once per process.
struct layer_set {
  std::vector<linear_shape> shapes;
  std::string dir, params_file;
  std::vector<std::string> images;
  std::size_t image_bytes = 0;

  // `blocks` > 1: the images again under blocks' names (distinct files, as a whole checkpoint
  // has), for the packed loads only.
  layer_set(const std::string& tag, std::vector<linear_shape> s, int blocks = 1)
      : shapes(std::move(s)) {
    const char* tmp = std::getenv("TMPDIR");
    dir = (fs::path(tmp != nullptr ? tmp : "/tmp") /
           ("masquant-bench-load-" + std::to_string(::getpid()) + "-" + tag))
              .string();
    fs::create_directories(dir);
    params_file = dir + "/params.safetensors";
    safetensors_writer w;
    w.set_metadata("wbits", "4");
    w.set_metadata("abits", "8");
    w.set_metadata("reference", "text");
    std::uint64_t seed = 1;
    for (const auto& shape : shapes) {
      quantized_linear_params p = random_params(shape, ++seed);
      add_linear(w, shape.name, p);
      const quantized_linear layer(std::move(p));
      images.push_back(dir + "/" + shape.name + ".mqlin");
      save_packed_image(layer, images.back());
      image_bytes += packed_image_bytes(layer);
    }
    w.write(params_file);
    const std::size_t first = images.size();
    for (int b = 1; b < blocks; ++b) {
      for (std::size_t i = 0; i < first; ++i) {
        images.push_back(dir + "/layers." + std::to_string(b) + "." + shapes[i].name + ".mqlin");
        fs::copy_file(images[i], images.back());
      }
    }
    image_bytes *= static_cast<std::size_t>(blocks);
    warm();
  }
  ~layer_set() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  // Reads every file once, so that the timed loads come from the page cache.
  void warm() const {
    std::vector<std::string> all = images;
    all.push_back(params_file);
    volatile unsigned sink = 0;
    for (const auto& f : all) {
      detail::mapped_file map(f);
      for (std::size_t i = 0; i < map.size(); i += 4096) sink = sink + map.data()[i];
    }
  }
};

layer_set& engine_layer() {
  static layer_set s("engine", {{"layer", 4096, 4096, {0, 204}}});
  return s;
}

// Qwen2.5-7B: hidden 3584, intermediate 18944, 4 kv heads x 128.
layer_set make_qwen(const std::string& tag, int blocks) {
  const auto r = [](index_t a, index_t b) { return std::min(a, b) / 20; };
  return layer_set(tag,
                   {{"q_proj", 3584, 3584, {0, r(3584, 3584), r(3584, 3584)}},
                    {"k_proj", 3584, 512, {0, r(3584, 512), r(3584, 512)}},
                    {"v_proj", 3584, 512, {0, r(3584, 512), r(3584, 512)}},
                    {"o_proj", 3584, 3584, {0, r(3584, 3584), r(3584, 3584)}},
                    {"gate_proj", 3584, 18944, {0, r(3584, 18944), r(3584, 18944)}},
                    {"up_proj", 3584, 18944, {0, r(3584, 18944), r(3584, 18944)}},
                    {"down_proj", 18944, 3584, {0, 0, 0}}},
                   blocks);
}

layer_set& qwen_block() {
  static layer_set s = make_qwen("qwen-block", 1);
  return s;
}

layer_set& qwen_model() {
  static layer_set s = make_qwen("qwen-model", 28);
  return s;
}

void counters(benchmark::State& state, const layer_set& s) {
  state.counters["linears"] = static_cast<double>(s.images.size());
  state.counters["image_MiB"] = static_cast<double>(s.image_bytes) / (1 << 20);
}

void linear_file(benchmark::State& state, layer_set& (*set)()) {
  layer_set& s = set();
  const int threads = static_cast<int>(state.range(0));
  thread_pool pool(threads);
  const parallel_for_fn parallel = threads > 1 ? pool.as_function() : parallel_for_fn();
  for (auto _ : state) {
    const safetensors_file file(s.params_file);
    std::vector<quantized_linear> layers;
    for (const auto& shape : s.shapes)
      layers.emplace_back(load_linear(file, shape.name), linear_options{}, parallel);
    benchmark::DoNotOptimize(layers.data());
  }
  counters(state, s);
}

void packed_image(benchmark::State& state, layer_set& (*set)(), bool touch) {
  layer_set& s = set();
  for (auto _ : state) {
    std::vector<quantized_linear> layers;
    for (const auto& path : s.images) layers.push_back(load_packed_image(path));
    if (touch) {
      // One read per page of each mapped packed weight: what a first forward faults in.
      unsigned sink = 0;
      for (const auto& l : layers) {
        const std::uint8_t* w = l.packed().data();
        for (std::size_t i = 0; i < l.packed().packed_bytes(); i += 4096) sink += w[i];
      }
      benchmark::DoNotOptimize(sink);
    }
    benchmark::DoNotOptimize(layers.data());
  }
  counters(state, s);
}

void register_all() {
  const std::pair<const char*, layer_set& (*)()> sets[] = {
      {"4096x4096_w4_r204", &engine_layer},
      {"qwen2.5-7b_block_w4", &qwen_block},
      {"qwen2.5-7b_28_blocks_w4", &qwen_model}};
  for (const auto& [tag, set] : sets) {
    const std::string base = std::string("load/") + tag;
    if (set != &qwen_model) {
      benchmark::RegisterBenchmark((base + "/linear_file").c_str(), linear_file, set)
          ->ArgName("threads")
          ->Arg(1)
          ->Arg(2)
          ->Unit(benchmark::kMillisecond)
          ->MinTime(1.0);
    }
    benchmark::RegisterBenchmark((base + "/packed_image").c_str(), packed_image, set, false)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(1.0);
    benchmark::RegisterBenchmark((base + "/packed_touched").c_str(), packed_image, set, true)
        ->Unit(benchmark::kMillisecond)
        ->MinTime(1.0);
  }
}

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  masquant::bench::add_cpu_context();
  register_all();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
