// Tests that the kernels of the quant layer (every instruction-set family available here, forced
// through the functions' isa argument) are bit-identical to masquant::reference on many shapes,
// strides and data. The CI's -march=x86-64-v2 stage runs them with MASQUANT_MAX_ISA=portable.
#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <masquant/isa.hpp>
#include <masquant/quant/fake_quant.hpp>
#include <masquant/quant/quantize.hpp>
#include <masquant/quant/reference.hpp>
#include <masquant/quant/row.hpp>
#include <string>
#include <vector>

#include "support/quant_testing.hpp"

using namespace masquant;
using masquant::testing::data_kind;
using masquant::testing::padded;
using masquant::testing::same_bits;
using masquant::testing::same_params;

namespace {

std::string describe(const char* family, const quant_spec& spec, index_t rows, index_t cols,
                     data_kind kind) {
  return detail::cat(family, " ", spec, " ", rows, "x", cols, " ", testing::to_string(kind));
}

/// Runs every matrix entry point of family `isa` and of the reference on the same strided input and
/// checks outputs, parameters and the untouched padding bit for bit.
void check_all(isa_family isa, const quant_spec& spec, index_t rows, index_t cols, data_kind kind,
               std::uint64_t seed) {
  const std::string what = describe(to_string(isa), spec, rows, cols, kind);
  BOOST_TEST_CONTEXT(what) {
    padded<float> x(rows, cols, 3, -7.0f);
    testing::fill(x.view(), kind, seed);

    // fake_quant, out of place and in place.
    padded<float> y_ref(rows, cols, 2, 99.0f), y(rows, cols, 5, 99.0f);
    reference::fake_quant(x.cview(), spec, y_ref.view());
    fake_quant(x.cview(), spec, y.view(), isa);
    BOOST_TEST(same_bits(y.cview(), y_ref.cview(), what + " fake_quant"));
    BOOST_TEST(y.padding_intact(99.0f));
    padded<float> inplace = x;
    fake_quant_inplace(inplace.view(), spec, isa);
    BOOST_TEST(same_bits(inplace.cview(), y_ref.cview(), what + " fake_quant_inplace"));
    BOOST_TEST(inplace.padding_intact(-7.0f));
    if (spec.is_identity()) {
      BOOST_TEST(same_bits(y.cview(), x.cview(), what + " identity"));
      return;
    }

    // compute_params and the fused quantize.
    const quant_params p_ref = reference::compute_params(x.cview(), spec);
    BOOST_TEST(same_params(compute_params(x.cview(), spec, isa), p_ref, what + " compute_params"));
    padded<std::int8_t> q_ref(rows, cols, 1, 77), q(rows, cols, 4, 77);
    BOOST_TEST(same_params(reference::quantize(x.cview(), spec, q_ref.view()), p_ref,
                           what + " reference::quantize"));
    BOOST_TEST(same_params(quantize(x.cview(), spec, q.view(), isa), p_ref, what + " quantize"));
    BOOST_TEST(same_bits(q.cview(), q_ref.cview(), what + " quantize"));
    BOOST_TEST(q.padding_intact(77));

    // quantize with given parameters gives the same levels.
    padded<std::int8_t> q2(rows, cols, 0, 77);
    quantize(x.cview(), spec, p_ref, q2.view(), isa);
    BOOST_TEST(same_bits(q2.cview(), q_ref.cview(), what + " quantize(params)"));

    // dequantize(quantize(x)) == fake_quant(x), both paths.
    padded<float> d_ref(rows, cols, 1, 55.0f), d(rows, cols, 3, 55.0f);
    reference::dequantize(q_ref.cview(), spec, p_ref, d_ref.view());
    dequantize(q_ref.cview(), spec, p_ref, d.view(), isa);
    BOOST_TEST(same_bits(d.cview(), d_ref.cview(), what + " dequantize"));
    BOOST_TEST(same_bits(d_ref.cview(), y_ref.cview(), what + " dequantize(quantize) vs fake"));
    BOOST_TEST(d.padding_intact(55.0f));
  }
}

/// The row primitives of family `isa` against the reference ones and against the matrix functions.
void check_rows(isa_family isa, index_t n, int bits, data_kind kind, std::uint64_t seed) {
  const std::string what = describe(to_string(isa), {bits}, 1, n, kind);
  BOOST_TEST_CONTEXT(what) {
    testing::matrix<float> x(1, n), s(1, n), xs(1, n);
    testing::fill(x.view(), kind, seed);
    std::mt19937_64 gen(seed + 1);
    std::uniform_real_distribution<float> u(0.01f, 30.0f);
    for (index_t j = 0; j < n; ++j) {
      s(0, j) = u(gen);
      xs(0, j) = x(0, j) / s(0, j);
    }
    testing::matrix<std::int8_t> q_ref(1, n), q(1, n);
    testing::matrix<float> y_ref(1, n), y(1, n);
    const quant_spec spec{bits, true, granularity::per_row, 0};

    // Plain rows: the row primitive equals reference and the per_row matrix quantizer.
    float d_ref = reference::quantize_row_symmetric(x.data.data(), n, bits, q_ref.data.data());
    float d = quantize_row_symmetric(x.data.data(), n, bits, q.data.data(), -1, isa);
    BOOST_TEST(testing::bits_of(d) == testing::bits_of(d_ref));
    BOOST_TEST(same_bits(q.cview(), q_ref.cview(), what + " quantize_row_symmetric"));
    testing::matrix<std::int8_t> qm(1, n);
    const quant_params pm = reference::quantize(x.cview(), spec, qm.view());
    BOOST_TEST(same_bits(qm.cview(), q_ref.cview(), what + " row vs matrix"));
    BOOST_TEST(testing::bits_of(pm.scales[0]) == testing::bits_of(d_ref));
    d = fake_quant_row_symmetric(x.data.data(), n, bits, y.data.data(), -1, isa);
    reference::fake_quant(x.cview(), spec, y_ref.view());
    BOOST_TEST(testing::bits_of(d) == testing::bits_of(d_ref));
    BOOST_TEST(same_bits(y.cview(), y_ref.cview(), what + " fake_quant_row_symmetric"));

    // Smoothed rows equal the materialised x / s.
    d_ref = reference::quantize_row_symmetric(xs.data.data(), n, bits, q_ref.data.data());
    d = quantize_row_symmetric_smoothed(x.data.data(), s.data.data(), n, bits, q.data.data(), -1,
                                        isa);
    BOOST_TEST(testing::bits_of(d) == testing::bits_of(d_ref));
    BOOST_TEST(same_bits(q.cview(), q_ref.cview(), what + " smoothed vs materialised"));
    d = reference::quantize_row_symmetric_smoothed(x.data.data(), s.data.data(), n, bits,
                                                   q.data.data());
    BOOST_TEST(testing::bits_of(d) == testing::bits_of(d_ref));
    BOOST_TEST(same_bits(q.cview(), q_ref.cview(), what + " reference smoothed"));
    reference::fake_quant(xs.cview(), spec, y_ref.view());
    d = fake_quant_row_symmetric_smoothed(x.data.data(), s.data.data(), n, bits, y.data.data(), -1,
                                          isa);
    BOOST_TEST(testing::bits_of(d) == testing::bits_of(d_ref));
    BOOST_TEST(same_bits(y.cview(), y_ref.cview(), what + " fake_quant_row_symmetric_smoothed"));
    // In place.
    testing::matrix<float> in = x;
    fake_quant_row_symmetric_smoothed(in.data.data(), s.data.data(), n, bits, in.data.data(), -1,
                                      isa);
    BOOST_TEST(same_bits(in.cview(), y_ref.cview(), what + " smoothed in place"));
  }
}

}  // namespace

