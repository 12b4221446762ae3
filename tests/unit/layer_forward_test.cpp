// layer_forward_test.cpp: quantized_linear::forward against its float64 reference, the
// activation quantization against the quant layer, decode, INT4 vs INT8, threads.
//
// Error bound used throughout (testing::error_bound), per output element n of token i:
// - main product, int8 path: the int32 accumulation is exact; the epilogue rounds float(acc),
//   a_scale·w_scale, the product and the bias sum (4 roundings), so |err| <= 4·eps·(|main|+|b|),
//   bounded here by 8·eps·Σ_k |a_k Ŵ_nk| + |b_n|.
// - main product, A16 path: a float FMA chain over d_in values: |err| <= (d_in + 8)·eps·Σ|terms|.
// - correction, float activations: t = x̃·L then t·R, two float dot products of lengths d_in and
//   r: |err| <= (d_in + r + 8)·eps·S_n, S_n = Σ_j (Σ_k |x̃_k L_kj|)·|R_jn| (γ_n bounds).
// - correction, bf16 activations: x̃ and t are rounded to bf16 (relative 2^-9 each), so add
//   2^-7·S_n, which covers both roundings and their product.
// These are worst-case bounds (typical errors are ~sqrt(n) smaller), tight enough that a wrong
// modality, row, factor or missing term exceeds them (checked by correction_is_needed...).
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/parallel.hpp>
#include <masquant/quant/reference.hpp>
#include <masquant/quant/row.hpp>
#include <thread>

#include "support/layer_testing.hpp"

