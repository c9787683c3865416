// Error reporting: every failure the engine detects is a fer::Error whose message names the op,
// the tensor or the file, and the shapes involved. FER_CHECK keeps the call sites short.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>
#include <cstdint>

namespace fer {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Builds a message from any streamable pieces: fail("conv2d: ", a, " vs ", b).
template <typename... Parts>
[[noreturn]] void fail(const Parts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  throw Error(os.str());
}

std::string shape_str(const std::vector<int64_t>& shape);  // "[64, 1, 48, 48]"

}  // namespace fer

#define FER_CHECK(cond, ...)            \
  do {                                  \
    if (!(cond)) ::fer::fail(__VA_ARGS__); \
  } while (0)
