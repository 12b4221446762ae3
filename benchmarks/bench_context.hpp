// bench_context.hpp: the machine a benchmark ran on, in Google Benchmark's context block.
#pragma once

#include <benchmark/benchmark.h>

#include <fstream>
#include <string>

namespace masquant::bench {

/// The CPU's model name and family/model numbers from /proc/cpuinfo ("unknown" elsewhere).
inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line, name = "unknown", family, model;
  auto value = [](const std::string& l) {
    const auto colon = l.find(':');
    return colon == std::string::npos ? std::string() : l.substr(l.find_first_not_of(" \t", colon + 1));
  };
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0 && name == "unknown") name = value(line);
    if (line.rfind("cpu family", 0) == 0 && family.empty()) family = value(line);
    if (line.rfind("model\t", 0) == 0 && model.empty()) model = value(line);
  }
  return name + " (family " + family + ", model " + model + ")";
}

/// Adds cpu_model to the context every benchmark prints first.
inline void add_cpu_context() { benchmark::AddCustomContext("cpu_model", cpu_model()); }

}  // namespace masquant::bench
