// bench_model.cpp: whole-model quantization of a Qwen2.5-7B-shaped slice — hidden 3584,
// intermediate 18944, 28 heads with 4 k/v heads of 128 (k/v 512 wide), two decoder blocks in BF16,
// a 4096-token vocabulary (the real 152064-row embedding and head are byte copies, not
// calibration) — from statistics of three modalities (text, vision, audio; 512 tokens each per
// input, Gram matrices of vision and audio), with the llama preset (q/k/v/o/gate/up per-modality
// smoothing and compensation at ρ = 0.05, down_proj without; no learning, no report: statistics
// only).
//
// Each run is a child process (fork) running quantize_checkpoint() into a fresh directory, so
// that its peak resident memory (wait4's ru_maxrss) is the quantization's alone. Counters:
// s_per_block (wall seconds / 2), projected_28_blocks_s, peak_rss_gib, and calibrate()'s phases
// per block (<phase>_s, summed over the block's linears).
//
// Run: build/rel/benchmarks/bench_model   (setup writes ~1 GB under $TMPDIR and takes a minute)
#include <benchmark/benchmark.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <masquant/io/safetensors_writer.hpp>
#include <masquant/io/statistics_file.hpp>
#include <masquant/model/presets.hpp>
#include <masquant/model/quantize.hpp>
#include <masquant/parallel.hpp>
#include <random>
#include <string>

#include "bench_context.hpp"

