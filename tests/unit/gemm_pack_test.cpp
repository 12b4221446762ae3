// gemm_pack_test.cpp: packed_weights (layout, int8/int4, validation) and quantized_activations.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <masquant/gemm/packed_weights.hpp>
#include <masquant/gemm/quantized_activations.hpp>
#include <masquant/parallel.hpp>
#include <masquant/quant/int4.hpp>
#include <string>
#include <vector>

#include "support/gemm_testing.hpp"

using namespace masquant;
using masquant::testing::matrix;

namespace {

template <class F>
void expect_error(F&& call, errc code, const std::string& needle) {
  try {
    call();
    BOOST_ERROR("no error; expected " << needle);
  } catch (const error& e) {
    BOOST_TEST((e.code() == code), e.what());
    BOOST_TEST(std::string(e.what()).find(needle) != std::string::npos, e.what());
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(gemm_pack)

BOOST_AUTO_TEST_CASE(int8_layout_is_the_documented_one) {
  // Block of 64 channels, 256-byte steps of 4 k, byte (c * 4 + t) = w + 128; padding is 0.
  const index_t n = 70, k = 10;
  const auto w = testing::random_int8(n, k, -128, 127, 1);
  const auto s = testing::random_scales(n, 0.1f, 1.0f, 2);
  const auto p = packed_weights::pack(w.cview(), s);
  BOOST_TEST(p.rows() == n);
  BOOST_TEST(p.cols() == k);
  BOOST_TEST(p.bits() == 8);
  BOOST_TEST(p.zero_point() == 128);
  BOOST_TEST(p.blocks() == 2);
  BOOST_TEST(p.block_bytes() == 3 * 256);  // ceil(10 / 4) steps
  BOOST_TEST(p.packed_bytes() == std::size_t{2} * 3 * 256);
  BOOST_TEST(reinterpret_cast<std::uintptr_t>(p.data()) % 64 == 0u);
  index_t wrong = 0;
  for (index_t nn = 0; nn < 128; ++nn) {
    for (index_t kk = 0; kk < 12; ++kk) {
      const auto off = (nn / 64) * p.block_bytes() + (kk / 4) * 256 + (nn % 64) * 4 + kk % 4;
      const int expect = (nn < n && kk < k) ? w(nn, kk) + 128 : 0;
      wrong += p.data()[off] != expect;
    }
  }
  BOOST_TEST(wrong == 0);
  for (index_t nn = 0; nn < 128; ++nn) {
    BOOST_TEST(p.padded_scales()[nn] == (nn < n ? s[static_cast<std::size_t>(nn)] : 0.0f));
  }
}

BOOST_AUTO_TEST_CASE(int4_layout_is_the_documented_one) {
  // Steps of 8 k: low nibble holds k = 8p + t, high nibble k = 8p + 4 + t, each value + 8.
  const index_t n = 65, k = 13;
  const auto w = testing::random_int8(n, k, -8, 7, 3);
  const auto p = packed_weights::pack(w.cview(), std::vector<float>(n, 1.0f), 4);
  BOOST_TEST(p.zero_point() == 8);
  BOOST_TEST(p.block_bytes() == 2 * 256);  // ceil(13 / 8) steps
  index_t wrong = 0;
  for (index_t nn = 0; nn < 128; ++nn) {
    for (index_t kk = 0; kk < 16; ++kk) {
      const auto off = (nn / 64) * p.block_bytes() + (kk / 8) * 256 + (nn % 64) * 4 + kk % 4;
      const int byte = p.data()[off];
      const int nib = (kk % 8) < 4 ? (byte & 0x0F) : (byte >> 4);
      const int expect = (nn < n && kk < k) ? w(nn, kk) + 8 : 0;
      wrong += nib != expect;
    }
  }
  BOOST_TEST(wrong == 0);
}

BOOST_AUTO_TEST_CASE(unpack_round_trips_and_int4_halves_the_bytes) {
  for (int bits : {8, 4}) {
    const index_t n = 33, k = 64;
    const auto w = testing::random_int8(n, k, bits == 8 ? -128 : -8, bits == 8 ? 127 : 7, 4);
    const auto s = testing::random_scales(n, 0.1f, 1.0f, 5);
    const auto p = packed_weights::pack(w.cview(), s, bits);
    matrix<std::int8_t> back(n, k);
    p.unpack(back.view());
    BOOST_TEST(back.data == w.data, "bits=" << bits);
    for (index_t i = 0; i < n; ++i) BOOST_TEST(p.scales()[i] == s[static_cast<std::size_t>(i)]);
    BOOST_TEST(p.value(3, 17) == w(3, 17));
    BOOST_TEST(p.packed_bytes() == std::size_t{64} * 64 * static_cast<std::size_t>(bits) / 8);
  }
}

BOOST_AUTO_TEST_CASE(pack_int4_reads_two_nibbles_per_byte) {
  for (index_t k : {1, 2, 7, 8, 9, 31}) {
    const index_t n = 5;
    const auto w = testing::random_int8(n, k, -8, 7, 6);
    matrix<std::uint8_t> nib(n, (k + 1) / 2, 0xF0);  // unused high nibble set: must be ignored
    for (index_t r = 0; r < n; ++r) {
      for (index_t c = 0; c < k; ++c) {
        const auto v = static_cast<std::uint8_t>(w(r, c) & 0x0F);
        auto& byte = nib(r, c / 2);
        byte = static_cast<std::uint8_t>(c % 2 == 0 ? ((byte & 0xF0) | v)
                                                    : ((byte & 0x0F) | (v << 4)));
      }
    }
    const std::vector<float> s(n, 0.5f);
    const auto from_nibbles = packed_weights::pack_int4(nib.cview(), k, s);
    const auto from_values = packed_weights::pack(w.cview(), s, 4);
    BOOST_TEST(from_nibbles.bits() == 4);
    BOOST_TEST(from_nibbles.cols() == k);
    BOOST_TEST(std::equal(from_nibbles.data(), from_nibbles.data() + from_nibbles.packed_bytes(),
                          from_values.data()),
               "K=" << k);
  }
}

BOOST_AUTO_TEST_CASE(pack_int4_reads_the_quant_layers_int4_storage) {
  const index_t n = 7, k = 33;
  const auto w = testing::random_int8(n, k, -8, 7, 10);
  matrix<std::uint8_t> stored(n, int4_packed_cols(k));
  pack_int4(w.cview(), stored.view());
  const std::vector<float> s(n, 1.0f);
  const auto a = packed_weights::pack_int4(stored.cview(), k, s);
  const auto b = packed_weights::pack(w.cview(), s, 4);
  BOOST_TEST(std::equal(a.data(), a.data() + a.packed_bytes(), b.data()));
}

BOOST_AUTO_TEST_CASE(copies_share_the_immutable_bytes_and_moves_empty_the_source) {
  const auto w = testing::random_int8(3, 5, -9, 9, 7);
  auto p = packed_weights::pack(w.cview(), std::vector<float>(3, 2.0f));
  const packed_weights copy = p;
  BOOST_TEST(copy.data() == p.data());
  BOOST_TEST(std::equal(copy.data(), copy.data() + copy.packed_bytes(), p.data()));
  const packed_weights moved = std::move(p);
  BOOST_TEST(p.empty());  // NOLINT(bugprone-use-after-move): moved-from state is specified
  BOOST_TEST(moved.value(2, 4) == w(2, 4));
  BOOST_TEST(packed_weights().empty());
}

BOOST_AUTO_TEST_CASE(packing_on_a_pool_gives_the_serial_bytes) {
  thread_pool pool(3);
  for (const int bits : {8, 4}) {
    const auto w = testing::random_int8(200, 77, bits == 4 ? -8 : -127, bits == 4 ? 7 : 127, 11);
    const std::vector<float> s(200, 0.5f);
    const auto serial = packed_weights::pack(w.cview(), s, bits);
    const auto pooled = packed_weights::pack(w.cview(), s, bits, pool.as_function());
    BOOST_TEST(pooled.packed_bytes() == serial.packed_bytes());
    BOOST_TEST(std::equal(serial.data(), serial.data() + serial.packed_bytes(), pooled.data()));
  }
  // Several blocks hold values out of range: the error names the first in row order.
  matrix<std::int8_t> w4(200, 9, 1);
  w4(150, 3) = 9;
  w4(70, 8) = -9;
  w4(70, 2) = 8;
  expect_error(
      [&] {
        (void)packed_weights::pack(w4.cview(), std::vector<float>(200, 1.0f), 4,
                                   pool.as_function());
      },
      errc::out_of_range, "(70, 2) = 8");
}

BOOST_AUTO_TEST_CASE(adopt_reads_packed_bytes_in_place) {
  const auto w = testing::random_int8(70, 40, -8, 7, 12);
  std::vector<float> s(70);
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = 0.25f + static_cast<float>(i);
  const auto packed = packed_weights::pack(w.cview(), s, 4);
  detail::aligned_buffer<float> scales(128);
  std::copy(s.begin(), s.end(), scales.data());
  const auto adopted = packed_weights::adopt(70, 40, 4, packed.data(), scales.data(), nullptr);
  BOOST_TEST(adopted.data() == packed.data());  // no copy
  BOOST_TEST(adopted.packed_bytes() == packed_weights::packed_bytes_for(70, 40, 4));
  BOOST_TEST(adopted.packed_bytes() == packed.packed_bytes());
  for (index_t n = 0; n < 70; ++n) {
    BOOST_TEST(adopted.scales()[n] == s[static_cast<std::size_t>(n)]);
    for (index_t k = 0; k < 40; ++k) BOOST_TEST(adopted.value(n, k) == w(n, k));
  }
  expect_error(
      [&] { (void)packed_weights::adopt(70, 40, 4, packed.data() + 1, scales.data(), nullptr); },
      errc::invalid_argument, "64-byte aligned");
  expect_error(
      [&] { (void)packed_weights::adopt(70, 40, 5, packed.data(), scales.data(), nullptr); },
      errc::invalid_argument, "bits must be 8 or 4");
  scales.data()[69] = std::numeric_limits<float>::infinity();
  expect_error(
      [&] { (void)packed_weights::adopt(70, 40, 4, packed.data(), scales.data(), nullptr); },
      errc::non_finite, "channel 69");
}

BOOST_AUTO_TEST_CASE(pack_rejects_bad_input_naming_it) {
  const auto w = testing::random_int8(4, 6, -20, 20, 8);
  const std::vector<float> s4(4, 1.0f);
  expect_error([&] { (void)packed_weights::pack(w.cview(), s4, 6); }, errc::invalid_argument,
               "bits must be 8 or 4");
  expect_error([&] { (void)packed_weights::pack(w.cview(), std::vector<float>(3, 1.0f)); },
               errc::shape_mismatch, "scale has 3 entries but the weight has 4 rows");
  matrix<std::int8_t> w4(2, 3, 1);
  w4(1, 2) = 8;
  expect_error([&] { (void)packed_weights::pack(w4.cview(), std::vector<float>(2, 1.0f), 4); },
               errc::out_of_range, "(1, 2) = 8");
  std::vector<float> s_nan = s4;
  s_nan[3] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { (void)packed_weights::pack(w.cview(), s_nan); }, errc::non_finite,
               "channel 3");
  matrix<std::uint8_t> nib(4, 2);
  expect_error([&] { (void)packed_weights::pack_int4(nib.cview(), 5, s4); }, errc::shape_mismatch,
               "K = 5 needs 3 bytes");
  const auto p = packed_weights::pack(w.cview(), s4);
  matrix<std::int8_t> wrong(4, 5);
  expect_error([&] { p.unpack(wrong.view()); }, errc::shape_mismatch, "4x6");
  expect_error([&] { (void)p.value(4, 0); }, errc::out_of_range, "(4, 0)");
}

BOOST_AUTO_TEST_CASE(quantized_activations_reuse_their_storage) {
  quantized_activations qa(8, 100);
  BOOST_TEST(qa.rows() == 8);
  BOOST_TEST(qa.values().cols() == 100);
  const std::int8_t* before = qa.values().data();
  qa.resize(3, 50);  // smaller: no reallocation
  BOOST_TEST(qa.values().data() == before);
  BOOST_TEST(qa.view().values.rows() == 3);
  BOOST_TEST(qa.view().scales.size() == 3);
  BOOST_TEST(qa.view().row_sums.size() == 3);
  const auto src = testing::random_int8(3, 50, -128, 127, 9);
  for (index_t r = 0; r < 3; ++r) {
    for (index_t c = 0; c < 50; ++c) qa.values()(r, c) = src(r, c);
  }
  qa.compute_row_sums();
  for (index_t r = 0; r < 3; ++r) {
    std::int64_t sum = 0;
    for (index_t c = 0; c < 50; ++c) sum += src(r, c);
    BOOST_TEST(qa.row_sums()[r] == sum);
  }
  qa.resize(8, 100);  // back within capacity
  BOOST_TEST(qa.values().data() == before);
  expect_error([&] { qa.resize(-1, 2); }, errc::invalid_argument, "negative extent");
}

BOOST_AUTO_TEST_SUITE_END()
