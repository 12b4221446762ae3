// progress.hpp: a one-line progress bar on stderr, drawn only when stderr is a terminal.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <string>

namespace masquant::cli {

/// Redraws "label [#####     ] detail" in place on a terminal; silent otherwise (logs and
/// pipes stay clean). Redraws at most every 100 ms.
class progress_bar {
 public:
  progress_bar() : enabled_(isatty(STDERR_FILENO) == 1) {}
  ~progress_bar() { finish(); }
  progress_bar(const progress_bar&) = delete;
  progress_bar& operator=(const progress_bar&) = delete;

  /// Shows `fraction` (0..1) of the current work with a label and detail text.
  void update(const std::string& label, double fraction, const std::string& detail) {
    if (!enabled_) return;
    const auto now = std::chrono::steady_clock::now();
    if (drawn_ && fraction < 1.0 && now - last_ < std::chrono::milliseconds(100)) return;
    last_ = now;
    drawn_ = true;
    const int width = 24;
    const int filled =
        static_cast<int>(std::lround(std::fmin(std::fmax(fraction, 0.0), 1.0) * width));
    std::string bar(static_cast<std::size_t>(filled), '#');
    bar.resize(width, ' ');
    std::fprintf(stderr, "\r\033[K%s [%s] %s", label.c_str(), bar.c_str(), detail.c_str());
    std::fflush(stderr);
  }

  /// Clears the line (the next output starts clean).
  void finish() {
    if (!enabled_ || !drawn_) return;
    std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
  }

 private:
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace masquant::cli
