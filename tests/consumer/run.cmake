# Builds and runs one consumer project (cmake -P): MODE is find_package, add_subdirectory,
# vendored, no_exceptions, or example_find_package (examples/find_package against the installed
# package, with the io component); SOURCE_DIR is masquant's source tree, BUILD_DIR the tree to install from,
# WORK_DIR a scratch directory, CXX the compiler, EIGEN_INCLUDE Eigen's include folder.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

set(consumer "${SOURCE_DIR}/tests/consumer")
set(program "${WORK_DIR}/build/consumer")
if(MODE STREQUAL "find_package" OR MODE STREQUAL "example_find_package")
  run(${CMAKE_COMMAND} --install "${BUILD_DIR}" --prefix "${WORK_DIR}/prefix")
  foreach(f include/masquant/masquant.hpp share/cmake/masquant/masquantConfig.cmake
            share/cmake/masquant/masquantConfigVersion.cmake share/pkgconfig/masquant.pc
            share/pkgconfig/masquant-io.pc share/doc/masquant/LICENSE)
    if(NOT EXISTS "${WORK_DIR}/prefix/${f}")
      message(FATAL_ERROR "install did not write ${f}")
    endif()
  endforeach()
  if(MODE STREQUAL "find_package")
    # A Make/Meson consumer: the compiler flags from pkg-config alone (the .pc files are
    # relocatable: this prefix is not the one configured).
    find_program(PKG_CONFIG pkg-config REQUIRED)
    set(ENV{PKG_CONFIG_PATH} "${WORK_DIR}/prefix/share/pkgconfig")
    foreach(package masquant masquant-io)
      run(${PKG_CONFIG} --exists --print-errors ${package})
    endforeach()
    execute_process(COMMAND ${PKG_CONFIG} --cflags --libs masquant OUTPUT_VARIABLE flags
                    OUTPUT_STRIP_TRAILING_WHITESPACE COMMAND_ERROR_IS_FATAL ANY)
    string(FIND "${flags}" "-I${WORK_DIR}/prefix/share/pkgconfig/../../include" at)
    if(at EQUAL -1)
      message(FATAL_ERROR "pkg-config --cflags masquant did not point into the prefix: ${flags}")
    endif()
    separate_arguments(flags UNIX_COMMAND "${flags}")
    file(MAKE_DIRECTORY "${WORK_DIR}/pkg_config")
    run(${CXX} -std=c++17 -Wall -Wextra -Werror "${consumer}/pkg_config.cpp" ${flags}
        -o "${WORK_DIR}/pkg_config/consumer")
    run("${WORK_DIR}/pkg_config/consumer")
    run(${CMAKE_COMMAND} -S "${consumer}/find_package" -B "${WORK_DIR}/build"
        "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" -DCMAKE_CXX_COMPILER=${CXX})
  else()
    run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/examples/find_package" -B "${WORK_DIR}/build"
        "-DCMAKE_PREFIX_PATH=${WORK_DIR}/prefix" -DCMAKE_CXX_COMPILER=${CXX})
    set(program "${WORK_DIR}/build/layer_file" "${WORK_DIR}/layer.safetensors")
  endif()
elseif(MODE STREQUAL "add_subdirectory")
  run(${CMAKE_COMMAND} -S "${consumer}/add_subdirectory" -B "${WORK_DIR}/build"
      "-DMASQUANT_SOURCE_DIR=${SOURCE_DIR}" -DCMAKE_CXX_COMPILER=${CXX})
elseif(MODE STREQUAL "vendored")
  # Plain -I of the include folder, no CMake package at all.
  file(MAKE_DIRECTORY "${WORK_DIR}/build")
  # -O2: the optimiser's warnings (GCC's -Wmaybe-uninitialized in AVX-512 intrinsics) too; the
  # conversion and shadowing warnings of strict engines as well (headers included with -I, not
  # as system headers).
  run(${CXX} -std=c++17 -O2 -Wall -Wextra -Wpedantic -Wconversion -Wsign-conversion -Wshadow
      -Werror -I "${SOURCE_DIR}/include"
      -isystem "${EIGEN_INCLUDE}" "${consumer}/consumer.cpp" -o "${WORK_DIR}/build/consumer")
elseif(MODE STREQUAL "no_exceptions")
  # An engine built with -fno-exceptions: the runtime half compiles, runs, and reports a bad call
  # through its MASQUANT_ERROR_HANDLER before aborting.
  file(MAKE_DIRECTORY "${WORK_DIR}/build")
  run(${CXX} -std=c++17 -O2 -fno-exceptions -pthread -Wall -Wextra -Wpedantic -Werror
      -I "${SOURCE_DIR}/include" -isystem "${EIGEN_INCLUDE}" "${consumer}/no_exceptions.cpp"
      -o "${WORK_DIR}/build/consumer")
  run("${WORK_DIR}/build/consumer")
  execute_process(COMMAND "${WORK_DIR}/build/consumer" bad RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT err MATCHES "engine handler: code [0-9]+: quantized_linear::forward: y is 5x79, expected 5x80")
    message(FATAL_ERROR "the bad call did not reach the error handler (${rc}):\n${err}")
  endif()
  return()
else()
  message(FATAL_ERROR "unknown MODE ${MODE}")
endif()
if(NOT MODE STREQUAL "vendored")
  run(${CMAKE_COMMAND} --build "${WORK_DIR}/build")
endif()
run(${program})
if(MODE STREQUAL "example_find_package")
  return()
endif()
# The consumer (no -march) checks the family every hot path runs: the CPU's best, then under
# each cap MASQUANT_MAX_ISA, with results bit-identical to the references.
foreach(family portable avx2 avx_vnni avx512)
  run(${CMAKE_COMMAND} -E env MASQUANT_MAX_ISA=${family} ${program})
endforeach()
# An unknown family is an error that names it, not a silent fallback.
execute_process(COMMAND ${CMAKE_COMMAND} -E env MASQUANT_MAX_ISA=avx3 ${program}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0 OR NOT err MATCHES "MASQUANT_MAX_ISA=\"avx3\" is not an instruction-set family")
  message(FATAL_ERROR "MASQUANT_MAX_ISA=avx3 was not refused (${rc}):\n${out}\n${err}")
endif()
