// Tests of io/safetensors_writer.hpp and io/safetensors_file.hpp on valid files: round trips of
// every dtype, conversions against independent bit-level references, metadata, zero-size and
// scalar tensors, alignment and zero-copy views, and the reference crate's exact bytes.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <masquant/io/safetensors.hpp>
#include <random>
#include <string>
#include <support/io_testing.hpp>
#include <support/testing.hpp>
#include <vector>

using namespace masquant;
using masquant::testing::bytes;
using masquant::testing::check_error;
using masquant::testing::temp_dir;

namespace {

std::uint32_t bits_of(float f) {
  std::uint32_t b;
  std::memcpy(&b, &f, 4);
  return b;
}
float float_of(std::uint32_t b) {
  float f;
  std::memcpy(&f, &b, 4);
  return f;
}

// Independent IEEE binary16 decoder.
double f16_value(std::uint16_t h) {
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  double v;
  if (exp == 0)
    v = std::ldexp(man, -24);
  else if (exp == 31)
    v = man ? std::numeric_limits<double>::quiet_NaN() : INFINITY;
  else
    v = std::ldexp(1024 + man, exp - 25);
  return sign ? -v : v;
}

// Independent float -> bfloat16 bits, round to nearest even (non-NaN input).
std::uint16_t bf16_bits_rne(float f) {
  const std::uint32_t b = bits_of(f);
  return static_cast<std::uint16_t>((b + 0x7fffu + ((b >> 16) & 1u)) >> 16);
}

std::uint16_t u16_at(const vector_view<const std::uint8_t>& b, index_t i) {
  return static_cast<std::uint16_t>(b[2 * i] | (b[2 * i + 1] << 8));
}

safetensors_file reopen(const safetensors_writer& w, const temp_dir& dir,
                        const std::string& name = "t.safetensors") {
  w.write(dir.file(name));
  return safetensors_file(dir.file(name));
}

}  // namespace

BOOST_AUTO_TEST_SUITE(io_safetensors)

