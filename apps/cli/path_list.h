// The text of a list of files, such as fer_predict's --list: one path a line; blank lines and
// lines whose first non-blank character is '#' skipped; blanks around a path and a Windows line
// end ("\r\n") dropped. A line holding a NUL byte is a fer::Error naming the list and the line.
// A pure function of the text, so that it can be tested and fuzzed (tests/fuzz/fuzz_list.cpp)
// without files.
#pragma once
#include <string>
#include <vector>

namespace fer::cli {

// The paths listed in `text`, in order. `file` names the list in error messages.
std::vector<std::string> parse_path_list(const std::string& text, const std::string& file);

}  // namespace fer::cli
