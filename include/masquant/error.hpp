// error.hpp: the error type every masquant function reports bad input or failed numerics with.
#pragma once

#include <masquant/config.hpp>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

#ifdef MASQUANT_NO_EXCEPTIONS
#include <cstdio>
#include <cstdlib>
#endif

namespace masquant {

/// What went wrong, coarsely; the message says exactly what and where.
enum class errc : int {
  invalid_argument = 1,  ///< a parameter outside its documented range
  shape_mismatch,        ///< extents of two operands disagree
  non_finite,            ///< NaN or Inf in an input
  out_of_range,          ///< an index or id outside its container
  overflow,              ///< a size that would overflow an accumulator or an index
  numerical_issue,       ///< a factorisation or solver failed
  io_error,              ///< the operating system refused a file operation
  format_error,          ///< a file does not follow its format
  not_supported,         ///< valid, but not implemented for these parameters
};

/// Short stable name of an error code ("shape_mismatch").
inline const char* to_string(errc code) noexcept {
  switch (code) {
    case errc::invalid_argument:
      return "invalid_argument";
    case errc::shape_mismatch:
      return "shape_mismatch";
    case errc::non_finite:
      return "non_finite";
    case errc::out_of_range:
      return "out_of_range";
    case errc::overflow:
      return "overflow";
    case errc::numerical_issue:
      return "numerical_issue";
    case errc::io_error:
      return "io_error";
    case errc::format_error:
      return "format_error";
    case errc::not_supported:
      return "not_supported";
  }
  return "unknown";
}

/// Writes the code's name.
inline std::ostream& operator<<(std::ostream& out, errc code) {
  return out << to_string(code);
}

/// Exception thrown by masquant; what() is one line naming the operation, tensor, row or offset.
class error : public std::runtime_error {
 public:
  error(errc code, const std::string& message) : std::runtime_error(message), code_(code) {}
  errc code() const noexcept { return code_; }

 private:
  errc code_;
};

namespace detail {

/// Concatenates streamable values into one string (error messages are built only on failure).
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream out;
  (out << ... << args);
  return out.str();
}

}  // namespace detail

[[noreturn]] inline void raise(errc code, const std::string& message);

namespace detail {

/// Runs f(), prefixing the message of any masquant::error it throws with `context` (the layer,
/// tensor or modality the failure concerns); the code is kept.
template <class F>
auto with_context(const std::string& context, F&& f) -> decltype(f()) {
#ifdef MASQUANT_NO_EXCEPTIONS
  (void)context;
  return f();
#else
  try {
    return f();
  } catch (const error& e) {
    raise(e.code(), cat(context, ": ", e.what()));
  }
#endif
}

}  // namespace detail

/// Reports an error: throws masquant::error, or under MASQUANT_NO_EXCEPTIONS prints it and aborts.
[[noreturn]] inline void raise(errc code, const std::string& message) {
#ifdef MASQUANT_NO_EXCEPTIONS
#ifdef MASQUANT_ERROR_HANDLER
  MASQUANT_ERROR_HANDLER(code, message);
#else
  std::fprintf(stderr, "masquant: %s: %s\n", to_string(code), message.c_str());
#endif
  std::abort();
#else
  throw error(code, message);
#endif
}

}  // namespace masquant

/// Checks a precondition on caller input at run time (always on); the message arguments are
/// streamed together and evaluated only when the check fails.
#define MASQUANT_CHECK(cond, code, ...)                                           \
  do {                                                                            \
    if (!(cond)) ::masquant::raise((code), ::masquant::detail::cat(__VA_ARGS__)); \
  } while (false)
