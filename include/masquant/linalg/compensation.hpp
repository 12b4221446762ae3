// compensation.hpp: Cross-Modal Compensation, the low-rank factors L·R ≈ ΔWᵀ that are optimal
// in the output-error metric of one modality's smoothed activations (docs/compensation.md).
#pragma once

#include <Eigen/Core>
#include <Eigen/SVD>
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <masquant/config.hpp>
#include <masquant/detail/finite.hpp>
#include <masquant/detail/huge_pages.hpp>
#include <masquant/enum_names.hpp>
#include <masquant/error.hpp>
#include <masquant/linalg/detail/checks.hpp>
#include <masquant/linalg/detail/randomized.hpp>
#include <masquant/linalg/rank_policy.hpp>
#include <masquant/linalg/whitening.hpp>
#include <masquant/parallel.hpp>
#include <masquant/tensor/view.hpp>
#include <optional>
#include <ostream>
#include <type_traits>

namespace masquant {

/// How the leading singular triplets of the whitened difference G = T·ΔWᵀ are computed.
enum class svd_method {
  automatic,   ///< randomized when 4·(r + p) <= min(d_in, d_out), exact otherwise
  exact,       ///< Eigen::BDCSVD of G: every singular value
  randomized,  ///< randomized subspace iteration: the top r + p only
};

/// The methods' stable names.
inline constexpr std::array<enum_name<svd_method>, 3> svd_method_names{{
    {svd_method::automatic, "automatic"},
    {svd_method::exact, "exact"},
    {svd_method::randomized, "randomized"},
}};

/// Short stable name of an SVD method ("randomized").
inline const char* to_string(svd_method method) noexcept {
  return name_in(svd_method_names, method);
}

/// Writes the method's name.
inline std::ostream& operator<<(std::ostream& out, svd_method method) {
  return out << to_string(method);
}

/// When compute_compensation() reports compensation::relative_residual.
enum class residual_mode {
  automatic,  ///< on the exact path, where it is cheap next to the SVD; not on the randomized
              ///< path nor for rank 0
  always,     ///< also on the randomized path, for d_out·d_in²/2 + d_in²·r more multiply-adds
              ///< (+60–90% time at d_in = d_out), and for rank 0 (d_out·d_in²/2)
  never,
};

/// The decomposition's own settings (what calibration_config::svd holds; the seed and the
/// threads are the caller's and live in svd_options or in the calibration config).
struct svd_solver_options {
  svd_method method = svd_method::automatic;
  /// p, extra sketch columns of the randomized path (k = r + p, at most min(d_in, d_out)); >= 0.
  index_t oversampling = 10;
  /// q: the randomized sketch is (GᵀG)^(q+1)·Ω, re-orthonormalised by QR after each GᵀG; >= 0.
  int power_iterations = 2;
  /// When to compute compensation::relative_residual.
  residual_mode residual = residual_mode::automatic;

