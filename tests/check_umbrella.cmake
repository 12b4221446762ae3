# Fails when a public header is missing from the umbrella masquant.hpp (cmake -P, SOURCE_DIR set).
file(GLOB_RECURSE headers RELATIVE "${SOURCE_DIR}/include" "${SOURCE_DIR}/include/masquant/*.hpp")
file(READ "${SOURCE_DIR}/include/masquant/masquant.hpp" umbrella)
set(missing "")
foreach(h IN LISTS headers)
  if(h MATCHES "/detail/" OR h STREQUAL "masquant/masquant.hpp" OR h MATCHES "^masquant/io/"
     OR h MATCHES "^masquant/model/" OR h STREQUAL "masquant/src.hpp")
    # io is the optional component (needs nlohmann_json), included on its own, and model builds
    # on it; src.hpp is the one translation unit of a MASQUANT_SEPARATE_COMPILATION build.
    continue()
  endif()
  string(FIND "${umbrella}" "#include <${h}>" pos)
  if(pos EQUAL -1)
    list(APPEND missing ${h})
  endif()
endforeach()
if(missing)
  message(FATAL_ERROR "masquant.hpp does not include: ${missing}")
endif()
