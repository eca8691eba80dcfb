// The training loop shared by `lengthbench train`, `lengthbench bench train` and the tests:
// data from the task registry (a deterministic, random-access training split read in order),
// the Transformer, AdamW with warmup + cosine and gradient clipping, and checkpoints.
//
// Determinism: batch k is samples k·B .. k·B+B−1 of the split; no random numbers are drawn after
// initialisation, so (configs, step, data position, weights, moments) is the whole state and a
// resumed run repeats an uninterrupted one exactly at the same thread count.
#pragma once
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "models/adamw.h"
#include "models/config.h"
#include "models/transformer.h"
#include "tasks/split.h"

namespace lb {

struct StepStats {
  int64_t step = 0;        // 1-based index of the optimizer step just taken
  double loss = 0.0;       // mean target-token cross-entropy of the batch
  double lr = 0.0;         // learning rate used by this step
  double grad_norm = 0.0;  // before clipping
  int64_t tokens = 0;      // real (packed) tokens in the batch
  int64_t targets = 0;     // tokens with a loss
  double seconds = 0.0;    // wall time of the step (data included)
};

class Trainer {
 public:
  // Resolves the task (UsageError for unknown names/params), fills vocab_size/num_labels from
  // it when 0, builds the model and initialises it from train.seed.
  Trainer(ModelConfig model, TrainConfig train);

  StepStats step();
  int64_t steps_done() const { return opt_.step(); }
  int64_t data_position() const { return data_position_; }
  Batch next_batch() const;  // the batch the next step() will train on

  // DIR/model.safetensors, DIR/optimizer.safetensors, DIR/config.json, and DIR/manifest.json:
  // {"sha256": {file: digest}, "step": N, "run_config_hash": tag} (tag: the suite run's config
  // hash, "" outside suites). Non-finite weights or moments are refused (std::runtime_error).
  // Returns the sha256 of model.safetensors.
  std::string save(const std::string& dir, const std::string& run_config_hash = "") const;
  // save() into DIR.tmp, then one swap of directories: a kill at any moment leaves DIR or
  // DIR.old whole (see checkpoint_to_resume), never new weights beside old optimizer state.
  std::string save_atomic(const std::string& dir, const std::string& run_config_hash = "") const;
  // DIR when it holds a checkpoint, else DIR.old (a kill between the two renames), else "".
  static std::string checkpoint_to_resume(const std::string& dir);
  // DIR/manifest.json with every listed file's sha256 checked (std::runtime_error on a mismatch:
  // a flipped bit, a file from another checkpoint); null for a checkpoint without a manifest
  // (written before manifests, or by other tools).
  static nlohmann::json verify_checkpoint(const std::string& dir);
  // Restores weights, moments, step and data position from a checkpoint of the same model,
  // after verify_checkpoint; non-finite values are refused.
  void load(const std::string& dir);
  // Configs stored in DIR/config.json (UsageError when missing or malformed).
  static void read_checkpoint_config(const std::string& dir, ModelConfig& model,
                                     TrainConfig& train);
  // The weights alone, DIR/model.safetensors, into a model built from that config (every
  // parameter present with its shape, else UsageError naming it). For evaluation and inspection.
  static void read_checkpoint_weights(const std::string& dir, Transformer& model);

  Transformer& model() { return model_; }
  const ModelConfig& model_config() const { return model_.config(); }
  const TrainConfig& train_config() const { return train_; }

 private:
  TrainConfig train_;
  std::unique_ptr<Split> split_;
  Transformer model_;
  AdamW opt_;
  int64_t data_position_ = 0;
};

}  // namespace lb
