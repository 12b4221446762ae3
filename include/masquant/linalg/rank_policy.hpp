// rank_policy.hpp: how many singular triplets a compensation keeps, and the effective-rank
// diagnostic of a singular spectrum.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <masquant/config.hpp>
#include <masquant/error.hpp>

namespace masquant {

/// The rank rule of Cross-Modal Compensation (docs/compensation.md, "Options and defaults").
///
/// With n = min(d_in, d_out): r = ⌊rank·n⌋ for rank <= 1 (a ratio), ⌊rank⌋ for rank > 1 (an
/// absolute rank); then r = max(r, min_rank) and r = min(r, n). rank = 0 gives r = 0
/// (compensation off), not min_rank. The product rank·n is floored in double precision, as the
/// reference's int(ρ·k).
///
/// With energy e > 0 the rank above becomes a cap: r is the smallest count of leading singular
/// values of the whitened spectrum whose squares reach e·Σσ², then at least min_rank, at most
/// the cap.
///
/// Example: rank = 0.05, min_rank = 32 gives 204 for 4096 x 4096, 32 for 256 x 2048, 16 for
/// 16 x 4096; rank = 128 gives 128 for 4096 x 4096.
struct rank_policy {
  /// Ratio (<= 1) or absolute rank (> 1); finite, >= 0.
  double rank = 0.05;
  /// Lower bound of any non-zero rank (the reference's 32); >= 0.
  index_t min_rank = 32;
  /// Fraction of the whitened energy Σσ² to capture, in [0, 1]; 0 turns the rule off.
  double energy = 0;

  /// The rank without the energy rule, i.e. the cap when energy > 0.
  /// Throws errc::invalid_argument for bad fields or extents < 1.
  index_t resolve(index_t d_in, index_t d_out) const {
    MASQUANT_CHECK(d_in >= 1 && d_out >= 1, errc::invalid_argument,
                   "rank_policy::resolve: extents must be >= 1, got d_in = ", d_in,
                   ", d_out = ", d_out);
    MASQUANT_CHECK(std::isfinite(rank) && rank >= 0, errc::invalid_argument,
                   "rank_policy: rank must be finite and >= 0, got ", rank);
    MASQUANT_CHECK(min_rank >= 0, errc::invalid_argument,
                   "rank_policy: min_rank must be >= 0, got ", min_rank);
    MASQUANT_CHECK(std::isfinite(energy) && energy >= 0 && energy <= 1, errc::invalid_argument,
                   "rank_policy: energy must be in [0, 1], got ", energy);
    const index_t n = std::min(d_in, d_out);
    if (rank == 0) return 0;
    // Clamp in double before converting, so that a huge absolute rank cannot overflow.
    const double base = std::min(std::floor(rank <= 1 ? rank * static_cast<double>(n) : rank),
                                 static_cast<double>(n));
    return std::min(std::max(static_cast<index_t>(base), min_rank), n);
  }

  /// The final rank given the leading singular values `sigma` (descending; all of them, or at
  /// least the cap's worth) and `total_energy` = Σσ² over the whole spectrum. When the given
  /// values do not reach the energy target, the cap is returned.
  /// Throws errc::invalid_argument as resolve(d_in, d_out), or for a negative or non-finite
  /// total_energy.
  index_t resolve(index_t d_in, index_t d_out, const Eigen::Ref<const Eigen::VectorXd>& sigma,
                  double total_energy) const {
    const index_t cap = resolve(d_in, d_out);
    if (energy == 0 || cap == 0) return cap;
    MASQUANT_CHECK(std::isfinite(total_energy) && total_energy >= 0, errc::invalid_argument,
                   "rank_policy::resolve: total_energy must be finite and >= 0, got ",
                   total_energy);
    const double target = energy * total_energy;
    index_t r = cap;
    double captured = 0;
    for (index_t i = 0; i <= sigma.size(); ++i) {
      if (captured >= target) {
        r = i;
        break;
      }
      if (i < sigma.size()) captured += sigma[i] * sigma[i];
    }
    return std::min(std::max(r, min_rank), cap);
  }
};

/// Roy–Vetterli effective rank of a singular spectrum, as the reference computes it
/// (docs/compensation.md, "Diagnostics"): keep σ_i > 1e-15, p_i = σ_i / Σσ, erank = exp(-Σ p_i
/// ln(p_i + 1e-12)). k equal non-zero values give k (to about k·1e-12 relative); an empty or
/// all-zero spectrum gives 0. Throws errc::invalid_argument for a negative or non-finite value.
inline double effective_rank(const Eigen::Ref<const Eigen::VectorXd>& sigma) {
  double sum = 0;
  for (index_t i = 0; i < sigma.size(); ++i) {
    MASQUANT_CHECK(std::isfinite(sigma[i]) && sigma[i] >= 0, errc::invalid_argument,
                   "effective_rank: singular value ", i, " is ", sigma[i]);
    if (sigma[i] > 1e-15) sum += sigma[i];
  }
  if (sum == 0) return 0;
  double entropy = 0;
  for (index_t i = 0; i < sigma.size(); ++i) {
    if (sigma[i] <= 1e-15) continue;
    const double p = sigma[i] / sum;
    entropy -= p * std::log(p + 1e-12);
  }
  return std::exp(entropy);
}

}  // namespace masquant
