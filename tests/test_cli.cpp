// The apps' flag tables (apps/cli/args.h): every row's value, given or default, lands in its
// field with the conversion of the field's type, and a bad value is an error naming the flag.
#include <doctest/doctest.h>

#include "tests/support/errors.h"

#include <cstdint>
#include <string>
#include <vector>

#include "apps/cli/args.h"
#include "apps/cli/path_list.h"

using namespace fer;
using fer::testing::throws_naming;

namespace {

struct Options {
  int64_t epochs = 0;
  int workers = 0;
  uint64_t seed = 0;
  float lr = 0;
  double fraction = 0;
  std::string name;
  bool nesterov = false, resume = true;
  std::vector<std::string> parts;  // set by a setter
};

std::vector<cli::Flag> table(Options& o) {
  return {
      {"epochs", "40", "training epochs", &o.epochs},
      {"workers", "2", "loader threads", &o.workers},
      {"seed", "1", "random seed", &o.seed},
      {"lr", "5e-4", "learning rate", &o.lr},
      {"fraction", "0.1", "held-out fraction", &o.fraction},
      {"name", "fer", "a name", &o.name},
      {"nesterov", "true", "Nesterov momentum", &o.nesterov},
      {"resume", "false", "continue", &o.resume},
      {"parts", "a-b", "dash-separated parts",
       [&o](const std::string& v) { o.parts = {v.substr(0, v.find('-')), v.substr(v.find('-') + 1)}; }},
  };
}

// Parses the arguments (after the program name) into a fresh Options.
Options parse(std::vector<std::string> words) {
  Options o;
  cli::Args args("prog", "A test program.");
  args.bind(table(o));
  std::vector<char*> argv{const_cast<char*>("prog")};
  for (std::string& w : words) argv.push_back(w.data());
  args.parse(static_cast<int>(argv.size()), argv.data());
  return o;
}

}  // namespace

TEST_CASE("flag table: defaults are converted into the fields") {
  const Options o = parse({});
  CHECK(o.epochs == 40);
  CHECK(o.workers == 2);
  CHECK(o.seed == 1);
  CHECK(o.lr == 5e-4f);
  CHECK(o.fraction == 0.1);
  CHECK(o.name == "fer");
  CHECK(o.nesterov);
  CHECK(!o.resume);
  CHECK(o.parts == std::vector<std::string>{"a", "b"});
}

TEST_CASE("flag table: given values, both spellings, switches and setters") {
  const Options o = parse({"--epochs", "3", "--lr=0.25", "--name", "x", "--no-nesterov", "--resume",
                           "--seed=7", "--parts", "c-d"});
  CHECK(o.epochs == 3);
  CHECK(o.lr == 0.25f);
  CHECK(o.name == "x");
  CHECK(!o.nesterov);
  CHECK(o.resume);
  CHECK(o.seed == 7);
  CHECK(o.parts == std::vector<std::string>{"c", "d"});
  CHECK(o.workers == 2);  // not given: its default
}

TEST_CASE("flag table: a bad value or an unknown flag is an error naming it") {
  CHECK(throws_naming([] { parse({"--epochs", "abc"}); }, "prog: --epochs expects an integer, got 'abc'"));
  CHECK(throws_naming([] { parse({"--lr", "fast"}); }, "prog: --lr expects a number, got 'fast'"));
  CHECK(throws_naming([] { parse({"--resume=maybe"}); }, "--resume takes true or false, got 'maybe'"));
  CHECK(throws_naming([] { parse({"--epoch", "3"}); }, "unknown option '--epoch'"));
}

TEST_CASE("flag table: --help lists the rows in table order with their defaults") {
  Options o;
  cli::Args args("prog", "A test program.");
  args.bind(table(o));
  const std::string usage = args.usage();
  CHECK(usage.find("--epochs VALUE") < usage.find("--workers VALUE"));
  CHECK(usage.find("training epochs [40]") != std::string::npos);
  CHECK(usage.find("learning rate [5e-4]") != std::string::npos);  // as typed, not 0.0005
  CHECK(usage.find("Nesterov momentum [on]") != std::string::npos);
}

TEST_CASE("flag table: a switch's default must be true or false") {
  bool b = false;
  cli::Args args("prog", "A test program.");
  CHECK(throws_naming([&] { args.bind({{"verbose", "yes", "talk", &b}}); }, "the switch --verbose"));
}

TEST_CASE("path list (fer_predict --list): comments, blank lines, blanks and CRLF; a NUL byte is an error") {
  const std::string text = "# photos\n\n  a.jpg \r\n\t# indented comment\nb c/d.png\nlast.jpeg";
  CHECK(cli::parse_path_list(text, "l.txt") == std::vector<std::string>{"a.jpg", "b c/d.png", "last.jpeg"});
  CHECK(cli::parse_path_list("", "l.txt").empty());
  // Found by tests/fuzz/fuzz_list.cpp: opening "b.\0n" opens "b.", another file than the line says.
  const std::string nul("# photos\nphotos/a.jpg\nindented/b.\0n\n", 36);
  CHECK(throws_naming([&] { cli::parse_path_list(nul, "l.txt"); }, "--list 'l.txt': line 3 holds a NUL byte"));
}
