#include "core/version.h"

#include "lb_git_version.h"  // generated at build time by cmake/git_version.cmake

namespace lb {

std::string lengthbench_version() { return LB_VERSION; }
std::string git_commit() { return LB_GIT_COMMIT; }
bool git_dirty() { return LB_GIT_DIRTY != 0; }

std::string compiler_version() {
#if defined(__clang__)
  return "clang " __clang_version__;
#elif defined(__GNUC__)
  return "g++ " __VERSION__;
#else
  return "unknown";
#endif
}

}  // namespace lb
