// main.cpp: the masquant command-line tool: dispatches to a command and maps failures to exit
// codes.
#include <signal.h>

#include <csignal>
#include <cstdio>
#include <exception>
#include <masquant/error.hpp>
#include <masquant/io/temporary_files.hpp>
#include <masquant/version.hpp>
#include <new>
#include <string>
#include <vector>

#include "args.hpp"
#include "commands.hpp"

namespace {

const char* const usage_text =
    "usage: masquant <command> [arguments]\n"
    "\n"
    "Modality-aware smoothing quantization (MASQuant) for multimodal LLM linears.\n"
    "\n"
    "commands:\n"
    "  demo        run the whole pipeline on an embedded synthetic multimodal layer\n"
    "  calibrate   calibrate and quantize every layer of a safetensors file\n"
    "  forward     run calibrated layers (INT8 GEMM path) on activations\n"
    "  inspect     list a safetensors file's tensors, metadata and activation statistics\n"
    "  quantize    quantize a Hugging Face checkpoint into a MASQuant checkpoint\n"
    "  stats       merge and inspect statistics files (masquant stats --help)\n"
    "\n"
    "'masquant <command> --help' describes a command. Exit codes: 0 success, 1 failure\n"
    "(bad input data, I/O, numerics), 2 bad command line.\n";

// SIGINT, SIGTERM, SIGHUP: remove the temporaries of the writes in progress (async-signal-safe),
// then end the process with the signal's default action (SA_RESETHAND restored it).
extern "C" void remove_temporaries_and_die(int sig) {
  masquant::remove_temporary_files();
  ::raise(sig);
}

void install_signal_cleanup() {
  for (const int sig : {SIGINT, SIGTERM, SIGHUP}) {
    struct sigaction old {};
    if (::sigaction(sig, nullptr, &old) != 0 || old.sa_handler == SIG_IGN) continue;  // nohup
    struct sigaction sa {};
    sa.sa_handler = remove_temporaries_and_die;
    sa.sa_flags = SA_RESETHAND;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  }
}

}  // namespace

int main(int argc, char** argv) {
  using namespace masquant::cli;
  install_signal_cleanup();
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty()) {
    std::fputs("masquant: missing command (see 'masquant --help')\n", stderr);
    return exit_usage;
  }
  const std::string command = args.front();
  args.erase(args.begin());
  try {
    if (command == "-h" || command == "--help" || command == "help") {
      std::fputs(usage_text, stdout);
      return exit_ok;
    }
    if (command == "--version" || command == "version") {
      std::printf("masquant %s\n", masquant::version_string);
      return exit_ok;
    }
    if (command == "demo") return run_demo(args);
    if (command == "calibrate") return run_calibrate(args);
    if (command == "forward") return run_forward(args);
    if (command == "inspect") return run_inspect(args);
    if (command == "quantize") return run_quantize(args);
    if (command == "stats") return run_stats(args);
    throw usage_error("unknown command '" + command + "'");
  } catch (const usage_error& e) {
    std::fprintf(stderr, "masquant: %s (see 'masquant %s--help')\n", e.what(),
                 command.rfind('-', 0) == 0 ? "" : (command + " ").c_str());
    return exit_usage;
  } catch (const masquant::error& e) {
    std::fprintf(stderr, "masquant: error: %s\n", e.what());
    return exit_failure;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "masquant: error: out of memory (std::bad_alloc)\n");
    return exit_failure;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "masquant: error: %s\n", e.what());
    return exit_failure;
  }
}
