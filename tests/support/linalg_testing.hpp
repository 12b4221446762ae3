// linalg_testing.hpp: random matrices with known structure for the linalg tests. Not installed.
#pragma once

#include <Eigen/Core>
#include <Eigen/QR>
#include <cmath>
#include <cstdint>
#include <masquant/config.hpp>
#include <random>

namespace masquant::testing {

/// rows x cols matrix of N(0, 1) doubles from a fixed seed.
inline Eigen::MatrixXd gaussian(index_t rows, index_t cols, std::uint64_t seed) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<double> dist(0.0, 1.0);
  Eigen::MatrixXd m(rows, cols);
  for (index_t j = 0; j < cols; ++j)
    for (index_t i = 0; i < rows; ++i) m(i, j) = dist(gen);
  return m;
}

/// n x k matrix with orthonormal columns (k <= n), Haar-like from a fixed seed.
inline Eigen::MatrixXd orthonormal(index_t n, index_t k, std::uint64_t seed) {
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(gaussian(n, k, seed));
  return qr.householderQ() * Eigen::MatrixXd::Identity(n, k);
}

/// tokens x d activations whose covariance has a geometrically decaying spectrum
/// (ratio `decay` per direction) in a random basis: the structure that makes whitened weight
/// differences low-rank (algorithm.md §6.6).
inline Eigen::MatrixXd anisotropic_tokens(index_t tokens, index_t d, double decay,
                                          std::uint64_t seed) {
  Eigen::VectorXd scale(d);
  for (index_t j = 0; j < d; ++j) scale[j] = std::pow(decay, static_cast<double>(j));
  return gaussian(tokens, d, seed) * scale.asDiagonal() * orthonormal(d, d, seed + 1).transpose();
}

/// Largest absolute entry of a − b relative to the largest absolute entry of b.
inline double rel_max_diff(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  const double scale = b.cwiseAbs().maxCoeff();
  return (a - b).cwiseAbs().maxCoeff() / (scale > 0 ? scale : 1.0);
}

}  // namespace masquant::testing
