// Tests of tensor/convert.hpp: F16/BF16 loading into float.
#include <masquant/tensor/convert.hpp>

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

using namespace masquant;

namespace {
float from_bits_f16(std::uint16_t h) {  // independent IEEE binary16 decoder
  const int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
  double v;
  if (exp == 0) v = std::ldexp(man, -24);
  else if (exp == 31) v = man ? std::numeric_limits<double>::quiet_NaN() : INFINITY;
  else v = std::ldexp(1024 + man, exp - 25);
  return float(sign ? -v : v);
}
}  // namespace

BOOST_AUTO_TEST_SUITE(tensor_convert)

BOOST_AUTO_TEST_CASE(f16_all_bit_patterns) {
  std::vector<half> h(65536);
  for (int i = 0; i < 65536; ++i) h[i] = Eigen::numext::bit_cast<half>(std::uint16_t(i));
  std::vector<float> f(65536);
  convert(matrix_view<const half>(h.data(), 256, 256), matrix_view<float>(f.data(), 256, 256));
  for (int i = 0; i < 65536; ++i) {
    const float want = from_bits_f16(std::uint16_t(i));
    if (std::isnan(want)) BOOST_TEST(std::isnan(f[i]));
    else BOOST_TEST(f[i] == want, "bits " << i);
  }
}

BOOST_AUTO_TEST_CASE(bf16_is_upper_half_of_f32) {
  std::vector<bfloat16> b(4096);
  for (int i = 0; i < 4096; ++i)
    b[i] = Eigen::numext::bit_cast<bfloat16>(std::uint16_t(i * 16 + 3));
  std::vector<float> f(4096);
  convert(vector_view<const bfloat16>(b.data(), 4096), vector_view<float>(f.data(), 4096));
  for (int i = 0; i < 4096; ++i) {
    const std::uint32_t bits = std::uint32_t(i * 16 + 3) << 16;
    float want;
    std::memcpy(&want, &bits, 4);
    if (std::isnan(want)) BOOST_TEST(std::isnan(f[i]));
    else BOOST_TEST(f[i] == want);
  }
}

BOOST_AUTO_TEST_CASE(shape_mismatch_is_an_error) {
  std::vector<float> a(6), b(6);
  BOOST_CHECK_THROW(convert(matrix_view<const float>(a.data(), 2, 3),
                            matrix_view<float>(b.data(), 3, 2)),
                    error);
}

BOOST_AUTO_TEST_SUITE_END()
