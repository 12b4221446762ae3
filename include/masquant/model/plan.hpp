// plan.hpp: what quantizing a checkpoint with a recipe produces — the linears and the groups that
// share an input, every output tensor with its shape, and the output's shards — worked out in
// full before any calibration, so that every run of the same inputs writes the same bytes.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <masquant/error.hpp>
#include <masquant/io/checkpoint.hpp>
#include <masquant/io/safetensors_stream_writer.hpp>
#include <masquant/linalg/rank_policy.hpp>
#include <masquant/model/recipe.hpp>
#include <masquant/stats/statistics_set.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace masquant {

/// A linear of the checkpoint that the recipe quantizes.
struct planned_linear {
  std::string name;  ///< module name P: the checkpoint holds P.weight [d_out, d_in]
  index_t d_in = 0, d_out = 0;
  bool bias = false;  ///< the checkpoint holds P.bias
  linear_settings settings;
  /// Compensation rank of each modality (0: none), by modality id; the reference's is 0.
  std::vector<index_t> ranks;
};

/// Linears that read the same input and are calibrated together (one statistics record).
struct planned_group {
  std::string input;  ///< the statistics key: the name of the group's first member present
  std::vector<planned_linear> linears;
  bool tied = false;  ///< one smoothing vector per modality for the whole group
};

/// One unit of the output: a group of quantized linears, or one tensor copied as it is.
struct plan_unit {
  std::optional<planned_group> group;
  std::string copied;  ///< the copied tensor's name (when not a group)
  std::vector<tensor_declaration> outputs;
  std::uint64_t bytes = 0;  ///< sum of the outputs' sizes
};

/// One output file: consecutive units.
struct plan_shard {
  std::string file;
  std::vector<std::size_t> units;
  std::vector<tensor_declaration> tensors;
};

/// What the statistics say about one input: channels and tokens per modality (ids of the
/// recipe's modality list).
struct input_summary {
  index_t channels = 0;
  std::vector<std::int64_t> tokens;
  /// Per modality: whether the statistics keep its Gram matrix (empty: computed as needed).
  std::vector<bool> gram;
};

/// The whole output of quantizing a checkpoint.
struct quantization_plan {
  std::vector<std::string> modalities;  ///< id order, reference first
  std::vector<plan_unit> units;         ///< in output order
  std::vector<plan_shard> shards;
  index_t linears = 0;  ///< quantized linears in all
  std::uint64_t total_bytes = 0;

  /// The unit holding a quantized linear, or null.
  const plan_unit* unit_of_linear(const std::string& name) const {
    for (const auto& u : units)
      if (u.group)
        for (const auto& l : u.group->linears)
          if (l.name == name) return &u;
    return nullptr;
  }
};

namespace detail {

/// "a.b.10" < "a.b.9" as text, but decoder blocks are numbered: compare digit runs by value.
inline bool natural_less(const std::string& a, const std::string& b) {
  std::size_t i = 0, j = 0;
  while (i < a.size() && j < b.size()) {
    if (std::isdigit(static_cast<unsigned char>(a[i])) &&
        std::isdigit(static_cast<unsigned char>(b[j]))) {
      std::size_t i2 = i, j2 = j;
      while (i2 < a.size() && std::isdigit(static_cast<unsigned char>(a[i2]))) ++i2;
      while (j2 < b.size() && std::isdigit(static_cast<unsigned char>(b[j2]))) ++j2;
      const std::string x = a.substr(i, i2 - i), y = b.substr(j, j2 - j);
      const std::string xs = x.substr(std::min(x.find_first_not_of('0'), x.size()));
      const std::string ys = y.substr(std::min(y.find_first_not_of('0'), y.size()));
      if (xs.size() != ys.size()) return xs.size() < ys.size();
      if (xs != ys) return xs < ys;
      if (x.size() != y.size()) return x.size() < y.size();
      i = i2;
      j = j2;
    } else {
      if (a[i] != b[j]) return a[i] < b[j];
      ++i;
      ++j;
    }
  }
  return a.size() - i < b.size() - j;
}

inline std::string strip_suffix(const std::string& s, const std::string& suffix) {
  return s.size() > suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0
             ? s.substr(0, s.size() - suffix.size())
             : std::string();
}

}  // namespace detail

