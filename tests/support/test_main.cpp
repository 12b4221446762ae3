// test_main.cpp: the single Boost.Test entry point shared by every test executable.
#define BOOST_TEST_MODULE masquant
#include <boost/test/unit_test.hpp>
