// Tests of safetensors_writer::write() atomicity (io/detail/atomic_file.hpp): a failed write
// leaves no output and no temporary, an existing file is replaced only on success, and only a
// regular file is replaced; remove_temporary_files() (io/temporary_files.hpp) clears the
// temporaries of an interrupted program.
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/test/unit_test.hpp>
#include <csignal>
#include <filesystem>
#include <masquant/io/safetensors.hpp>
#include <masquant/io/temporary_files.hpp>
#include <string>
#include <support/io_testing.hpp>
#include <support/testing.hpp>
#include <vector>

using namespace masquant;
using masquant::testing::bytes;
using masquant::testing::check_error;
using masquant::testing::temp_dir;

namespace {

safetensors_writer big_writer(index_t rows) {
  safetensors_writer out;
  const auto w = masquant::testing::random_normal(rows, 256, 1.0f, 4);
  out.add("w", w.cview());
  out.set_metadata("format", "masquant");
  return out;
}

// Limits the size of files this process may write, for the scope's lifetime, with SIGXFSZ ignored
// so that write() fails with EFBIG instead of killing the test.
class file_size_limit {
 public:
  explicit file_size_limit(rlim_t bytes) {
    BOOST_TEST_REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved_) == 0);
    old_handler_ = std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim = saved_;
    lim.rlim_cur = bytes;
    BOOST_TEST_REQUIRE(::setrlimit(RLIMIT_FSIZE, &lim) == 0);
  }
  ~file_size_limit() {
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    std::signal(SIGXFSZ, old_handler_);
  }

 private:
  rlimit saved_{};
  void (*old_handler_)(int) = nullptr;
};

}  // namespace

BOOST_AUTO_TEST_SUITE(io_atomic_write)

BOOST_AUTO_TEST_CASE(success_creates_the_file_with_default_permissions) {
  temp_dir dir;
  const std::string path = dir.file("out.safetensors");
  const auto out = big_writer(3);
  out.write(path);
  BOOST_TEST(dir.entries() == std::vector<std::string>{"out.safetensors"});
  BOOST_TEST(masquant::testing::read_bytes(path) == out.serialize());
  const mode_t mask = ::umask(0);
  ::umask(mask);
  struct stat st {};
  BOOST_TEST_REQUIRE(::stat(path.c_str(), &st) == 0);
  BOOST_TEST((st.st_mode & 0777) == (0666 & ~mask));
  // A relative path (no directory part) works too.
  const std::string cwd = std::filesystem::current_path().string();
  std::filesystem::current_path(dir.path());
  out.write("rel.safetensors");
  std::filesystem::current_path(cwd);
  BOOST_TEST(masquant::testing::read_bytes(dir.file("rel.safetensors")) == out.serialize());
}

BOOST_AUTO_TEST_CASE(success_replaces_an_existing_file) {
  temp_dir dir;
  const std::string path = dir.file("out.safetensors");
  masquant::testing::write_bytes(path, bytes(100000, 7));  // longer than the new content
  const auto out = big_writer(2);
  out.write(path);
  BOOST_TEST(masquant::testing::read_bytes(path) == out.serialize());
  BOOST_TEST(dir.entries() == std::vector<std::string>{"out.safetensors"});
}

BOOST_AUTO_TEST_CASE(missing_or_invalid_directory_leaves_nothing) {
  temp_dir dir;
  const auto out = big_writer(2);
  check_error([&] { out.write(dir.file("no/such/dir/out.safetensors")); }, errc::io_error,
              {"no/such/dir/out.safetensors", "cannot create a temporary"});
  masquant::testing::write_bytes(dir.file("plain"), bytes{1});
  check_error([&] { out.write(dir.file("plain/out.safetensors")); }, errc::io_error,
              {"plain/out.safetensors", "Not a directory"});
  check_error([&] { out.write(dir.path() + "/"); }, errc::io_error, {"names a directory"});
  BOOST_TEST(dir.entries() == std::vector<std::string>{"plain"});
}

