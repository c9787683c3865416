// fer_train as a library: its flags and its run, so that the app and the Python module's train()
// take the same options (they cannot drift apart) and train the same way.
//
//   TrainCommand command;
//   command.on_progress = [](const TrainProgress& p) { ... };  // optional: after every step, epoch
//   command.parse(argc, argv);                                  // fer_train's flags, argv[0] the program
//   int code = command.run();                                   // 0, or 130 when stopped (Ctrl-C)
//   command.result.best_val_acc
//
// run() prints what fer_train prints and writes what it writes (OUT/); it throws fer::Error on a
// bad flag, file or setting, as the app's main turns into "fer_train: error: ...".
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "apps/training/trainer.h"

namespace fer::cli {

class TrainCommand {
 public:
  TrainCommand();
  ~TrainCommand();

  // Forwarded to TrainOptions::on_progress (it may call request_stop() to stop and save).
  std::function<void(const TrainProgress&)> on_progress;
  // fer_train installs SIGINT/SIGTERM handlers (Ctrl-C stops after the step and saves); an
  // embedding program that handles signals itself (Python: KeyboardInterrupt) leaves them alone
  // and stops the run through on_progress.
  bool install_signal_handlers = true;
  TrainResult result;  // after run()
  std::string out_dir;  // after parse(): --out

  static std::string usage();                            // fer_train --help
  static std::map<std::string, std::string> defaults();  // every flag's name (no "--") and default

  // fer_train's flags (argv[0] is the program); throws fer::Error naming a bad flag or value.
  void parse(int argc, char** argv);
  // Loads the data and trains as fer_train does, with the flags parsed; returns the exit code.
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
