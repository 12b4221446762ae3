// workspace.hpp: what the statistics kernels share with channel_stats (plain data and memory):
// the moments state they update, and the Gram kernel's reusable packing buffer. The kernels are
// in kernels-inl.hpp, compiled per instruction-set family by families.hpp.
#pragma once

#include <cstdint>
#include <masquant/config.hpp>
#include <masquant/detail/huge_pages.hpp>
#include <memory>

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