BOOST_AUTO_TEST_CASE(round_trip_every_dtype) {
  temp_dir dir;
  const auto w = masquant::testing::random_normal(5, 7, 3.0f, 11);
  const auto wide = masquant::testing::random_normal(5, 9, 3.0f, 12);
  std::vector<double> d(12);
  for (std::size_t i = 0; i < d.size(); ++i) d[i] = 1.0 / 3.0 * double(i) - 1e-3;
  std::vector<std::int8_t> q(15);
  std::vector<std::uint8_t> u(15);
  std::vector<std::int32_t> i32(6);
  for (int i = 0; i < 15; ++i) q[i] = static_cast<std::int8_t>(i * 17 - 128);
  for (int i = 0; i < 15; ++i) u[i] = static_cast<std::uint8_t>(i * 17);
  for (int i = 0; i < 6; ++i) i32[i] = (i % 2 ? -1 : 1) * (1 << (4 * i)) + i;
  std::vector<half> h(4);
  std::vector<bfloat16> b(4);
  for (int i = 0; i < 4; ++i) h[i] = half(0.25f * float(i) - 0.3f);
  for (int i = 0; i < 4; ++i) b[i] = bfloat16(100.0f * float(i) - 0.3f);

  safetensors_writer out;
  out.add("f32", w.cview());
  masquant::testing::matrix<float> block(3, 5);  // the strided block, copied by hand
  for (index_t r = 0; r < 3; ++r)
    for (index_t c = 0; c < 5; ++c) block(r, c) = wide(1 + r, 2 + c);
  out.add("f32.block", block.cview());
  out.add("f32.strided", wide.cview().block(1, 2, 3, 5));  // row stride 9
  out.add("f64", matrix_view<const double>(d.data(), 3, 4));
  out.add("i8", matrix_view<const std::int8_t>(q.data(), 3, 5));
  out.add("u8", vector_view<const std::uint8_t>(u.data(), 15));
  out.add("i32", matrix_view<const std::int32_t>(i32.data(), 2, 3));
  out.add("f16", vector_view<const half>(h.data(), 4));
  out.add("bf16", vector_view<const bfloat16>(b.data(), 4));
  BOOST_TEST(out.size() == 9);
  auto f = reopen(out, dir);
  BOOST_TEST(f.tensors().size() == 9u);

  const auto f32 = f.load<float>("f32");
  BOOST_TEST((f32.shape() == tensor_shape{5, 7}));
  BOOST_TEST(f32.values() == w.data);
  BOOST_TEST(f.load<float>("f32.strided").values() == f.load<float>("f32.block").values());
  BOOST_TEST(f.load<float>("f32.strided").matrix()(2, 4) == wide(3, 6));
  BOOST_TEST(f.load<double>("f64").values() == d);
  BOOST_TEST((f.load<double>("f64").shape() == tensor_shape{3, 4}));
  BOOST_TEST(f.load<std::int8_t>("i8").values() == q);
  BOOST_TEST(f.load<std::uint8_t>("u8").values() == u);
  BOOST_TEST((f.load<std::uint8_t>("u8").shape() == tensor_shape{15}));
  BOOST_TEST(f.load<std::int32_t>("i32").values() == i32);
  const auto h2 = f.load<half>("f16");
  const auto b2 = f.load<bfloat16>("bf16");
  for (int i = 0; i < 4; ++i) {
    BOOST_TEST(Eigen::numext::bit_cast<std::uint16_t>(h2.values()[i]) ==
               Eigen::numext::bit_cast<std::uint16_t>(h[i]));
    BOOST_TEST(Eigen::numext::bit_cast<std::uint16_t>(b2.values()[i]) ==
               Eigen::numext::bit_cast<std::uint16_t>(b[i]));
  }
  // Raw bytes are little-endian elements.
  const auto raw = f.bytes("i32");
  BOOST_TEST(raw.size() == 24);
  std::int32_t first;
  std::memcpy(&first, raw.data(), 4);
  BOOST_TEST(first == i32[0]);
  BOOST_TEST(raw[4] == static_cast<std::uint8_t>(i32[1] & 0xff));
}

BOOST_AUTO_TEST_CASE(load_f32_converts_every_supported_dtype) {
  std::vector<double> d{1.0 / 3.0, -2.5, 1e-300, 3.4028234663852886e38, -0.0};
  std::vector<std::int8_t> q{-128, -1, 0, 127};
  std::vector<std::uint8_t> u{0, 1, 200, 255};
  std::vector<std::int32_t> i{-16777216, 16777216, 33554432, -7, 2147483520};
  std::vector<half> h{half(1.5f), half(-65504.0f), half(5.9604645e-08f)};
  std::vector<bfloat16> b{bfloat16(1.5f), bfloat16(-3.0e38f), bfloat16(1e-30f)};
  safetensors_writer out;
  out.add("d", vector_view<const double>(d.data(), 5));
  out.add("q", vector_view<const std::int8_t>(q.data(), 4));
  out.add("u", vector_view<const std::uint8_t>(u.data(), 4));
  out.add("i", vector_view<const std::int32_t>(i.data(), 5));
  out.add("h", vector_view<const half>(h.data(), 3));
  out.add("b", vector_view<const bfloat16>(b.data(), 3));
  const bytes img = out.serialize();
  auto f = safetensors_file::from_memory(img.data(), img.size());
  const auto fd = f.load_f32("d").values();
  for (std::size_t k = 0; k < d.size(); ++k) BOOST_TEST(bits_of(fd[k]) == bits_of(float(d[k])));
  BOOST_TEST(std::signbit(fd[4]));
  for (std::size_t k = 0; k < q.size(); ++k) BOOST_TEST(f.load_f32("q").values()[k] == q[k]);
  for (std::size_t k = 0; k < u.size(); ++k) BOOST_TEST(f.load_f32("u").values()[k] == u[k]);
  for (std::size_t k = 0; k < i.size(); ++k)
    BOOST_TEST(double(f.load_f32("i").values()[k]) == double(i[k]));
  for (std::size_t k = 0; k < h.size(); ++k)
    BOOST_TEST(double(f.load_f32("h").values()[k]) ==
               f16_value(Eigen::numext::bit_cast<std::uint16_t>(h[k])));
  for (std::size_t k = 0; k < b.size(); ++k)
    BOOST_TEST(bits_of(f.load_f32("b").values()[k]) ==
               std::uint32_t(Eigen::numext::bit_cast<std::uint16_t>(b[k])) << 16);
  // view_f32 is zero-copy only for F32.
  BOOST_TEST(!f.view_f32("h").is_zero_copy());
  BOOST_TEST(f.view_f32("h").vector()[0] == 1.5f);
}

