// parallel.hpp: the parallel-for interface masquant's kernels take, and a small default pool.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <masquant/config.hpp>
#include <masquant/error.hpp>
#include <mutex>
#include <thread>
#include <vector>

namespace masquant {

/// A parallel loop supplied by the host: calls task(i) exactly once for every i in [0, count),
/// possibly concurrently, and returns when all calls have finished. Hosts plug in their own pool
/// (an engine's threads, OpenMP, TBB); masquant splits work so that results never depend on
/// how many threads run the tasks.
using parallel_for_fn =
    std::function<void(index_t count, const std::function<void(index_t)>& task)>;

/// Runs every task on the calling thread, in order.
inline void serial_for(index_t count, const std::function<void(index_t)>& task) {
  for (index_t i = 0; i < count; ++i) task(i);
}

/// A fixed set of worker threads that runs parallel_for loops; the calling thread takes part.
///
/// Loops from several host threads are run one after another; a loop started from inside a task
/// of the same pool runs serially on that thread (no deadlock). The first exception a task
/// throws is rethrown to the caller after every task of the loop has finished (without
/// exceptions, MASQUANT_NO_EXCEPTIONS, an error aborts where it happens).
///
/// After a loop, workers poll for the next one for `spin` before they sleep, and the caller polls
/// for the workers' end as long before it sleeps: an engine calls layer after layer, and waking a
/// sleeping thread through the kernel costs 10-40 us, as much as a whole small GEMM (decode).
/// OpenMP runtimes do the same (libgomp spins ~0.3 ms by default). spin = 0 sleeps at once.
class thread_pool {
 public:
  static constexpr std::chrono::microseconds default_spin{100};

  /// A pool of `threads` threads in total (the caller plus threads - 1 workers); 0 means
  /// std::thread::hardware_concurrency().
  explicit thread_pool(int threads = 0, std::chrono::microseconds spin = default_spin)
      : spin_(spin) {
    MASQUANT_CHECK(threads >= 0, errc::invalid_argument, "thread_pool: negative thread count ",
                   threads);
    MASQUANT_CHECK(spin.count() >= 0, errc::invalid_argument, "thread_pool: negative spin time ",
                   spin.count(), " us");
    if (threads == 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()));
    workers_.reserve(static_cast<std::size_t>(threads - 1));
    for (int i = 0; i < threads - 1; ++i) workers_.emplace_back([this] { worker_loop(); });
  }
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;
  ~thread_pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true, std::memory_order_relaxed);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }

  /// Threads that run tasks, the caller included.
  int size() const noexcept { return static_cast<int>(workers_.size()) + 1; }

  /// Runs task(i) for i in [0, count) on the pool; see the class comment.
  void parallel_for(index_t count, const std::function<void(index_t)>& task) {
    if (count <= 0) return;
    if (workers_.empty() || count == 1 || inside_task()) {
      serial_for(count, task);
      return;
    }
    std::lock_guard<std::mutex> loop_lock(loop_mutex_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      task_ = &task;
      count_ = count;
      next_.store(0, std::memory_order_relaxed);
      finished_.store(0, std::memory_order_relaxed);
      error_ = nullptr;
      generation_.store(generation_.load(std::memory_order_relaxed) + 1, std::memory_order_release);
    }
    wake_.notify_all();
    run_tasks();
    const auto all_done = [&] {
      return finished_.load(std::memory_order_acquire) == count &&
             busy_.load(std::memory_order_acquire) == 0;
    };
    spin_until(all_done);
    {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, all_done);
      task_ = nullptr;
    }
#ifndef MASQUANT_NO_EXCEPTIONS
    if (error_) std::rethrow_exception(error_);
#endif
  }

  /// This pool as a parallel_for_fn (the pool must outlive the function).
  parallel_for_fn as_function() {
    return [this](index_t count, const std::function<void(index_t)>& task) {
      parallel_for(count, task);
    };
  }

 private:
  static bool& inside_task() {
    static thread_local bool flag = false;
    return flag;
  }

  void run_tasks() {
    const bool was_inside = inside_task();
    inside_task() = true;
    for (;;) {
      const index_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= count_) break;
#ifdef MASQUANT_NO_EXCEPTIONS
      (*task_)(i);  // an error inside aborts (error.hpp)
#else
      try {
        (*task_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
#endif
      if (finished_.fetch_add(1, std::memory_order_acq_rel) + 1 == count_) {
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_all();
      }
    }
    inside_task() = was_inside;
  }

  /// Polls `ready` for up to spin_; whether it became true. A hint, not a guarantee: callers
  /// re-check under the mutex.
  template <class Ready>
  bool spin_until(const Ready& ready) const {
    if (spin_.count() == 0) return ready();
    const auto end = std::chrono::steady_clock::now() + spin_;
    for (;;) {
      for (int i = 0; i < 64; ++i) {
        if (ready()) return true;
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
      }
      if (std::chrono::steady_clock::now() >= end) return ready();
      // A thread of another process waiting for this core runs now rather than after the spin
      // (oversubscribed hosts, parallel test runs); on an idle core this returns at once.
      std::this_thread::yield();
    }
  }

  void worker_loop() {
    std::uint64_t seen = 0;
    for (;;) {
      spin_until([&] {
        return generation_.load(std::memory_order_acquire) != seen ||
               stop_.load(std::memory_order_relaxed);
      });
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock,
                   [&] { return stop_ || generation_.load(std::memory_order_relaxed) != seen; });
        if (stop_) return;
        seen = generation_.load(std::memory_order_relaxed);
        if (task_ == nullptr) continue;  // that loop has ended without this worker
        busy_.fetch_add(1, std::memory_order_relaxed);
      }
      run_tasks();
      {
        std::lock_guard<std::mutex> lock(mutex_);
        busy_.fetch_sub(1, std::memory_order_release);
      }
      done_.notify_all();
    }
  }

  std::vector<std::thread> workers_;
  std::mutex loop_mutex_;  // one loop at a time
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(index_t)>* task_ = nullptr;
  index_t count_ = 0;
  std::atomic<index_t> next_{0};
  std::atomic<index_t> finished_{0};
  std::exception_ptr error_;
  std::atomic<std::uint64_t> generation_{0};  // written under mutex_, polled without it
  std::atomic<int> busy_{0};                  // workers inside run_tasks; written under mutex_
  std::atomic<bool> stop_{false};             // written under mutex_, polled without it
  std::chrono::microseconds spin_;
};

}  // namespace masquant
