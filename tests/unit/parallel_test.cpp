// Tests of parallel.hpp: every index runs once, exceptions propagate, nesting does not deadlock,
// workers take part whether they are polling or asleep when a loop starts.
#include <atomic>
#include <boost/test/unit_test.hpp>
#include <chrono>
#include <masquant/parallel.hpp>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace masquant;

BOOST_AUTO_TEST_SUITE(parallel)

BOOST_AUTO_TEST_CASE(every_index_once) {
  for (int threads : {1, 2, 3, 8}) {
    thread_pool pool(threads);
    BOOST_TEST(pool.size() == threads);
    for (index_t n : {0, 1, 2, 7, 1000}) {
      std::vector<std::atomic<int>> hits(static_cast<std::size_t>(n));
      for (int rep = 0; rep < 20; ++rep)
        pool.parallel_for(n, [&](index_t i) { hits[static_cast<std::size_t>(i)]++; });
      for (auto& h : hits) BOOST_TEST(h.load() == 20);
    }
  }
}

BOOST_AUTO_TEST_CASE(exception_reaches_caller) {
  thread_pool pool(3);
  std::atomic<int> ran{0};
  BOOST_CHECK_THROW(pool.parallel_for(100,
                                      [&](index_t i) {
                                        ++ran;
                                        if (i == 37) throw std::runtime_error("task 37");
                                      }),
                    std::runtime_error);
  BOOST_TEST(ran.load() == 100);                  // the loop still finishes
  pool.parallel_for(4, [&](index_t) { ++ran; });  // and the pool is usable afterwards
  BOOST_TEST(ran.load() == 104);
}

BOOST_AUTO_TEST_CASE(nested_and_concurrent_callers) {
  thread_pool pool(2);
  std::atomic<int> total{0};
  pool.parallel_for(8, [&](index_t) { pool.parallel_for(8, [&](index_t) { ++total; }); });
  BOOST_TEST(total.load() == 64);
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t)
    callers.emplace_back([&] { pool.parallel_for(50, [&](index_t) { ++total; }); });
  for (auto& c : callers) c.join();
  BOOST_TEST(total.load() == 64 + 200);
  auto fn = pool.as_function();
  fn(10, [&](index_t) { ++total; });
  BOOST_TEST(total.load() == 274);
}

// Task 0 waits until task 1 has started: the loop ends only if a second thread runs task 1.
void two_tasks_meet(thread_pool& pool) {
  std::atomic<bool> second_started{false};
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  bool met = false;
  pool.parallel_for(2, [&](index_t i) {
    if (i == 1) {
      second_started = true;
      return;
    }
    while (!second_started && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
    met = second_started;
  });
  BOOST_TEST(met);
}

BOOST_AUTO_TEST_CASE(workers_join_from_polling_and_from_sleep) {
  using std::chrono::microseconds;
  for (microseconds spin : {microseconds(0), microseconds(50), microseconds(10000000)}) {
    BOOST_TEST_CONTEXT("spin " << spin.count() << " us") {
      const auto start = std::chrono::steady_clock::now();
      std::optional<thread_pool> pool_storage(std::in_place, 2, spin);
      thread_pool& pool = *pool_storage;
      for (int rep = 0; rep < 50; ++rep) two_tasks_meet(pool);    // back to back: still polling
      std::this_thread::sleep_for(std::chrono::milliseconds(2));  // past a short spin: asleep
      two_tasks_meet(pool);
      std::atomic<int> total{0};
      for (int rep = 0; rep < 200; ++rep) pool.parallel_for(3, [&](index_t) { ++total; });
      BOOST_TEST(total.load() == 600);
      pool_storage.reset();  // does not wait for the workers' polling to run out
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      BOOST_TEST(took.count() < 5.0);
    }
  }
  BOOST_CHECK_THROW(thread_pool(2, microseconds(-1)), error);
}

BOOST_AUTO_TEST_SUITE_END()
