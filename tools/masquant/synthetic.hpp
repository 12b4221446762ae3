// synthetic.hpp: the demo's embedded multimodal layer: a weight and calibration activations whose
// per-modality statistics look like a multimodal LLM's decoder linear (deterministic for a seed).
#pragma once

#include <Eigen/Core>
#include <cstdint>
#include <masquant/tensor/eigen.hpp>
#include <random>
#include <string>
#include <vector>

namespace masquant::cli {

/// One modality's activations, [tokens, d_in] row-major.
struct synthetic_modality {
  std::string name;
  row_matrix<float> x;
  std::vector<index_t> outlier_channels;
};

/// A linear layer y = x·Wᵀ + b with calibration activations for text, vision and audio.
struct synthetic_layer {
  row_matrix<float> weight;                    ///< [d_out, d_in]
  Eigen::VectorXf bias;                        ///< [d_out]
  std::vector<synthetic_modality> modalities;  ///< text (reference) first
};

/// Builds the demo layer. What each modality looks like, and why:
/// - text: unit-scale channels (log-normal spread) plus a few *massive* channels (~50x) in every
///   token, as LLM residual streams show;
/// - vision: 3x larger, concentrated on a rank-24 subspace (image patches are highly
///   correlated), with its own outlier channels (~30x) that text does not have;
/// - audio: in between (1.5x, rank 64) with milder outliers (~10x) on yet other channels.
/// SmoothQuant's merged factor is then set by vision in vision's outlier channels and by text in
/// the massive ones, so each modality is over-smoothed somewhere: the misalignment MASQuant fixes.
inline synthetic_layer make_synthetic_layer(index_t d = 2048, index_t tokens = 512,
                                            std::uint64_t seed = 2) {
  std::mt19937_64 gen(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  auto gaussian = [&](index_t r, index_t c, float sigma) {
    row_matrix<float> m(r, c);
    for (index_t i = 0; i < m.size(); ++i) m.data()[i] = sigma * normal(gen);
    return m;
  };
  auto pick_channels = [&](index_t count) {
    std::vector<index_t> ch;
    std::uniform_int_distribution<index_t> any(0, d - 1);
    while (index_t(ch.size()) < count) {
      const index_t c = any(gen);
      bool dup = false;
      for (index_t o : ch) dup = dup || o == c;
      if (!dup) ch.push_back(c);
    }
    return ch;
  };

  synthetic_layer layer;
  // Weight: Gaussian with a mild per-input-column spread, so SmoothQuant's weight term matters.
  layer.weight = gaussian(d, d, 1.0f / std::sqrt(float(d)));
  {
    std::lognormal_distribution<float> col(0.0f, 0.3f);
    for (index_t j = 0; j < d; ++j) layer.weight.col(j) *= col(gen);
  }
  layer.bias = Eigen::VectorXf::Zero(d);
  for (index_t i = 0; i < d; ++i) layer.bias(i) = 0.02f * normal(gen);

  std::lognormal_distribution<float> spread(0.0f, 0.5f);
  Eigen::VectorXf channel_scale(d);
  for (index_t j = 0; j < d; ++j) channel_scale(j) = spread(gen);

  // text: per-channel scales, plus massive channels.
  synthetic_modality text{"text", gaussian(tokens, d, 1.0f), pick_channels(4)};
  for (index_t j = 0; j < d; ++j) text.x.col(j) *= channel_scale(j);
  for (index_t c : text.outlier_channels) {
    const float level = 40.0f + 20.0f * std::abs(normal(gen));
    for (index_t t = 0; t < tokens; ++t) text.x(t, c) = level * (1.0f + 0.1f * normal(gen));
  }

  // A low-rank modality: tokens = codes · basis (+ small isotropic noise), scaled, with outliers.
  auto low_rank = [&](const char* name, index_t rank, float scale, float noise, index_t outliers,
                      float outlier_gain) {
    synthetic_modality m{
        name, gaussian(tokens, rank, 1.0f) * gaussian(rank, d, scale / std::sqrt(float(rank))),
        pick_channels(outliers)};
    m.x += gaussian(tokens, d, noise);
    for (index_t j = 0; j < d; ++j) m.x.col(j) *= channel_scale(j);
    for (index_t c : m.outlier_channels) m.x.col(c) *= outlier_gain;
    return m;
  };
  layer.modalities.push_back(std::move(text));
  layer.modalities.push_back(low_rank("vision", 24, 3.0f, 0.05f, 8, 30.0f));
  layer.modalities.push_back(low_rank("audio", 64, 1.5f, 0.1f, 6, 10.0f));
  return layer;
}

}  // namespace masquant::cli
