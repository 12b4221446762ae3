// Tests of linalg/rank_policy.hpp: the rank rule (ratio, absolute, minimum, clamp, zero,
// energy) and the effective-rank diagnostic.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <masquant/linalg/rank_policy.hpp>

using namespace masquant;

namespace {

rank_policy policy(double rank, index_t min_rank = 32, double energy = 0) {
  rank_policy p;
  p.rank = rank;
  p.min_rank = min_rank;
  p.energy = energy;
  return p;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(linalg_rank_policy)

BOOST_AUTO_TEST_CASE(ratio_is_a_fraction_of_the_smaller_extent) {
  BOOST_TEST(rank_policy{}.resolve(4096, 4096) == 204);  // ⌊0.05·4096⌋ = ⌊204.8⌋
  BOOST_TEST(policy(0.2).resolve(2048, 11008) == 409);   // ⌊0.2·2048⌋
  BOOST_TEST(policy(0.2).resolve(11008, 2048) == 409);   // min of the two, either way round
  BOOST_TEST(policy(1.0).resolve(300, 200) == 200);      // ratio 1: full rank
  BOOST_TEST(policy(0.5, 0).resolve(7, 9) == 3);         // ⌊3.5⌋
  // Floored in double precision like the reference's int(ρ·k): 0.29·100 = 28.999999999999996.
  BOOST_TEST(policy(0.29, 0).resolve(100, 100) == 28);
}

BOOST_AUTO_TEST_CASE(absolute_rank_above_one) {
  BOOST_TEST(policy(128).resolve(4096, 4096) == 128);
  BOOST_TEST(policy(64.9).resolve(4096, 4096) == 64);
  BOOST_TEST(policy(1.5, 0).resolve(100, 100) == 1);
  BOOST_TEST(policy(16).resolve(4096, 4096) == 32);  // raised to the minimum rank
}

BOOST_AUTO_TEST_CASE(minimum_rank_and_clamp) {
  BOOST_TEST(rank_policy{}.resolve(256, 2048) == 32);   // ⌊12.8⌋ raised to 32
  BOOST_TEST(policy(0.001).resolve(100, 100) == 32);    // ⌊0.1⌋ = 0, still raised
  BOOST_TEST(rank_policy{}.resolve(16, 4096) == 16);    // min rank clamped to min extent
  BOOST_TEST(policy(0.05, 100).resolve(64, 48) == 48);  // min rank above min extent
  BOOST_TEST(policy(1000).resolve(64, 48) == 48);       // absolute rank above min extent
  BOOST_TEST(policy(1e300).resolve(64, 48) == 48);      // no overflow on the way
  BOOST_TEST(policy(5, 0).resolve(1, 30) == 1);         // d_in = 1
  BOOST_TEST(rank_policy{}.resolve(30, 1) == 1);        // d_out = 1: 32 clamped to 1
  BOOST_TEST(policy(0.5, 0).resolve(30, 1) == 0);       // ⌊0.5⌋ = 0 and no minimum
}

BOOST_AUTO_TEST_CASE(rank_zero_disables_compensation) {
  BOOST_TEST(policy(0.0).resolve(4096, 4096) == 0);
  BOOST_TEST(policy(0.0, 32, 0.9).resolve(4096, 4096) == 0);
  const Eigen::VectorXd sigma = Eigen::VectorXd::Ones(10);
  BOOST_TEST(policy(0.0, 32, 0.5).resolve(10, 10, sigma, 10.0) == 0);
}

BOOST_AUTO_TEST_CASE(invalid_policies_are_rejected) {
  const auto invalid = [](const error& e) { return e.code() == errc::invalid_argument; };
  BOOST_CHECK_EXCEPTION(policy(-0.1).resolve(10, 10), error, invalid);
  BOOST_CHECK_EXCEPTION(policy(std::nan("")).resolve(10, 10), error, invalid);
  BOOST_CHECK_EXCEPTION(policy(std::numeric_limits<double>::infinity()).resolve(10, 10), error,
                        invalid);
  BOOST_CHECK_EXCEPTION(policy(0.1, -1).resolve(10, 10), error, invalid);
  BOOST_CHECK_EXCEPTION(policy(0.1, 0, 1.5).resolve(10, 10), error, invalid);
  BOOST_CHECK_EXCEPTION(policy(0.1, 0, -0.5).resolve(10, 10), error, invalid);
  BOOST_CHECK_EXCEPTION(policy(0.1).resolve(0, 10), error, invalid);
  BOOST_CHECK_EXCEPTION(policy(0.1, 0, 0.5).resolve(10, 10, Eigen::VectorXd::Ones(3), -1.0), error,
                        invalid);
}

BOOST_AUTO_TEST_CASE(energy_picks_the_smallest_rank_reaching_the_fraction) {
  Eigen::VectorXd sigma(5);
  sigma << 3, 2, 1, 0.5, 0.25;  // energies 9, 4, 1, 0.25, 0.0625: total 14.3125
  const double total = sigma.squaredNorm();
  BOOST_TEST(policy(1.0, 0, 0.5).resolve(5, 5, sigma, total) == 1);   // 9 >= 7.16
  BOOST_TEST(policy(1.0, 0, 0.9).resolve(5, 5, sigma, total) == 2);   // 13 >= 12.88
  BOOST_TEST(policy(1.0, 0, 0.95).resolve(5, 5, sigma, total) == 3);  // 14 >= 13.6
  BOOST_TEST(policy(1.0, 0, 1.0).resolve(5, 5, sigma, total) == 5);
  BOOST_TEST(policy(1.0, 3, 0.5).resolve(5, 5, sigma, total) == 3);   // at least min_rank
  BOOST_TEST(policy(2.0, 0, 0.95).resolve(5, 5, sigma, total) == 2);  // at most the cap
  // Only the leading values known (randomized path): a target they do not reach gives the cap.
  BOOST_TEST(policy(2.0, 0, 0.95).resolve(5, 5, sigma.head(2), total) == 2);
  BOOST_TEST(policy(4.0, 0, 0.99).resolve(100, 100, sigma.head(3), total) == 4);
  // Nothing to capture: the minimum rank.
  BOOST_TEST(policy(1.0, 2, 0.9).resolve(5, 5, Eigen::VectorXd::Zero(5), 0.0) == 2);
  // energy = 0 ignores the spectrum.
  BOOST_TEST(policy(4.0, 0, 0.0).resolve(5, 5, sigma, total) == 4);
}

BOOST_AUTO_TEST_CASE(effective_rank_of_known_spectra) {
  for (int k : {1, 2, 7, 64}) {
    const Eigen::VectorXd equal = Eigen::VectorXd::Constant(k, 3.5);
    BOOST_TEST(std::abs(effective_rank(equal) - k) < 1e-9 * k, "k = " << k);
    // Trailing zeros and values <= 1e-15 are ignored.
    Eigen::VectorXd padded = Eigen::VectorXd::Zero(k + 3);
    padded.head(k) = equal;
    padded[k] = 1e-16;
    BOOST_TEST(std::abs(effective_rank(padded) - k) < 1e-9 * k);
  }
  // Independent formula without the 1e-12 guard: exp of the Shannon entropy of σ/Σσ.
  Eigen::VectorXd geometric(20);
  double sum = 0;
  for (int i = 0; i < 20; ++i) sum += geometric[i] = std::pow(0.7, i);
  double entropy = 0;
  for (int i = 0; i < 20; ++i) entropy -= geometric[i] / sum * std::log(geometric[i] / sum);
  BOOST_TEST(std::abs(effective_rank(geometric) - std::exp(entropy)) < 1e-9);
  BOOST_TEST(effective_rank(Eigen::VectorXd::Zero(4)) == 0);
  BOOST_TEST(effective_rank(Eigen::VectorXd()) == 0);
  Eigen::VectorXd bad = Eigen::VectorXd::Ones(3);
  bad[1] = -1;
  BOOST_CHECK_THROW(effective_rank(bad), error);
}

BOOST_AUTO_TEST_SUITE_END()
