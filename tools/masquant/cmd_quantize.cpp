// cmd_quantize.cpp: `masquant quantize MODEL_DIR -o OUT_DIR (--stats S... | --inputs I) [flags]`
// — a Hugging Face checkpoint in, a quantized checkpoint out (model/quantize.hpp).
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <masquant/io/detail/atomic_file.hpp>
#include <masquant/io/detail/json_file.hpp>
#include <masquant/model/presets.hpp>
#include <masquant/model/quantize.hpp>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "args.hpp"
#include "cli_common.hpp"
#include "command_specs.hpp"
#include "commands.hpp"
#include "file_args.hpp"
#include "progress.hpp"
#include "report_format.hpp"
#include "threads.hpp"

namespace masquant::cli {

namespace {

// The calibrate flags given on the command line, as recipe settings (the others stay unset).
linear_settings settings_from_flags(const parsed_args& args) {
  linear_settings s;
  const long long big = std::numeric_limits<long long>::max();
  if (args.has("wbits")) s.wbits = static_cast<int>(args.get_int("wbits", 0, 2, 8));
  if (args.has("abits")) s.abits = static_cast<int>(args.get_int("abits", 0, 2, 16));
  if (args.has("method")) s.method = args.get("method");
  if (args.has("alpha")) s.alpha = args.get("alpha");
  if (args.has("learn-steps")) s.learn_steps = args.get_int("learn-steps", 0, 0, 1000000);
  if (args.has("learning-rate")) s.learning_rate = args.get_double("learning-rate", 0, 1e-12, 10.0);
  if (args.has("batch-tokens")) s.batch_tokens = args.get_int("batch-tokens", 0, 0, 1000000000);
  if (args.has("rank")) s.rank = args.get_double("rank", 0, 0.0, 1e9);
  if (args.has("min-rank")) s.min_rank = args.get_int("min-rank", 0, 0, 1000000000);
  if (args.has("whiten")) s.whiten = args.get("whiten");
  if (args.has("damping")) s.damping = args.get_double("damping", 0, 0.0, 1e-2);
  if (args.has("quantized-compensation")) s.quantized_compensation = true;
  if (args.has("seed")) s.seed = args.get_int("seed", 0, 0, big);
  try {
    s.validate("flags", false);
  } catch (const masquant::error& e) {
    throw usage_error(e.what());
  }
  return s;
}

// "4GB", "500MB", "1.5GiB", "123456": bytes.
std::uint64_t parse_size(const std::string& text) {
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  std::string unit(end ? end : "");
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const double scale = unit.empty() || unit == "B" ? 1.0
                       : unit == "KB"              ? 1e3
                       : unit == "MB"              ? 1e6
                       : unit == "GB"              ? 1e9
                       : unit == "KIB"             ? 1024.0
                       : unit == "MIB"             ? 1048576.0
                       : unit == "GIB"             ? 1073741824.0
                                                   : -1.0;
  if (end == text.c_str() || !std::isfinite(v) || v <= 0 || scale < 0 || v * scale < 1 ||
      v * scale > 1e18)
    throw usage_error("--shard-size: expected a size such as 4GB, 500MB or 1GiB, got '" + text +
                      "'");
  return static_cast<std::uint64_t>(v * scale);
}

std::string duration_text(double seconds) {
  char buf[32];
  const auto s = static_cast<long long>(std::llround(std::max(0.0, seconds)));
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s / 60 % 60);
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(buf, sizeof buf, "%llds", s);
  return buf;
}

}  // namespace

