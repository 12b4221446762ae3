// calibration_data.hpp: where a model's calibration comes from — statistics files (merged record
// by record when several shards are given) with optional token subsamples, or raw calibration
// tokens per linear — behind one interface the quantize pipeline reads one input at a time.
#pragma once

#include <algorithm>
#include <map>
#include <masquant/error.hpp>
#include <masquant/io/safetensors_file.hpp>
#include <masquant/io/statistics_file.hpp>
#include <masquant/model/plan.hpp>
#include <masquant/smooth/problem.hpp>
#include <masquant/stats/modality_stats.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace masquant {

/// Calibration tokens of one linear or input, per modality id (owned; views in `views`).
struct token_sample {
  std::vector<owned_tensor<float>> tokens;  ///< [modalities], each [N_m, d_in] (N_m may be 0)
  /// Views of the tokens, or nothing when no modality has any (no sample).
  modality_inputs views() const {
    modality_inputs out;
    if (empty()) return out;
    for (const auto& t : tokens)
      out.push_back(t.rows() == 0 ? matrix_view<const float>() : t.matrix());
    return out;
  }
  bool empty() const {
    for (const auto& t : tokens)
      if (t.rows() > 0) return false;
    return true;
  }
};

/// The calibration data of a model:
/// - from statistics files (statistics_file): the record of an input is the merge of its records
///   in every file (shards of one capture); optional token files hold subsamples for what needs
///   tokens (learned MAS, the α search, the report) as X.inputs.<modality> [tokens, d_in], X a
///   linear's name or its input's key, concatenated over the files in order;
/// - or from one file of raw calibration tokens, P.inputs.<modality> per linear P (the
///   `masquant calibrate` contract), a linear without its own tokens taking its input key's: the
///   statistics are computed from the tokens, which also serve as the sample.
/// Modalities: the statistics files' list (all files must agree), or for raw tokens the
/// reference first and the other names in name order (as `masquant calibrate` numbers them).
class calibration_data {
 public:
  /// Statistics files and optional token files. Throws errc::invalid_argument when the files'
  /// modalities differ (naming both files), and what opening them throws.
  static calibration_data from_statistics(const std::vector<std::string>& statistics,
                                          const std::vector<std::string>& tokens) {
    MASQUANT_CHECK(!statistics.empty(), errc::invalid_argument,
                   "calibration data: no statistics file");
    calibration_data d;
    for (const auto& p : statistics) d.stats_.push_back(std::make_shared<statistics_file>(p));
    d.modalities_ = d.stats_.front()->modalities();
    for (const auto& f : d.stats_)
      MASQUANT_CHECK(f->modalities() == d.modalities_, errc::invalid_argument, f->source(),
                     ": modalities (", statistics_set::join(f->modalities()),
                     ") differ from those of ", d.stats_.front()->source(), " (",
                     statistics_set::join(d.modalities_), ")");
    for (const auto& p : tokens) d.token_files_.push_back(std::make_shared<safetensors_file>(p));
    d.check_token_files();
    return d;
  }

  /// Raw calibration tokens (P.inputs.<modality>) in one file; `reference` is modality 0.
  /// Throws errc::invalid_argument when the file holds no tokens of `reference`.
  static calibration_data from_tokens(const std::string& path, const std::string& reference) {
    calibration_data d;
    d.token_files_.push_back(std::make_shared<safetensors_file>(path));
    d.raw_ = true;
    std::vector<std::string> names;
    for (const auto& t : d.token_files_.front()->tensors()) {
      const auto at = t.name.rfind(".inputs.");
      if (at == std::string::npos || at == 0) continue;
      const std::string m = t.name.substr(at + 8);
      if (!m.empty() && m.find('.') == std::string::npos &&
          std::find(names.begin(), names.end(), m) == names.end())
        names.push_back(m);
    }
    std::sort(names.begin(), names.end());
    const auto ref = std::find(names.begin(), names.end(), reference);
    MASQUANT_CHECK(ref != names.end(), errc::invalid_argument, path,
                   ": no calibration tokens of the reference modality '", reference,
                   "' (no tensor P.inputs.", reference, ")");
    std::rotate(names.begin(), ref, ref + 1);
    d.modalities_ = names;
    d.check_token_files();
    return d;
  }

  /// Modality names in id order (the reference first).
  const std::vector<std::string>& modalities() const noexcept { return modalities_; }
  bool from_raw_tokens() const noexcept { return raw_; }
  bool has_samples() const noexcept { return !token_files_.empty(); }

  /// Channels and tokens per modality of input `key` (over every file), or nothing when no file
  /// describes it. For raw tokens, those of `key`'s own tensors.
  std::optional<input_summary> summary(const std::string& key) const {
    input_summary s;
    s.tokens.assign(modalities_.size(), 0);
    bool found = false;
    std::vector<bool> first_gram;
    if (raw_) {
      for (std::size_t m = 0; m < modalities_.size(); ++m)
        if (const tensor_info* t = token_tensor(key, m)) {
          found = true;
          s.channels = t->shape.cols();
          s.tokens[m] = t->shape.rows();
        }
      return found ? std::optional(s) : std::nullopt;
    }
    for (const auto& f : stats_) {
      if (!f->has(key)) continue;
      const index_t c = f->channels(key);
      MASQUANT_CHECK(!found || c == s.channels, errc::shape_mismatch, f->source(), ": input '", key,
                     "' has ", c, " channels, ", s.channels, " in ", stats_.front()->source());
      found = true;
      s.channels = c;
      const auto n = f->tokens(key);
      const auto& g = f->gram_flags(key);
      MASQUANT_CHECK(s.gram.empty() || first_gram == g, errc::invalid_argument, f->source(),
                     ": input '", key, "' keeps Gram matrices for other modalities than in ",
                     stats_.front()->source(), " (shards of one capture must agree)");
      if (s.gram.empty()) {
        s.gram.assign(g.size(), true);
        first_gram = g;
      }
      for (std::size_t m = 0; m < n.size(); ++m) {
        s.tokens[m] += n[m];
        s.gram[m] = s.gram[m] && (g[m] || n[m] == 0);
      }
    }
    return found ? std::optional(s) : std::nullopt;
  }

