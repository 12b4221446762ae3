// layer_io_test.cpp: quantized_linear::forward's element types against its float path — bf16
// and fp16 activations (widened exactly, so bit-identical to the float path on the widened
// values) and bf16 outputs (the float outputs rounded once to nearest even).
#include <boost/test/unit_test.hpp>
#include <cstring>
#include <limits>
#include <masquant/layer/quantized_linear.hpp>
#include <masquant/parallel.hpp>
#include <masquant/tensor/convert.hpp>

#include "support/layer_testing.hpp"

using namespace masquant;
using masquant::testing::layer_case;
using masquant::testing::matrix;

namespace {

template <class T>
bool bitwise_equal(const matrix<T>& a, const matrix<T>& b) {
  return a.rows == b.rows && a.cols == b.cols &&
         std::memcmp(a.data.data(), b.data.data(), a.data.size() * sizeof(T)) == 0;
}

template <class To, class From>
matrix<To> converted(const matrix<From>& a) {
  matrix<To> out(a.rows, a.cols);
  convert(a.cview(), out.view());
  return out;
}

// Layers covering both activation paths (int8 and A16), INT4 and INT8 weights, and the low-rank
// branch in float and (where the CPU runs it) bf16.
std::vector<layer_case> cases() {
  std::vector<layer_case> out;
  std::uint64_t seed = 40;
  for (int wb : {8, 4}) {
    for (int ab : {8, 16}) {
      layer_case c;
      c.d_in = 131;
      c.d_out = 67;
      c.weight_bits = wb;
      c.activation_bits = ab;
      c.ranks = {0, 9, 0, 4};
      c.seed = ++seed;
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(layer_io)

BOOST_AUTO_TEST_CASE(bf16_and_fp16_activations_give_the_float_path_on_the_widened_values) {
  thread_pool pool(2);
  for (const layer_case& c : cases()) {
    const quantized_linear layer(testing::random_params(c));
    for (index_t tokens : {1, 5, 70}) {
      const auto x = testing::random_input(tokens, c.d_in, c.seed + tokens);
      const auto ids = testing::random_ids(tokens, c.modalities(), c.seed * 3 + tokens);
      for (bool threads : {false, true}) {
        forward_options opt;
        if (threads) opt.parallel = pool.as_function();
        // bf16: x rounded to bf16 and back (exact), through a strided view.
        const auto xb = converted<bfloat16>(x);
        matrix<bfloat16> wide(tokens, c.d_in + 3);
        for (index_t i = 0; i < tokens; ++i)
          for (index_t j = 0; j < c.d_in; ++j) wide(i, j) = xb(i, j);
        const matrix_view<const bfloat16> xb_view =
            wide.cview().block(0, 0, tokens, c.d_in);  // stride d_in + 3
        matrix<float> y_bf16(tokens, c.d_out), y_ref(tokens, c.d_out);
        layer.forward(xb_view, ids, y_bf16.view(), opt);
        layer.forward(converted<float>(xb).cview(), ids, y_ref.view(), opt);
        BOOST_TEST(bitwise_equal(y_bf16, y_ref), c.name() << " bf16 M=" << tokens);

        const auto xh = converted<half>(x);
        matrix<float> y_f16(tokens, c.d_out);
        layer.forward(xh.cview(), ids, y_f16.view(), opt);
        layer.forward(converted<float>(xh).cview(), ids, y_ref.view(), opt);
        BOOST_TEST(bitwise_equal(y_f16, y_ref), c.name() << " fp16 M=" << tokens);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(every_fp16_bit_pattern_widens_exactly) {
  // 64 tokens x 1024 channels hold all 65536 half bit patterns (subnormals, zeros of both signs,
  // the largest values); the 2048 Inf/NaN patterns are replaced by +-1 (they are errors).
  layer_case c;
  c.d_in = 1024;
  c.d_out = 24;
  c.ranks = {0, 5};
  const quantized_linear layer(testing::random_params(c));
  matrix<half> xh(64, 1024);
  for (std::uint32_t b = 0; b < 65536; ++b) {
    auto bits = static_cast<std::uint16_t>(b);
    if ((bits & 0x7c00u) == 0x7c00u) bits = (bits & 0x8000u) | 0x3c00u;
    xh.data[b] = Eigen::numext::bit_cast<half>(bits);
  }
  const auto ids = testing::random_ids(64, 2, 7);
  matrix<float> y(64, c.d_out), y_ref(64, c.d_out);
  layer.forward(xh.cview(), ids, y.view());
  layer.forward(converted<float>(xh).cview(), ids, y_ref.view());
  BOOST_TEST(bitwise_equal(y, y_ref));
  // The widened rows themselves: the low-rank branch sees them, so compare the layer's
  // activations too (int8 levels and scales of every token).
  linear_workspace ws_h, ws_f;
  forward_options oh, of;
  oh.workspace = &ws_h;
  of.workspace = &ws_f;
  layer.forward(xh.cview(), ids, y.view(), oh);
  layer.forward(converted<float>(xh).cview(), ids, y_ref.view(), of);
  const auto ah = ws_h.activations(), af = ws_f.activations();
  BOOST_TEST(std::memcmp(ah.values.data(), af.values.data(), 64 * 1024) == 0);
  BOOST_TEST(std::memcmp(ah.scales.data(), af.scales.data(), 64 * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_CASE(bf16_outputs_are_the_float_outputs_rounded_to_nearest_even) {
  thread_pool pool(2);
  for (const layer_case& c : cases()) {
    const quantized_linear layer(testing::random_params(c));
    for (index_t tokens : {1, 70}) {
      const auto x = testing::random_input(tokens, c.d_in, c.seed + 5 * tokens);
      const auto ids = testing::random_ids(tokens, c.modalities(), c.seed + tokens);
      forward_options opt;
      opt.parallel = pool.as_function();
      matrix<float> y(tokens, c.d_out);
      layer.forward(x.cview(), ids, y.view(), opt);
      // Into a strided bf16 view: the columns beside it stay untouched.
      const bfloat16 guard = Eigen::numext::bit_cast<bfloat16>(std::uint16_t{0x7bcd});
      matrix<bfloat16> wide(tokens, c.d_out + 5, guard);
      layer.forward(x.cview(), ids, wide.view().block(0, 0, tokens, c.d_out), opt);
      matrix<bfloat16> yb(tokens, c.d_out);
      bool guards_kept = true;
      for (index_t i = 0; i < tokens; ++i) {
        for (index_t j = 0; j < c.d_out; ++j) yb(i, j) = wide(i, j);
        for (index_t j = c.d_out; j < c.d_out + 5; ++j)
          guards_kept = guards_kept && Eigen::numext::bit_cast<std::uint16_t>(wide(i, j)) == 0x7bcd;
      }
      BOOST_TEST(bitwise_equal(yb, converted<bfloat16>(y)), c.name() << " M=" << tokens);
      BOOST_TEST(guards_kept);
      // And from bf16 activations straight to bf16 outputs.
      const auto xb = converted<bfloat16>(x);
      matrix<bfloat16> yb2(tokens, c.d_out);
      layer.forward(xb.cview(), ids, yb2.view(), opt);
      layer.forward(converted<float>(xb).cview(), ids, y.view(), opt);
      BOOST_TEST(bitwise_equal(yb2, converted<bfloat16>(y)), c.name() << " bf16 in and out");
    }
  }
}

BOOST_AUTO_TEST_CASE(a_float_output_beyond_bf16_range_is_an_overflow) {
  // bias 3.4e38: finite in float (the float path returns it) but above bfloat16's largest
  // finite value, 3.3895314e38, so it would round to Inf.
  layer_case c;
  c.d_in = 8;
  c.d_out = 4;
  auto p = testing::random_params(c);
  p.bias[2] = 3.4e38f;
  const quantized_linear layer(p);
  const auto x = testing::random_input(3, c.d_in, 1);
  matrix<float> y(3, c.d_out);
  layer.forward(x.cview(), y.view());
  BOOST_TEST(std::isfinite(y(0, 2)));
  matrix<bfloat16> yb(3, c.d_out);
  try {
    layer.forward(x.cview(), yb.view());
    BOOST_FAIL("no overflow error");
  } catch (const error& e) {
    BOOST_TEST(e.code() == errc::overflow);
    const std::string what = e.what();
    BOOST_TEST(what.find("output (row 0, column 2)") != std::string::npos, what);
    BOOST_TEST(what.find("beyond bfloat16's range") != std::string::npos, what);
  }
}

BOOST_AUTO_TEST_CASE(non_finite_bf16_activation_names_its_row) {
  layer_case c;
  c.d_in = 16;
  c.d_out = 8;
  const quantized_linear layer(testing::random_params(c));
  auto xb = converted<bfloat16>(testing::random_input(4, c.d_in, 3));
  xb(2, 5) = Eigen::numext::bit_cast<bfloat16>(std::uint16_t{0x7fc0});  // NaN
  matrix<float> y(4, c.d_out);
  try {
    layer.forward(xb.cview(), y.view());
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_TEST(e.code() == errc::non_finite);
    BOOST_TEST(std::string(e.what()).find("row 2") != std::string::npos, e.what());
  }
}

BOOST_AUTO_TEST_CASE(extents_of_typed_views_are_checked) {
  layer_case c;
  const quantized_linear layer(testing::random_params(c));
  matrix<half> x(2, c.d_in + 1);
  matrix<bfloat16> y(2, c.d_out);
  BOOST_CHECK_THROW(layer.forward(x.cview(), y.view()), error);
}

BOOST_AUTO_TEST_CASE(accumulate_adds_the_output_to_y_with_one_rounding) {
  thread_pool pool(2);
  for (const layer_case& c : cases()) {
    const quantized_linear layer(testing::random_params(c));
    for (index_t tokens : {1, 70}) {
      const auto x = testing::random_input(tokens, c.d_in, c.seed + 11 * tokens);
      const auto ids = testing::random_ids(tokens, c.modalities(), c.seed + 2 * tokens);
      const auto residual = testing::random_input(tokens, c.d_out, c.seed + 3);
      for (bool threads : {false, true}) {
        forward_options opt;
        if (threads) opt.parallel = pool.as_function();
        matrix<float> out(tokens, c.d_out);
        layer.forward(x.cview(), ids, out.view(), opt);
        opt.accumulate = true;
        // float y: y + out, one float rounding per element.
        matrix<float> y = residual, want(tokens, c.d_out);
        for (std::size_t i = 0; i < want.data.size(); ++i)
          want.data[i] = residual.data[i] + out.data[i];
        layer.forward(x.cview(), ids, y.view(), opt);
        BOOST_TEST(bitwise_equal(y, want), c.name() << " float M=" << tokens);
        // bf16 y: bf16(float(y) + out).
        auto yb = converted<bfloat16>(residual);
        matrix<bfloat16> want_b(tokens, c.d_out);
        for (std::size_t i = 0; i < want_b.data.size(); ++i)
          want_b.data[i] = static_cast<bfloat16>(static_cast<float>(yb.data[i]) + out.data[i]);
        layer.forward(x.cview(), ids, yb.view(), opt);
        BOOST_TEST(bitwise_equal(yb, want_b), c.name() << " bf16 M=" << tokens);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(accumulate_that_overflows_is_named_and_keeps_y) {
  layer_case c;
  c.d_in = 8;
  c.d_out = 4;
  c.bias = true;
  auto p = testing::random_params(c);
  p.bias.assign(4, 1.0e37f);  // every output is about 1e37
  const quantized_linear layer(p);
  const auto x = testing::random_input(2, c.d_in, 1);
  forward_options opt;
  opt.accumulate = true;
  matrix<float> y(2, c.d_out, 0.0f);
  y(1, 3) = std::numeric_limits<float>::max();
  try {
    layer.forward(x.cview(), y.view(), opt);
    BOOST_FAIL("no overflow error");
  } catch (const error& e) {
    BOOST_TEST(e.code() == errc::overflow);
    BOOST_TEST(std::string(e.what()).find("output (row 1, column 3)") != std::string::npos,
               e.what());
  }
  BOOST_TEST(y(1, 3) == std::numeric_limits<float>::max());  // not replaced by Inf
  // A y that already holds NaN is named as such.
  matrix<bfloat16> yb(2, c.d_out, bfloat16(0.0f));
  yb(0, 1) = Eigen::numext::bit_cast<bfloat16>(std::uint16_t{0x7fc0});
  try {
    layer.forward(x.cview(), yb.view(), opt);
    BOOST_FAIL("no error");
  } catch (const error& e) {
    BOOST_TEST(e.code() == errc::non_finite);
    BOOST_TEST(std::string(e.what()).find("output (row 0, column 1)") != std::string::npos,
               e.what());
  }
}

BOOST_AUTO_TEST_CASE(workspace_bytes_is_what_the_largest_call_needs) {
  // A caller's buffer of workspace_bytes(M) holds every call of up to M tokens, and the call
  // that routes every token to the modality of the largest rank needs all of it: one byte less
  // (of an aligned buffer, without the 63 bytes kept for aligning) is refused before y is
  // written. Results are those of an owned workspace, bit for bit.
  struct variant {
    lowrank_compute lowrank;
    bool accumulate;
    element_type out;
  };
  const variant variants[] = {{lowrank_compute::automatic, false, element_type::float32},
                              {lowrank_compute::float32, false, element_type::float32},
                              {lowrank_compute::automatic, true, element_type::float32},
                              {lowrank_compute::float32, false, element_type::bfloat16}};
  for (const layer_case& c : cases()) {
    const quantized_linear layer(testing::random_params(c));
    for (index_t tokens : {1, 33, 70}) {
      const auto x = testing::random_input(tokens, c.d_in, c.seed + tokens);
      const std::vector<modality_id> largest(static_cast<std::size_t>(tokens), 1);  // rank 9
      const auto mixed = testing::random_ids(tokens, c.modalities(), c.seed + 9 * tokens);
      for (const variant& v : variants) {
        forward_options opt;
        opt.lowrank = v.lowrank;
        opt.accumulate = v.accumulate;
        const std::size_t need = layer.workspace_bytes(tokens, opt, v.out);
        const auto call = [&](linear_workspace* ws, const std::vector<modality_id>& ids) {
          forward_options o = opt;
          o.workspace = ws;
          matrix<float> y(tokens, c.d_out, 0.5f);
          if (v.out == element_type::float32) {
            layer.forward(x.cview(), ids, y.view(), o);
          } else {
            matrix<bfloat16> yb(tokens, c.d_out, bfloat16(0.5f));
            layer.forward(x.cview(), ids, yb.view(), o);
            y = converted<float>(yb);
          }
          return y;
        };
        // 64-byte aligned storage; `skew` bytes in.
        std::vector<unsigned char> storage(need + 128);
        const auto aligned = [&](std::size_t skew) {
          const auto at = reinterpret_cast<std::uintptr_t>(storage.data());
          return storage.data() + (64 - at % 64) % 64 + skew;
        };
        for (const auto* ids : {&largest, &mixed}) {
          linear_workspace owned;
          const auto want = call(&owned, *ids);
          linear_workspace unaligned(aligned(1), need);
          BOOST_TEST(bitwise_equal(call(&unaligned, *ids), want), c.name() << " M=" << tokens);
          linear_workspace exact(aligned(0), need - 63);
          BOOST_TEST(bitwise_equal(call(&exact, *ids), want), c.name() << " M=" << tokens);
        }
        linear_workspace short_by_one(aligned(0), need - 64);
        forward_options o = opt;
        o.workspace = &short_by_one;
        matrix<float> y(tokens, c.d_out, 0.5f);
        matrix<bfloat16> yb(tokens, c.d_out, bfloat16(0.5f));
        try {
          if (v.out == element_type::float32) {
            layer.forward(x.cview(), largest, y.view(), o);
          } else {
            layer.forward(x.cview(), largest, yb.view(), o);
          }
          BOOST_FAIL(c.name() << " M=" << tokens << ": a buffer one byte short was accepted");
        } catch (const error& e) {
          BOOST_TEST(e.code() == errc::invalid_argument);
          BOOST_TEST(std::string(e.what()).find("workspace") != std::string::npos, e.what());
        }
        BOOST_TEST(y(0, 0) == 0.5f);
        BOOST_TEST(static_cast<float>(yb(0, 0)) == 0.5f);
        // reserve() on a caller's buffer checks it.
        BOOST_CHECK_THROW(short_by_one.reserve(layer, tokens, opt, v.out), error);
      }
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
