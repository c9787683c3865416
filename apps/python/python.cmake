# ---- The Python module fer_engine (apps/python/): the engine from Python, through pybind11 ---------
# Included at the end of the top-level CMakeLists.txt, once every library exists. FER_PYTHON
# defaults to ON when Debian's pybind11 (pybind11-dev) and the Python headers are found. The module
# is build/python/fer_engine.cpython-311-x86_64-linux-gnu.so: a thin layer over fer_inference,
# fer_training and fer_cli (no math of its own). scripts/setup.sh copies it into the user site of
# `python3`; tests/python (pytest) tests it from the build folder, registered with CTest as
# python_fer_engine.
#
# The module is a shared object, so every static library it links must be position-independent
# code: FER_PYTHON turns that on for them (the apps link the same archives; on x86-64 the cost is
# within the noise of the benchmarks).

# Debian's interpreter first: its python3-pytest and python3-numpy are what the tests use. Any
# CPython 3.11 loads the module (pyenv's too): the ABI and the file name are the same.
if(NOT DEFINED Python_EXECUTABLE AND EXISTS /usr/bin/python3)
  set(Python_EXECUTABLE /usr/bin/python3)
endif()
set(PYBIND11_FINDPYTHON ON)
find_package(Python COMPONENTS Interpreter Development.Module QUIET)
set(_fer_python_found OFF)
if(Python_FOUND)
  find_package(pybind11 CONFIG QUIET)
  if(pybind11_FOUND)
    set(_fer_python_found ON)
  endif()
endif()
option(FER_PYTHON "Build the Python module fer_engine (needs pybind11-dev and python3-dev)" ${_fer_python_found})
if(FER_PYTHON AND NOT _fer_python_found)
  message(FATAL_ERROR "FER_PYTHON=ON, but pybind11 (pybind11-dev) or the Python headers were not found")
endif()

if(FER_PYTHON)
  message(STATUS "Python module fer_engine: ON (Python ${Python_VERSION}, pybind11 ${pybind11_VERSION})")
  set_target_properties(fer_engine fer_kernels_cpu fer_backends fer_layers fer_models fer_data fer_training
                        fer_inference fer_report fer_cli PROPERTIES POSITION_INDEPENDENT_CODE ON)
  file(GLOB FER_PYTHON_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/apps/python/*.cpp)
  pybind11_add_module(fer_engine_python MODULE ${FER_PYTHON_SOURCES})
  set_target_properties(fer_engine_python PROPERTIES OUTPUT_NAME fer_engine
                        LIBRARY_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}/python)
  fer_include_root(fer_engine_python PRIVATE apps/python)
  target_link_libraries(fer_engine_python PRIVATE fer_cli fer_training fer_inference fer_core)
  # Where the shipped checkpoint is when the module is imported from anywhere (a copy in the user
  # site has no repository around it): this source tree, unless $FER_HOME says otherwise.
  target_compile_definitions(fer_engine_python PRIVATE FER_SOURCE_DIR="${CMAKE_CURRENT_SOURCE_DIR}"
                                                       FER_VERSION="${PROJECT_VERSION}")
endif()

if(FER_BUILD_TESTS)
  set(_fer_python_env "FER_DATA=${FER_TEST_DATA};FER_SOURCE_DIR=${CMAKE_CURRENT_SOURCE_DIR}"
                      "FER_BUILD_DIR=${CMAKE_CURRENT_BINARY_DIR};PYTHONPATH=${CMAKE_CURRENT_BINARY_DIR}/python"
                      "PYTHONDONTWRITEBYTECODE=1")
  set(_fer_python_skip "")
  if(NOT FER_PYTHON)
    set(_fer_python_skip "the module is not built (FER_PYTHON=OFF: install pybind11-dev and python3-dev)")
  else()
    execute_process(COMMAND ${Python_EXECUTABLE} -c "import pytest" RESULT_VARIABLE _fer_no_pytest
                    OUTPUT_QUIET ERROR_QUIET)
    if(_fer_no_pytest)
      set(_fer_python_skip "pytest is not installed for ${Python_EXECUTABLE} (Debian package python3-pytest)")
    endif()
  endif()
  if(_fer_python_skip)
    add_test(NAME python_fer_engine COMMAND sh -c "echo 'SKIPPED: ${_fer_python_skip}'; exit 77")
  else()
    # -p no:cacheprovider: no .pytest_cache in the source tree; -rs lists every skipped test and why.
    add_test(NAME python_fer_engine
             COMMAND ${Python_EXECUTABLE} -m pytest -q -rs -p no:cacheprovider
                     ${CMAKE_CURRENT_SOURCE_DIR}/tests/python)
  endif()
  set_tests_properties(python_fer_engine PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 300
                       ENVIRONMENT "${_fer_python_env}")
endif()