  /// The statistics of what linear `linear` (reading input `key`) sees: the merged record of
  /// `key`, or for raw tokens those of its tokens (with the Gram of every non-reference modality
  /// when `gram`). Throws errc::invalid_argument naming a modality whose Gram matrix
  /// compensation needs (`gram`, tokens > 0) but no file keeps.
  modality_stats record(const std::string& linear, const std::string& key, bool gram,
                        const parallel_for_fn& parallel = {}) const {
    if (raw_) {
      const token_sample t = samples(linear, key);
      const index_t c = t.tokens.front().cols();
      modality_stats s(c, static_cast<index_t>(modalities_.size()),
                       gram ? gram_mode::non_reference : gram_mode::none);
      for (std::size_t m = 0; m < t.tokens.size(); ++m)
        if (t.tokens[m].rows() > 0)
          detail::with_context(
              detail::cat(token_files_.front()->source(), ": tokens of '", linear, "', modality '",
                          modalities_[m], "'"),
              [&] { s.add(t.tokens[m].matrix(), static_cast<modality_id>(m), parallel); });
      return s;
    }
    modality_stats merged;
    bool first = true;
    for (const auto& f : stats_) {
      if (!f->has(key)) continue;
      modality_stats s = f->load(key);
      if (first) {
        merged = std::move(s);
        first = false;
      } else {
        detail::with_context(detail::cat(f->source(), ": input '", key, "'"),
                             [&] { merged.merge(s); });
      }
    }
    MASQUANT_CHECK(!first, errc::invalid_argument, "no statistics for input '", key, "'");
    if (gram)
      for (index_t m = 1; m < merged.modalities(); ++m) {
        const channel_stats& s = merged[static_cast<modality_id>(m)];
        MASQUANT_CHECK(s.count() == 0 || s.has_gram(), errc::invalid_argument,
                       "the statistics of input '", key, "' keep no Gram matrix of modality '",
                       modalities_[std::size_t(m)],
                       "', which compensation needs (capture it with the Gram matrix)");
      }
    return merged;
  }

  /// The token sample of linear `linear` reading input `key`: per modality its own tokens
  /// (linear.inputs.<m>) or else its input's (key.inputs.<m>), concatenated over the token
  /// files; empty modalities where no file has any. Throws errc::shape_mismatch naming a tensor
  /// of another width than the others.
  token_sample samples(const std::string& linear, const std::string& key) const {
    token_sample out;
    index_t width = -1;
    for (std::size_t m = 0; m < modalities_.size(); ++m) {
      std::vector<owned_tensor<float>> parts;
      index_t rows = 0;
      for (const auto& f : token_files_) {
        const tensor_info* t = f->find(linear + ".inputs." + modalities_[m]);
        if (!t) t = f->find(key + ".inputs." + modalities_[m]);
        if (!t) continue;
        MASQUANT_CHECK(width < 0 || t->shape[1] == width, errc::shape_mismatch, f->source(),
                       ": tensor '", t->name, "' is ", t->shape, ", expected [tokens, ", width,
                       "] as the other tokens of '", linear, "'");
        width = t->shape[1];
        parts.push_back(f->load_f32(t->name));
        rows += parts.back().rows();
      }
      owned_tensor<float> all(tensor_shape{rows, std::max<index_t>(width, 0)});
      index_t at = 0;
      for (const auto& p : parts) {
        std::copy(p.values().begin(), p.values().end(), all.values().begin() + at * width);
        at += p.rows();
      }
      out.tokens.push_back(std::move(all));
    }
    for (auto& t : out.tokens)
      if (t.rows() == 0) t = owned_tensor<float>(tensor_shape{0, std::max<index_t>(width, 0)});
    return out;
  }

 private:
  const tensor_info* token_tensor(const std::string& key, std::size_t m) const {
    return token_files_.front()->find(key + ".inputs." + modalities_[m]);
  }

  // Token tensors must be 2-D with a modality of the data (a typo would be silently unused).
  void check_token_files() const {
    for (const auto& f : token_files_)
      for (const auto& t : f->tensors()) {
        const auto at = t.name.rfind(".inputs.");
        if (at == std::string::npos) continue;
        const std::string m = t.name.substr(at + 8);
        MASQUANT_CHECK(std::find(modalities_.begin(), modalities_.end(), m) != modalities_.end(),
                       errc::invalid_argument, f->source(), ": tensor '", t.name,
                       "' has tokens of modality '", m, "', which the statistics do not have (",
                       statistics_set::join(modalities_), ")");
        MASQUANT_CHECK(t.shape.rank() == 2, errc::format_error, f->source(), ": tensor '", t.name,
                       "' is ", t.shape, ", expected [tokens, d_in]");
      }
  }

  std::vector<std::shared_ptr<statistics_file>> stats_;
  std::vector<std::shared_ptr<safetensors_file>> token_files_;
  std::vector<std::string> modalities_;
  bool raw_ = false;
};

}  // namespace masquant