BOOST_AUTO_TEST_CASE(unwritable_directory_leaves_nothing) {
  temp_dir dir;
  const std::string sub = dir.file("ro");
  std::filesystem::create_directory(sub);
  std::filesystem::permissions(
      sub, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  // Root ignores directory permissions; /proc refuses new files to everyone.
  const std::string target =
      ::geteuid() == 0 ? "/proc/masquant-io-test.safetensors" : sub + "/out.safetensors";
  check_error([&] { big_writer(2).write(target); }, errc::io_error,
              {target, "cannot create a temporary"});
  BOOST_TEST(!std::filesystem::exists(target));
  BOOST_TEST(std::filesystem::is_empty(sub));
}

BOOST_AUTO_TEST_CASE(failure_mid_write_keeps_the_old_file_and_no_temporary) {
  temp_dir dir;
  const std::string path = dir.file("out.safetensors");
  const bytes old(1000, 42);
  masquant::testing::write_bytes(path, old);
  const auto out = big_writer(64);  // 64 KiB of data: the 16 KiB limit stops it half-way
  {
    file_size_limit limit(16384);
    check_error([&] { out.write(path); }, errc::io_error, {path, "write failed after 16384 bytes"});
  }
  BOOST_TEST(masquant::testing::read_bytes(path) == old);
  BOOST_TEST(dir.entries() == std::vector<std::string>{"out.safetensors"});
  // Without the limit the same write succeeds.
  out.write(path);
  BOOST_TEST(masquant::testing::read_bytes(path) == out.serialize());
}

BOOST_AUTO_TEST_CASE(failure_at_commit_leaves_no_temporary) {
  temp_dir dir;
  const std::string target = dir.file("occupied");
  {
    // The target is free when the write starts, and a non-empty directory when it is committed.
    masquant::detail::atomic_file out(target);
    out.write("abc", 3);
    BOOST_TEST(dir.entries().size() == 1u);  // the temporary
    std::filesystem::create_directory(target);
    masquant::testing::write_bytes(target + "/keep", bytes{1});
    check_error([&] { out.commit(); }, errc::io_error, {target, "it is a directory"});
  }
  BOOST_TEST(dir.entries() == std::vector<std::string>{"occupied"});
  BOOST_TEST(std::filesystem::is_directory(target));
}

// A FIFO, a device (through a symbolic link to /dev/null) or a directory at the target is
// refused before anything is written, and stays what it was; a link to a regular file is
// replaced by the new file, not followed.
BOOST_AUTO_TEST_CASE(only_regular_files_are_replaced) {
  temp_dir dir;
  const std::string fifo = dir.file("fifo"), null = dir.file("null"), sub = dir.file("sub");
  BOOST_TEST_REQUIRE(::mkfifo(fifo.c_str(), 0644) == 0);
  std::filesystem::create_symlink("/dev/null", null);
  std::filesystem::create_directory(sub);
  check_error([&] { big_writer(2).write(fifo); }, errc::io_error, {fifo, "it is a FIFO"});
  check_error([&] { big_writer(2).write(null); }, errc::io_error, {null, "a character device"});
  check_error([&] { big_writer(2).write(sub); }, errc::io_error, {sub, "it is a directory"});
  BOOST_TEST(std::filesystem::is_fifo(fifo));
  BOOST_TEST(std::filesystem::is_symlink(null));
  BOOST_TEST(std::filesystem::read_symlink(null) == "/dev/null");
  BOOST_TEST(std::filesystem::is_character_file("/dev/null"));
  BOOST_TEST(dir.entries() == (std::vector<std::string>{"fifo", "null", "sub"}));

  const std::string target = dir.file("target"), link = dir.file("link");
  masquant::testing::write_bytes(target, bytes{7});
  std::filesystem::create_symlink(target, link);
  big_writer(2).write(link);
  BOOST_TEST(!std::filesystem::is_symlink(link));
  BOOST_TEST(masquant::testing::read_bytes(target) == bytes{7});
}

// remove_temporary_files() deletes the temporaries of the writes in progress (what a signal
// handler calls), and nothing else.
BOOST_AUTO_TEST_CASE(pending_temporaries_can_be_removed) {
  temp_dir dir;
  big_writer(2).write(dir.file("done.safetensors"));
  {
    masquant::detail::atomic_file a(dir.file("a")), b(dir.file("b"));
    a.write("x", 1);
    BOOST_TEST(dir.entries().size() == 3u);
    remove_temporary_files();
    BOOST_TEST(dir.entries() == std::vector<std::string>{"done.safetensors"});
  }
  remove_temporary_files();  // the slots were freed: nothing more to remove
  BOOST_TEST(dir.entries() == std::vector<std::string>{"done.safetensors"});
}

// A process killed by SIGTERM while writing, with a handler that calls remove_temporary_files()
// and re-raises (as the masquant tool installs), leaves no temporary and the old file intact.
BOOST_AUTO_TEST_CASE(a_signal_handler_leaves_no_temporary) {
  temp_dir dir;
  const std::string path = dir.file("out.safetensors");
  masquant::testing::write_bytes(path, bytes{1, 2, 3});
  const pid_t child = ::fork();
  BOOST_TEST_REQUIRE(child >= 0);
  if (child == 0) {
    struct sigaction sa {};
    sa.sa_handler = [](int sig) {
      remove_temporary_files();
      ::raise(sig);  // SA_RESETHAND: the default action now
    };
    sa.sa_flags = SA_RESETHAND;
    ::sigaction(SIGTERM, &sa, nullptr);
    masquant::detail::atomic_file out(path);
    out.write("partial", 7);
    ::raise(SIGTERM);
    ::_exit(0);  // not reached
  }
  int status = 0;
  BOOST_TEST_REQUIRE(::waitpid(child, &status, 0) == child);
  BOOST_TEST(WIFSIGNALED(status));
  BOOST_TEST((WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM));
  BOOST_TEST(dir.entries() == std::vector<std::string>{"out.safetensors"});
  BOOST_TEST((masquant::testing::read_bytes(path) == bytes{1, 2, 3}));
}

BOOST_AUTO_TEST_CASE(invalid_tensors_fail_before_any_file_is_touched) {
  temp_dir dir;
  const std::string path = dir.file("out.safetensors");
  masquant::testing::write_bytes(path, bytes{1, 2, 3});
  safetensors_writer out;
  const std::vector<float> v{1e6f};
  check_error([&] { out.add("h", vector_view<const float>(v.data(), 1), dtype::f16); },
              errc::overflow, {"tensor 'h'"});
  out.write(path);  // the failed add() left nothing behind: an empty, valid file
  const bytes img = masquant::testing::read_bytes(path);
  BOOST_TEST(safetensors_file::from_memory(img.data(), img.size()).tensors().empty());
}

BOOST_AUTO_TEST_SUITE_END()
