// A small command-line parser for the apps: `--name value`, `--name=value` and boolean
// `--flag` / `--no-flag`. Every option is declared with a default and a help line, so
// `--help` documents the whole app and an unknown or malformed flag is an error that names it
// (and the nearest declared name: "did you mean --lr?"). `--version` prints the version.
//
// An app declares its flags in one table whose rows also say where each value goes, so that no
// flag is copied into its option field by hand:
//
//   TrainOptions o;
//   int64_t threads = 0;
//   args.bind({
//       {"epochs", "40", "training epochs", &o.epochs},
//       {"nesterov", "true", "Nesterov momentum", &o.nesterov},  // a bool: a --flag / --no-flag switch
//       {"threads", "0", "CPU threads (0 = all cores)", &threads},
//       {"hidden", "", "hidden dense sizes, e.g. 1024,256",
//        [&](const std::string& v) { o.spec.config.hidden = parse_sizes(v, "--hidden"); }},
//   });
//   args.parse(argc, argv);  // every row's value, given or default, is now in its place
//
// The default is text, as --help shows it ("5e-4" stays "5e-4"). A field is converted from the
// flag's text by its type, in table order, with an error that names the flag: whole numbers
// (int, int64_t, uint64_t), numbers (float, double), text (std::string), switches (bool, whose
// default is "true" or "false"). A setter receives the text itself, for values that need more
// than a conversion (a list, a name that must be one of a few).
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <variant>
#include <vector>

namespace fer::cli {

// One row of a flag table: the flag's name (without "--"), its default as --help shows it, its
// help line, and where its value goes.
struct Flag {
  using Setter = std::function<void(const std::string& value)>;
  using Target = std::variant<bool*, int*, int64_t*, uint64_t*, float*, double*, std::string*, Setter>;
  std::string name, default_value, help;
  Target target;
};

class Args {
 public:
  Args(std::string program, std::string summary);

  // Declarations (call before parse). Defaults are strings so the help shows them as typed.
  Args& option(const std::string& name, const std::string& default_value, const std::string& help);
  Args& flag(const std::string& name, bool default_value, const std::string& help);
  // Declares every row of a table (bool targets as switches, the rest as options), in order;
  // parse() stores their values.
  Args& bind(const std::vector<Flag>& table);

  // Parses argv, then stores the value of every bound flag in its target (in declaration order);
  // on --help prints usage and exits 0; on an error throws fer::Error naming the flag.
  void parse(int argc, char** argv);

  std::string str(const std::string& name) const;
  int64_t integer(const std::string& name) const;   // throws naming the flag if not an integer
  double number(const std::string& name) const;     // throws naming the flag if not a number
  bool boolean(const std::string& name) const;
  bool given(const std::string& name) const;        // set on the command line (not defaulted)
  // Every declared option and flag with its value as text (given or default), by name.
  std::map<std::string, std::string> values() const;
  std::vector<std::string> positional() const { return positional_; }
  std::string usage() const;

 private:
  struct Spec {
    std::string value, help;
    bool is_flag = false, given = false;
  };
  const Spec& spec(const std::string& name) const;
  std::string did_you_mean(const std::string& name) const;  // ": did you mean --x?" or ""
  void store(const Flag& row) const;  // converts the flag's value into row.target
  std::string program_, summary_;
  std::vector<std::string> order_;
  std::map<std::string, Spec> specs_;
  std::vector<Flag> bound_;
  std::vector<std::string> positional_;
};

// Runs `body` and turns a fer::Error (or any std::exception) into "program: error: ..." on
// stderr and exit code 2, so no app ever dies with an uncaught exception.
int run_main(const char* program, int (*body)(int, char**), int argc, char** argv);

}  // namespace fer::cli
