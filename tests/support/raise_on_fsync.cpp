// raise_on_fsync.cpp: an LD_PRELOAD shim for bad_input_cli_test. When MASQUANT_TEST_RAISE holds
// a signal number, the program's first fsync() raises that signal: as if the user pressed
// Ctrl-C (or a job scheduler sent SIGTERM) while an output file is being written, at a moment
// the test controls.
#include <dlfcn.h>

#include <csignal>
#include <cstdlib>

extern "C" int fsync(int fd) {
  if (const char* sig = std::getenv("MASQUANT_TEST_RAISE"); sig != nullptr && *sig != '\0')
    std::raise(std::atoi(sig));
  using fsync_fn = int (*)(int);
  static const auto real = reinterpret_cast<fsync_fn>(::dlsym(RTLD_NEXT, "fsync"));
  return real(fd);
}