BOOST_AUTO_TEST_CASE(load_f32_refuses_values_float_cannot_hold) {
  std::vector<double> d{1.0, -1e39};
  std::vector<std::int32_t> i{0, 1, 16777217};
  std::vector<double> nonfinite{std::numeric_limits<double>::infinity(), std::nan("")};
  safetensors_writer out;
  out.add("d", matrix_view<const double>(d.data(), 1, 2));
  out.add("i", matrix_view<const std::int32_t>(i.data(), 3, 1));
  out.add("nf", vector_view<const double>(nonfinite.data(), 2));
  const bytes img = out.serialize();
  auto f = safetensors_file::from_memory(img.data(), img.size());
  check_error([&] { f.load_f32("d"); }, errc::overflow,
              {"tensor 'd'", "F64 [1, 2]", "element 1 (row 0, col 1)"});
  check_error([&] { f.load_f32("i"); }, errc::overflow, {"tensor 'i'", "element 2 (row 2, col 0)"});
  // NaN and Inf are stored values, kept as they are (checking them is the consumer's job).
  const auto nf = f.load_f32("nf").values();
  BOOST_TEST(std::isinf(nf[0]));
  BOOST_TEST(std::isnan(nf[1]));
}

BOOST_AUTO_TEST_CASE(f16_store_is_exact_and_rounds_to_nearest_even) {
  // Every finite half, and the midpoint between neighbours (exact in float), stored from float.
  std::vector<float> values;
  std::vector<std::uint16_t> expect;
  for (std::uint32_t hb = 0; hb < 0x7c00; ++hb) {  // positive finite halves
    for (std::uint16_t sign : {0, 0x8000}) {
      const auto bits = static_cast<std::uint16_t>(hb | sign);
      values.push_back(float(f16_value(bits)));
      expect.push_back(bits);
      if (hb + 1 < 0x7c00) {
        const double mid = (f16_value(bits) + f16_value(static_cast<std::uint16_t>(bits + 1))) / 2;
        values.push_back(float(mid));
        expect.push_back(static_cast<std::uint16_t>(bits + (hb & 1)));  // tie: even mantissa
        values.push_back(std::nextafter(float(mid), sign ? -INFINITY : INFINITY));
        expect.push_back(static_cast<std::uint16_t>(bits + 1));  // just above the tie: up
      }
    }
  }
  values.push_back(65519.99f);  // below the overflow threshold 65520: rounds to 65504
  expect.push_back(0x7bff);
  safetensors_writer out;
  out.add("h", vector_view<const float>(values.data(), index_t(values.size())), dtype::f16);
  const bytes img = out.serialize();
  auto f = safetensors_file::from_memory(img.data(), img.size());
  BOOST_TEST(f.info("h").type == dtype::f16);
  const auto raw = f.bytes("h");
  index_t wrong = 0;
  for (std::size_t k = 0; k < values.size(); ++k)
    if (u16_at(raw, index_t(k)) != expect[k] && wrong++ < 5)
      BOOST_ERROR("value " << values[k] << " stored as " << u16_at(raw, index_t(k)) << ", expected "
                           << expect[k]);
  BOOST_TEST(wrong == 0);
}

