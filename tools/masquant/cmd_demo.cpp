// cmd_demo.cpp: `masquant demo` — the whole pipeline on an embedded synthetic multimodal layer at
// W8A8, W4A8 and W4A6, a table of per-modality SQNR for every stage, and an SVG figure.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <masquant/calibrate/calibrate.hpp>
#include <masquant/version.hpp>
#include <string>
#include <vector>

#include "args.hpp"
#include "cli_common.hpp"
#include "command_specs.hpp"
#include "commands.hpp"
#include "progress.hpp"
#include "report_format.hpp"
#include "svg.hpp"
#include "synthetic.hpp"

namespace masquant::cli {

namespace {

struct bits_config {
  const char* name;
  int wbits, abits;
};

}  // namespace

int run_demo(const std::vector<std::string>& words) {
  if (wants_help(words)) {
    std::fputs(help_text(demo_spec).c_str(), stdout);
    return exit_ok;
  }
  const auto args = parse(demo_spec, words);
  const calibration_config defaults;
  const index_t dim = args.get_int("dim", demo_defaults::dim, 8, 16384);
  const index_t tokens = args.get_int("tokens", demo_defaults::tokens, 8, 1000000);
  const index_t steps = args.get_int("learn-steps", demo_defaults::learn_steps, 0, 100000);
  const double rank = args.get_double("rank", defaults.rank.rank, 0.0, 1e9);
  const auto seed = static_cast<std::uint64_t>(
      args.get_int("seed", static_cast<long long>(defaults.seed), 0, 1LL << 62));
  const std::string svg_path = args.get("svg", demo_defaults::svg);
  const std::string report_path = args.get("report");
  thread_pool pool(static_cast<int>(args.get_int("threads", default_threads, 0, 4096)));
  set_eigen_threads(pool.size());

  const auto start = std::chrono::steady_clock::now();
  std::printf(
      "masquant %s demo: a synthetic %td x %td layer, %td calibration tokens per modality,"
      " %d thread%s\n",
      version_string, dim, dim, tokens, pool.size(), pool.size() == 1 ? "" : "s");
  const synthetic_layer layer = make_synthetic_layer(dim, tokens, seed);
  modality_inputs inputs;
  std::vector<std::string> names;
  for (const auto& m : layer.modalities) {
    inputs.push_back(view_of(m.x));
    names.push_back(m.name);
  }
  std::printf(
      "  text has %zu massive channels, vision %zu outlier channels (30x), audio %zu (10x)\n\n",
      layer.modalities[0].outlier_channels.size(), layer.modalities[1].outlier_channels.size(),
      layer.modalities[2].outlier_channels.size());

  const bits_config configs[] = {{"W8A8", 8, 8}, {"W4A8", 4, 8}, {"W4A6", 4, 6}};
  nlohmann::json report_all = nlohmann::json::object();
  calibration_result figure_run;
  progress_bar bar;
  for (const auto& bc : configs) {
    calibration_config c;
    c.weight_bits = bc.wbits;
    c.activation_bits = bc.abits;
    c.learn_steps = steps;
    c.rank.rank = rank;
    c.seed = seed;
    c.parallel = pool.as_function();
    // The W4A8 run keeps every whitened singular value for the figure (exact SVD).
    const bool figure = bc.wbits == 4 && bc.abits == 8;
    if (figure) c.svd.method = svd_method::exact;
    c.progress = [&](const calibration_progress& p) {
      bar.update(bc.name, p.steps ? double(p.step) / double(p.steps) : 0.0, to_string(p.phase));
    };
    calibration_result r =
        calibrate(view_of(layer.weight), vector_view_of(layer.bias), inputs, c, names);
    bar.finish();
    std::printf("%s  (MAS, %td learning steps, compensation rank %td; %.2f s)\n", bc.name, steps,
                r.report.rank, r.report.seconds.total);
    print_report_table(stdout, r.report);
    std::printf("\n");
    std::fflush(stdout);
    report_all[bc.name] = report_json(r.report);
    if (figure) figure_run = std::move(r);
  }

  // What the stages mean, once, under the tables.
  std::printf(
      "stages: rtn = no smoothing; smoothquant = one merged factor for all modalities;\n"
      "mas_multiweight = a factor and a quantized weight per modality; shared_no_cmc = a factor "
      "per\n"
      "modality, one shared weight; cmc = shared weight + low-rank compensation (deployable).\n");

  // The figure: activation absmax per channel and modality; whitened spectra with the rank.
  panel absmax{"per-channel activation absmax", "input channel", "absmax", {}, {}};
  const char* colors[] = {"#1f77b4", "#d62728", "#2ca02c"};
  for (std::size_t m = 0; m < layer.modalities.size(); ++m) {
    const auto& x = layer.modalities[m].x;
    series s{layer.modalities[m].name, colors[m % 3], std::vector<double>(std::size_t(dim))};
    for (index_t j = 0; j < dim; ++j) s.y[std::size_t(j)] = x.col(j).cwiseAbs().maxCoeff();
    absmax.lines.push_back(std::move(s));
  }
  panel spectra{"whitened singular values of T·ΔWᵀ (W4A8)", "index", "singular value", {}, {}};
  for (std::size_t m = 1; m < figure_run.report.modalities.size(); ++m) {
    const auto& mr = figure_run.report.modalities[m];
    char label[96];
    std::snprintf(label, sizeof label, "%s (effective rank %.1f)", mr.name.c_str(),
                  mr.effective_rank);
    spectra.lines.push_back({label, colors[m % 3], mr.singular_values});
  }
  if (figure_run.report.rank > 0)
    spectra.markers.push_back({double(figure_run.report.rank - 1),
                               "rank " + std::to_string(figure_run.report.rank), "#555"});
  {
    std::ofstream out(svg_path, std::ios::trunc);
    out << render_svg({absmax, spectra}, "masquant demo: why one smoothing factor is not enough");
    if (!out) raise(errc::io_error, detail::cat("cannot write the figure '", svg_path, "'"));
  }
  if (!report_path.empty()) {
    std::ofstream out(report_path, std::ios::trunc);
    out << nlohmann::json{{"demo", report_all}}.dump(2) << "\n";
    if (!out) raise(errc::io_error, detail::cat("cannot write the report '", report_path, "'"));
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("\nfigure: %s%s%s\ntotal: %.1f s\n", svg_path.c_str(),
              report_path.empty() ? "" : "\nreport: ", report_path.c_str(), seconds);
  return exit_ok;
}

}  // namespace masquant::cli
