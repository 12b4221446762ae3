// linear_params.hpp: everything that defines a deployable MASQuant linear (the quantized shared
// weight, per-modality smoothing factors and low-rank corrections), as plain data.
#pragma once

#include <cmath>
#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <masquant/tensor/eigen.hpp>
#include <string>
#include <vector>

namespace masquant {

/// One non-reference modality's Cross-Modal Compensation: L·R ≈ ΔWᵀ (docs/compensation.md), added
/// to that modality's tokens as (x ⊘ s_m)·L·R. Empty L and R (size 0) mean no correction.
struct lowrank_factors {
  row_matrix<float> L;  ///< [d_in, r]
  row_matrix<float> R;  ///< [r, d_out]
  index_t rank() const noexcept { return L.cols(); }
  /// Whether this modality has a correction (rank > 0).
  bool active() const noexcept { return L.size() != 0 || R.size() != 0; }
};

/// The parameters of a quantized_linear (the calibrate output; docs/file-format.md, "masquant's
/// file contract").
///
/// Per token n of modality m the layer computes
///   y_n = Q_a(x_n ⊘ s_m)·Ŵᵀ + b + [m ≠ 0 and lowrank[m] active]·(x_n ⊘ s_m)·L_m·R_m,
/// Ŵ[o, i] = qweight[o·d_in + i]·wscale[o], Q_a symmetric per token with activation_bits.
///
/// Example (a 2-modality layer without correction):
/// \code
///   masquant::quantized_linear_params p;
///   p.d_in = 4096; p.d_out = 4096;
///   p.qweight = q;                  // d_out * d_in levels in [-127, 127]
///   p.wscale = w_scale;             // d_out
///   p.smooth = {s_text, s_vision};  // each d_in
///   p.modality_names = {"text", "vision"};
///   p.validate();
/// \endcode
struct quantized_linear_params {
  index_t d_in = 0, d_out = 0;
  /// 2..8, symmetric per output channel; <= 4 is packed as INT4 for the kernel.
  int weight_bits = 8;
  /// 2..8 symmetric per token (dynamic), or >= 16: activations not quantized (A16).
  int activation_bits = 8;
  /// [d_out * d_in] row-major integer levels of Q_w(W·diag(s_ref)), |q| <= 2^(b-1)-1.
  std::vector<std::int8_t> qweight;
  /// [d_out]: dequantized weight = qweight[n, k] * wscale[n].
  std::vector<float> wscale;
  /// [d_out] or empty.
  std::vector<float> bias;
  /// [modalities][d_in], positive and finite; smooth[0] is s_ref.
  std::vector<std::vector<float>> smooth;
  /// [modalities] (or empty); an inactive entry means no correction; never active for 0.
  std::vector<lowrank_factors> lowrank;
  /// [modalities] or empty (then "0", "1", ...).
  std::vector<std::string> modality_names;

  /// Number of modalities (smooth.size()).
  index_t modalities() const noexcept { return static_cast<index_t>(smooth.size()); }

  /// The name of modality m: modality_names[m], or its number when no names are given.
  std::string modality_name(index_t m) const {
    if (m >= 0 && m < static_cast<index_t>(modality_names.size())) {
      return modality_names[static_cast<std::size_t>(m)];
    }
    return std::to_string(m);
  }

  /// Whether modality m carries a low-rank correction.
  bool has_lowrank(index_t m) const noexcept {
    return m > 0 && m < static_cast<index_t>(lowrank.size()) &&
           lowrank[static_cast<std::size_t>(m)].active();
  }

