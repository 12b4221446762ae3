// json_scanner.hpp: a strict JSON (RFC 8259) scanner in linear time that reports SAX events;
// the lexer and grammar of the safetensors header parser.
#pragma once

#include <charconv>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <masquant/error.hpp>
#include <masquant/io/detail/text.hpp>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace masquant::detail {

/// Scans the JSON text [first, last): one value with only whitespace (space, tab, LF, CR)
/// around it. Calls, in document order, h.start_object(), h.end_object(), h.start_array(),
/// h.end_array(), h.key(std::string&), h.string(std::string&), h.number_unsigned(std::uint64_t),
/// h.number_integer(std::int64_t), h.number_float(), h.boolean(), h.null() (the handler may
/// move from the strings). Accepts what nlohmann::json's strict parser accepts (without
/// comments), and classifies numbers as it does: an integer is unsigned when it has no '-' and
/// fits 64 bits, "integer" when negative (or -0) and fits int64, and a float otherwise; a number
/// beyond double's range is an error. Strings are UTF-8 (RFC 3629), control characters must be
/// escaped, and a \u escape of a UTF-16 surrogate must form a pair.
///
/// A syntax error raises errc::format_error "<prefix> (near file byte <base + offset>): <what>".
/// Time and memory are linear in the length; nesting uses a heap stack, not recursion (the
/// handler limits the depth where it must).
template <class Handler>
class json_scanner {
 public:
  json_scanner(const char* first, const char* last, Handler& h, std::string prefix,
               std::uint64_t base)
      : first_(first), p_(first), end_(last), h_(h), prefix_(std::move(prefix)), base_(base) {}

  void run() {
    skip_ws();
    bool need_value = true;
    for (;;) {
      if (need_value) {
        if (value()) {  // a container opened
          need_value = open_container();
          continue;
        }
      }
      skip_ws();
      if (stack_.empty()) {
        if (p_ != end_) fail("unexpected data after the JSON value");
        return;
      }
      const char open = stack_.back();
      if (p_ != end_ && *p_ == ',') {
        ++p_;
        skip_ws();
        if (open == '{') read_key();
        need_value = true;
      } else if (p_ != end_ && *p_ == (open == '{' ? '}' : ']')) {
        ++p_;
        close();
        need_value = false;
      } else {
        fail(open == '{' ? "expected ',' or '}' after an object member"
                         : "expected ',' or ']' after an array element");
      }
    }
  }

 private:
  [[noreturn]] void fail(std::string_view what) const {
    raise(errc::format_error, cat(prefix_, " (near file byte ",
                                  base_ + static_cast<std::uint64_t>(p_ - first_), "): ", what));
  }

  bool at(char c) const noexcept { return p_ != end_ && *p_ == c; }
  static bool digit(char c) noexcept { return c >= '0' && c <= '9'; }
  bool at_digit() const noexcept { return p_ != end_ && digit(*p_); }

  void skip_ws() noexcept {
    while (p_ != end_ && (*p_ == ' ' || *p_ == '\n' || *p_ == '\r' || *p_ == '\t')) ++p_;
  }

  // Reads one value at p_; for '{' or '[' only consumes the bracket and returns true.
  bool value() {
    if (p_ == end_) fail("unexpected end: expected a value");
    switch (*p_) {
      case '{':
      case '[':
        return true;
      case '"':
        read_string();
        h_.string(buf_);
        return false;
      case 't':
        literal("true");
        h_.boolean();
        return false;
      case 'f':
        literal("false");
        h_.boolean();
        return false;
      case 'n':
        literal("null");
        h_.null();
        return false;
      default:
        if (*p_ == '-' || digit(*p_)) {
          number();
          return false;
        }
        fail(cat("expected a value, not ", quoted_byte()));
    }
  }

