// Tests of stats/modality_stats.hpp: routing by id equals filtering tokens, all-or-nothing
// adds, merged statistics over every modality, sharded merging.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <masquant/stats/modality_stats.hpp>
#include <masquant/stats/serialize.hpp>
#include <random>
#include <vector>

#include "support/stats_testing.hpp"

using namespace masquant;
using namespace masquant::testing;

namespace {

// A contiguous copy of the rows of x whose id is m, in order.
matrix<float> filter_rows(const matrix<float>& x, const std::vector<modality_id>& ids,
                          modality_id m) {
  std::vector<index_t> rows;
  for (std::size_t i = 0; i < ids.size(); ++i)
    if (ids[i] == m) rows.push_back(static_cast<index_t>(i));
  matrix<float> out(static_cast<index_t>(rows.size()), x.cols);
  for (std::size_t k = 0; k < rows.size(); ++k)
    for (index_t j = 0; j < x.cols; ++j) out(static_cast<index_t>(k), j) = x(rows[k], j);
  return out;
}

std::vector<modality_id> random_ids(index_t n, int modalities, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int> dist(0, modalities - 1);
  std::vector<modality_id> ids(static_cast<std::size_t>(n));
  for (auto& id : ids) id = static_cast<modality_id>(dist(gen));
  return ids;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(stats_modality)

BOOST_AUTO_TEST_CASE(routing_equals_filtering_tokens) {
  // Interleaved ids over 4 modalities, the last one never used.
  const index_t t = 301, c = 29;
  auto x = random_normal(t, c, 1.0f, 2);
  auto ids = random_ids(t, 3, 5);
  for (std::size_t i = 0; i < ids.size(); ++i)  // modality 1 is 10x larger
    if (ids[i] == 1)
      for (index_t j = 0; j < c; ++j) x(static_cast<index_t>(i), j) *= 10.0f;
  modality_stats s(c, 4, gram_mode::all);
  s.add(x.cview(), ids);
  BOOST_TEST(s.modalities() == 4);
  BOOST_TEST(s.count() == t);
  for (modality_id m = 0; m < 4; ++m) {
    const auto xm = filter_rows(x, ids, m);
    channel_stats expect(c, true);
    expect.add(xm.cview());
    // Same tokens in the same order: identical bits, Gram included.
    BOOST_TEST(to_bytes(s[m]) == to_bytes(expect), "modality " << int(m));
    check_against(s[m], reference_stats(xm.cview(), all_rows(xm.rows)), 1e-14, 1e-13);
  }
  BOOST_TEST(s[3].count() == 0);
  BOOST_TEST(s[3].absmax().isZero(0.0));
  BOOST_TEST(s[3].variance().isZero(0.0));
  BOOST_TEST(s[3].gram().isZero(0.0));
}

BOOST_AUTO_TEST_CASE(single_modality_add_equals_routed_add) {
  const auto x = random_normal(50, 11, 1.0f, 3);
  modality_stats a(11, 2), b(11, 2);
  a.add(x.cview(), modality_id{1});
  b.add(x.cview(), std::vector<modality_id>(50, 1));
  BOOST_TEST(to_bytes(a) == to_bytes(b));
  BOOST_TEST(a[0].count() == 0);
  expect_error([&] { a.add(x.cview(), modality_id{2}); }, errc::out_of_range, "no modality 2");
}

BOOST_AUTO_TEST_CASE(merged_statistics_cover_every_token) {
  const index_t t = 240, c = 13;
  const auto x = random_normal(t, c, 3.0f, 4);
  const auto ids = random_ids(t, 3, 6);
  modality_stats s(c, 3, gram_mode::all);
  s.add(x.cview(), ids);
  const reference_moments ref = reference_stats(x.cview(), all_rows(t));
  const channel_stats all = s.merged();
  check_against(all, ref, 1e-13, 1e-12);
  const Eigen::VectorXd a = s.absmax_all();
  for (index_t j = 0; j < c; ++j) BOOST_TEST(a[j] == ref.absmax[static_cast<std::size_t>(j)]);
  channel_stats one(c, true);
  one.add(x.cview());
  const Eigen::MatrixXd d = all.gram() - one.gram();
  BOOST_TEST(max_abs(d) <= 1e-12 * max_abs(one.gram().diagonal()));
  // Without a Gram matrix in every modality, merged() keeps none.
  modality_stats partial(c, 3, gram_mode::non_reference);
  partial.add(x.cview(), ids);
  BOOST_TEST(!partial[0].has_gram());
  BOOST_TEST(partial[1].has_gram());
  BOOST_TEST(!partial.merged().has_gram());
  check_against(partial.merged(), ref, 1e-13, 1e-12);
  // No token at all: zeros.
  modality_stats empty(c, 2);
  BOOST_TEST(empty.absmax_all().isZero(0.0));
  BOOST_TEST(empty.merged().mean().isZero(0.0));
}

BOOST_AUTO_TEST_CASE(sharded_calibration_merges_to_one_pass) {
  const index_t t = 500, c = 21;
  const auto x = random_normal(t, c, 1.0f, 7);
  const auto ids = random_ids(t, 3, 8);
  modality_stats one(c, 3, gram_mode::non_reference);
  one.add(x.cview(), ids);
  modality_stats merged(c, 3, gram_mode::non_reference);
  for (auto [r0, n] : {std::pair<index_t, index_t>{0, 130}, {130, 0}, {130, 1}, {131, 369}}) {
    modality_stats shard(c, 3, gram_mode::non_reference);
    shard.add(x.cview().middle_rows(r0, n), vector_view<const modality_id>(ids.data() + r0, n));
    merged.merge(shard);
  }
  for (modality_id m = 0; m < 3; ++m) {
    BOOST_TEST(merged[m].count() == one[m].count());
    BOOST_TEST((merged[m].min() == one[m].min()));
    BOOST_TEST((merged[m].max() == one[m].max()));
    const Eigen::VectorXd v = one[m].variance();
    BOOST_TEST(((merged[m].mean() - one[m].mean()).cwiseAbs().array() <=
                1e-12 * (one[m].mean().cwiseAbs().array() + v.cwiseSqrt().array()))
                   .all());
    BOOST_TEST(((merged[m].variance() - v).cwiseAbs().array() <= 1e-12 * v.array()).all());
    if (m != 0) {
      const Eigen::MatrixXd d = merged[m].gram() - one[m].gram();
      BOOST_TEST(max_abs(d) <= 1e-12 * max_abs(one[m].gram().diagonal()));
    }
  }
  modality_stats other(c, 2);
  expect_error([&] { merged.merge(other); }, errc::shape_mismatch, "modalities x channels");
  modality_stats no_gram(c, 3);
  expect_error([&] { merged.merge(no_gram); }, errc::invalid_argument, "modality 1");
}

BOOST_AUTO_TEST_CASE(failed_add_changes_no_modality) {
  const index_t t = 64, c = 10;
  modality_stats s(c, 3, gram_mode::all);
  s.add(random_normal(t, c, 1.0f, 1).cview(), random_ids(t, 3, 2));
  const auto before = to_bytes(s);
  auto x = random_normal(t, c, 1.0f, 3);
  auto ids = random_ids(t, 3, 4);
  ids[60] = 2;
  x(60, 7) = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { s.add(x.cview(), ids); }, errc::non_finite, "token 60, channel 7");
  BOOST_TEST(to_bytes(s) == before);
  x(60, 7) = 1.0f;
  ids[33] = 3;
  expect_error([&] { s.add(x.cview(), ids); }, errc::out_of_range, "token 33 has modality id 3");
  BOOST_TEST(to_bytes(s) == before);
  expect_error([&] { s.add(x.cview(), vector_view<const modality_id>(ids.data(), t - 1)); },
               errc::shape_mismatch, "63 modality ids for a block of 64 tokens");
  expect_error([&] { s.add(x.cview().block(0, 0, t, c - 1), ids); }, errc::shape_mismatch, "64x9");
  BOOST_TEST(to_bytes(s) == before);
  expect_error([] { modality_stats(4, 0); }, errc::invalid_argument, "modality count 0");
  expect_error([] { modality_stats(4, 257); }, errc::invalid_argument, "modality count 257");
}

BOOST_AUTO_TEST_CASE(built_from_accumulators) {
  std::vector<channel_stats> per;
  per.emplace_back(5);
  per.emplace_back(5, true);
  modality_stats s(std::move(per));
  BOOST_TEST(s.channels() == 5);
  BOOST_TEST(!s[0].has_gram());
  BOOST_TEST(s[1].has_gram());
  std::vector<channel_stats> bad;
  bad.emplace_back(5);
  bad.emplace_back(6);
  expect_error([&] { modality_stats{std::move(bad)}; }, errc::shape_mismatch, "5 and 6");
  expect_error([] { modality_stats{std::vector<channel_stats>{}}; }, errc::invalid_argument,
               "modality count 0");
}

BOOST_AUTO_TEST_SUITE_END()
