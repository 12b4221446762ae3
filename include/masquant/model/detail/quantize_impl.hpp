// quantize_impl.hpp: the definition of quantize_checkpoint() (model/quantize.hpp).
#pragma once

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <masquant/model/quantize.hpp>
#include <string>
#include <vector>

namespace masquant::detail {

// The run's shared state: inputs, plan and where the work stands.
struct quantize_run {
  const quantize_options& options;
  const hf_checkpoint& ckpt;
  const calibration_data& data;
  const quantization_plan& plan;
  quantize_result& result;
  double work_total = 0, work_done = 0;
  index_t linears_total = 0, linears_done = 0;

  static double work_of(const planned_linear& l) {
    double compensated = 0;
    for (index_t r : l.ranks) compensated += r > 0 ? 1 : 0;
    return static_cast<double>(l.d_in) * static_cast<double>(l.d_out) * (1 + 4 * compensated);
  }

  void plan_work(const std::vector<std::size_t>& units) {
    for (std::size_t u : units)
      if (const auto& g = plan.units[u].group)
        for (const auto& l : g->linears) {
          work_total += work_of(l);
          ++linears_total;
        }
  }

  void notify(const std::string& linear, const calibration_progress* stage, double fraction,
              bool finished = false) {
    if (!options.progress) return;
    quantize_progress p;
    p.linear = linear;
    p.finished = finished;
    p.linears_done = linears_done;
    p.linears_total = linears_total;
    p.work_done = work_total > 0 ? std::min(1.0, (work_done + fraction) / work_total) : 1.0;
    p.stage = stage;
    options.progress(p);
  }

  // Writes one linear's parameters as its planned tensors (the plan fixed their shapes).
  void write_linear(safetensors_stream_writer& out, const planned_linear& l,
                    const quantized_linear_params& p) const {
    for (std::size_t m = 0; m < plan.modalities.size(); ++m) {
      const index_t r = p.has_lowrank(static_cast<index_t>(m)) ? p.lowrank[m].rank() : 0;
      MASQUANT_CHECK(r == l.ranks[m], errc::numerical_issue, l.name, ": compensation of modality '",
                     plan.modalities[m], "' has rank ", r, " where the plan has ", l.ranks[m]);
    }
    out.write(l.name + ".qweight",
              matrix_view<const std::int8_t>(p.qweight.data(), p.d_out, p.d_in));
    out.write(l.name + ".wscale", vector_view<const float>(p.wscale.data(), p.d_out));
    if (l.bias) out.write(l.name + ".bias", vector_view<const float>(p.bias.data(), p.d_out));
    for (std::size_t m = 0; m < plan.modalities.size(); ++m) {
      const std::string& name = plan.modalities[m];
      out.write(l.name + ".smooth." + name, vector_view<const float>(p.smooth[m].data(), p.d_in));
      if (l.ranks[m] == 0) continue;
      out.write(l.name + ".lowrank." + name + ".L", view_of(p.lowrank[m].L));
      out.write(l.name + ".lowrank." + name + ".R", view_of(p.lowrank[m].R));
    }
  }

  // Calibrates a group and writes its tensors.
  template <class Deferred>
  void write_group(safetensors_stream_writer& out, const planned_group& g) {
    bool gram = false;
    for (const auto& l : g.linears)
      for (index_t r : l.ranks) gram = gram || r > 0;
    std::optional<modality_stats> shared;
    if (!data.from_raw_tokens()) shared = data.record(g.input, g.input, gram, options.parallel);
    std::vector<owned_tensor<float>> weights, biases;
    for (const auto& l : g.linears) {
      weights.push_back(ckpt.load_f32(l.name + ".weight"));
      ckpt.release(l.name + ".weight");
      biases.push_back(l.bias ? ckpt.load_f32(l.name + ".bias") : owned_tensor<float>());
    }
    // A tied group's factors: stages 2 and 3 once, on the stacked weight of its members.
    std::optional<std::pair<smoothing_stage, learning_stage>> tied;
    if (g.tied) {
      const modality_stats record =
          shared ? *shared : data.record(g.input, g.input, gram, options.parallel);
      tied = tied_factors<Deferred>(g, weights, biases, record);
    }
    for (std::size_t i = 0; i < g.linears.size(); ++i) {
      const planned_linear& l = g.linears[i];
      const token_sample sample = data.samples(l.name, g.input);
      std::optional<modality_stats> own;
      if (data.from_raw_tokens()) own = data.record(l.name, g.input, gram, options.parallel);
      const calibration_config config = config_of(l);
      notify(l.name, nullptr, 0);
      const calibration_result r = with_context(l.name, [&] {
        const calibration_problem problem(weights[i].matrix(),
                                          l.bias ? biases[i].vector() : vector_view<const float>(),
                                          plan.modalities, sample.views(), config);
        const auto stats = calibration_statistics::view(own ? *own : *shared);
        if (tied) return calibrate<Deferred>(problem, stats, tied->first, tied->second);
        return calibrate<Deferred>(problem, stats);
      });
      write_linear(out, l, r.params);
      result.linears.push_back({l.name, r.report});
      work_done += work_of(l);
      ++linears_done;
      notify(l.name, nullptr, 0, true);
    }
  }

