# Flags for masquant's own targets (tests, benchmarks, examples, tool). They never reach the
# INTERFACE target, so consumers keep their own warnings, -march and sanitizers. NO_ARCH leaves
# out MASQUANT_ARCH (a target that plays a consumer built without -march).
function(masquant_target_options target)
  cmake_parse_arguments(_opt "NO_ARCH" "" "" ${ARGN})
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic)
  # GCC 12's AVX-512 intrinsics initialise `__Y = __Y` (_mm512_undefined_*), which
  # -Wmaybe-uninitialized (-Wuninitialized under the sanitizers) reports inside Eigen's
  # double-precision products: a false positive that no pragma in our headers can reach.
  if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_LESS 13)
    target_compile_options(${target} PRIVATE -Wno-maybe-uninitialized -Wno-uninitialized)
  endif()
  if(MASQUANT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
  if(MASQUANT_ARCH AND NOT _opt_NO_ARCH)
    target_compile_options(${target} PRIVATE -march=${MASQUANT_ARCH})
  endif()
  if(MASQUANT_SANITIZE)
    target_compile_options(${target} PRIVATE -fsanitize=${MASQUANT_SANITIZE}
                           -fno-sanitize-recover=all -fno-omit-frame-pointer)
    target_link_options(${target} PRIVATE -fsanitize=${MASQUANT_SANITIZE})
  endif()
  # libstdc++ bounds checks in debug builds.
  target_compile_definitions(${target} PRIVATE $<$<CONFIG:Debug>:_GLIBCXX_ASSERTIONS>)
endfunction()