namespace {

namespace fs = std::filesystem;
using masquant::index_t;

constexpr index_t hidden = 3584, intermediate = 18944, kv_width = 512, vocab = 4096, blocks = 2;
constexpr index_t tokens = 512;

struct slice {
  std::string dir, model, stats;
};

std::vector<float> normal(index_t n, float sigma, std::uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (auto& x : v) x = d(g);
  return v;
}

// Activations of modality m: text with massive channels, vision and audio larger and low-rank.
std::vector<float> activations(index_t channels, int m, std::uint64_t seed) {
  std::vector<float> x = normal(tokens * channels, 1.0f, seed);
  if (m == 0) {
    for (index_t t = 0; t < tokens; ++t) x[std::size_t(t * channels + 7)] *= 40.0f;
    return x;
  }
  const auto basis = normal(16 * channels, 3.0f * float(m), seed + 1);
  const auto coef = normal(tokens * 16, 1.0f, seed + 2);
  for (index_t t = 0; t < tokens; ++t)
    for (index_t c = 0; c < channels; ++c) {
      float v = 0.1f * x[std::size_t(t * channels + c)];
      for (index_t k = 0; k < 16; ++k)
        v += coef[std::size_t(t * 16 + k)] * basis[std::size_t(k * channels + c)];
      x[std::size_t(t * channels + c)] = v;
    }
  return x;
}

const slice& setup() {
  static const slice s = [] {
    slice out;
    const char* tmp = std::getenv("TMPDIR");
    out.dir = std::string(tmp && *tmp ? tmp : "/tmp") + "/masquant-bench-model";
    out.model = out.dir + "/model";
    out.stats = out.dir + "/stats.safetensors";
    if (fs::exists(out.model + "/config.json") && fs::exists(out.stats)) return out;
    fs::create_directories(out.model);
    masquant::safetensors_writer w;
    std::uint64_t seed = 1;
    auto add = [&](const std::string& name, index_t rows, index_t cols, float sigma) {
      const auto v = normal(rows * cols, sigma, ++seed);
      if (rows == 1)
        w.add(name, masquant::vector_view<const float>(v.data(), cols), masquant::dtype::bf16);
      else
        w.add(name, masquant::matrix_view<const float>(v.data(), rows, cols),
              masquant::dtype::bf16);
    };
    add("model.embed_tokens.weight", vocab, hidden, 1.0f);
    add("lm_head.weight", vocab, hidden, 0.02f);
    add("model.norm.weight", 1, hidden, 1.0f);
    masquant::statistics_set stats({"text", "vision", "audio"});
    for (index_t b = 0; b < blocks; ++b) {
      const std::string p = "model.layers." + std::to_string(b) + ".";
      add(p + "input_layernorm.weight", 1, hidden, 1.0f);
      add(p + "post_attention_layernorm.weight", 1, hidden, 1.0f);
      add(p + "self_attn.q_proj.weight", hidden, hidden, 0.02f);
      add(p + "self_attn.q_proj.bias", 1, hidden, 0.02f);
      add(p + "self_attn.k_proj.weight", kv_width, hidden, 0.02f);
      add(p + "self_attn.k_proj.bias", 1, kv_width, 0.02f);
      add(p + "self_attn.v_proj.weight", kv_width, hidden, 0.02f);
      add(p + "self_attn.v_proj.bias", 1, kv_width, 0.02f);
      add(p + "self_attn.o_proj.weight", hidden, hidden, 0.02f);
      add(p + "mlp.gate_proj.weight", intermediate, hidden, 0.02f);
      add(p + "mlp.up_proj.weight", intermediate, hidden, 0.02f);
      add(p + "mlp.down_proj.weight", hidden, intermediate, 0.02f);
      for (const auto& [key, c, gram] : {std::tuple{p + "self_attn.q_proj", hidden, true},
                                         {p + "self_attn.o_proj", hidden, true},
                                         {p + "mlp.gate_proj", hidden, true},
                                         {p + "mlp.down_proj", intermediate, false}})
        for (int m = 0; m < 3; ++m) {
          const auto x = activations(c, m, ++seed);
          stats
              .record(key, c, gram ? masquant::gram_mode::non_reference : masquant::gram_mode::none)
              .add(masquant::matrix_view<const float>(x.data(), tokens, c),
                   static_cast<masquant::modality_id>(m));
        }
    }
    w.write(out.model + "/model.safetensors");
    std::FILE* f = std::fopen((out.model + "/config.json").c_str(), "w");
    std::fprintf(f,
                 "{\"model_type\": \"qwen2\", \"hidden_size\": %td, \"intermediate_size\": %td, "
                 "\"num_hidden_layers\": %td, \"num_key_value_heads\": 4}\n",
                 hidden, intermediate, blocks);
    std::fclose(f);
    masquant::save_statistics(stats, out.stats);
    return out;
  }();
  return s;
}

using phase_seconds = std::array<double, masquant::calibration_phase_count>;

void BM_quantize_slice(benchmark::State& state) {
  const slice& s = setup();
  const int threads = static_cast<int>(state.range(0));
  double seconds = 0, rss_gib = 0;
  phase_seconds phases{};
  for (auto _ : state) {
    const std::string out = s.dir + "/out-" + std::to_string(threads);
    fs::remove_all(out);
    int pipe_fds[2];
    if (::pipe(pipe_fds) != 0) {
      state.SkipWithError("pipe() failed");
      return;
    }
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::close(pipe_fds[0]);
      int rc = 0;
      try {
        masquant::thread_pool pool(threads);
        masquant::quantize_options o;
        o.model = s.model;
        o.output = out;
        o.statistics = {s.stats};
        o.recipe = masquant::recipe_preset("llama");
        o.recipe.defaults.learn_steps = 0;
        o.parallel = pool.as_function();
        const masquant::quantize_result r = masquant::quantize_checkpoint(o);
        phase_seconds sum{};  // calibrate()'s phases summed over the linears, to the parent
        for (const auto& l : r.linears)
          for (int p = 0; p < masquant::calibration_phase_count; ++p)
            sum[static_cast<std::size_t>(p)] += l.report.seconds.phase[static_cast<std::size_t>(p)];
        if (::write(pipe_fds[1], sum.data(), sizeof sum) != static_cast<ssize_t>(sizeof sum))
          rc = 1;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_model: %s\n", e.what());
        rc = 1;
      }
      std::_Exit(rc);
    }
    ::close(pipe_fds[1]);
    phase_seconds sum{};
    const bool got =
        ::read(pipe_fds[0], sum.data(), sizeof sum) == static_cast<ssize_t>(sizeof sum);
    ::close(pipe_fds[0]);
    int status = 0;
    rusage usage{};
    ::wait4(pid, &status, 0, &usage);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (!got || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      state.SkipWithError("quantize_checkpoint failed (see stderr)");
      return;
    }
    rss_gib = static_cast<double>(usage.ru_maxrss) / (1024.0 * 1024.0);  // ru_maxrss is KiB
    phases = sum;
    state.SetIterationTime(seconds);
    fs::remove_all(out);
  }
  state.counters["s_per_block"] = seconds / blocks;
  state.counters["projected_28_blocks_s"] = seconds / blocks * 28;
  state.counters["peak_rss_gib"] = rss_gib;
  // Where a block's time goes: calibrate()'s phases per block (the rest is reading, converting
  // and writing tensors).
  for (int p = 0; p < masquant::calibration_phase_count; ++p) {
    const auto phase = static_cast<masquant::calibration_phase>(p);
    const double per_block = phases[static_cast<std::size_t>(p)] / blocks;
    if (per_block > 0) state.counters[std::string(masquant::to_string(phase)) + "_s"] = per_block;
  }
}
BENCHMARK(BM_quantize_slice)
    ->ArgName("threads")
    ->Arg(1)
    ->Arg(2)
    ->Iterations(1)
    ->UseManualTime()
    ->Unit(benchmark::kSecond);

}  // namespace

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  masquant::bench::add_cpu_context();
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
