// The command table. A new command: one cmd_*.cpp, one declaration and one row here.
#include "harness/command.h"

namespace lb {

int cmd_tasks(int argc, char** argv);
int cmd_gen(int argc, char** argv);
int cmd_export(int argc, char** argv);
int cmd_bench(int argc, char** argv);

const std::vector<Command>& all_commands() {
  static const std::vector<Command> kCommands = {
      {"tasks", "list the synthetic tasks, their parameters and defaults", cmd_tasks},
      {"gen", "print samples of a task (text or JSON)", cmd_gen},
      {"export", "write a dataset in the reference generator's .src/.trg format", cmd_export},
      {"bench", "benchmarks: tasks (more as they land)", cmd_bench},
  };
  return kCommands;
}

}  // namespace lb
