// Tests of linalg/compensation.hpp against independent references: token-level output errors,
// SVDs of X̃ΔWᵀ (whose singular values are those of T·ΔWᵀ), and matrices built with a known
// whitened spectrum (algorithm.md §11 items 4–7).
#include <Eigen/LU>
#include <Eigen/SVD>
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <masquant/linalg/compensation.hpp>
#include <masquant/parallel.hpp>
#include <masquant/tensor/eigen.hpp>
#include <string>
#include <support/linalg_testing.hpp>

using namespace masquant;
using masquant::testing::anisotropic_tokens;
using masquant::testing::gaussian;
using masquant::testing::orthonormal;
using masquant::testing::rel_max_diff;

namespace {

rank_policy policy(double rank, index_t min_rank = 0, double energy = 0) {
  rank_policy p;
  p.rank = rank;
  p.min_rank = min_rank;
  p.energy = energy;
  return p;
}

whitening_options white(whitening_method method, double damping = 1e-6) {
  whitening_options w;
  w.method = method;
  w.damping = damping;
  return w;
}

svd_options path(svd_method method, std::uint64_t seed = 0) {
  svd_options s;
  s.method = method;
  s.seed = seed;
  s.residual = residual_mode::always;
  return s;
}

/// ‖X̃(ΔWᵀ − L·R)‖_F from the tokens themselves.
double token_residual(const Eigen::MatrixXd& x, const Eigen::MatrixXd& dw, const compensation& c) {
  return (x * (dw.transpose() - c.L * c.R)).norm();
}

/// ‖X̃(ΔWᵀ − B)‖_F for B the rank-r truncated SVD of ΔWᵀ (the unwhitened compensation).
double unwhitened_svd_residual(const Eigen::MatrixXd& x, const Eigen::MatrixXd& dw, index_t r) {
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(dw.transpose(), Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::MatrixXd b = svd.matrixU().leftCols(r) * svd.singularValues().head(r).asDiagonal() *
                            svd.matrixV().leftCols(r).transpose();
  return (x * (dw.transpose() - b)).norm();
}

/// A problem with a prescribed whitened spectrum: C = TᵀT for a random well-conditioned upper
/// triangular T, and ΔWᵀ = T⁻¹·U·diag(sigma)·Vᵀ, so that T·ΔWᵀ has singular values `sigma`.
struct known_spectrum {
  Eigen::MatrixXd c, dw;
  Eigen::VectorXd sigma;
};

known_spectrum make_known_spectrum(index_t d_in, index_t d_out, double decay, std::uint64_t seed) {
  const index_t n = std::min(d_in, d_out);
  Eigen::MatrixXd t = 0.3 / std::sqrt(static_cast<double>(d_in)) * gaussian(d_in, d_in, seed);
  t = t.triangularView<Eigen::StrictlyUpper>();
  for (index_t i = 0; i < d_in; ++i) t(i, i) = 1.0 + static_cast<double>(i % 7) / 7.0;
  known_spectrum k;
  k.sigma.resize(n);
  for (index_t i = 0; i < n; ++i) k.sigma[i] = std::pow(decay, static_cast<double>(i));
  const Eigen::MatrixXd g = orthonormal(d_in, n, seed + 1) * k.sigma.asDiagonal() *
                            orthonormal(d_out, n, seed + 2).transpose();
  k.dw = t.triangularView<Eigen::Upper>().solve(g).transpose();
  k.c = t.transpose() * t;
  return k;
}

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

BOOST_AUTO_TEST_SUITE(linalg_compensation)

// §11.4: at full rank with C ≻ 0, L·R = ΔWᵀ for every whitening.
BOOST_AUTO_TEST_CASE(full_rank_compensation_is_exact) {
  for (auto [d_out, d_in] : {std::pair<index_t, index_t>{16, 24}, {24, 16}, {20, 20}}) {
    const Eigen::MatrixXd x = anisotropic_tokens(100, d_in, 0.8, 1);
    const Eigen::MatrixXd c = x.transpose() * x;
    const Eigen::MatrixXd dw = gaussian(d_out, d_in, 2);
    for (auto method :
         {whitening_method::cholesky, whitening_method::eigen, whitening_method::none}) {
      const compensation cmc = compute_compensation(dw, c, policy(1.0), white(method));
      BOOST_TEST(cmc.rank == std::min(d_in, d_out));
      BOOST_TEST(cmc.method == svd_method::exact);
      BOOST_TEST(cmc.whitening == method);
      BOOST_TEST(cmc.L.rows() == d_in);
      BOOST_TEST(cmc.R.cols() == d_out);
      BOOST_TEST(rel_max_diff(cmc.L * cmc.R, dw.transpose()) < 1e-10,
                 to_string(method) << " " << d_out << "x" << d_in);
      BOOST_TEST(cmc.relative_residual.has_value());
      BOOST_TEST(*cmc.relative_residual < 1e-6);
    }
  }
}

// §11.4 end to end: with the shared quantized weight Ŵ = Q(W·diag(s_ref)) and a full-rank
// compensation, a modality-m token gets exactly x·Wᵀ; without it, the mismatch of §2.
BOOST_AUTO_TEST_CASE(full_rank_compensation_restores_the_float_output) {
  const index_t d_in = 20, d_out = 12, tokens = 80;
  const Eigen::MatrixXd x = anisotropic_tokens(tokens, d_in, 0.85, 3);
  row_matrix<float> w = gaussian(d_out, d_in, 4).cast<float>();
  Eigen::VectorXf s_ref(d_in), s_m(d_in);
  for (index_t j = 0; j < d_in; ++j) {
    s_ref[j] = 0.5f + 0.05f * static_cast<float>(j);
    s_m[j] = 2.0f - 0.07f * static_cast<float>(j);
  }
  // A symmetric per-row 4-bit grid stands in for Q_w (only "Ŵ differs from W·diag(s_ref)" matters).
  const Eigen::MatrixXd smoothed_ref = w.cast<double>() * s_ref.cast<double>().asDiagonal();
  row_matrix<float> w_shared(d_out, d_in);
  for (index_t o = 0; o < d_out; ++o) {
    const double step = smoothed_ref.row(o).cwiseAbs().maxCoeff() / 7;
    for (index_t i = 0; i < d_in; ++i)
      w_shared(o, i) = static_cast<float>(std::nearbyint(smoothed_ref(o, i) / step) * step);
  }
  const Eigen::MatrixXd dw = delta_weight(as_eigen(view_of(w)), s_m, w_shared);
  const Eigen::MatrixXd x_m = x * s_m.cast<double>().cwiseInverse().asDiagonal();  // x ⊘ s_m
  const Eigen::MatrixXd c = smooth_gram(x.transpose() * x, s_m);
  const Eigen::MatrixXd want = x * w.cast<double>().transpose();
  const Eigen::MatrixXd shared_t = w_shared.cast<double>().transpose();

  const compensation full = compute_compensation(dw, c, policy(1.0));
  BOOST_TEST(rel_max_diff(x_m * (shared_t + full.L * full.R), want) < 1e-10);

  const compensation off =
      compute_compensation(dw, c, policy(0.0), {}, path(svd_method::automatic));
  BOOST_TEST(off.rank == 0);
  BOOST_TEST(off.L.rows() == d_in);
  BOOST_TEST(off.L.cols() == 0);
  BOOST_TEST(off.R.rows() == 0);
  BOOST_TEST(off.R.cols() == d_out);
  BOOST_TEST(off.singular_values.size() == 0);
  BOOST_TEST(off.effective_rank == 0);
  BOOST_TEST(*off.relative_residual == 1.0);
  BOOST_TEST((x_m * shared_t - want).norm() > 1e-2 * want.norm());
}

// §11.5: the whitened residual is √Σ_{k>r}σ_k² and no larger than the unwhitened SVD's.
BOOST_AUTO_TEST_CASE(eckart_young_in_the_activation_metric) {
  const index_t d_in = 40, d_out = 30, tokens = 300, r = 5;
  const Eigen::MatrixXd x = anisotropic_tokens(tokens, d_in, 0.85, 5);
  const Eigen::MatrixXd c = x.transpose() * x;
  const Eigen::MatrixXd dw = gaussian(d_out, d_in, 6);
  // X̃ΔWᵀ = (X̃T⁻¹)·TΔWᵀ with X̃T⁻¹ orthonormal: same singular values as T·ΔWᵀ (λ = 0).
  const Eigen::VectorXd sigma =
      Eigen::JacobiSVD<Eigen::MatrixXd>(x * dw.transpose()).singularValues();
  const compensation cmc = compute_compensation(dw, c, policy(static_cast<double>(r)),
                                                white(whitening_method::cholesky, 0.0));
  BOOST_TEST(cmc.rank == r);
  BOOST_TEST(cmc.singular_values.size() == d_out);
  BOOST_TEST((cmc.singular_values - sigma).cwiseAbs().maxCoeff() < 1e-11 * sigma[0]);

  const double residual = token_residual(x, dw, cmc);
  const double optimum = sigma.tail(d_out - r).norm();
  BOOST_TEST(std::abs(residual - optimum) < 1e-9 * optimum);
  BOOST_TEST(std::abs(*cmc.relative_residual - residual / (x * dw.transpose()).norm()) < 1e-9);

  // The unwhitened compensation (method none) is the truncated SVD of ΔWᵀ, and worse here.
  const compensation plain =
      compute_compensation(dw, c, policy(static_cast<double>(r)), white(whitening_method::none));
  const double plain_residual = token_residual(x, dw, plain);
  BOOST_TEST(std::abs(plain_residual - unwhitened_svd_residual(x, dw, r)) < 1e-9 * plain_residual);
  BOOST_TEST(residual <= plain_residual);
  BOOST_TEST(residual < 0.9 * plain_residual);  // anisotropic tokens: whitening matters
  BOOST_TEST(std::abs(*plain.relative_residual - plain_residual / (x * dw.transpose()).norm()) <
             1e-9);

  // No other rank-r candidate does better: perturbations and random projections of ΔWᵀ.
  for (std::uint64_t seed = 10; seed < 15; ++seed) {
    const Eigen::MatrixXd v = orthonormal(d_out, r, seed);
    BOOST_TEST(residual <= (x * (dw.transpose() - dw.transpose() * v * v.transpose())).norm());
    compensation nudged = cmc;
    nudged.L += 1e-3 * gaussian(d_in, r, seed) * cmc.L.cwiseAbs().maxCoeff();
    BOOST_TEST(residual <= token_residual(x, dw, nudged));
  }
}

BOOST_AUTO_TEST_CASE(cholesky_and_eigen_give_the_same_product) {
  const Eigen::MatrixXd x = anisotropic_tokens(150, 30, 0.8, 7);
  const Eigen::MatrixXd c = x.transpose() * x;
  const Eigen::MatrixXd dw = gaussian(25, 30, 8);
  const compensation chol =
      compute_compensation(dw, c, policy(6), white(whitening_method::cholesky));
  const compensation eig = compute_compensation(dw, c, policy(6), white(whitening_method::eigen));
  BOOST_TEST(chol.method == svd_method::exact);
  BOOST_TEST(rel_max_diff(chol.L * chol.R, eig.L * eig.R) < 1e-10);
  BOOST_TEST(rel_max_diff(chol.singular_values, eig.singular_values) < 1e-12);
  BOOST_TEST(std::abs(*chol.relative_residual - *eig.relative_residual) < 1e-10);
}

// The prescribed-spectrum construction itself, through the exact path.
BOOST_AUTO_TEST_CASE(exact_path_recovers_a_prescribed_spectrum) {
  const known_spectrum k = make_known_spectrum(60, 45, 0.8, 20);
  const compensation cmc =
      compute_compensation(k.dw, k.c, policy(10), white(whitening_method::eigen, 0.0));
  BOOST_TEST(rel_max_diff(cmc.singular_values, k.sigma) < 1e-12);
  // Residual² = Σ_{k>r}σ_k² over total Σσ_k² (damping 0: the Gram metric is the whitened one).
  const double want = k.sigma.tail(35).norm() / k.sigma.norm();
  BOOST_TEST(std::abs(*cmc.relative_residual - want) < 1e-9);
}

// §11 (randomized truncated SVD): top-r singular values as the exact ones, deterministic seeds.
BOOST_AUTO_TEST_CASE(randomized_matches_exact_on_a_decaying_spectrum) {
  const known_spectrum k = make_known_spectrum(300, 260, 0.85, 30);
  const index_t r = 20;
  const auto options = white(whitening_method::cholesky, 0.0);
  const compensation fast =
      compute_compensation(k.dw, k.c, policy(r), options, path(svd_method::automatic));
  BOOST_TEST(fast.method == svd_method::randomized);  // 4·(20 + 10) <= 260
  BOOST_TEST(fast.rank == r);
  BOOST_TEST(fast.singular_values.size() == r + 10);
  for (index_t i = 0; i < r; ++i)
    BOOST_TEST(std::abs(fast.singular_values[i] - k.sigma[i]) < 1e-8 * k.sigma[i], "i = " << i);

  const compensation exact =
      compute_compensation(k.dw, k.c, policy(r), options, path(svd_method::exact));
  BOOST_TEST(exact.method == svd_method::exact);
  BOOST_TEST(rel_max_diff(fast.L * fast.R, exact.L * exact.R) < 1e-4);
  BOOST_TEST(*fast.relative_residual >= *exact.relative_residual * (1 - 1e-9));
  BOOST_TEST(*fast.relative_residual <= *exact.relative_residual * (1 + 1e-6));

  // Same seed: bit-identical; another seed: different rounding, same accuracy.
  const compensation again =
      compute_compensation(k.dw, k.c, policy(r), options, path(svd_method::automatic));
  BOOST_TEST((again.L == fast.L));
  BOOST_TEST((again.R == fast.R));
  BOOST_TEST((again.singular_values == fast.singular_values));
  const compensation other =
      compute_compensation(k.dw, k.c, policy(r), options, path(svd_method::automatic, 99));
  BOOST_TEST(!(other.L == fast.L));
  for (index_t i = 0; i < r; ++i)
    BOOST_TEST(std::abs(other.singular_values[i] - k.sigma[i]) < 1e-8 * k.sigma[i]);
}

BOOST_AUTO_TEST_CASE(randomized_is_the_same_on_any_thread_count) {
  // 400 x 360: every product of the randomized path runs as two row slices (256 + the rest),
  // serially or on two threads; the result must not change by a bit.
  const known_spectrum k = make_known_spectrum(400, 360, 0.95, 50);
  const auto options = white(whitening_method::cholesky, 0.0);
  const compensation one =
      compute_compensation(k.dw, k.c, policy(80), options, path(svd_method::randomized));
  thread_pool pool(2);
  svd_options two = path(svd_method::randomized);
  two.parallel = pool.as_function();
  const compensation par = compute_compensation(k.dw, k.c, policy(80), options, two);
  BOOST_TEST(one.method == svd_method::randomized);
  BOOST_TEST(one.singular_values.size() == 90);
  BOOST_TEST((par.L == one.L));
  BOOST_TEST((par.R == one.R));
  BOOST_TEST((par.singular_values == one.singular_values));
  for (index_t i = 0; i < 20; ++i)
    BOOST_TEST(std::abs(one.singular_values[i] - k.sigma[i]) < 1e-8 * k.sigma[i], "i = " << i);
}

BOOST_AUTO_TEST_CASE(randomized_with_a_full_sketch_equals_exact) {
  const Eigen::MatrixXd x = anisotropic_tokens(100, 20, 0.8, 40);
  const Eigen::MatrixXd c = x.transpose() * x;
  const Eigen::MatrixXd dw = gaussian(20, 20, 41);
  // k = min(15 + 10, 20) = 20: the sketch spans everything.
  const compensation fast =
      compute_compensation(dw, c, policy(15), {}, path(svd_method::randomized));
  const compensation exact = compute_compensation(dw, c, policy(15), {}, path(svd_method::exact));
  BOOST_TEST(fast.method == svd_method::randomized);
  BOOST_TEST(fast.singular_values.size() == 20);
  BOOST_TEST(rel_max_diff(fast.L * fast.R, exact.L * exact.R) < 1e-8);
}

BOOST_AUTO_TEST_CASE(rank_rules_shape_the_factors) {
  const Eigen::MatrixXd x = anisotropic_tokens(100, 64, 0.9, 50);
  const Eigen::MatrixXd c = x.transpose() * x;
  const Eigen::MatrixXd dw = gaussian(48, 64, 51);
  rank_policy defaults;  // 0.05 and min 32: ⌊2.4⌋ raised to 32
  BOOST_TEST(compute_compensation(dw, c, defaults).rank == 32);
  const compensation clamped = compute_compensation(dw, c, policy(1000));
  BOOST_TEST(clamped.rank == 48);
  BOOST_TEST(clamped.L.cols() == 48);
  BOOST_TEST(clamped.R.rows() == 48);
  BOOST_TEST(compute_compensation(dw, c, policy(0.05, 100)).rank == 48);
  BOOST_TEST(compute_compensation(dw, c, policy(0.5)).rank == 24);
  const compensation off = compute_compensation(dw, c, policy(0.0, 32));
  BOOST_TEST(off.rank == 0);
  BOOST_TEST(off.method == svd_method::automatic);
  BOOST_TEST(!off.relative_residual.has_value());  // automatic: not for rank 0
}

BOOST_AUTO_TEST_CASE(residual_is_reported_as_asked) {
  const Eigen::MatrixXd x = anisotropic_tokens(300, 200, 0.97, 52);
  const Eigen::MatrixXd c = x.transpose() * x;
  const Eigen::MatrixXd dw = gaussian(200, 200, 53);
  // automatic: on the exact path only.
  const compensation exact = compute_compensation(dw, c, policy(0.5));
  BOOST_TEST(exact.method == svd_method::exact);
  BOOST_TEST(exact.relative_residual.has_value());
  const compensation fast = compute_compensation(dw, c, policy(20));
  BOOST_TEST(fast.method == svd_method::randomized);
  BOOST_TEST(!fast.relative_residual.has_value());
  // always: also there, and it is the token-level value.
  const compensation told =
      compute_compensation(dw, c, policy(20), {}, path(svd_method::automatic));
  BOOST_TEST(told.method == svd_method::randomized);
  const double want = token_residual(x, dw, told) / (x * dw.transpose()).norm();
  BOOST_TEST(std::abs(*told.relative_residual - want) < 1e-9);
  svd_options never;
  never.residual = residual_mode::never;
  BOOST_TEST(!compute_compensation(dw, c, policy(0.5), {}, never).relative_residual.has_value());
}

BOOST_AUTO_TEST_CASE(energy_rule_on_both_paths) {
  const known_spectrum k = make_known_spectrum(200, 200, 0.8, 60);
  // Smallest r with Σ_{i<r} σ_i² >= 0.9·Σσ²: σ_i² = 0.64^i, so 1 − 0.64^r >= 0.9 (up to the
  // vanishing tail): r = 6.
  Eigen::ArrayXd energy = k.sigma.array().square();
  index_t want = 0;
  for (double acc = 0; acc < 0.9 * energy.sum(); ++want) acc += energy[want];
  BOOST_TEST(want == 6);
  const auto options = white(whitening_method::cholesky, 0.0);
  const compensation exact = compute_compensation(k.dw, k.c, policy(1.0, 0, 0.9), options);
  BOOST_TEST(exact.method == svd_method::exact);
  BOOST_TEST(exact.rank == want);
  const compensation fast = compute_compensation(k.dw, k.c, policy(40, 0, 0.9), options);
  BOOST_TEST(fast.method == svd_method::randomized);  // 4·(40 + 10) <= 200
  BOOST_TEST(fast.rank == want);
  BOOST_TEST(compute_compensation(k.dw, k.c, policy(40, 8, 0.9), options).rank == 8);
  BOOST_TEST(compute_compensation(k.dw, k.c, policy(4, 0, 0.9), options).rank == 4);
}

// §11.6: whitening concentrates the spectrum when the activations have a decaying spectrum.
BOOST_AUTO_TEST_CASE(whitened_difference_has_lower_effective_rank) {
  const Eigen::MatrixXd x = anisotropic_tokens(400, 60, 0.8, 70);
  const Eigen::MatrixXd c = x.transpose() * x;
  const Eigen::MatrixXd dw = gaussian(50, 60, 71);
  const compensation whitened =
      compute_compensation(dw, c, policy(8), white(whitening_method::cholesky, 0.0));
  const compensation plain = compute_compensation(dw, c, policy(8), white(whitening_method::none));
  const double reference =
      effective_rank(Eigen::JacobiSVD<Eigen::MatrixXd>(x * dw.transpose()).singularValues());
  BOOST_TEST(std::abs(whitened.effective_rank - reference) < 1e-9 * reference);
  BOOST_TEST(whitened.effective_rank < 0.5 * plain.effective_rank);
}

BOOST_AUTO_TEST_CASE(zero_gram_gives_the_unwhitened_factors) {
  const Eigen::MatrixXd c = Eigen::MatrixXd::Zero(10, 10);
  const Eigen::MatrixXd dw = gaussian(8, 10, 80);
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(dw.transpose(), Eigen::ComputeThinU | Eigen::ComputeThinV);
  const Eigen::MatrixXd truncated = svd.matrixU().leftCols(4) *
                                    svd.singularValues().head(4).asDiagonal() *
                                    svd.matrixV().leftCols(4).transpose();
  for (auto method : {svd_method::exact, svd_method::randomized}) {
    const compensation cmc = compute_compensation(dw, c, policy(4), {}, path(method));
    BOOST_TEST(cmc.zero_gram);
    BOOST_TEST(cmc.whitening == whitening_method::none);
    BOOST_TEST(cmc.damping == 0);
    BOOST_TEST(cmc.L.allFinite());
    BOOST_TEST(cmc.R.allFinite());
    BOOST_TEST(rel_max_diff(cmc.L * cmc.R, truncated) < 1e-10, to_string(method));
    BOOST_TEST(*cmc.relative_residual == 0.0);
  }
  BOOST_TEST(*compute_compensation(dw, c, policy(0.0), {}, path(svd_method::automatic))
                  .relative_residual == 0.0);
}

BOOST_AUTO_TEST_CASE(zero_difference_gives_zero_factors) {
  const Eigen::MatrixXd x = anisotropic_tokens(80, 50, 0.9, 90);
  const Eigen::MatrixXd c = x.transpose() * x;
  const Eigen::MatrixXd dw = Eigen::MatrixXd::Zero(50, 50);
  for (auto method : {svd_method::exact, svd_method::randomized}) {
    const compensation cmc = compute_compensation(dw, c, policy(4), {}, path(method));
    BOOST_TEST(cmc.rank == 4);
    BOOST_TEST((cmc.L.array() == 0).all());
    BOOST_TEST((cmc.R.array() == 0).all());
    BOOST_TEST(cmc.effective_rank == 0);
    BOOST_TEST(*cmc.relative_residual == 0.0);
  }
}

BOOST_AUTO_TEST_CASE(dead_channels_keep_full_rank_exact) {
  Eigen::MatrixXd x = anisotropic_tokens(60, 15, 0.8, 100);
  for (index_t j : {2, 5, 6, 9, 11, 12, 13, 14}) x.col(j).setZero();  // 8 of 15 channels dead
  const Eigen::MatrixXd c = x.transpose() * x;
  const Eigen::MatrixXd dw = gaussian(10, 15, 101);
  for (auto method : {whitening_method::cholesky, whitening_method::eigen}) {
    const compensation cmc = compute_compensation(dw, c, policy(1.0), white(method));
    BOOST_TEST(cmc.L.allFinite());
    BOOST_TEST(rel_max_diff(cmc.L * cmc.R, dw.transpose()) < 1e-10, to_string(method));
    // Dead channels carry no output error: the residual over live tokens is ~0.
    BOOST_TEST(*cmc.relative_residual < 1e-6);
  }
}

BOOST_AUTO_TEST_CASE(one_input_or_one_output_channel) {
  const Eigen::MatrixXd x1 = gaussian(30, 1, 110);
  const Eigen::MatrixXd dw1 = gaussian(5, 1, 111);
  const compensation a = compute_compensation(dw1, x1.transpose() * x1);
  BOOST_TEST(a.rank == 1);
  BOOST_TEST(rel_max_diff(a.L * a.R, dw1.transpose()) < 1e-14);
  const Eigen::MatrixXd x5 = gaussian(30, 5, 112);
  const Eigen::MatrixXd dw5 = gaussian(1, 5, 113);
  const compensation b = compute_compensation(dw5, x5.transpose() * x5);
  BOOST_TEST(b.rank == 1);
  BOOST_TEST(b.L.rows() == 5);
  BOOST_TEST(b.R.cols() == 1);
  BOOST_TEST(rel_max_diff(b.L * b.R, dw5.transpose()) < 1e-14);
}

BOOST_AUTO_TEST_CASE(errors_name_the_operands) {
  const Eigen::MatrixXd x = gaussian(40, 12, 120);
  const Eigen::MatrixXd c = x.transpose() * x;
  const Eigen::MatrixXd dw = gaussian(8, 12, 121);
  const std::string shape =
      message_of([&] { compute_compensation(dw, Eigen::MatrixXd::Identity(10, 10)); });
  BOOST_TEST(shape.find("compute_compensation: gram is 10x10 but delta_w is 8x12") !=
             std::string::npos);
  BOOST_CHECK_EXCEPTION(compute_compensation(Eigen::MatrixXd(0, 12), c), error,
                        [](const error& e) { return e.code() == errc::shape_mismatch; });
  Eigen::MatrixXd bad = dw;
  bad(2, 3) = std::numeric_limits<double>::infinity();
  const std::string finite = message_of([&] { compute_compensation(bad, c); });
  BOOST_TEST(finite.find("delta_w (8x12) has the non-finite value inf at row 2, column 3") !=
             std::string::npos);
  const Eigen::MatrixXd lower = c.triangularView<Eigen::Lower>();
  const std::string sym = message_of([&] { compute_compensation(dw, lower); });
  BOOST_TEST(sym.find("compute_compensation: gram (12x12) is not symmetric") != std::string::npos);
  svd_options negative;
  negative.oversampling = -1;
  BOOST_CHECK_EXCEPTION(compute_compensation(dw, c, {}, {}, negative), error,
                        [](const error& e) { return e.code() == errc::invalid_argument; });
  BOOST_CHECK_EXCEPTION(compute_compensation(dw, c, policy(-1)), error,
                        [](const error& e) { return e.code() == errc::invalid_argument; });
  BOOST_CHECK_EXCEPTION(compute_compensation(dw, c, {}, white(whitening_method::cholesky, -1)),
                        error, [](const error& e) { return e.code() == errc::invalid_argument; });
}

BOOST_AUTO_TEST_CASE(delta_weight_is_the_smoothed_minus_shared_weight) {
  const row_matrix<float> w = gaussian(6, 9, 130).cast<float>();
  const row_matrix<float> shared = gaussian(6, 9, 131).cast<float>();
  Eigen::VectorXf s(9);
  for (int j = 0; j < 9; ++j) s[j] = 0.1f + static_cast<float>(j);
  Eigen::MatrixXd out;
  delta_weight(w, s, shared, out);
  BOOST_TEST(out.rows() == 6);
  BOOST_TEST(out.cols() == 9);
  bool exact = true;
  for (int o = 0; o < 6; ++o)
    for (int i = 0; i < 9; ++i)
      exact = exact && out(o, i) == static_cast<double>(w(o, i)) * static_cast<double>(s[i]) -
                                        static_cast<double>(shared(o, i));
  BOOST_TEST(exact);

  BOOST_CHECK_EXCEPTION(delta_weight(w, Eigen::VectorXf::Ones(8), shared), error,
                        [](const error& e) { return e.code() == errc::shape_mismatch; });
  BOOST_CHECK_EXCEPTION(delta_weight(w, s, shared.leftCols(8)), error,
                        [](const error& e) { return e.code() == errc::shape_mismatch; });
  row_matrix<float> nan = w;
  nan(4, 1) = std::numeric_limits<float>::quiet_NaN();
  const std::string msg = message_of([&] { delta_weight(nan, s, shared); });
  BOOST_TEST(
      msg.find("delta_weight: weight (6x9) has the non-finite value nan at row 4, column 1") !=
      std::string::npos);
}

// orthonormalize() (the subspace iteration's re-orthonormalization): QᵀQ = I and Q spans Y, for
// a well-conditioned Y (CholeskyQR2), an ill-conditioned and a rank-deficient one (Householder),
// with the same bits on one thread and on a pool.
BOOST_AUTO_TEST_CASE(orthonormalize_spans_y_on_any_pool) {
  const index_t rows = 2500, k = 40;  // three row blocks, the last partial
  Eigen::MatrixXd well = gaussian(rows, k, 140);
  Eigen::MatrixXd ill = well;
  for (index_t j = 0; j < k; ++j)
    ill.col(j) *= std::pow(10.0, -9.0 * static_cast<double>(j) / (k - 1));
  Eigen::MatrixXd deficient = well;
  deficient.col(7) = deficient.col(3);
  deficient.col(k - 1).setZero();
  thread_pool pool(2);
  for (const Eigen::MatrixXd* y : {&well, &ill, &deficient}) {
    Eigen::MatrixXd q_serial, q_pool;
    detail::orthonormalize(*y, q_serial, {});
    detail::orthonormalize(*y, q_pool, pool.as_function());
    BOOST_TEST((q_serial.array() == q_pool.array()).all());
    const double orthogonality =
        (q_serial.transpose() * q_serial - Eigen::MatrixXd::Identity(k, k)).cwiseAbs().maxCoeff();
    BOOST_TEST(orthogonality < 1e-12);
    const Eigen::MatrixXd outside = *y - q_serial * (q_serial.transpose() * *y);
    BOOST_TEST(outside.norm() < 1e-12 * y->norm());
  }
}

// The view overloads (int8 levels, row scales; the target float or quantized) against the
// formula in double, serial and on a pool; d_in = 150 leaves a partial 64-column strip.
BOOST_AUTO_TEST_CASE(delta_weight_of_levels_is_exact_on_any_pool) {
  const index_t d_out = 70, d_in = 150;
  const row_matrix<float> w = gaussian(d_out, d_in, 132).cast<float>();
  row_matrix<std::int8_t> levels(d_out, d_in), target(d_out, d_in);
  for (index_t o = 0; o < d_out; ++o)
    for (index_t i = 0; i < d_in; ++i) {
      levels(o, i) = static_cast<std::int8_t>((o * 31 + i * 17) % 255 - 127);
      target(o, i) = static_cast<std::int8_t>((o * 13 + i * 7) % 201 - 100);
    }
  Eigen::VectorXf s(d_in), scales(d_out), target_scales(d_out);
  for (index_t i = 0; i < d_in; ++i) s[i] = 0.25f + 0.01f * static_cast<float>(i);
  for (index_t o = 0; o < d_out; ++o) {
    scales[o] = 0.003f * static_cast<float>(o + 1);
    target_scales[o] = 0.002f * static_cast<float>(o + 3);
  }
  const auto view = [](const auto& m) {
    return matrix_view<const typename std::decay_t<decltype(m)>::Scalar>(view_of(m));
  };
  const vector_view<const float> s_view(s.data(), d_in), scale_view(scales.data(), d_out),
      target_scale_view(target_scales.data(), d_out);
  thread_pool pool(2);
  for (const parallel_for_fn& parallel : {parallel_for_fn{}, pool.as_function()}) {
    Eigen::MatrixXd smoothed, quantized;
    delta_weight(view(w), s_view, view(levels), scale_view, smoothed, parallel);
    delta_weight(view(target), target_scale_view, view(levels), scale_view, quantized, parallel);
    bool exact = true;
    for (index_t o = 0; o < d_out; ++o)
      for (index_t i = 0; i < d_in; ++i) {
        const double shared = static_cast<double>(levels(o, i)) * static_cast<double>(scales[o]);
        exact =
            exact &&
            smoothed(o, i) == static_cast<double>(w(o, i)) * static_cast<double>(s[i]) - shared &&
            quantized(o, i) ==
                static_cast<double>(target(o, i)) * static_cast<double>(target_scales[o]) - shared;
      }
    BOOST_TEST(exact);
  }
}

BOOST_AUTO_TEST_SUITE_END()
