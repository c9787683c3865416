#include "apps/cli/args.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <sstream>
#include <type_traits>
#include <vector>

#include "engine/error.h"

namespace fer::cli {

Args::Args(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

Args& Args::option(const std::string& name, const std::string& default_value, const std::string& help) {
  specs_[name] = {default_value, help, false, false};
  order_.push_back(name);
  return *this;
}

Args& Args::flag(const std::string& name, bool default_value, const std::string& help) {
  specs_[name] = {default_value ? "true" : "false", help, true, false};
  order_.push_back(name);
  return *this;
}

Args& Args::bind(const std::vector<Flag>& table) {
  for (const Flag& row : table) {
    if (std::holds_alternative<bool*>(row.target)) {
      FER_CHECK(row.default_value == "true" || row.default_value == "false", program_,
                ": internal: the switch --", row.name, " has the default '", row.default_value,
                "' (true or false)");
      flag(row.name, row.default_value == "true", row.help);
    } else {
      option(row.name, row.default_value, row.help);
    }
    bound_.push_back(row);
  }
  return *this;
}

// The same conversions (and error messages) as reading the flag with integer(), number(), ...
void Args::store(const Flag& row) const {
  const std::string& name = row.name;
  std::visit(
      [&](const auto& target) {
        using T = std::decay_t<decltype(target)>;
        if constexpr (std::is_same_v<T, Flag::Setter>) target(str(name));
        else if constexpr (std::is_same_v<T, bool*>) *target = boolean(name);
        else if constexpr (std::is_same_v<T, std::string*>) *target = str(name);
        else if constexpr (std::is_same_v<T, float*>) *target = static_cast<float>(number(name));
        else if constexpr (std::is_same_v<T, double*>) *target = number(name);
        else *target = static_cast<std::remove_pointer_t<T>>(integer(name));  // int, int64_t, uint64_t
      },
      row.target);
}

namespace {
// Levenshtein distance between a and b (insertions, deletions, substitutions).
size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}
}  // namespace

std::string Args::did_you_mean(const std::string& name) const {
  std::string best;
  size_t best_distance = std::max<size_t>(2, name.size() / 3) + 1;  // close enough to be a typo
  for (const std::string& candidate : order_) {
    const size_t d = edit_distance(name, candidate);
    if (d < best_distance) best = candidate, best_distance = d;
  }
  return best.empty() ? "" : ": did you mean --" + best + "?";
}

std::map<std::string, std::string> Args::values() const {
  std::map<std::string, std::string> out;
  for (const auto& [name, s] : specs_) out[name] = s.value;
  return out;
}

void Args::parse(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << usage();
      std::exit(0);
    }
    if (arg == "--version") {
      std::cout << program_ << " " << FER_VERSION << "\n";
      std::exit(0);
    }
    if (arg.rfind("--", 0) != 0) {
      positional_.push_back(arg);
      continue;
    }
    std::string name = arg.substr(2), value;
    bool has_value = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    bool negated = false;
    if (!specs_.count(name) && name.rfind("no-", 0) == 0 && specs_.count(name.substr(3)) &&
        specs_.at(name.substr(3)).is_flag) {
      name = name.substr(3);
      negated = true;
    }
    auto it = specs_.find(name);
    FER_CHECK(it != specs_.end(), program_, ": unknown option '--", name, "'", did_you_mean(name),
              " (see --help)");
    Spec& s = it->second;
    if (s.is_flag) {
      if (has_value) {
        FER_CHECK(value == "true" || value == "false" || value == "1" || value == "0", program_,
                  ": --", name, " takes true or false, got '", value, "'");
        s.value = (value == "true" || value == "1") != negated ? "true" : "false";
      } else {
        s.value = negated ? "false" : "true";
      }
    } else {
      if (!has_value) {
        FER_CHECK(i + 1 < argc, program_, ": option --", name, " needs a value");
        value = argv[++i];
      }
      s.value = value;
    }
    s.given = true;
  }
  for (const Flag& row : bound_) store(row);
}

const Args::Spec& Args::spec(const std::string& name) const {
  auto it = specs_.find(name);
  FER_CHECK(it != specs_.end(), program_, ": internal: undeclared option --", name);
  return it->second;
}

std::string Args::str(const std::string& name) const { return spec(name).value; }

int64_t Args::integer(const std::string& name) const {
  const std::string& v = spec(name).value;
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  FER_CHECK(!v.empty() && end && *end == '\0', program_, ": --", name, " expects an integer, got '", v, "'");
  return x;
}

double Args::number(const std::string& name) const {
  const std::string& v = spec(name).value;
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  FER_CHECK(!v.empty() && end && *end == '\0', program_, ": --", name, " expects a number, got '", v, "'");
  return x;
}

bool Args::boolean(const std::string& name) const { return spec(name).value == "true"; }
bool Args::given(const std::string& name) const { return spec(name).given; }

std::string Args::usage() const {
  std::ostringstream os;
  os << "usage: " << program_ << " [options]\n\n" << summary_ << "\n\noptions:\n";
  for (const std::string& name : order_) {
    const Spec& s = specs_.at(name);
    std::string left = "  --" + name + (s.is_flag ? "" : " VALUE");
    if (left.size() < 30) left.resize(30, ' ');
    else left += "\n" + std::string(30, ' ');
    os << left << s.help;
    if (!s.value.empty()) os << " [" << (s.is_flag ? (s.value == "true" ? "on" : "off") : s.value) << "]";
    os << "\n";
  }
  return os.str();
}

int run_main(const char* program, int (*body)(int, char**), int argc, char** argv) {
  try {
    return body(argc, argv);
  } catch (const std::exception& e) {
    // Messages of the flag parser start with the program's name already: not twice.
    const std::string prefix = std::string(program) + ": ";
    const char* message = e.what();
    if (std::string(message).rfind(prefix, 0) == 0) message += prefix.size();
    std::fprintf(stderr, "%s: error: %s\n", program, message);
    return 2;
  }
}

}  // namespace fer::cli
