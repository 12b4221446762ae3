// checks.hpp: input validation and Gram-metric traces shared by the linalg headers.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <masquant/config.hpp>
#include <masquant/detail/finite.hpp>
#include <masquant/error.hpp>
#include <masquant/parallel.hpp>

namespace masquant::detail {

/// Whether every strip(s), s in [0, count), returns true; the strips on `parallel` when it is
/// set. The checks below scan large matrices this way and, only when a strip fails, rescan
/// serially to name the first bad entry.
template <class Strip>
bool all_strips(index_t count, const Strip& strip, const parallel_for_fn& parallel) {
  if (!parallel || count <= 1) {
    for (index_t s = 0; s < count; ++s)
      if (!strip(s)) return false;
    return true;
  }
  std::atomic<bool> ok{true};
  parallel(count, [&](index_t s) {
    if (ok.load(std::memory_order_relaxed) && !strip(s)) ok.store(false, std::memory_order_relaxed);
  });
  return ok.load();
}

/// Throws errc::non_finite naming the first NaN/Inf of `m` in row order (operation `op`,
/// operand `name`), in the message format of detail/finite.hpp. The scan runs on `parallel`, in
/// strips of 256 columns, when it is set.
template <class Derived>
void check_finite(const char* op, const char* name, const Eigen::MatrixBase<Derived>& m,
                  const parallel_for_fn& parallel = {}) {
  constexpr index_t strip = 256;
  const auto strip_finite = [&](index_t s) {
    return m.middleCols(s * strip, std::min(strip, m.cols() - s * strip)).allFinite();
  };
  if (all_strips((m.cols() + strip - 1) / strip, strip_finite, parallel)) return;
  for (index_t i = 0; i < m.rows(); ++i)
    for (index_t j = 0; j < m.cols(); ++j)
      if (!std::isfinite(static_cast<double>(m(i, j))))
        raise_non_finite(op, name, m.rows(), m.cols(), static_cast<double>(m(i, j)), i, j);
}

/// Checks that `c` can be a Gram matrix XᵀX: square, finite, symmetric, with a non-negative
/// diagonal and |c_ij| <= sqrt(c_ii c_jj) (the 2x2 minors of a PSD matrix). The tolerance 1e-6
/// relative to sqrt(c_ii c_jj) admits any rounding of an accumulated Gram but rejects a matrix
/// with only one triangle filled. Throws errc::shape_mismatch, non_finite or invalid_argument.
inline void check_gram(const Eigen::Ref<const Eigen::MatrixXd>& c, const char* op, const char* name,
                       const parallel_for_fn& parallel = {}) {
  MASQUANT_CHECK(c.rows() == c.cols() && c.rows() > 0, errc::shape_mismatch, op, ": ", name, " is ",
                 c.rows(), "x", c.cols(), " (a Gram matrix is square and non-empty)");
  const index_t d = c.rows();
  Eigen::VectorXd root(d);
  for (index_t j = 0; j < d; ++j) {
    const double v = c(j, j);
    MASQUANT_CHECK(std::isfinite(v), errc::non_finite, op, ": ", name, " (", d, "x", d,
                   ") diagonal entry ", j, " is ", v);
    MASQUANT_CHECK(v >= 0, errc::invalid_argument, op, ": ", name, " (", d, "x", d,
                   ") diagonal entry ", j, " is negative (", v, "): not a Gram matrix");
    root[j] = std::sqrt(v);
  }
  constexpr double tol = 1e-6;
  const auto pair_ok = [&](index_t i, index_t j) {
    const double a = c(i, j), b = c(j, i), bound = root[i] * root[j];
    return std::isfinite(a) && std::isfinite(b) && std::abs(a - b) <= tol * bound &&
           std::abs(a) <= (1 + tol) * bound;
  };
  constexpr index_t tile = 64;  // pairs (i, j) and (j, i) are read tile by tile to stay in cache
  const auto strip_ok = [&](index_t s) {
    const index_t j0 = s * tile, j1 = std::min(d, j0 + tile);
    for (index_t i0 = j0; i0 < d; i0 += tile) {
      const index_t i1 = std::min(d, i0 + tile);
      for (index_t j = j0; j < j1; ++j)
        for (index_t i = std::max(i0, j + 1); i < i1; ++i)
          if (!pair_ok(i, j)) return false;
    }
    return true;
  };
  if (all_strips((d + tile - 1) / tile, strip_ok, parallel)) return;
  for (index_t j0 = 0; j0 < d; j0 += tile) {
    const index_t j1 = std::min(d, j0 + tile);
    for (index_t i0 = j0; i0 < d; i0 += tile) {
      const index_t i1 = std::min(d, i0 + tile);
      for (index_t j = j0; j < j1; ++j) {
        for (index_t i = std::max(i0, j + 1); i < i1; ++i) {
          if (pair_ok(i, j)) continue;
          const double a = c(i, j), b = c(j, i), bound = root[i] * root[j];
          MASQUANT_CHECK(std::isfinite(a) && std::isfinite(b), errc::non_finite, op, ": ", name,
                         " (", d, "x", d, ") entry (", i, ", ", j, ") or (", j, ", ", i,
                         ") is not finite");
          MASQUANT_CHECK(std::abs(a - b) <= tol * bound, errc::invalid_argument, op, ": ", name,
                         " (", d, "x", d, ") is not symmetric: entry (", i, ", ", j, ") = ", a,
                         " but (", j, ", ", i, ") = ", b);
          raise(errc::invalid_argument,
                cat(op, ": ", name, " (", d, "x", d, ") is not positive semidefinite: |entry (", i,
                    ", ", j, ")| = ", std::abs(a), " exceeds sqrt(diagonal ", i, " * diagonal ", j,
                    ") = ", bound));
        }
      }
    }
  }
}

/// tr(W C Wᵀ) = ‖X W ᵀ‖_F² for C = XᵀX, with W (rows x d) and C (d x d) symmetric. Reads only
/// the lower triangle of C, block column by block column, so it costs rows·d²/2 multiply-adds
/// in GEMMs. C and W should be plain or mapped matrices
/// (an expression would be re-evaluated per block).
template <class CDerived, class WDerived>
double quadratic_trace(const Eigen::MatrixBase<CDerived>& c, const Eigen::MatrixBase<WDerived>& w) {
  MASQUANT_ASSERT(c.rows() == c.cols() && c.rows() == w.cols());
  const index_t d = c.rows(), n = w.rows();
  constexpr index_t block = 256;
  Eigen::MatrixXd y(n, std::min(block, d));
  double sum = 0;
  for (index_t j0 = 0; j0 < d; j0 += block) {
    const index_t b = std::min(block, d - j0), below = d - j0 - b;
    auto yb = y.leftCols(b);
    // Diagonal block once, the block below the diagonal twice (it stands for both triangles).
    yb.noalias() =
        w.middleCols(j0, b) * c.block(j0, j0, b, b).template selfadjointView<Eigen::Lower>();
    if (below > 0) yb.noalias() += 2.0 * (w.rightCols(below) * c.block(j0 + b, j0, below, b));
    sum += w.middleCols(j0, b).cwiseProduct(yb).sum();
  }
  return sum;
}

}  // namespace masquant::detail
