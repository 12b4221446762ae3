# Finds what the Python module needs: a python3 that imports numpy and pybind11, its development
# headers (Python3 Development.Module, NumPy) and pybind11's CMake package. Sets
# MASQUANT_BUILD_PYTHON and MASQUANT_PYTHON_INSTALL_DIR (relative to the install prefix).
set(MASQUANT_PYTHON "AUTO" CACHE STRING
    "Build the Python module: AUTO (when python3 with numpy and pybind11 is found), ON or OFF")
set_property(CACHE MASQUANT_PYTHON PROPERTY STRINGS AUTO ON OFF)
set(MASQUANT_BUILD_PYTHON OFF)
if(MASQUANT_PYTHON STREQUAL "AUTO" AND MASQUANT_SANITIZE)
  # A sanitized extension cannot load into an interpreter built without the sanitizer runtime.
  message(STATUS "masquant: Python module not built with MASQUANT_SANITIZE (set MASQUANT_PYTHON=ON "
                 "to force it)")
elseif(MASQUANT_PYTHON STREQUAL "AUTO" AND NOT TARGET masquant_io)
  message(STATUS "masquant: Python module not built (it needs the io component: nlohmann_json)")
elseif(NOT MASQUANT_PYTHON STREQUAL "OFF")
  # Candidates: the interpreter the user named (-DPython3_EXECUTABLE), else the first python3 on
  # PATH, then /usr/bin/python3: Debian's python3-numpy and python3-pybind11 serve only the
  # system interpreter, and pyenv or conda shims often come first on PATH.
  if(Python3_EXECUTABLE)
    set(_masquant_py_candidates "${Python3_EXECUTABLE}")
  else()
    find_program(_masquant_path_python3 NAMES python3 NO_CACHE)
    set(_masquant_py_candidates ${_masquant_path_python3} /usr/bin/python3)
  endif()
  set(_masquant_python "")
  foreach(_py IN LISTS _masquant_py_candidates)
    if(NOT EXISTS "${_py}")
      continue()
    endif()
    # Prints pybind11's CMake directory, whether sys.path has Debian's layout, and X.Y.
    set(_probe "import numpy, pybind11, sys"
               "print(pybind11.get_cmake_dir())"
               "print(int(any(p.endswith('/lib/python3/dist-packages') for p in sys.path)))"
               "print('%d.%d' % sys.version_info[:2])")
    list(JOIN _probe "; " _probe)
    execute_process(
      COMMAND "${_py}" -c "${_probe}"
      RESULT_VARIABLE _rc OUTPUT_VARIABLE _out ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
    if(_rc EQUAL 0)
      set(_masquant_python "${_py}")
      string(REPLACE "\n" ";" _out "${_out}")
      list(GET _out 0 _masquant_pybind11_dir)
      list(GET _out 1 _masquant_py_debian)
      list(GET _out 2 _masquant_py_version)
      break()
    endif()
  endforeach()
  if(_masquant_python)
    set(Python3_EXECUTABLE "${_masquant_python}" CACHE FILEPATH "The Python 3 interpreter" FORCE)
    find_package(Python3 COMPONENTS Interpreter Development.Module NumPy QUIET)
    find_package(pybind11 2.6 CONFIG QUIET HINTS "${_masquant_pybind11_dir}")
  endif()
  if(_masquant_python AND Python3_Development.Module_FOUND AND Python3_NumPy_FOUND
     AND pybind11_FOUND)
    set(MASQUANT_BUILD_PYTHON ON)
    # Debian's layout (lib/python3/dist-packages, on the system python's path for prefix /usr),
    # else the usual lib/pythonX.Y/site-packages.
    if(_masquant_py_debian)
      set(_masquant_py_dir "lib/python3/dist-packages")
    else()
      set(_masquant_py_dir "lib/python${_masquant_py_version}/site-packages")
    endif()
    set(MASQUANT_PYTHON_INSTALL_DIR "${_masquant_py_dir}" CACHE STRING
        "Where the Python package masquant installs, relative to the prefix")
    message(STATUS "masquant: Python module for ${Python3_EXECUTABLE} "
                   "(${_masquant_py_version}), installed to <prefix>/${MASQUANT_PYTHON_INSTALL_DIR}")
  elseif(MASQUANT_PYTHON STREQUAL "ON")
    message(FATAL_ERROR "MASQUANT_PYTHON=ON but no python3 with numpy, pybind11 and its headers "
                        "was found among: ${_masquant_py_candidates} (Debian: apt-get install python3-dev python3-numpy "
                        "python3-pybind11 pybind11-dev; or -DPython3_EXECUTABLE=...)")
  else()
    message(STATUS "masquant: Python module not built (no python3 with numpy, pybind11 and its "
                   "headers among: ${_masquant_py_candidates}; Debian: python3-dev python3-numpy "
                   "python3-pybind11 pybind11-dev; or -DPython3_EXECUTABLE=...)")
  endif()
endif()
