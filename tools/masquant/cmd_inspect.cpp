// cmd_inspect.cpp: `masquant inspect FILE` — tensors, dtypes, shapes, metadata, and per-modality
// activation statistics of the file contract's P.inputs.<modality> / P.outputs.<modality> tensors.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <masquant/io/detail/text.hpp>
#include <masquant/io/safetensors.hpp>
#include <masquant/stats/channel_stats.hpp>
#include <numeric>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "args.hpp"
#include "command_specs.hpp"
#include "commands.hpp"
#include "layers.hpp"

namespace masquant::cli {

namespace {

std::string shape_string(const tensor_shape& s) {
  std::ostringstream out;
  out << s;
  return out.str();
}

/// Names, metadata and messages as printed: control characters and bytes outside UTF-8 escaped
/// (\x0a), so that a hostile file cannot move the cursor or fake lines.
std::string shown(std::string_view text) {
  return detail::printable(text, text.size(), false);
}

/// Prints one activation tensor's statistics row. Returns what makes it unusable (NaN or Inf,
/// a dtype that does not load as float), or nothing.
std::string print_activation_stats(const safetensors_file& file, const std::string& label,
                                   const std::string& name) {
  const auto& info = file.info(name);
  if (info.shape.rank() != 2) {
    std::printf("    %-14s %s is not [tokens, channels]\n", shown(label).c_str(),
                shape_string(info.shape).c_str());
    return {};
  }
  std::optional<tensor_ref<float>> loaded;
  try {
    loaded.emplace(file.view_f32(name));
  } catch (const error& e) {
    if (e.code() != errc::not_supported && e.code() != errc::overflow) throw;
    std::printf("    %-14s NOT FLOAT: %s\n", shown(label).c_str(), shown(e.what()).c_str());
    return e.what();
  }
  const tensor_ref<float>& x = *loaded;
  channel_stats stats(x.cols());
  try {
    stats.add(x.matrix());
  } catch (const error& e) {
    if (e.code() != errc::non_finite) throw;
    std::printf("    %-14s NON-FINITE: %s\n", shown(label).c_str(), shown(e.what()).c_str());
    return detail::cat(file.source(), ": tensor ", detail::quote_name(name), ": ", e.what());
  }
  const Eigen::VectorXd absmax = stats.absmax();
  const Eigen::VectorXd mean = stats.mean();
  const Eigen::VectorXd var = stats.variance();
  const index_t c = x.cols();
  std::vector<index_t> order(static_cast<std::size_t>(c));
  std::iota(order.begin(), order.end(), index_t{0});
  std::sort(order.begin(), order.end(), [&](index_t a, index_t b) {
    return absmax(a) > absmax(b) || (absmax(a) == absmax(b) && a < b);
  });
  const double max_abs = c ? absmax(order.front()) : 0.0;
  const double median = c ? absmax(order[static_cast<std::size_t>(c / 2)]) : 0.0;
  double mean_all = 0, sq_all = 0;
  for (index_t j = 0; j < c; ++j) {
    mean_all += mean(j);
    sq_all += var(j) + mean(j) * mean(j);
  }
  mean_all = c ? mean_all / double(c) : 0.0;
  const double rms = c ? std::sqrt(sq_all / double(c)) : 0.0;
  std::string top;
  for (index_t k = 0; k < std::min<index_t>(3, c); ++k) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%s%td:%.3g", k ? " " : "", order[static_cast<std::size_t>(k)],
                  absmax(order[static_cast<std::size_t>(k)]));
    top += buf;
  }
  std::printf("    %-14s %8td %8td %10.4g %10.4g %8.1fx %10.4g %10.4g  %s\n", shown(label).c_str(),
              x.rows(), c, max_abs, median, median > 0 ? max_abs / median : 0.0, mean_all, rms,
              top.c_str());
  return {};
}

}  // namespace

int run_inspect(const std::vector<std::string>& words) {
  if (wants_help(words)) {
    std::fputs(help_text(inspect_spec).c_str(), stdout);
    return exit_ok;
  }
  const auto args = parse(inspect_spec, words);
  const safetensors_file file(args.positional()[0]);

  std::printf("%s: %llu bytes, header %llu bytes, %zu tensors\n", shown(file.source()).c_str(),
              static_cast<unsigned long long>(file.file_size()),
              static_cast<unsigned long long>(file.header_size()), file.tensors().size());
  if (!file.metadata().empty()) {
    std::printf("\nmetadata:\n");
    for (const auto& [k, v] : file.metadata())
      std::printf("  %s = %s\n", shown(k).c_str(), shown(v).c_str());
  }
  std::printf("\ntensors:\n  %-52s %-5s %-16s %s\n", "name", "dtype", "shape", "bytes");
  for (const auto& t : file.tensors())
    std::printf("  %-52s %-5s %-16s %llu\n", shown(t.name).c_str(), to_string(t.type),
                shape_string(t.shape).c_str(), static_cast<unsigned long long>(t.byte_size()));

  // Every activation tensor is listed; those that cannot be used (NaN or Inf, a dtype that does
  // not load as float) make the exit code 1, with one line on stderr naming the first.
  const auto layers = find_layers(file);
  std::vector<std::string> problems;
  if (!layers.empty()) {
    std::printf("\nlayers (%zu):\n", layers.size());
    for (const auto& [prefix, e] : layers) {
      std::string kind = !e.qweight.empty()  ? "calibrated"
                         : !e.weight.empty() ? "float"
                                             : "activations";
      std::printf("  %s (%s)\n", shown(prefix).c_str(), kind.c_str());
      if (e.inputs.empty() && e.outputs.empty()) continue;
      std::printf("    %-14s %8s %8s %10s %10s %9s %10s %10s  %s\n", "modality", "tokens",
                  "channels", "absmax", "median", "max/med", "mean", "rms",
                  "top channels (index:absmax)");
      for (const auto& [m, name] : e.inputs)
        if (auto p = print_activation_stats(file, m, name); !p.empty()) problems.push_back(p);
      for (const auto& [m, name] : e.outputs)
        if (auto p = print_activation_stats(file, m + " (out)", name); !p.empty())
          problems.push_back(p);
    }
  }
  std::fflush(stdout);
  if (problems.empty()) return exit_ok;
  std::fprintf(stderr, "masquant: error: %s%s\n", shown(problems.front()).c_str(),
               problems.size() == 1
                   ? ""
                   : detail::cat(" (and ", problems.size() - 1, " more activation tensor",
                                 problems.size() == 2 ? "" : "s", " that cannot be used)")
                         .c_str());
  return exit_failure;
}

}  // namespace masquant::cli
