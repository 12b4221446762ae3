// bench_gemm.cpp: masquant's INT8 GEMM (int8 and int4 weights, float out; and int8 weights with
// int32 out, "ours_int32", the like of raw oneDNN) against, strongest first: oneDNN's matmul
// primitive with weights reordered once ("dnnl_matmul": u8 x s8 -> f32, per-channel scales, the
// per-token scale fused as a post-op when its implementation takes it), oneDNN's
// dnnl_gemm_u8s8s32 (raw, "dnnl_raw", and plus the per-token / per-channel scale pass a
// quantized linear needs, "dnnl"), OpenBLAS sgemm (sgemv at M = 1) and Eigen's float GEMM, in one
// process on the same shapes and data. It prints the CPU and one core's measured multiply peak
// for masquant's family (peak.hpp); the summary gives masquant's fraction of it.
//
// Two modes. Separate (default): one benchmark per participant, named
// gemm/K<K>xN<N>/M:<M>/threads:<T>/<who>; within a problem the peers run first and masquant last,
// and masquant's rows carry counters vs_<peer> = t_peer / t_ours (> 1: masquant is faster) and,
// at M = 1, bw_frac_read / bw_frac_copy: its weight-streaming rate as a fraction of plainly
// streaming the same bytes (mem_read: sum, mem_copy: memcpy counted as read + written bytes, the
// STREAM convention). Paired (--paired): one benchmark per problem, .../paired, whose every
// iteration calls each participant once in turn and times each call, so all see the same
// conditions on a busy host; ratios compare median calls. --no_fp32_peers leaves out OpenBLAS and
// Eigen (5-40x slower, they dominate a paired run's time). --isa=<name> (avx512, avx_vnni,
// avx2, portable) runs masquant's kernel of that family instead of the best one, to measure the
// kernel an AVX2-only or AVX-VNNI machine would run. A summary table of the ratios follows.
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
#include <ctime>
#include <functional>
#include <map>
#include <masquant/gemm/int8_gemm.hpp>
#include <masquant/parallel.hpp>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "bench_context.hpp"
#include "peak.hpp"

#ifdef MASQUANT_BENCH_HAVE_DNNL
#include <dlfcn.h>
#include <oneapi/dnnl/dnnl.h>

#include <oneapi/dnnl/dnnl.hpp>
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

#ifdef MASQUANT_BENCH_HAVE_DNNL
struct matmul_state;
#endif

