// file_kind.hpp: what a non-regular file is, for messages that refuse to read or replace one.
#pragma once

#include <sys/stat.h>

namespace masquant::detail {

/// "a directory", "a FIFO", "a character device", ... for the file type of `mode` (st_mode).
inline const char* file_kind(mode_t mode) noexcept {
  if (S_ISREG(mode)) return "a regular file";
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  return "not a regular file";
}

}  // namespace masquant::detail