BOOST_AUTO_TEST_CASE(bf16_and_f64_store) {
  std::vector<float> values;
  std::mt19937 gen(5);
  for (int k = 0; k < 20000; ++k) {
    float v = float_of(gen());
    if (std::isnan(v) || std::isinf(v) || std::fabs(v) > 3.38e38f) continue;
    values.push_back(v);
  }
  values.push_back(float_of(0x3f808000u));  // exact tie, even below: stays 0x3f80
  values.push_back(float_of(0x3f818000u));  // exact tie, odd below: rounds up to 0x3f82
  safetensors_writer out;
  out.add("b", vector_view<const float>(values.data(), index_t(values.size())), dtype::bf16);
  out.add("d", vector_view<const float>(values.data(), index_t(values.size())), dtype::f64);
  const bytes img = out.serialize();
  auto f = safetensors_file::from_memory(img.data(), img.size());
  const auto raw = f.bytes("b");
  index_t wrong = 0;
  for (std::size_t k = 0; k < values.size(); ++k)
    wrong += u16_at(raw, index_t(k)) != bf16_bits_rne(values[k]);
  BOOST_TEST(wrong == 0);
  BOOST_TEST(u16_at(raw, index_t(values.size()) - 2) == 0x3f80);
  BOOST_TEST(u16_at(raw, index_t(values.size()) - 1) == 0x3f82);
  const auto d = f.load<double>("d").values();
  for (std::size_t k = 0; k < values.size(); ++k) wrong += d[k] != double(values[k]);
  BOOST_TEST(wrong == 0);
}

BOOST_AUTO_TEST_CASE(narrowing_overflow_is_an_error_and_adds_nothing) {
  const std::vector<float> v{1.0f, 2.0f, 3.0f, 65520.0f, 5.0f, 6.0f};
  safetensors_writer out;
  check_error([&] { out.add("h", matrix_view<const float>(v.data(), 2, 3), dtype::f16); },
              errc::overflow, {"tensor 'h'", "element (1, 0)", "65520", "overflows F16"});
  BOOST_TEST(out.size() == 0);
  BOOST_TEST(!out.has("h"));
  out.add("h", matrix_view<const float>(v.data(), 1, 3), dtype::f16);  // the name is free again
  const std::vector<float> big{3.4e38f};
  check_error([&] { out.add("b", vector_view<const float>(big.data(), 1), dtype::bf16); },
              errc::overflow, {"tensor 'b'", "element 0", "overflows BF16"});
  const std::vector<double> huge{1e300};
  check_error([&] { out.add("d", vector_view<const double>(huge.data(), 1), dtype::f32); },
              errc::overflow, {"tensor 'd'", "overflows F32"});
  // Non-finite input is stored as it is.
  const std::vector<float> nf{INFINITY, -INFINITY, NAN};
  out.add("nf", vector_view<const float>(nf.data(), 3), dtype::f16);
  const bytes img = out.serialize();
  auto f = safetensors_file::from_memory(img.data(), img.size());
  const auto back = f.load_f32("nf").values();
  BOOST_TEST((std::isinf(back[0]) && back[0] > 0));
  BOOST_TEST((std::isinf(back[1]) && back[1] < 0));
  BOOST_TEST(std::isnan(back[2]));
}

