// Tests of parallel.hpp: every index runs once, exceptions propagate, nesting does not deadlock.
#include <masquant/parallel.hpp>

#include <atomic>
#include <boost/test/unit_test.hpp>
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
  BOOST_TEST(ran.load() == 100);  // the loop still finishes
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

BOOST_AUTO_TEST_SUITE_END()
