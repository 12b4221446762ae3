// huge_pages.hpp: asking the kernel to back a large buffer with transparent huge pages.
#pragma once

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace masquant::detail {

/// Asks the kernel to back [p, p + bytes) with transparent huge pages (Linux; call before the
/// first touch). A fresh 128 MiB Gram matrix or 500 MiB ΔW on 4 KiB pages costs 32768 or 130k
/// page faults on first touch, taken one by one in the kernel, and a TLB miss on most
/// micro-tiles; the advice is a hint, ignored where unsupported.
inline void advise_huge_pages(void* p, std::size_t bytes) noexcept {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr std::uintptr_t huge = std::uintptr_t{1} << 21;
  const auto address = reinterpret_cast<std::uintptr_t>(p);
  const auto begin = (address + huge - 1) & ~(huge - 1);
  const auto end = (address + bytes) & ~(huge - 1);
  // Offsets from p rather than integer-to-pointer casts (which defeat alias analysis).
  if (end > begin) madvise(static_cast<char*>(p) + (begin - address), end - begin, MADV_HUGEPAGE);
#else
  static_cast<void>(p);
  static_cast<void>(bytes);
#endif
}

}  // namespace masquant::detail