BOOST_AUTO_TEST_CASE(writer_rejects_bad_names_and_dtypes) {
  const std::vector<float> v{1.0f};
  const std::vector<std::int8_t> q{1};
  const vector_view<const float> vv(v.data(), 1);
  safetensors_writer out;
  out.add("a", vv);
  check_error([&] { out.add("", vv); }, errc::invalid_argument, {"empty tensor name"});
  check_error([&] { out.add("__metadata__", vv); }, errc::invalid_argument, {"reserved"});
  check_error([&] { out.add("a", vv); }, errc::invalid_argument, {"tensor 'a' was already added"});
  check_error([&] { out.add("bad\xff", vv); }, errc::invalid_argument, {"not valid UTF-8"});
  check_error([&] { out.add("q", vector_view<const std::int8_t>(q.data(), 1), dtype::f32); },
              errc::invalid_argument, {"tensor 'q'", "I8 data cannot be stored as F32"});
  check_error([&] { out.add("x", vv, dtype::i32); }, errc::invalid_argument,
              {"F32 data cannot be stored as I32"});
  check_error(
      [&] {
        out.add("s", tensor_shape{2, 2}, vv);
      },
      errc::shape_mismatch, {"tensor 's'", "1 values for shape [2, 2]"});
  check_error([&] { out.add_raw("r", dtype::i64, tensor_shape{3}, q.data(), 1); },
              errc::shape_mismatch, {"tensor 'r'", "1 bytes, I64 [3] needs 24"});
  check_error([&] { out.set_metadata("k", "\xc3"); }, errc::invalid_argument, {"UTF-8"});
  BOOST_TEST(out.size() == 1);
}

BOOST_AUTO_TEST_CASE(metadata_round_trip) {
  temp_dir dir;
  safetensors_writer out;
  out.set_metadata("format", "masquant");
  out.set_metadata("wbits", "4");
  out.set_metadata("wbits", "8");  // replaces
  out.set_metadata("quote\"back\\slash\nnewline", "\xce\xb1\xce\xb2 \xf0\x9f\x98\x80");
  out.set_metadata("", "");
  auto f = reopen(out, dir);
  BOOST_TEST(f.tensors().empty());
  BOOST_TEST(f.metadata() == out.metadata());
  BOOST_TEST(f.metadata().at("wbits") == "8");
  BOOST_TEST(f.metadata().size() == 4u);
}

BOOST_AUTO_TEST_CASE(zero_size_and_scalar_tensors) {
  temp_dir dir;
  const std::vector<float> one{42.5f};
  const std::vector<std::int32_t> seven{7};
  safetensors_writer out;
  out.add("scalar", tensor_shape{}, vector_view<const float>(one.data(), 1));
  out.add("scalar.i32", tensor_shape{}, vector_view<const std::int32_t>(seven.data(), 1));
  out.add("empty.rows", matrix_view<const float>(nullptr, 0, 5));
  out.add("empty.cols", matrix_view<const std::int8_t>(nullptr, 3, 0));
  out.add("empty.vec", vector_view<const double>(), dtype::f64);
  out.add("empty.3d", tensor_shape{2, 0, 4}, vector_view<const float>(), dtype::bf16);
  auto f = reopen(out, dir);
  BOOST_TEST(f.tensors().size() == 6u);
  const auto s = f.load_f32("scalar");
  BOOST_TEST(s.shape().rank() == 0);
  BOOST_TEST(s.size() == 1);
  BOOST_TEST((s.rows() == 1 && s.cols() == 1));
  BOOST_TEST(s.values()[0] == 42.5f);
  BOOST_TEST(f.load_f32("scalar.i32").values()[0] == 7.0f);
  const auto er = f.load_f32("empty.rows");
  BOOST_TEST((er.shape() == tensor_shape{0, 5}));
  BOOST_TEST((er.rows() == 0 && er.cols() == 5 && er.size() == 0));
  BOOST_TEST(er.matrix().empty());
  BOOST_TEST((f.load<std::int8_t>("empty.cols").shape() == tensor_shape{3, 0}));
  BOOST_TEST(f.view<std::int8_t>("empty.cols").matrix().rows() == 3);
  BOOST_TEST((f.load_f32("empty.vec").shape() == tensor_shape{0}));
  const auto e3 = f.load_f32("empty.3d");
  BOOST_TEST((e3.shape() == tensor_shape{2, 0, 4}));
  BOOST_TEST((e3.rows() == 0 && e3.cols() == 4));
  for (const auto& t : f.tensors())
    if (t.elements() == 0) BOOST_TEST(t.byte_size() == 0u);
}

