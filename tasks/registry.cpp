// A new task: one file tasks/<name>.cpp defining <name>_task(), one line here, one in CMake.
// tasks_test.cpp loops over this table, so a new entry is tested from the start.
#include "tasks/registry.h"

#include "core/check.h"

namespace lb {

TaskDef copy_task();
TaskDef reverse_task();
TaskDef sort_task();
TaskDef mqmtar_task();
TaskDef flip_flop_task();
TaskDef local_count_task();
TaskDef n_back_task();
TaskDef parity_task();

const std::vector<TaskDef>& all_tasks() {
  static const std::vector<TaskDef> kTasks = {
      copy_task(),   reverse_task(),     sort_task(),   mqmtar_task(),
      flip_flop_task(), local_count_task(), n_back_task(), parity_task(),
  };
  return kTasks;
}

std::vector<std::string> all_task_names() {
  std::vector<std::string> names;
  for (const auto& t : all_tasks()) names.push_back(t.name);
  return names;
}

const TaskDef& find_task(const std::string& name) {
  for (const auto& t : all_tasks()) {
    if (name == t.name) return t;
  }
  throw UsageError(unknown_name_message("task", name, all_task_names()));
}

}  // namespace lb