  // The calibration_config of a linear, with the run's threads and progress.
  calibration_config config_of(const planned_linear& l) {
    calibration_config config = calibration_config_of(l.settings);
    config.parallel = options.parallel;
    const double work = work_of(l);
    const std::string name = l.name;
    config.progress = [this, work, name](const calibration_progress& p) {
      notify(name, &p, work * (static_cast<double>(p.step) / std::max<index_t>(p.steps, 1)) / 2);
    };
    return config;
  }

  // The smoothing of a tied group: initial and learned factors of its stacked weight
  // [Σ d_out, d_in] (SmoothQuant's weight term the max over every member's column, the learning
  // loss over the concatenated outputs).
  template <class Deferred>
  std::pair<smoothing_stage, learning_stage> tied_factors(
      const planned_group& g, const std::vector<owned_tensor<float>>& weights,
      const std::vector<owned_tensor<float>>& biases, const modality_stats& record) {
    const index_t d_in = g.linears.front().d_in;
    index_t rows = 0;
    for (const auto& l : g.linears) rows += l.d_out;
    row_matrix<float> stacked(rows, d_in);
    std::vector<float> bias(static_cast<std::size_t>(rows), 0.0f);
    bool any_bias = false;
    for (std::size_t i = 0, r = 0; i < g.linears.size();
         r += std::size_t(g.linears[i].d_out), ++i) {
      stacked.middleRows(index_t(r), g.linears[i].d_out) = as_eigen(weights[i].matrix());
      if (g.linears[i].bias) {
        std::copy(biases[i].values().begin(), biases[i].values().end(), bias.begin() + r);
        any_bias = true;
      }
    }
    const token_sample sample = data.samples(g.input, g.input);
    const calibration_problem problem(
        view_of(stacked), any_bias ? vector_view<const float>(bias) : vector_view<const float>(),
        plan.modalities, sample.views(), config_of(g.linears.front()));
    const auto stats = calibration_statistics::view(record);
    smoothing_stage init = initial_factors<Deferred>(problem, stats);
    learning_stage learned = learn_factors<Deferred>(problem, stats, init);
    return {std::move(init), std::move(learned)};
  }
};

inline std::string part_name(const model_part& part) {
  fnv1a h;
  if (part.layers) h.add_value(part.layers->first).add_value(part.layers->second);
  for (const auto& p : part.only) h.add(p);
  std::string name = "part";
  if (part.layers)
    name +=
        "-layers-" + std::to_string(part.layers->first) + "-" + std::to_string(part.layers->second);
  if (!part.only.empty()) name += "-" + h.hex().substr(0, 8);
  return name + ".safetensors";
}

inline bool in_part(const model_part& part, const planned_group& g) {
  for (const auto& l : g.linears) {
    const index_t b = block_of(l.name);
    const bool layer_ok = !part.layers || (b >= part.layers->first && b <= part.layers->second);
    bool name_ok = part.only.empty();
    for (const auto& p : part.only) name_ok = name_ok || name_pattern(p).matches(l.name);
    if (layer_ok && name_ok) return true;
  }
  return false;
}

// Removes temporaries an interrupted run left next to `path` (".name.tmp-*").
inline void remove_stale_temporaries(const std::filesystem::path& dir, const std::string& file) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return;
  const std::string prefix = "." + file + ".tmp-";
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().filename().string().rfind(prefix, 0) == 0) std::filesystem::remove(e.path(), ec);
}