/// The output tensors of one quantized linear, by the per-layer file contract: P.qweight I8
/// [d_out, d_in], P.wscale F32 [d_out], P.bias F32 [d_out] when the checkpoint has one,
/// P.smooth.<m> F32 [d_in] for every modality, P.lowrank.<m>.L F32 [d_in, r] and .R F32
/// [r, d_out] for every modality with rank r > 0.
inline std::vector<tensor_declaration> linear_outputs(const planned_linear& l,
                                                      const std::vector<std::string>& modalities) {
  std::vector<tensor_declaration> out;
  out.push_back({l.name + ".qweight", dtype::i8, {l.d_out, l.d_in}});
  out.push_back({l.name + ".wscale", dtype::f32, {l.d_out}});
  if (l.bias) out.push_back({l.name + ".bias", dtype::f32, {l.d_out}});
  for (std::size_t m = 0; m < modalities.size(); ++m) {
    out.push_back({l.name + ".smooth." + modalities[m], dtype::f32, {l.d_in}});
    const index_t r = l.ranks[m];
    if (r == 0) continue;
    out.push_back({l.name + ".lowrank." + modalities[m] + ".L", dtype::f32, {l.d_in, r}});
    out.push_back({l.name + ".lowrank." + modalities[m] + ".R", dtype::f32, {r, l.d_out}});
  }
  return out;
}

