// Model and training configuration: defaults in code, the paper's per-task sizes as presets,
// JSON in and out. Each struct's keys are declared once, in its field table (config.cpp,
// models/field_table.h), which drives the accepted keys, reading and writing. Reading JSON rejects
// unknown keys with their JSON path and the accepted keys, and bad values with the value and what
// is accepted.
//
// File layout (every key optional):
//   {"model": {"preset": "copy", "layers": 2, "hidden": 256, "heads": 16, "head_dim": 16,
//              "ffn": 1024, "attention": "softmax" | {"name": "asentmax", ...},
//              "position": "nape", "rope_theta": 10000, "embedding_padding_idx": 0,
//              "init_std": 0.02, "vocab_size": 0, "num_labels": 0},
//    "train": {"task": "copy", "task_params": {"seq_len": 48}, "steps": 1000, "batch": 128,
//              "lr": 1e-3, "warmup": 100, ...}}
// A preset fills every model size; keys given beside it override it.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/field_table.h"  // require_known_keys
#include "models/kernels/normalizer.h"
#include "models/kernels/position.h"

namespace lb {

struct ModelConfig {
  int64_t vocab_size = 0;  // embedding rows; 0: the task's vocabulary
  int64_t num_labels = 0;  // lm_head rows; 0: the task's label count (>= vocab_size)
  int64_t layers = 2;
  int64_t hidden = 256;
  int64_t heads = 16;
  int64_t head_dim = 16;
  int64_t ffn = 1024;
  NormalizerSpec attention;                // "softmax" by default
  PosEncoding position = PosEncoding::kNape;  // the released code's default
  double rope_theta = 10000.0;
  // Token id whose embedding row is zero and frozen (Hugging Face's padding_idx = Gemma's
  // pad_token_id 0, as the released sparse_gemma config; note data token 0 is then the zero
  // vector). −1: none.
  int64_t embedding_padding_idx = 0;
  double init_std = 0.02;
};

struct TrainConfig {
  std::string task = "copy";
  std::vector<std::pair<std::string, std::string>> task_params;  // overrides of the defaults
  uint64_t data_seed = 0;   // the training split's seed
  uint64_t seed = 1;        // initialisation
  int64_t steps = 1000;
  int64_t batch = 128;
  double lr = 1e-3;
  int64_t warmup = 100;     // linear warmup steps, then cosine to 0 at `steps`
  double beta1 = 0.9, beta2 = 0.99, eps = 1e-8, weight_decay = 0.0;
  double clip = 1.0;        // global gradient-norm clipping; 0: off
  bool bf16 = false;        // bf16 matmul inputs (fp32 accumulation)
  int64_t log_every = 10;
  int64_t checkpoint_every = 0;  // 0: only at the end (when an output directory is given)
};

// Presets: "tiny" (tests), "copy", "sort", "reverse", "mqmtar", "flip_flop" (the released
// configs/experiment/*.yaml sizes).
ModelConfig model_preset(const std::string& name);
const std::vector<std::string>& model_preset_names();

// `path` is the JSON path used in error messages ("/model").
ModelConfig model_config_from_json(const nlohmann::json& j, const std::string& path = "/model");
TrainConfig train_config_from_json(const nlohmann::json& j, const std::string& path = "/train",
                                   TrainConfig base = {});
nlohmann::json to_json(const ModelConfig& c);
nlohmann::json to_json(const TrainConfig& c);

// Reads {"model": ..., "train": ...} from a file; UsageError for unreadable or malformed files.
void load_config_file(const std::string& file, ModelConfig& model, TrainConfig& train);

// Model FLOPs per real token for one training step (forward + backward = 3× forward), attention
// products counted for a causal sequence of length T: 6·params_matmul + 6·layers·H·D·(T+1).
// (The parameter count is layer_params.h model_param_count, from the parameter table.)
double model_train_flops_per_token(const ModelConfig& c, double mean_length);

}  // namespace lb
