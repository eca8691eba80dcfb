// The task registry: every task, in one explicit table (tasks/registry.cpp).
#pragma once
#include <string>
#include <vector>

#include "tasks/task.h"

namespace lb {

const std::vector<TaskDef>& all_tasks();
std::vector<std::string> all_task_names();
// Throws UsageError "unknown task 'cpy'; did you mean 'copy'? (known: ...)".
const TaskDef& find_task(const std::string& name);

}  // namespace lb
