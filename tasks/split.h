// A split of a task: a deterministic, random-access stream of samples.
// Sample `index` of (task, params, seed, kind, length) is the same on every machine, compiler and
// thread count; training and evaluation splits draw from unrelated streams.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include "tasks/task.h"

namespace lb {

enum class SplitKind { kTrain, kValidation, kTest };
const char* split_kind_name(SplitKind k);  // "train", "validation", "test"
// The evaluation split named `name`: "test" or "validation"; anything else is a UsageError
// naming `what` (e.g. "--split") and the accepted names. The one place split names are parsed.
SplitKind parse_eval_split(const std::string& name, const std::string& what = "split");

class Split {
 public:
  // length 0: training lengths, uniform in train_length_range(params); else every sample has
  // nominal length `length` (the reference's vary_len = 0 evaluation split).
  Split(const TaskDef& task, TaskParams params, uint64_t seed, SplitKind kind, int64_t length);

  RawSample raw(int64_t index) const;
  Sample get(int64_t index) const { return encode_sample(*task_, params_, raw(index)); }

  const TaskDef& task() const { return *task_; }
  const TaskParams& params() const { return params_; }
  SplitKind kind() const { return kind_; }
  int64_t length() const { return length_; }

 private:
  const TaskDef* task_;
  TaskParams params_;
  uint64_t stream_;  // derived from (task, seed, kind, length)
  SplitKind kind_;
  int64_t length_;
  std::unique_ptr<Generator> gen_;
};

}  // namespace lb
