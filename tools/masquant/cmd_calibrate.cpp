// cmd_calibrate.cpp: `masquant calibrate IN -o OUT [flags]` — calibrates every layer P of IN
// (P.weight, P.bias, P.inputs.<modality>) and writes the deployable tensors per the file contract.
#include <algorithm>
#include <cstdio>
#include <masquant/calibrate/calibrate.hpp>
#include <masquant/io/detail/atomic_file.hpp>
#include <masquant/io/linear_file.hpp>
#include <masquant/io/safetensors.hpp>
#include <masquant/version.hpp>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "args.hpp"
#include "cli_common.hpp"
#include "command_specs.hpp"
#include "commands.hpp"
#include "layers.hpp"
#include "progress.hpp"
#include "report_format.hpp"

namespace masquant::cli {

int run_calibrate(const std::vector<std::string>& words) {
  if (wants_help(words)) {
    std::fputs(help_text(calibrate_spec).c_str(), stdout);
    return exit_ok;
  }
  const auto args = parse(calibrate_spec, words);
  // Every flag is checked before any file is read.
  if (!args.has("output")) throw usage_error("missing -o OUT.safetensors");
  const std::string in_path = args.positional()[0], out_path = args.get("output");
  const std::string report_path = args.get("report");
  calibration_config config = config_from_flags(args);
  const std::string reference = args.get("reference", default_modality_names(1).front());
  if (reference.empty() || reference.find('.') != std::string::npos)
    throw usage_error("--reference: a modality name without '.', got '" + reference + "'");
  const int threads = static_cast<int>(args.get_int("threads", default_threads, 0, 4096));
  thread_pool pool(threads);
  config.parallel = pool.as_function();
  set_eigen_threads(pool.size());

  const safetensors_file in(in_path);
  const auto layers = find_layers(in);
  std::vector<const layer_entry*> todo;
  bool reference_seen = false;
  for (const auto& [prefix, e] : layers) {
    if (e.weight.empty()) {
      if (!e.inputs.empty())
        raise(errc::format_error, detail::cat(in_path, ": tensor '", e.inputs.begin()->second,
                                              "' has no matching '", prefix, ".weight'"));
      continue;
    }
    if (e.inputs.empty())
      raise(errc::format_error,
            detail::cat(in_path, ": layer '", prefix, "' has no calibration activations (", prefix,
                        ".inputs.<modality>)"));
    reference_seen |= e.inputs.count(reference) != 0;
    todo.push_back(&e);
  }
  if (todo.empty())
    raise(errc::format_error,
          detail::cat(in_path, ": no layer to calibrate (no tensor named P.weight)"));
  if (!reference_seen)
    throw usage_error("--reference '" + reference + "' names no P.inputs.<modality> tensor in " +
                      in_path);

  safetensors_writer out;
  nlohmann::json report_layers = nlohmann::json::object();
  progress_bar bar;
  for (std::size_t li = 0; li < todo.size(); ++li) {
    const layer_entry& e = *todo[li];
    const loaded_layer layer = load_layer(in, e, reference);
    const std::string label =
        "[" + std::to_string(li + 1) + "/" + std::to_string(todo.size()) + "] " + e.prefix;
    config.progress = [&](const calibration_progress& p) {
      std::string detail = to_string(p.phase);
      if (p.phase == calibration_phase::learning) {
        char buf[64];
        std::snprintf(buf, sizeof buf, " step %td/%td loss %.4g", p.step + 1, p.steps, p.loss);
        detail += buf;
      }
      bar.update(
          label,
          (double(li) + (p.steps ? double(p.step) / double(p.steps) : 0.0)) / double(todo.size()),
          detail);
    };
    const calibration_result r = detail::with_context(detail::cat("layer '", e.prefix, "'"), [&] {
      return calibrate(layer.weight.matrix(), layer.bias_view(), layer.inputs(), config,
                       layer.names);
    });
    bar.finish();
    add_linear(out, e.prefix, r.params);
    report_layers[e.prefix] = report_json(r.report);
    std::printf("%s  (%td x %td, %.2f s)\n", e.prefix.c_str(), r.params.d_out, r.params.d_in,
                r.report.seconds.total);
    print_report_table(stdout, r.report);
    std::fflush(stdout);
  }
  out.set_metadata("format", "masquant");
  out.set_metadata("version", version_string);
  out.set_metadata("wbits", std::to_string(config.weight_bits));
  out.set_metadata("abits", std::to_string(config.activation_bits));
  out.set_metadata("reference", reference);
  out.set_metadata("method", to_string(config.method));
  out.set_metadata("rank", args.get("rank", number_text(tool_default_config().rank.rank)));
  out.set_metadata("min_rank", std::to_string(config.rank.min_rank));
  out.set_metadata("alpha", args.get("alpha", number_text(tool_default_config().alpha)));
  out.set_metadata("learn_steps", std::to_string(config.learn_steps));
  out.set_metadata("whiten", to_string(config.whitening.method));
  out.set_metadata("seed", std::to_string(config.seed));
  // The report goes to a temporary before OUT is written and is renamed into place after it:
  // an unwritable report path fails the command before OUT exists.
  std::optional<detail::atomic_file> report_file;
  if (!report_path.empty()) {
    nlohmann::json report;
    report["layers"] = report_layers;
    const std::string text = report.dump(2) + "\n";
    report_file.emplace(report_path);
    report_file->write(text.data(), text.size());
  }
  out.write(out_path);
  if (report_file) report_file->commit();
  std::printf("wrote %s (%zu layers)%s%s\n", out_path.c_str(), todo.size(),
              report_path.empty() ? "" : ", report ", report_path.c_str());
  return exit_ok;
}

}  // namespace masquant::cli