BOOST_AUTO_TEST_CASE(layout_is_aligned_sorted_and_deterministic) {
  const auto w = masquant::testing::random_normal(3, 5, 1.0f, 3);
  const std::vector<std::int8_t> q(7, 1);
  const std::vector<double> d(3, 2.0);
  const std::vector<half> h(3, half(1.0f));
  auto fill = [&](safetensors_writer& out, bool reversed) {
    std::vector<std::function<void()>> adds{
        [&] { out.add("z.q", vector_view<const std::int8_t>(q.data(), 7)); },
        [&] { out.add("a.h", vector_view<const half>(h.data(), 3)); },
        [&] { out.add("m.w", w.cview()); },
        [&] { out.add("b.d", vector_view<const double>(d.data(), 3)); },
        [&] { out.add("c.w", w.cview(), dtype::bf16); },
        [&] { out.set_metadata("k2", "v2"); },
        [&] { out.set_metadata("k1", "v1"); }};
    if (reversed) std::reverse(adds.begin(), adds.end());
    for (auto& a : adds) a();
  };
  safetensors_writer a, b;
  fill(a, false);
  fill(b, true);
  const bytes img = a.serialize();
  BOOST_TEST(img == b.serialize());  // insertion order does not matter
  // Header length is a multiple of 8; data in decreasing alignment, then by name.
  auto f = safetensors_file::from_memory(img.data(), img.size());
  BOOST_TEST(f.header_size() % 8 == 0u);
  std::vector<std::string> names;
  for (const auto& t : f.tensors()) {
    names.push_back(t.name);
    BOOST_TEST(t.file_offset % dtype_size(t.type) == 0u, t.name);
  }
  BOOST_TEST(names == (std::vector<std::string>{"b.d", "m.w", "c.w", "a.h", "z.q"}));
  // The header starts with the metadata, keys sorted, then entries in data order.
  const std::string header(img.begin() + 8, img.begin() + 8 + std::ptrdiff_t(f.header_size()));
  BOOST_TEST(
      header.rfind("{\"__metadata__\":{\"k1\":\"v1\",\"k2\":\"v2\"},\"b.d\":{\"dtype\":", 0) == 0u);
}

BOOST_AUTO_TEST_CASE(matches_the_reference_crate_bytes) {
  // Expected bytes from the reference Rust crate's serialization tests (safetensors tensor.rs).
  const std::vector<float> v{0, 1, 2, 3, 4, 5};
  const vector_view<const float> vv(v.data(), 6);
  const std::string h1 =
      "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
  BOOST_TEST(h1.size() == 64u);  // a multiple of 8 already: no padding
  bytes expect1 = masquant::testing::image(h1);
  for (float x : v) {
    const std::uint32_t b = bits_of(x);
    for (int k = 0; k < 4; ++k) expect1.push_back(static_cast<std::uint8_t>(b >> (8 * k)));
  }
  safetensors_writer w1;
  w1.add("attn.0", tensor_shape{1, 2, 3}, vv);
  BOOST_TEST(w1.serialize() == expect1);
  BOOST_TEST(expect1[0] == 64);

  safetensors_writer w2;  // forced alignment: a shorter name needs 7 spaces
  w2.add("attn0", tensor_shape{1, 1, 2, 3}, vv);
  const bytes got2 = w2.serialize();
  BOOST_TEST(got2[0] == 72);
  BOOST_TEST(std::string(got2.begin() + 8 + 65, got2.begin() + 80) == "       ");

  safetensors_writer empty;
  BOOST_TEST(empty.serialize() ==
             (bytes{8, 0, 0, 0, 0, 0, 0, 0, '{', '}', 32, 32, 32, 32, 32, 32}));
  safetensors_writer meta;
  meta.set_metadata("framework", "pt");
  BOOST_TEST(meta.serialize() ==
             masquant::testing::image("{\"__metadata__\":{\"framework\":\"pt\"}}     "));
}