  // p_ at '{' or '['; returns whether a value must follow (false: the container was empty).
  bool open_container() {
    const char open = *p_++;
    stack_.push_back(open);
    if (open == '{')
      h_.start_object();
    else
      h_.start_array();
    skip_ws();
    if (at(open == '{' ? '}' : ']')) {
      ++p_;
      close();
      return false;
    }
    if (open == '{') read_key();
    return true;
  }

  void close() {
    const char open = stack_.back();
    stack_.pop_back();
    if (open == '{')
      h_.end_object();
    else
      h_.end_array();
  }

  void read_key() {
    if (!at('"')) fail(cat("expected a string key, not ", quoted_byte()));
    read_string();
    h_.key(buf_);
    skip_ws();
    if (!at(':')) fail(cat("expected ':' after a key, not ", quoted_byte()));
    ++p_;
    skip_ws();
  }

  std::string quoted_byte() const {
    if (p_ == end_) return "the end";
    return "'" + printable(std::string_view(p_, 1), 1, true) + "'";
  }

  void literal(const char* word) {
    const std::size_t n = std::strlen(word);
    if (static_cast<std::size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0)
      fail("invalid literal (expected true, false or null)");
    p_ += n;
  }

  // A string at p_ ('"') into buf_, escapes decoded.
  void read_string() {
    ++p_;
    buf_.clear();
    for (;;) {
      const char* run = p_;
      while (p_ != end_) {
        const auto c = static_cast<unsigned char>(*p_);
        if (c < 0x20 || c == '"' || c == '\\' || c >= 0x80) break;
        ++p_;
      }
      buf_.append(run, static_cast<std::size_t>(p_ - run));
      if (p_ == end_) fail("unterminated string");
      const auto c = static_cast<unsigned char>(*p_);
      if (c == '"') {
        ++p_;
        return;
      }
      if (c == '\\') {
        escape();
      } else if (c < 0x20) {
        fail(cat("control character ", quoted_byte(), " in a string (must be escaped)"));
      } else {
        const std::size_t n =
            utf8_sequence(std::string_view(p_, static_cast<std::size_t>(end_ - p_)), 0);
        if (n == 0) fail("invalid UTF-8 in a string");
        buf_.append(p_, n);
        p_ += n;
      }
    }
  }

  void escape() {
    ++p_;
    if (p_ == end_) fail("unterminated string");
    const char c = *p_++;
    switch (c) {
      case '"':
      case '\\':
      case '/':
        buf_ += c;
        return;
      case 'b':
        buf_ += '\b';
        return;
      case 'f':
        buf_ += '\f';
        return;
      case 'n':
        buf_ += '\n';
        return;
      case 'r':
        buf_ += '\r';
        return;
      case 't':
        buf_ += '\t';
        return;
      case 'u':
        break;
      default:
        --p_;
        fail(cat("invalid escape '\\", printable(std::string_view(p_, 1), 1, true), "'"));
    }
    std::uint32_t cp = hex4();
    if (cp >= 0xdc00 && cp <= 0xdfff) fail("\\u escape of a low surrogate without a high one");
    if (cp >= 0xd800 && cp <= 0xdbff) {
      if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u')
        fail("\\u escape of a high surrogate not followed by a low one");
      p_ += 2;
      const std::uint32_t low = hex4();
      if (low < 0xdc00 || low > 0xdfff)
        fail("\\u escape of a high surrogate not followed by a low one");
      cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
    }
    append_utf8(cp);
  }

  std::uint32_t hex4() {
    std::uint32_t v = 0;
    for (int i = 0; i < 4; ++i, ++p_) {
      if (p_ == end_) fail("unterminated \\u escape");
      const char c = *p_;
      const int d = digit(c)               ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (d < 0) fail("\\u escape needs 4 hexadecimal digits");
      v = v * 16 + static_cast<std::uint32_t>(d);
    }
    return v;
  }

