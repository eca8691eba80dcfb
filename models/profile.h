// Opt-in wall-clock profile of the model's phases: set LB_PROFILE=1 and the totals per phase are
// printed to stderr at exit, each also as a share of the training steps' wall time. With
// LB_PROFILE_SKIP=N the first N training steps are left out (in the first step every buffer is
// touched for the first time, and its phases run up to 10x slower). Off, a phase costs one
// branch. A null phase is not timed.
#pragma once
#include <chrono>

namespace lb {

bool profile_enabled();
void profile_add(const char* phase, double seconds);
// Called by the trainer after each step with the step's wall time.
void profile_step_end(double seconds);

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