BOOST_AUTO_TEST_SUITE(quant_simd)

// Every width 1..67 (all vector tails for 4, 8 and 16 lanes), several row counts, a spread of
// specs and data kinds, on every family.
BOOST_AUTO_TEST_CASE(odd_widths_match_reference) {
  const quant_spec specs[] = {
      {8, true, granularity::per_row, 0},    {4, false, granularity::per_group, 16},
      {6, true, granularity::per_tensor, 0}, {3, false, granularity::per_row, 0},
      {2, true, granularity::per_group, 5},  {8, false, granularity::per_tensor, 0},
  };
  for (isa_family isa : available_isas()) {
    std::uint64_t seed = 1;
    for (index_t cols = 1; cols <= 67; ++cols) {
      const index_t rows = 1 + cols % 4;
      const quant_spec& spec = specs[static_cast<std::size_t>(cols) % std::size(specs)];
      const data_kind kind = testing::all_data_kinds[static_cast<std::size_t>(cols) %
                                                     std::size(testing::all_data_kinds)];
      check_all(isa, spec, rows, cols, kind, ++seed);
    }
  }
}

// A matrix of at least streaming_min_bytes prefetches the next row while it writes one, and out
// of place writes with non-temporal stores from the first vector-aligned element of each run:
// rows of a 4101-float stride start at every alignment, and nothing outside the view may change.
// In place the same values come out with plain stores.
BOOST_AUTO_TEST_CASE(large_matrix_with_prefetch_and_streaming_stores_matches_reference) {
  const index_t rows = 2050, cols = 4099;
  static_assert(2050 * 4099 * sizeof(float) >= std::size_t{32} << 20);  // streaming_min_bytes
  testing::matrix<float> x(rows, cols);
  testing::fill(x.view(), data_kind::normal, 77);
  for (const quant_spec& spec : {quant_spec{8, true, granularity::per_row, 0},
                                 quant_spec{4, false, granularity::per_group, 128},
                                 quant_spec{6, true, granularity::per_tensor, 0}}) {
    testing::matrix<float> want(rows, cols);
    reference::fake_quant(x.cview(), spec, want.view());
    for (isa_family isa : available_isas()) {
      testing::padded<float> y(rows, cols, 2, -7.0f);
      fake_quant(x.cview(), spec, y.view(), isa);
      BOOST_TEST(same_bits(y.cview(), want.cview(), "streamed fake_quant"));
      BOOST_TEST(y.padding_intact(-7.0f));
      testing::padded<float> z(rows, cols, 2, -7.0f);
      for (index_t r = 0; r < rows; ++r)
        std::copy(x.cview().row_data(r), x.cview().row_data(r) + cols, z.view().row_data(r));
      fake_quant_inplace(z.view(), spec, isa);
      BOOST_TEST(same_bits(z.cview(), want.cview(), "large fake_quant_inplace"));
      BOOST_TEST(z.padding_intact(-7.0f));
    }
  }
}

