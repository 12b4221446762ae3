// temporary_files.hpp: the temporaries of atomic writes in progress, and their removal from a
// signal handler.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstring>
#include <string>

namespace masquant {

namespace detail {

/// One registered temporary path: state 0 free, 1 being filled, 2 registered. Fixed storage,
/// so that a signal handler reads it without locks or allocation.
struct temporary_slot {
  std::atomic<int> state{0};
  char path[1024];
};
inline constexpr int temporary_slot_count = 32;
// Constant-initialised (no guard to take in a signal handler), one array per program.
inline temporary_slot temporary_slots[temporary_slot_count];

/// Registers `path`; returns its slot, or -1 when every slot is taken or the path has 1024 bytes
/// or more (that temporary is then not covered by remove_temporary_files()).
inline int register_temporary(const std::string& path) noexcept {
  if (path.size() >= sizeof temporary_slots[0].path) return -1;
  for (int i = 0; i < temporary_slot_count; ++i) {
    int expected = 0;
    temporary_slot& s = temporary_slots[i];
    if (!s.state.compare_exchange_strong(expected, 1)) continue;
    std::memcpy(s.path, path.c_str(), path.size() + 1);
    s.state.store(2);
    return i;
  }
  return -1;
}

/// Forgets a slot of register_temporary() (-1: nothing).
inline void unregister_temporary(int slot) noexcept {
  if (slot >= 0) temporary_slots[slot].state.store(0);
}

}  // namespace detail

/// Removes the temporary file of every atomic write in progress in this process (what
/// safetensors_writer::write creates beside its target as `.<name>.tmp-<pid>-<n>-<stamp>`),
/// so that an interrupted program leaves none behind. Async-signal-safe (lock-free atomics and
/// unlink(2) only): call it from a SIGINT/SIGTERM handler, then let the signal end the process
/// (the writes whose temporaries vanished cannot complete). The library installs no handler;
/// the `masquant` tool does.
///
/// Best effort: at most 32 writes in flight with temporary paths under 1024 bytes are covered,
/// and a write that starts or ends at the very moment of the call may keep its temporary.
///
/// Example:
/// \code
///   extern "C" void on_signal(int sig) {
///     masquant::remove_temporary_files();
///     std::signal(sig, SIG_DFL);
///     std::raise(sig);
///   }
///   std::signal(SIGINT, on_signal);
///   std::signal(SIGTERM, on_signal);
/// \endcode
inline void remove_temporary_files() noexcept {
  for (detail::temporary_slot& s : detail::temporary_slots)
    if (s.state.load() == 2) ::unlink(s.path);
}

}  // namespace masquant
