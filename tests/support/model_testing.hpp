// model_testing.hpp: small synthetic Hugging Face checkpoints (Qwen2-style decoder naming, GQA
// k/v narrower than q, optional vision tower) and statistics for them, written by the tests.
#pragma once

#include <cstdint>
#include <fstream>
#include <masquant/io/safetensors.hpp>
#include <masquant/stats/statistics_set.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/testing.hpp"

namespace masquant::testing {

/// Shape and storage of a synthetic checkpoint.
struct tiny_model {
  std::string model_type = "qwen2";
  index_t blocks = 2;
  index_t hidden = 32;
  index_t intermediate = 48;
  index_t heads = 4, kv_heads = 2;  ///< head dim hidden / heads; k/v have kv_heads * that rows
  index_t vocab = 40;
  bool vision_tower = false;  ///< adds visual.* tensors (kept in float by the VL preset)
  bool qkv_bias = true;       ///< Qwen2 has q/k/v biases
  dtype weights = dtype::bf16;
  int shards = 1;  ///< 1: model.safetensors; more: model-0000i-of-0000n + index
  std::uint64_t seed = 7;

  index_t head_dim() const { return hidden / heads; }
  index_t kv_width() const { return kv_heads * head_dim(); }

  /// Every linear of the decoder: (module name, d_out, d_in).
  struct linear {
    std::string name;
    index_t d_out, d_in;
  };
  std::vector<linear> decoder_linears() const {
    std::vector<linear> out;
    for (index_t b = 0; b < blocks; ++b) {
      const std::string p = "model.layers." + std::to_string(b) + ".";
      out.push_back({p + "self_attn.q_proj", hidden, hidden});
      out.push_back({p + "self_attn.k_proj", kv_width(), hidden});
      out.push_back({p + "self_attn.v_proj", kv_width(), hidden});
      out.push_back({p + "self_attn.o_proj", hidden, hidden});
      out.push_back({p + "mlp.gate_proj", intermediate, hidden});
      out.push_back({p + "mlp.up_proj", intermediate, hidden});
      out.push_back({p + "mlp.down_proj", hidden, intermediate});
    }
    return out;
  }

  /// Writes the checkpoint into `dir` (which must exist).
  void write(const std::string& dir) const {
    std::vector<std::pair<std::string, matrix<float>>> tensors;
    std::uint64_t s = seed;
    auto add = [&](const std::string& name, index_t r, index_t c, float sigma) {
      tensors.emplace_back(name, random_normal(r, c, sigma, ++s));
    };
    add("model.embed_tokens.weight", vocab, hidden, 1.0f);
    for (index_t b = 0; b < blocks; ++b) {
      const std::string p = "model.layers." + std::to_string(b) + ".";
      add(p + "input_layernorm.weight", 1, hidden, 1.0f);
      add(p + "post_attention_layernorm.weight", 1, hidden, 1.0f);
    }
    for (const auto& l : decoder_linears()) {
      add(l.name + ".weight", l.d_out, l.d_in, 0.05f);
      if (qkv_bias && (l.name.find("q_proj") != std::string::npos ||
                       l.name.find("k_proj") != std::string::npos ||
                       l.name.find("v_proj") != std::string::npos))
        add(l.name + ".bias", 1, l.d_out, 0.02f);
    }
    add("model.norm.weight", 1, hidden, 1.0f);
    add("lm_head.weight", vocab, hidden, 0.05f);
    if (vision_tower) {
      add("visual.blocks.0.mlp.gate_proj.weight", 16, 12, 0.1f);
      add("visual.blocks.0.mlp.down_proj.weight", 12, 16, 0.1f);
      add("visual.merger.mlp.0.weight", hidden, 12, 0.1f);
    }
    std::vector<safetensors_writer> files(static_cast<std::size_t>(shards));
    nlohmann::json map = nlohmann::json::object();
    for (std::size_t i = 0; i < tensors.size(); ++i) {
      const std::size_t k = i * files.size() / tensors.size();
      const auto& [name, m] = tensors[i];
      if (m.rows == 1) {
        files[k].add(name, vector_view<const float>(m.data.data(), m.cols), weights);
      } else {
        files[k].add(name, m.cview(), weights);
      }
      map[name] = shard_name(k);
    }
    for (std::size_t k = 0; k < files.size(); ++k) files[k].write(dir + "/" + shard_name(k));
    if (shards > 1) {
      nlohmann::json index;
      index["metadata"]["total_size"] = 0;
      index["weight_map"] = map;
      std::ofstream(dir + "/model.safetensors.index.json") << index.dump(2);
    }
    nlohmann::json config;
    config["model_type"] = model_type;
    config["hidden_size"] = hidden;
    config["intermediate_size"] = intermediate;
    config["num_hidden_layers"] = blocks;
    config["num_attention_heads"] = heads;
    config["num_key_value_heads"] = kv_heads;
    config["torch_dtype"] = weights == dtype::bf16 ? "bfloat16" : "float32";
    std::ofstream(dir + "/config.json") << config.dump(2);
  }

  std::string shard_name(std::size_t k) const {
    if (shards == 1) return "model.safetensors";
    char buf[64];
    std::snprintf(buf, sizeof buf, "model-%05zu-of-%05d.safetensors", k + 1, shards);
    return buf;
  }

  /// Calibration activations of one input: `tokens` rows per modality; text with two massive
  /// channels, vision larger and low-rank with outliers of its own, audio in between.
  static matrix<float> activations(index_t tokens, index_t channels, modality_id m,
                                   std::uint64_t seed) {
    matrix<float> x = random_normal(tokens, channels, 1.0f, seed);
    if (m == 0) {
      for (index_t t = 0; t < tokens; ++t) {
        x(t, 1) *= 30.0f;
        x(t, channels - 2) *= 20.0f;
      }
    } else {
      const auto basis = random_normal(3, channels, 4.0f * float(m), seed + 1);
      const auto coef = random_normal(tokens, 3, 1.0f, seed + 2);
      for (index_t t = 0; t < tokens; ++t)
        for (index_t c = 0; c < channels; ++c) {
          float v = 0.2f * x(t, c);
          for (index_t k = 0; k < 3; ++k) v += coef(t, k) * basis(k, c);
          x(t, c) = v * (c == 3 * m ? 15.0f : 1.0f);
        }
    }
    return x;
  }
};

}  // namespace masquant::testing