// Every bit width, symmetric and asymmetric, every granularity (ragged and exact groups), every
// data kind, on a few shapes with long rows and vector tails.
BOOST_AUTO_TEST_CASE(all_specs_match_reference) {
  const index_t shapes[][2] = {{5, 37}, {3, 130}, {2, 517}};
  for (isa_family isa : available_isas()) {
    std::uint64_t seed = 1000;
    for (int bits = 2; bits <= 8; ++bits) {
      for (bool sym : {true, false}) {
        for (auto gran : {granularity::per_tensor, granularity::per_row, granularity::per_group}) {
          for (index_t g : {index_t{1}, index_t{4}, index_t{32}}) {
            if (gran != granularity::per_group && g != 1) continue;
            const quant_spec spec{bits, sym, gran, gran == granularity::per_group ? g : 0};
            for (const auto& shape : shapes) {
              const data_kind kind = testing::all_data_kinds[seed % 8];
              check_all(isa, spec, shape[0], shape[1], kind, ++seed);
            }
          }
        }
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(identity_and_empty_match_reference) {
  for (isa_family isa : available_isas()) {
    check_all(isa, {16}, 3, 21, data_kind::normal, 5);
    check_all(isa, {32, false}, 2, 17, data_kind::huge, 6);
    for (auto gran : {granularity::per_tensor, granularity::per_row, granularity::per_group}) {
      for (bool sym : {true, false}) {
        const quant_spec spec{5, sym, gran, gran == granularity::per_group ? 3 : 0};
        check_all(isa, spec, 0, 9, data_kind::normal, 7);
        check_all(isa, spec, 4, 0, data_kind::normal, 8);
        check_all(isa, spec, 0, 0, data_kind::normal, 9);
      }
    }
  }
}

// Values within a few ulps of (k + 1/2)·Δ, where any shortcut (x times 1/Δ, FMA, another
// rounding) changes the level: random data almost never lands there.
BOOST_AUTO_TEST_CASE(near_ties_match_reference) {
  const index_t rows = 6, cols = 203;
  for (isa_family isa : available_isas()) {
    for (int bits : {2, 4, 8}) {
      for (bool sym : {true, false}) {
        const quant_spec spec{bits, sym, granularity::per_row, 0};
        padded<float> x(rows, cols, 1, 0.0f);
        std::mt19937_64 gen(static_cast<std::uint64_t>(bits * 2 + sym));
        std::uniform_real_distribution<float> u(0.1f, 3.0f);
        for (index_t r = 0; r < rows; ++r) {
          // Columns 0 and 1 fix the range; the rest sit near half-integers of the resulting Δ.
          const float lo = sym ? -u(gen) : -u(gen) * 0.3f, hi = u(gen);
          x.view()(r, 0) = lo;
          x.view()(r, 1) = hi;
          for (index_t c = 2; c < cols; ++c) x.view()(r, c) = 0.0f;
          const quant_params p = reference::compute_params(x.cview().middle_rows(r, 1), spec);
          const double delta = p.scales[0];
          const double z = sym ? 0.0 : p.zero_points[0];
          for (index_t c = 2; c < cols; ++c) {
            const double k = std::floor((lo + (hi - lo) * double(c) / double(cols)) / delta + z);
            float v = static_cast<float>((k - z + 0.5) * delta);
            for (int step = int(c % 5) - 2; step != 0; step += step < 0 ? 1 : -1)
              v = std::nextafter(v, step < 0 ? -1e30f : 1e30f);
            x.view()(r, c) = std::min(std::max(v, lo), hi);
          }
        }
        padded<float> y_ref(rows, cols, 0, 0.0f), y(rows, cols, 0, 0.0f);
        reference::fake_quant(x.cview(), spec, y_ref.view());
        fake_quant(x.cview(), spec, y.view(), isa);
        BOOST_TEST(same_bits(y.cview(), y_ref.cview(),
                             detail::cat(to_string(isa), " ", spec, " near ties")));
        padded<std::int8_t> q_ref(rows, cols, 0, 0), q(rows, cols, 0, 0);
        reference::quantize(x.cview(), spec, q_ref.view());
        quantize(x.cview(), spec, q.view(), isa);
        BOOST_TEST(same_bits(q.cview(), q_ref.cview(),
                             detail::cat(to_string(isa), " ", spec, " near ties q")));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(row_primitives_match_reference) {
  for (isa_family isa : available_isas()) {
    std::uint64_t seed = 5000;
    for (index_t n : {0, 1, 3, 4, 7, 8, 15, 16, 17, 31, 33, 64, 67, 4099}) {
      for (int bits : {2, 4, 6, 8}) {
        const data_kind kind = testing::all_data_kinds[seed % 8];
        check_rows(isa, n, bits, kind, ++seed);
      }
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()
