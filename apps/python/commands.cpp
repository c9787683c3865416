// train() and evaluate(): keyword arguments -> fer_train / fer_eval flags -> their commands. See
// commands.h.
#include "apps/python/commands.h"

#include <map>
#include <vector>

#include "apps/cli/eval_command.h"
#include "apps/cli/train_command.h"
#include "engine/error.h"

namespace fer::python {

namespace {

std::string keyword_of(const std::string& flag) {
  std::string k = flag;
  for (char& c : k) c = c == '-' ? '_' : c;
  return k;
}

// One value as the flag's text: True/False -> true/false, a list -> "a,b", a path -> its text.
std::string flag_value(const std::string& keyword, py::handle value) {
  if (py::isinstance<py::bool_>(value)) return value.cast<bool>() ? "true" : "false";
  if (py::isinstance<py::int_>(value) || py::isinstance<py::float_>(value)) return py::str(value);
  if (py::isinstance<py::str>(value)) return value.cast<std::string>();
  if (py::hasattr(value, "__fspath__")) return py::str(py::module_::import("os").attr("fspath")(value));
  if (py::isinstance<py::list>(value) || py::isinstance<py::tuple>(value)) {
    std::string joined;
    for (py::handle item : value) joined += (joined.empty() ? "" : ",") + flag_value(keyword, item);
    return joined;
  }
  throw py::type_error(keyword + "=: expected a number, a bool, a string, a path or a list of them, got " +
                       std::string(py::str(py::type::of(value).attr("__name__"))));
}

// argv of the app: the program, then --name=value for every keyword given (not None). An unknown
// keyword is a TypeError, as for any Python function, with the nearest option named.
struct CommandLine {
  std::vector<std::string> args;
  std::vector<char*> argv;