// Counts heap allocations while `counting` is set (replaces the global operator new).
// GCC 12 at -O1 with sanitizers inlines these into Boost's new/delete pairs and then misreads
// malloc-backed operator new + free as a mismatch (-Wmismatched-new-delete); they do match.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
namespace {
std::atomic<long> allocations{0};
std::atomic<bool> counting{false};
void* counted_alloc(std::size_t n, std::size_t align) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
  void* p = align <= alignof(std::max_align_t)
                ? std::malloc(n ? n : 1)
                : std::aligned_alloc(align, (n + align - 1) / align * align);
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
}  // namespace
void* operator new(std::size_t n) {
  return counted_alloc(n, 0);
}
void* operator new[](std::size_t n) {
  return counted_alloc(n, 0);
}
void* operator new(std::size_t n, std::align_val_t a) {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void* operator new[](std::size_t n, std::align_val_t a) {
  return counted_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete[](void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

using namespace masquant;
using masquant::testing::layer_case;
using masquant::testing::matrix;

namespace {

// Largest |forward - reference| / bound over all elements (<= 1 passes).
double worst_ratio(const quantized_linear& layer, const matrix<float>& x,
                   const std::vector<modality_id>& ids, const forward_options& opt,
                   std::string* where = nullptr) {
  matrix<float> y(x.rows, layer.d_out(), -7.0f);
  matrix<double> ref(x.rows, layer.d_out());
  layer.forward(x.cview(), ids, y.view(), opt);
  layer.reference_forward(x.cview(), ids, ref.view());
  const auto bound = testing::error_bound(layer, x, ids, layer.lowrank_uses_bf16(opt));
  double worst = 0.0;
  for (index_t i = 0; i < x.rows; ++i) {
    for (index_t c = 0; c < layer.d_out(); ++c) {
      const double r = std::abs(double(y(i, c)) - ref(i, c)) / (bound(i, c) + 1e-300);
      if (r > worst) {
        worst = r;
        if (where) {
          *where = "token " + std::to_string(i) + " (id " +
                   std::to_string(ids.empty() ? 0 : ids[static_cast<std::size_t>(i)]) + ") col " +
                   std::to_string(c) + ": " + std::to_string(y(i, c)) + " vs " +
                   std::to_string(ref(i, c)) + " bound " + std::to_string(bound(i, c));
        }
      }
    }
  }
  return worst;
}

vector_view<const modality_id> ids_view_prefix(const std::vector<modality_id>& ids, index_t n) {
  return vector_view<const modality_id>(ids.data(), n);
}

bool bitwise_equal(const matrix<float>& a, const matrix<float>& b) {
  return a.rows == b.rows && a.cols == b.cols &&
         std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(float)) == 0;
}

matrix<float> run(const quantized_linear& layer, const matrix<float>& x,
                  const std::vector<modality_id>& ids, const forward_options& opt = {}) {
  matrix<float> y(x.rows, layer.d_out(), -7.0f);
  layer.forward(x.cview(), ids, y.view(), opt);
  return y;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(layer_forward)

BOOST_AUTO_TEST_CASE(matches_reference_on_random_layers) {
  struct shape {
    index_t d_in, d_out;
  };
  const shape shapes[] = {{37, 29}, {64, 48}, {131, 67}, {1, 5}, {300, 17}};
  const int wbits[] = {8, 4, 3};
  const int abits[] = {8, 6, 16};
  const index_t tokens[] = {0, 1, 3, 17, 64};
  std::uint64_t seed = 1;
  for (const shape& sh : shapes) {
    for (int wb : wbits) {
      for (int ab : abits) {
        layer_case c;
        c.d_in = sh.d_in;
        c.d_out = sh.d_out;
        c.weight_bits = wb;
        c.activation_bits = ab;
        c.seed = ++seed;
        const index_t modalities = 1 + static_cast<index_t>(seed % 4);
        const index_t max_rank = std::min(sh.d_in, sh.d_out);
        c.ranks.assign(static_cast<std::size_t>(modalities), 0);
        for (index_t m = 1; m < modalities; ++m) {
          // Modality 2 has no factors; the others ranks 1..min(d_in, d_out).
          c.ranks[static_cast<std::size_t>(m)] =
              m == 2 ? 0 : 1 + static_cast<index_t>((seed * 7 + m * 13) % max_rank);
        }
        c.bias = seed % 3 != 0;
        for (lowrank_storage storage : {lowrank_storage::bfloat16, lowrank_storage::float32}) {
          const quantized_linear layer(testing::random_params(c), {storage});
          for (index_t m_rows : tokens) {
            const auto x = testing::random_input(m_rows, c.d_in, seed + m_rows);
            // Modality 3 (when present) has factors but no tokens in the batch.
            const auto ids = testing::random_ids(m_rows, modalities, seed * 31 + m_rows,
                                                 modalities > 3 ? 3 : -1);
            for (lowrank_compute compute : {lowrank_compute::automatic, lowrank_compute::float32}) {
              forward_options opt;
              opt.lowrank = compute;
              std::string where;
              const double r = worst_ratio(layer, x, ids, opt, &where);
              BOOST_TEST(r <= 1.0, c.name() << " M=" << m_rows << " storage=" << int(storage)
                                            << " compute=" << int(compute) << ": " << where);
            }
          }
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(correction_is_needed_to_meet_the_bound) {
  // The same layer without factors misses the bound on non-reference rows by far: the comparison
  // is sensitive to the correction term.
  layer_case c;
  c.d_in = 96;
  c.d_out = 40;
  c.ranks = {0, 8};
  auto p = testing::random_params(c);
  const quantized_linear with(p);
  const auto x = testing::random_input(12, c.d_in, 5);
  const auto ids = testing::random_ids(12, 2, 9);
  BOOST_TEST(worst_ratio(with, x, ids, {}) <= 1.0);
  p.lowrank.clear();
  const auto y_without = run(quantized_linear(p), x, ids);
  matrix<double> ref(x.rows, c.d_out);
  with.reference_forward(x.cview(), ids, ref.view());
  const auto bound = testing::error_bound(with, x, ids, true);
  double worst = 0.0;
  for (index_t i = 0; i < x.rows; ++i)
    for (index_t n = 0; n < c.d_out; ++n)
      worst = std::max(worst, std::abs(y_without(i, n) - ref(i, n)) / bound(i, n));
  BOOST_TEST(worst > 10.0);
}

BOOST_AUTO_TEST_CASE(activations_are_bit_identical_to_the_quant_layer) {
  for (int bits : {8, 6, 3}) {
    layer_case c;
    c.d_in = 203;  // odd, longer than every vector width, with a tail
    c.d_out = 33;
    c.activation_bits = bits;
    c.ranks = {0, 5, 0};
    const quantized_linear layer(testing::random_params(c));
    const auto x = testing::random_input(19, c.d_in, 77);
    const auto ids = testing::random_ids(19, 3, 78);
    linear_workspace ws;
    forward_options opt;
    opt.workspace = &ws;
    run(layer, x, ids, opt);
    const auto qa = ws.activations();
    BOOST_REQUIRE(qa.values.rows() == 19);
    BOOST_REQUIRE(qa.values.cols() == c.d_in);
    std::vector<std::int8_t> want(static_cast<std::size_t>(c.d_in)), simd(want.size());
    for (index_t i = 0; i < 19; ++i) {
      const float* s = layer.smooth(ids[static_cast<std::size_t>(i)]).data();
      const float d_ref = reference::quantize_row_symmetric_smoothed(x.cview().row_data(i), s,
                                                                     c.d_in, bits, want.data(), i);
      const float d_simd =
          quantize_row_symmetric_smoothed(x.cview().row_data(i), s, c.d_in, bits, simd.data(), i);
      BOOST_TEST(qa.scales[i] == d_ref);
      BOOST_TEST(d_simd == d_ref);
      std::int32_t sum = 0;
      for (index_t j = 0; j < c.d_in; ++j) sum += want[static_cast<std::size_t>(j)];
      BOOST_TEST(qa.row_sums[i] == sum);
      BOOST_TEST(std::memcmp(qa.values.row_data(i), want.data(), want.size()) == 0, "row " << i);
    }
  }
}

BOOST_AUTO_TEST_CASE(decode_takes_the_reference_path_only) {
  layer_case c;
  c.d_in = 70;
  c.d_out = 45;
  c.ranks = {0, 6, 9};
  auto p = testing::random_params(c);
  const quantized_linear layer(p);
  p.lowrank.clear();
  const quantized_linear no_factors(p);
  const auto x = testing::random_input(9, c.d_in, 3);
  linear_workspace ws;
  forward_options opt;
  opt.workspace = &ws;
  matrix<float> decode(9, c.d_out);
  layer.forward(x.cview(), decode.view(), opt);
  BOOST_TEST(ws.lowrank_rows() == 0);
  const std::vector<modality_id> zeros(9, 0);
  BOOST_TEST(bitwise_equal(decode, run(layer, x, zeros, opt)));
  BOOST_TEST(ws.lowrank_rows() == 0);
  // The factors contribute nothing: the same as a layer without any.
  BOOST_TEST(bitwise_equal(decode, run(no_factors, x, {})));
  // ...while non-reference tokens do take the branch.
  const std::vector<modality_id> vision(9, 1);
  const auto y_vision = run(layer, x, vision, opt);
  BOOST_TEST(ws.lowrank_rows() == 9);
  BOOST_TEST(!bitwise_equal(y_vision, run(no_factors, x, vision)));
}

BOOST_AUTO_TEST_CASE(int4_equals_int8_holding_the_same_levels) {
  // The int32 products are exact and equal; only the GEMM's float epilogue could differ between
  // the two packings. It does not on the portable and AVX-512 VNNI kernels (bitwise); the AVX2 and
  // ymm VNNI kernels of int8_gemm round their INT4 and INT8 epilogues differently (a few ulps),
  // so there the outputs must agree within the epilogue's rounding bound.
  for (int abits : {8, 16}) {
    layer_case c;
    c.d_in = 77;
    c.d_out = 70;
    c.weight_bits = 4;
    c.activation_bits = abits;
    c.ranks = {0, 7};
    auto p4 = testing::random_params(c);
    auto p8 = p4;
    p8.weight_bits = 8;
    const quantized_linear l4(p4), l8(p8);
    const auto x = testing::random_input(23, c.d_in, 4);
    const auto ids = testing::random_ids(23, 2, 5);
    if (abits >= 16) {
      BOOST_TEST(bitwise_equal(run(l4, x, ids), run(l8, x, ids)), "A16");
      continue;
    }
    BOOST_TEST(l4.packed().bits() == 4);
    BOOST_TEST(l8.packed().bits() == 8);
    BOOST_TEST(l4.packed().packed_bytes() < l8.packed().packed_bytes());
    for (index_t n = 0; n < c.d_out; ++n)
      for (index_t k = 0; k < c.d_in; ++k)
        BOOST_TEST(l4.packed().value(n, k) == p4.qweight[static_cast<std::size_t>(n * c.d_in + k)]);
    const auto bound = testing::error_bound(l8, x, ids, l8.lowrank_uses_bf16());
    for (gemm_isa isa : available_gemm_isas()) {
      forward_options opt;
      opt.isa = isa;
      const auto y4 = run(l4, x, ids, opt), y8 = run(l8, x, ids, opt);
      if (isa == gemm_isa::portable || isa == gemm_isa::avx512_vnni) {
        BOOST_TEST(bitwise_equal(y4, y8), to_string(isa));
      }
      double worst = 0.0;
      for (index_t i = 0; i < x.rows; ++i)
        for (index_t n = 0; n < c.d_out; ++n)
          worst = std::max(worst, std::abs(double(y4(i, n)) - y8(i, n)) / bound(i, n));
      BOOST_TEST(worst <= 1.0, to_string(isa));
    }
  }
}

BOOST_AUTO_TEST_CASE(results_do_not_depend_on_the_thread_count) {
  for (int abits : {8, 16}) {
    layer_case c;
    c.d_in = 300;   // more than one K block of the float products
    c.d_out = 600;  // more than one column task
    c.activation_bits = abits;
    c.ranks = {0, 40, 0, 17};
    const quantized_linear layer(testing::random_params(c));
    const auto x = testing::random_input(130, c.d_in, 8);  // several token and row tasks
    const auto ids = testing::random_ids(130, 4, 9);
    for (lowrank_compute compute : {lowrank_compute::automatic, lowrank_compute::float32}) {
      forward_options opt;
      opt.lowrank = compute;
      const auto serial = run(layer, x, ids, opt);
      for (int threads : {1, 2, 3}) {
        thread_pool pool(threads);
        opt.parallel = pool.as_function();
        BOOST_TEST(bitwise_equal(serial, run(layer, x, ids, opt)),
                   "A" << abits << " threads " << threads << " compute " << int(compute));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(a_row_does_not_depend_on_its_batch) {
  // Each token's result is a function of that token alone: run alone (M = 1, the decode shape,
  // which takes 1-row tiles) it is bitwise what it is inside a batch. Not on the avx512 family:
  // its INT8 GEMM kernel rounds the epilogue differently for different tile heights (GCC
  // contracts its multiply and add differently per height), so there a row's last bit depends on
  // the batch (a GEMM property, not the layer's).
  for (isa_family family : available_isas()) {
    if (family == isa_family::avx512) continue;
    for (int abits : {8, 16}) {
      for (lowrank_compute compute : {lowrank_compute::automatic, lowrank_compute::float32}) {
        layer_case c;
        c.d_in = 300;
        c.d_out = 70;
        c.activation_bits = abits;
        c.ranks = {0, 9};
        const quantized_linear layer(testing::random_params(c));
        const auto x = testing::random_input(13, c.d_in, 21);
        const auto ids = testing::random_ids(13, 2, 22);
        forward_options opt;
        opt.lowrank = compute;
        opt.isa = family;
        const auto batch = run(layer, x, ids, opt);
        for (index_t i = 0; i < 13; ++i) {
          matrix<float> xi(1, c.d_in), yi(1, c.d_out);
          std::copy(x.data.begin() + i * c.d_in, x.data.begin() + (i + 1) * c.d_in,
                    xi.data.begin());
          const std::vector<modality_id> idi = {ids[static_cast<std::size_t>(i)]};
          layer.forward(xi.cview(), idi, yi.view(), opt);
          BOOST_TEST(std::memcmp(yi.data.data(), &batch(i, 0), sizeof(float) * c.d_out) == 0,
                     family << " A" << abits << " compute " << int(compute) << " row " << i);
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(concurrent_calls_on_one_shared_object) {
  layer_case c;
  c.d_in = 120;
  c.d_out = 90;
  c.ranks = {0, 12, 20};
  const quantized_linear layer(testing::random_params(c));
  constexpr int callers = 4;
  std::vector<matrix<float>> xs;
  std::vector<std::vector<modality_id>> ids;
  std::vector<matrix<float>> want;
  for (int t = 0; t < callers; ++t) {
    xs.push_back(testing::random_input(10 + 7 * t, c.d_in, 100 + t));
    ids.push_back(testing::random_ids(10 + 7 * t, 3, 200 + t));
    want.push_back(run(layer, xs.back(), ids.back()));
  }
  std::vector<int> mismatches(callers, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < callers; ++t) {
    threads.emplace_back([&, t] {
      for (int rep = 0; rep < 20; ++rep) {
        // Alternate between shapes so each thread's workspace is resized under the others' calls.
        const int which = (t + rep) % callers;
        if (!bitwise_equal(run(layer, xs[which], ids[which]), want[which])) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < callers; ++t) BOOST_TEST(mismatches[t] == 0, "caller " << t);
}

BOOST_AUTO_TEST_CASE(workspace_reuse_across_sizes_and_layers) {
  layer_case a, b;
  a.d_in = 50;
  a.d_out = 20;
  a.ranks = {0, 4};
  b.d_in = 33;
  b.d_out = 61;
  b.ranks = {0, 3, 11};
  b.seed = 9;
  const quantized_linear la(testing::random_params(a)), lb(testing::random_params(b));
  const auto xa = testing::random_input(40, a.d_in, 1), xb = testing::random_input(7, b.d_in, 2);
  const auto ia = testing::random_ids(40, 2, 3), ib = testing::random_ids(7, 3, 4);
  const auto fresh_a = run(la, xa, ia), fresh_b = run(lb, xb, ib);
  linear_workspace ws;
  forward_options opt;
  opt.workspace = &ws;
  for (int rep = 0; rep < 3; ++rep) {
    BOOST_TEST(bitwise_equal(run(lb, xb, ib, opt), fresh_b));
    BOOST_TEST(bitwise_equal(run(la, xa, ia, opt), fresh_a));
  }
  BOOST_TEST(ws.bytes() > 0u);
}

BOOST_AUTO_TEST_CASE(strided_views_give_the_same_result) {
  for (int abits : {8, 16}) {
    layer_case c;
    c.d_in = 45;
    c.d_out = 38;
    c.activation_bits = abits;
    c.ranks = {0, 6};
    const quantized_linear layer(testing::random_params(c));
    const auto x = testing::random_input(11, c.d_in, 12);
    const auto ids = testing::random_ids(11, 2, 13);
    const auto want = run(layer, x, ids);
    // x and y as blocks of wider matrices (row strides 50 and 41).
    matrix<float> xw(11, 50, 1e30f), yw(11, 41, -3.0f);
    for (index_t i = 0; i < 11; ++i)
      for (index_t k = 0; k < c.d_in; ++k) xw(i, k + 2) = x(i, k);
    layer.forward(xw.cview().block(0, 2, 11, c.d_in), ids, yw.view().block(0, 1, 11, c.d_out));
    bool same = true, untouched = true;
    for (index_t i = 0; i < 11; ++i) {
      for (index_t n = 0; n < 41; ++n) {
        if (n >= 1 && n < 1 + c.d_out) {
          same = same && std::memcmp(&yw(i, n), &want(i, n - 1), sizeof(float)) == 0;
        } else {
          untouched = untouched && yw(i, n) == -3.0f;
        }
      }
    }
    BOOST_TEST(same, "A" << abits);
    BOOST_TEST(untouched, "A" << abits);
  }
}

BOOST_AUTO_TEST_CASE(steady_state_calls_do_not_allocate) {
  // After a first call has sized the workspace (and this thread's row buffer), forward allocates
  // nothing: prefill with the low-rank branch, decode, the float32 branch and A16.
  for (int abits : {8, 16}) {
    layer_case c;
    c.d_in = 200;
    c.d_out = 150;
    c.activation_bits = abits;
    c.ranks = {0, 12, 0, 7};
    const quantized_linear layer(testing::random_params(c));
    const auto x = testing::random_input(70, c.d_in, 41);
    const auto ids = testing::random_ids(70, 4, 42);
    matrix<float> y(70, c.d_out);
    linear_workspace ws;
    forward_options opt, opt32;
    opt.workspace = opt32.workspace = &ws;
    opt32.lowrank = lowrank_compute::float32;
    const auto calls = [&] {
      layer.forward(x.cview(), ids, y.view(), opt);
      layer.forward(x.cview(), y.view(), opt);
      layer.forward(x.cview(), ids, y.view(), opt32);
      layer.forward(x.cview().middle_rows(0, 5), ids_view_prefix(ids, 5),
                    y.view().middle_rows(0, 5), opt);
    };
    calls();
    allocations = 0;
    counting = true;
    calls();
    counting = false;
    BOOST_TEST(allocations.load() == 0, "A" << abits);
  }
}

BOOST_AUTO_TEST_CASE(reserve_and_caller_buffers_leave_nothing_to_allocate) {
  // The first call of up to max_tokens tokens allocates nothing after reserve(), nor with a
  // caller's buffer of workspace_bytes(max_tokens) bytes — whatever the split of the tokens, with
  // bf16 outputs and accumulation too. (reserve() also sizes the few per-modality routing
  // vectors, on the heap. The calling thread's row buffer of the token pass is
  // thread_local, sized here by a first call on another workspace.)
  for (int abits : {8, 16}) {
    layer_case c;
    c.d_in = 200;
    c.d_out = 150;
    c.activation_bits = abits;
    c.ranks = {0, 12, 0, 7};
    const quantized_linear layer(testing::random_params(c));
    const auto x = testing::random_input(70, c.d_in, 41);
    const auto mixed = testing::random_ids(70, 4, 42);
    const std::vector<modality_id> all_largest(70, 1);
    matrix<float> y(70, c.d_out);
    matrix<bfloat16> yb(70, c.d_out);
    run(layer, x, mixed);
    forward_options opt, acc;
    acc.accumulate = true;
    const auto calls = [&](linear_workspace& ws) {
      opt.workspace = acc.workspace = &ws;
      layer.forward(x.cview(), all_largest, y.view(), opt);
      layer.forward(x.cview(), mixed, yb.view(), acc);
      layer.forward(x.cview().middle_rows(0, 5), ids_view_prefix(mixed, 5),
                    y.view().middle_rows(0, 5), acc);
      layer.forward(x.cview(), y.view(), opt);
    };
    const auto allocations_of = [&](linear_workspace& ws) {
      allocations = 0;
      counting = true;
      calls(ws);
      counting = false;
      return allocations.load();
    };
    {
      linear_workspace cold;
      BOOST_TEST(allocations_of(cold) > 0, "A" << abits << ": the check can fail");
    }
    linear_workspace reserved;
    reserved.reserve(layer, 70, acc, element_type::bfloat16);
    const std::size_t bytes = reserved.bytes();
    BOOST_TEST(allocations_of(reserved) == 0, "A" << abits);
    BOOST_TEST(reserved.bytes() == bytes);  // nothing grew
    std::vector<unsigned char> buffer(layer.workspace_bytes(70, acc, element_type::bfloat16));
    linear_workspace external(buffer.data(), buffer.size());
    external.reserve(layer, 70, acc, element_type::bfloat16);  // checks it, sizes the routing
    BOOST_TEST(allocations_of(external) == 0, "A" << abits);
    BOOST_TEST(external.external());
  }
}

BOOST_AUTO_TEST_CASE(zero_tokens) {
  layer_case c;
  c.ranks = {0, 3};
  const quantized_linear layer(testing::random_params(c));
  matrix<float> x(0, c.d_in), y(0, c.d_out);
  matrix<double> ref(0, c.d_out);
  layer.forward(x.cview(), std::vector<modality_id>{}, y.view());
  layer.forward(x.cview(), y.view());
  layer.reference_forward(x.cview(), {}, ref.view());
  BOOST_TEST(y.data.empty());
}

BOOST_AUTO_TEST_CASE(every_gemm_kernel_meets_the_bound) {
  layer_case c;
  c.d_in = 100;
  c.d_out = 70;
  c.ranks = {0, 5};
  const quantized_linear layer(testing::random_params(c));
  const auto x = testing::random_input(13, c.d_in, 6);
  const auto ids = testing::random_ids(13, 2, 7);
  for (gemm_isa isa : available_gemm_isas()) {
    forward_options opt;
    opt.isa = isa;
    BOOST_TEST(worst_ratio(layer, x, ids, opt) <= 1.0, to_string(isa));
  }
}

BOOST_AUTO_TEST_CASE(every_family_s_kernels_match_the_references) {
  // The kernels of each available family, called directly: the token pass is bit-identical to
  // the reference row quantizer (levels, scale) with the exact row sum; the float products equal
  // double sums within float rounding of their dot products.
  using namespace masquant::detail::gemm;
  namespace build = masquant::detail::MASQUANT_BUILD;
  const index_t m = 9, k = 37, n = 21;
  const auto x = testing::random_input(m, k, 31);
  const auto bm = testing::random_normal(k, n, 1.0f, 32);
  const std::vector<std::vector<float>> smooth = {std::vector<float>(k, 0.7f)};
  std::vector<std::int8_t> want_q(m * k);
  std::vector<float> want_scale(m);
  for (index_t i = 0; i < m; ++i) {
    want_scale[static_cast<std::size_t>(i)] = reference::quantize_row_symmetric_smoothed(
        x.cview().row_data(i), smooth[0].data(), k, 8, want_q.data() + i * k);
  }
  const auto b16 = pack_bf16(k, n, [&](index_t i, index_t c) { return bm(i, c); });
  const auto b32 = pack_f32(k, n, [&](index_t i, index_t c) { return bm(i, c); });
  matrix<float> a(m, round_up(k, 16));  // rows padded with zeros for the bf16 pairs
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < k; ++j) a(i, j) = x(i, j);

  for (isa_family family : available_isas()) {
    std::vector<std::int8_t> q(m * k);
    std::vector<float> scale(m);
    std::vector<std::int32_t> sum(m);
    masquant::detail::layer::token_pass_args t;
    t.x = x.cview();
    t.smooth = &smooth;
    t.bits = 8;
    t.q = q.data();
    t.scale = scale.data();
    t.sum = sum.data();
    build::on_family<hot_path::token_pass>(family, [&](auto f) { run_token_pass(f, t, 0, m); });
    BOOST_TEST(q == want_q, family);
    BOOST_TEST(std::memcmp(scale.data(), want_scale.data(), sizeof(float) * m) == 0, family);
    for (index_t i = 0; i < m; ++i) {
      std::int32_t s = 0;
      for (index_t j = 0; j < k; ++j) s += want_q[static_cast<std::size_t>(i * k + j)];
      BOOST_TEST(sum[static_cast<std::size_t>(i)] == s, family << " row " << i);
    }

    for (int storage = 0; storage < 2; ++storage) {
      matrix<float> c(m, n);
      product_args<float> pa;
      pa.a = a.data.data();
      pa.lda = a.cols;
      pa.c = c.data.data();
      pa.ldc = n;
      pa.n = n;
      build::on_family<hot_path::float_gemm>(family, [&](auto f) {
        if (storage == 0) run_float_gemm(f, pa, b16, 0, m, 0, b16.count);
        if (storage == 1) run_float_gemm(f, pa, b32, 0, m, 0, b32.count);
      });
      for (index_t i = 0; i < m; ++i) {
        for (index_t col = 0; col < n; ++col) {
          double want = 0.0, mag = 0.0;
          for (index_t j = 0; j < k; ++j) {
            const double w = storage == 0 ? panel_value(b16, j, col) : panel_value(b32, j, col);
            want += double(x(i, j)) * w;
            mag += std::abs(double(x(i, j)) * w);
          }
          BOOST_TEST(std::abs(c(i, col) - want) <= (k + 2) * FLT_EPSILON * mag,
                     family << " storage " << storage << " (" << i << ", " << col << ")");
        }
      }
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
