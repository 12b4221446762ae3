// A program that uses masquant the way an outside project does (umbrella header only, built with
// no -march): it checks that every hot path runs the best instruction-set family of this CPU
// under the cap MASQUANT_MAX_ISA (tests/consumer/run.cmake runs it once per family), and that
// the results are the ones the docs promise: bit-identical to masquant::reference for the
// quantizers and the token pass, exact for the INT8 GEMM and the min / max statistics.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <masquant/masquant.hpp>
#include <random>
#include <string>
#include <vector>

namespace {

using masquant::hot_path;
using masquant::index_t;
using masquant::isa_family;

int failures = 0;

void check(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "consumer: FAILED: %s\n", what.c_str());
  ++failures;
}

// The family this program should run, from the compiler's own CPU model (not masquant's cpuid
// code) and the cap in the environment: the best one the CPU has, not above the cap.
isa_family expected_family() {
  isa_family best = isa_family::portable;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  unsigned a = 0, b = 0, c = 0, d = 0;
  __asm__("cpuid" : "=a"(a), "=b"(b), "=c"(c), "=d"(d) : "a"(7), "c"(1));
  const bool avx_vnni = avx2 && ((a >> 4) & 1u);
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512vnni");
  const char* env = std::getenv("MASQUANT_MAX_ISA");
  const std::string cap = env != nullptr ? env : "";
  const bool any = cap.empty();
  if (avx512 && (any || cap == "avx512"))
    best = isa_family::avx512;
  else if (avx_vnni && (any || cap == "avx512" || cap == "avx_vnni"))
    best = isa_family::avx_vnni;
  else if (avx2 && cap != "portable")
    best = isa_family::avx2;
#endif
  return best;
}

std::vector<float> random_floats(std::size_t n, std::uint64_t seed, float scale) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(gen);
  return v;
}

bool same_bytes(const void* a, const void* b, std::size_t n) {
  return std::memcmp(a, b, n) == 0;
}

}  // namespace

