# ---- ONNX export (models/export/): fer_convert --to onnx, and its tests ------------------------
# Included by the top-level CMakeLists.txt after every target it extends exists.
#   fer_export_lib      the op-level tracer's consumer: Module -> ONNX bytes (own protobuf writer)
#   onnx_export_models  (tests) exports every registry model with the engine's outputs beside it
#   CTest onnx_export   runs that, then onnxruntime-node (tests/onnx/compare.mjs) and the ONNX
#                       checker of Debian's python3-onnx on every file; exits 77 (skipped, said
#                       why) when node, tests/onnx/node_modules or python3-onnx is missing.
file(GLOB FER_EXPORT_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/models/export/*.cpp)
add_library(fer_export_lib STATIC ${FER_EXPORT_SOURCES})
target_link_libraries(fer_export_lib PUBLIC fer_models)
foreach(target fer_convert test_onnx_export)
  if(TARGET ${target})
    target_link_libraries(${target} PRIVATE fer_export_lib)
  endif()
endforeach()

if(FER_BUILD_TESTS)
  add_executable(onnx_export_models tests/onnx/export_models.cpp)
  target_link_libraries(onnx_export_models PRIVATE fer_export_lib fer_training fer_cli fer_core)
  add_test(NAME onnx_export
           COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/tests/onnx/run_onnx_test.sh
                   $<TARGET_FILE:onnx_export_models> $<TARGET_FILE:fer_convert>
                   ${CMAKE_CURRENT_BINARY_DIR}/onnx_export)
  set_tests_properties(onnx_export PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 900
    ENVIRONMENT "FER_SOURCE_DIR=${CMAKE_CURRENT_SOURCE_DIR};FER_BUILD_DIR=${CMAKE_CURRENT_BINARY_DIR}")
endif()
