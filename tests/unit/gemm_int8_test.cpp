// gemm_int8_test.cpp: the INT8 GEMM against the int64 / double reference, on every kernel this
// build and CPU run.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <masquant/gemm/int8_gemm.hpp>
#include <masquant/gemm/reference.hpp>
#include <masquant/parallel.hpp>

#include "support/gemm_testing.hpp"

using namespace masquant;
using masquant::testing::matrix;

namespace {

// int32 result of the optimized GEMM on one kernel.
matrix<std::int32_t> optimized_int32(gemm_isa isa, const matrix<std::int8_t>& a,
                                     const packed_weights& packed,
                                     const parallel_for_fn& parallel = {}) {
  matrix<std::int32_t> got(a.rows, packed.rows(), -1);
  gemm_options opt;
  opt.isa = isa;
  opt.parallel = parallel;
  int8_gemm_int32(a.cview(), packed, got.view(), opt);
  return got;
}

matrix<std::int32_t> reference_int32(const matrix<std::int8_t>& a, const matrix<std::int8_t>& w) {
  matrix<std::int32_t> want(a.rows, w.rows);
  reference::int8_gemm_int32(a.cview(), w.cview(), want.view());
  return want;
}

packed_weights pack_with_random_scales(const matrix<std::int8_t>& w, int bits) {
  return packed_weights::pack(w.cview(), testing::random_scales(w.rows, 0.5f, 1.5f, 7), bits);
}

// The optimized GEMM on one kernel vs the int64 reference; returns mismatches.
index_t int32_mismatches(gemm_isa isa, const matrix<std::int8_t>& a, const matrix<std::int8_t>& w,
                         int bits, std::string* where) {
  return testing::count_mismatches(optimized_int32(isa, a, pack_with_random_scales(w, bits)),
                                   reference_int32(a, w), where);
}

// A random int8 linear: activations, weights, their scales, a bias, and the packed weights
// (seeds seed..seed + 4).
struct random_linear {
  matrix<std::int8_t> a, w;
  std::vector<float> ws, as, bias;
  packed_weights packed;
  random_linear(index_t m, index_t k, index_t n, std::uint64_t seed)
      : a(testing::random_int8(m, k, -128, 127, seed)),
        w(testing::random_int8(n, k, -128, 127, seed + 1)),
        ws(testing::random_scales(n, 1e-3f, 1e-2f, seed + 2)),
        as(testing::random_scales(m, 1e-2f, 1.0f, seed + 3)),
        bias(testing::random_scales(n, -1.0f, 1.0f, seed + 4)),
        packed(packed_weights::pack(w.cview(), ws)) {}
};

// |got - want| within float rounding of the epilogue: a few ulps of the terms' magnitudes.
bool close(float got, double want, double magnitude) {
  return std::abs(static_cast<double>(got) - want) <= 4.0 * FLT_EPSILON * magnitude + 1e-30;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(gemm_int8)

BOOST_AUTO_TEST_CASE(isa_queries_are_consistent) {
  const auto isas = available_gemm_isas();
  BOOST_REQUIRE(!isas.empty());
  BOOST_TEST((isas.front() == baseline_isa() || isas.front() == gemm_isa::portable));
  BOOST_TEST((isas.back() == best_gemm_isa()));
  for (gemm_isa isa : isas) BOOST_TEST(gemm_isa_compiled(isa));
  BOOST_TEST(gemm_isa_available(gemm_isa::automatic));
  // The old enumerator names the new family.
  BOOST_TEST((gemm_isa::avx512_vnni == isa_family::avx512));
  BOOST_TEST(std::string(to_string(gemm_isa::avx512_vnni)) == "avx512");
}

BOOST_AUTO_TEST_CASE(int32_exact_on_odd_shapes_every_isa) {
  const index_t ms[] = {0, 1, 3, 7, 17};  // 7: the avx512 family's tallest tile
  const index_t ks[] = {0, 1, 3, 5, 63, 65, 129};
  const index_t ns[] = {1, 3, 5, 63, 65, 129};
  for (gemm_isa isa : available_gemm_isas()) {
    for (int bits : {8, 4}) {
      const int lo = bits == 8 ? -128 : -8, hi = bits == 8 ? 127 : 7;
      std::uint64_t seed = 1;
      for (index_t m : ms) {
        for (index_t k : ks) {
          for (index_t n : ns) {
            const auto a = testing::random_int8(m, k, -128, 127, ++seed);
            const auto w = testing::random_int8(n, k, lo, hi, ++seed);
            std::string where;
            BOOST_TEST(int32_mismatches(isa, a, w, bits, &where) == 0,
                       testing::gemm_case(isa, m, k, n, bits) << " first mismatch " << where);
          }
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(int32_exact_with_several_tasks_and_k_blocks,
                     *boost::unit_test::label("threads")) {
  // Several row tiles and tasks, N with a partial last block, and K above the split threshold
  // (12288): K is cut into blocks whose partial sums go through the workspace. Each shape runs
  // serially and on two threads (several tasks along M and N).
  struct shape {
    index_t m, k, n;
  };
  thread_pool pool(2);
  for (int bits : {8, 4}) {
    const int lo = bits == 8 ? -128 : -8, hi = bits == 8 ? 127 : 7;
    for (shape s : {shape{7, 777, 130}, shape{100, 1001, 300}, shape{300, 64, 20},
                    shape{530, 70, 520}, shape{13, 20001, 70}}) {
      const auto a = testing::random_int8(s.m, s.k, -128, 127, 11);
      const auto w = testing::random_int8(s.n, s.k, lo, hi, 12);
      const auto packed = pack_with_random_scales(w, bits);
      const auto want = reference_int32(a, w);
      for (gemm_isa isa : available_gemm_isas()) {
        std::string where;
        BOOST_TEST(testing::count_mismatches(optimized_int32(isa, a, packed), want, &where) == 0,
                   testing::gemm_case(isa, s.m, s.k, s.n, bits) << " first mismatch " << where);
        BOOST_TEST(testing::count_mismatches(optimized_int32(isa, a, packed, pool.as_function()),
                                             want, &where) == 0,
                   testing::gemm_case(isa, s.m, s.k, s.n, bits)
                       << " on 2 threads, first mismatch " << where);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(decode_row_over_one_to_four_column_blocks_at_once) {
  // M = 1 runs whole 64-column blocks per kernel call (run_row: up to four on AVX-512, one on
  // the ymm VNNI and AVX2 kernels): 1..4 blocks per call, a partial last block (and partial
  // 8- or 32-column groups within it), several tasks, K with and without a tail, the float
  // epilogue with bias and accumulation on every block.
  for (gemm_isa isa : available_gemm_isas()) {
    for (int bits : {8, 4}) {
      const int lo = bits == 8 ? -128 : -8, hi = bits == 8 ? 127 : 7;
      for (index_t n : {64, 128, 192, 256, 300, 577}) {
        for (index_t k : {5, 256, 1001}) {
          const auto a = testing::random_int8(1, k, -128, 127, 71 + n + k);
          const auto w = testing::random_int8(n, k, lo, hi, 72 + n + k);
          std::string where;
          BOOST_TEST(int32_mismatches(isa, a, w, bits, &where) == 0,
                     testing::gemm_case(isa, 1, k, n, bits) << " first mismatch " << where);
        }
      }
    }
    const index_t k = 333, n = 450;
    const auto a = testing::random_int8(1, k, -127, 127, 81);
    const auto w = testing::random_int8(n, k, -127, 127, 82);
    const auto ws = testing::random_scales(n, 1e-3f, 2e-2f, 83);
    const auto as = testing::random_scales(1, 1e-2f, 1.0f, 84);
    const auto bias = testing::random_scales(n, -5.0f, 5.0f, 85);
    const auto c0 = testing::random_uniform(1, n, -10.0f, 10.0f, 86);
    matrix<float> got = c0, want = c0;
    gemm_options opt;
    opt.isa = isa;
    opt.bias = bias;
    opt.accumulate = true;
    int8_gemm(a.cview(), as, packed_weights::pack(w.cview(), ws), got.view(), opt);
    reference::int8_gemm(a.cview(), as, w.cview(), ws, want.view(), vector_view<const float>(bias),
                         true);
    matrix<std::int32_t> acc(1, n);
    reference::int8_gemm_int32(a.cview(), w.cview(), acc.view());
    index_t bad = 0;
    for (index_t c = 0; c < n; ++c) {
      const auto i = static_cast<std::size_t>(c);
      const double mag = std::abs(static_cast<double>(as[0]) * ws[i] * acc(0, c)) +
                         std::abs(bias[i]) + std::abs(c0(0, c));
      if (!close(got(0, c), want(0, c), mag)) ++bad;
    }
    BOOST_TEST(bad == 0, testing::gemm_case(isa, 1, k, n, 8) << " bias + accumulate");
  }
}

BOOST_AUTO_TEST_CASE(int32_exact_at_extreme_values_and_the_k_bound) {
  // K = int8_gemm_max_k with every product at its extreme: |C| reaches 16384 * K = 2^31 - 16384,
  // and the unsigned-weight intermediate (a * (w + 128)) wraps int32 several times on the way.
  const index_t k = int8_gemm_max_k;
  for (gemm_isa isa : available_gemm_isas()) {
    // Two rows (tiles that broadcast activations to registers) and seven (the avx512 family's
    // tile that reads them as embedded broadcasts).
    for (index_t m : {2, 7}) {
      for (auto [av, wv] : {std::pair{-128, -128},
                            {127, 127},
                            {-128, 127},
                            {127, -128},
                            {-127, -127},
                            {127, -127}}) {
        matrix<std::int8_t> a(m, k, static_cast<std::int8_t>(av));
        matrix<std::int8_t> w(3, k, static_cast<std::int8_t>(wv));
        w(1, 0) = 0;  // one column off the extreme
        std::string where;
        BOOST_TEST(int32_mismatches(isa, a, w, 8, &where) == 0,
                   "isa=" << isa << " M=" << m << " a=" << av << " w=" << wv << " " << where);
      }
    }
    // int4 on one row (the decode kernels), two and seven (the tiles).
    for (index_t m : {1, 2, 7}) {
      for (auto [av, wv] : {std::pair{-128, -8}, {127, 7}, {-128, 7}, {127, -8}}) {
        matrix<std::int8_t> a(m, k, static_cast<std::int8_t>(av));
        matrix<std::int8_t> w(2, k, static_cast<std::int8_t>(wv));
        std::string where;
        BOOST_TEST(int32_mismatches(isa, a, w, 4, &where) == 0,
                   "isa=" << isa << " int4 M=" << m << " a=" << av << " w=" << wv << " " << where);
      }
    }
  }
  matrix<std::int8_t> a(1, k, -128), w(1, k, -128);
  matrix<std::int32_t> c(1, 1);
  int8_gemm_int32(a.cview(), packed_weights::pack(w.cview(), std::vector<float>{1.0f}), c.view());
  BOOST_TEST(c(0, 0) == 16384 * k);
}

BOOST_AUTO_TEST_CASE(int4_weights_equal_int8_weights_with_the_same_values) {
  for (gemm_isa isa : available_gemm_isas()) {
    for (index_t k : {1, 7, 8, 9, 100, 1000}) {
      const index_t m = 5, n = 70;
      const auto a = testing::random_int8(m, k, -128, 127, 21);
      const auto w = testing::random_int8(n, k, -8, 7, 22);
      const auto s = testing::random_scales(n, 0.01f, 0.1f, 23);
      const auto as = testing::random_scales(m, 0.01f, 0.1f, 24);
      matrix<float> y8(m, n), y4(m, n);
      gemm_options opt;
      opt.isa = isa;
      int8_gemm(a.cview(), as, packed_weights::pack(w.cview(), s, 8), y8.view(), opt);
      int8_gemm(a.cview(), as, packed_weights::pack(w.cview(), s, 4), y4.view(), opt);
      BOOST_TEST(std::memcmp(y8.data.data(), y4.data.data(), y8.data.size() * sizeof(float)) == 0,
                 "isa=" << isa << " K=" << k);
    }
  }
}

BOOST_AUTO_TEST_CASE(float_epilogue_within_rounding_of_the_double_reference) {
  struct shape {
    index_t m, k, n;
  };
  for (gemm_isa isa : available_gemm_isas()) {
    for (shape s : {shape{1, 129, 65}, shape{17, 63, 129}, shape{40, 700, 100}}) {
      for (int mode = 0; mode < 4; ++mode) {
        const bool with_bias = mode & 1, accumulate = mode & 2;
        const auto a = testing::random_int8(s.m, s.k, -127, 127, 31);
        const auto w = testing::random_int8(s.n, s.k, -127, 127, 32);
        const auto ws = testing::random_scales(s.n, 1e-3f, 2e-2f, 33);
        const auto as = testing::random_scales(s.m, 1e-2f, 1.0f, 34);
        const auto bias = testing::random_scales(s.n, -5.0f, 5.0f, 35);
        const auto c0 = testing::random_uniform(s.m, s.n, -10.0f, 10.0f, 36);
        matrix<float> got = c0, want = c0;
        gemm_options opt;
        opt.isa = isa;
        if (with_bias) opt.bias = bias;
        opt.accumulate = accumulate;
        int8_gemm(a.cview(), as, packed_weights::pack(w.cview(), ws), got.view(), opt);
        reference::int8_gemm(
            a.cview(), as, w.cview(), ws, want.view(),
            with_bias ? vector_view<const float>(bias) : vector_view<const float>(), accumulate);
        matrix<std::int32_t> acc(s.m, s.n);
        reference::int8_gemm_int32(a.cview(), w.cview(), acc.view());
        index_t bad = 0;
        for (index_t r = 0; r < s.m; ++r) {
          for (index_t c = 0; c < s.n; ++c) {
            const auto i = static_cast<std::size_t>(c);
            const double mag =
                std::abs(static_cast<double>(as[static_cast<std::size_t>(r)]) * ws[i] * acc(r, c)) +
                (with_bias ? std::abs(bias[i]) : 0.0) + (accumulate ? std::abs(c0(r, c)) : 0.0);
            if (!close(got(r, c), want(r, c), mag)) ++bad;
          }
        }
        BOOST_TEST(bad == 0, testing::gemm_case(isa, s.m, s.k, s.n, 8)
                                 << " bias=" << with_bias << " accumulate=" << accumulate);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(strided_views_and_given_row_sums) {
  // A and C are blocks of larger matrices; the quantized_activations entry with row sums given
  // must match the plain one bitwise.
  const index_t m = 9, k = 70, n = 90;
  const auto big_a = testing::random_int8(m + 2, k + 13, -128, 127, 41);
  const auto w = testing::random_int8(n, k, -128, 127, 42);
  const auto ws = testing::random_scales(n, 0.5f, 1.0f, 43);
  const auto as = testing::random_scales(m, 0.5f, 1.0f, 44);
  const auto packed = packed_weights::pack(w.cview(), ws);
  const auto a = big_a.cview().block(1, 5, m, k);
  matrix<std::int8_t> a_copy(m, k);
  for (index_t r = 0; r < m; ++r) {
    for (index_t c = 0; c < k; ++c) a_copy(r, c) = a(r, c);
  }
  for (gemm_isa isa : available_gemm_isas()) {
    gemm_options opt;
    opt.isa = isa;
    matrix<float> big_c(m + 3, n + 7, 42.0f), dense(m, n);
    auto c = big_c.view().block(2, 3, m, n);
    int8_gemm(a, as, packed, c, opt);
    int8_gemm(a_copy.cview(), as, packed, dense.view(), opt);
    quantized_activations qa(m, k);
    for (index_t r = 0; r < m; ++r) {
      for (index_t col = 0; col < k; ++col) qa.values()(r, col) = a(r, col);
      qa.scales()[r] = as[static_cast<std::size_t>(r)];
    }
    qa.compute_row_sums();
    matrix<float> via_qa(m, n);
    int8_gemm(qa.view(), packed, via_qa.view(), opt);
    index_t bad = 0;
    for (index_t r = 0; r < m; ++r) {
      for (index_t col = 0; col < n; ++col) {
        bad += c(r, col) != dense(r, col) || via_qa(r, col) != dense(r, col);
      }
    }
    BOOST_TEST(bad == 0, "isa=" << isa);
    // Outside the block nothing was touched.
    BOOST_TEST(big_c(0, 0) == 42.0f);
    BOOST_TEST(big_c(m + 2, n + 6) == 42.0f);
    BOOST_TEST(big_c(2, 2) == 42.0f);
    BOOST_TEST(big_c(2, n + 3) == 42.0f);
  }
}

BOOST_AUTO_TEST_CASE(results_are_bitwise_identical_for_any_thread_count,
                     *boost::unit_test::label("threads")) {
  const index_t m = 200, k = 600, n = 700;
  const random_linear l(m, k, n, 51);
  const auto& [a, w, ws, as, bias, packed] = l;
  for (gemm_isa isa : available_gemm_isas()) {
    gemm_options opt;
    opt.isa = isa;
    opt.bias = bias;
    matrix<float> serial(m, n);
    int8_gemm(a.cview(), as, packed, serial.view(), opt);
    for (int threads : {2, 3}) {
      thread_pool pool(threads);
      opt.parallel = pool.as_function();
      matrix<float> par(m, n);
      int8_gemm(a.cview(), as, packed, par.view(), opt);
      BOOST_TEST(std::memcmp(par.data.data(), serial.data.data(), par.data.size() * 4) == 0,
                 "isa=" << isa << " threads=" << threads);
    }
    // A host loop that runs the tasks backwards.
    opt.parallel = [](index_t count, const std::function<void(index_t)>& task) {
      for (index_t i = count; i-- > 0;) task(i);
    };
    matrix<float> reversed(m, n);
    int8_gemm(a.cview(), as, packed, reversed.view(), opt);
    BOOST_TEST(std::memcmp(reversed.data.data(), serial.data.data(), serial.data.size() * 4) == 0,
               "isa=" << isa << " reversed tasks");
  }
}

BOOST_AUTO_TEST_CASE(small_problems_stay_on_the_calling_thread,
                     *boost::unit_test::label("threads")) {
  // The thread rule (docs/gemm.md): a problem one core finishes in microseconds is not handed to
  // opt.parallel, whose wake-up would cost more than the split saves; a large one is, whatever
  // the family. Counted through a host loop that records its calls.
  const random_linear small(1, 128, 512, 61);     // decode, 64 KiB of weights: 2 tasks
  const random_linear large(64, 2048, 1024, 71);  // 134M multiply-adds: 4 tasks
  for (gemm_isa isa : available_gemm_isas()) {
    int calls = 0;
    gemm_options opt;
    opt.isa = isa;
    opt.parallel = [&calls](index_t count, const std::function<void(index_t)>& task) {
      ++calls;
      for (index_t i = 0; i < count; ++i) task(i);
    };
    matrix<float> c_small(1, 512), c_large(64, 1024);
    int8_gemm(small.a.cview(), small.as, small.packed, c_small.view(), opt);
    BOOST_TEST(calls == 0, "isa=" << isa << ": a 64K multiply-add decode was split");
    int8_gemm(large.a.cview(), large.as, large.packed, c_large.view(), opt);
    BOOST_TEST(calls == 1, "isa=" << isa << ": a 134M multiply-add GEMM ran on one thread");
  }
}

BOOST_AUTO_TEST_CASE(large_aligned_outputs_streamed_past_the_caches) {
  // An output of >= 16 MiB whose rows are whole aligned lines is written with non-temporal
  // stores where the kernel has them: it must hold the values of ordinary stores bit for bit
  // (full tiles and the partial last block) and leave the row padding alone; float and int32.
  constexpr index_t m = 1030, k = 37, n = 4100, ldc = 4112;
  static_assert(m * n * 4 >= detail::gemm::stream_output_bytes, "the output must be streamed");
  const random_linear l(m, k, n, 91);
  const auto& [a, w, ws, as, bias, packed] = l;
  matrix<std::int32_t> acc(m, n);
  reference::int8_gemm_int32(a.cview(), w.cview(), acc.view());
  const float pad = -7.5f;
  std::vector<float> storage(static_cast<std::size_t>(m * ldc + 17), pad);
  float* aligned = storage.data();
  while (reinterpret_cast<std::uintptr_t>(aligned) % 64 != 0) ++aligned;
  const std::int32_t pad_int = std::numeric_limits<std::int32_t>::min();  // |sum| < 2^20 here
  std::vector<std::int32_t> storage_int(storage.size());
  std::int32_t* aligned_int = storage_int.data();
  while (reinterpret_cast<std::uintptr_t>(aligned_int) % 64 != 0) ++aligned_int;
  for (gemm_isa isa : available_gemm_isas()) {
    gemm_options opt;
    opt.isa = isa;
    opt.bias = bias;
    std::fill(storage.begin(), storage.end(), pad);
    int8_gemm(a.cview(), as, packed, matrix_view<float>(aligned, m, n, ldc), opt);
    matrix<float> cached(m, n);  // a dense m x n output: rows are not whole lines, no streaming
    int8_gemm(a.cview(), as, packed, cached.view(), opt);
    index_t differ = 0, off = 0, pad_touched = 0;
    for (index_t r = 0; r < m; ++r) {
      const float* row = aligned + r * ldc;
      for (index_t c = 0; c < n; ++c) {
        const auto j = static_cast<std::size_t>(c);
        if (std::memcmp(&row[c], &cached(r, c), sizeof(float)) != 0) ++differ;
        const double want =
            static_cast<double>(as[static_cast<std::size_t>(r)]) * ws[j] * acc(r, c) + bias[j];
        const double mag = std::abs(want - bias[j]) + std::abs(bias[j]);
        if (!close(row[c], want, mag)) ++off;
      }
      for (index_t c = n; c < ldc; ++c) pad_touched += row[c] != pad ? 1 : 0;
    }
    BOOST_TEST(differ == 0, "isa=" << isa << ": streamed and cached outputs differ");
    BOOST_TEST(off == 0, "isa=" << isa << ": outputs off the reference");
    BOOST_TEST(pad_touched == 0, "isa=" << isa << ": row padding written");

    std::fill(storage_int.begin(), storage_int.end(), pad_int);
    gemm_options opt_int;
    opt_int.isa = isa;
    int8_gemm_int32(a.cview(), packed, matrix_view<std::int32_t>(aligned_int, m, n, ldc), opt_int);
    index_t wrong = 0, pad_int_touched = 0;
    for (index_t r = 0; r < m; ++r) {
      const std::int32_t* row = aligned_int + r * ldc;
      for (index_t c = 0; c < n; ++c) wrong += row[c] != acc(r, c) ? 1 : 0;
      for (index_t c = n; c < ldc; ++c) pad_int_touched += row[c] != pad_int ? 1 : 0;
    }
    BOOST_TEST(wrong == 0, "isa=" << isa << ": streamed int32 outputs differ from the reference");
    BOOST_TEST(pad_int_touched == 0, "isa=" << isa << ": int32 row padding written");
  }
}

BOOST_AUTO_TEST_CASE(can_implement_and_the_overflow_bound) {
  BOOST_TEST(can_implement(4, int8_gemm_max_k, 4).ok());
  BOOST_TEST(static_cast<bool>(can_implement(0, 0, 0)));
  const auto too_big = can_implement(1, int8_gemm_max_k + 1, 1);
  BOOST_TEST(!too_big.ok());
  BOOST_TEST((too_big.code == errc::overflow));
  BOOST_TEST(too_big.message.find("K = 131072") != std::string::npos, too_big.message);
  BOOST_TEST((can_implement(-1, 2, 3).code == errc::invalid_argument));
  // The bound is exact: (2^31 - 1) / (128 * 128) rounded down.
  BOOST_TEST(int8_gemm_max_k == (std::numeric_limits<std::int32_t>::max)() / (128 * 128));
  BOOST_TEST(16384LL * (int8_gemm_max_k + 1) > (std::numeric_limits<std::int32_t>::max)());

  matrix<std::int8_t> w(1, int8_gemm_max_k + 1, 1);
  try {
    (void)packed_weights::pack(w.cview(), std::vector<float>{1.0f});
    BOOST_ERROR("pack accepted K above the bound");
  } catch (const error& e) {
    BOOST_TEST((e.code() == errc::overflow));
    BOOST_TEST(std::string(e.what()).find("K = 131072") != std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(shape_errors_name_the_operands_and_write_nothing) {
  const auto a = testing::random_int8(3, 10, -5, 5, 61);
  const auto w = testing::random_int8(4, 10, -5, 5, 62);
  const std::vector<float> ws(4, 1.0f), as(3, 1.0f);
  const auto packed = packed_weights::pack(w.cview(), ws);
  matrix<float> c(3, 4, 7.0f);
  auto expect = [&](auto&& call, errc code, const char* needle) {
    try {
      call();
      BOOST_ERROR("no error; expected " << needle);
    } catch (const error& e) {
      BOOST_TEST((e.code() == code), e.what());
      BOOST_TEST(std::string(e.what()).find(needle) != std::string::npos, e.what());
    }
    for (float v : c.data) BOOST_TEST(v == 7.0f);
  };
  const auto a_k9 = testing::random_int8(3, 9, -5, 5, 63);
  expect([&] { int8_gemm(a_k9.cview(), as, packed, c.view()); }, errc::shape_mismatch, "K differs");
  matrix<float> c_bad(3, 5);
  expect([&] { int8_gemm(a.cview(), as, packed, c_bad.view()); }, errc::shape_mismatch,
         "output is 3x5");
  expect([&] { int8_gemm(a.cview(), std::vector<float>(2, 1.0f), packed, c.view()); },
         errc::shape_mismatch, "activation scales");
  gemm_options opt;
  const std::vector<float> bias3(3, 0.0f);
  opt.bias = bias3;
  expect([&] { int8_gemm(a.cview(), as, packed, c.view(), opt); }, errc::shape_mismatch, "bias");
  std::vector<float> bias_nan(4, 0.0f);
  bias_nan[2] = std::numeric_limits<float>::quiet_NaN();
  opt.bias = bias_nan;
  expect([&] { int8_gemm(a.cview(), as, packed, c.view(), opt); }, errc::non_finite, "channel 2");
  std::vector<float> as_inf(3, 1.0f);
  as_inf[1] = std::numeric_limits<float>::infinity();
  expect([&] { int8_gemm(a.cview(), as_inf, packed, c.view()); }, errc::non_finite, "row 1");
  const std::vector<std::int32_t> sums(2, 0);
  expect(
      [&] {
        int8_gemm(quantized_activations_view{a.cview(), as, sums}, packed, c.view());
      },
      errc::shape_mismatch, "row_sums");
  gemm_options acc;
  acc.accumulate = true;
  matrix<std::int32_t> ci(3, 4);
  expect([&] { int8_gemm_int32(a.cview(), packed, ci.view(), acc); }, errc::invalid_argument,
         "int8_gemm_int32");
  for (gemm_isa isa : {gemm_isa::avx2, gemm_isa::avx_vnni, gemm_isa::avx512_vnni}) {
    if (gemm_isa_available(isa)) continue;
    gemm_options forced;
    forced.isa = isa;
    expect([&] { int8_gemm(a.cview(), as, packed, c.view(), forced); }, errc::not_supported,
           to_string(isa));
  }
}

BOOST_AUTO_TEST_CASE(empty_problems) {
  // M = 0 and N = 0 write nothing; K = 0 gives bias (+ C).
  const std::vector<float> none;
  matrix<std::int8_t> w0(0, 5), a0(0, 5);
  const auto packed0 = packed_weights::pack(w0.cview(), none);
  matrix<float> c0(0, 0);
  int8_gemm(a0.cview(), none, packed0, c0.view());
  matrix<std::int8_t> wk0(3, 0), ak0(2, 0);
  const std::vector<float> ws{1.0f, 2.0f, 3.0f}, as{1.0f, 1.0f}, bias{0.5f, -1.0f, 2.0f};
  const auto packed = packed_weights::pack(wk0.cview(), ws);
  for (gemm_isa isa : available_gemm_isas()) {
    matrix<float> c(2, 3, 1.0f);
    gemm_options opt;
    opt.isa = isa;
    opt.bias = bias;
    opt.accumulate = true;
    int8_gemm(ak0.cview(), as, packed, c.view(), opt);
    for (index_t r = 0; r < 2; ++r) {
      for (index_t col = 0; col < 3; ++col) {
        BOOST_TEST(c(r, col) == 1.0f + bias[static_cast<std::size_t>(col)], "isa=" << isa);
      }
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
