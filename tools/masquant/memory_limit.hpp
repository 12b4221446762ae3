// memory_limit.hpp: how much more memory this process may use — the tightest of its address
// space limit (ulimit -v) and its cgroup v2 limits (memory.max, memory.high) — and sizes for
// messages.
#pragma once

#include <sys/resource.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <optional>
#include <string>

namespace masquant::cli {

/// "1.5 GiB", "300.0 MiB", "12 KiB".
inline std::string format_bytes(std::uint64_t bytes) {
  char buf[32];
  const double b = static_cast<double>(bytes);
  if (bytes >= (std::uint64_t{1} << 30))
    std::snprintf(buf, sizeof buf, "%.1f GiB", b / double(1u << 30));
  else if (bytes >= (std::uint64_t{1} << 20))
    std::snprintf(buf, sizeof buf, "%.1f MiB", b / double(1u << 20));
  else
    std::snprintf(buf, sizeof buf, "%llu KiB",
                  static_cast<unsigned long long>((bytes + 1023) / 1024));
  return buf;
}

/// What the process may still allocate, and the limit that says so.
struct memory_headroom {
  std::uint64_t available = 0;
  std::string limit;  ///< e.g. "ulimit -v 2.0 GiB, 310.5 MiB in use"
};

namespace internal {

inline std::optional<std::uint64_t> read_number(const std::string& path) {
  std::ifstream in(path);
  std::string word;
  if (!(in >> word) || word == "max") return std::nullopt;
  try {
    return std::stoull(word);
  } catch (...) {
    return std::nullopt;
  }
}

}  // namespace internal

/// The tightest limit on further allocation: RLIMIT_AS less the current virtual size (every
/// mapping counts, the mapped input file included), and for the process's cgroup v2 and each
/// of its ancestors, memory.max and memory.high less memory.current. Nothing when unlimited.
inline std::optional<memory_headroom> memory_available() {
  std::optional<memory_headroom> best;
  const auto consider = [&best](std::uint64_t limit, std::uint64_t used, const std::string& what) {
    const std::uint64_t left = used < limit ? limit - used : 0;
    if (!best || left < best->available)
      best = memory_headroom{
          left, what + " " + format_bytes(limit) + ", " + format_bytes(used) + " in use"};
  };
  rlimit as{};
  if (::getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY) {
    std::uint64_t pages = 0;
    std::ifstream statm("/proc/self/statm");
    statm >> pages;
    consider(as.rlim_cur, pages * static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE)), "ulimit -v");
  }
  // cgroup v2: the line "0::<path>" of /proc/self/cgroup.
  std::ifstream groups("/proc/self/cgroup");
  std::string line, path;
  while (std::getline(groups, line))
    if (line.rfind("0::", 0) == 0) path = line.substr(3);
  if (!path.empty() && path[0] == '/') {
    for (std::string dir = path;;) {
      const std::string base = "/sys/fs/cgroup" + (dir == "/" ? std::string() : dir);
      const auto current = internal::read_number(base + "/memory.current");
      for (const char* key : {"memory.max", "memory.high"})
        if (const auto limit = internal::read_number(base + "/" + key); limit && current)
          consider(*limit, *current, std::string("cgroup ") + key);
      if (dir == "/") break;
      const auto slash = dir.rfind('/');
      dir = slash == 0 ? "/" : dir.substr(0, slash);
    }
  }
  return best;
}

}  // namespace masquant::cli
