// A synthetic task: its parameters, its generator and how its samples become model sequences.
// Each task lives in one file (tasks/<name>.cpp) and is listed once in tasks/registry.cpp.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/rng.h"
#include "tasks/sample.h"

namespace lb {

struct ParamDef {
  const char* name;
  double default_value;
  bool integer;  // integer-valued (rejects 2.5)
  double min, max;
  const char* help;
};

// Parameter values of one task, every declared parameter present (defaults filled in).
class TaskParams {
 public:
  double get(const std::string& name) const;
  int64_t geti(const std::string& name) const { return static_cast<int64_t>(get(name)); }
  void set(const std::string& name, double v) { values_[name] = v; }
  const std::map<std::string, double>& values() const { return values_; }

 private:
  std::map<std::string, double> values_;
};

enum class TaskFormat {
  kSeq2Seq,       // [bos] src [sep] trg [eos], loss on trg and eos
  kSeq2SeqNoSep,  // [bos] src trg [eos] (flip_flop)
  kPerPosition,   // [bos] src [eos] with one label per src token (local_count, n_back)
};

// Generates raw samples of one split. Built once per split (MQMTAR draws its key and value pools
// there), then called with a per-sample RNG, so samples are independent and random-access.
class Generator {
 public:
  virtual ~Generator() = default;
  // length: the nominal length L (the reference's seq_len for this sample).
  virtual void generate(int64_t length, Rng& rng, RawSample& out) const = 0;
};

struct TaskDef {
  const char* name;     // registry key, stored with every result
  int version;          // bump when (params, seed) -> samples changes
  const char* summary;  // one line for `lengthbench tasks`
  TaskFormat format;
  double gen_multiplier;  // max decode length = multiplier x source length (reference configs)
  std::vector<ParamDef> params;
  // Throws UsageError naming the violated constraint for lengths in [min_length, max_length].
  void (*validate)(const TaskParams&, int64_t min_length, int64_t max_length);
  int32_t (*max_data_id)(const TaskParams&);
  int32_t (*max_label)(const TaskParams&);  // largest label id; -1: same as max_data_id
  std::unique_ptr<Generator> (*make_generator)(const TaskParams&, Rng& split_rng);
  // The src positions that determine each trg token. Derived from src/trg alone, so it works
  // on imported files too. Throws UsageError if the sample is not a valid sample of the task.
  void (*align)(const TaskParams&, const RawSample&, Alignment& out);
  std::vector<int64_t> eval_lengths;  // default evaluation ladder (the reference's test lengths)
};

// Defaults, overridden by "key=value" pairs (strings from the CLI or JSON); validated against
// the training range and, when given, the evaluation lengths.
TaskParams make_params(const TaskDef& task,
                       const std::vector<std::pair<std::string, std::string>>& overrides);
// The training length range [seq_len - vary_len, seq_len + vary_len].
std::pair<int64_t, int64_t> train_length_range(const TaskParams& p);
Vocab task_vocab(const TaskDef& task, const TaskParams& p);

// Builds the model sequence, loss mask and relevant positions from a raw sample.
Sample encode_sample(const TaskDef& task, const TaskParams& p, RawSample raw);

}  // namespace lb
