// A small command-line parser for the apps: `--name value`, `--name=value` and boolean
// `--flag` / `--no-flag`. Every option is declared with a default and a help line, so
// `--help` documents the whole app and an unknown or malformed flag is an error that names it.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace fer::cli {

class Args {
 public:
  Args(std::string program, std::string summary);

  // Declarations (call before parse). Defaults are strings so the help shows them as typed.
  Args& option(const std::string& name, const std::string& default_value, const std::string& help);
  Args& flag(const std::string& name, bool default_value, const std::string& help);

  // Parses argv; on --help prints usage and exits 0; on an error throws fer::Error.
  void parse(int argc, char** argv);

  std::string str(const std::string& name) const;
  int64_t integer(const std::string& name) const;   // throws naming the flag if not an integer
  double number(const std::string& name) const;     // throws naming the flag if not a number
  bool boolean(const std::string& name) const;
  bool given(const std::string& name) const;        // set on the command line (not defaulted)
  std::vector<std::string> positional() const { return positional_; }
  std::map<std::string, std::string> values() const;  // every option's final value (for logs)
  std::string usage() const;

 private:
  struct Spec {
    std::string value, help;
    bool is_flag = false, given = false;
  };
  const Spec& spec(const std::string& name) const;
  std::string program_, summary_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::vector<std::string> positional_;
};

// "a,b,,c" -> {"a", "b", "c"}: the items of a comma-separated flag, empty ones dropped.
std::vector<std::string> split_list(const std::string& text);

// "1024,256" -> {1024, 256}; "" -> {}. Anything but positive integers is an error that starts
// with `what` (the flag or the file and key the text came from).
std::vector<int64_t> parse_sizes(const std::string& text, const std::string& what);

// Runs `body` and turns a fer::Error (or any std::exception) into "program: error: ..." on
// stderr and exit code 2, so no app ever dies with an uncaught exception.
int run_main(const char* program, int (*body)(int, char**), int argc, char** argv);

}  // namespace fer::cli
