// gemm_amx_test.cpp: the avx512 family's AMX path (taken where the CPU and OS allow, for INT8
// weights, K a multiple of 64 and M >= 2) against the int64 reference, and against the vpdpbusd
// kernel bit for bit: a row computed alone (M = 1) never takes the AMX path, and the same
// epilogue must give the same floats. On a CPU without AMX every check holds for the vpdpbusd
// kernel alone.
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <masquant/gemm/int8_gemm.hpp>
#include <masquant/gemm/reference.hpp>
#include <masquant/isa.hpp>
#include <masquant/parallel.hpp>

#include "support/gemm_testing.hpp"

using namespace masquant;
using masquant::testing::matrix;

namespace {

struct shape {
  index_t m, k, n;
};

// Row i of a, alone.
matrix<std::int8_t> row_of(const matrix<std::int8_t>& a, index_t i) {
  matrix<std::int8_t> r(1, a.cols);
  for (index_t k = 0; k < a.cols; ++k) r(0, k) = a(i, k);
  return r;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(gemm_amx)

BOOST_AUTO_TEST_CASE(tiles_give_the_exact_sums_and_the_kernels_floats) {
  BOOST_TEST_MESSAGE(
      "AMX tiles " << (detail::MASQUANT_BUILD::amx_int8_ready() ? "run" : "unavailable"));
  thread_pool pool(2);
  // Full and partial tiles of rows (2, 7, 16, 17, 31, 32, 45), several tasks (300 rows), column
  // tails,
  // K of one tile and K over two passes of kc = 8192 (8256).
  const shape shapes[] = {{16, 64, 16},    {17, 128, 100}, {31, 192, 64},
                          {32, 256, 130},  {45, 8256, 70}, {300, 512, 200},
                          {64, 2048, 257}, {2, 64, 16},    {7, 256, 100}};
  std::uint64_t seed = 1;
  for (const shape& s : shapes) {
    BOOST_TEST_CONTEXT("M " << s.m << " K " << s.k << " N " << s.n) {
      const auto a = testing::random_int8(s.m, s.k, -128, 127, ++seed);
      const auto w = testing::random_int8(s.n, s.k, -127, 127, ++seed);
      const auto packed =
          packed_weights::pack(w.cview(), testing::random_scales(s.n, 0.5f, 1.5f, ++seed));
      matrix<std::int32_t> want(s.m, s.n), got(s.m, s.n, -1);
      reference::int8_gemm_int32(a.cview(), w.cview(), want.view());
      gemm_options opt;
      opt.parallel = pool.as_function();
      int8_gemm_int32(a.cview(), packed, got.view(), opt);
      BOOST_TEST(testing::count_mismatches(got, want) == 0);

      const std::vector<float> a_scale = testing::random_scales(s.m, 0.01f, 0.02f, ++seed);
      const std::vector<float> bias = testing::random_scales(s.n, -1.0f, 1.0f, ++seed);
      matrix<float> y(s.m, s.n, 0.5f);
      opt.bias = bias;
      opt.accumulate = true;
      int8_gemm(a.cview(), a_scale, packed, y.view(), opt);
      for (index_t i = 0; i < s.m; i += 7) {
        matrix<float> yi(1, s.n, 0.5f);
        int8_gemm(row_of(a, i).cview(), vector_view<const float>(&a_scale[std::size_t(i)], 1),
                  packed, yi.view(), opt);
        BOOST_TEST(std::memcmp(&y(i, 0), &yi(0, 0), std::size_t(s.n) * 4) == 0);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(sums_beyond_int32_wrap_back_to_the_exact_result) {
  // Unsigned weight bytes of 255 times activations of 127 over K = 131008 (the largest multiple
  // of 64 below int8_gemm_max_k) reach 4.2e9 before the zero point is taken off: the tile sums
  // must wrap modulo 2^32 as vpdpbusd's do, not saturate.
  const index_t m = 16, k = 131008, n = 16;
  matrix<std::int8_t> a(m, k, 127), w(n, k, 127);
  for (index_t i = 0; i < k; i += 3) a(5, i) = -128;
  for (index_t i = 0; i < k; i += 5) w(9, i) = -127;
  const auto packed = packed_weights::pack(w.cview(), std::vector<float>(n, 1.0f));
  matrix<std::int32_t> want(m, n), got(m, n, -1);
  reference::int8_gemm_int32(a.cview(), w.cview(), want.view());
  int8_gemm_int32(a.cview(), packed, got.view());
  BOOST_TEST(testing::count_mismatches(got, want) == 0);
}

BOOST_AUTO_TEST_SUITE_END()
