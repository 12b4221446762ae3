// smooth_testing.hpp: helpers for the smoothing tests — synthetic multimodal layers and an
// independent float64 evaluation of the smoothed, fake-quantized forward. Not installed.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <masquant/quant/reference.hpp>
#include <masquant/smooth/detail/ste_quantizer.hpp>
#include <masquant/smooth/problem.hpp>
#include <random>
#include <vector>

#include "support/testing.hpp"

namespace masquant::testing {

/// A synthetic layer: weight [d_out, d_in], bias [d_out], and tokens per modality.
struct synthetic_layer {
  matrix<float> weight;
  std::vector<float> bias;
  std::vector<matrix<float>> tokens;  // by modality id

  linear_group group(bool with_bias = true) const {
    linear_group g{{weight.cview()}, {}};
    if (with_bias) g.biases.push_back(bias);
    return g;
  }
  modality_inputs inputs() const {
    modality_inputs in;
    for (const auto& t : tokens) in.push_back(t.cview());
    return in;
  }
};

/// Text-like tokens N(0, 1) with mild per-channel spread; for each further modality, the same
/// distribution with the channels in `outliers` scaled by `outlier_scale` (the misalignment of
/// algorithm.md §2: another modality dominates a few channels).
inline synthetic_layer make_layer(index_t d_in, index_t d_out, std::vector<index_t> tokens,
                                  const std::vector<index_t>& outliers, float outlier_scale,
                                  std::uint64_t seed) {
  synthetic_layer l;
  l.weight = random_normal(d_out, d_in, 0.2f, seed);
  std::mt19937_64 gen(seed + 1);
  std::normal_distribution<float> normal;
  l.bias.resize(static_cast<std::size_t>(d_out));
  for (auto& b : l.bias) b = 0.1f * normal(gen);
  std::vector<float> spread(static_cast<std::size_t>(d_in));
  for (auto& v : spread) v = std::exp(0.5f * normal(gen));
  for (std::size_t m = 0; m < tokens.size(); ++m) {
    matrix<float> x(tokens[m], d_in);
    for (index_t n = 0; n < x.rows; ++n)
      for (index_t j = 0; j < d_in; ++j)
        x(n, j) = normal(gen) * spread[static_cast<std::size_t>(j)];
    if (m > 0)
      for (index_t j : outliers)
        for (index_t n = 0; n < x.rows; ++n) x(n, j) *= outlier_scale;
    l.tokens.push_back(std::move(x));
  }
  return l;
}

/// Σ(y + bias)², Σ(ŷ - y)² and Σ|ŷ - y| over a modality's tokens and outputs.
struct naive_sums {
  double signal = 0, noise = 0, abs_err = 0;
};

/// Independent evaluation of ŷ = Q_a(x ⊘ a)·Q_w(W·diag(b))ᵀ + bias and y = x·Wᵀ + bias for one
/// modality: smoothing and quantizers in float through masquant::reference, products in double.
/// a, b empty: no smoothing.
inline naive_sums naive_forward(const matrix<float>& w, const std::vector<float>& bias,
                                const matrix<float>& x, const std::vector<float>& a,
                                const std::vector<float>& b, const quant_spec& wspec,
                                const quant_spec& aspec) {
  naive_sums s;
  if (x.rows == 0) return s;
  matrix<float> ws(w.rows, w.cols), wq(w.rows, w.cols), xs(x.rows, x.cols), xq(x.rows, x.cols);
  for (index_t o = 0; o < w.rows; ++o)
    for (index_t j = 0; j < w.cols; ++j)
      ws(o, j) = b.empty() ? w(o, j) : w(o, j) * b[static_cast<std::size_t>(j)];
  for (index_t n = 0; n < x.rows; ++n)
    for (index_t j = 0; j < x.cols; ++j)
      xs(n, j) = a.empty() ? x(n, j) : x(n, j) / a[static_cast<std::size_t>(j)];
  reference::fake_quant(ws.cview(), wspec, wq.view());
  reference::fake_quant(xs.cview(), aspec, xq.view());
  for (index_t n = 0; n < x.rows; ++n)
    for (index_t o = 0; o < w.rows; ++o) {
      double y = 0, yh = 0;
      for (index_t j = 0; j < x.cols; ++j) {
        y += double(x(n, j)) * double(w(o, j));
        yh += double(xq(n, j)) * double(wq(o, j));
      }
      const double bo = bias.empty() ? 0.0 : bias[static_cast<std::size_t>(o)];
      s.signal += (y + bo) * (y + bo);
      s.noise += (yh - y) * (yh - y);
      s.abs_err += std::abs(yh - y);
    }
  return s;
}

/// The surrogate of the straight-through estimator at x0: the same quantizer with the rounding
/// offset rne(v0) - v0, the clamp decision and the extreme element(s) frozen at x0, so that its
/// exact derivative at x0 is what the STE defines. Evaluated in double by a direct transcription
/// of the formulas (independent of ste_backward).
struct frozen_quantizer {
  quant_spec spec;
  std::vector<double> x0;
  index_t rows, cols;
  bool freeze_scale = false;  ///< also hold Δ at its value at x0 (a "detached" scale)

