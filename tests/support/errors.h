// True when f() throws a fer::Error whose message contains `needle` (the message is logged on
// failure). For checks that an error names the tensor, file, shape or index at fault.
#pragma once
#include <doctest/doctest.h>

#include <functional>
#include <string>

#include "engine/error.h"

namespace fer::testing {

inline bool throws_naming(const std::function<void()>& f, const std::string& needle) {
  try {
    f();
  } catch (const Error& e) {
    INFO("message: " << e.what());
    return std::string(e.what()).find(needle) != std::string::npos;
  }
  return false;
}

}  // namespace fer::testing
