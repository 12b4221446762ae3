// cmd_stats.cpp: `masquant stats merge A B ... -o M` (statistics files of shards into one) and
// `masquant stats inspect S` (what a statistics file holds).
#include <algorithm>
#include <cstdio>
#include <masquant/io/statistics_file.hpp>
#include <string>
#include <vector>

#include "args.hpp"
#include "command_specs.hpp"
#include "commands.hpp"
#include "file_args.hpp"
#include "progress.hpp"

namespace masquant::cli {

namespace {

int run_merge(const std::vector<std::string>& words) {
  if (wants_help(words)) {
    std::fputs(help_text(stats_merge_spec).c_str(), stdout);
    return exit_ok;
  }
  const auto args = parse(stats_merge_spec, words);
  if (!args.has("output")) throw usage_error("missing -o OUT.safetensors");
  const std::string out = args.get("output");
  const auto& inputs = args.positional();
  std::vector<file_arg> files;
  for (const auto& in : inputs) files.push_back({"input", in, false});
  files.push_back({"-o", out, true});
  check_file_args(files);
  progress_bar bar;
  merge_statistics_files(inputs, out, [&](index_t i, index_t n, const std::string& input) {
    bar.update("merging", n > 0 ? double(i) / double(n) : 1.0, input);
  });
  bar.finish();
  const statistics_file merged(out);
  std::printf("wrote %s: %zu inputs, modalities %s, from %zu files\n", out.c_str(),
              merged.inputs().size(), statistics_set::join(merged.modalities()).c_str(),
              inputs.size());
  return exit_ok;
}

int run_inspect_stats(const std::vector<std::string>& words) {
  if (wants_help(words)) {
    std::fputs(help_text(stats_inspect_spec).c_str(), stdout);
    return exit_ok;
  }
  const auto args = parse(stats_inspect_spec, words);
  const statistics_file f(args.positional()[0]);
  const auto& names = f.modalities();
  std::printf("%s: masquant statistics, version %d, %zu inputs, modalities %s\n",
              f.source().c_str(), statistics_file_version, f.inputs().size(),
              statistics_set::join(names).c_str());
  std::size_t width = 5;
  for (const auto& in : f.inputs()) width = std::max(width, in.size());
  std::printf("\n%-*s %8s", static_cast<int>(width), "input", "channels");
  for (const auto& m : names) std::printf(" %12s %6s %10s", (m + " tok").c_str(), "gram", "absmax");
  std::printf("\n");
  for (const auto& in : f.inputs()) {
    const modality_stats s = f.load(in);
    std::printf("%-*s %8td", static_cast<int>(width), in.c_str(), f.channels(in));
    for (index_t m = 0; m < s.modalities(); ++m) {
      const channel_stats& c = s[static_cast<modality_id>(m)];
      std::printf(" %12lld %6s %10.4g", static_cast<long long>(c.count()),
                  c.has_gram() ? "yes" : "-", c.count() ? c.absmax().maxCoeff() : 0.0);
    }
    std::printf("\n");
  }
  return exit_ok;
}

}  // namespace

int run_stats(const std::vector<std::string>& words) {
  if (words.empty() || words.front() == "-h" || words.front() == "--help") {
    std::fputs(stats_usage_text, words.empty() ? stderr : stdout);
    return words.empty() ? exit_usage : exit_ok;
  }
  const std::vector<std::string> rest(words.begin() + 1, words.end());
  if (words.front() == "merge") return run_merge(rest);
  if (words.front() == "inspect") return run_inspect_stats(rest);
  throw usage_error("unknown stats command '" + words.front() + "' (merge or inspect)");
}

}  // namespace masquant::cli
