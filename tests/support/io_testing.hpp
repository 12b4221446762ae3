// io_testing.hpp: helpers for the safetensors tests (temp dirs, raw file images, error checks).
#pragma once

#include <stdlib.h>  // mkdtemp

#include <algorithm>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <iterator>
#include <masquant/error.hpp>
#include <masquant/io/safetensors_file.hpp>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace masquant::testing {

using bytes = std::vector<std::uint8_t>;

/// A fresh directory under $TMPDIR (or /tmp), removed with its content on destruction.
class temp_dir {
 public:
  temp_dir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base && *base ? base : "/tmp") + "/masquant-io-XXXXXX";
    BOOST_TEST_REQUIRE(::mkdtemp(templ.data()) != nullptr);
    path_ = templ;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::permissions(path_, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;

  const std::string& path() const { return path_; }
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  /// Names of the entries in the directory, sorted.
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path_))
      out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }

 private:
  std::string path_;
};

inline void write_bytes(const std::string& path, const bytes& b) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  BOOST_TEST_REQUIRE(out.good());
}

inline bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  BOOST_TEST_REQUIRE(in.good());
  return bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

/// Aborts the test program, naming `what`, unless destroyed within `seconds`: a hang guard for
/// work that must finish in linear time (far below the limit), not a speed measurement.
class watchdog {
 public:
  watchdog(int seconds, std::string what) : what_(std::move(what)) {
    thread_ = std::thread([this, seconds] {
      std::unique_lock<std::mutex> lock(mutex_);
      if (!done_.wait_for(lock, std::chrono::seconds(seconds), [this] { return finished_; })) {
        std::fprintf(stderr, "watchdog: %s took more than %d s\n", what_.c_str(), seconds);
        std::abort();
      }
    });
  }
  ~watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      finished_ = true;
    }
    done_.notify_one();
    thread_.join();
  }
  watchdog(const watchdog&) = delete;
  watchdog& operator=(const watchdog&) = delete;

 private:
  std::string what_;
  std::mutex mutex_;
  std::condition_variable done_;
  bool finished_ = false;
  std::thread thread_;
};

/// A raw safetensors image: the 8-byte little-endian length of `header`, `header` as given (no
/// padding added), then `buffer`.
inline bytes image(const std::string& header, const bytes& buffer = {}) {
  // Sized up front: g++ 12 misreports vector::insert after a small vector (-Warray-bounds).
  bytes out(8 + header.size() + buffer.size());
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<std::uint8_t>(n >> (8 * i));
  // memcpy, not std::copy: g++ 12 -O3 also misreports the copy into a small vector
  // (-Wstringop-overflow).
  if (!header.empty()) std::memcpy(out.data() + 8, header.data(), header.size());
  if (!buffer.empty()) std::memcpy(out.data() + 8 + n, buffer.data(), buffer.size());
  return out;
}

/// image() with a zero-filled buffer of `buffer_size` bytes.
inline bytes image(const std::string& header, std::size_t buffer_size) {
  return image(header, bytes(buffer_size, 0));
}

/// Runs f, which must throw masquant::error with `code` and a one-line message containing every
/// one of `parts`.
template <class F>
void check_error(F&& f, errc code, std::initializer_list<std::string> parts) {
  try {
    f();
    BOOST_ERROR("no masquant::error thrown; expected " << code);
  } catch (const error& e) {
    const std::string what = e.what();
    BOOST_TEST(e.code() == code, "code " << e.code() << ", expected " << code << ": " << what);
    BOOST_TEST(what.find('\n') == std::string::npos, "message not one line: " << what);
    for (const auto& p : parts)
      BOOST_TEST(what.find(p) != std::string::npos, "message lacks \"" << p << "\": " << what);
  }
}

/// Parsing `img` fails with `code` and a message containing `parts`, both from memory (named
/// "<memory>") and from a file (whose path the message names too).
inline void check_rejected(const bytes& img, errc code, std::initializer_list<std::string> parts) {
  check_error([&] { safetensors_file::from_memory(img.data(), img.size()); }, code, parts);
  temp_dir dir;
  const std::string path = dir.file("bad.safetensors");
  write_bytes(path, img);
  check_error([&] { safetensors_file f(path); }, code, parts);
  check_error([&] { safetensors_file f(path); }, code, {path});
}

}  // namespace masquant::testing