  CommandLine(const std::string& program, const std::string& function,
              const std::map<std::string, std::string>& flags, const py::dict& options) {
    args.push_back(program);
    std::vector<std::string> keywords;
    for (const auto& [flag, value] : flags) keywords.push_back(keyword_of(flag));
    for (const auto& [key, value] : options) {
      const std::string keyword = py::str(key);
      std::string flag = keyword;
      for (char& c : flag) c = c == '_' ? '-' : c;
      if (!flags.count(flag)) {
        const py::list close = py::module_::import("difflib").attr("get_close_matches")(keyword, keywords, 1);
        throw py::type_error(function + "() got an unexpected keyword argument '" + keyword + "'" +
                             (close.empty() ? "" : " (did you mean '" + close[0].cast<std::string>() + "'?)") +
                             "; fer_engine." + function + "_options() lists them");
      }
      if (value.is_none()) continue;
      args.push_back("--" + flag + "=" + flag_value(keyword, value));
    }
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
  }
  int argc() const { return static_cast<int>(argv.size()) - 1; }
};

// A flag value the app's parser refuses is a bad argument: ValueError, with the parser's message.
template <class Command>
void parse_or_raise(Command& command, CommandLine& line) {
  try {
    command.parse(line.argc(), line.argv.data());
  } catch (const fer::Error& e) {
    throw py::value_error(e.what());
  }
}

py::dict options_dict(const std::map<std::string, std::string>& flags) {
  py::dict d;
  for (const auto& [flag, value] : flags) d[py::str(keyword_of(flag))] = value;
  return d;
}

py::object json_to_python(const nlohmann::json& j) {
  return py::module_::import("json").attr("loads")(j.dump());
}

py::dict epoch_dict(const EpochRecord& r) {
  py::dict d;
  d["epoch"] = r.epoch;
  d["train_loss"] = r.train_loss;
  d["train_acc"] = r.train_acc;
  d["val_loss"] = r.val_loss;
  d["val_acc"] = r.val_acc;
  d["lr"] = r.lr;
  d["seconds"] = r.seconds;
  d["images_per_s"] = r.images_per_s;
  if (r.ema_val_acc > 0) {
    d["ema_val_loss"] = r.ema_val_loss;
    d["ema_val_acc"] = r.ema_val_acc;
  }
  return d;
}

}  // namespace

void PythonCallback::rethrow() {
  if (!error_) return;
  py::error_already_set e = std::move(*error_);
  error_.reset();
  throw e;
}

py::dict train(py::object progress, const py::kwargs& options) {
  // progress=function is the callback, which then replaces the live line; progress=True / False
  // is fer_train's own --progress.
  const bool callback = !progress.is_none() && PyCallable_Check(progress.ptr());
  py::dict flags = py::dict(options);
  if (callback) {
    flags["progress"] = py::bool_(false);
  } else if (!progress.is_none()) {
    if (!py::isinstance<py::bool_>(progress))
      throw py::type_error("train(progress=): expected a function of one dict, or True / False");
    flags["progress"] = progress;
  }
  cli::TrainCommand command;
  CommandLine line("fer_train", "train", cli::TrainCommand::defaults(), flags);
  parse_or_raise(command, line);

  PythonCallback on_step(callback ? progress : py::none());
  command.install_signal_handlers = false;  // Ctrl-C is Python's: KeyboardInterrupt, seen in on_progress
  command.on_progress = [&on_step](const TrainProgress& p) {
    const bool go_on = on_step.call([&p] {
      py::dict d;
      d["event"] = p.epoch_end ? "epoch" : "step";
      d["epoch"] = p.epoch;
      d["epochs"] = p.epochs;
      d["step"] = p.step;
      d["steps"] = p.steps;
      d["global_step"] = p.global_step;
      d["loss"] = p.loss;
      d["acc"] = p.acc;
      d["lr"] = p.lr;
      d["images_per_s"] = p.images_per_s;
      d["eta_seconds"] = p.eta_seconds;
      if (p.epoch_end) d.attr("update")(epoch_dict(*p.epoch_end));
      return d;
    });
    if (!go_on) request_stop();  // stops after this step, saving OUT/last.safetensors
  };
  int code = 0;
  {
    py::gil_scoped_release release;
    code = command.run();
  }
  on_step.rethrow();  // the callback's exception (KeyboardInterrupt too), now that the run is saved

  const TrainResult& r = command.result;
  py::dict summary;
  summary["exit_code"] = code;
  summary["out"] = command.out_dir;
  summary["best_val_acc"] = r.best_val_acc;
  summary["best_epoch"] = r.best_epoch;
  summary["best_path"] = r.best_path;
  summary["last_path"] = r.last_path;
  summary["interrupted"] = r.interrupted;
  summary["already_complete"] = r.already_complete;
  summary["early_stopped"] = r.early_stopped;
  if (r.best_ema_epoch > 0) {
    summary["best_ema_val_acc"] = r.best_ema_val_acc;
    summary["best_ema_epoch"] = r.best_ema_epoch;
  }
  if (!r.swa_path.empty()) {
    summary["swa_path"] = r.swa_path;
    summary["swa_val_acc"] = r.swa_val_acc;
  }
  py::list history;
  for (const EpochRecord& e : r.history) history.append(epoch_dict(e));
  summary["history"] = history;
  return summary;
}

py::dict evaluate(py::object progress, const py::kwargs& options) {
  if (!progress.is_none() && !PyCallable_Check(progress.ptr()))
    throw py::type_error("evaluate(progress=): expected a function of one dict");
  cli::EvalCommand command;
  CommandLine line("fer_eval", "evaluate", cli::EvalCommand::defaults(), options);
  parse_or_raise(command, line);
  PythonCallback on_batch(progress);
  command.on_progress = [&on_batch](const cli::EvalProgress& p) {
    const bool go_on = on_batch.call([&p] {
      py::dict d;
      d["checkpoint"] = p.checkpoint;
      d["member"] = p.member;
      d["members"] = p.members;
      d["done"] = p.done;
      d["total"] = p.total;
      return d;
    });
    // Nothing is written before every prediction is made: stopping here leaves no half report.
    if (!go_on) throw fer::Error("evaluate: stopped by the progress callback");
  };
  try {
    py::gil_scoped_release release;
    command.run();
  } catch (const fer::Error&) {
    on_batch.rethrow();  // the callback's own exception (KeyboardInterrupt) rather than ours
    throw;
  }
  return json_to_python(command.result);
}

py::dict train_options() { return options_dict(cli::TrainCommand::defaults()); }
py::dict evaluate_options() { return options_dict(cli::EvalCommand::defaults()); }

}  // namespace fer::python
