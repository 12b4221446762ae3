// mapped_file.hpp: a whole file mapped read-only with POSIX mmap.
#pragma once

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstring>
#include <masquant/error.hpp>
#include <masquant/io/detail/file_kind.hpp>
#include <string>

namespace masquant::detail {

/// Maps a regular file read-only for the object's lifetime (an empty file maps to no memory).
/// Another process truncating the file while it is mapped makes reads fault (SIGBUS), as for
/// any mmap reader.
class mapped_file {
 public:
  /// Throws errc::io_error naming the path and the OS reason, or what the path is when it is not
  /// a regular file (a directory, FIFO, device, socket): such a path is refused without blocking
  /// (opening a FIFO for reading waits for a writer) and, unless it changes in between, without
  /// being opened at all (opening a device may act on it).
  explicit mapped_file(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) not_regular(path, st.st_mode);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    MASQUANT_CHECK(fd >= 0, errc::io_error, path, ": cannot open: ", std::strerror(errno));
    if (::fstat(fd, &st) != 0) fail(fd, path, "cannot stat");
    if (!S_ISREG(st.st_mode)) {
      ::close(fd);
      not_regular(path, st.st_mode);
    }
    size_ = static_cast<std::size_t>(st.st_size);
    if (size_ > 0) {
      void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
      if (p == MAP_FAILED) fail(fd, path, "cannot mmap");
      data_ = static_cast<const unsigned char*>(p);
    }
    ::close(fd);  // the mapping stays valid without the descriptor
  }
  ~mapped_file() {
    if (data_) ::munmap(const_cast<unsigned char*>(data_), size_);
  }
  mapped_file(const mapped_file&) = delete;
  mapped_file& operator=(const mapped_file&) = delete;

  const unsigned char* data() const noexcept { return data_; }
  std::size_t size() const noexcept { return size_; }

 private:
  [[noreturn]] static void not_regular(const std::string& path, mode_t mode) {
    raise(errc::io_error, cat(path, ": not a regular file (", file_kind(mode), ")"));
  }
  [[noreturn]] static void fail(int fd, const std::string& path, const char* what) {
    const int err = errno;
    ::close(fd);
    raise(errc::io_error, cat(path, ": ", what, ": ", std::strerror(err)));
  }

  const unsigned char* data_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace masquant::detail
