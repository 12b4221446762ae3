// layer_memory_test.cpp: what a quantized_linear holds — only the packed form that runs (heap
// measured by the allocator, not by the layer's own accounting), the parameters unpacked from it
// on demand, and packing on a pool giving the serial layer.
#include <malloc.h>

#include <boost/test/unit_test.hpp>
#include <cstring>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/parallel.hpp>
#include <memory>

#include "support/layer_testing.hpp"
#include "support/stats_testing.hpp"

using namespace masquant;
using masquant::testing::layer_case;
using masquant::testing::matrix;

namespace {

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool allocator_is_glibc = false;  // the sanitizers replace malloc: mallinfo2 is blind
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
constexpr bool allocator_is_glibc = false;
#else
constexpr bool allocator_is_glibc = true;
#endif
#else
constexpr bool allocator_is_glibc = true;
#endif

// Bytes the process has allocated and not freed (small chunks and mmapped ones).
std::size_t heap_in_use() {
  const struct mallinfo2 info = mallinfo2();
  return info.uordblks + info.hblkhd;
}

void check_params_equal(const quantized_linear_params& got, const quantized_linear_params& want,
                        lowrank_storage storage) {
  BOOST_TEST(got.d_in == want.d_in);
  BOOST_TEST(got.d_out == want.d_out);
  BOOST_TEST(got.weight_bits == want.weight_bits);
  BOOST_TEST(got.activation_bits == want.activation_bits);
  BOOST_TEST(got.qweight == want.qweight);
  BOOST_TEST(got.wscale == want.wscale);
  BOOST_TEST(got.bias == want.bias);
  BOOST_TEST(got.smooth == want.smooth);
  BOOST_TEST(got.modality_names == want.modality_names);
  for (index_t m = 0; m < want.modalities(); ++m) {
    BOOST_TEST_CONTEXT("modality " << m) {
      BOOST_TEST(got.has_lowrank(m) == want.has_lowrank(m));
      if (!want.has_lowrank(m)) continue;
      const auto& g = got.lowrank[static_cast<std::size_t>(m)];
      const auto& w = want.lowrank[static_cast<std::size_t>(m)];
      BOOST_TEST(g.L.rows() == w.L.rows());
      BOOST_TEST(g.L.cols() == w.L.cols());
      BOOST_TEST(g.R.rows() == w.R.rows());
      BOOST_TEST(g.R.cols() == w.R.cols());
      for (index_t i = 0; i < w.L.size(); ++i)
        BOOST_TEST(double{g.L.data()[i]} == testing::stored(w.L.data()[i], storage));
      for (index_t i = 0; i < w.R.size(); ++i)
        BOOST_TEST(double{g.R.data()[i]} == testing::stored(w.R.data()[i], storage));
    }
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(layer_memory)

BOOST_AUTO_TEST_CASE(params_unpack_what_was_given) {
  for (int wb : {8, 4, 3}) {
    for (int ab : {8, 16}) {
      for (auto storage : {lowrank_storage::float32, lowrank_storage::bfloat16}) {
        layer_case c;
        c.d_in = 70;
        c.d_out = 83;
        c.weight_bits = wb;
        c.activation_bits = ab;
        c.ranks = {0, 5, 0, 17};
        c.seed = static_cast<std::uint64_t>(wb * 100 + ab);
        BOOST_TEST_CONTEXT(c.name() << " storage " << static_cast<int>(storage)) {
          const quantized_linear_params given = testing::random_params(c);
          linear_options opt;
          opt.storage = storage;
          const quantized_linear layer(given, opt);
          check_params_equal(layer.params(), given, storage);
          BOOST_TEST(layer.weight_bits() == wb);
          BOOST_TEST(layer.activation_bits() == ab);
          BOOST_TEST(layer.modality_names() == given.modality_names);
          BOOST_TEST(layer.smooth(3)[69] == given.smooth[3][69]);
          BOOST_TEST(layer.wscale()[82] == given.wscale[82]);
          BOOST_TEST(layer.bias()[0] == given.bias[0]);
          BOOST_TEST(layer.weight_level(82, 69) == given.qweight[82 * 70 + 69]);
          BOOST_TEST(!layer.has_lowrank(2));
          BOOST_TEST(layer.lowrank(2).L.size() == 0);
          // A layer built from the unpacked parameters runs the same, bit for bit.
          const quantized_linear again(layer.params(), opt);
          const matrix<float> x = testing::random_input(9, c.d_in, 5);
          const auto ids = testing::random_ids(9, 4, 6);
          matrix<float> y1(9, c.d_out), y2(9, c.d_out);
          layer.forward(x.cview(), ids, y1.view());
          again.forward(x.cview(), ids, y2.view());
          BOOST_TEST(std::memcmp(y1.data.data(), y2.data.data(), y1.data.size() * 4) == 0);
        }
      }
    }
  }
  const quantized_linear layer(testing::random_params(layer_case{}));
  testing::expect_error([&] { (void)layer.smooth(1); }, errc::out_of_range, "modality 1 of 1");
  testing::expect_error([&] { (void)layer.weight_level(16, 0); }, errc::out_of_range,
                        "(16, 0) outside 16x16");
}

BOOST_AUTO_TEST_CASE(a_layer_holds_only_its_packed_form) {
  // The engine layer: 4096², W4, two modalities, rank 204 (bf16 and float factors).
  for (auto storage : {lowrank_storage::bfloat16, lowrank_storage::float32}) {
    layer_case c;
    c.d_in = 4096;
    c.d_out = 4096;
    c.weight_bits = 4;
    c.ranks = {0, 204};
    linear_options opt;
    opt.storage = storage;
    const std::size_t before = heap_in_use();
    auto layer = std::make_unique<quantized_linear>(testing::random_params(c), opt);
    const std::size_t held = heap_in_use() - before;
    const std::size_t runs = layer->packed().resident_bytes() + layer->lowrank_bytes();
    BOOST_TEST_MESSAGE("storage " << static_cast<int>(storage) << ": heap " << held
                                  << " bytes, packed weight + scales + factors " << runs
                                  << ", resident_bytes() " << layer->resident_bytes());
    BOOST_TEST(layer->resident_bytes() >= runs);
    BOOST_TEST(static_cast<double>(layer->resident_bytes()) <= 1.05 * static_cast<double>(runs));
    if (allocator_is_glibc) {
      BOOST_TEST(held >= runs);
      BOOST_TEST(static_cast<double>(held) <= 1.05 * static_cast<double>(runs));
    }
  }
}

BOOST_AUTO_TEST_CASE(packing_on_a_pool_gives_the_serial_layer) {
  thread_pool pool(3);
  for (int ab : {8, 16}) {
    layer_case c;
    c.d_in = 150;
    c.d_out = 333;
    c.weight_bits = 4;
    c.activation_bits = ab;
    c.ranks = {0, 20, 7};
    const quantized_linear_params p = testing::random_params(c);
    const quantized_linear serial(p);
    const quantized_linear pooled(p, linear_options{}, pool.as_function());
    check_params_equal(pooled.params(), serial.params(), lowrank_storage::float32);
    const matrix<float> x = testing::random_input(40, c.d_in, 8);
    const auto ids = testing::random_ids(40, 3, 9);
    matrix<float> y1(40, c.d_out), y2(40, c.d_out);
    serial.forward(x.cview(), ids, y1.view());
    pooled.forward(x.cview(), ids, y2.view());
    BOOST_TEST(std::memcmp(y1.data.data(), y2.data.data(), y1.data.size() * 4) == 0);
  }
}

BOOST_AUTO_TEST_SUITE_END()