  /// Throws errc::invalid_argument naming `op` when oversampling or power_iterations < 0.
  void validate(const char* op) const {
    MASQUANT_CHECK(oversampling >= 0 && power_iterations >= 0, errc::invalid_argument, op,
                   ": oversampling (", oversampling, ") and power_iterations (", power_iterations,
                   ") must be >= 0");
  }
};

/// Options of the decomposition in compute_compensation(): the solver's settings, its seed and
/// its threads.
struct svd_options : svd_solver_options {
  /// Seed of the Gaussian test matrix Ω: the same seed, inputs and build give the same result.
  std::uint64_t seed = 0;
  /// Runs the large products (in fixed row slices, so the result does not depend on it);
  /// empty: the calling thread.
  parallel_for_fn parallel{};
};

/// The compensation of one modality for one linear: y += (x ⊘ s_m)·L·R on that modality's
/// tokens, with L·R ≈ ΔWᵀ.
struct compensation {
  Eigen::MatrixXd L;  ///< d_in x rank: ΔWᵀ·V_r·Σ_r⁻¹ (= T⁻¹U_r)
  Eigen::MatrixXd R;  ///< rank x d_out: Σ_r·V_rᵀ
  index_t rank = 0;   ///< r, the number of columns of L
  /// Singular values of G = T·ΔWᵀ, descending: all min(d_in, d_out) of them on the exact path,
  /// the leading r + p (the last p less accurate) on the randomized path, none for rank 0.
  Eigen::VectorXd singular_values;
  /// effective_rank(singular_values): of the whole spectrum on the exact path, of the computed
  /// leading values on the randomized path (then a lower estimate); 0 for rank 0.
  double effective_rank = 0;
  /// ‖X̃(ΔWᵀ − LR)‖_F / ‖X̃ΔWᵀ‖_F in the metric of the given (undamped) Gram, from
  /// ‖X̃M‖_F² = tr(MᵀC̃M); 0 when ‖X̃ΔWᵀ‖_F = 0; 1 (or 0) for rank 0. Computed as a difference
  /// of two traces, so values below about 1e-7 are rounding noise. Set as svd_options::residual
  /// says (by default on the exact path only).
  std::optional<double> relative_residual;
  /// The path taken: exact or randomized (automatic when rank 0 skipped the decomposition).
  svd_method method = svd_method::automatic;
  /// The whitening in effect: the requested method, or none after a zero-Gram fallback.
  whitening_method whitening = whitening_method::none;
  /// True when the Gram was all zero (a modality without tokens): the factors are then those
  /// of the unwhitened SVD, since no input direction carries weight.
  bool zero_gram = false;
  /// λ of the damping δ = λ·mean(diag C̃) actually used (0 without whitening).
  double damping = 0;
};

namespace detail {

/// The pairs whose singular value is rounding noise are zeroed rather than divided by it: with
/// σ_i <= tol their whole contribution to the whitened residual is below tol. The exact SVD
/// resolves σ to about n·ε·σ_1; the randomized path gets σ² from a Rayleigh quotient, so σ only
/// to about sqrt(n·ε)·σ_1.
inline double negligible_singular_value(double sigma1, index_t n, bool randomized) {
  const double ne = static_cast<double>(n) * std::numeric_limits<double>::epsilon();
  return sigma1 * (randomized ? std::sqrt(ne) : ne);
}

template <class Deferred>
compensation compute_compensation_impl(const Eigen::Ref<const Eigen::MatrixXd>& delta_w,
                                       const Eigen::Ref<const Eigen::MatrixXd>& gram,
                                       const rank_policy& policy, const whitening_options& whiten,
                                       const svd_options& svd);

/// Singular values and thin right singular vectors of g, by Eigen::BDCSVD (the exact path).
struct thin_svd {
  Eigen::VectorXd sigma;
  Eigen::MatrixXd v;
};

/// The exact path's decomposition, a function of its own so that Eigen's BDCSVD (the heaviest
/// template masquant instantiates) compiles once, in one translation unit, under separate
/// compilation. Throws errc::numerical_issue when the SVD fails.
template <class Deferred>
thin_svd exact_thin_svd(const Eigen::MatrixXd& g) {
  Eigen::BDCSVD<Eigen::MatrixXd> dec(g, Eigen::ComputeThinV);
  MASQUANT_CHECK(dec.info() == Eigen::Success, errc::numerical_issue,
                 "compute_compensation: SVD of the whitened difference (", g.rows(), "x", g.cols(),
                 ") failed");
  return {dec.singularValues(), dec.matrixV()};
}
}  // namespace detail

/// Computes the rank-r factors L (d_in x r), R (r x d_out) minimising ‖X̃(ΔWᵀ − L·R)‖_F, the
/// output error of modality m's smoothed tokens X̃ (docs/compensation.md), from ΔW and the Gram
/// C̃ = X̃ᵀX̃ alone.
///
/// With T any whitening of C̃ + δI (δ = λ·mean(diag C̃), λ = whiten.damping): G = T·ΔWᵀ = UΣVᵀ,
/// L·R = T⁻¹[G]_r = ΔWᵀ·V_r·V_rᵀ (Eckart–Young). L is formed as ΔWᵀV_rΣ_r⁻¹, which equals the
/// reference's T⁻¹U_r without applying T⁻¹, so ill-conditioned C̃ costs no accuracy.
/// - exact path: T from make_whitening(gram, whiten), then Eigen::BDCSVD of G.
/// - randomized path: the top k = r + p right singular vectors of G by subspace iteration on
///   GᵀG = ΔW(C̃ + δI)ΔWᵀ, applied as three GEMMs: no T is factorised (the result is the same
///   for every whitening method; only `none` differs) and G is never formed. The Cholesky
///   raising of λ is not needed there (the operator is PSD for any λ >= 0).
/// Rank: policy.resolve(); the energy rule uses Σσ² of the whole whitened spectrum (on the
/// randomized path computed as tr(ΔW(C̃ + δI)ΔWᵀ), the cost of the residual).
///
/// delta_w: d_out x d_in, ΔW = W·diag(s_m) − Q_w(W·diag(s_ref)) (see delta_weight()).
/// gram: d_in x d_in, the Gram of modality m's smoothed activations (see smooth_gram()).
/// Both are double Eigen matrices, maps or expressions (an expression is evaluated once).
/// Throws errc::shape_mismatch, non_finite, invalid_argument (bad options, a gram that is not
/// symmetric PSD-like), numerical_issue (a failed decomposition; L or R beyond float range).
///
/// Example:
/// \code
///   Eigen::MatrixXd c = masquant::smooth_gram(raw_gram_vision, s_vision);
///   Eigen::MatrixXd dw = masquant::delta_weight(w, s_vision, w_shared_dequantized);
///   masquant::compensation cmc = masquant::compute_compensation(dw, c);  // ρ = 0.05, min 32
///   // vision tokens: y = Q(x ⊘ s_v)·Ŵᵀ + b + (x ⊘ s_v)·cmc.L·cmc.R
/// \endcode
template <class DeltaW, class Gram>
compensation compute_compensation(const Eigen::MatrixBase<DeltaW>& delta_w,
                                  const Eigen::MatrixBase<Gram>& gram,
                                  const rank_policy& policy = {},
                                  const whitening_options& whiten = {},
                                  const svd_options& svd = {}) {
  static_assert(std::is_same_v<typename DeltaW::Scalar, double> &&
                    std::is_same_v<typename Gram::Scalar, double>,
                "compute_compensation: delta_w and gram must be double (use .cast<double>())");
  // Plain double matrices and maps bind to the Refs without a copy; expressions are evaluated
  // once. One implementation for every argument type (the Deferred argument only keeps it from
  // being compiled where compute_compensation is never called).
  return detail::compute_compensation_impl<std::void_t<DeltaW, Gram>>(
      delta_w.derived(), gram.derived(), policy, whiten, svd);
}

namespace detail {

template <class Deferred>
compensation compute_compensation_impl(const Eigen::Ref<const Eigen::MatrixXd>& delta_w,
                                       const Eigen::Ref<const Eigen::MatrixXd>& gram,
                                       const rank_policy& policy, const whitening_options& whiten,
                                       const svd_options& svd) {
  constexpr const char* op = "compute_compensation";
  const index_t d_out = delta_w.rows(), d_in = delta_w.cols();
  MASQUANT_CHECK(d_out >= 1 && d_in >= 1, errc::shape_mismatch, op, ": delta_w is ", d_out, "x",
                 d_in, " (d_out x d_in, both >= 1)");
  MASQUANT_CHECK(gram.rows() == d_in && gram.cols() == d_in, errc::shape_mismatch, op, ": gram is ",
                 gram.rows(), "x", gram.cols(), " but delta_w is ", d_out, "x", d_in,
                 " (d_out x d_in): gram must be d_in x d_in");
  svd.validate(op);
  whiten.validate(op);
  const index_t cap = policy.resolve(d_in, d_out);
  detail::check_finite(op, "delta_w", delta_w, svd.parallel);
  detail::check_gram(gram, op, "gram", svd.parallel);

  compensation out;
  const double mean_diag = gram.diagonal().mean();
  out.zero_gram = mean_diag == 0;  // check_gram bounds |c_ij| by sqrt(c_ii c_jj): C̃ = 0
  const bool whitened = whiten.method != whitening_method::none && !out.zero_gram;
  out.whitening = whitened ? whiten.method : whitening_method::none;
  // tr(ΔW C̃ ΔWᵀ) = ‖X̃ΔWᵀ‖_F², the denominator of the residual; computed at most once.
  std::optional<double> reach;
  const auto output_energy = [&] {
    if (!reach) reach = out.zero_gram ? 0.0 : detail::quadratic_trace(gram, delta_w);
    return *reach;
  };

  if (cap == 0) {
    out.L.resize(d_in, 0);
    out.R.resize(0, d_out);
    if (svd.residual == residual_mode::always)
      out.relative_residual = output_energy() > 0 ? 1.0 : 0.0;
    return out;
  }

  const index_t n = std::min(d_in, d_out);
  const index_t k = std::min(n, cap + svd.oversampling);
  const bool randomized =
      svd.method == svd_method::randomized || (svd.method == svd_method::automatic && 4 * k <= n);
  out.method = randomized ? svd_method::randomized : svd_method::exact;
  Eigen::MatrixXd v, p;  // V_r (d_out x r) and ΔWᵀV_r (d_in x r)
  if (randomized) {
    out.damping = whitened ? whiten.damping : 0.0;
    const double shift = out.damping * mean_diag;
    detail::top_singular top =
        detail::randomized_top_singular(delta_w, whitened ? &gram : nullptr, shift, k,
                                        svd.power_iterations, svd.seed, svd.parallel);
    out.singular_values = std::move(top.sigma);
    double total = 0;  // Σσ² of the whole spectrum = ‖TΔWᵀ‖_F² = tr(ΔW(C̃ + δI)ΔWᵀ)
    if (policy.energy > 0)
      total = (whitened ? output_energy() + shift * delta_w.squaredNorm() : delta_w.squaredNorm());
    out.rank = policy.resolve(d_in, d_out, out.singular_values, total);
    v = top.v.leftCols(out.rank);
    p = top.p.leftCols(out.rank);
  } else {
    const whitening t = whitened ? make_whitening(gram, whiten) : whitening(d_in);
    out.damping = t.damping();
    thin_svd dec = exact_thin_svd<Deferred>(t.apply(delta_w.transpose()));
    out.singular_values = std::move(dec.sigma);
    out.rank = policy.resolve(d_in, d_out, out.singular_values, out.singular_values.squaredNorm());
    v = dec.v.leftCols(out.rank);
    p.noalias() = delta_w.transpose() * v;
  }

  const index_t r = out.rank;
  const double tol = detail::negligible_singular_value(
      out.singular_values.size() > 0 ? out.singular_values[0] : 0.0, n, randomized);
  for (index_t i = 0; i < r; ++i) {
    if (out.singular_values[i] > tol) continue;
    p.col(i).setZero();
    v.col(i).setZero();
  }
  out.effective_rank = effective_rank(out.singular_values);
  if (svd.residual == residual_mode::always ||
      (svd.residual == residual_mode::automatic && !randomized)) {
    // ‖X̃M‖² for M = ΔWᵀ(I − V_rV_rᵀ) is tr(ΔW C̃ ΔWᵀ) − tr(PᵀC̃P) with P = ΔWᵀV_r, as
    // (I − V_rV_rᵀ) is an orthogonal projector (zeroed pairs drop out of both L·R and P).
    const double total = output_energy();
    double captured = 0;
    if (!out.zero_gram && r > 0) {
      const Eigen::MatrixXd cp = gram * p;
      captured = p.cwiseProduct(cp).sum();
    }
    out.relative_residual = total > 0 ? std::sqrt(std::max(0.0, total - captured) / total) : 0.0;
  }
  out.L = std::move(p);
  out.R = v.transpose();
  for (index_t i = 0; i < r; ++i) {
    const double sigma = out.singular_values[i];
    if (sigma <= tol) continue;
    out.L.col(i) /= sigma;
    out.R.row(i) *= sigma;
  }
  // L and R are stored as float: a value beyond its range would silently become Inf.
  constexpr double float_max = static_cast<double>(std::numeric_limits<float>::max());
  MASQUANT_CHECK(r == 0 || (out.L.cwiseAbs().maxCoeff() <= float_max &&
                            out.R.cwiseAbs().maxCoeff() <= float_max),
                 errc::numerical_issue, op, ": L or R has an entry beyond float range (rank ", r,
                 ", largest singular value ", out.singular_values[0], ")");
  return out;
}

}  // namespace detail

/// ΔW = W·diag(s) − Ŵ (d_out x d_in, double) into `out` (resized only when its shape differs):
/// the difference between modality m's smoothed weight and the shared dequantized weight
/// Ŵ = Q_w(W·diag(s_ref)). With quant_cmc = 1 semantics pass Q_w(W·diag(s_m)) as `weight` and a
/// vector of ones as `smoothing`.
///
/// weight, shared: d_out x d_in; smoothing: d_in (any Eigen expressions, float or double, e.g.
/// as_eigen() of masquant views). Throws errc::shape_mismatch or non_finite before writing.
template <class W, class S, class Q>
void delta_weight(const Eigen::MatrixBase<W>& weight, const Eigen::MatrixBase<S>& smoothing,
                  const Eigen::MatrixBase<Q>& shared, Eigen::MatrixXd& out) {
  constexpr const char* op = "delta_weight";
  const index_t d_out = weight.rows(), d_in = weight.cols();
  MASQUANT_CHECK(smoothing.size() == d_in && (smoothing.rows() == 1 || smoothing.cols() == 1),
                 errc::shape_mismatch, op, ": smoothing is ", smoothing.rows(), "x",
                 smoothing.cols(), ", weight is ", d_out, "x", d_in,
                 " (d_out x d_in): smoothing must be a vector of d_in");
  MASQUANT_CHECK(shared.rows() == d_out && shared.cols() == d_in, errc::shape_mismatch, op,
                 ": shared weight is ", shared.rows(), "x", shared.cols(), ", weight is ", d_out,
                 "x", d_in);
  Eigen::VectorXd s(d_in);
  for (index_t j = 0; j < d_in; ++j) s[j] = static_cast<double>(smoothing(j));
  detail::check_finite(op, "smoothing", s);
  detail::check_finite(op, "weight", weight);
  detail::check_finite(op, "shared weight", shared);
  if (out.rows() != d_out || out.cols() != d_in) out.resize(d_out, d_in);
  out = weight.template cast<double>() * s.asDiagonal() - shared.template cast<double>();
}

namespace detail {

/// out = A − B (d_out x d_in, column-major) with A(o, j) and B(o, j) read from row-major data,
/// in 64 x 64 tiles: element by element either the reads or the writes would stride d_in or
/// d_out elements apart. Every product in a and b is exact in double, so the one rounding is
/// that of the difference. Strips of 64 columns run on `parallel` when it is set (each element
/// is computed alone: the result does not depend on it).
template <class A, class B>
void tiled_difference(index_t d_out, index_t d_in, const A& a, const B& b, Eigen::MatrixXd& out,
                      const parallel_for_fn& parallel) {
  if (out.rows() != d_out || out.cols() != d_in) {
    out.resize(d_out, d_in);
    advise_huge_pages(out.data(), static_cast<std::size_t>(out.size()) * sizeof(double));
  }
  constexpr index_t tile = 64;
  const auto strip = [&](index_t s) {
    const index_t j0 = s * tile, j1 = std::min(d_in, j0 + tile);
    for (index_t o0 = 0; o0 < d_out; o0 += tile) {
      const index_t o1 = std::min(d_out, o0 + tile);
      for (index_t j = j0; j < j1; ++j)
        for (index_t o = o0; o < o1; ++o) out(o, j) = a(o, j) - b(o, j);
    }
  };
  const index_t strips = (d_in + tile - 1) / tile;
  if (parallel && strips > 1) {
    parallel(strips, strip);
  } else {
    for (index_t s = 0; s < strips; ++s) strip(s);
  }
}

/// Ŵ(o, j) = levels[o, j]·scales[o] in double: a weight quantized symmetrically per output
/// channel.
struct dequantized_rows {
  matrix_view<const std::int8_t> levels;
  vector_view<const float> scales;
  double operator()(index_t o, index_t j) const {
    return static_cast<double>(levels(o, j)) * static_cast<double>(scales[o]);
  }
};

/// W(o, j)·s_j in double.
struct smoothed_rows {
  matrix_view<const float> weight;
  vector_view<const float> smoothing;
  double operator()(index_t o, index_t j) const {
    return static_cast<double>(weight(o, j)) * static_cast<double>(smoothing[j]);
  }
};

inline void check_quantized_rows(const char* op, const char* what,
                                 matrix_view<const std::int8_t> levels,
                                 vector_view<const float> scales, index_t d_out, index_t d_in) {
  MASQUANT_CHECK(levels.rows() == d_out && levels.cols() == d_in && scales.size() == d_out,
                 errc::shape_mismatch, op, ": ", what, " is ", levels.rows(), "x", levels.cols(),
                 " levels with ", scales.size(), " scales, the weight ", d_out, "x", d_in);
  check_finite(op, cat(what, " scales"), scales);
}

}  // namespace detail

/// ΔW = W·diag(s) − Ŵ (d_out x d_in, double) into `out`, for a shared weight held as integer
/// levels: Ŵ(o, j) = shared_levels(o, j)·shared_scales[o] (symmetric per output channel, as
/// calibrate() quantizes it; no dequantized copy is formed). The same values as the Eigen
/// overload on the dequantized weight.
///
/// weight: [d_out, d_in]; smoothing: [d_in]; shared_levels: [d_out, d_in]; shared_scales:
/// [d_out]. Throws errc::shape_mismatch or non_finite before writing. Runs on `parallel` when
/// it is set (the result does not depend on it).
inline void delta_weight(matrix_view<const float> weight, vector_view<const float> smoothing,
                         matrix_view<const std::int8_t> shared_levels,
                         vector_view<const float> shared_scales, Eigen::MatrixXd& out,
                         const parallel_for_fn& parallel = {}) {
  constexpr const char* op = "delta_weight";
  const index_t d_out = weight.rows(), d_in = weight.cols();
  MASQUANT_CHECK(smoothing.size() == d_in, errc::shape_mismatch, op, ": smoothing has ",
                 smoothing.size(), " factors, the weight ", d_out, "x", d_in);
  detail::check_quantized_rows(op, "shared weight", shared_levels, shared_scales, d_out, d_in);
  detail::check_finite(op, "weight", weight);
  detail::check_finite(op, "smoothing", smoothing);
  detail::tiled_difference(d_out, d_in, detail::smoothed_rows{weight, smoothing},
                           detail::dequantized_rows{shared_levels, shared_scales}, out, parallel);
}

/// ΔW = Q − Ŵ for two weights held as integer levels and row scales (the reference's quant_cmc
/// = 1: Q = Q_w(W·diag(s_m)), the modality's own quantized weight). Shapes and errors as above.
inline void delta_weight(matrix_view<const std::int8_t> target_levels,
                         vector_view<const float> target_scales,
                         matrix_view<const std::int8_t> shared_levels,
                         vector_view<const float> shared_scales, Eigen::MatrixXd& out,
                         const parallel_for_fn& parallel = {}) {
  constexpr const char* op = "delta_weight";
  const index_t d_out = target_levels.rows(), d_in = target_levels.cols();
  detail::check_quantized_rows(op, "target weight", target_levels, target_scales, d_out, d_in);
  detail::check_quantized_rows(op, "shared weight", shared_levels, shared_scales, d_out, d_in);
  detail::tiled_difference(d_out, d_in, detail::dequantized_rows{target_levels, target_scales},
                           detail::dequantized_rows{shared_levels, shared_scales}, out, parallel);
}

/// delta_weight() into a new matrix.
template <class W, class S, class Q>
Eigen::MatrixXd delta_weight(const Eigen::MatrixBase<W>& weight,
                             const Eigen::MatrixBase<S>& smoothing,
                             const Eigen::MatrixBase<Q>& shared) {
  Eigen::MatrixXd out;
  delta_weight(weight, smoothing, shared, out);
  return out;
}

#ifdef MASQUANT_SEPARATE_COMPILATION
// Compiled once, by <masquant/src.hpp>: Eigen's BDCSVD on its own, the rest of the path apart.
namespace detail {
extern template thin_svd exact_thin_svd<void>(const Eigen::MatrixXd&);
extern template compensation compute_compensation_impl<void>(
    const Eigen::Ref<const Eigen::MatrixXd>&, const Eigen::Ref<const Eigen::MatrixXd>&,
    const rank_policy&, const whitening_options&, const svd_options&);
}  // namespace detail
#endif

}  // namespace masquant
