// commands.hpp: the masquant tool's commands; each takes the words after its name and returns
// the process exit code (see exit_code).
#pragma once

#include <string>
#include <vector>

namespace masquant::cli {

/// Process exit codes of the masquant tool (documented in docs/cli.md).
enum exit_code : int {
  exit_ok = 0,       ///< success
  exit_failure = 1,  ///< bad input data, I/O or numerical failure (one line on stderr)
  exit_usage = 2,    ///< bad command line (unknown flag, bad value, missing argument)
};

int run_demo(const std::vector<std::string>& args);
int run_calibrate(const std::vector<std::string>& args);
int run_forward(const std::vector<std::string>& args);
int run_inspect(const std::vector<std::string>& args);
int run_quantize(const std::vector<std::string>& args);
int run_stats(const std::vector<std::string>& args);

}  // namespace masquant::cli
