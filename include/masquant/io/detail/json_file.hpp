// json_file.hpp: small JSON files (configs, indexes, recipes) read whole and parsed.
#pragma once

#include <fstream>
#include <masquant/error.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

namespace masquant::detail {

/// Reads a whole (small) text file; throws errc::io_error naming it.
inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  MASQUANT_CHECK(in.good(), errc::io_error, path, ": cannot open");
  std::ostringstream text;
  text << in.rdbuf();
  MASQUANT_CHECK(!in.bad(), errc::io_error, path, ": read failed");
  return text.str();
}

/// Parses JSON text of `path`; throws errc::format_error naming the file and byte offset.
inline nlohmann::json parse_json_file(const std::string& path) {
  const std::string text = read_text_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    raise(errc::format_error, cat(path, ": invalid JSON at byte offset ", e.byte, ": ", e.what()));
  }
}

}  // namespace masquant::detail
