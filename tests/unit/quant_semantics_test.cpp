// Tests of what the quantizer computes (algorithm.md §3, §11.1), checked against float64
// formulas written independently here, and of its special cases.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <limits>
#include <masquant/quant/fake_quant.hpp>
#include <masquant/quant/params.hpp>
#include <masquant/quant/quantize.hpp>
#include <masquant/quant/reference.hpp>
#include <masquant/quant/spec.hpp>
#include <set>
#include <string>
#include <vector>

#include "support/quant_testing.hpp"

using namespace masquant;
using masquant::testing::bits_of;
using masquant::testing::matrix;

namespace {

/// Round half to even in double, written without std::nearbyint (independent of the library).
double rne(double v) {
  const double f = std::floor(v);
  const double frac = v - f;
  if (frac > 0.5) return f + 1.0;
  if (frac < 0.5) return f;
  return std::fmod(f, 2.0) == 0.0 ? f : f + 1.0;
}

double clampd(double v, double lo, double hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

/// Expected Δ and z of a set of values, from the float32 formula evaluated in double: a
/// quotient of two floats rounded once to float equals the float32 division.
struct expected_params {
  float delta;
  std::int32_t z;
};
expected_params expect(const std::vector<float>& v, int bits, bool sym) {
  double lo = 0, hi = 0, amax = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    lo = i == 0 ? v[i] : std::min(lo, double(v[i]));
    hi = i == 0 ? v[i] : std::max(hi, double(v[i]));
    amax = std::max(amax, std::fabs(double(v[i])));
  }
  if (sym) {
    const double qmax = std::ldexp(1.0, bits - 1) - 1;
    const float d = static_cast<float>(amax / qmax);
    return {static_cast<float>(clampd(d, double(1e-5f), double(1e4f))), 0};
  }
  const double qmax = std::ldexp(1.0, bits) - 1;
  const float range = static_cast<float>(hi - lo);  // float32 subtraction
  const float d = static_cast<float>(
      clampd(static_cast<float>(double(range) / qmax), double(1e-5f), double(1e4f)));
  const float t = static_cast<float>(-lo / double(d));
  return {d, static_cast<std::int32_t>(rne(clampd(t, -1e4, 1e4)))};
}

/// Expected level of x with Δ and z.
double expect_level(float x, expected_params p, int bits, bool sym) {
  const double qmax = sym ? std::ldexp(1.0, bits - 1) - 1 : std::ldexp(1.0, bits) - 1;
  const double qmin = sym ? -qmax : 0.0;
  const double t = static_cast<float>(double(x) / double(p.delta));  // float32 division
  return clampd(rne(t) + p.z, qmin, qmax);
}

std::vector<float> row_of(matrix_view<const float> x, index_t r, index_t c0, index_t c1) {
  std::vector<float> v;
  for (index_t c = c0; c < c1; ++c) v.push_back(x(r, c));
  return v;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(quant_semantics)

BOOST_AUTO_TEST_CASE(spec_helpers) {
  for (int b = 2; b <= 8; ++b) {
    const quant_spec s{b, true}, a{b, false};
    BOOST_TEST(s.qmax() == (1 << (b - 1)) - 1);
    BOOST_TEST(s.qmin() == -s.qmax());
    BOOST_TEST(s.levels() == (1 << b) - 1);
    BOOST_TEST(s.storage_offset() == 0);
    BOOST_TEST(a.qmax() == (1 << b) - 1);
    BOOST_TEST(a.qmin() == 0);
    BOOST_TEST(a.levels() == (1 << b));
    BOOST_TEST(a.storage_offset() == (1 << (b - 1)));
    BOOST_TEST(a.qmin() - a.storage_offset() >= -128);
    BOOST_TEST(a.qmax() - a.storage_offset() <= 127);
    BOOST_TEST(!s.is_identity());
    s.validate();
  }
  BOOST_TEST(quant_spec{16}.is_identity());
  BOOST_TEST(quant_spec{32}.is_identity());
  for (int b : {-1, 0, 1, 9, 12, 15}) {
    BOOST_CHECK_EXCEPTION(quant_spec{b}.validate(), error,
                          [](const error& e) { return e.code() == errc::invalid_argument; });
  }
  BOOST_CHECK_THROW((quant_spec{4, true, granularity::per_group, 0}.validate()), error);
  BOOST_CHECK_THROW((quant_spec{4, true, granularity::per_row, -1}.validate()), error);
  // group_size matters only for per_group; identity specs are all equal.
  BOOST_TEST((quant_spec{4, true, granularity::per_row, 7} == quant_spec{4, true}));
  BOOST_TEST((quant_spec{4, true, granularity::per_group, 7} !=
              quant_spec{4, true, granularity::per_group, 8}));
  BOOST_TEST((quant_spec{16} == quant_spec{32, false}));
  BOOST_TEST(detail::cat(quant_spec{4, false, granularity::per_group, 128}) ==
             "int4 asymmetric per_group(128)");
}

BOOST_AUTO_TEST_CASE(params_layout) {
  const quant_params t({8, true, granularity::per_tensor}, 5, 9);
  BOOST_TEST(t.param_rows() == 1);
  BOOST_TEST(t.groups() == 1);
  BOOST_TEST(t.scales.size() == 1u);
  BOOST_TEST(t.zero_points.empty());
  const quant_params r({8, false, granularity::per_row}, 5, 9);
  BOOST_TEST(r.param_rows() == 5);
  BOOST_TEST(r.groups() == 1);
  BOOST_TEST(r.zero_points.size() == 5u);
  BOOST_TEST(r.index(3, 8) == 3);
  const quant_params g({4, false, granularity::per_group, 4}, 5, 9);  // groups 4, 4, 1
  BOOST_TEST(g.groups() == 3);
  BOOST_TEST(g.group_cols() == 4);
  BOOST_TEST(g.scales.size() == 15u);
  BOOST_TEST(g.index(2, 8) == 2 * 3 + 2);
  BOOST_TEST(g.index(2, 3) == 2 * 3 + 0);
  BOOST_TEST(g.scale_matrix().rows() == 5);
  BOOST_TEST(g.zero_point_matrix().cols() == 3);
  BOOST_CHECK_THROW(t.zero_point_matrix(), error);
  BOOST_CHECK_THROW(quant_params({16}, 2, 2), error);
}

// Every element of random matrices against the float64 formulas, every width and mode.
BOOST_AUTO_TEST_CASE(matches_float64_formula) {
  for (int bits = 2; bits <= 8; ++bits) {
    for (bool sym : {true, false}) {
      for (auto gran : {granularity::per_tensor, granularity::per_row, granularity::per_group}) {
        const quant_spec spec{bits, sym, gran, gran == granularity::per_group ? 5 : 0};
        for (auto kind : testing::all_data_kinds) {
          matrix<float> x(4, 23), y(4, 23);
          testing::fill(x.view(), kind, static_cast<std::uint64_t>(bits * 100 + sym * 10) + 7);
          const quant_params p = compute_params(x.cview(), spec);
          fake_quant(x.cview(), spec, y.view());
          matrix<std::int8_t> q(4, 23);
          quantize(x.cview(), spec, p, q.view());
          for (index_t r = 0; r < 4; ++r) {
            for (index_t g = 0; g < p.groups(); ++g) {
              const index_t c0 = g * p.group_cols(),
                            c1 = std::min<index_t>(23, c0 + p.group_cols());
              std::vector<float> cell;
              for (index_t rr = (gran == granularity::per_tensor ? 0 : r);
                   rr < (gran == granularity::per_tensor ? 4 : r + 1); ++rr) {
                const auto v = row_of(x.cview(), rr, c0, c1);
                cell.insert(cell.end(), v.begin(), v.end());
              }
              const expected_params e = expect(cell, bits, sym);
              BOOST_TEST(bits_of(p.scale(r, c0)) == bits_of(e.delta));
              BOOST_TEST(p.zero_point(r, c0) == e.z);
              for (index_t c = c0; c < c1; ++c) {
                const double lv = expect_level(x(r, c), e, bits, sym);
                BOOST_TEST(q(r, c) == lv - spec.storage_offset());
                BOOST_TEST(y(r, c) == static_cast<float>((lv - e.z) * double(e.delta)));
              }
            }
          }
        }
      }
    }
  }
}

// algorithm.md §11.1: the symmetric level set is exactly {-qmax..qmax}·Δ, both ends reached by
// the absmax element, and the error of an unclamped value is at most Δ/2.
BOOST_AUTO_TEST_CASE(symmetric_level_set) {
  for (int bits : {2, 4, 6, 8}) {
    const quant_spec spec{bits};
    matrix<float> x = testing::random_normal(16, 301, 1.0f, static_cast<std::uint64_t>(bits));
    x(3, 7) = -9.0f;  // a row whose absmax is negative
    matrix<float> y(16, 301);
    fake_quant(x.cview(), spec, y.view());
    const quant_params p = compute_params(x.cview(), spec);
    for (index_t r = 0; r < 16; ++r) {
      const float d = p.scales[static_cast<std::size_t>(r)];
      std::set<long> seen;
      float amax = 0;
      for (index_t c = 0; c < 301; ++c) amax = std::max(amax, std::fabs(x(r, c)));
      for (index_t c = 0; c < 301; ++c) {
        const double k = std::round(double(y(r, c)) / d);
        BOOST_TEST(std::fabs(k) <= spec.qmax());
        BOOST_TEST(y(r, c) == static_cast<float>(k) * d);  // exactly a grid point
        BOOST_TEST(std::fabs(double(y(r, c)) - x(r, c)) <= 0.5 * d * (1 + 1e-6));
        if (std::fabs(x(r, c)) == amax) BOOST_TEST(std::fabs(k) == spec.qmax());
        seen.insert(std::lround(k));
      }
      BOOST_TEST(seen.size() >= (bits == 2 ? 2u : 3u));
    }
  }
}

// Asymmetric: levels 0..2^b-1 shifted into int8 storage, error at most one Δ, z as expected
// for a range far from 0.
BOOST_AUTO_TEST_CASE(asymmetric_levels_and_storage) {
  for (int bits : {2, 4, 8}) {
    const quant_spec spec{bits, false};
    matrix<float> x = testing::random_uniform(8, 77, 5.0f, 6.0f, static_cast<std::uint64_t>(bits));
    matrix<std::int8_t> q(8, 77);
    const quant_params p = quantize(x.cview(), spec, q.view());
    matrix<float> y(8, 77);
    dequantize(q.cview(), spec, p, y.view());
    for (index_t r = 0; r < 8; ++r) {
      BOOST_TEST(p.zero_points[static_cast<std::size_t>(r)] < 0);  // min > 0: z is negative
      const float d = p.scales[static_cast<std::size_t>(r)];
      int qlo = 1000, qhi = -1000;
      for (index_t c = 0; c < 77; ++c) {
        const int level = q(r, c) + spec.storage_offset();
        BOOST_TEST(level >= 0);
        BOOST_TEST(level <= spec.qmax());
        qlo = std::min(qlo, level);
        qhi = std::max(qhi, level);
        BOOST_TEST(std::fabs(double(y(r, c)) - x(r, c)) <= d * (1 + 1e-5));
      }
      BOOST_TEST(qlo <= 1);  // the range maps onto the whole grid
      BOOST_TEST(qhi >= spec.qmax() - 1);
    }
  }
}

// x / Δ exactly k + 1/2 rounds to the even neighbour (std::round would go away from zero).
BOOST_AUTO_TEST_CASE(ties_round_half_to_even) {
  // absmax 7.9375 = 127 / 16, so Δ = 1/16 exactly and (k + 1/2) / 16 is exact.
  const float ks[] = {0.5f, 1.5f, 2.5f, 3.5f, -0.5f, -1.5f, -2.5f, 125.5f, 126.5f, -126.5f};
  const float expected[] = {0, 2, 2, 4, 0, -2, -2, 126, 126, -126};
  matrix<float> x(2, 12);
  for (index_t r = 0; r < 2; ++r) {
    x(r, 0) = r == 0 ? 7.9375f : -7.9375f;
    x(r, 1) = 0.0f;
    for (int i = 0; i < 10; ++i) x(r, i + 2) = ks[i] / 16.0f;
  }
  const quant_spec spec{8};
  matrix<std::int8_t> q(2, 12);
  const quant_params p = quantize(x.cview(), spec, q.view());
  matrix<float> y(2, 12);
  fake_quant(x.cview(), spec, y.view());
  for (index_t r = 0; r < 2; ++r) {
    BOOST_TEST(p.scales[static_cast<std::size_t>(r)] == 0.0625f);
    for (int i = 0; i < 10; ++i) {
      BOOST_TEST(q(r, i + 2) == expected[i]);
      BOOST_TEST(y(r, i + 2) == expected[i] * 0.0625f);
      BOOST_TEST(bits_of(y(r, i + 2)) == bits_of(expected[i] * 0.0625f + 0.0f));  // +0, not -0
    }
    BOOST_TEST(q(r, 0) == (r == 0 ? 127 : -127));
  }
  BOOST_TEST(std::round(2.5f) == 3.0f);  // what the test would catch
  // Asymmetric ties: the zero point is rounded half to even too (-min/Δ = 2.5 -> 2).
  matrix<float> a(1, 3);
  a(0, 0) = -2.5f * 0.0625f;
  a(0, 1) = (255 - 2.5f) * 0.0625f;  // max - min = 255 Δ
  a(0, 2) = 0.5f * 0.0625f;          // x / Δ = 0.5 -> 0, q = 0 + z
  const quant_spec aspec{8, false};
  matrix<std::int8_t> aq(1, 3);
  const quant_params ap = quantize(a.cview(), aspec, aq.view());
  BOOST_TEST(ap.scales[0] == 0.0625f);
  BOOST_TEST(ap.zero_points[0] == 2);
  BOOST_TEST(aq(0, 2) + aspec.storage_offset() == 2);
}

BOOST_AUTO_TEST_CASE(all_zero_rows) {
  for (bool sym : {true, false}) {
    const quant_spec spec{8, sym};
    matrix<float> x(3, 19, 0.0f), y(3, 19, 5.0f);
    x(1, 4) = -0.0f;
    fake_quant(x.cview(), spec, y.view());
    const quant_params p = compute_params(x.cview(), spec);
    for (index_t r = 0; r < 3; ++r) {
      BOOST_TEST(p.scales[static_cast<std::size_t>(r)] == 1e-5f);
      if (!sym) BOOST_TEST(p.zero_points[static_cast<std::size_t>(r)] == 0);
      for (index_t c = 0; c < 19; ++c) BOOST_TEST(bits_of(y(r, c)) == 0u);  // +0.0f
    }
  }
}

// One huge value: Δ clamps at 1e4, everything else rounds to 0, the huge value saturates.
BOOST_AUTO_TEST_CASE(scale_clamps_at_1e4) {
  matrix<float> x(2, 10, 1.0f);
  x(0, 3) = 3e38f;
  x(1, 0) = 127e4f * 4;  // Δ would be 4e4
  const quant_spec spec{8};
  matrix<float> y(2, 10);
  fake_quant(x.cview(), spec, y.view());
  const quant_params p = compute_params(x.cview(), spec);
  BOOST_TEST(p.scales[0] == 1e4f);
  BOOST_TEST(p.scales[1] == 1e4f);
  BOOST_TEST(y(0, 3) == 127 * 1e4f);
  BOOST_TEST(y(1, 0) == 127 * 1e4f);
  BOOST_TEST(y(0, 0) == 0.0f);
  // Asymmetric: max - min overflows float to Inf; Δ = 1e4 and z = 1e4 (clamped -min / Δ).
  matrix<float> a(1, 3);
  a(0, 0) = -3e38f;
  a(0, 1) = 3e38f;
  a(0, 2) = 0.0f;
  const quant_spec aspec{8, false};
  const quant_params ap = compute_params(a.cview(), aspec);
  BOOST_TEST(ap.scales[0] == 1e4f);
  BOOST_TEST(ap.zero_points[0] == 10000);
  matrix<std::int8_t> aq(1, 3);
  quantize(a.cview(), aspec, ap, aq.view());
  // -3e38 / Δ + z saturates at 0; 0 / Δ + z = 1e4 and 3e38 / Δ + z saturate at 255.
  BOOST_TEST(aq(0, 0) + aspec.storage_offset() == 0);
  BOOST_TEST(aq(0, 1) + aspec.storage_offset() == 255);
  BOOST_TEST(aq(0, 2) + aspec.storage_offset() == 255);
  matrix<float> ar(1, 3);
  reference::fake_quant(a.cview(), aspec, ar.view());
  matrix<float> ay(1, 3);
  fake_quant(a.cview(), aspec, ay.view());
  BOOST_TEST(testing::same_bits(ay.cview(), ar.cview(), "overflowing range"));
}

// Subnormal inputs: Δ clamps at 1e-5 and they quantize to +0; a row mixing subnormals with a
// normal value quantizes the subnormals to 0 as well.
BOOST_AUTO_TEST_CASE(denormals) {
  const float tiny = std::numeric_limits<float>::denorm_min();
  matrix<float> x(2, 9);
  for (index_t c = 0; c < 9; ++c) {
    x(0, c) = (c % 2 ? -1.0f : 1.0f) * tiny * float(c + 1);
    x(1, c) = tiny * float(c);
  }
  x(1, 8) = 1.0f;
  for (bool sym : {true, false}) {
    const quant_spec spec{8, sym};
    matrix<float> y(2, 9);
    fake_quant(x.cview(), spec, y.view());
    const quant_params p = compute_params(x.cview(), spec);
    BOOST_TEST(p.scales[0] == 1e-5f);
    for (index_t c = 0; c < 9; ++c) BOOST_TEST(bits_of(y(0, c)) == 0u);
    for (index_t c = 0; c < 8; ++c) BOOST_TEST(y(1, c) == 0.0f);
    BOOST_TEST(std::fabs(y(1, 8) - 1.0f) <= p.scales[1]);
  }
}

// Ragged groups: the last group is just shorter and its statistics cover only its own values
// (the reference zero-pads, which changes nothing for symmetric and is not defined for
// asymmetric; we never count the padding, so a group equals per-row quantization of its slice).
BOOST_AUTO_TEST_CASE(ragged_groups) {
  matrix<float> x = testing::random_uniform(3, 10, 5.0f, 6.0f, 3);  // groups of 4: 4, 4, 2
  for (bool sym : {true, false}) {
    const quant_spec spec{4, sym, granularity::per_group, 4};
    matrix<float> y(3, 10);
    fake_quant(x.cview(), spec, y.view());
    const quant_params p = compute_params(x.cview(), spec);
    BOOST_TEST(p.groups() == 3);
    for (index_t g = 0; g < 3; ++g) {
      const index_t c0 = 4 * g, n = std::min<index_t>(4, 10 - c0);
      const auto slice = x.cview().block(0, c0, 3, n);
      matrix<float> ys(3, n);
      fake_quant(slice, {4, sym, granularity::per_row}, ys.view());
      const quant_params ps = compute_params(slice, {4, sym, granularity::per_row});
      for (index_t r = 0; r < 3; ++r) {
        BOOST_TEST(p.scales[static_cast<std::size_t>(r * 3 + g)] ==
                   ps.scales[static_cast<std::size_t>(r)]);
        if (!sym)
          BOOST_TEST(p.zero_points[static_cast<std::size_t>(r * 3 + g)] ==
                     ps.zero_points[static_cast<std::size_t>(r)]);
        for (index_t c = 0; c < n; ++c) BOOST_TEST(y(r, c0 + c) == ys(r, c));
      }
    }
    if (!sym) {
      // Counting a zero pad would give min 0 and z 0; the values are all >= 5.
      for (index_t r = 0; r < 3; ++r)
        BOOST_TEST(p.zero_points[static_cast<std::size_t>(r * 3 + 2)] < 0);
    }
  }
  // Symmetric: zero padding would not change anything, as the reference promises.
  matrix<float> padded(3, 12, 0.0f);
  for (index_t r = 0; r < 3; ++r)
    for (index_t c = 0; c < 10; ++c) padded(r, c) = x(r, c);
  const quant_params pp = compute_params(padded.cview(), {4, true, granularity::per_group, 4});
  const quant_params pr = compute_params(x.cview(), {4, true, granularity::per_group, 4});
  BOOST_TEST(pp.scales == pr.scales);
  // A group wider than the row is one group.
  const quant_params wide = compute_params(x.cview(), {4, true, granularity::per_group, 64});
  const quant_params rows = compute_params(x.cview(), {4, true, granularity::per_row});
  BOOST_TEST(wide.groups() == 1);
  BOOST_TEST(wide.scales == rows.scales);
}

// Per-tensor parameters are one Δ over everything and apply to another shape.
BOOST_AUTO_TEST_CASE(per_tensor) {
  matrix<float> x = testing::random_normal(6, 13, 2.0f, 9);
  const quant_spec spec{6, true, granularity::per_tensor};
  const quant_params p = compute_params(x.cview(), spec);
  const expected_params e = expect(x.data, 6, true);
  BOOST_TEST(p.scales.size() == 1u);
  BOOST_TEST(p.scales[0] == e.delta);
  matrix<float> other = testing::random_normal(2, 5, 1.0f, 10);
  matrix<std::int8_t> q(2, 5);
  quantize(other.cview(), spec, p, q.view());
  for (index_t r = 0; r < 2; ++r)
    for (index_t c = 0; c < 5; ++c) BOOST_TEST(q(r, c) == expect_level(other(r, c), e, 6, true));
}

BOOST_AUTO_TEST_CASE(identity_for_16_bits_and_more) {
  matrix<float> x = testing::random_normal(3, 11, 1.0f, 4), y(3, 11);
  for (int bits : {16, 24, 32}) {
    fake_quant(x.cview(), {bits}, y.view());
    BOOST_TEST(testing::same_bits(y.cview(), x.cview(), "identity"));
    matrix<std::int8_t> q(3, 11);
    BOOST_CHECK_EXCEPTION(quantize(x.cview(), {bits}, q.view()), error,
                          [](const error& e) { return e.code() == errc::invalid_argument; });
    BOOST_CHECK_THROW(compute_params(x.cview(), {bits}), error);
  }
  x(2, 5) = std::numeric_limits<float>::quiet_NaN();
  BOOST_CHECK_EXCEPTION(fake_quant(x.cview(), {16}, y.view()), error,
                        [](const error& e) { return e.code() == errc::non_finite; });
}

// The error names the row and column, and nothing at or after the bad row is written.
BOOST_AUTO_TEST_CASE(non_finite_inputs) {
  const float bad[] = {std::numeric_limits<float>::quiet_NaN(),
                       std::numeric_limits<float>::infinity(),
                       -std::numeric_limits<float>::infinity()};
  for (float v : bad) {
    for (auto gran : {granularity::per_tensor, granularity::per_row, granularity::per_group}) {
      for (bool sym : {true, false}) {
        const quant_spec spec{8, sym, gran, gran == granularity::per_group ? 2 : 0};
        matrix<float> x = testing::random_normal(20, 37, 1.0f, 11);
        x(17, 3) = v;
        x(18, 0) = v;  // only the first one is named
        auto names_17_3 = [](const error& e) {
          const std::string m = e.what();
          return e.code() == errc::non_finite && m.find("row 17, column 3") != std::string::npos &&
                 m.find("20x37") != std::string::npos;
        };
        matrix<float> y(20, 37, 42.0f);
        BOOST_CHECK_EXCEPTION(fake_quant(x.cview(), spec, y.view()), error, names_17_3);
        for (index_t r = 0; r < 20; ++r) {
          const bool written = gran != granularity::per_tensor && r < 17;
          BOOST_TEST((y(r, 0) == 42.0f) == !written);
        }
        matrix<std::int8_t> q(20, 37, 99);
        BOOST_CHECK_EXCEPTION(quantize(x.cview(), spec, q.view()), error, names_17_3);
        for (index_t c = 0; c < 37; ++c) BOOST_TEST(q(17, c) == 99);
        BOOST_CHECK_EXCEPTION(compute_params(x.cview(), spec), error, names_17_3);
        const quant_params p(spec, 20, 37);
        BOOST_CHECK_EXCEPTION(quantize(x.cview(), spec, p, q.view()), error, names_17_3);
        BOOST_CHECK_EXCEPTION(reference::fake_quant(x.cview(), spec, y.view()), error, names_17_3);
        BOOST_CHECK_EXCEPTION(reference::quantize(x.cview(), spec, q.view()), error, names_17_3);
        matrix<float> inplace = x;
        BOOST_CHECK_EXCEPTION(fake_quant_inplace(inplace.view(), spec), error, names_17_3);
        for (index_t c = 0; c < 37; ++c) BOOST_TEST(bits_of(inplace(19, c)) == bits_of(x(19, c)));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(argument_errors) {
  matrix<float> x = testing::random_normal(4, 6, 1.0f, 12), y(4, 6);
  matrix<std::int8_t> q(4, 6), q_wide(4, 7);
  auto code_is = [](errc c) { return [c](const error& e) { return e.code() == c; }; };
  BOOST_CHECK_EXCEPTION(fake_quant(x.cview(), {9}, y.view()), error,
                        code_is(errc::invalid_argument));
  BOOST_CHECK_EXCEPTION(fake_quant(x.cview(), {1}, y.view()), error,
                        code_is(errc::invalid_argument));
  BOOST_CHECK_EXCEPTION(quantize(x.cview(), {8}, q_wide.view()), error,
                        code_is(errc::shape_mismatch));
  matrix<float> y_short(3, 6);
  BOOST_CHECK_EXCEPTION(fake_quant(x.cview(), {8}, y_short.view()), error,
                        code_is(errc::shape_mismatch));
  BOOST_CHECK_EXCEPTION(fake_quant(x.cview(), {4, true, granularity::per_group, 0}, y.view()),
                        error, code_is(errc::invalid_argument));
  // Parameters for another spec or shape, or with a bad scale.
  const quant_params p = compute_params(x.cview(), {8});
  BOOST_CHECK_EXCEPTION(quantize(x.cview(), {8, false}, p, q.view()), error,
                        code_is(errc::invalid_argument));
  BOOST_CHECK_EXCEPTION(quantize(x.cview().middle_rows(0, 3), {8}, p, q.view().middle_rows(0, 3)),
                        error, code_is(errc::shape_mismatch));
  quant_params bad = p;
  bad.scales[2] = 0.0f;
  BOOST_CHECK_EXCEPTION(quantize(x.cview(), {8}, bad, q.view()), error,
                        code_is(errc::invalid_argument));
  BOOST_CHECK_EXCEPTION(dequantize(q.cview(), {8}, bad, y.view()), error,
                        code_is(errc::invalid_argument));
  bad = p;
  bad.scales.pop_back();
  BOOST_CHECK_EXCEPTION(dequantize(q.cview(), {8}, bad, y.view()), error,
                        code_is(errc::shape_mismatch));
  // Output sharing the input's memory with another stride.
  std::vector<float> buf(4 * 8, 1.0f);
  matrix_view<float> a(buf.data(), 4, 6, 8), b(buf.data(), 4, 6, 6);
  BOOST_CHECK_EXCEPTION(fake_quant(a, {8}, b), error, code_is(errc::invalid_argument));
  // Nothing is written when the arguments are rejected.
  matrix<float> untouched(4, 6, 3.0f);
  BOOST_CHECK_THROW(fake_quant(x.cview(), {8, true, granularity::per_group, -2}, untouched.view()),
                    error);
  for (float v : untouched.data) BOOST_TEST(v == 3.0f);
}

BOOST_AUTO_TEST_SUITE_END()