int run_quantize(const std::vector<std::string>& words) {
  if (wants_help(words)) {
    std::fputs(help_text(quantize_spec).c_str(), stdout);
    return exit_ok;
  }
  const auto args = parse(quantize_spec, words);
  // Every flag is checked before any file is read.
  if (!args.has("output")) throw usage_error("missing -o OUT_DIR");
  quantize_options o;
  o.model = args.positional()[0];
  o.output = args.get("output");
  o.statistics = args.get_all("stats");
  o.tokens = args.get_all("tokens");
  o.inputs = args.get("inputs");
  if (o.statistics.empty() == o.inputs.empty())
    throw usage_error(o.inputs.empty() ? "give --stats S... (or --inputs I)"
                                       : "--stats and --inputs exclude each other");
  if (!o.tokens.empty() && !o.inputs.empty())
    throw usage_error("--tokens goes with --stats (raw --inputs are their own sample)");
  if (args.has("recipe") && args.has("preset"))
    throw usage_error("--recipe and --preset exclude each other");
  if (args.has("resume") && args.has("force"))
    throw usage_error("--resume and --force exclude each other");
  o.existing = args.has("resume")  ? existing_output::resume
               : args.has("force") ? existing_output::overwrite
                                   : existing_output::refuse;
  o.shard_bytes = args.has("shard-size") ? parse_size(args.get("shard-size")) : o.shard_bytes;
  if (args.has("layers")) {
    const std::string r = args.get("layers");
    const auto colon = r.find(':');
    char* end = nullptr;
    const long long a = std::strtoll(r.c_str(), &end, 10);
    const bool first_ok = end != r.c_str() && *end == ':';
    const long long b =
        colon == std::string::npos ? -1 : std::strtoll(r.c_str() + colon + 1, &end, 10);
    if (!first_ok || *end != '\0' || a < 0 || b < a)
      throw usage_error("--layers: expected FIRST:LAST decoder blocks (0:13), got '" + r + "'");
    o.part.layers = std::make_pair(index_t(a), index_t(b));
  }
  o.part.only = args.get_all("only");
  o.join = args.has("join");
  if (o.join && !o.part.empty())
    throw usage_error("--join takes the whole model, not --layers/--only");
  if (o.join && o.existing == existing_output::resume)
    throw usage_error("--join and --resume exclude each other");
  const linear_settings flags = settings_from_flags(args);
  const int threads = thread_count(args);
  const std::string report_path = args.get("report");
  {
    std::vector<file_arg> files;
    for (const auto& s : o.statistics) files.push_back({"--stats", s, false});
    for (const auto& s : o.tokens) files.push_back({"--tokens", s, false});
    files.push_back({"--inputs", o.inputs, false});
    files.push_back({"--recipe", args.get("recipe"), false});
    files.push_back({"MODEL_DIR/config.json", o.model + "/config.json", false});
    files.push_back({"--report", report_path, true});
    check_file_args(files);
  }

  // The recipe: a file, a preset, or the preset of config.json's model_type.
  if (args.has("recipe")) {
    o.recipe = load_recipe(args.get("recipe"));
  } else {
    std::string preset = args.get("preset");
    if (preset.empty()) {
      const auto config = detail::parse_json_file(o.model + "/config.json");
      const std::string type = config.value("model_type", "");
      preset = preset_for_model_type(type);
      if (preset.empty()) {
        std::string known;
        for (const auto& p : recipe_presets()) known += (known.empty() ? "" : ", ") + p;
        throw usage_error("no preset for model_type '" + type + "' of " + o.model +
                          "/config.json: give --preset (" + known + ") or --recipe");
      }
    }
    try {
      o.recipe = recipe_preset(preset);
    } catch (const masquant::error& e) {
      throw usage_error(std::string("--preset: ") + e.what());
    }
  }
  o.recipe.defaults = o.recipe.defaults.overridden_by(flags);
  if (args.has("reference")) o.recipe.reference = args.get("reference");
  o.recipe.validate();
  std::error_code ec;
  if (std::filesystem::exists(o.output, ec) && std::filesystem::equivalent(o.model, o.output, ec))
    throw usage_error("the output directory '" + o.output + "' is the model directory");

  thread_pool pool(threads);
  o.parallel = pool.as_function();

  progress_bar bar;
  const auto start = std::chrono::steady_clock::now();
  auto last = start;
  o.progress = [&](const quantize_progress& p) {
    const auto now = std::chrono::steady_clock::now();
    const double elapsed = std::chrono::duration<double>(now - start).count();
    const double eta = p.work_done > 0 ? elapsed * (1 - p.work_done) / p.work_done : 0;
    if (p.finished) {
      bar.finish();
      std::printf("[%td/%td] %s  %.2f s  (elapsed %s, ETA %s)\n", p.linears_done, p.linears_total,
                  p.linear.c_str(), std::chrono::duration<double>(now - last).count(),
                  duration_text(elapsed).c_str(), duration_text(eta).c_str());
      std::fflush(stdout);
      last = now;
      return;
    }
    std::string detail = p.linear;
    if (p.stage) detail += " " + std::string(to_string(p.stage->phase));
    bar.update(
        "[" + std::to_string(p.linears_done + 1) + "/" + std::to_string(p.linears_total) + "]",
        p.work_done, detail + ", ETA " + duration_text(eta));
  };

  // The report goes to a temporary first: an unwritable report path fails before any work.
  std::optional<detail::atomic_file> report_file;
  if (!report_path.empty()) report_file.emplace(report_path);
  const quantize_result r = quantize_checkpoint(o);
  bar.finish();

  // The per-linear tables when there are scores to show (with a token sample or raw inputs).
  nlohmann::json layers = nlohmann::json::object();
  bool scored = false;
  for (const auto& l : r.linears)
    for (const auto& m : l.report.modalities) scored = scored || m.scores == score_status::computed;
  for (const auto& l : r.linears) {
    if (scored) {
      std::printf("%s\n", l.name.c_str());
      print_report_table(stdout, l.report);
    }
    layers[l.name] = report_json(l.report);
  }
  if (!scored && !r.linears.empty())
    std::printf("report: no SQNR scores (they need calibration tokens: give --tokens)\n");
  index_t unlearned = 0;
  for (const auto& l : r.linears)
    for (const auto& s : l.report.skipped)
      unlearned += s.phase == calibration_phase::learning ? 1 : 0;
  if (unlearned > 0)
    std::printf("note: learned MAS skipped for %td linears: it needs a token sample (--tokens)\n",
                unlearned);
  if (report_file) {
    nlohmann::json report;
    report["layers"] = layers;
    const std::string text = report.dump(2) + "\n";
    report_file->write(text.data(), text.size());
    report_file->commit();
  }
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (!r.part_file.empty()) {
    std::printf("wrote part %s (%zu linears) in %s; join the parts with --join\n",
                r.part_file.c_str(), r.linears.size(), duration_text(total).c_str());
  } else {
    std::printf("wrote %s: %td linears quantized, %td shard%s written, %td kept, in %s\n",
                o.output.c_str(), r.plan.linears, r.shards_written,
                r.shards_written == 1 ? "" : "s", r.shards_kept, duration_text(total).c_str());
  }
  return exit_ok;
}

}  // namespace masquant::cli
