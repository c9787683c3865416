// One field of a CSV row (RFC 4180): as it is unless it holds a comma, a quote or a line break;
// then in double quotes, with its quotes doubled. File names are the usual reason ("a,b.jpg").
#pragma once

#include <string>

namespace fer::report {

inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

}  // namespace fer::report
