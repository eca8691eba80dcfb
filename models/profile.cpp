#include "models/profile.h"

#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

namespace lb {

namespace {

struct Profile {
  std::mutex mu;
  std::map<std::string, double> total;
  ~Profile() {
    if (total.empty()) return;
    double all = 0.0;
    for (auto& kv : total) all += kv.second;
    std::fprintf(stderr, "profile (seconds, share of profiled time):\n");
    for (auto& kv : total) {
      std::fprintf(stderr, "  %-24s %9.3f  %5.1f%%\n", kv.first.c_str(), kv.second,
                   100 * kv.second / all);
    }
  }
};

Profile& profile() {
  static Profile p;
  return p;
}

}  // namespace

bool profile_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("LB_PROFILE");
    return v && *v && std::string(v) != "0";
  }();
  return on;
}

void profile_add(const char* phase, double seconds) {
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mu);
  p.total[phase] += seconds;
}

}  // namespace lb
