// threads.hpp: the thread count of a command (--threads), capped at the CPUs it may run on.
#pragma once

#include <sched.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "args.hpp"

namespace masquant::cli {

/// CPUs this process may run on (its affinity mask, as nproc counts them; at least 1).
inline int available_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  return std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
}

/// The value of --threads (0..4096, default 0: every available CPU), capped at the available
/// CPUs with a warning on stderr: results do not depend on the thread count, and more threads
/// than CPUs only take turns (16 threads on 2 cores ran 20 to 150 times slower). Throws
/// usage_error for a bad value.
inline int thread_count(const parsed_args& args) {
  const int asked = static_cast<int>(args.get_int("threads", 0, 0, 4096));
  const int cpus = available_cpus();
  if (asked == 0) return cpus;
  if (asked <= cpus) return asked;
  std::fprintf(stderr,
               "masquant: warning: --threads %d is more than the %d CPU%s available; using %d\n",
               asked, cpus, cpus == 1 ? "" : "s", cpus);
  return cpus;
}

}  // namespace masquant::cli