int run() {
  namespace mq = masquant;
  const isa_family want = expected_family();
  std::printf("masquant %s on %s: baseline %s, dispatch %s, best %s (expected %s)\n",
              mq::version_string, mq::cpu_name().c_str(), mq::to_string(mq::baseline_isa()),
              mq::isa_dispatch_enabled() ? "on" : "off", mq::to_string(mq::best_isa()),
              mq::to_string(want));
  check(mq::baseline_isa() == isa_family::portable,
        "a build without -march has the portable baseline");
  check(mq::isa_dispatch_enabled(), "dispatch is on by default");
  for (isa_family f : mq::isa_families) check(mq::isa_compiled(f), "every family is compiled");
  check(mq::best_isa() == want, "best_isa() is the expected family");
  for (hot_path h : {hot_path::quant, hot_path::stats, hot_path::gram, hot_path::token_pass,
                     hot_path::int8_gemm, hot_path::float_gemm}) {
    const isa_family own =
        want == isa_family::avx_vnni && h != hot_path::int8_gemm ? isa_family::avx2 : want;
    std::printf("  %-10s runs %s\n", mq::to_string(h), mq::to_string(mq::isa_of(h)));
    check(mq::isa_of(h) == own, std::string(mq::to_string(h)) + " runs the expected family");
  }

  // Quantizers: bit-identical to the scalar reference.
  const index_t rows = 5, cols = 133;
  const auto xs = random_floats(static_cast<std::size_t>(rows * cols), 1, 3.0f);
  const mq::matrix_view<const float> x(xs.data(), rows, cols);
  for (const mq::quant_spec& spec : {mq::quant_spec{8, true, mq::granularity::per_row, 0},
                                     mq::quant_spec{4, false, mq::granularity::per_group, 32}}) {
    std::vector<float> y(xs.size()), y_ref(xs.size());
    mq::fake_quant(x, spec, mq::matrix_view<float>(y.data(), rows, cols));
    mq::reference::fake_quant(x, spec, mq::matrix_view<float>(y_ref.data(), rows, cols));
    check(same_bytes(y.data(), y_ref.data(), y.size() * 4), "fake_quant == reference");
    std::vector<std::int8_t> q(xs.size()), q_ref(xs.size());
    const auto p = mq::quantize(x, spec, mq::matrix_view<std::int8_t>(q.data(), rows, cols));
    const auto p_ref =
        mq::reference::quantize(x, spec, mq::matrix_view<std::int8_t>(q_ref.data(), rows, cols));
    check(q == q_ref && same_bytes(p.scales.data(), p_ref.scales.data(), p.scales.size() * 4) &&
              p.zero_points == p_ref.zero_points,
          "quantize == reference");
  }

  // Statistics: min and max exact.
  mq::channel_stats stats(cols, true);
  stats.add(x);
  for (index_t j = 0; j < cols; ++j) {
    float lo = xs[static_cast<std::size_t>(j)], hi = lo;
    for (index_t i = 1; i < rows; ++i) {
      lo = std::min(lo, xs[static_cast<std::size_t>(i * cols + j)]);
      hi = std::max(hi, xs[static_cast<std::size_t>(i * cols + j)]);
    }
    check(stats.min()[j] == lo && stats.max()[j] == hi, "channel_stats min / max exact");
  }

  // INT8 GEMM: exact int32.
  const index_t m = 7, k = 301, n = 70;
  std::vector<std::int8_t> a(static_cast<std::size_t>(m * k)), w(static_cast<std::size_t>(n * k));
  std::mt19937_64 gen(3);
  for (auto& v : a) v = static_cast<std::int8_t>(static_cast<int>(gen() % 256) - 128);
  for (auto& v : w) v = static_cast<std::int8_t>(static_cast<int>(gen() % 256) - 128);
  const mq::matrix_view<const std::int8_t> av(a.data(), m, k), wv(w.data(), n, k);
  const auto packed =
      mq::packed_weights::pack(wv, std::vector<float>(static_cast<std::size_t>(n), 1.0f));
  std::vector<std::int32_t> c(static_cast<std::size_t>(m * n)), c_ref(c.size());
  mq::int8_gemm_int32(av, packed, mq::matrix_view<std::int32_t>(c.data(), m, n));
  mq::reference::int8_gemm_int32(av, wv, mq::matrix_view<std::int32_t>(c_ref.data(), m, n));
  check(c == c_ref, "int8_gemm_int32 == reference");

  // The layer: the family it ran, and its int8 activations bit-identical to the reference row
  // quantizer (the token pass).
  mq::quantized_linear_params params;
  params.d_in = cols;
  params.d_out = n;
  params.activation_bits = 8;
  params.weight_bits = 8;
  params.modality_names = {"text", "image"};
  params.qweight.assign(static_cast<std::size_t>(n * cols), 3);
  params.wscale.assign(static_cast<std::size_t>(n), 0.01f);
  params.smooth = {std::vector<float>(static_cast<std::size_t>(cols), 1.0f),
                   std::vector<float>(static_cast<std::size_t>(cols), 2.0f)};
  params.lowrank.resize(2);
  params.lowrank[1].L = mq::row_matrix<float>::Constant(cols, 4, 0.01f);
  params.lowrank[1].R = mq::row_matrix<float>::Constant(4, n, 0.02f);
  const mq::quantized_linear layer(params);
  const std::vector<mq::modality_id> ids = {0, 1, 1, 0, 1};
  std::vector<float> out(static_cast<std::size_t>(rows * n));
  mq::linear_workspace ws;
  mq::forward_options opt;
  opt.workspace = &ws;
  layer.forward(x, ids, mq::matrix_view<float>(out.data(), rows, n), opt);
  check(ws.isa() == want, "the layer ran the expected family");
  const auto act = ws.activations();
  std::vector<std::int8_t> q_ref(static_cast<std::size_t>(cols));
  for (index_t i = 0; i < rows; ++i) {
    const float scale = mq::reference::quantize_row_symmetric_smoothed(
        x.row_data(i), params.smooth[ids[static_cast<std::size_t>(i)]].data(), cols, 8,
        q_ref.data());
    check(act.scales[i] == scale &&
              same_bytes(act.values.row_data(i), q_ref.data(), static_cast<std::size_t>(cols)),
          "token pass == reference row quantizer");
  }

  if (failures != 0) return 1;
  std::printf("consumer: all checks passed\n");
  return 0;
}

int main() {
  try {
    return run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "consumer: error: %s\n", e.what());
    return 2;
  }
}