  /// Checks every field. Throws masquant::error naming the field, the modality and the shape:
  /// errc::invalid_argument for bad extents, bit widths, levels, names, non-positive scales or
  /// smoothing factors; errc::shape_mismatch for a vector or matrix of the wrong size;
  /// errc::non_finite for a NaN/Inf value.
  void validate() const;
};

inline void quantized_linear_params::validate() const {
  constexpr const char* op = "quantized_linear_params";
  MASQUANT_CHECK(d_in > 0 && d_out > 0, errc::invalid_argument, op, ": d_in = ", d_in,
                 ", d_out = ", d_out, " (both must be positive)");
  MASQUANT_CHECK(weight_bits >= 2 && weight_bits <= 8, errc::invalid_argument, op,
                 ": weight_bits = ", weight_bits, " (must be 2..8)");
  MASQUANT_CHECK((activation_bits >= 2 && activation_bits <= 8) || activation_bits >= 16,
                 errc::invalid_argument, op, ": activation_bits = ", activation_bits,
                 " (must be 2..8, or >= 16 for unquantized activations)");

  MASQUANT_CHECK(static_cast<index_t>(qweight.size()) == d_out * d_in, errc::shape_mismatch, op,
                 ": qweight has ", qweight.size(), " levels, expected d_out * d_in = ", d_out,
                 " * ", d_in, " = ", d_out * d_in);
  const int qmax = (1 << (weight_bits - 1)) - 1;
  for (std::size_t i = 0; i < qweight.size(); ++i) {
    // NOLINTNEXTLINE(bugprone-signed-char-misuse): a quantized level, not a character
    const int q = qweight[i];
    MASQUANT_CHECK(q >= -qmax && q <= qmax, errc::invalid_argument, op, ": qweight[",
                   static_cast<index_t>(i) / d_in, ", ", static_cast<index_t>(i) % d_in, "] = ", q,
                   " is outside [-", qmax, ", ", qmax, "] for weight_bits = ", weight_bits);
  }
  MASQUANT_CHECK(static_cast<index_t>(wscale.size()) == d_out, errc::shape_mismatch, op,
                 ": wscale has ", wscale.size(), " entries, expected d_out = ", d_out);
  for (std::size_t i = 0; i < wscale.size(); ++i) {
    MASQUANT_CHECK(std::isfinite(wscale[i]), errc::non_finite, op, ": wscale[", i, "] is ",
                   wscale[i]);
    MASQUANT_CHECK(wscale[i] > 0.0f, errc::invalid_argument, op, ": wscale[", i, "] = ", wscale[i],
                   " (must be positive)");
  }
  MASQUANT_CHECK(bias.empty() || static_cast<index_t>(bias.size()) == d_out, errc::shape_mismatch,
                 op, ": bias has ", bias.size(), " entries, expected d_out = ", d_out, " or none");
  for (std::size_t i = 0; i < bias.size(); ++i) {
    MASQUANT_CHECK(std::isfinite(bias[i]), errc::non_finite, op, ": bias[", i, "] is ", bias[i]);
  }

  const index_t mods = modalities();
  MASQUANT_CHECK(mods >= 1 && mods <= 256, errc::invalid_argument, op, ": smooth has ", mods,
                 " modalities (need 1..256; smooth[0] is the reference modality's)");
  for (index_t m = 0; m < mods; ++m) {
    const auto& s = smooth[static_cast<std::size_t>(m)];
    MASQUANT_CHECK(static_cast<index_t>(s.size()) == d_in, errc::shape_mismatch, op, ": smooth[", m,
                   "] (modality '", modality_name(m), "') has ", s.size(),
                   " entries, expected d_in = ", d_in);
    for (std::size_t j = 0; j < s.size(); ++j) {
      MASQUANT_CHECK(std::isfinite(s[j]), errc::non_finite, op, ": smooth[", m, "] (modality '",
                     modality_name(m), "') entry ", j, " is ", s[j]);
      MASQUANT_CHECK(s[j] > 0.0f, errc::invalid_argument, op, ": smooth[", m, "] (modality '",
                     modality_name(m), "') entry ", j, " = ", s[j], " (must be positive)");
    }
  }

  MASQUANT_CHECK(modality_names.empty() || static_cast<index_t>(modality_names.size()) == mods,
                 errc::shape_mismatch, op, ": modality_names has ", modality_names.size(),
                 " names for ", mods, " modalities");
  for (std::size_t i = 0; i < modality_names.size(); ++i) {
    MASQUANT_CHECK(!modality_names[i].empty(), errc::invalid_argument, op, ": modality_names[", i,
                   "] is empty");
    for (std::size_t j = 0; j < i; ++j) {
      MASQUANT_CHECK(modality_names[i] != modality_names[j], errc::invalid_argument, op,
                     ": modality_names[", j, "] and [", i, "] are both '", modality_names[i], "'");
    }
  }

  MASQUANT_CHECK(lowrank.empty() || static_cast<index_t>(lowrank.size()) == mods,
                 errc::shape_mismatch, op, ": lowrank has ", lowrank.size(), " entries for ", mods,
                 " modalities (one per modality, or none)");
  for (index_t m = 0; m < static_cast<index_t>(lowrank.size()); ++m) {
    const auto& f = lowrank[static_cast<std::size_t>(m)];
    if (!f.active()) continue;
    MASQUANT_CHECK(m != 0, errc::invalid_argument, op, ": lowrank[0] (reference modality '",
                   modality_name(0), "') must be empty, got L ", f.L.rows(), "x", f.L.cols(),
                   " and R ", f.R.rows(), "x", f.R.cols());
    MASQUANT_CHECK(
        f.L.rows() == d_in && f.L.cols() > 0 && f.R.rows() == f.L.cols() && f.R.cols() == d_out,
        errc::shape_mismatch, op, ": lowrank[", m, "] (modality '", modality_name(m), "') has L ",
        f.L.rows(), "x", f.L.cols(), " and R ", f.R.rows(), "x", f.R.cols(), ", expected L ", d_in,
        "xr and R rx", d_out, " with r > 0");
    for (const auto* mat : {&f.L, &f.R}) {
      for (index_t r = 0; r < mat->rows(); ++r) {
        for (index_t c = 0; c < mat->cols(); ++c) {
          MASQUANT_CHECK(std::isfinite((*mat)(r, c)), errc::non_finite, op, ": lowrank[", m, "].",
                         mat == &f.L ? "L" : "R", " (modality '", modality_name(m), "') element (",
                         r, ", ", c, ") is ", (*mat)(r, c));
        }
      }
    }
  }
}

}  // namespace masquant