inline void write_text_atomically(const std::string& path, const std::string& text) {
  atomic_file f(path);
  f.write(text.data(), text.size());
  f.commit();
}

}  // namespace masquant::detail

namespace masquant {

template <class Deferred>
quantize_result quantize_checkpoint(const quantize_options& o) {
  namespace fs = std::filesystem;
  constexpr const char* op = "quantize";
  MASQUANT_CHECK(!o.model.empty() && !o.output.empty(), errc::invalid_argument, op,
                 ": a model directory and an output directory are needed");
  MASQUANT_CHECK(o.inputs.empty() != o.statistics.empty(), errc::invalid_argument, op,
                 ": give statistics files or a file of calibration inputs, not ",
                 o.inputs.empty() ? "neither" : "both");
  MASQUANT_CHECK(o.inputs.empty() || o.tokens.empty(), errc::invalid_argument, op,
                 ": token samples go with statistics files (raw inputs are their own sample)");
  MASQUANT_CHECK(!(o.join && !o.part.empty()), errc::invalid_argument, op,
                 ": a join takes the whole model, not a part");
  for (const auto& p : o.part.only) name_pattern{p};

  const hf_checkpoint ckpt(o.model);
  const calibration_data data = o.inputs.empty()
                                    ? calibration_data::from_statistics(o.statistics, o.tokens)
                                    : calibration_data::from_tokens(o.inputs, o.recipe.reference);
  quantize_result result;
  result.plan = make_plan(
      ckpt, o.recipe, data.modalities(), [&](const std::string& key) { return data.summary(key); },
      o.shard_bytes);
  const quantization_plan& plan = result.plan;

  // The fingerprint: every input and choice the output's bytes depend on.
  detail::fnv1a h;
  h.add(version_string).add(to_json(o.recipe).dump()).add_value(o.shard_bytes);
  for (const auto& m : plan.modalities) h.add(m);
  detail::add_file_identity(h, ckpt.path("config.json"));
  for (const auto& s : ckpt.shard_names()) detail::add_file_identity(h, ckpt.path(s));
  for (const auto& p : o.statistics) detail::add_file_identity(h, p);
  for (const auto& p : o.tokens) detail::add_file_identity(h, p);
  if (!o.inputs.empty()) detail::add_file_identity(h, o.inputs);
  result.fingerprint = h.hex();
  const std::map<std::string, std::string> metadata{
      {"format", "masquant"}, {detail::shard_metadata_key(), result.fingerprint}};

  const fs::path out(o.output);
  const fs::path parts = out / "parts";
  std::error_code ec;
  const bool exists = fs::exists(out, ec);
  MASQUANT_CHECK(!exists || fs::is_directory(out, ec), errc::io_error, o.output,
                 ": exists and is not a directory");
  if (o.join) {
    MASQUANT_CHECK(fs::is_directory(parts, ec), errc::invalid_argument, op, ": ", parts.string(),
                   ": no parts to join (run the parts first)");
  } else if (o.part.empty()) {
    MASQUANT_CHECK(!exists || o.existing != existing_output::refuse, errc::invalid_argument, op,
                   ": ", o.output,
                   " exists (resume an interrupted run with --resume, overwrite with --force)");
  } else {
    // Parts of one run share the output directory; a finished checkpoint is not a place for them.
    MASQUANT_CHECK(!fs::exists(out / "config.json", ec) || o.existing == existing_output::overwrite,
                   errc::invalid_argument, op, ": ", o.output,
                   " holds a finished checkpoint (config.json); use --force to add parts to it");
  }
  fs::create_directories(o.part.empty() ? out : parts, ec);
  MASQUANT_CHECK(!ec, errc::io_error, o.output, ": cannot create the directory: ", ec.message());

  detail::quantize_run run{o, ckpt, data, plan, result};

  if (!o.part.empty()) {  // a part: the selected groups' tensors in one file of their own
    std::vector<std::size_t> units;
    std::vector<tensor_declaration> tensors;
    for (std::size_t u = 0; u < plan.units.size(); ++u)
      if (plan.units[u].group && detail::in_part(o.part, *plan.units[u].group)) {
        units.push_back(u);
        tensors.insert(tensors.end(), plan.units[u].outputs.begin(), plan.units[u].outputs.end());
      }
    MASQUANT_CHECK(!units.empty(), errc::invalid_argument, op,
                   ": the part selects no quantized linear");
    result.part_file = (parts / detail::part_name(o.part)).string();
    detail::remove_stale_temporaries(parts, detail::part_name(o.part));
    run.plan_work(units);
    safetensors_stream_writer w(result.part_file, tensors, metadata);
    for (std::size_t u : units) run.template write_group<Deferred>(w, *plan.units[u].group);
    w.commit();
    return result;
  }

  // Which part file holds each tensor, for a join.
  std::map<std::string, std::pair<std::string, std::uint64_t>> joined;  // name -> file, offset
  std::vector<std::unique_ptr<safetensors_file>> part_files;
  if (o.join) {
    for (const auto& e : fs::directory_iterator(parts)) {
      const std::string p = e.path().string();
      if (e.path().extension() != ".safetensors" || e.path().filename().string()[0] == '.')
        continue;
      part_files.push_back(std::make_unique<safetensors_file>(p));
      const auto& meta = part_files.back()->metadata();
      const auto it = meta.find(detail::shard_metadata_key());
      MASQUANT_CHECK(it != meta.end() && it->second == result.fingerprint, errc::invalid_argument,
                     op, ": ", p,
                     " was made by another run (other model, recipe, statistics or version)");
      for (const auto& t : part_files.back()->tensors())
        joined.emplace(t.name, std::make_pair(p, t.file_offset));
    }
    for (const auto& u : plan.units)
      if (u.group)
        for (const auto& t : u.outputs)
          MASQUANT_CHECK(joined.count(t.name), errc::invalid_argument, op, ": no part holds '",
                         t.name, "' (run the part with block ", detail::block_of(t.name),
                         " or the linear ", u.group->input, ")");
  }

  std::vector<std::size_t> todo;
  for (std::size_t k = 0; k < plan.shards.size(); ++k) {
    const std::string path = (out / plan.shards[k].file).string();
    detail::remove_stale_temporaries(out, plan.shards[k].file);
    if (o.existing == existing_output::resume && fs::exists(path, ec)) {
      const std::string fp = detail::fingerprint_of(path);
      MASQUANT_CHECK(fp == result.fingerprint, errc::invalid_argument, op, ": ", path,
                     " was written by another run (other model, recipe, statistics or version);"
                     " --force recomputes everything");
      ++result.shards_kept;
      continue;
    }
    todo.push_back(k);
    if (!o.join) run.plan_work(plan.shards[k].units);
  }
  for (std::size_t k : todo) {
    const plan_shard& s = plan.shards[k];
    safetensors_stream_writer w((out / s.file).string(), s.tensors, metadata);
    for (std::size_t u : s.units) {
      const plan_unit& unit = plan.units[u];
      if (!unit.group) {
        w.copy_from(unit.copied, ckpt.file_of(unit.copied).source(),
                    ckpt.info(unit.copied).file_offset);
      } else if (o.join) {
        for (const auto& t : unit.outputs) {
          const auto& [file, offset] = joined.at(t.name);
          w.copy_from(t.name, file, offset);
        }
      } else {
        run.template write_group<Deferred>(w, *unit.group);
      }
    }
    w.commit();
    ++result.shards_written;
  }

  if (plan.shards.size() > 1) {
    nlohmann::ordered_json index;
    index["metadata"]["total_size"] = plan.total_bytes;
    auto& map = index["weight_map"] = nlohmann::ordered_json::object();
    for (const auto& s : plan.shards)
      for (const auto& t : s.tensors) map[t.name] = s.file;
    detail::write_text_atomically((out / checkpoint_index_name).string(), index.dump(2) + "\n");
  }
  nlohmann::ordered_json config = nlohmann::ordered_json::parse(ckpt.config().dump());
  config["quantization_config"] = quantization_config(o.recipe, plan.modalities);
  detail::write_text_atomically((out / "config.json").string(), config.dump(2) + "\n");
  if (o.join) {
    part_files.clear();
    fs::remove_all(parts, ec);
  }
  return result;
}

}  // namespace masquant