  void append_utf8(std::uint32_t cp) {
    if (cp < 0x80) {
      buf_ += static_cast<char>(cp);
    } else if (cp < 0x800) {
      buf_ += static_cast<char>(0xc0 | (cp >> 6));
      buf_ += static_cast<char>(0x80 | (cp & 0x3f));
    } else if (cp < 0x10000) {
      buf_ += static_cast<char>(0xe0 | (cp >> 12));
      buf_ += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      buf_ += static_cast<char>(0x80 | (cp & 0x3f));
    } else {
      buf_ += static_cast<char>(0xf0 | (cp >> 18));
      buf_ += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
      buf_ += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
      buf_ += static_cast<char>(0x80 | (cp & 0x3f));
    }
  }

  // -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
  void number() {
    const char* start = p_;
    const bool negative = at('-');
    if (negative) ++p_;
    if (!at_digit()) fail("invalid number: expected a digit");
    const char* int_digits = p_;
    if (*p_ == '0') {
      ++p_;
    } else {
      while (at_digit()) ++p_;
    }
    const char* int_end = p_;
    bool integral = true;
    if (at('.')) {
      ++p_;
      if (!at_digit()) fail("invalid number: expected a digit after '.'");
      while (at_digit()) ++p_;
      integral = false;
    }
    if (at('e') || at('E')) {
      ++p_;
      if (at('+') || at('-')) ++p_;
      if (!at_digit()) fail("invalid number: expected a digit in the exponent");
      while (at_digit()) ++p_;
      integral = false;
    }
    if (integral) {
      std::uint64_t v = 0;
      bool fits = true;
      for (const char* d = int_digits; d != int_end && fits; ++d) {
        const auto digit_value = static_cast<std::uint64_t>(*d - '0');
        fits = v <= (UINT64_MAX - digit_value) / 10;
        v = v * 10 + digit_value;
      }
      constexpr std::uint64_t int64_magnitude = std::uint64_t{1} << 63;
      if (fits && !negative) return h_.number_unsigned(v);
      if (fits && v <= int64_magnitude)
        return h_.number_integer(v == int64_magnitude ? INT64_MIN : -static_cast<std::int64_t>(v));
    }
    // A float (or an integer beyond 64 bits, which nlohmann reads as one): it must be finite.
    double value = 0;
    const auto [end, ec] = std::from_chars(start, p_, value);
    if (ec == std::errc::result_out_of_range ? overflows(start) : (ec != std::errc() || end != p_))
      fail(cat("number ",
               printable(std::string_view(start, static_cast<std::size_t>(p_ - start)), 40, false),
               " is beyond the range of double"));
    h_.number_float();
  }

  // For a number [start, p_) that from_chars found out of range: whether it is too large (rather
  // than too small, which reads as 0 or a subnormal): its leading digit's decimal exponent >= 0.
  bool overflows(const char* start) const {
    const char* q = start + (*start == '-');
    std::int64_t position = 0;  // decimal exponent of the digit at q, before the 'e' part
    const char* mantissa_end = q;
    while (mantissa_end != p_ && *mantissa_end != 'e' && *mantissa_end != 'E') ++mantissa_end;
    const char* dot =
        static_cast<const char*>(std::memchr(q, '.', static_cast<std::size_t>(mantissa_end - q)));
    const char* int_end = dot ? dot : mantissa_end;
    position = int_end - q - 1;
    for (; q != mantissa_end; ++q) {
      if (*q == '.') continue;
      if (*q != '0') break;
      --position;
    }
    if (q == mantissa_end) return false;  // zero
    std::int64_t exponent = 0;
    if (mantissa_end != p_) {
      const char* e = mantissa_end + 1;
      const bool minus = *e == '-';
      if (*e == '+' || *e == '-') ++e;
      for (; e != p_; ++e)
        if (exponent < 1'000'000'000) exponent = exponent * 10 + (*e - '0');
      if (minus) exponent = -exponent;
    }
    return position + exponent >= 0;
  }

  const char* first_;
  const char* p_;
  const char* end_;
  Handler& h_;
  std::string prefix_;
  std::uint64_t base_;
  std::vector<char> stack_;  // '{' or '[' of every open container
  std::string buf_;          // the last string or key
};

}  // namespace masquant::detail
