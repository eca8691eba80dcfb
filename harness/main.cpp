// lengthbench: dispatches `lengthbench COMMAND ...` through the table in harness/commands.cpp.
// Exit codes: 0 success, 1 internal or runtime failure, 2 bad input (one line on stderr).
#include <malloc.h>

#include <cstring>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

#include "core/check.h"
#include "harness/command.h"
#include "results/db.h"

namespace {

void print_usage() {
  std::cout << "lengthbench — length generalisation of attention normalizers, measured\n\n"
               "usage: lengthbench COMMAND [options]   (lengthbench COMMAND --help for each)\n"
               "       lengthbench --version   (commit, dirty flag, oneDNN version and ISA)\n\n"
               "commands:\n";
  for (const auto& c : lb::all_commands()) {
    std::cout << "  " << c.name << std::string(12 - std::min<size_t>(11, strlen(c.name)), ' ')
              << c.summary << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  // Long sequences allocate and free many large buffers; keep them in the heap instead of
  // mmap/munmap per allocation, whose page faults otherwise dominate sample generation.
  mallopt(M_MMAP_THRESHOLD, 512 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
      !strcmp(argv[1], "help")) {
    print_usage();
    return argc < 2 ? 2 : 0;
  }
  if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
    const lb::Provenance p = lb::Provenance::current(1);
    std::cout << "lengthbench " << p.lengthbench_version << "\ncommit " << p.git_commit
              << (p.git_dirty ? " (dirty: uncommitted changes)" : " (clean)") << "\ncompiler "
              << p.compiler << "\noneDNN " << p.onednn_version << "\nISA " << p.onednn_isa
              << "\n";
    return 0;
  }
  std::vector<std::string> names;
  for (const auto& c : lb::all_commands()) names.push_back(c.name);
  try {
    for (const auto& c : lb::all_commands()) {
      if (argv[1] == std::string(c.name)) return c.run(argc - 1, argv + 1);
    }
    throw lb::UsageError(lb::unknown_name_message("command", argv[1], names));
  } catch (const lb::UsageError& e) {
    std::cerr << "lengthbench: error: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "lengthbench: failed: " << e.what() << "\n";
    return 1;
  }
}
