// libFuzzer target: the parser of fer_predict's --list file (apps/cli/path_list.h) on arbitrary
// bytes. Any input must either give paths that can be opened as written or throw fer::Error:
// every path non-empty, without the blanks around it, without line breaks, and without NUL bytes
// (the C library would cut the path at the first one and open another file). Built and run by
// scripts/fuzz.sh.
#include <cstddef>
#include <cstdint>
#include <string>

#include "apps/cli/path_list.h"
#include "engine/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    const std::vector<std::string> paths = fer::cli::parse_path_list(text, "fuzz.txt");
    size_t lines = 1;
    for (char c : text) lines += c == '\n';
    if (paths.size() > lines) __builtin_trap();
    for (const std::string& p : paths) {
      if (p.empty() || p.find_first_of(std::string("\n\0", 2)) != std::string::npos) __builtin_trap();
      if (p.front() == ' ' || p.front() == '\t' || p.front() == '#') __builtin_trap();
      if (p.back() == ' ' || p.back() == '\t' || p.back() == '\r') __builtin_trap();
    }
  } catch (const fer::Error&) {
    // Rejected list.
  }
  return 0;
}
