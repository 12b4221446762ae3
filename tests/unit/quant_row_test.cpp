// Tests of quant/row.hpp (per-token primitives with fused smoothing) and quant/int4.hpp.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <masquant/quant/int4.hpp>
#include <masquant/quant/quantize.hpp>
#include <masquant/quant/reference.hpp>
#include <masquant/quant/row.hpp>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "support/quant_testing.hpp"

using namespace masquant;

namespace {

bool has(const error& e, errc code, const std::string& text) {
  return e.code() == code && std::string(e.what()).find(text) != std::string::npos;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(quant_row)

// The returned Δ and the levels follow the per-token formula; smoothing divides first.
BOOST_AUTO_TEST_CASE(values) {
  const std::vector<float> x = {1.0f, -2.0f, 0.5f, 3.0f, 0.0f};
  const std::vector<float> s = {1.0f, 2.0f, 0.25f, 1.0f, 4.0f};  // x / s = 1, -1, 2, 3, 0
  std::vector<std::int8_t> q(5);
  const float d = quantize_row_symmetric(x.data(), 5, 4, q.data());
  BOOST_TEST(d == 3.0f / 7.0f);
  const std::vector<std::int8_t> expected = {2, -5, 1, 7, 0};  // rne(x / Δ): 2.33, -4.67, 1.17
  BOOST_TEST(q == expected, boost::test_tools::per_element());
  const float ds = quantize_row_symmetric_smoothed(x.data(), s.data(), 5, 4, q.data());
  BOOST_TEST(ds == 3.0f / 7.0f);
  const std::vector<std::int8_t> expected_s = {2, -2, 5, 7, 0};  // 2.33, -2.33, 4.67, 7, 0
  BOOST_TEST(q == expected_s, boost::test_tools::per_element());
  std::vector<float> y = x;
  fake_quant_row_symmetric_smoothed(y.data(), s.data(), 5, 4, y.data());  // in place
  for (int j = 0; j < 5; ++j) BOOST_TEST(y[j] == expected_s[j] * ds);
}

BOOST_AUTO_TEST_CASE(errors_name_row_and_column) {
  std::vector<float> x(40, 1.0f), s(40, 2.0f);
  std::vector<std::int8_t> q(40, 9);
  std::vector<float> y(40, 9.0f);
  x[33] = std::numeric_limits<float>::infinity();
  BOOST_CHECK_EXCEPTION(
      quantize_row_symmetric(x.data(), 40, 8, q.data(), 17), error,
      [](const error& e) { return has(e, errc::non_finite, "row 17, column 33"); });
  BOOST_CHECK_EXCEPTION(
      quantize_row_symmetric(x.data(), 40, 8, q.data()), error,
      [](const error& e) { return has(e, errc::non_finite, "in column 33 of a 40-element row"); });
  BOOST_CHECK_EXCEPTION(
      fake_quant_row_symmetric(x.data(), 40, 8, y.data(), 2), error,
      [](const error& e) { return has(e, errc::non_finite, "row 2, column 33"); });
  BOOST_CHECK_EXCEPTION(
      reference::quantize_row_symmetric(x.data(), 40, 8, q.data(), 17), error,
      [](const error& e) { return has(e, errc::non_finite, "row 17, column 33"); });
  x[33] = 1.0f;
  s[5] = 0.0f;  // x / s = Inf
  BOOST_CHECK_EXCEPTION(
      quantize_row_symmetric_smoothed(x.data(), s.data(), 40, 8, q.data(), 4), error,
      [](const error& e) { return has(e, errc::non_finite, "(x = 1, s = 0) in row 4, column 5"); });
  BOOST_CHECK_EXCEPTION(fake_quant_row_symmetric_smoothed(x.data(), s.data(), 40, 8, y.data(), 4),
                        error,
                        [](const error& e) { return has(e, errc::non_finite, "row 4, column 5"); });
  s[5] = 2.0f;
  x[0] = std::numeric_limits<float>::quiet_NaN();
  BOOST_CHECK_EXCEPTION(quantize_row_symmetric_smoothed(x.data(), s.data(), 40, 8, q.data()), error,
                        [](const error& e) { return has(e, errc::non_finite, "column 0"); });
  // Nothing was written by any failed call.
  for (auto v : q) BOOST_TEST(v == 9);
  for (auto v : y) BOOST_TEST(v == 9.0f);
  x[0] = 1.0f;
  for (int bits : {0, 1, 9, 16}) {
    BOOST_CHECK_EXCEPTION(quantize_row_symmetric(x.data(), 40, bits, q.data()), error,
                          [](const error& e) { return e.code() == errc::invalid_argument; });
    BOOST_CHECK_THROW(reference::quantize_row_symmetric(x.data(), 40, bits, q.data()), error);
  }
  BOOST_CHECK_THROW(quantize_row_symmetric(x.data(), -1, 8, q.data()), error);
  BOOST_CHECK_THROW(quantize_row_symmetric(nullptr, 4, 8, q.data()), error);
  BOOST_CHECK_THROW(quantize_row_symmetric_smoothed(x.data(), nullptr, 4, 8, q.data()), error);
  BOOST_CHECK_THROW(reference::quantize_row_symmetric_smoothed(x.data(), nullptr, 4, 8, q.data()),
                    error);
  BOOST_TEST(quantize_row_symmetric(nullptr, 0, 8, nullptr) == 1e-5f);  // empty row
}

BOOST_AUTO_TEST_CASE(int4_nibble_order) {
  std::vector<std::int8_t> q = {1, -1, -8, 7, 0, 5, -3};  // odd width
  std::vector<std::uint8_t> p(4, 0xAA);
  pack_int4(make_matrix_view(q, 1, 7), make_matrix_view(p, 1, 4));
  const std::vector<std::uint8_t> expected = {0xF1, 0x78, 0x50, 0x0D};  // low nibble first
  BOOST_TEST(p == expected, boost::test_tools::per_element());
  std::vector<std::int8_t> back(7, 100);
  unpack_int4(make_matrix_view(p, 1, 4), make_matrix_view(back, 1, 7));
  BOOST_TEST(back == q, boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(int4_round_trip) {
  std::mt19937_64 gen(3);
  std::uniform_int_distribution<int> u(-8, 7);
  for (index_t cols = 0; cols <= 19; ++cols) {
    const index_t rows = 3, pc = int4_packed_cols(cols);
    BOOST_TEST(pc == (cols + 1) / 2);
    // Strided views on both sides.
    testing::padded<std::int8_t> q(rows, cols, 2, 0), back(rows, cols, 1, 55);
    for (index_t r = 0; r < rows; ++r)
      for (index_t c = 0; c < cols; ++c) q.view()(r, c) = static_cast<std::int8_t>(u(gen));
    testing::padded<std::uint8_t> p(rows, pc, 3, 0xEE);
    pack_int4(q.cview(), p.view());
    BOOST_TEST(p.padding_intact(0xEE));
    unpack_int4(p.cview(), back.view());
    BOOST_TEST(testing::same_bits(back.cview(), q.cview(), "int4 round trip"));
    BOOST_TEST(back.padding_intact(55));
    if (cols % 2) {
      for (index_t r = 0; r < rows; ++r) BOOST_TEST((p.cview()(r, pc - 1) >> 4) == 0);
    }
  }
  // A 4-bit quantizer's levels, symmetric and asymmetric (shifted storage), survive packing.
  testing::matrix<float> x = testing::random_normal(5, 33, 1.0f, 8);
  for (bool sym : {true, false}) {
    testing::matrix<std::int8_t> q(5, 33), back(5, 33);
    const quant_spec spec{4, sym, granularity::per_group, 8};
    quantize(x.cview(), spec, q.view());
    std::vector<std::uint8_t> packed(static_cast<std::size_t>(5 * int4_packed_cols(33)));
    pack_int4(q.cview(), make_matrix_view(packed, 5, int4_packed_cols(33)));
    unpack_int4(make_matrix_view(std::as_const(packed), 5, int4_packed_cols(33)), back.view());
    BOOST_TEST(testing::same_bits(back.cview(), q.cview(), "quantized int4"));
  }
}

BOOST_AUTO_TEST_CASE(int4_errors) {
  std::vector<std::int8_t> q = {1, 2, 8, 3};
  std::vector<std::uint8_t> p(2, 0x11);
  BOOST_CHECK_EXCEPTION(
      pack_int4(make_matrix_view(q, 2, 2), make_matrix_view(p, 2, 1)), error,
      [](const error& e) { return has(e, errc::out_of_range, "row 1, column 0"); });
  for (auto b : p) BOOST_TEST(b == 0x11);  // nothing written
  q[2] = -9;
  BOOST_CHECK_THROW(pack_int4(make_matrix_view(q, 2, 2), make_matrix_view(p, 2, 1)), error);
  q[2] = 0;
  BOOST_CHECK_EXCEPTION(
      pack_int4(make_matrix_view(q, 1, 4), matrix_view<std::uint8_t>(p.data(), 1, 1)), error,
      [](const error& e) { return e.code() == errc::shape_mismatch; });
  BOOST_CHECK_EXCEPTION(
      unpack_int4(make_matrix_view(std::as_const(p), 1, 2), make_matrix_view(q, 1, 2)), error,
      [](const error& e) { return e.code() == errc::shape_mismatch; });
}

BOOST_AUTO_TEST_SUITE_END()
