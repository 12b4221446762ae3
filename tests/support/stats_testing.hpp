// stats_testing.hpp: independent references and helpers for the stats tests (long double math).
#pragma once

#include <boost/test/unit_test.hpp>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <masquant/error.hpp>
#include <masquant/stats/channel_stats.hpp>
#include <masquant/tensor/view.hpp>
#include <random>
#include <string>
#include <vector>

#include "support/testing.hpp"

namespace masquant::testing {

/// Per-channel statistics of a block computed naively in long double (two-pass variance).
struct reference_moments {
  std::vector<double> min, max, absmax, mean, var;
  std::int64_t count = 0;
};

/// Reference statistics of the rows `rows` of x (all rows when empty).
inline reference_moments reference_stats(matrix_view<const float> x,
                                         const std::vector<index_t>& rows) {
  const auto nc = static_cast<std::size_t>(x.cols());
  reference_moments r;
  r.min.assign(nc, 0.0);
  r.max.assign(nc, 0.0);
  r.absmax.assign(nc, 0.0);
  r.mean.assign(nc, 0.0);
  r.var.assign(nc, 0.0);
  r.count = static_cast<std::int64_t>(rows.size());
  if (rows.empty()) return r;
  for (index_t j = 0; j < x.cols(); ++j) {
    const auto c = static_cast<std::size_t>(j);
    long double sum = 0, lo = x(rows[0], j), hi = lo;
    for (index_t i : rows) {
      const long double v = x(i, j);
      sum += v;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
    const long double mean = sum / static_cast<long double>(rows.size());
    long double m2 = 0;
    for (index_t i : rows) {
      const long double d = static_cast<long double>(x(i, j)) - mean;
      m2 += d * d;
    }
    r.min[c] = static_cast<double>(lo);
    r.max[c] = static_cast<double>(hi);
    r.absmax[c] = std::max(std::fabs(r.min[c]), std::fabs(r.max[c]));
    r.mean[c] = static_cast<double>(mean);
    r.var[c] = static_cast<double>(m2 / static_cast<long double>(rows.size()));
  }
  return r;
}

inline std::vector<index_t> all_rows(index_t n) {
  std::vector<index_t> rows(static_cast<std::size_t>(n));
  for (index_t i = 0; i < n; ++i) rows[static_cast<std::size_t>(i)] = i;
  return rows;
}

/// Reference Gram matrix Σ x xᵀ over `rows` of x, in long double.
inline std::vector<long double> reference_gram(matrix_view<const float> x,
                                               const std::vector<index_t>& rows) {
  const index_t c = x.cols();
  std::vector<long double> g(static_cast<std::size_t>(c * c), 0.0L);
  for (index_t t : rows)
    for (index_t i = 0; i < c; ++i)
      for (index_t j = 0; j < c; ++j)
        g[static_cast<std::size_t>(i * c + j)] +=
            static_cast<long double>(x(t, i)) * static_cast<long double>(x(t, j));
  return g;
}

/// rows x cols matrix of integers in [-range, range] as floats (their Gram sums are exact).
inline matrix<float> random_integers(index_t rows, index_t cols, int range, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::uniform_int_distribution<int> dist(-range, range);
  matrix<float> m(rows, cols);
  for (auto& v : m.data) v = static_cast<float>(dist(gen));
  return m;
}

/// Bit pattern equality of two doubles (distinguishes -0 from +0).
inline bool same_bits(double a, double b) {
  return std::memcmp(&a, &b, sizeof(double)) == 0;
}

/// Checks every accessor of `s` against the reference: min, max, absmax exactly, mean within
/// `mean_tol` times (|mean| + std), variance within `var_tol` relative.
inline void check_against(const channel_stats& s, const reference_moments& r, double mean_tol,
                          double var_tol) {
  BOOST_TEST(s.count() == r.count);
  const Eigen::VectorXd mn = s.min(), mx = s.max(), am = s.absmax(), mean = s.mean(),
                        var = s.variance();
  for (index_t j = 0; j < s.channels(); ++j) {
    const auto c = static_cast<std::size_t>(j);
    BOOST_TEST(mn[j] == r.min[c]);
    BOOST_TEST(mx[j] == r.max[c]);
    BOOST_TEST(am[j] == r.absmax[c]);
    const double scale = std::fabs(r.mean[c]) + std::sqrt(r.var[c]);
    BOOST_TEST(std::fabs(mean[j] - r.mean[c]) <= mean_tol * scale, "channel " << j);
    BOOST_TEST(std::fabs(var[j] - r.var[c]) <= var_tol * r.var[c], "channel " << j);
  }
}

/// Largest |m(i, j)| (a loop: Eigen's maxCoeff trips GCC 12's -Wmaybe-uninitialized with
/// AVX-512).
inline double max_abs(const Eigen::MatrixXd& m) {
  double out = 0.0;
  for (index_t j = 0; j < m.cols(); ++j)
    for (index_t i = 0; i < m.rows(); ++i) out = std::max(out, std::fabs(m(i, j)));
  return out;
}

/// Runs f, which must throw masquant::error with `code` and a message containing `part`.
template <class F>
void expect_error(F&& f, errc code, const std::string& part) {
  try {
    f();
    BOOST_ERROR("no error thrown; expected " << to_string(code) << " with '" << part << "'");
  } catch (const error& e) {
    BOOST_TEST((e.code() == code), "code " << to_string(e.code()) << ": " << e.what());
    BOOST_TEST(std::string(e.what()).find(part) != std::string::npos,
               "'" << e.what() << "' lacks '" << part << "'");
  }
}

}  // namespace masquant::testing
