// Tests of the Gram matrix of stats/channel_stats.hpp: exact integer references across tile
// boundaries, long double references, SIMD against scalar kernels, thread-count independence.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <masquant/isa.hpp>
#include <masquant/parallel.hpp>
#include <masquant/stats/channel_stats.hpp>
#include <vector>

#include "support/stats_testing.hpp"

using namespace masquant;
using namespace masquant::testing;

namespace {

// Max over the upper triangle of |G - ref| / sqrt(ref_ii ref_jj) (the Cauchy-Schwarz scale).
double max_scaled_error(const Eigen::MatrixXd& g, const std::vector<long double>& ref) {
  const index_t c = g.rows();
  double worst = 0.0;
  for (index_t j = 0; j < c; ++j)
    for (index_t i = 0; i <= j; ++i) {
      const long double r = ref[static_cast<std::size_t>(i * c + j)];
      const long double scale = std::sqrt(ref[static_cast<std::size_t>(i * c + i)] *
                                          ref[static_cast<std::size_t>(j * c + j)]);
      if (scale > 0) worst = std::max(worst, static_cast<double>(std::fabs(g(i, j) - r) / scale));
    }
  return worst;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(stats_gram)

BOOST_AUTO_TEST_CASE(exact_on_integers_across_tile_boundaries) {
  // Small integers make every partial sum exact, so G must equal the reference bit for bit:
  // this checks the indexing of packing, micro-tiles, edges, row blocks and column chunks.
  for (index_t c : {1, 2, 3, 8, 17, 24, 25, 67, 131, 300}) {
    const index_t t = 600;  // two 512-token blocks
    const auto x = random_integers(t, c, 7, static_cast<std::uint64_t>(c));
    channel_stats s(c, true);
    s.add(x.cview());
    const Eigen::MatrixXd g = s.gram();
    const auto ref = reference_gram(x.cview(), all_rows(t));
    bool exact = true;
    for (index_t i = 0; i < c; ++i)
      for (index_t j = 0; j < c; ++j)
        exact = exact && g(i, j) == static_cast<double>(ref[static_cast<std::size_t>(i * c + j)]);
    BOOST_TEST(exact, "channels " << c);
    BOOST_TEST((g == g.transpose()));
  }
}

BOOST_AUTO_TEST_CASE(matches_long_double_reference_on_strided_floats) {
  auto wide = random_normal(517, 70, 1.0f, 21);
  for (index_t i = 0; i < wide.rows; ++i) wide(i, 9) += 30.0f;  // a channel with a large mean
  const auto x = wide.cview().block(0, 3, 517, 67);
  channel_stats s(67, true);
  s.add(x.middle_rows(0, 100));
  s.add(x.middle_rows(100, 417));
  const auto ref = reference_gram(x, all_rows(517));
  // Exact products, double sums of 517 terms: a few ulps times the term count at most.
  BOOST_TEST(max_scaled_error(s.gram(), ref) <= 1e-13);
  BOOST_TEST(s.gram_upper()(2, 60) == s.gram()(60, 2));
}

BOOST_AUTO_TEST_CASE(every_family_matches_the_reference) {
  // The Gram kernel of each available family, called directly (channel_stats runs the best),
  // against the long double reference (upper triangle: the kernel leaves the lower one); the
  // families agree to the same bound.
  namespace build = masquant::detail::MASQUANT_BUILD;
  const index_t c = 45, t = 300;
  const auto x = random_normal(t, c, 1.0f, 8);
  std::vector<const float*> rows;
  for (index_t i = 0; i < t; ++i) rows.push_back(x.cview().row_data(i));
  const auto ref = reference_gram(x.cview(), all_rows(t));
  Eigen::MatrixXd first;
  for (isa_family family : available_isas()) {
    Eigen::MatrixXd a = Eigen::MatrixXd::Zero(c, c);
    detail::gram_workspace ws;
    build::on_family<hot_path::gram>(
        family, [&](auto f) { run_gram_update(f, rows.data(), t, c, a.data(), ws, {}); });
    BOOST_TEST(max_scaled_error(a, ref) <= 1e-14, family);
    if (first.size() == 0) first = a;
    double diff = 0;
    for (index_t j = 0; j < c; ++j)
      for (index_t i = 0; i <= j; ++i) diff = std::max(diff, std::fabs(a(i, j) - first(i, j)));
    BOOST_TEST(diff <= 1e-12, family);
  }
}

BOOST_AUTO_TEST_CASE(thread_count_does_not_change_results) {
  const index_t c = 290, t = 270;
  const auto x = random_normal(t, c, 1.0f, 12);
  channel_stats serial(c, true);
  serial.add(x.cview());
  for (int threads : {2, 3}) {
    thread_pool pool(threads);
    channel_stats par(c, true);
    par.add(x.cview(), pool.as_function());
    BOOST_TEST((par.gram() == serial.gram()));
  }
}

BOOST_AUTO_TEST_CASE(merge_of_shards_equals_one_pass) {
  const index_t c = 37, t = 700;
  const auto x = random_normal(t, c, 2.0f, 13);
  channel_stats one(c, true), merged(c, true);
  one.add(x.cview());
  for (auto [r0, n] : {std::pair<index_t, index_t>{0, 0}, {0, 3}, {3, 280}, {283, 417}}) {
    channel_stats shard(c, true);
    shard.add(x.cview().middle_rows(r0, n));
    merged.merge(shard);
  }
  const auto ref = reference_gram(x.cview(), all_rows(t));
  BOOST_TEST(max_scaled_error(one.gram(), ref) <= 1e-13);
  BOOST_TEST(max_scaled_error(merged.gram(), ref) <= 1e-13);
  const Eigen::MatrixXd d = merged.gram() - one.gram();
  BOOST_TEST(max_abs(d) <= 1e-12 * max_abs(one.gram().diagonal()));
}

BOOST_AUTO_TEST_CASE(empty_and_cleared) {
  channel_stats s(6, true);
  BOOST_TEST(s.gram().isZero(0.0));
  s.add(random_normal(10, 6, 1.0f, 1).cview());
  BOOST_TEST((s.gram().diagonal().array() > 0.0).all());
  s.clear();
  BOOST_TEST(s.count() == 0);
  BOOST_TEST(s.gram().isZero(0.0));
  channel_stats none(0, true);
  none.add(matrix_view<const float>(nullptr, 3, 0));
  BOOST_TEST(none.gram().size() == 0);
}

BOOST_AUTO_TEST_SUITE_END()