struct shape_data {
  index_t k = 0, n = 0;
  std::vector<float> w_scale;
  std::vector<masquant::packed_weights> ours8, ours4;  // rotating copies
  std::vector<std::vector<std::int8_t>> raw8;          // [N, K] int8 for oneDNN
  std::vector<std::vector<float>> wf;                  // [N, K] float for the fp32 peers
  bool have_raw8 = false, have_wf = false;
#ifdef MASQUANT_BENCH_HAVE_DNNL
  std::map<index_t, std::unique_ptr<matmul_state>> matmul;  // by M
#endif
  ~shape_data();
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

// Outputs start on a cache line, as an engine's activation buffers do (for every participant).
template <class T>
struct line_aligned {
  using value_type = T;
  line_aligned() = default;
  template <class U>
  explicit line_aligned(const line_aligned<U>&) {}
  T* allocate(std::size_t n) {
    return static_cast<T*>(::operator new (n * sizeof(T), std::align_val_t{64}));
  }
  void deallocate(T* p, std::size_t) { ::operator delete (p, std::align_val_t{64}); }
  bool operator==(const line_aligned&) const { return true; }
  bool operator!=(const line_aligned&) const { return false; }
};

template <class T>
std::vector<T, line_aligned<T>>& output(index_t m, index_t n) {
  static std::vector<T, line_aligned<T>> c;
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

// --- participants -------------------------------------------------------------------------------

// One contender on one (shape, M, threads) problem: call(i) runs it once on the i-th rotating
// weight copy; weight_bytes is what a call streams at M = 1 (for GB/s).
struct participant {
  std::string name;
  std::function<void(std::size_t)> call;
  double weight_bytes = 0.0;
  bool spins = false;  // leaves worker threads spinning after a call (OpenMP, OpenBLAS)
};

masquant::isa_family ours_isa = masquant::isa_family::automatic;  // --isa

participant ours(shape s, index_t m, int threads, int bits) {
  auto& d = data_for(s.k, s.n);
  const auto& x = activations_for(m, s.k);
  auto& c = output<float>(m, s.n);
  auto& copies = bits == 8 ? d.ours8 : d.ours4;
  masquant::gemm_options opt;
  opt.isa = ours_isa;
  if (threads > 1) opt.parallel = pool(threads).as_function();
  const masquant::matrix_view<const std::int8_t> a(x.a8.data(), m, s.k);
  const masquant::matrix_view<float> cv(c.data(), m, s.n);
  return {bits == 8 ? "ours_int8" : "ours_int4",
          [&copies, &x, a, cv, opt](std::size_t i) {
            masquant::int8_gemm(a, x.scale, copies[i % copies.size()], cv, opt);
          },
          static_cast<double>(s.n * s.k) * bits / 8.0, false};
}

// masquant's int8 weights with int32 output (no float epilogue): what raw oneDNN computes.
participant ours_int32(shape s, index_t m, int threads) {
  auto& d = data_for(s.k, s.n);
  const auto& x = activations_for(m, s.k);
  auto& c = output<std::int32_t>(m, s.n);
  masquant::gemm_options opt;
  opt.isa = ours_isa;
  if (threads > 1) opt.parallel = pool(threads).as_function();
  const masquant::matrix_view<const std::int8_t> a(x.a8.data(), m, s.k);
  const masquant::matrix_view<std::int32_t> cv(c.data(), m, s.n);
  return {"ours_int32",
          [&d, a, cv, opt](std::size_t i) {
            masquant::int8_gemm_int32(a, d.ours8[i % d.ours8.size()], cv, opt);
          },
          static_cast<double>(s.n * s.k), false};
}

#ifdef MASQUANT_BENCH_HAVE_DNNL
// oneDNN's int8 GEMM (u8 activations, s8 weights, int32 out), raw or followed by the scale pass
// of a quantized linear, y = float(acc) * a_scale[m] * w_scale[n], parallel over rows on the
// same pool masquant uses (oneDNN cannot fuse a per-token scale).
participant dnnl(shape s, index_t m, int threads, bool scaled) {
  auto& d = data_for(s.k, s.n);
  ensure_raw8(d);
  const auto& x = activations_for(m, s.k);
  auto& ci = output<std::int32_t>(m, s.n);
  auto& cf = output<float>(m, s.n);
  auto call = [&d, &x, &ci, &cf, s, m, threads, scaled](std::size_t i) {
    static const std::int32_t zero = 0;
    set_peer_threads(threads);
    const auto& w = d.raw8[i % d.raw8.size()];
    dnnl_gemm_u8s8s32('N', 'T', 'F', m, s.n, s.k, 1.0f, x.au8.data(), s.k, 0, w.data(), s.k, 0,
                      0.0f, ci.data(), s.n, &zero);
    if (!scaled) return;
    auto rows = [&](index_t r) {
      const std::int32_t* in = ci.data() + r * s.n;
      float* out = cf.data() + r * s.n;
      const float as = x.scale[static_cast<std::size_t>(r)];
      for (index_t j = 0; j < s.n; ++j) {
        out[j] = static_cast<float>(in[j]) * (as * d.w_scale[static_cast<std::size_t>(j)]);
      }
    };
    if (threads > 1 && m > 1) {
      pool(threads).parallel_for(m, rows);
    } else {
      for (index_t r = 0; r < m; ++r) rows(r);
    }
  };
  return {scaled ? "dnnl" : "dnnl_raw", call, static_cast<double>(s.n * s.k), true};
}

// oneDNN's matmul primitive as PyTorch/IPEX and OpenVINO run a quantized linear: int8 activations
// x s8 weights -> f32, weights reordered once into the layout the primitive chose
// (format_tag::any: the brgemm blocked format on AVX-512 machines), per-channel output scales
// given at creation, and the per-token scale as a binary multiply post-op when the primitive's
// implementation accepts it unchanged (else as a separate pass over the output, as in "dnnl").
// One primitive per (K, N, M): an engine creates it once per shape. The activations are given as
// u8 (the +128 image of masquant's, as for dnnl_raw): u8 x s8 is the native operand of vpdpbusd
// and of oneDNN's AVX2 kernels, where s8 activations cost it a compensation pass (20x slower
// on an AVX2 machine), so this only flatters the peer.
struct matmul_state {
  dnnl::engine engine{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream{engine};
  dnnl::matmul primitive;
  std::string impl;
  bool fused_token_scale = false;
  dnnl::memory src, dst, token_scale;
  std::vector<dnnl::memory> weights;  // rotating reordered copies
};

std::unique_ptr<matmul_state> make_matmul(shape_data& d, const activations& x, index_t m) {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  auto st = std::make_unique<matmul_state>();
  const dnnl::memory::dims src_dims{m, d.k}, w_dims{d.k, d.n}, dst_dims{m, d.n};
  const dnnl::memory::desc src_md(src_dims, dt::u8, tag::ab), w_any(w_dims, dt::s8, tag::any),
      dst_md(dst_dims, dt::f32, tag::ab), scale_md({m, 1}, dt::f32, tag::ab);
  const dnnl::matmul::desc desc(src_md, w_any, dst_md);
  dnnl::primitive_attr plain;
  plain.set_output_scales(1 << 1, d.w_scale);
  dnnl::matmul::primitive_desc pd(desc, plain, st->engine);
  st->impl = pd.impl_info_str();
  dnnl::post_ops ops;
  ops.append_binary(dnnl::algorithm::binary_mul, scale_md);
  dnnl::primitive_attr fused = plain;
  fused.set_post_ops(ops);
  try {
    dnnl::matmul::primitive_desc fused_pd(desc, fused, st->engine);
    if (fused_pd.impl_info_str() == st->impl) {
      pd = fused_pd;
      st->fused_token_scale = true;
    }
  } catch (const dnnl::error&) {
    // No implementation takes the post-op: the scale pass stays separate.
  }
  st->primitive = dnnl::matmul(pd);
  st->src = dnnl::memory(src_md, st->engine, const_cast<std::uint8_t*>(x.au8.data()));
  st->dst = dnnl::memory(dst_md, st->engine, output<float>(m, d.n).data());
  st->token_scale = dnnl::memory(scale_md, st->engine, const_cast<float*>(x.scale.data()));
  ensure_raw8(d);
  const dnnl::memory::desc user_md(w_dims, dt::s8, tag::ba);  // raw8 is [N, K] row-major
  for (auto& w : d.raw8) {
    dnnl::memory user(user_md, st->engine, w.data());
    dnnl::memory packed(pd.weights_desc(), st->engine);
    dnnl::reorder(user, packed).execute(st->stream, user, packed);
    st->weights.push_back(packed);
  }
  st->stream.wait();
  std::printf("oneDNN matmul K=%ld N=%ld M=%ld: %s, per-token scale %s\n", static_cast<long>(d.k),
              static_cast<long>(d.n), static_cast<long>(m), st->impl.c_str(),
              st->fused_token_scale ? "as a binary post-op" : "as a separate pass");
  return st;
}

participant dnnl_matmul(shape s, index_t m, int threads) {
  auto& d = data_for(s.k, s.n);
  const auto& x = activations_for(m, s.k);
  auto& slot = d.matmul[m];
  if (!slot) slot = make_matmul(d, x, m);
  matmul_state& st = *slot;
  auto& cf = output<float>(m, s.n);
  auto call = [&st, &x, &cf, s, m, threads](std::size_t i) {
    set_peer_threads(threads);
    // The activation and output buffers are shared with the other participants of this M.
    st.src.set_data_handle(const_cast<std::uint8_t*>(x.au8.data()));
    st.dst.set_data_handle(cf.data());
    st.token_scale.set_data_handle(const_cast<float*>(x.scale.data()));
    std::unordered_map<int, dnnl::memory> args{
        {DNNL_ARG_SRC, st.src},
        {DNNL_ARG_WEIGHTS, st.weights[i % st.weights.size()]},
        {DNNL_ARG_DST, st.dst}};
    if (st.fused_token_scale) {
      args.emplace(DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, st.token_scale);
    }
    st.primitive.execute(st.stream, args);
    st.stream.wait();
    if (st.fused_token_scale) return;
    auto rows = [&](index_t r) {
      float* out = cf.data() + r * s.n;
      const float as = x.scale[static_cast<std::size_t>(r)];
      for (index_t j = 0; j < s.n; ++j) out[j] *= as;
    };
    if (threads > 1 && m > 1) {
      pool(threads).parallel_for(m, rows);
    } else {
      for (index_t r = 0; r < m; ++r) rows(r);
    }
  };
  return {"dnnl_matmul", call, static_cast<double>(s.n * s.k), true};
}

// Whether oneDNN's u8 x s8 GEMM is exact here: without VNNI it multiplies with vpmaddubsw, whose
// int16 pair sums saturate (255 * 127 * 2 > 32767), so its speed there is that of an inexact
// product. All-255 activations times all-127 weights over K = 256 tell the two apart.
bool dnnl_is_exact() {
  constexpr dnnl_dim_t m = 4, n = 64, k = 256;
  const std::vector<std::uint8_t> a(m * k, 255);
  const std::vector<std::int8_t> b(n * k, 127);
  std::vector<std::int32_t> c(m * n, 0);
  const std::int32_t zero = 0;
  dnnl_gemm_u8s8s32('N', 'T', 'F', m, n, k, 1.0f, a.data(), k, 0, b.data(), k, 0, 0.0f, c.data(), n,
                    &zero);
  return std::all_of(c.begin(), c.end(), [](std::int32_t v) { return v == 255 * 127 * k; });
}
#endif

shape_data::~shape_data() = default;

#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
participant openblas(shape s, index_t m, int threads) {
  auto& d = data_for(s.k, s.n);
  ensure_wf(d);
  const auto& x = activations_for(m, s.k);
  auto& c = output<float>(m, s.n);
  auto call = [&d, &x, &c, s, m, threads](std::size_t i) {
    set_peer_threads(threads);
    const auto& w = d.wf[i % d.wf.size()];
    const auto n = static_cast<blasint>(s.n), k = static_cast<blasint>(s.k);
    if (m == 1) {  // sgemm does not switch to gemv by itself
      cblas_sgemv(CblasRowMajor, CblasNoTrans, n, k, 1.0f, w.data(), k, x.af.data(), 1, 0.0f,
                  c.data(), 1);
    } else {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<blasint>(m), n, k, 1.0f,
                  x.af.data(), k, w.data(), k, 0.0f, c.data(), n);
    }
  };
  return {"openblas", call, 4.0 * static_cast<double>(s.n * s.k), true};
}
#endif

participant eigen(shape s, index_t m) {
  using row_major = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  auto& d = data_for(s.k, s.n);
  ensure_wf(d);
  const auto& x = activations_for(m, s.k);
  auto& c = output<float>(m, s.n);
  auto call = [&d, &x, &c, s, m](std::size_t i) {
    const Eigen::Map<const row_major> xa(x.af.data(), m, s.k);
    const Eigen::Map<const row_major> w(d.wf[i % d.wf.size()].data(), s.n, s.k);
    Eigen::Map<row_major> y(c.data(), m, s.n);
    y.noalias() = xa * w.transpose();
  };
  return {"eigen", call, 4.0 * static_cast<double>(s.n * s.k), false};
}

// Streams the same rotating int8 weight copies without computing: the memory system's limit for
// a decode step. "mem_read" sums them; "mem_copy" copies them (counted as read + written bytes,
// the STREAM convention).
participant memory(shape s, int threads, bool copy) {
  auto& d = data_for(s.k, s.n);
  const std::size_t bytes = d.ours8.front().packed_bytes();
  static std::vector<std::vector<std::uint64_t>> dst;  // kept across calls: no page faults
  if (copy && (dst.size() != d.ours8.size() || dst.front().size() != bytes / 8)) {
    dst.assign(d.ours8.size(), std::vector<std::uint64_t>(bytes / 8, 1));
  }
  auto call = [&d, bytes, threads, copy](std::size_t i) {
    const std::size_t c = i % d.ours8.size();
    const auto* src = reinterpret_cast<const std::uint64_t*>(d.ours8[c].data());
    const auto words = static_cast<index_t>(bytes / 8);
    auto part = [&](index_t t) {
      const index_t w0 = words * t / threads, w1 = words * (t + 1) / threads;
      if (copy) {
        std::memcpy(dst[c].data() + w0, src + w0, static_cast<std::size_t>(w1 - w0) * 8);
        return;
      }
      // Four independent sums (a vector each once compiled): bound by memory, not latency.
      std::uint64_t acc[4] = {0, 0, 0, 0};
      index_t w = w0;
      for (; w + 4 <= w1; w += 4) {
        for (index_t j = 0; j < 4; ++j) acc[j] += src[w + j];
      }
      for (; w < w1; ++w) acc[0] += src[w];
      benchmark::DoNotOptimize(acc[0] + acc[1] + acc[2] + acc[3]);
    };
    if (threads > 1) {
      pool(threads).parallel_for(threads, part);
    } else {
      part(0);
    }
  };
  return {copy ? "mem_copy" : "mem_read", call, static_cast<double>(bytes) * (copy ? 2.0 : 1.0),
          false};
}

// Everyone taking part in one (shape, M, threads) problem, peers first, masquant last.
std::vector<participant> participants(shape s, index_t m, int threads, bool fp32_peers) {
  std::vector<participant> out;
#ifdef MASQUANT_BENCH_HAVE_DNNL
  out.push_back(dnnl_matmul(s, m, threads));
  out.push_back(dnnl(s, m, threads, false));
  out.push_back(dnnl(s, m, threads, true));
#endif
#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
  if (fp32_peers) out.push_back(openblas(s, m, threads));
#endif
  // Eigen is built here without OpenMP, so it runs on one thread only.
  if (fp32_peers && threads == 1) out.push_back(eigen(s, m));
  if (m == 1) {
    out.push_back(memory(s, threads, false));
    out.push_back(memory(s, threads, true));
  }
  out.push_back(ours(s, m, threads, 8));
  out.push_back(ours(s, m, threads, 4));
  out.push_back(ours_int32(s, m, threads));
  return out;
}

// --- timing and ratios --------------------------------------------------------------------------

using key = std::tuple<index_t, index_t, index_t, int>;  // K, N, M, threads
using times = std::map<std::string, double>;             // participant -> seconds per call
std::map<key, times> mean_seconds;                       // separate mode: mean per call
std::map<key, times> median_seconds;                     // paired mode: median per call
std::map<key, times> median_cpu_seconds;  // paired mode, 1 thread: median thread CPU time per call

bool is_ours(const std::string& name) {
  return name.rfind("ours", 0) == 0;
}

void gops_counter(benchmark::State& state, const key& id) {
  const auto [k, n, m, threads] = id;
  (void)threads;
  state.counters["GOPS"] = benchmark::Counter(2.0 * static_cast<double>(m * n * k),
                                              benchmark::Counter::kIsIterationInvariantRate,
                                              benchmark::Counter::kIs1000);
}

// Ratio counters of masquant's `who` against every peer timed in `t`.
void ratio_counters(benchmark::State& state, const times& t, const std::string& who) {
  const double ours_time = t.at(who);
  const double share = who == "ours_int4" ? 0.5 : 1.0;  // int4 streams half the weight bytes
  for (const auto& [peer, seconds] : t) {
    if (is_ours(peer)) continue;
    if (peer.rfind("mem_", 0) == 0) {
      // Fraction of the streaming rate: mem_copy moves twice the bytes it is timed on.
      const double bytes_ratio = peer == "mem_copy" ? 2.0 : 1.0;
      state.counters["bw_frac_" + peer.substr(4)] = seconds / ours_time * share / bytes_ratio;
    } else {
      state.counters["vs_" + peer] = seconds / ours_time;
    }
  }
  if (t.count("ours_int8") != 0 && t.count("ours_int4") != 0 && who == "ours_int4") {
    state.counters["vs_ours_int8"] = t.at("ours_int8") / ours_time;
  }
}

// Separate mode: one benchmark per participant; the mean time per call of the fastest run
// (--benchmark_repetitions) goes to the summary.
void run_separate(benchmark::State& state, shape s, index_t m, int threads, std::size_t index,
                  bool fp32_peers) {
  static std::string last;
  auto all = participants(s, m, threads, fp32_peers);
  const participant& p = all[index];
  if (is_ours(p.name) && !is_ours(last)) {
    // Let the peers' spinning worker threads (OpenMP, OpenBLAS) go to sleep first.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
  }
  const auto start = clock_type::now();
  std::size_t i = 0;
  for (auto _ : state) {
    p.call(i++);
    benchmark::ClobberMemory();
  }
  const double elapsed = std::chrono::duration<double>(clock_type::now() - start).count();
  const key id{s.k, s.n, m, threads};
  if (state.iterations() > 0) {
    auto& slot = mean_seconds[id][p.name];
    const double mean = elapsed / static_cast<double>(state.iterations());
    if (slot == 0.0 || mean < slot) slot = mean;
  }
  gops_counter(state, id);
  if (m == 1) {
    state.counters["weight_GBps"] =
        benchmark::Counter(p.weight_bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate,
                           benchmark::Counter::kIs1000);
  }
  if (is_ours(p.name)) ratio_counters(state, mean_seconds[id], p.name);
  last = p.name;
}

double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

// Paired mode: one benchmark per problem; every iteration calls each participant once, in turn,
// and times each call, so all of them see the same conditions; the median call of each is
// compared. With one thread every participant runs on this thread, so its CPU time per call is
// recorded too (a descheduled thread does not count: robust to other jobs time-slicing the
// core). Peers that leave threads spinning get 2 ms (untimed) to park them before masquant runs
// with more than one thread.
void run_paired(benchmark::State& state, shape s, index_t m, int threads, bool fp32_peers) {
  auto all = participants(s, m, threads, fp32_peers);
  std::vector<std::vector<double>> wall(all.size()), cpu(all.size());
  std::size_t i = 0;
  for (auto _ : state) {
    bool spinning = false;
    for (std::size_t p = 0; p < all.size(); ++p) {
      if (threads > 1 && spinning && is_ours(all[p].name)) {
        state.PauseTiming();
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        state.ResumeTiming();
        spinning = false;
      }
      // A distinct rotating copy for every call: no participant reads weights another just
      // pulled into the cache.
      const double c0 = thread_cpu_seconds();
      const auto t0 = clock_type::now();
      all[p].call(i * all.size() + p);
      wall[p].push_back(std::chrono::duration<double>(clock_type::now() - t0).count());
      cpu[p].push_back(thread_cpu_seconds() - c0);
      spinning = spinning || all[p].spins;
    }
    ++i;
  }
  const key id{s.k, s.n, m, threads};
  times& t = median_seconds[id];
  for (std::size_t p = 0; p < all.size(); ++p) {
    if (wall[p].empty()) continue;
    t[all[p].name] = median(wall[p]);
    if (threads == 1) median_cpu_seconds[id][all[p].name] = median(cpu[p]);
  }
  if (t.count("ours_int8") != 0) {
    ratio_counters(state, t, "ours_int8");
    state.counters["ours_int8_GOPS"] =
        2.0 * static_cast<double>(m * s.n * s.k) / t["ours_int8"] * 1e-9;
    if (t.count("ours_int4") != 0) state.counters["int4_vs_int8"] = t["ours_int8"] / t["ours_int4"];
  }
}

// --- registration and summary -------------------------------------------------------------------

// A 7B decoder's projections (Llama-2 2048-wide slices, Qwen2.5-7B: GQA k/v N = 512, MLP up and
// the long-K down projection) and a vision tower's MLP (1280 <-> 5120).
const shape shapes[] = {{2048, 2048},  {2048, 11008}, {11008, 2048}, {3584, 3584}, {3584, 512},
                        {3584, 18944}, {18944, 3584}, {1280, 5120},  {5120, 1280}};
// Decode, small and medium batches, prompts and image-token prefills.
const index_t ms[] = {1, 7, 16, 77, 128, 300, 512, 1500, 2048};
const int thread_counts[] = {1, 2};

std::string name(shape s, index_t m, int threads, const std::string& who) {
  return "gemm/K" + std::to_string(s.k) + "xN" + std::to_string(s.n) + "/M:" + std::to_string(m) +
         "/threads:" + std::to_string(threads) + "/" + who;
}

void register_all(bool paired, bool fp32_peers) {
  for (shape s : shapes) {
    for (index_t m : ms) {
      for (int t : thread_counts) {
        auto reg = [&](const std::string& who, auto fn) {
          benchmark::RegisterBenchmark(name(s, m, t, who).c_str(), fn)
              ->UseRealTime()
              ->MinTime(paired ? 1.0 : 0.3)
              ->Unit(benchmark::kMicrosecond);
        };
        if (paired) {
          reg("paired", [=](benchmark::State& st) { run_paired(st, s, m, t, fp32_peers); });
          continue;
        }
        // Names only: the data is built when a benchmark first runs.
        const std::vector<std::string> names = [&] {
          std::vector<std::string> out;
#ifdef MASQUANT_BENCH_HAVE_DNNL
          out.insert(out.end(), {"dnnl_matmul", "dnnl_raw", "dnnl"});
#endif
#ifdef MASQUANT_BENCH_HAVE_OPENBLAS
          if (fp32_peers) out.emplace_back("openblas");
#endif
          if (fp32_peers && t == 1) out.emplace_back("eigen");
          if (m == 1) out.insert(out.end(), {"mem_read", "mem_copy"});
          out.insert(out.end(), {"ours_int8", "ours_int4", "ours_int32"});
          return out;
        }();
        for (std::size_t idx = 0; idx < names.size(); ++idx) {
          reg(names[idx],
              [=](benchmark::State& st) { run_separate(st, s, m, t, idx, fp32_peers); });
        }
      }
    }
  }
}

double peak_gops = 0.0;      // one core's multiply peak for masquant's family, measured in main
double amx_peak_gops = 0.0;  // ... of tdpbsud, where masquant runs AMX tiles (else 0)

// One row per (shape, M, threads): masquant's int8 GOPS, its fraction of the measured peak of
// the cores it ran on, and the ratios, from `table`.
void print_summary(const std::map<key, times>& table, const char* title) {
  if (table.empty()) return;
  std::printf("\n%s\n", title);
  std::printf(
      "\n| K x N | M | threads | ours int8 GOPS | of peak | vs dnnl matmul | vs dnnl | vs dnnl raw "
      "|"
      " int32 out vs dnnl raw | int4 vs int8 | vs openblas | vs eigen | int8 weight GB/s |"
      " of copy bw | of read bw |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  for (const auto& entry : table) {
    const auto [k, n, m, threads] = entry.first;
    const auto& t = entry.second;
    auto get = [&t](const char* who) {
      const auto it = t.find(who);
      return it == t.end() ? 0.0 : it->second;
    };
    const double ours_time = get("ours_int8");
    if (ours_time == 0.0) continue;
    auto ratio = [&](const char* who) {
      const double p = get(who);
      char buf[32] = "-";
      if (p > 0.0) std::snprintf(buf, sizeof buf, "%.2f", p / ours_time);
      return std::string(buf);
    };
    const double int4 = get("ours_int4"), int32 = get("ours_int32");
    char int4_ratio[32] = "-", int32_ratio[32] = "-", gbps[32] = "-", of_copy[32] = "-",
         of_read[32] = "-";
    if (int4 > 0.0) std::snprintf(int4_ratio, sizeof int4_ratio, "%.2f", ours_time / int4);
    if (int32 > 0.0 && get("dnnl_raw") > 0.0)
      std::snprintf(int32_ratio, sizeof int32_ratio, "%.2f", get("dnnl_raw") / int32);
    if (m == 1) {
      const double bytes = static_cast<double>(n * k);  // int8 weight bytes per call
      std::snprintf(gbps, sizeof gbps, "%.1f", bytes / ours_time * 1e-9);
      if (get("mem_copy") > 0.0) {
        std::snprintf(of_copy, sizeof of_copy, "%.0f%%",
                      100.0 * get("mem_copy") / (2.0 * ours_time));
      }
      if (get("mem_read") > 0.0) {
        std::snprintf(of_read, sizeof of_read, "%.0f%%", 100.0 * get("mem_read") / ours_time);
      }
    }
    const double gops = 2.0 * static_cast<double>(m * n * k) / ours_time * 1e-9;
    char of_peak[32] = "-";
    // Tiles run at M >= 2 with K a multiple of 64 (int8 weights): judge those by tdpbsud.
    const double peak = amx_peak_gops > 0.0 && m >= 2 && k % 64 == 0 ? amx_peak_gops : peak_gops;
    if (peak > 0.0) {
      std::snprintf(of_peak, sizeof of_peak, "%.0f%%", 100.0 * gops / (peak * threads));
    }
    std::printf(
        "| %ldx%ld | %ld | %d | %.0f | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
        static_cast<long>(k), static_cast<long>(n), static_cast<long>(m), threads, gops, of_peak,
        ratio("dnnl_matmul").c_str(), ratio("dnnl").c_str(), ratio("dnnl_raw").c_str(), int32_ratio,
        int4_ratio, ratio("openblas").c_str(), ratio("eigen").c_str(), gbps, of_copy, of_read);
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Our own flags, taken out before Google Benchmark parses the rest.
  bool paired = false, fp32_peers = true;
  int kept = 1;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--paired") {
      paired = true;
    } else if (arg == "--no_fp32_peers") {
      fp32_peers = false;
    } else if (arg.rfind("--isa=", 0) == 0) {
      const std::string name = arg.substr(6);
      if (!masquant::parse_isa_family(name, ours_isa) || !masquant::isa_available(ours_isa)) {
        std::fprintf(stderr, "bench_gemm: family '%s' is unknown or not available here\n",
                     name.c_str());
        return 1;
      }
    } else {
      argv[kept++] = argv[i];
    }
  }
  argc = kept;
  for (const char* var : {"OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_PROC_BIND"}) {
    if (std::getenv(var) != nullptr) {
      std::fprintf(stderr, "bench_gemm: warning: %s is set; peers may not run at their best\n",
                   var);
    }
  }
  const masquant::isa_family family = masquant::isa_of(masquant::hot_path::int8_gemm, ours_isa);
  peak_gops = masquant::bench::measured_peak_gops(family);
  std::printf(
      "CPU: %s; masquant int8_gemm family: %s; mode: %s\n"
      "measured peak of one core: %.1f GOPS (%s, 2 ops per multiply-add)\n",
      masquant::bench::cpu_model().c_str(), masquant::to_string(family),
      paired ? "paired" : "separate", peak_gops, masquant::bench::peak_instruction(family));
  amx_peak_gops = masquant::bench::measured_amx_peak_gops(family);
  if (amx_peak_gops > 0.0) {
    std::printf(
        "AMX tiles (M >= 2, K %% 64 == 0): measured peak of one core %.1f GOPS "
        "(tdpbsud)\n",
        amx_peak_gops);
  }
#ifdef MASQUANT_BENCH_HAVE_DNNL
  std::printf("oneDNN's int8 GEMM on this CPU: %s\n", dnnl_is_exact() ? "exact" : "saturates");
#endif
  masquant::bench::add_cpu_context();
  benchmark::AddCustomContext("peak_gops_per_core", std::to_string(peak_gops));
  if (amx_peak_gops > 0.0)
    benchmark::AddCustomContext("amx_peak_gops_per_core", std::to_string(amx_peak_gops));
  register_all(paired, fp32_peers);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  print_summary(mean_seconds, "Ratios of the mean time per call (fastest run of each):");
  print_summary(median_seconds, "Ratios of the median call, participants interleaved (paired):");
  print_summary(median_cpu_seconds,
                "Paired, 1 thread: ratios of the median thread CPU time per call:");
  return 0;
}
