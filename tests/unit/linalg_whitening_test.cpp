// Tests of linalg/whitening.hpp: TᵀT = C + δI for every method, damping, degenerate Grams,
// validation, and the smoothing rescale of a raw Gram.
#include <boost/test/unit_test.hpp>
#include <cmath>
#include <limits>
#include <masquant/linalg/whitening.hpp>
#include <string>
#include <support/linalg_testing.hpp>
#include <vector>

using namespace masquant;
using masquant::testing::gaussian;
using masquant::testing::rel_max_diff;

namespace {

Eigen::MatrixXd gram_of(const Eigen::MatrixXd& x) {
  return x.transpose() * x;
}

Eigen::MatrixXd damped(const Eigen::MatrixXd& c, double lambda) {
  return c + Eigen::MatrixXd::Identity(c.rows(), c.cols()) * (lambda * c.diagonal().mean());
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

BOOST_AUTO_TEST_SUITE(linalg_whitening)

BOOST_AUTO_TEST_CASE(cholesky_factor_reproduces_damped_gram) {
  const Eigen::MatrixXd c = gram_of(gaussian(200, 30, 1));
  const whitening t = make_whitening(c);
  BOOST_TEST(t.method() == whitening_method::cholesky);
  BOOST_TEST(t.damping() == 1e-6);
  BOOST_TEST(t.shift() == 1e-6 * c.diagonal().mean());
  BOOST_TEST(!t.zero_gram());
  const Eigen::MatrixXd m = t.matrix();
  BOOST_TEST(rel_max_diff(m.transpose() * m, damped(c, 1e-6)) < 1e-13);
  BOOST_TEST(m.triangularView<Eigen::StrictlyLower>().toDenseMatrix().cwiseAbs().maxCoeff() == 0);
}

BOOST_AUTO_TEST_CASE(eigen_factor_reproduces_damped_gram) {
  const Eigen::MatrixXd c = gram_of(gaussian(200, 30, 2));
  const whitening t = make_whitening(c, {whitening_method::eigen, 1e-3});
  BOOST_TEST(t.method() == whitening_method::eigen);
  BOOST_TEST(t.damping() == 1e-3);
  const Eigen::MatrixXd m = t.matrix();
  BOOST_TEST(rel_max_diff(m.transpose() * m, damped(c, 1e-3)) < 1e-12);
}

BOOST_AUTO_TEST_CASE(apply_and_apply_inverse_agree_with_the_dense_factor) {
  const Eigen::MatrixXd c = gram_of(gaussian(100, 20, 3));
  const Eigen::MatrixXd m = gaussian(20, 7, 4);
  for (auto method :
       {whitening_method::cholesky, whitening_method::eigen, whitening_method::none}) {
    const whitening t = make_whitening(c, {method});
    const Eigen::MatrixXd dense = t.matrix();
    BOOST_TEST(rel_max_diff(t.apply(m), dense * m) < 1e-13, to_string(method));
    BOOST_TEST(rel_max_diff(t.apply_inverse(m), dense.inverse() * m) < 1e-10, to_string(method));
    BOOST_TEST(rel_max_diff(t.apply(t.apply_inverse(m)), m) < 1e-12, to_string(method));
  }
}

BOOST_AUTO_TEST_CASE(cholesky_and_eigen_differ_by_an_orthogonal_factor) {
  const Eigen::MatrixXd c = gram_of(gaussian(120, 25, 5));
  const whitening chol = make_whitening(c, {whitening_method::cholesky});
  const whitening eig = make_whitening(c, {whitening_method::eigen});
  const Eigen::MatrixXd o = chol.apply(eig.apply_inverse(Eigen::MatrixXd::Identity(25, 25)));
  BOOST_TEST(rel_max_diff(o.transpose() * o, Eigen::MatrixXd::Identity(25, 25)) < 1e-10);
}

BOOST_AUTO_TEST_CASE(none_is_the_identity_without_damping) {
  const Eigen::MatrixXd c = gram_of(gaussian(50, 10, 6));
  const whitening t = make_whitening(c, {whitening_method::none});
  BOOST_TEST(t.method() == whitening_method::none);
  BOOST_TEST(t.damping() == 0);
  BOOST_TEST(t.shift() == 0);
  BOOST_TEST((t.matrix() == Eigen::MatrixXd::Identity(10, 10)));
}

BOOST_AUTO_TEST_CASE(cholesky_raises_damping_on_a_singular_gram) {
  // 5 tokens in 20 channels: rank 5, so the undamped Cholesky breaks down.
  const Eigen::MatrixXd c = gram_of(gaussian(5, 20, 7));
  const whitening t = make_whitening(c, {whitening_method::cholesky, 0.0});
  BOOST_TEST(t.damping() > 0);
  BOOST_TEST(t.damping() <= 1e-2);
  const Eigen::MatrixXd m = t.matrix();
  BOOST_TEST(m.allFinite());
  BOOST_TEST(rel_max_diff(m.transpose() * m, damped(c, t.damping())) < 1e-12);
  // The λ sequence is 0, 1e-12, 1e-11, ...: the reported λ is one of its values.
  const double decades = std::log10(t.damping() / 1e-12);
  BOOST_TEST(std::abs(decades - std::round(decades)) < 1e-9);

  // A positive definite Gram is factorised with the requested λ, even 0.
  const Eigen::MatrixXd pd = gram_of(gaussian(100, 20, 8));
  BOOST_TEST(make_whitening(pd, {whitening_method::cholesky, 0.0}).damping() == 0);
}

BOOST_AUTO_TEST_CASE(eigen_floors_a_singular_gram) {
  const Eigen::MatrixXd c = gram_of(gaussian(5, 20, 9));
  const whitening t = make_whitening(c, {whitening_method::eigen, 0.0});
  const Eigen::MatrixXd inv = t.apply_inverse(Eigen::MatrixXd::Identity(20, 20));
  BOOST_TEST(inv.allFinite());
  const Eigen::MatrixXd m = t.matrix();
  BOOST_TEST((m.transpose() * m - c).cwiseAbs().maxCoeff() < 1e-12 * c.cwiseAbs().maxCoeff());
}

BOOST_AUTO_TEST_CASE(indefinite_matrix_is_a_numerical_issue) {
  // Every 2x2 minor is positive, but (1, -1, -1) is an eigenvector of eigenvalue -0.8.
  Eigen::Matrix3d c;
  c << 1, 0.9, 0.9, 0.9, 1, -0.9, 0.9, -0.9, 1;
  for (auto method : {whitening_method::cholesky, whitening_method::eigen}) {
    try {
      make_whitening(c, {method});
      BOOST_ERROR("no error for an indefinite gram");
    } catch (const error& e) {
      BOOST_TEST((e.code() == errc::numerical_issue));
      BOOST_TEST(std::string(e.what()).find("positive semidefinite") != std::string::npos);
    }
  }
}

BOOST_AUTO_TEST_CASE(all_zero_gram_falls_back_to_identity) {
  const Eigen::MatrixXd c = Eigen::MatrixXd::Zero(6, 6);
  for (auto method : {whitening_method::cholesky, whitening_method::eigen}) {
    const whitening t = make_whitening(c, {method});
    BOOST_TEST(t.zero_gram());
    BOOST_TEST(t.method() == whitening_method::none);
    BOOST_TEST(t.shift() == 0);
    const Eigen::MatrixXd m = gaussian(6, 3, 10);
    BOOST_TEST((t.apply(m) == m));
    BOOST_TEST((t.apply_inverse(m) == m));
  }
}

BOOST_AUTO_TEST_CASE(dead_channels_are_damped) {
  Eigen::MatrixXd x = gaussian(60, 12, 11);
  x.col(3).setZero();
  x.col(7).setZero();
  const Eigen::MatrixXd c = gram_of(x);
  for (auto method : {whitening_method::cholesky, whitening_method::eigen}) {
    const whitening t = make_whitening(c, {method});
    const Eigen::MatrixXd m = t.matrix();
    const Eigen::MatrixXd inv = t.apply_inverse(Eigen::MatrixXd::Identity(12, 12));
    BOOST_TEST(m.allFinite());
    BOOST_TEST(inv.allFinite());
    BOOST_TEST(rel_max_diff(m.transpose() * m, damped(c, t.damping())) < 1e-12);
  }
}

BOOST_AUTO_TEST_CASE(one_channel) {
  const Eigen::MatrixXd c = Eigen::MatrixXd::Constant(1, 1, 4.0);
  for (auto method : {whitening_method::cholesky, whitening_method::eigen}) {
    const whitening t = make_whitening(c, {method});
    BOOST_TEST(std::abs(std::abs(t.matrix()(0, 0)) - 2 * std::sqrt(1 + 1e-6)) < 1e-15);
  }
}

BOOST_AUTO_TEST_CASE(bad_grams_are_rejected_with_a_clear_message) {
  const Eigen::MatrixXd c = gram_of(gaussian(30, 5, 12));
  BOOST_CHECK_EXCEPTION(make_whitening(Eigen::MatrixXd::Zero(4, 5)), error,
                        [](const error& e) { return e.code() == errc::shape_mismatch; });
  Eigen::MatrixXd nan = c;
  nan(3, 1) = std::numeric_limits<double>::quiet_NaN();
  const std::string nan_msg = message_of([&] { make_whitening(nan); });
  BOOST_TEST(nan_msg.find("make_whitening: gram") != std::string::npos);
  BOOST_TEST(nan_msg.find("not finite") != std::string::npos);
  // A Gram with only its lower triangle filled (as Eigen's rankUpdate leaves it).
  Eigen::MatrixXd lower = c.triangularView<Eigen::Lower>();
  const std::string sym_msg = message_of([&] { make_whitening(lower); });
  BOOST_TEST(sym_msg.find("not symmetric") != std::string::npos);
  Eigen::MatrixXd negative = c;
  negative(2, 2) = -1;
  BOOST_CHECK_EXCEPTION(make_whitening(negative), error,
                        [](const error& e) { return e.code() == errc::invalid_argument; });
  BOOST_CHECK_EXCEPTION(make_whitening(c, {whitening_method::cholesky, -1.0}), error,
                        [](const error& e) { return e.code() == errc::invalid_argument; });
  BOOST_CHECK_EXCEPTION(make_whitening(c, {whitening_method::cholesky, 1e-3, 1e-4}), error,
                        [](const error& e) { return e.code() == errc::invalid_argument; });
  const whitening t = make_whitening(c);
  BOOST_CHECK_EXCEPTION(t.apply(Eigen::MatrixXd::Zero(4, 2)), error,
                        [](const error& e) { return e.code() == errc::shape_mismatch; });
}

BOOST_AUTO_TEST_CASE(smooth_gram_is_the_gram_of_smoothed_tokens) {
  const Eigen::MatrixXd x = gaussian(40, 9, 13);
  Eigen::VectorXf s(9);
  for (int j = 0; j < 9; ++j) s[j] = 0.25f + 0.5f * static_cast<float>(j);
  const Eigen::MatrixXd xs = x * s.cast<double>().cwiseInverse().asDiagonal();
  const Eigen::MatrixXd want = gram_of(xs);
  const Eigen::MatrixXd raw = gram_of(x);
  BOOST_TEST(rel_max_diff(smooth_gram(raw, s), want) < 1e-14);
  Eigen::MatrixXd in_place = raw;
  smooth_gram(in_place, s, in_place);
  BOOST_TEST(rel_max_diff(in_place, want) < 1e-14);
  // A reused buffer keeps its storage.
  Eigen::MatrixXd buffer(9, 9);
  const double* storage = buffer.data();
  smooth_gram(raw, s.cast<double>(), buffer);
  BOOST_TEST(buffer.data() == storage);
  BOOST_TEST(rel_max_diff(buffer, want) < 1e-14);
}

BOOST_AUTO_TEST_CASE(smooth_gram_rejects_bad_factors_without_writing) {
  const Eigen::MatrixXd raw = gram_of(gaussian(20, 4, 14));
  Eigen::MatrixXd out = raw;
  Eigen::VectorXd s = Eigen::VectorXd::Ones(4);
  s[2] = 0;
  const std::string msg = message_of([&] { smooth_gram(raw, s, out); });
  BOOST_TEST(msg.find("smoothing[2]") != std::string::npos);
  BOOST_TEST((out == raw));
  s[2] = std::numeric_limits<double>::infinity();
  BOOST_CHECK_EXCEPTION(smooth_gram(raw, s), error,
                        [](const error& e) { return e.code() == errc::non_finite; });
  BOOST_CHECK_EXCEPTION(smooth_gram(raw, Eigen::VectorXd::Ones(5)), error,
                        [](const error& e) { return e.code() == errc::shape_mismatch; });
}

BOOST_AUTO_TEST_SUITE_END()