  /// The surrogate's outputs at x.
  std::vector<double> outputs(const std::vector<double>& x) const {
    std::vector<double> y(x.size());
    masquant::detail::for_each_ste_group(spec, 0, rows, cols, [&](masquant::detail::ste_group g) {
      auto at = [&](const std::vector<double>& v, index_t r, index_t c) { return v[r * cols + c]; };
      // Extremes at x0 (the first attaining index; the tests avoid ties).
      index_t rmax = g.r0, cmax = g.c0, rmin = g.r0, cmin = g.c0;
      for (index_t r = g.r0; r < g.r1; ++r)
        for (index_t c = g.c0; c < g.c1; ++c) {
          const double a = spec.symmetric ? std::abs(at(x0, r, c)) : at(x0, r, c);
          const double amax = spec.symmetric ? std::abs(at(x0, rmax, cmax)) : at(x0, rmax, cmax);
          if (a > amax) rmax = r, cmax = c;
          if (at(x0, r, c) < at(x0, rmin, cmin)) rmin = r, cmin = c;
        }
      auto delta_of = [&](const std::vector<double>& v) {
        const double qmax = spec.qmax();
        const double raw = spec.symmetric ? std::abs(at(v, rmax, cmax)) / qmax
                                          : (at(v, rmax, cmax) - at(v, rmin, cmin)) / qmax;
        return std::min(std::max(raw, 1e-5), 1e4);
      };
      const double d0 = delta_of(x0), d = freeze_scale ? d0 : delta_of(x);
      const double z =
          spec.symmetric ? 0.0
                         : std::nearbyint(std::min(std::max(-at(x0, rmin, cmin) / d0, -1e4), 1e4));
      for (index_t r = g.r0; r < g.r1; ++r)
        for (index_t c = g.c0; c < g.c1; ++c) {
          const double v0 = at(x0, r, c) / d0;
          const double level0 = std::nearbyint(v0) + z;
          const bool inside = level0 >= spec.qmin() && level0 <= spec.qmax();
          // q - z, formed without adding and subtracting z (a large z would cost digits).
          const double qz =
              inside ? at(x, r, c) / d + (std::nearbyint(v0) - v0)
                     : std::min(std::max(level0, double(spec.qmin())), double(spec.qmax())) - z;
          y[static_cast<std::size_t>(r * cols + c)] = qz * d;
        }
    });
    return y;
  }

  /// Central difference of Σ up·y in x[i], summed from per-element differences so that the
  /// outputs that do not move (often huge ones) cancel exactly instead of drowning the rest.
  double central_difference(const std::vector<double>& x, const std::vector<double>& up,
                            std::size_t i, double h) const {
    auto xp = x, xm = x;
    xp[i] += h;
    xm[i] -= h;
    const auto yp = outputs(xp), ym = outputs(xm);
    double total = 0;
    for (std::size_t e = 0; e < y_size(); ++e) total += up[e] * (yp[e] - ym[e]);
    return total / (2 * h);
  }
  std::size_t y_size() const { return static_cast<std::size_t>(rows * cols); }
};

/// 10·log10(signal / noise).
inline double db(double signal, double noise) {
  return 10.0 * std::log10(signal / noise);
}

}  // namespace masquant::testing
