// enum_names.hpp: one table per enum between its values and their stable names, read by
// to_string() and by parsers (the masquant tool's flags and their help).
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>

namespace masquant {

/// One entry of an enum's name table.
template <class E>
struct enum_name {
  E value;
  const char* name;
};

/// The name of `value` in `table`, or "unknown".
template <class E, std::size_t N>
constexpr const char* name_in(const std::array<enum_name<E>, N>& table, E value) noexcept {
  for (const auto& e : table)
    if (e.value == value) return e.name;
  return "unknown";
}

/// The value named `name` in `table`, or nothing.
///
/// Example: `masquant::parse_enum(masquant::smoothing_method_names, "mas")` gives
/// `smoothing_method::mas`.
template <class E, std::size_t N>
std::optional<E> parse_enum(const std::array<enum_name<E>, N>& table, std::string_view name) {
  for (const auto& e : table)
    if (name == e.name) return e.value;
  return std::nullopt;
}

}  // namespace masquant
