// text.hpp: names in one-line error messages, and UTF-8 validation of names written to headers.
#pragma once

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>

namespace masquant::detail {

/// Length of the well-formed UTF-8 sequence starting at s[i] (RFC 3629: no overlongs, surrogates
/// or code points past U+10FFFF), or 0 when none starts there.
inline std::size_t utf8_sequence(std::string_view s, std::size_t i) noexcept {
  const auto c = static_cast<unsigned char>(s[i]);
  std::size_t len = 0;
  unsigned lo = 0x80, hi = 0xbf;  // allowed range of the second byte
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) {
    len = 2;
  } else if (c >= 0xe0 && c <= 0xef) {
    len = 3;
    if (c == 0xe0) lo = 0xa0;  // overlong
    if (c == 0xed) hi = 0x9f;  // surrogates
  } else if (c >= 0xf0 && c <= 0xf4) {
    len = 4;
    if (c == 0xf0) lo = 0x90;  // overlong
    if (c == 0xf4) hi = 0x8f;  // past U+10FFFF
  } else {
    return 0;
  }
  if (s.size() - i < len) return 0;
  for (std::size_t k = 1; k < len; ++k) {
    const auto b = static_cast<unsigned char>(s[i + k]);
    if (b < (k == 1 ? lo : 0x80u) || b > (k == 1 ? hi : 0xbfu)) return 0;
  }
  return len;
}

/// Whether `s` is well-formed UTF-8, as JSON text must be.
inline bool is_valid_utf8(std::string_view s) noexcept {
  for (std::size_t i = 0, n = 0; i < s.size(); i += n)
    if ((n = utf8_sequence(s, i)) == 0) return false;
  return true;
}

/// `text` made safe for a one-line message: control bytes, bytes outside well-formed UTF-8 and
/// backslashes escaped (and single quotes when `escape_quote`), cut after `max_bytes` input
/// bytes with "...".
inline std::string printable(std::string_view text, std::size_t max_bytes, bool escape_quote) {
  std::string out;
  std::size_t i = 0;
  while (i < text.size() && i < max_bytes) {
    const auto c = static_cast<unsigned char>(text[i]);
    const std::size_t n = utf8_sequence(text, i);
    if (c == '\\' || (escape_quote && c == '\'')) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (n == 0 || c < 0x20 || c == 0x7f || i + n > max_bytes) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out.append(text.substr(i, n));
      i += n;
      continue;
    }
    ++i;
  }
  if (i < text.size()) out += "...";
  return out;
}

/// `name` in single quotes for an error message (printable(), at most 160 bytes shown).
inline std::string quote_name(std::string_view name) {
  return "'" + printable(name, 160, true) + "'";
}

}  // namespace masquant::detail
