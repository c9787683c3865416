// A fresh directory under the system temp dir for one test, removed with everything in it at
// scope exit. Names carry the process id and a counter, so parallel test runs never collide.
#pragma once
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

namespace fer::testing {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& prefix = "fer_test") {
    static std::atomic<int> counter{0};
    path = std::filesystem::temp_directory_path() /
           (prefix + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& rel) const { return (path / rel).string(); }
  std::string operator/(const std::string& rel) const { return file(rel); }
  std::vector<std::string> entries() const {  // file names directly inside, in no given order
    std::vector<std::string> names;
    for (const auto& e : std::filesystem::directory_iterator(path))
      names.push_back(e.path().filename().string());
    return names;
  }
};

}  // namespace fer::testing
