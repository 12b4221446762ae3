// randomized.hpp: seeded Gaussian sketches and the randomized range finder behind the
// randomized compensation path.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/parallel.hpp>
#include <vector>

namespace masquant::detail {

/// splitmix64 (Steele, Lea, Flood 2014): a tiny generator whose output is the same on every
/// platform, unlike std::normal_distribution's.
inline std::uint64_t splitmix64_next(std::uint64_t& state) noexcept {
  std::uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/// rows x cols matrix of independent N(0, 1) draws (Box–Muller), filled in column-major order;
/// the same seed gives the same matrix.
inline Eigen::MatrixXd gaussian_matrix(index_t rows, index_t cols, std::uint64_t seed) {
  Eigen::MatrixXd m(rows, cols);
  std::uint64_t state = seed;
  const auto uniform = [&state] {  // in (0, 1]: never 0, so the logarithm below is finite
    return static_cast<double>((splitmix64_next(state) >> 11) + 1) * 0x1.0p-53;
  };
  const double two_pi = 6.283185307179586;
  double* out = m.data();
  const index_t size = m.size();
  for (index_t i = 0; i < size; i += 2) {
    const double radius = std::sqrt(-2.0 * std::log(uniform())), angle = two_pi * uniform();
    out[i] = radius * std::cos(angle);
    if (i + 1 < size) out[i + 1] = radius * std::sin(angle);
  }
  return m;
}

/// task(first, height) for the fixed blocks of `block` rows that cover [0, rows), on `parallel`
/// when it is set. The blocks do not depend on the thread count, so every product over them is
/// computed the same way (same Eigen blocking, same rounding) on one thread or many.
template <class Task>
void for_each_row_block(index_t rows, index_t block, const parallel_for_fn& parallel,
                        const Task& task) {
  const index_t blocks = (rows + block - 1) / block;
  const auto run = [&](index_t b) { task(b * block, std::min(block, rows - b * block)); };
  // An Eigen built with OpenMP (a consumer's -fopenmp) threads each product itself; running the
  // blocks on `parallel` as well would nest the two (docs/performance.md, "Calibration").
  if (parallel && blocks > 1 && Eigen::nbThreads() == 1) {
    parallel(blocks, run);
  } else {
    for (index_t b = 0; b < blocks; ++b) run(b);
  }
}

/// dst = lhs · rhs (dst already sized), as products of fixed 256-row slices of lhs with rhs,
/// run on `parallel` when it is set. lhs is the large operand (d x d) and rhs the thin sketch:
/// each slice packs only its own rows of lhs.
template <class Lhs, class Rhs>
void product_by_row_slices(Eigen::MatrixXd& dst, const Lhs& lhs, const Rhs& rhs,
                           const parallel_for_fn& parallel) {
  for_each_row_block(lhs.rows(), 256, parallel, [&](index_t r, index_t h) {
    dst.middleRows(r, h).noalias() = lhs.middleRows(r, h) * rhs;
  });
}

/// Rows per block of orthonormalize()'s products.
inline constexpr index_t orthonormalize_block_rows = 1024;

/// YᵀY (k x k; its lower triangle) as the sum, in block order, of the Grams of fixed row blocks
/// of y, the blocks on `parallel` when it is set.
inline Eigen::MatrixXd gram_by_row_blocks(const Eigen::MatrixXd& y,
                                          const parallel_for_fn& parallel) {
  const index_t k = y.cols();
  std::vector<Eigen::MatrixXd> part(static_cast<std::size_t>(
      (y.rows() + orthonormalize_block_rows - 1) / orthonormalize_block_rows));
  for_each_row_block(y.rows(), orthonormalize_block_rows, parallel, [&](index_t r, index_t h) {
    Eigen::MatrixXd& g = part[static_cast<std::size_t>(r / orthonormalize_block_rows)];
    g.setZero(k, k);
    g.selfadjointView<Eigen::Lower>().rankUpdate(y.middleRows(r, h).transpose());
  });
  Eigen::MatrixXd g = Eigen::MatrixXd::Zero(k, k);
  for (const Eigen::MatrixXd& p : part) g += p;
  return g;
}

/// One CholeskyQR pass: q = y·R⁻¹ with RᵀR = yᵀy, the solve on `parallel` in fixed row blocks.
/// False, q untouched, when the Cholesky factor is singular or has a pivot below 1e-6 of the
/// largest (cond(y) above ~1e6: the pass would lose orthogonality to rounding).
inline bool cholesky_qr_pass(const Eigen::MatrixXd& y, Eigen::MatrixXd& q,
                             const parallel_for_fn& parallel) {
  const Eigen::LLT<Eigen::MatrixXd> llt(gram_by_row_blocks(y, parallel));
  if (llt.info() != Eigen::Success) return false;
  const Eigen::MatrixXd r = llt.matrixU();
  const double largest = r.diagonal().maxCoeff(), smallest = r.diagonal().minCoeff();
  if (!(largest > 0) || !(smallest >= 1e-6 * largest)) return false;
  q.resize(y.rows(), y.cols());
  for_each_row_block(y.rows(), orthonormalize_block_rows, parallel, [&](index_t first, index_t h) {
    auto qb = q.middleRows(first, h);
    qb = y.middleRows(first, h);
    r.triangularView<Eigen::Upper>().solveInPlace<Eigen::OnTheRight>(qb);
  });
  return true;
}

/// q = an orthonormal basis of the columns of y (d x k, k <= d, full column rank in practice).
/// CholeskyQR2 (two CholeskyQR passes; orthogonal to rounding when cond(y) is below ~1e6), whose
/// products run on `parallel`: a Householder QR of a 18944 x 189 block is 0.2 s on one thread,
/// a tenth of a compensation's serial time. Falls back to Householder QR (serial) when y is
/// too ill-conditioned or rank-deficient for it. The same result on any number of threads.
inline void orthonormalize(const Eigen::MatrixXd& y, Eigen::MatrixXd& q,
                           const parallel_for_fn& parallel) {
  Eigen::MatrixXd first;
  if (cholesky_qr_pass(y, first, parallel) && cholesky_qr_pass(first, q, parallel)) return;
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(y);
  q.setIdentity(y.rows(), y.cols());  // thin Q: the reflectors applied to the first k columns of I
  qr.householderQ().applyThisOnTheLeft(q);
}

/// The top-k right singular subspace of G = T·ΔWᵀ for any T with TᵀT = C + shift·I, found
/// from C itself: G never exists and T is never factorised.
struct top_singular {
  Eigen::VectorXd sigma;  ///< k approximate singular values of G, descending
  Eigen::MatrixXd v;      ///< d_out x k: the matching right singular vectors (orthonormal)
  Eigen::MatrixXd p;      ///< d_in x k: ΔWᵀ·v (so that L = p·Σ⁻¹ and T·p = U·Σ)
};

/// Randomized subspace iteration on A = GᵀG = ΔW (C + shift·I) ΔWᵀ (d_out x d_out): Q spans
/// A^(q+1)·Ω for a seeded Gaussian Ω (d_out x k), re-orthonormalised by Householder QR after
/// every application of A, then a Rayleigh–Ritz step on QᵀAQ gives the singular values and
/// vectors. A null `gram` stands for TᵀT = I (the unwhitened SVD of ΔWᵀ). dw and gram should be
/// plain or mapped matrices (they are read several times).
/// Costs (2q + 3)·d_in·d_out·k + (q + 2)·d_in²·k multiply-adds, all in GEMMs (run on
/// `parallel` in row slices: the result does not depend on the thread count), plus q + 1
/// orthonormalizations of d_out x k (orthonormalize(): about 4·d_out·k² more, also parallel).
template <class DWDerived, class GramDerived>
top_singular randomized_top_singular(const Eigen::MatrixBase<DWDerived>& dw,
                                     const Eigen::MatrixBase<GramDerived>* gram, double shift,
                                     index_t k, int power_iterations, std::uint64_t seed,
                                     const parallel_for_fn& parallel = {}) {
  const index_t d_out = dw.rows(), d_in = dw.cols();
  MASQUANT_ASSERT(k >= 1 && k <= d_out && k <= d_in);
  Eigen::MatrixXd q = gaussian_matrix(d_out, k, seed);
  Eigen::MatrixXd p(d_in, k), s(d_in, k), y(d_out, k);
  const auto whitened = [&] {  // s = (C + shift·I)·p, the action of TᵀT
    if (gram == nullptr) {
      s = p;
    } else {
      product_by_row_slices(s, *gram, p, parallel);
      if (shift != 0) s += shift * p;
    }
  };
  for (int it = 0; it <= power_iterations; ++it) {
    product_by_row_slices(p, dw.transpose(), q, parallel);
    whitened();
    product_by_row_slices(y, dw, s, parallel);
    orthonormalize(y, q, parallel);
  }
  product_by_row_slices(p, dw.transpose(), q, parallel);
  whitened();
  Eigen::MatrixXd h = p.transpose() * s;  // QᵀAQ, k x k
  h = 0.5 * (h + h.transpose()).eval();
  Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(h);
  top_singular out;
  out.sigma.resize(k);
  Eigen::MatrixXd z(k, k);
  for (index_t i = 0; i < k; ++i) {  // the solver sorts ascending; we want descending
    out.sigma[i] = std::sqrt(std::max(0.0, eig.eigenvalues()[k - 1 - i]));
    z.col(i) = eig.eigenvectors().col(k - 1 - i);
  }
  out.v.noalias() = q * z;
  out.p.noalias() = p * z;
  return out;
}

}  // namespace masquant::detail
