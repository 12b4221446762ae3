// file_args.hpp: the checks of a command's file arguments before any work — no output may be an
// input or another output (after resolving links), and an output must be a regular file or a
// new name in an existing directory.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <masquant/error.hpp>
#include <masquant/io/detail/file_kind.hpp>
#include <string>
#include <vector>

#include "args.hpp"

namespace masquant::cli {

/// One file named on a command line.
struct file_arg {
  std::string flag;  ///< how the command line names it: "IN", "MODEL", "-o", "--report", ...
  std::string path;  ///< empty: not given (skipped)
  bool output = false;
};

namespace internal {

/// Where a path leads: the file it names now (symbolic links followed), and the directory entry
/// a write would create or replace (the directory's identity and the last component).
struct file_identity {
  bool exists = false;
  dev_t dev = 0;
  ino_t ino = 0;
  mode_t mode = 0;
  bool dir_exists = false;
  dev_t dir_dev = 0;
  ino_t dir_ino = 0;
  std::string dir, name;
};

inline file_identity identify(const std::string& path) {
  file_identity id;
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0) {
    id.exists = true;
    id.dev = st.st_dev;
    id.ino = st.st_ino;
    id.mode = st.st_mode;
  }
  const auto slash = path.rfind('/');
  id.dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  id.name = slash == std::string::npos ? path : path.substr(slash + 1);
  if (::stat(id.dir.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    id.dir_exists = true;
    id.dir_dev = st.st_dev;
    id.dir_ino = st.st_ino;
  }
  return id;
}

/// Whether two paths lead to one file: the same file now, or the same directory entry.
inline bool same_file(const file_identity& a, const file_identity& b) {
  if (a.exists && b.exists && a.dev == b.dev && a.ino == b.ino) return true;
  return a.dir_exists && b.dir_exists && a.dir_dev == b.dir_dev && a.dir_ino == b.dir_ino &&
         a.name == b.name;
}

}  // namespace internal

/// Checks `files` (stat only, nothing is opened). Throws usage_error naming both arguments when
/// an output leads to the same file as an input or another output — the same path, a hard or
/// symbolic link, another spelling of the directory — since writing it would destroy what the
/// command reads or writes first. Then throws errc::io_error when an output exists and is not a
/// regular file (a directory, FIFO, device, socket, or a link to one), or its directory does not
/// exist or is not writable: errors that would otherwise come only after hours of calibration.
inline void check_file_args(const std::vector<file_arg>& files) {
  std::vector<internal::file_identity> ids;
  ids.reserve(files.size());
  for (const auto& f : files) ids.push_back(internal::identify(f.path));
  for (std::size_t i = 0; i < files.size(); ++i) {
    if (!files[i].output || files[i].path.empty()) continue;
    for (std::size_t j = 0; j < files.size(); ++j) {
      if (j == i || files[j].path.empty() || (files[j].output && j > i)) continue;
      if (!internal::same_file(ids[i], ids[j])) continue;
      throw usage_error(files[i].flag + " '" + files[i].path + "' and " +
                        (files[j].output ? "" : "the input ") + files[j].flag + " '" +
                        files[j].path + "' are the same file" +
                        (files[j].output ? "" : ": it would be overwritten"));
    }
  }
  for (std::size_t i = 0; i < files.size(); ++i) {
    const auto& f = files[i];
    const auto& id = ids[i];
    if (!f.output || f.path.empty()) continue;
    if (id.exists && !S_ISREG(id.mode))
      raise(errc::io_error,
            detail::cat(f.path, ": cannot write ", f.flag, ": it is ", detail::file_kind(id.mode),
                        ", not a regular file (masquant writes regular files only)"));
    if (!id.dir_exists)
      raise(errc::io_error, detail::cat(f.path, ": cannot write ", f.flag, ": directory '", id.dir,
                                        "' does not exist"));
    if (::access(id.dir.c_str(), W_OK | X_OK) != 0)
      raise(errc::io_error, detail::cat(f.path, ": cannot write ", f.flag, " in directory '",
                                        id.dir, "': ", std::strerror(errno)));
  }
}

}  // namespace masquant::cli
