# Installs the Python package (one directory's install script) into a scratch prefix and imports
# it from there, as docs/python.md tells users to: PYTHONPATH=<prefix>/<SUBDIR> (run from the
# prefix: the build tree's own package must not be the one found).
# Arguments: SCRIPT (python/cmake_install.cmake), PREFIX, SUBDIR, PYTHON.
file(REMOVE_RECURSE "${PREFIX}")
execute_process(COMMAND "${CMAKE_COMMAND}" -DCMAKE_INSTALL_PREFIX=${PREFIX} -P "${SCRIPT}"
                RESULT_VARIABLE rc OUTPUT_QUIET)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "install failed (${rc})")
endif()
set(check "import masquant, numpy as np
assert masquant.__file__.startswith('${PREFIX}/${SUBDIR}/masquant/'), masquant.__file__
s = masquant.Statistics(['text', 'vision'])
s.add('p', np.ones((4, 3), np.float32), np.array([0, 1, 1, 0]))
assert s.tokens('p') == {'text': 2, 'vision': 2}
print(masquant.__version__, masquant.__file__)")
execute_process(COMMAND "${CMAKE_COMMAND}" -E env "PYTHONPATH=${PREFIX}/${SUBDIR}"
                        "${PYTHON}" -c "${check}"
                WORKING_DIRECTORY "${PREFIX}"
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "import from ${PREFIX}/${SUBDIR} failed:\n${out}${err}")
endif()
message(STATUS "${out}")
