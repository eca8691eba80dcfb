#include "models/profile.h"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>

namespace lb {

namespace {

// LB_PROFILE_SKIP: a count of steps (digits only), else a one-line error and exit code 2.
int64_t skip_steps() {
  const char* v = std::getenv("LB_PROFILE_SKIP");
  if (!v) return 0;
  char* end = nullptr;
  const long long n = std::strtoll(v, &end, 10);
  if (!*v || *end || n < 0) {
    std::fprintf(stderr,
                 "error: LB_PROFILE_SKIP='%s' is not a step count (accepted: 0, 1, 2, ...)\n", v);
    std::exit(2);
  }
  return n;
}

struct Profile {
  std::mutex mu;
  std::map<std::string, double> total;
  int64_t skip = skip_steps(), steps_seen = 0, steps = 0;
  double step_seconds = 0.0;
  ~Profile() {
    if (total.empty()) return;
    double all = 0.0;
    for (auto& kv : total) all += kv.second;
    std::fprintf(stderr,
                 "profile (seconds, share of profiled time, share of %lld training steps' %.3f s "
                 "after the first %lld; nested phases count in both their own and their parent's "
                 "rows):\n",
                 static_cast<long long>(steps), step_seconds, static_cast<long long>(skip));
    for (auto& kv : total) {
      std::fprintf(stderr, "  %-24s %9.3f  %5.1f%%  %5.1f%%\n", kv.first.c_str(), kv.second,
                   100 * kv.second / all, step_seconds > 0 ? 100 * kv.second / step_seconds : 0.0);
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
  if (p.steps_seen < p.skip) return;
  p.total[phase] += seconds;
}

void profile_step_end(double seconds) {
  if (!profile_enabled()) return;
  Profile& p = profile();
  std::lock_guard<std::mutex> lock(p.mu);
  if (p.steps_seen++ < p.skip) return;
  ++p.steps;
  p.step_seconds += seconds;
}

}  // namespace lb
