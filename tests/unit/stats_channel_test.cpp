// Tests of stats/channel_stats.hpp (moments): long double references, merging, non-finite
// inputs, SIMD against the scalar kernels, thread-count independence.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <masquant/isa.hpp>
#include <masquant/parallel.hpp>
#include <masquant/stats/channel_stats.hpp>
#include <masquant/stats/serialize.hpp>
#include <vector>

#include "support/stats_testing.hpp"

using namespace masquant;
using namespace masquant::testing;

BOOST_AUTO_TEST_SUITE(stats_channel)

BOOST_AUTO_TEST_CASE(matches_long_double_reference) {
  // Channel counts around the lane widths and the 2048-channel task chunk; token counts around
  // the group of 8.
  for (index_t c : {1, 3, 17, 67, 2050}) {
    for (index_t t : {1, 7, 8, 9, 100}) {
      const auto x = random_normal(t, c, 2.0f, static_cast<std::uint64_t>(c * 1000 + t));
      channel_stats s(c);
      s.add(x.cview());
      BOOST_TEST_CONTEXT("channels " << c << ", tokens " << t) {
        check_against(s, reference_stats(x.cview(), all_rows(t)), 1e-14, 1e-13);
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(strided_view_and_offset_data) {
  // Columns 5..71 of a wider matrix; channel means far from zero test the stable update.
  auto wide = random_normal(203, 80, 1.0f, 7);
  for (index_t i = 0; i < wide.rows; ++i)
    for (index_t j = 0; j < wide.cols; ++j) wide(i, j) += 1000.0f * static_cast<float>(j % 5);
  const auto x = wide.cview().block(0, 5, 203, 67);
  BOOST_TEST(!x.is_contiguous());
  channel_stats s(67);
  s.add(x);
  // Relative variance error grows with |mean| / std (here up to 4000): 1e-16 * 4000 * a few.
  check_against(s, reference_stats(x, all_rows(203)), 1e-14, 1e-11);
}

BOOST_AUTO_TEST_CASE(empty_accumulator_is_zero_not_nan) {
  channel_stats s(5);
  s.add(matrix_view<const float>(nullptr, 0, 5));
  BOOST_TEST(s.count() == 0);
  for (const Eigen::VectorXd& v : {s.min(), s.max(), s.absmax(), s.mean(), s.variance()}) {
    BOOST_TEST(v.size() == 5);
    BOOST_TEST(v.isZero(0.0));
  }
  channel_stats none;
  BOOST_TEST(none.channels() == 0);
  none.add(matrix_view<const float>(nullptr, 4, 0));
  BOOST_TEST(none.count() == 4);
  BOOST_TEST(none.mean().size() == 0);
}

BOOST_AUTO_TEST_CASE(single_token_and_constant_channel) {
  std::vector<float> one = {-3.5f, 0.0f, 2.0f};
  channel_stats s(3);
  s.add(make_matrix_view(one, 1, 3));
  BOOST_TEST(s.variance().isZero(0.0));
  BOOST_TEST(s.mean()[0] == -3.5);
  BOOST_TEST(s.absmax()[0] == 3.5);
  // 1000 equal tokens: mean exactly the value, variance exactly 0.
  std::vector<float> same(1000 * 3);
  for (std::size_t i = 0; i < same.size(); ++i) same[i] = 0.1f * static_cast<float>(i % 3 + 1);
  channel_stats k(3);
  k.add(make_matrix_view(same, 1000, 3));
  for (index_t j = 0; j < 3; ++j) {
    BOOST_TEST(k.mean()[j] == static_cast<double>(0.1f * static_cast<float>(j + 1)));
    BOOST_TEST(k.variance()[j] == 0.0);
  }
}

BOOST_AUTO_TEST_CASE(signed_zeros_count_as_positive_zero) {
  std::vector<float> z = {-0.0f, 0.0f, 0.0f, -0.0f, -0.0f, -0.0f};
  channel_stats s(2);
  s.add(make_matrix_view(z, 3, 2));
  for (index_t j = 0; j < 2; ++j) {
    BOOST_TEST(!std::signbit(s.min()[j]));
    BOOST_TEST(!std::signbit(s.max()[j]));
  }
}

BOOST_AUTO_TEST_CASE(many_blocks_equal_one_block) {
  const auto x = random_normal(1000, 33, 3.0f, 11);
  channel_stats one(33), many(33);
  one.add(x.cview());
  index_t r = 0;
  for (index_t n : {1, 2, 13, 0, 64, 300, 5, 615}) {
    many.add(x.cview().middle_rows(r, n));
    r += n;
  }
  BOOST_REQUIRE(r == 1000);
  const reference_moments ref = reference_stats(x.cview(), all_rows(1000));
  check_against(one, ref, 1e-14, 1e-13);
  check_against(many, ref, 1e-14, 1e-13);
}

BOOST_AUTO_TEST_CASE(merge_of_uneven_shards_equals_one_pass) {
  const index_t t = 777, c = 19;
  auto x = random_normal(t, c, 1.5f, 5);
  for (index_t i = 0; i < t; ++i) x(i, 3) += 50.0f;  // one channel far from zero
  channel_stats one(c);
  one.add(x.cview());
  channel_stats merged(c);
  const std::vector<index_t> cuts = {0, 0, 1, 9, 9, 400, 777};  // empty and tiny shards
  for (std::size_t k = 0; k + 1 < cuts.size(); ++k) {
    channel_stats shard(c);
    shard.add(x.cview().middle_rows(cuts[k], cuts[k + 1] - cuts[k]));
    merged.merge(shard);
  }
  BOOST_TEST(merged.count() == one.count());
  const Eigen::VectorXd m1 = one.mean(), m2 = merged.mean(), v1 = one.variance(),
                        v2 = merged.variance();
  for (index_t j = 0; j < c; ++j) {
    BOOST_TEST(same_bits(merged.min()[j], one.min()[j]));
    BOOST_TEST(same_bits(merged.max()[j], one.max()[j]));
    BOOST_TEST(same_bits(merged.absmax()[j], one.absmax()[j]));
    BOOST_TEST(std::fabs(m2[j] - m1[j]) <= 1e-12 * (std::fabs(m1[j]) + std::sqrt(v1[j])));
    BOOST_TEST(std::fabs(v2[j] - v1[j]) <= 1e-12 * v1[j]);
  }
  // Merging an empty accumulator, or into one, changes nothing.
  channel_stats copy = one;
  copy.merge(channel_stats(c));
  BOOST_TEST(to_bytes(copy) == to_bytes(one));
  channel_stats empty(c);
  empty.merge(one);
  BOOST_TEST(to_bytes(empty) == to_bytes(one));
}

BOOST_AUTO_TEST_CASE(merge_rejects_mismatches) {
  channel_stats a(4), b(5), g(4, true);
  expect_error([&] { a.merge(b); }, errc::shape_mismatch, "5 channels into 4");
  expect_error([&] { a.merge(g); }, errc::invalid_argument, "Gram");
  expect_error([&] { a.gram(); }, errc::invalid_argument, "no Gram");
}

BOOST_AUTO_TEST_CASE(add_rejects_wrong_width) {
  channel_stats s(4);
  std::vector<float> x(15, 1.0f);
  expect_error([&] { s.add(make_matrix_view(x, 3, 5)); }, errc::shape_mismatch,
               "3x5 but the accumulator has 4 channels");
  BOOST_TEST(s.count() == 0);
  expect_error([] { channel_stats(-1); }, errc::invalid_argument, "negative");
}

BOOST_AUTO_TEST_CASE(non_finite_input_leaves_state_unchanged) {
  const float bad[] = {std::numeric_limits<float>::quiet_NaN(),
                       std::numeric_limits<float>::infinity(),
                       -std::numeric_limits<float>::infinity()};
  for (bool gram : {false, true}) {
    for (float v : bad) {
      channel_stats s(21, gram);
      s.add(random_normal(30, 21, 1.0f, 3).cview());
      const auto before = to_bytes(s);
      auto x = random_normal(40, 21, 1.0f, 4);
      x(37, 20) = v;  // the last group and a tail lane
      x(38, 2) = v;
      expect_error([&] { s.add(x.cview()); }, errc::non_finite, "at token 37, channel 20");
      BOOST_TEST(to_bytes(s) == before);
      // The accumulator still works, and the failed block left no trace.
      x(37, 20) = 0.0f;
      x(38, 2) = 0.0f;
      channel_stats fresh(21, gram);
      fresh.add(random_normal(30, 21, 1.0f, 3).cview());
      fresh.add(x.cview());
      s.add(x.cview());
      BOOST_TEST(to_bytes(s) == to_bytes(fresh));
    }
  }
}

BOOST_AUTO_TEST_CASE(every_family_matches_the_reference) {
  // The moments kernel of each available family, called directly (channel_stats runs the best):
  // min and max exact, mean and M2 as the long double reference's; the families agree on min
  // and max bit for bit.
  namespace build = masquant::detail::MASQUANT_BUILD;
  for (index_t c : {1, 3, 17, 67, 4500}) {  // 4500: sweeps of 2048 channels and a tail
    const index_t t = 45;
    const auto x = random_normal(t, c, 4.0f, static_cast<std::uint64_t>(c));
    std::vector<const float*> rows;
    for (index_t i = 0; i < t; ++i) rows.push_back(x.cview().row_data(i));
    const auto nc = static_cast<std::size_t>(c);
    const reference_moments ref = reference_stats(x.cview(), all_rows(t));
    std::vector<double> first;
    for (isa_family family : available_isas()) {
      std::vector<double> a(4 * nc);
      for (std::size_t j = 0; j < nc; ++j) {
        a[j] = std::numeric_limits<double>::infinity();
        a[nc + j] = -std::numeric_limits<double>::infinity();
      }
      const detail::moments_ref out{a.data(), a.data() + nc, a.data() + 2 * nc, a.data() + 3 * nc};
      const detail::moments_cref in{out.min, out.max, out.mean, out.m2};
      // Two calls: the second starts from a non-empty state.
      for (index_t r0 : {index_t{0}, index_t{20}}) {
        const index_t n = r0 == 0 ? 20 : t - 20;
        build::on_family<hot_path::stats>(
            family, [&](auto f) { run_moments_update(f, rows.data() + r0, n, r0, 0, c, in, out); });
      }
      for (std::size_t j = 0; j < nc; ++j) {
        BOOST_TEST(a[j] == ref.min[j], family << " channel " << j);
        BOOST_TEST(a[nc + j] == ref.max[j], family << " channel " << j);
        const double scale = std::fabs(ref.mean[j]) + std::sqrt(ref.var[j]);
        BOOST_TEST(std::fabs(a[2 * nc + j] - ref.mean[j]) <= 1e-15 * 16.0 * scale, family);
        BOOST_TEST(std::fabs(a[3 * nc + j] / t - ref.var[j]) <= 1e-14 * ref.var[j], family);
      }
      if (first.empty()) first = a;
      for (std::size_t j = 0; j < 2 * nc; ++j) BOOST_TEST(same_bits(a[j], first[j]), family);
    }
  }
}

BOOST_AUTO_TEST_CASE(thread_count_does_not_change_results) {
  const auto x = random_normal(133, 4500, 1.0f, 9);  // three 2048-channel tasks
  channel_stats serial(4500);
  serial.add(x.cview());
  for (int threads : {1, 2, 3}) {
    thread_pool pool(threads);
    channel_stats par(4500);
    par.add(x.cview(), pool.as_function());
    BOOST_TEST(to_bytes(par) == to_bytes(serial));
  }
}

BOOST_AUTO_TEST_SUITE_END()
