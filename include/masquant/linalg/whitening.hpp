// whitening.hpp: whitening transforms T with TᵀT = C + δI from a Gram matrix C, and the
// rescaling of a raw Gram into the Gram of smoothed activations.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/Eigenvalues>
#include <array>
#include <cmath>
#include <limits>
#include <masquant/config.hpp>
#include <masquant/enum_names.hpp>
#include <masquant/error.hpp>
#include <masquant/linalg/detail/checks.hpp>
#include <optional>
#include <ostream>
#include <type_traits>

namespace masquant {

/// How a whitening transform T (TᵀT = C + δI) is factorised.
enum class whitening_method {
  cholesky,  ///< T = Lᵀ from C + δI = LLᵀ: fast (d³/3), upper triangular
  eigen,     ///< T = Λ^½Uᵀ from C + δI = UΛUᵀ: the reference's construction, much slower
  none,      ///< T = I: the unwhitened SVD ("no-white" in the reference)
};

/// The methods' stable names (the tool's --whiten values).
inline constexpr std::array<enum_name<whitening_method>, 3> whitening_method_names{{
    {whitening_method::cholesky, "cholesky"},
    {whitening_method::eigen, "eigen"},
    {whitening_method::none, "none"},
}};

/// Short stable name of a whitening method ("cholesky").
inline const char* to_string(whitening_method method) noexcept {
  return name_in(whitening_method_names, method);
}

/// Writes the method's name.
inline std::ostream& operator<<(std::ostream& out, whitening_method method) {
  return out << to_string(method);
}

/// Options of make_whitening().
struct whitening_options {
  whitening_method method = whitening_method::cholesky;
  /// λ of the damping δ = λ·mean(diag C) added to the diagonal before factorising; >= 0.
  double damping = 1e-6;
  /// Cholesky only: when the factorisation fails, λ is multiplied by 10 (0 becomes 1e-12) and
  /// the factorisation retried while λ <= max_damping; past it, C is not positive semidefinite
  /// to working precision and make_whitening throws. The eigen method throws for an eigenvalue
  /// below -max_damping·mean(diag C). Must be >= damping.
  double max_damping = 1e-2;

  /// Throws errc::invalid_argument naming `op` and the first bad field.
  void validate(const char* op) const {
    MASQUANT_CHECK(std::isfinite(damping) && damping >= 0, errc::invalid_argument, op,
                   ": damping must be finite and >= 0, got ", damping);
    MASQUANT_CHECK(std::isfinite(max_damping) && max_damping >= damping, errc::invalid_argument, op,
                   ": max_damping (", max_damping, ") must be finite and >= damping (", damping,
                   ")");
  }
};

class whitening;
template <class Derived>
whitening make_whitening(const Eigen::MatrixBase<Derived>& gram,
                         const whitening_options& options = {});

/// A whitening transform T of dimension d with TᵀT = C + δI, built by make_whitening().
///
/// apply() and apply_inverse() multiply by T and T⁻¹ without forming an inverse (a triangular
/// solve for Cholesky, UΛ^-½ for eigen). Any two such T differ by an orthogonal factor on the
/// left, so every quantity masquant derives from T (singular values and right singular vectors
/// of T·M, the compensation product L·R) is the same for both methods.
class whitening {
 public:
  /// The identity of dimension `dim`.
  explicit whitening(index_t dim = 0) : dim_(dim) {}

  /// d, the number of input channels.
  index_t dim() const noexcept { return dim_; }
  /// The factorisation in effect: `none` for T = I, also after a zero-Gram fallback.
  whitening_method method() const noexcept { return method_; }
  /// True when C was all zero (a modality without tokens): T = I instead of the requested
  /// method, since such a modality puts no weight on any input direction.
  bool zero_gram() const noexcept { return zero_gram_; }
  /// λ finally used (after automatic raising); 0 for T = I.
  double damping() const noexcept { return damping_; }
  /// δ = λ·mean(diag C), the absolute shift added to the diagonal; 0 for T = I.
  double shift() const noexcept { return shift_; }

  /// T·m for m of dim() rows. Throws errc::shape_mismatch.
  template <class Derived>
  Eigen::MatrixXd apply(const Eigen::MatrixBase<Derived>& m) const {
    check_rows(m.rows(), "apply");
    switch (method_) {
      case whitening_method::cholesky:
        return llt_->matrixU() * m;
      case whitening_method::eigen:
        return root_.asDiagonal() * (eigenvectors_.transpose() * m);
      case whitening_method::none:
        break;
    }
    return Eigen::MatrixXd(m);
  }