BOOST_AUTO_TEST_CASE(zero_copy_views) {
  temp_dir dir;
  const auto w = masquant::testing::random_normal(4, 6, 1.0f, 9);
  const std::vector<std::int32_t> i{1, 2, 3};
  const std::vector<std::int8_t> q{1, 2, 3, 4, 5};  // odd size: the next tensor's alignment holds
  safetensors_writer out;
  out.add("w", w.cview());
  out.add("i", vector_view<const std::int32_t>(i.data(), 3));
  out.add("q", vector_view<const std::int8_t>(q.data(), 5));
  out.add("h", w.cview(), dtype::f16);
  out.write(dir.file("v.safetensors"));

  tensor_ref<float> kept;
  {
    safetensors_file f(dir.file("v.safetensors"));
    const auto v = f.view<float>("w");
    BOOST_TEST(v.is_zero_copy());
    BOOST_TEST(reinterpret_cast<const std::uint8_t*>(v.data()) == f.bytes("w").data());
    BOOST_TEST((v.rows() == 4 && v.cols() == 6));
    BOOST_TEST(v.matrix()(3, 5) == w(3, 5));
    BOOST_TEST(f.view<std::int32_t>("i").is_zero_copy());
    BOOST_TEST(f.view<half>("h").is_zero_copy());
    BOOST_TEST(f.view_f32("w").is_zero_copy());
    kept = v;
  }
  // The ref keeps the mapping alive after the file object is gone.
  BOOST_TEST(kept.matrix()(2, 1) == w(2, 1));

  // A misaligned buffer (from memory, one byte in) is copied instead.
  const bytes img = masquant::testing::read_bytes(dir.file("v.safetensors"));
  bytes shifted(img.size() + 1);
  std::copy(img.begin(), img.end(), shifted.begin() + 1);
  auto g = safetensors_file::from_memory(shifted.data() + 1, img.size());
  const auto c = g.view<float>("w");
  BOOST_TEST(!c.is_zero_copy());
  BOOST_TEST(c.vector()[7] == w.data[7]);
  BOOST_TEST(g.view<std::int8_t>("q").is_zero_copy());  // bytes are always aligned
  BOOST_TEST(g.load_f32("h").values()[5] == float(half(w.data[5])));
}

BOOST_AUTO_TEST_CASE(owned_tensor_and_shape_basics) {
  owned_tensor<float> t({2, 3, 4}, 1.5f);
  BOOST_TEST((t.rows() == 6 && t.cols() == 4 && t.size() == 24));
  t.matrix()(5, 3) = 2.0f;
  BOOST_TEST(t.values()[23] == 2.0f);
  BOOST_TEST(owned_tensor<float>().size() == 0);
  check_error([] { owned_tensor<int>(tensor_shape{2}, std::vector<int>{1}); }, errc::shape_mismatch,
              {"1 values for shape [2]"});
  check_error([] { tensor_shape{3, -1}; }, errc::invalid_argument, {"extent 1 is -1"});
  check_error(
      [] {
        tensor_shape{index_t(1) << 32, index_t(1) << 32};
      },
      errc::overflow, {"more elements than index_t holds"});
  BOOST_TEST((tensor_shape{}.elements() == 1));
  BOOST_TEST((tensor_shape{7}.rows() == 1));
  BOOST_TEST((parse_dtype("BF16") == dtype::bf16));
  BOOST_TEST(!parse_dtype("bf16").has_value());
  for (int k = 0; k <= int(dtype::u64); ++k)
    BOOST_TEST((parse_dtype(to_string(dtype(k))) == dtype(k)));
}

BOOST_AUTO_TEST_SUITE_END()
