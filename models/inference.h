// Inference over a Transformer's parameters (issue 5): blocked prefill into a KV cache and
// one-row decode steps, in O(T) memory per sequence — no T×T matrix anywhere. Each query row is
// normalised over all its visible keys with the configured normalizer, exactly as in the training
// forward (models/transformer.h); entmax-family and topk rows mix only the values of their
// support (decode steps always; a prefill block of 64 queries does so while its supports cover
// at most 1/8 of its keys, and otherwise takes one dense product, where that is cheaper).
// Prefill blocks of the softmax family and of 1.5-entmax/sparsemax/ASEntmax go through the
// blocked kernel of models/blocked_attention.h instead (key tiles, O(tile) scratch per thread);
// the path above stays as its plain twin (InferenceOptions::blocked = false) and serves the rest.
//
// Work split. A sequence is processed in chunks of `chunk` rows through all layers. Inside a
// chunk the products run in fixed units (row blocks × column blocks, heads × query blocks), each
// unit single-threaded; OpenMP threads only distribute units. The partition does not depend on
// the thread count, so the numbers do not either. Called from inside an OpenMP parallel region
// (one sequence per thread) everything runs on the calling thread.
//
// Dimensions: T positions, C hidden, H heads, D head_dim, F ffn, Vo output classes.
// KV cache: per layer K and V of shape (H, T_max, D) (after RoPE), fp32 or bf16 storage.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "models/kernels/attention_score.h"
#include "models/kernels/normalizer.h"
#include "models/layer_params.h"
#include "models/transformer.h"

namespace lb {

// LB_BLOCKED_PREFILL=1 in the environment: the blocked prefill by default.
bool blocked_prefill_default();

struct InferenceOptions {
  int64_t chunk = 256;      // prefill rows per chunk (activations are O(chunk·F))
  int64_t q_block = 64;     // query rows per attention unit (scores are O(q_block·T) per thread)
  bool kv_bf16 = false;     // bf16 KV storage (half the memory and bandwidth; not bit-equal)
  // Prefill units through models/blocked_attention.h where supported (O(tile) scratch); false:
  // the plain path (its twin) everywhere. Off unless LB_BLOCKED_PREFILL=1: the committed results
  // were evaluated on the plain path (logits agree within 1e-4, not bit for bit), and it is not
  // faster everywhere (results/bench/README.md: faster on the MQMTAR preset at 16 threads, slower
  // for the trained MQMTAR ASEntmax checkpoint, whose uniform rows overflow the candidate buffer).
  bool blocked = blocked_prefill_default();
};

// One attention row handed to an observer: weights p (n) of query `pos` in (layer, head).
struct AttnRowView {
  int64_t layer = 0, head = 0, pos = 0, n = 0;
  const float* p = nullptr;
  RowStats stats;
  float scale = 1.f;   // the query length scale of this (head, pos); 1 for unscaled heads
  bool scaled = false; // whether the head is length-scaled (ssmax, asentmax, learn)
};

// Called for every row of an observed position, from worker threads: calls for different
// (layer, head, pos) may run concurrently, so the observer must write to disjoint slots.
using AttnObserver = std::function<void(const AttnRowView&)>;

// Read-only view of a model's weights plus what every sequence shares (slopes, RoPE table).
// The Transformer must outlive the engine and not change while it is used.
class InferenceEngine {
 public:
  explicit InferenceEngine(const Transformer& model, InferenceOptions opts = {});

  // Builds tables for positions < max_positions (RoPE). Call before running sequences longer
  // than any seen so far; not thread-safe (call it before a parallel region).
  void reserve_positions(int64_t max_positions);

  const ModelConfig& config() const { return cfg_; }
  const InferenceOptions& options() const { return opts_; }
  // Bytes of KV cache per position (all layers, K and V), of this engine or of any engine for
  // config `c` with bf16 (else fp32) storage.
  int64_t kv_bytes_per_position() const { return kv_bytes_per_position(cfg_, opts_.kv_bf16); }
  static int64_t kv_bytes_per_position(const ModelConfig& c, bool kv_bf16);

 private:
  friend class InferenceSession;
  ModelConfig cfg_;
  InferenceOptions opts_;
  const float *embed_, *final_norm_, *head_;
  std::vector<LayerWeights> layers_;  // layer_params.h
  AttentionPositions positions_;      // slopes, scaled heads Hs, RoPE table
};

// One sequence: its KV cache and position. Not thread-safe; many sessions may share an engine.
class InferenceSession {
 public:
  // Reserves the cache for max_length positions (O(max_length) memory, allocated lazily).
  InferenceSession(const InferenceEngine& engine, int64_t max_length);
  ~InferenceSession();

  int64_t length() const { return length_; }

  // Appends ids (n) at positions length() .. length()+n−1. logits (rows, Vo) is filled for
  // positions logits_from .. length()+n−1 (logits_from >= the old length(); default: the last
  // row only). Rows earlier than that and than the observed range skip the last layer's
  // attention and FFN (their keys and values are still cached).
  void append(const int32_t* ids, int64_t n, std::vector<float>& logits, int64_t logits_from = -1);
  // Forgets positions >= n (n <= length()).
  void truncate(int64_t n);
  // Rows of positions [begin, end) are passed to `obs` (nullptr: none).
  void observe(const AttnObserver* obs, int64_t begin, int64_t end);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  const InferenceEngine& eng_;
  int64_t max_length_;
  int64_t length_ = 0;
};

// Index of the largest value (the first one on ties, like torch.argmax). x (n).
int64_t argmax(const float* x, int64_t n);

}  // namespace lb
