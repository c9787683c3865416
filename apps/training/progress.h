// Small helpers shared by the apps' live progress lines (training, feature extraction, batch
// prediction): elapsed time and a compact duration for ETAs ("42s", "3m07s", "1h05m").
#pragma once
#include <chrono>
#include <cstdio>
#include <string>

namespace fer {

using Clock = std::chrono::steady_clock;

inline double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

inline std::string format_duration(double seconds) {
  char buf[32];
  const long t = seconds > 0 ? static_cast<long>(seconds + 0.5) : 0;
  if (t < 60) std::snprintf(buf, sizeof buf, "%lds", t);
  else if (t < 3600) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, t / 60 % 60);
  return buf;
}

}  // namespace fer