  /// T⁻¹·m for m of dim() rows, by a triangular solve (Cholesky) or U·(Λ^-½·m) (eigen).
  /// Throws errc::shape_mismatch.
  template <class Derived>
  Eigen::MatrixXd apply_inverse(const Eigen::MatrixBase<Derived>& m) const {
    check_rows(m.rows(), "apply_inverse");
    switch (method_) {
      case whitening_method::cholesky:
        return llt_->matrixU().solve(m);
      case whitening_method::eigen:
        return eigenvectors_ * (root_.cwiseInverse().asDiagonal() * m);
      case whitening_method::none:
        break;
    }
    return Eigen::MatrixXd(m);
  }

  /// T as a dense d x d matrix (upper triangular for Cholesky).
  Eigen::MatrixXd matrix() const {
    switch (method_) {
      case whitening_method::cholesky:
        return llt_->matrixU();
      case whitening_method::eigen:
        return root_.asDiagonal() * eigenvectors_.transpose();
      case whitening_method::none:
        break;
    }
    return Eigen::MatrixXd::Identity(dim_, dim_);
  }

 private:
  template <class Derived>
  friend whitening make_whitening(const Eigen::MatrixBase<Derived>& gram,
                                  const whitening_options& options);

  void check_rows(index_t rows, const char* op) const {
    MASQUANT_CHECK(rows == dim_, errc::shape_mismatch, "whitening::", op, ": operand has ", rows,
                   " rows, the whitening is ", dim_, "x", dim_);
  }

