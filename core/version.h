// What built this binary: stored with every result and export.
#pragma once
#include <string>

namespace lb {

std::string lengthbench_version();  // "0.1"
std::string git_commit();           // full hash, or "unknown" outside a git checkout
bool git_dirty();                   // tracked files differed from the commit at build time
std::string compiler_version();     // "g++ 12.2.0"

}  // namespace lb