/// Works out the plan of quantizing `ckpt` with `recipe`:
/// - linears: every rank-2 tensor P.weight whose module name P a target matches and no ignore
///   pattern does; every pattern (target, ignore, override) must match some module of the
///   checkpoint;
/// - groups: siblings listed together in recipe.groups share one input, keyed by the first member
///   present (q_proj of q/k/v); a tied group's members must agree on every setting;
/// - `inputs(key)` describes the statistics of each input (channels, tokens per modality), or
///   returns nothing when there are none; a modality with tokens gets compensation of rank
///   rank_policy::resolve(d_in, d_out) in every compensated linear;
/// - units in natural name order of their first tensor (decoder blocks in numeric order), cut
///   into shards of at most `shard_bytes` (a unit larger than that alone in its shard), named
///   model-0000i-of-0000n.safetensors (model.safetensors when there is one).
/// Throws errc::invalid_argument naming the pattern that matches nothing, the linear whose input
/// has no statistics or statistics of another width, the tied group whose settings differ.
inline quantization_plan make_plan(
    const hf_checkpoint& ckpt, const quantization_recipe& recipe,
    const std::vector<std::string>& modalities,
    const std::function<std::optional<input_summary>(const std::string&)>& inputs,
    std::uint64_t shard_bytes) {
  constexpr const char* op = "quantization plan";
  recipe.validate();
  MASQUANT_CHECK(!modalities.empty() && modalities.front() == recipe.reference,
                 errc::invalid_argument, op, ": the modalities (", statistics_set::join(modalities),
                 ") must start with the reference '", recipe.reference, "'");
  if (!recipe.modalities.empty())
    MASQUANT_CHECK(recipe.modalities == modalities, errc::invalid_argument, op,
                   ": the recipe's modalities (", statistics_set::join(recipe.modalities),
                   ") differ from the statistics' (", statistics_set::join(modalities), ")");
  MASQUANT_CHECK(shard_bytes > 0, errc::invalid_argument, op, ": shard size must be > 0");

  std::vector<name_pattern> targets, ignore, overrides;
  for (const auto& p : recipe.targets) targets.emplace_back(p);
  for (const auto& p : recipe.ignore) ignore.emplace_back(p);
  for (const auto& o : recipe.overrides) overrides.emplace_back(o.match);
  std::vector<bool> target_used(targets.size()), ignore_used(ignore.size()),
      override_used(overrides.size());

  // Modules: every tensor name without its last component, and rank-2 weights.
  std::set<std::string> modules;
  std::vector<std::string> linears;
  for (const auto& n : ckpt.tensor_names()) {
    const auto dot = n.rfind('.');
    if (dot != std::string::npos) modules.insert(n.substr(0, dot));
    const std::string p = detail::strip_suffix(n, ".weight");
    if (!p.empty() && ckpt.info(n).shape.rank() == 2) linears.push_back(p);
  }
  for (const auto& m : modules)
    for (std::size_t i = 0; i < ignore.size(); ++i)
      ignore_used[i] = ignore_used[i] || ignore[i].matches(m);

  // Quantized linears and their settings.
  std::map<std::string, planned_linear> chosen;
  for (const auto& p : linears) {
    bool targeted = false;
    for (std::size_t i = 0; i < targets.size(); ++i)
      if (targets[i].matches(p)) targeted = target_used[i] = true;
    bool ignored = false;
    for (const auto& g : ignore) ignored = ignored || g.matches(p);
    if (!targeted || ignored) continue;
    planned_linear l;
    l.name = p;
    const tensor_info& w = ckpt.info(p + ".weight");
    l.d_out = w.shape[0];
    l.d_in = w.shape[1];
    MASQUANT_CHECK(w.type == dtype::f32 || w.type == dtype::bf16 || w.type == dtype::f16,
                   errc::not_supported, op, ": ", p, ".weight is ", w.type,
                   " (quantizing needs F32, BF16 or F16 weights)");
    MASQUANT_CHECK(l.d_in >= 1 && l.d_out >= 1, errc::invalid_argument, op, ": ", p, ".weight is ",
                   w.shape);
    if (ckpt.has(p + ".bias")) {
      const tensor_info& b = ckpt.info(p + ".bias");
      MASQUANT_CHECK(b.shape.rank() == 1 && b.shape[0] == l.d_out, errc::format_error, op, ": ", p,
                     ".bias is ", b.shape, ", expected [", l.d_out, "]");
      l.bias = true;
    }
    l.settings = recipe.settings_of(p);
    for (std::size_t i = 0; i < overrides.size(); ++i)
      override_used[i] = override_used[i] || overrides[i].matches(p);
    chosen.emplace(p, std::move(l));
  }
  for (std::size_t i = 0; i < targets.size(); ++i)
    MASQUANT_CHECK(target_used[i], errc::invalid_argument, op, ": target pattern '",
                   recipe.targets[i], "' matches no linear (rank-2 P.weight) of ",
                   ckpt.directory());
  for (std::size_t i = 0; i < ignore.size(); ++i)
    MASQUANT_CHECK(ignore_used[i], errc::invalid_argument, op, ": ignore pattern '",
                   recipe.ignore[i], "' matches no module of ", ckpt.directory());
  for (std::size_t i = 0; i < overrides.size(); ++i)
    MASQUANT_CHECK(override_used[i], errc::invalid_argument, op, ": override pattern '",
                   recipe.overrides[i].match, "' matches no quantized linear");

  // Groups: siblings of one recipe group share their input.
  std::map<std::string, planned_group> groups;  // by input key
  for (auto& [name, l] : chosen) {
    (void)name;
    const auto dot = l.name.rfind('.');
    const std::string parent = dot == std::string::npos ? "" : l.name.substr(0, dot + 1);
    const std::string leaf = l.name.substr(parent.size());
    std::string key = l.name;
    const std::vector<std::string>* members = nullptr;
    for (const auto& g : recipe.groups)
      if (std::find(g.begin(), g.end(), leaf) != g.end()) members = &g;
    if (members)
      for (const auto& m : *members)
        if (chosen.count(parent + m)) {
          key = parent + m;
          break;
        }
    auto& g = groups[key];
    g.input = key;
    g.tied = members != nullptr && recipe.tie_group_smoothing;
    g.linears.push_back(l);
  }

  quantization_plan plan;
  plan.modalities = modalities;
  std::set<std::string> consumed;  // checkpoint tensors replaced by quantized ones
  for (auto& [key, g] : groups) {
    // Members in recipe order (q, k, v), so a group always calibrates the same way.
    const auto leaf_rank = [&](const planned_linear& l) {
      const std::string leaf = l.name.substr(l.name.rfind('.') + 1);
      for (const auto& grp : recipe.groups) {
        const auto it = std::find(grp.begin(), grp.end(), leaf);
        if (it != grp.end()) return it - grp.begin();
      }
      return std::ptrdiff_t{0};
    };
    std::stable_sort(g.linears.begin(), g.linears.end(),
                     [&](const auto& a, const auto& b) { return leaf_rank(a) < leaf_rank(b); });
    const auto summary = inputs(key);
    MASQUANT_CHECK(summary.has_value(), errc::invalid_argument, op, ": no statistics for input '",
                   key, "' (read by ", g.linears.size() == 1 ? "linear '" : "linears '",
                   g.linears.front().name, g.linears.size() > 1 ? "', ..." : "'", ")");
    MASQUANT_CHECK(summary->tokens.size() == modalities.size(), errc::invalid_argument, op,
                   ": the statistics of input '", key, "' have ", summary->tokens.size(),
                   " modalities, expected ", modalities.size());
    for (auto& l : g.linears) {
      MASQUANT_CHECK(summary->channels == l.d_in, errc::invalid_argument, op,
                     ": the statistics of input '", key, "' have ", summary->channels,
                     " channels, but ", l.name, ".weight has d_in = ", l.d_in);
      MASQUANT_CHECK(!g.tied || (l.settings.wbits == g.linears[0].settings.wbits &&
                                 l.settings.abits == g.linears[0].settings.abits &&
                                 l.settings.method == g.linears[0].settings.method &&
                                 l.settings.alpha == g.linears[0].settings.alpha &&
                                 l.settings.learn_steps == g.linears[0].settings.learn_steps),
                     errc::invalid_argument, op, ": tied group '", key, "': ", l.name,
                     " has other smoothing settings than ", g.linears[0].name);
      l.ranks.assign(modalities.size(), 0);
      if (l.settings.compensated()) {
        rank_policy policy;
        policy.rank = *l.settings.rank;
        policy.min_rank = *l.settings.min_rank;
        for (std::size_t m = 1; m < modalities.size(); ++m) {
          if (summary->tokens[m] == 0) continue;
          MASQUANT_CHECK(summary->gram.empty() || summary->gram[m], errc::invalid_argument, op,
                         ": the statistics of input '", key, "' keep no Gram matrix of modality '",
                         modalities[m], "', which the compensation of ", l.name,
                         " needs (capture it with the Gram matrix, or give it rank 0)");
          l.ranks[m] = policy.resolve(l.d_in, l.d_out);
        }
      }
      consumed.insert(l.name + ".weight");
      if (l.bias) consumed.insert(l.name + ".bias");
      ++plan.linears;
    }
    plan_unit u;
    for (const auto& l : g.linears) {
      const auto outs = linear_outputs(l, modalities);
      u.outputs.insert(u.outputs.end(), outs.begin(), outs.end());
    }
    u.group = std::move(g);
    plan.units.push_back(std::move(u));
  }
  for (const auto& n : ckpt.tensor_names()) {
    if (consumed.count(n)) continue;
    plan_unit u;
    u.copied = n;
    const tensor_info& t = ckpt.info(n);
    u.outputs.push_back({n, t.type, t.shape});
    plan.units.push_back(std::move(u));
  }
  for (auto& u : plan.units)
    for (const auto& t : u.outputs) u.bytes += t.bytes();
  std::stable_sort(plan.units.begin(), plan.units.end(), [](const auto& a, const auto& b) {
    return detail::natural_less(a.outputs.front().name, b.outputs.front().name);
  });

  // Shards of consecutive units.
  std::uint64_t current = 0;
  for (std::size_t i = 0; i < plan.units.size(); ++i) {
    const auto& u = plan.units[i];
    if (plan.shards.empty() || (current > 0 && current + u.bytes > shard_bytes)) {
      plan.shards.emplace_back();
      current = 0;
    }
    plan.shards.back().units.push_back(i);
    plan.shards.back().tensors.insert(plan.shards.back().tensors.end(), u.outputs.begin(),
                                      u.outputs.end());
    current += u.bytes;
    plan.total_bytes += u.bytes;
  }
  const std::size_t n = plan.shards.size();
  for (std::size_t k = 0; k < n; ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, n);
    plan.shards[k].file = n == 1 ? checkpoint_single_name : name;
  }
  return plan;
}

}  // namespace masquant