  index_t dim_ = 0;
  whitening_method method_ = whitening_method::none;
  bool zero_gram_ = false;
  double damping_ = 0, shift_ = 0;
  // Engaged only for Cholesky: a default-constructed LLT leaves its status uninitialised, and
  // copying that is undefined behaviour.
  std::optional<Eigen::LLT<Eigen::MatrixXd>> llt_;
  Eigen::MatrixXd eigenvectors_;  // U, eigen method
  Eigen::VectorXd root_;          // diag of Λ^½ after damping and flooring, eigen method
};

/// Builds T with TᵀT = C + δI from a Gram matrix C (d x d, symmetric PSD: the uncentered XᵀX of
/// one modality's smoothed activations, see smooth_gram(); any Eigen double matrix expression),
/// δ = λ·mean(diag C).
///
/// - cholesky: LLᵀ = C + δI, T = Lᵀ; λ starts at options.damping and is raised x10 on failure
///   (see whitening_options::max_damping); damping() reports the λ used.
/// - eigen: C = UΛUᵀ, eigenvalues replaced by max(λ_i + δ, d·ε·λ_max) (ε the double epsilon:
///   below that floor an eigenvalue is rounding noise, so T⁻¹ stays finite even for λ = 0),
///   T = Λ^½Uᵀ.
/// - none: T = I.
/// An all-zero C (no tokens, or every channel dead) gives T = I with zero_gram() set, whatever
/// the method. Dead channels (zero rows and columns of C) are handled by the damping.
///
/// Throws errc::shape_mismatch (C not square or empty), non_finite (NaN/Inf in C),
/// invalid_argument (C not symmetric or with a negative diagonal or a 2x2 minor < 0; bad
/// options), numerical_issue (C not positive semidefinite even after the maximal damping).
///
/// Example:
/// \code
///   Eigen::MatrixXd x = ...;                          // tokens x d_in, smoothed activations
///   Eigen::MatrixXd c = x.transpose() * x;
///   masquant::whitening t = masquant::make_whitening(c);  // Cholesky, λ = 1e-6
///   Eigen::MatrixXd g = t.apply(delta_w.transpose());     // T·ΔWᵀ
/// \endcode
template <class Derived>
whitening make_whitening(const Eigen::MatrixBase<Derived>& gram_in,
                         const whitening_options& options) {
  options.validate("make_whitening");
  static_assert(std::is_same_v<typename Derived::Scalar, double>,
                "make_whitening: the gram must be double (use .cast<double>())");
  // A function template (like every heavy entry point of linalg), so that Eigen's decompositions
  // are compiled only in the translation units that use them.
  const Eigen::Ref<const Eigen::MatrixXd>& gram = gram_in.derived();
  detail::check_gram(gram, "make_whitening", "gram");
  const index_t d = gram.rows();
  whitening w(d);
  if (options.method == whitening_method::none) return w;
  // check_gram bounds every |c_ij| by sqrt(c_ii c_jj), so a zero diagonal means C = 0.
  const double mean_diag = gram.diagonal().mean();
  if (mean_diag == 0) {
    w.zero_gram_ = true;
    return w;
  }
  double lambda = options.damping;
  if (options.method == whitening_method::cholesky) {
    w.llt_.emplace(d);
    for (;;) {
      w.llt_->compute(gram + Eigen::MatrixXd::Identity(d, d) * (lambda * mean_diag));
      if (w.llt_->info() == Eigen::Success) break;
      const double next = lambda == 0 ? 1e-12 : 10 * lambda;
      MASQUANT_CHECK(next <= options.max_damping * (1 + 1e-9), errc::numerical_issue,
                     "make_whitening: Cholesky of gram (", d, "x", d,
                     ") + lambda*mean(diag)*I failed for every lambda up to ", lambda,
                     " (max_damping ", options.max_damping,
                     "): gram is not positive semidefinite to working precision");
      lambda = next;
    }
  } else {
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> eig(gram);
    MASQUANT_CHECK(eig.info() == Eigen::Success, errc::numerical_issue,
                   "make_whitening: eigendecomposition of gram (", d, "x", d, ") did not converge");
    const Eigen::VectorXd& values = eig.eigenvalues();  // ascending
    MASQUANT_CHECK(values[0] >= -options.max_damping * mean_diag, errc::numerical_issue,
                   "make_whitening: gram (", d, "x", d, ") has eigenvalue ", values[0],
                   " below -max_damping*mean(diag) = ", -options.max_damping * mean_diag,
                   ": not positive semidefinite");
    const double floor =
        static_cast<double>(d) * std::numeric_limits<double>::epsilon() * values[d - 1];
    w.root_ = (values.array() + lambda * mean_diag).max(floor).sqrt();
    w.eigenvectors_ = eig.eigenvectors();
  }
  w.method_ = options.method;
  w.damping_ = lambda;
  w.shift_ = lambda * mean_diag;
  return w;
}

/// The Gram of X ⊘ s from the Gram C of X: out = diag(1/s)·C·diag(1/s), so one raw Gram per
/// modality serves every smoothing vector. `out` may be `gram` itself (rescaled in place); it
/// is resized only when its shape differs, so a reused buffer is not reallocated.
///
/// smoothing: d positive finite factors (any Eigen vector expression, float or double).
/// Throws errc::shape_mismatch, non_finite (NaN/Inf in gram or smoothing) or invalid_argument
/// (a factor <= 0); nothing is written then.
template <class Derived>
void smooth_gram(const Eigen::Ref<const Eigen::MatrixXd>& gram,
                 const Eigen::MatrixBase<Derived>& smoothing, Eigen::MatrixXd& out) {
  MASQUANT_CHECK(gram.rows() == gram.cols(), errc::shape_mismatch, "smooth_gram: gram is ",
                 gram.rows(), "x", gram.cols(), " (must be square)");
  const index_t d = gram.rows();
  MASQUANT_CHECK(smoothing.size() == d, errc::shape_mismatch, "smooth_gram: smoothing has ",
                 smoothing.size(), " entries, gram is ", d, "x", d);
  Eigen::VectorXd inv(d);
  for (index_t j = 0; j < d; ++j) {
    const double s = static_cast<double>(smoothing(j));
    MASQUANT_CHECK(std::isfinite(s), errc::non_finite, "smooth_gram: smoothing[", j, "] is ", s);
    MASQUANT_CHECK(s > 0, errc::invalid_argument, "smooth_gram: smoothing[", j, "] = ", s,
                   " is not positive");
    inv[j] = 1.0 / s;
  }
  detail::check_finite("smooth_gram", "gram", gram);
  if (out.rows() != d || out.cols() != d) out.resize(d, d);  // never when out aliases gram
  for (index_t j = 0; j < d; ++j)
    for (index_t i = 0; i < d; ++i) out(i, j) = gram(i, j) * inv[i] * inv[j];
}

/// smooth_gram() into a new matrix.
template <class Derived>
Eigen::MatrixXd smooth_gram(const Eigen::Ref<const Eigen::MatrixXd>& gram,
                            const Eigen::MatrixBase<Derived>& smoothing) {
  Eigen::MatrixXd out;
  smooth_gram(gram, smoothing, out);
  return out;
}

}  // namespace masquant
