// Experiment suites: a JSON grid expanded into runs, each with a canonical key and config hash.
//
// A suite (every key but "name" and "tasks" optional; unknown keys are errors with their path):
//   {"name": "smoke",
//    "model": {...}, "train": {...},          // shared defaults (models/config.h keys)
//    "tasks": ["copy", {"task": "sort", "model": {...}, "train": {...}, "eval": {...},
//                       "select": {...}}],    // per-entry overrides
//    "attention": ["softmax", {"name": "entmax", "alpha": 1.5}],   // default ["softmax"]
//    "position": ["nape", "rope"],             // default ["nape"]
//    "lr": [1e-3, 4e-4],                       // default: train.lr
//    "seeds": [0, 1, 2],                       // default [0]
//    "variants": [{"name": "wide", "model": {"hidden": 512}}],      // optional extra axis
//    "eval": {"split": "test", "lengths": [64, 128], "samples": 1000, "stop_at_zero": false,
//             "seed": 0},                      // lengths default: the task's ladder
//    "select": {"split": "validation", "length": 512, "samples": 1000, "every": 0}}
// Runs = tasks x attention x position x variants x lr x seeds. A seed sets both the
// initialisation and the training-data order; evaluation data use eval.seed, shared by all runs.
// Checkpoint selection: every `select.every` steps (0: only at the end) the model is scored on
// `select.split` at `select.length` (default: the 4th evaluation length; at or below the longest
// training length is refused); the checkpoint evaluated has the highest exact match, then token
// accuracy, then the lowest teacher-forced loss, then the latest step (harness/run.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "models/config.h"

namespace lb {

struct EvalSpec {
  std::string split = "test";
  std::vector<int64_t> lengths;  // empty: the task's eval_lengths
  int64_t samples = 1000;
  bool stop_at_zero = false;     // after the first length at 0% exact match, skip the rest
  uint64_t seed = 0;             // evaluation data seed, shared by every run
};

struct SelectSpec {
  std::string split = "validation";
  int64_t length = 0;    // 0: the 4th evaluation length (the reference's dataloader_idx_3)
  int64_t samples = 1000;
  int64_t every = 0;     // steps between selection evaluations; 0: only the final model
};

struct RunSpec {
  std::string key;          // suite/task.vN/attention/position/model/lrX/sSEED
  std::string suite, task, variant;
  int task_version = 1;
  uint64_t seed = 0;
  ModelConfig model;
  TrainConfig train;
  EvalSpec eval;
  SelectSpec select;
  nlohmann::json config;    // the resolved {model, train, eval, select}
  std::string config_hash;  // fnv1a64 of config.dump() (sorted keys), hex
  int64_t train_max_length = 0;
};

struct Suite {
  std::string name;
  std::vector<RunSpec> runs;  // sorted by key, keys unique
};

// The "eval" and "select" sections (one field table each, suite.cpp): read over `base`, validated
// ("suite PATH/key ..." errors, unknown keys refused), and written as runs record them.
EvalSpec eval_spec_from_json(const nlohmann::json& j, const std::string& path, EvalSpec base = {});
SelectSpec select_spec_from_json(const nlohmann::json& j, const std::string& path,
                                 SelectSpec base = {});
nlohmann::json to_json(const EvalSpec& e);
nlohmann::json to_json(const SelectSpec& s);

// Parses and expands; UsageError with the JSON path for unknown keys, bad values, duplicate keys.
Suite load_suite(const std::string& file);
Suite expand_suite(const nlohmann::json& j);

// Keeps the runs whose key matches `regex` (ECMAScript, searched anywhere in the key).
std::vector<RunSpec> filter_runs(const std::vector<RunSpec>& runs, const std::string& regex);
// Shard i of n (0-based): runs whose key hashes to i mod n. Stable when runs are added.
std::vector<RunSpec> shard_runs(const std::vector<RunSpec>& runs, int64_t index, int64_t count);
// "i/n" -> (i, n); UsageError unless 0 <= i < n.
std::pair<int64_t, int64_t> parse_shard(const std::string& text);

// Estimated floating-point work of a run (training + selection + evaluation), for --dry-run.
double estimate_run_flops(const RunSpec& run);

std::string fnv1a64_hex(const std::string& text);
// The attention part of a run key and the runs.normalizer column: the normalizer's name plus
// every parameter that differs from its default ("entmax-alpha=1.3", "asentmax-init=near-one").
std::string attention_code(const NormalizerSpec& spec);

}  // namespace lb
