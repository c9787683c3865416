#include "apps/cli/path_list.h"

#include <sstream>

#include "engine/error.h"

namespace fer::cli {

std::vector<std::string> parse_path_list(const std::string& text, const std::string& file) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ' || line.back() == '\t')) line.pop_back();
    const size_t start = line.find_first_not_of(" \t");
    if (start == std::string::npos || line[start] == '#') continue;
    // Opening a path stops at its first NUL byte: "a.jpg\0x" would silently read a.jpg. Such a
    // list is damaged (or binary), not a list of paths.
    if (line.find('\0') != std::string::npos)
      fail("--list '", file, "': line ", number, " holds a NUL byte, which no path can contain (is it a text file?)");
    out.push_back(line.substr(start));
  }
  return out;
}

}  // namespace fer::cli
