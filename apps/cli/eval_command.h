// fer_eval as a library: its flags and its run, so that the app and the Python module's
// evaluate() take the same options (they cannot drift apart) and compute the same report.
//
//   EvalCommand eval;
//   eval.on_progress = [](const EvalProgress& p) { ... };   // optional
//   eval.parse(argc, argv);                                   // fer_eval's flags, argv[0] the program
//   int code = eval.run();
//   eval.result["accuracy"]                                   // report.json's content
//
// run() prints what fer_eval prints and writes what it writes (--out); it throws fer::Error on a
// bad flag or file, as the app's main turns into "fer_eval: error: ...".
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

namespace fer::cli {

// Where an evaluation is: faces done of the split, for checkpoint `member` of `members` (an
// ensemble or --compare evaluates several, one after the other).
struct EvalProgress {
  std::string checkpoint;
  int64_t member = 0, members = 1;  // 0-based index, count
  int64_t done = 0, total = 0;      // faces
};

class EvalCommand {
 public:
  EvalCommand();
  ~EvalCommand();

  // Called after every batch of faces, on the calling thread; an exception thrown from it ends
  // the run (nothing is half-written: the files come after every prediction).
  std::function<void(const EvalProgress&)> on_progress;
  // After run(): the content of report.json (accuracy, the classification report, ROC, the
  // calibration, checkpoint, split, tta, loss), or with --compare {"models": compare.json's rows}.
  nlohmann::json result;

  static std::string usage();                            // fer_eval --help
  static std::map<std::string, std::string> defaults();  // every flag's name (no "--") and default

  // fer_eval's flags (argv[0] is the program); throws fer::Error naming a bad flag or value.
  void parse(int argc, char** argv);
  // Evaluates, prints and writes as fer_eval does, with the flags parsed; returns the exit code.
  int run();
  int run(int argc, char** argv) {
    parse(argc, argv);
    return run();
  }

 private:
  struct State;  // the flags and their parser
  std::unique_ptr<State> state_;
};

}  // namespace fer::cli
