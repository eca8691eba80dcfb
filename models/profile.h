// Opt-in wall-clock profile of the model's phases: set LB_PROFILE=1 and the totals per phase are
// printed to stderr at exit. Off, a phase costs one branch. A null phase is not timed.
#pragma once
#include <chrono>

namespace lb {

bool profile_enabled();
void profile_add(const char* phase, double seconds);

class ProfileScope {
 public:
  explicit ProfileScope(const char* phase) : phase_(phase) {
    if (phase_ && profile_enabled()) t0_ = std::chrono::steady_clock::now();
  }
  ~ProfileScope() {
    if (phase_ && profile_enabled()) {
      profile_add(phase_, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count());
    }
  }

 private:
  const char* phase_;
  std::chrono::steady_clock::time_point t0_;
};

}  // namespace lb
