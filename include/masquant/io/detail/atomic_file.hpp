// atomic_file.hpp: write a file under a temporary name and rename it into place on success.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstring>
#include <masquant/error.hpp>
#include <masquant/io/detail/file_kind.hpp>
#include <masquant/io/temporary_files.hpp>
#include <string>
#include <vector>

namespace masquant::detail {

/// An output file that appears at `path` only when commit() succeeds: bytes go to a temporary
/// file in the same directory (so rename() is atomic), which commit() fsyncs and renames over
/// `path`. Destroying an uncommitted atomic_file removes the temporary, so a failure (an OS error
/// or an exception between writes) leaves neither a partial output nor a stray temporary, and
/// an existing `path` untouched. The temporary is registered for remove_temporary_files() (a
/// signal handler's cleanup) while it exists.
///
/// Only a regular file (or nothing) at `path` is replaced: a directory, FIFO, device or socket
/// there, or a symbolic link to one, is an error (renaming over /dev/null would replace the
/// device node). A symbolic link to a regular file is replaced by the new file, not followed.
class atomic_file {
 public:
  /// Creates the temporary (mode 0666 less the umask, as open() would give `path`); throws
  /// errc::io_error naming the path when the directory is missing or not writable, or when
  /// `path` is not a regular file.
  explicit atomic_file(std::string path) : path_(std::move(path)) {
    const auto slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "" : path_.substr(0, slash + 1);
    const std::string base = slash == std::string::npos ? path_ : path_.substr(slash + 1);
    MASQUANT_CHECK(!base.empty(), errc::io_error, path_, ": cannot write: names a directory");
    check_replaceable();
    static std::atomic<unsigned> counter{0};
    for (int attempt = 0; fd_ < 0; ++attempt) {
      const auto stamp = std::chrono::steady_clock::now().time_since_epoch().count();
      temp_ = cat(dir, '.', base, ".tmp-", ::getpid(), '-', counter++, '-', stamp % 1000000);
      fd_ = ::open(temp_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (fd_ < 0 && (errno != EEXIST || attempt >= 100))
        raise(errc::io_error, cat(path_, ": cannot create a temporary file in its directory: ",
                                  std::strerror(errno)));
    }
    slot_ = register_temporary(temp_);
  }
  ~atomic_file() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(temp_.c_str());
    unregister_temporary(slot_);
  }
  atomic_file(const atomic_file&) = delete;
  atomic_file& operator=(const atomic_file&) = delete;

  /// Appends `size` bytes; throws errc::io_error (disk full, file size limit, ...).
  void write(const void* data, std::size_t size) {
    auto p = static_cast<const char*>(data);
    while (size > 0) {
      const ::ssize_t n = ::write(fd_, p, size);
      if (n < 0 && errno == EINTR) continue;
      MASQUANT_CHECK(n > 0, errc::io_error, path_, ": write failed after ", written_,
                     " bytes: ", n < 0 ? std::strerror(errno) : "no progress");
      p += n;
      size -= static_cast<std::size_t>(n);
      written_ += static_cast<std::size_t>(n);
    }
  }

  /// Writes `size` bytes at byte `offset` (the file grows as needed; bytes never written read as
  /// zero), for writers that know the whole layout first; throws as write().
  void write_at(std::uint64_t offset, const void* data, std::size_t size) {
    auto p = static_cast<const char*>(data);
    while (size > 0) {
      const ::ssize_t n = ::pwrite(fd_, p, size, static_cast<::off_t>(offset));
      if (n < 0 && errno == EINTR) continue;
      MASQUANT_CHECK(n > 0, errc::io_error, path_, ": write of ", size, " bytes at offset ", offset,
                     " failed: ", n < 0 ? std::strerror(errno) : "no progress");
      p += n;
      size -= static_cast<std::size_t>(n);
      offset += static_cast<std::uint64_t>(n);
    }
  }

  /// Copies `size` bytes of the open file `src` from `src_offset` to `offset` of this file,
  /// in the kernel where it can (copy_file_range), so the bytes never pass through this
  /// process's memory; throws as write(), naming `src_name` when reading fails.
  void copy_at(std::uint64_t offset, int src, std::uint64_t src_offset, std::uint64_t size,
               const std::string& src_name) {
    auto in = static_cast<::off_t>(src_offset), out = static_cast<::off_t>(offset);
    while (size > 0) {
      const ::ssize_t n = ::copy_file_range(src, &in, fd_, &out, size, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;  // unsupported here (EXDEV, ENOSYS, ...) or short: copy by hand
      size -= static_cast<std::uint64_t>(n);
    }
    std::vector<char> buffer(static_cast<std::size_t>(std::min<std::uint64_t>(size, 8u << 20)));
    while (size > 0) {
      const auto chunk = static_cast<std::size_t>(std::min<std::uint64_t>(size, buffer.size()));
      const ::ssize_t n = ::pread(src, buffer.data(), chunk, in);
      if (n < 0 && errno == EINTR) continue;
      MASQUANT_CHECK(n > 0, errc::io_error, src_name, ": read of ", chunk, " bytes at offset ", in,
                     " failed: ", n < 0 ? std::strerror(errno) : "unexpected end of file");
      write_at(static_cast<std::uint64_t>(out), buffer.data(), static_cast<std::size_t>(n));
      in += n;
      out += n;
      size -= static_cast<std::uint64_t>(n);
    }
  }

  /// Flushes to disk and renames over `path`; throws errc::io_error (the temporary is removed),
  /// also when `path` became something other than a regular file meanwhile.
  void commit() {
    MASQUANT_CHECK(::fsync(fd_) == 0, errc::io_error, path_,
                   ": fsync failed: ", std::strerror(errno));
    const int fd = fd_;
    fd_ = -1;
    MASQUANT_CHECK(::close(fd) == 0, errc::io_error, path_,
                   ": close failed: ", std::strerror(errno));
    check_replaceable();
    MASQUANT_CHECK(::rename(temp_.c_str(), path_.c_str()) == 0, errc::io_error, path_,
                   ": cannot rename the temporary into place: ", std::strerror(errno));
    committed_ = true;
    sync_directory();
  }

 private:
  // Refuses to replace anything but a regular file (links followed); a missing path is fine.
  void check_replaceable() const {
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0 && !S_ISREG(st.st_mode))
      raise(errc::io_error,
            cat(path_, ": cannot write: it is ", file_kind(st.st_mode), ", not a regular file"));
  }

  // Makes the rename durable. Best effort: the output is complete and in place already, so a
  // failure here is not reported as a failed write.
  void sync_directory() const noexcept {
    const auto slash = path_.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : path_.substr(0, slash + 1);
    const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    static_cast<void>(::fsync(fd));
    ::close(fd);
  }

  std::string path_;
  std::string temp_;
  int fd_ = -1;
  std::size_t written_ = 0;
  bool committed_ = false;
  int slot_ = -1;  // in the registry of remove_temporary_files()
};

}  // namespace masquant::detail
