// cmd_calibrate.cpp: `masquant calibrate IN -o OUT [flags]` — calibrates every layer P of IN
// (P.weight, P.bias, P.inputs.<modality>) and writes the deployable tensors per the file contract.
#include <algorithm>
#include <cstdio>
#include <masquant/calibrate/calibrate.hpp>
#include <masquant/calibrate/memory_estimate.hpp>
#include <masquant/io/detail/atomic_file.hpp>
#include <masquant/io/linear_file.hpp>
#include <masquant/io/safetensors.hpp>
#include <masquant/io/tensor_names.hpp>
#include <masquant/version.hpp>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "args.hpp"
#include "cli_common.hpp"
#include "command_specs.hpp"
#include "commands.hpp"
#include "file_args.hpp"
#include "layers.hpp"
#include "memory_limit.hpp"
#include "progress.hpp"
#include "report_format.hpp"
#include "threads.hpp"

namespace masquant::cli {

namespace {

/// What calibrating a loaded layer holds at its peak: calibrate()'s estimate, plus the float
/// copies load_layer made of tensors not stored as F32 (F32 ones are read in place).
struct layer_memory {
  calibration_memory calibration;
  std::uint64_t copies = 0;
  std::uint64_t total() const { return calibration.peak_bytes + copies; }
};

layer_memory estimate_layer_memory(const loaded_layer& l, const calibration_config& config,
                                   int threads) {
  layer_memory m;
  std::vector<index_t> tokens;
  for (const auto& t : l.tensors) {
    tokens.push_back(t.size() ? t.matrix().rows() : 0);
    if (t.size() && !t.is_zero_copy()) m.copies += static_cast<std::uint64_t>(t.size()) * 4;
  }
  const matrix_view<const float> w = l.weight.matrix();
  if (!l.weight.is_zero_copy()) m.copies += static_cast<std::uint64_t>(w.rows() * w.cols()) * 4;
  m.calibration = estimate_calibration_memory(l.d_in, w.rows(), tokens, config, threads);
  return m;
}

/// Refuses a layer whose estimated peak the process's memory limit cannot hold.
void check_memory(const std::string& source, const std::string& prefix, const layer_memory& need) {
  const auto headroom = memory_available();
  if (!headroom || need.total() <= headroom->available) return;
  const auto& peak = need.calibration.peak();
  throw std::runtime_error(
      detail::cat(source, ": layer '", prefix, "' needs about ", format_bytes(need.total()),
                  " to calibrate (its ", peak.name, " phase: ", peak.what, "), more than the ",
                  format_bytes(headroom->available), " this process may still use (",
                  headroom->limit, "); raise the limit, or lower --rank or the number of tokens"));
}

/// The message for std::bad_alloc while calibrating a layer, in the phase `stage`.
std::string out_of_memory(const std::string& source, const std::string& prefix,
                          const std::string& stage, const layer_memory& need) {
  std::string phase_text;
  for (const auto& ph : need.calibration.phases)
    if (ph.name == stage || (stage == "learning" && ph.name == "smoothing"))
      phase_text =
          detail::cat(" (that phase holds about ", format_bytes(ph.bytes), ": ", ph.what, ")");
  const auto headroom = memory_available();
  return detail::cat(source, ": out of memory calibrating layer '", prefix, "' in its ",
                     stage.empty() ? std::string("first") : stage, " phase", phase_text,
                     "; the layer needs about ", format_bytes(need.total()), " in all",
                     headroom
                         ? detail::cat(", this process may use ", format_bytes(headroom->available),
                                       " more (", headroom->limit, ")")
                         : std::string());
}

}  // namespace

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
  if (!is_modality_name(reference))
    throw usage_error(
        "--reference: a modality name (not empty, no '.', none of weight, bias, "
        "qweight, wscale, inputs, outputs, smooth, lowrank), got '" +
        reference + "'");
  (void)args.get_int("threads", 0, 0, 4096);  // a usage error before the files are checked
  check_file_args(
      {{"IN", in_path, false}, {"-o", out_path, true}, {"--report", report_path, true}});
  thread_pool pool(thread_count(args));
  config.parallel = pool.as_function();

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

  // Every layer is checked before the first is calibrated — shapes, NaN/Inf, and whether the
  // memory limit can hold its calibration — so that a bad last layer fails in seconds, not after
  // hours (its tensors are read twice: here and when calibrated).
  std::vector<layer_memory> needs;
  for (const layer_entry* e : todo) {
    try {
      needs.push_back(estimate_layer_memory(load_layer(in, *e, reference), config, pool.size()));
    } catch (const std::bad_alloc&) {
      throw std::runtime_error(detail::cat(in_path, ": out of memory loading layer '", e->prefix,
                                           "' (tensors not stored as F32 are read into float "
                                           "copies)"));
    }
    check_memory(in_path, e->prefix, needs.back());
  }

  safetensors_writer out;
  nlohmann::json report_layers = nlohmann::json::object();
  progress_bar bar;
  for (std::size_t li = 0; li < todo.size(); ++li) {
    const layer_entry& e = *todo[li];
    check_memory(in_path, e.prefix, needs[li]);  // the outputs of earlier layers take memory too
    std::string stage = "loading";
    std::optional<loaded_layer> loaded;
    try {
      loaded.emplace(load_layer(in, e, reference));
    } catch (const std::bad_alloc&) {
      throw std::runtime_error(out_of_memory(in_path, e.prefix, stage, needs[li]));
    }
    const loaded_layer& layer = *loaded;
    const std::string label =
        "[" + std::to_string(li + 1) + "/" + std::to_string(todo.size()) + "] " + e.prefix;
    config.progress = [&](const calibration_progress& p) {
      stage = to_string(p.phase);
      std::string detail = stage;
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
    calibration_result r;
    try {
      r = detail::with_context(detail::cat("layer '", e.prefix, "'"), [&] {
        return calibrate(layer.weight.matrix(), layer.bias_view(), layer.inputs(), config,
                         layer.names);
      });
      add_linear(out, e.prefix, r.params);
    } catch (const std::bad_alloc&) {
      bar.finish();
      throw std::runtime_error(out_of_memory(in_path, e.prefix, stage, needs[li]));
    }
    bar.finish();
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
