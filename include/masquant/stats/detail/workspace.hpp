// workspace.hpp: what the statistics kernels share with channel_stats (plain data and memory):
// the moments state they update, and the Gram kernel's reusable packing buffer. The kernels are
// in kernels-inl.hpp, compiled per instruction-set family by families.hpp.
#pragma once

#include <cstdint>
#include <masquant/config.hpp>
#include <memory>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace masquant::detail {

/// Per-channel running moments, structure of arrays over `channels` entries: min and max of the
/// values, their mean, and M2 = the sum of squared deviations from the mean. Empty state is
/// min = +inf, max = -inf, mean = 0, m2 = 0.
struct moments_ref {
  double* min;
  double* max;
  double* mean;
  double* m2;
};
struct moments_cref {
  const double* min;
  const double* max;
  const double* mean;
  const double* m2;
};

/// Asks the kernel to back [p, p + bytes) with transparent huge pages (Linux; call before the
/// first touch). A 128 MiB Gram matrix on 4 KiB pages costs 32768 page faults on first touch and
/// a TLB miss on most micro-tiles; the advice is a hint, ignored where unsupported.
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

/// Reused buffer for the packed token block (64-byte aligned; grown, never shrunk).
class gram_workspace {
 public:
  gram_workspace() = default;
  // A copy of an accumulator does not need its scratch space.
  gram_workspace(const gram_workspace&) noexcept {}
  gram_workspace& operator=(const gram_workspace&) noexcept { return *this; }
  gram_workspace(gram_workspace&&) noexcept = default;
  gram_workspace& operator=(gram_workspace&&) noexcept = default;

  double* get(std::size_t doubles) {
    if (doubles > size_) {
      storage_.reset();  // release first: the old and new buffers need not coexist
      storage_.reset(new double[doubles + 8]);
      advise_huge_pages(storage_.get(), (doubles + 8) * sizeof(double));
      size_ = doubles;
    }
    const auto addr = reinterpret_cast<std::uintptr_t>(storage_.get());
    return storage_.get() + ((64 - addr % 64) % 64) / sizeof(double);
  }

 private:
  std::unique_ptr<double[]> storage_;
  std::size_t size_ = 0;
};

}  // namespace masquant::detail
