// variant.cpp: the hot paths of bench_isa (see variant.hpp), built once per variant; the build
// names the namespace (BENCH_ISA_VARIANT) and sets the flags. All data comes from fixed seeds,
// so both variants run the same problems.
#include "isa/variant.hpp"

#include <cmath>
#include <cstdint>
#include <masquant/gemm/int8_gemm.hpp>
#include <masquant/isa.hpp>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/quant/fake_quant.hpp>
#include <masquant/stats/channel_stats.hpp>
#include <memory>
#include <random>

namespace bench_isa::BENCH_ISA_VARIANT {

namespace {

using masquant::hot_path;
using masquant::index_t;

std::vector<float> normal_floats(std::size_t n, std::uint64_t seed, float sigma) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(gen);
  return v;
}

std::string family_of(hot_path h) {
  return masquant::to_string(masquant::isa_of(h));
}

// --- INT8 GEMM: K = N = 4096 int8 weights (16 MiB), M = 1, 16, 512 ------------------------------
constexpr index_t gemm_k = 4096, gemm_n = 4096;

struct gemm_data {
  masquant::packed_weights w;
  std::vector<std::int8_t> a;
  std::vector<float> a_scale, c;
  gemm_data() {
    std::mt19937_64 gen(1);
    std::vector<std::int8_t> wq(static_cast<std::size_t>(gemm_n * gemm_k));
    for (auto& v : wq) v = static_cast<std::int8_t>(static_cast<int>(gen() % 255) - 127);
    w = masquant::packed_weights::pack(
        masquant::matrix_view<const std::int8_t>(wq.data(), gemm_n, gemm_k),
        std::vector<float>(static_cast<std::size_t>(gemm_n), 1e-3f));
    a.resize(static_cast<std::size_t>(512 * gemm_k));
    for (auto& v : a) v = static_cast<std::int8_t>(static_cast<int>(gen() % 255) - 127);
    a_scale.assign(512, 1e-2f);
    c.assign(static_cast<std::size_t>(512 * gemm_n), 0.0f);
  }
};

// --- the linear's prefill: K = N = 2048, M = 512, 30% image tokens with rank-102 factors -------
constexpr index_t dim = 2048, tokens = 512, rank = 102;

struct layer_data {
  std::unique_ptr<masquant::quantized_linear> layer;
  std::vector<float> x, y;
  std::vector<masquant::modality_id> ids;
  layer_data() {
    masquant::quantized_linear_params p;
    p.d_in = dim;
    p.d_out = dim;
    p.modality_names = {"text", "image"};
    std::mt19937_64 gen(2);
    std::uniform_real_distribution<float> u(0.3f, 3.0f);
    p.smooth.assign(2, std::vector<float>(static_cast<std::size_t>(dim)));
    for (auto& s : p.smooth)
      for (auto& v : s) v = u(gen);
    p.qweight.resize(static_cast<std::size_t>(dim * dim));
    for (auto& v : p.qweight) v = static_cast<std::int8_t>(static_cast<int>(gen() % 255) - 127);
    p.wscale.assign(static_cast<std::size_t>(dim), 1e-3f);
    p.bias = normal_floats(static_cast<std::size_t>(dim), 3, 1.0f);
    p.lowrank.resize(2);
    const auto l = normal_floats(static_cast<std::size_t>(dim * rank), 4, 0.02f);
    const auto r = normal_floats(static_cast<std::size_t>(rank * dim), 5, 0.05f);
    p.lowrank[1].L = Eigen::Map<const masquant::row_matrix<float>>(l.data(), dim, rank);
    p.lowrank[1].R = Eigen::Map<const masquant::row_matrix<float>>(r.data(), rank, dim);
    layer = std::make_unique<masquant::quantized_linear>(std::move(p));
    x = normal_floats(static_cast<std::size_t>(tokens * dim), 6, 1.0f);
    y.assign(x.size(), 0.0f);
    // One image span of 30% of the tokens, after a text prompt, as in a VLM prefill.
    ids.assign(static_cast<std::size_t>(tokens), 0);
    for (index_t i = 40; i < 40 + tokens * 3 / 10; ++i) ids[static_cast<std::size_t>(i)] = 1;
  }
};

// --- fake-quant: 4096 x 4096 floats (64 MiB in, 64 MiB out), int8 per token ---------------------
// --- statistics: channel_stats::add over 4096 tokens x 4096 channels; Gram of 1024 x 1024 ------
constexpr index_t big_rows = 4096, big_cols = 4096, gram_tokens = 1024, gram_channels = 1024;

struct big_data {
  std::vector<float> x, y;
  big_data()
      : x(normal_floats(static_cast<std::size_t>(big_rows * big_cols), 7, 1.0f)),
        y(x.size(), 0.0f) {}
};

}  // namespace

std::string describe() {
  return std::string("baseline ") + masquant::to_string(masquant::baseline_isa()) + ", dispatch " +
         (masquant::isa_dispatch_enabled() ? "on" : "off") + ", best " +
         masquant::to_string(masquant::best_isa());
}

std::vector<hot_case> cases() {
  static gemm_data g;
  static layer_data l;
  static big_data b;
  std::vector<hot_case> out;
  for (index_t m : {1, 16, 512}) {
    out.push_back({"int8_gemm/M:" + std::to_string(m), family_of(hot_path::int8_gemm), [m] {
                     masquant::int8_gemm(
                         masquant::matrix_view<const std::int8_t>(g.a.data(), m, gemm_k),
                         masquant::vector_view<const float>(g.a_scale.data(), m), g.w,
                         masquant::matrix_view<float>(g.c.data(), m, gemm_n));
                   }});
  }
  out.push_back({"linear_prefill_30pct_image/M:512",
                 family_of(hot_path::token_pass) + "+" + family_of(hot_path::int8_gemm) + "+" +
                     family_of(hot_path::float_gemm),
                 [] {
                   l.layer->forward(masquant::matrix_view<const float>(l.x.data(), tokens, dim),
                                    l.ids, masquant::matrix_view<float>(l.y.data(), tokens, dim));
                 }});
  out.push_back({"fake_quant/4096x4096", family_of(hot_path::quant), [] {
                   masquant::fake_quant(
                       masquant::matrix_view<const float>(b.x.data(), big_rows, big_cols),
                       {8, true, masquant::granularity::per_row, 0},
                       masquant::matrix_view<float>(b.y.data(), big_rows, big_cols));
                 }});
  out.push_back({"stats_moments/4096x4096", family_of(hot_path::stats), [] {
                   masquant::channel_stats s(big_cols);
                   s.add(masquant::matrix_view<const float>(b.x.data(), big_rows, big_cols));
                 }});
  out.push_back({"stats_gram/1024x1024", family_of(hot_path::gram), [] {
                   masquant::channel_stats s(gram_channels, true);
                   s.add(
                       masquant::matrix_view<const float>(b.x.data(), gram_tokens, gram_channels));
                 }});
  return out;
}

}  // namespace bench_isa::BENCH_ISA_VARIANT
