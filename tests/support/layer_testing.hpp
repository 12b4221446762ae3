// layer_testing.hpp: random quantized_linear parameters and inputs, and an error bound for
// comparing forward() with reference_forward(). Not installed.
#pragma once

#include <Eigen/Core>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <masquant/layer/quantized_linear.hpp>
#include <random>
#include <string>
#include <vector>

#include "support/testing.hpp"

namespace masquant::testing {

/// Shape and options of a random layer: ranks[m] = rank of modality m (0: no factors; ranks[0]
/// is ignored).
struct layer_case {
  index_t d_in = 16, d_out = 16;
  int weight_bits = 8, activation_bits = 8;
  std::vector<index_t> ranks = {0};
  bool bias = true;
  std::uint64_t seed = 1;

  index_t modalities() const { return static_cast<index_t>(ranks.size()); }
  std::string name() const {
    std::string s = "d_in=" + std::to_string(d_in) + " d_out=" + std::to_string(d_out) + " W" +
                    std::to_string(weight_bits) + "A" + std::to_string(activation_bits) + " ranks=";
    for (auto r : ranks) s += std::to_string(r) + ",";
    return s + " seed=" + std::to_string(seed);
  }
};

/// Random parameters: levels uniform over the full range, smoothing factors in [0.2, 5] (a few
/// channels much larger, as outlier channels), factors scaled so that the correction is of the
/// same order as the main product.
inline quantized_linear_params random_params(const layer_case& c) {
  std::mt19937_64 gen(c.seed);
  std::uniform_real_distribution<float> u01(0.0f, 1.0f);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  quantized_linear_params p;
  p.d_in = c.d_in;
  p.d_out = c.d_out;
  p.weight_bits = c.weight_bits;
  p.activation_bits = c.activation_bits;
  const int qmax = (1 << (c.weight_bits - 1)) - 1;
  std::uniform_int_distribution<int> level(-qmax, qmax);
  p.qweight.resize(static_cast<std::size_t>(c.d_in * c.d_out));
  for (auto& q : p.qweight) q = static_cast<std::int8_t>(level(gen));
  p.wscale.resize(static_cast<std::size_t>(c.d_out));
  for (auto& s : p.wscale)
    s = (0.5f + u01(gen)) / static_cast<float>(qmax) / std::sqrt(float(c.d_in));
  if (c.bias) {
    p.bias.resize(static_cast<std::size_t>(c.d_out));
    for (auto& b : p.bias) b = 0.1f * normal(gen);
  }
  p.smooth.resize(static_cast<std::size_t>(c.modalities()));
  for (auto& s : p.smooth) {
    s.resize(static_cast<std::size_t>(c.d_in));
    for (auto& v : s) v = 0.2f + 4.8f * u01(gen) * u01(gen);
    s[static_cast<std::size_t>(gen() % static_cast<std::uint64_t>(c.d_in))] *= 10.0f;
  }
  p.lowrank.resize(static_cast<std::size_t>(c.modalities()));
  for (index_t m = 1; m < c.modalities(); ++m) {
    const index_t r = c.ranks[static_cast<std::size_t>(m)];
    if (r == 0) continue;
    auto& f = p.lowrank[static_cast<std::size_t>(m)];
    f.L.resize(c.d_in, r);
    f.R.resize(r, c.d_out);
    for (index_t i = 0; i < f.L.size(); ++i) f.L.data()[i] = normal(gen) / std::sqrt(float(c.d_in));
    for (index_t i = 0; i < f.R.size(); ++i) f.R.data()[i] = normal(gen) / std::sqrt(float(r));
  }
  for (index_t m = 0; m < c.modalities(); ++m)
    p.modality_names.push_back("mod" + std::to_string(m));
  return p;
}

/// Activations [m, d_in]: N(0, 1) with one outlier channel (x 20).
inline matrix<float> random_input(index_t m, index_t d_in, std::uint64_t seed) {
  matrix<float> x = random_normal(m, d_in, 1.0f, seed);
  for (index_t r = 0; r < m; ++r) x(r, d_in / 3) *= 20.0f;
  return x;
}

/// Ids [m], each in [0, modalities) except `absent` (a modality with no rows), deterministic.
inline std::vector<modality_id> random_ids(index_t m, index_t modalities, std::uint64_t seed,
                                           index_t absent = -1) {
  std::mt19937_64 gen(seed);
  std::vector<modality_id> ids(static_cast<std::size_t>(m));
  for (auto& id : ids) {
    do {
      id = static_cast<modality_id>(gen() % static_cast<std::uint64_t>(modalities));
    } while (modalities > 1 && id == absent);
  }
  return ids;
}

/// The factor as the layer stores it: rounded to bf16 by Eigen (an implementation independent of
/// the layer's) or exact.
inline double stored(float v, lowrank_storage storage) {
  return storage == lowrank_storage::bfloat16
             ? static_cast<double>(static_cast<float>(Eigen::bfloat16(v)))
             : static_cast<double>(v);
}

/// Per output element, a bound on |forward - reference_forward| (see the derivation in
/// layer_forward_test.cpp): 8·eps·(Σ_k |a_k Ŵ_nk| + |b_n|) + c·S_n, with
/// S_n = Σ_j (Σ_k |x̃_k L_kj|)·|R_jn| and c = (d_in + r + 8)·eps for float products, plus 2^-7
/// when the correction runs on bf16 activations; A16 adds (d_in + 8)·eps on the main term.
inline row_matrix<double> error_bound(const quantized_linear& layer, const matrix<float>& x,
                                      const std::vector<modality_id>& ids, bool bf16_activations) {
  const auto& p = layer.params();
  const index_t m_rows = x.rows, k = p.d_in, n = p.d_out;
  const double eps = FLT_EPSILON;
  row_matrix<double> bound(m_rows, n);
  for (index_t i = 0; i < m_rows; ++i) {
    const index_t m = ids.empty() ? 0 : ids[static_cast<std::size_t>(i)];
    const auto& s = p.smooth[static_cast<std::size_t>(m)];
    std::vector<double> xs(static_cast<std::size_t>(k)), a(static_cast<std::size_t>(k));
    float absmax = 0.0f;
    for (index_t j = 0; j < k; ++j) {
      const float v = x(i, j) / s[static_cast<std::size_t>(j)];
      xs[static_cast<std::size_t>(j)] = std::abs(v);
      absmax = std::max(absmax, std::abs(v));
    }
    // |Q_a(v)| <= |v| + Δ/2 <= |v| + absmax (bounds the fake-quantized activation).
    for (index_t j = 0; j < k; ++j)
      a[static_cast<std::size_t>(j)] = xs[static_cast<std::size_t>(j)] + absmax;
    const bool a16 = p.activation_bits >= 16;
    const double main_c = a16 ? (k + 8) * eps : 8 * eps;
    for (index_t c = 0; c < n; ++c) {
      double terms = p.bias.empty() ? 0.0 : std::abs(p.bias[static_cast<std::size_t>(c)]);
      for (index_t j = 0; j < k; ++j) {
        terms += a[static_cast<std::size_t>(j)] *
                 std::abs(double(p.qweight[static_cast<std::size_t>(c * k + j)]) *
                          p.wscale[static_cast<std::size_t>(c)]);
      }
      bound(i, c) = main_c * terms;
    }
    if (!layer.has_lowrank(m)) continue;
    const auto& f = p.lowrank[static_cast<std::size_t>(m)];
    const index_t r = f.rank();
    std::vector<double> t(static_cast<std::size_t>(r), 0.0);
    for (index_t q = 0; q < r; ++q)
      for (index_t j = 0; j < k; ++j)
        t[static_cast<std::size_t>(q)] +=
            xs[static_cast<std::size_t>(j)] * std::abs(stored(f.L(j, q), layer.options().storage));
    const double lr_c = (k + r + 8) * eps + (bf16_activations ? 1.0 / 128 : 0.0);
    for (index_t c = 0; c < n; ++c) {
      double sum = 0.0;
      for (index_t q = 0; q < r; ++q)
        sum +=
            t[static_cast<std::size_t>(q)] * std::abs(stored(f.R(q, c), layer.options().storage));
      bound(i, c) += lr_c * sum;
    }
  }
  return bound;
}

}  // namespace masquant::testing
