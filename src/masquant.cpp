// The one translation unit of masquant_compiled (CMakeLists.txt): masquant's heavy entry points
// compiled once, for the tool, tests and examples that call them from several files.
#include <masquant/src.hpp>
