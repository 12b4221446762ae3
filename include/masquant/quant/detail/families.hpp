// families.hpp: the quant layer's kernels compiled for every family of this build
// (kernels-inl.hpp, detail/isa/foreach_family.hpp), and the dispatch the public functions use.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <masquant/isa.hpp>
#include <masquant/quant/detail/common.hpp>
#include <masquant/quant/params.hpp>
#include <masquant/quant/spec.hpp>
#include <masquant/tensor/view.hpp>
#include <utility>
#include <vector>

// NOLINTNEXTLINE(bugprone-macro-parentheses): an #include path
#define MASQUANT_FAMILY_SOURCE <masquant/quant/detail/kernels-inl.hpp>
#include <masquant/detail/isa/foreach_family.hpp>

namespace masquant::detail::MASQUANT_BUILD {

/// Calls fn(family tag) for the quant kernels of the family `requested` resolves to (errors
/// name `op`).
template <class Fn>
decltype(auto) on_quant_family(const char* op, isa_family requested, Fn&& fn) {
  return on_family<hot_path::quant>(resolve(op, requested), std::forward<Fn>(fn));
}

}  // namespace masquant::detail::MASQUANT_BUILD
