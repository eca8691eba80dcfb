// Evaluation of a model on a task at one or more lengths (issue 5): greedy decoding with a KV cache
// (the released code's metrics/, deep-spin/asentmax), exact match, token accuracy, edit distance,
// and attention-dispersion statistics per layer and head over the target positions.
//
// Decoding. Source→target tasks: the prompt is input[0 .. first_target_pos] ([bos] src [sep]);
// greedy decoding stops at eos or at max_length = int(len(prompt) × gen_multiplier) positions
// (prompt included), the output is cut at the first eos. With `draft_reference` the reference
// target is fed in one blocked pass first and its predictions are kept up to the first one that
// differs from it; decoding continues from there. This is exactly greedy decoding (the kept
// predictions are the ones greedy decoding would make), only faster when the model is right.
// Per-position tasks (local_count, n_back): one forward pass, the argmax label at each masked
// position.
//
// Metrics per sample. Source→target: exact = decoded == trg; token accuracy over the trg tokens
// and eos, position by position; edit distance = Levenshtein(decoded, trg) in tokens.
// Per-position: exact = every label right; token accuracy over the labels; edit distance = the
// number of wrong labels.
//
// Dispersion, per (layer, head), over the rows of the target positions that decoding ran (the
// queries predicting trg tokens and eos; per-position tasks: the labelled positions), averaged:
// entropy H = −Σ p log p, H / log n (n = visible keys; 0 for n = 1), support (nonzeros for the
// sparse normalizers entmax, sparsemax, asentmax, topk; else the fewest keys holding 99% of the
// row's mass), maximum weight, the mass on the sample's relevant positions (rows that have
// any), and for length-scaled heads the 5th/50th/95th percentiles of the query scale.
//
// Parallelism. Samples of one length run in parallel (one per thread) while their KV caches fit
// `parallel_bytes`; longer ones run one at a time with the work of each spread over the threads.
// Per-sample numbers are merged in sample order, so every thread count gives the same results.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "models/inference.h"
#include "results/db.h"
#include "tasks/split.h"

namespace lb {

// ---- one attention row ----------------------------------------------------------------------

struct RowDispersion {
  double entropy = 0, entropy_norm = 0, support = 0, max_weight = 0, relevant_mass = 0;
  bool has_relevant = false;
};
// p (n) one row of weights; sparse: count nonzeros as the support, else the 99%-mass count;
// relevant: positions [rel_begin, rel_end) (may be empty).
RowDispersion row_dispersion(const float* p, int64_t n, bool sparse, const int32_t* rel_begin,
                             const int32_t* rel_end);
// The fewest entries of p (n) whose sum reaches `fraction` of the row's sum (expected O(n)).
int64_t mass_support(const float* p, int64_t n, double fraction);
// q-quantile of v (0 <= q <= 1), linear interpolation between order statistics (numpy default).
double percentile(std::vector<float> v, double q);
// Levenshtein distance between token sequences.
int64_t edit_distance(const std::vector<int32_t>& a, const std::vector<int32_t>& b);

// ---- one sample -----------------------------------------------------------------------------

// Per (layer, head) sums over a sample's observed rows.
struct DispersionSums {
  int64_t rows = 0, rows_relevant = 0;
  double entropy = 0, entropy_norm = 0, support = 0, max_weight = 0, relevant_mass = 0;
  std::vector<float> scales;  // query scales of a length-scaled head (subsampled)
};

struct SampleOutcome {
  std::vector<int32_t> generated;  // greedy output (eos included when produced)
  std::vector<int32_t> decoded;    // cut at the first eos (per-position: the predicted labels)
  bool exact = false;
  int64_t correct = 0, total = 0;  // token accuracy = correct / total
  int64_t edit = 0;
  int64_t prompt_tokens = 0;       // positions fed before decoding
  std::vector<DispersionSums> attn;  // (layers·heads), empty unless asked for
};

struct DecodeOptions {
  bool draft_reference = true;
  bool attn_stats = true;
  int64_t max_scales_per_row_set = 64;  // scale samples kept per (layer, head) and sample
};

SampleOutcome evaluate_sample(const InferenceEngine& engine, const TaskDef& task,
                              const Sample& sample, const DecodeOptions& opt);

// ---- head kinds and teacher-forced loss ----------------------------------------------------

// The kind of head h of a model: its position handling, "alibi", "nope" or "rope" (NAPE: the
// first H/2 heads ALiBi, the rest NoPE), plus "+scaled" when the normalizer's query length
// scaling (SSMax/ASEntmax) applies to it (position.h is_length_scaled_head). Stored per row of
// attn_stats so dispersion can be grouped by kind.
std::string head_kind(const ModelConfig& c, int h);

// Mean target-token cross-entropy (nats) of `samples` samples of split (task, params, seed,
// kind, length) under teacher forcing: the checkpoint-selection loss. Runs the training forward
// on `model` in chunks of samples bounded by `max_attn_bytes` of attention weights.
double teacher_forced_loss(Transformer& model, const TaskDef& task, const TaskParams& params,
                           uint64_t seed, SplitKind kind, int64_t length, int64_t samples,
                           int64_t max_attn_bytes = int64_t(256) << 20);

// ---- a ladder of lengths --------------------------------------------------------------------

struct EvalOptions {
  std::vector<int64_t> lengths;  // empty: the task's eval_lengths
  int64_t samples = 1000;        // per length
  uint64_t seed = 0;             // the evaluation split's seed
  SplitKind split = SplitKind::kTest;
  bool stop_at_zero = false;     // after the first length at 0% exact match, skip the rest
  DecodeOptions decode;
  InferenceOptions inference;  // inference.kv_bf16 is set per length by `kv`
  // KV storage: kAuto keeps fp32 (bit-for-bit the training arithmetic up to summation order)
  // while one sample's fp32 cache stays within kv_f32_max_bytes and switches to bf16 above
  // (MQMTAR from L = 32,768 on), so one sample at 65,536 stays well under 1 GiB.
  enum class Kv { kAuto, kF32, kBf16 } kv = Kv::kAuto;
  int64_t kv_f32_max_bytes = int64_t(512) << 20;
  int64_t parallel_bytes = int64_t(1) << 30;  // KV bytes allowed for samples run side by side
  // When set and true, evaluation stops between samples (no new sample starts) and the length
  // throws EvalInterrupted: an interrupted length has no result (Ctrl-C in `run`).
  const std::atomic<bool>* stop = nullptr;
};

// Thrown by an evaluation stopped through EvalOptions::stop.
struct EvalInterrupted : std::runtime_error {
  EvalInterrupted() : std::runtime_error("evaluation interrupted") {}
};

struct LengthResult {
  EvalRow eval;
  std::vector<AttnRow> attn;       // (layers·heads) in layer-major order; empty when skipped
  int64_t generated_tokens = 0;
  bool kv_bf16 = false;            // the KV storage this length used
  double mean_entropy = 0, mean_support = 0;  // over every observed row of every head
};

// done/total samples of `length`; called from the evaluating thread.
using EvalProgress = std::function<void(int64_t length, int64_t done, int64_t total)>;

// One length: opt.samples samples of split (task, params, opt.seed, opt.split, length), the KV
// storage chosen by opt.kv. opt.lengths and opt.stop_at_zero are not used.
LengthResult evaluate_length(const Transformer& model, const TaskDef& task,
                             const TaskParams& params, const EvalOptions& opt, int64_t length,
                             const EvalProgress& progress = {});

// What the ladder does around each length, in ladder order.
struct LadderCallbacks {
  // A length's row already known (e.g. stored by an interrupted run): taken as is, neither
  // evaluated nor passed to `done`; its exact match counts for stop_at_zero. Unset: none known.
  std::function<std::optional<EvalRow>(int64_t length)> known;
  // Every other length as it finishes: evaluated, or skipped after a 0% length (stop_at_zero).
  std::function<void(const LengthResult&)> done;
  EvalProgress progress;
};

// The ladder (opt.lengths, else the task's eval_lengths) with the stop-at-zero rule: the one
// ladder behind `eval`, `run` and evaluate_ladder. Checks the model's vocabulary first.
void run_ladder(const Transformer& model, const TaskDef& task, const TaskParams& params,
                const EvalOptions& opt, const LadderCallbacks& callbacks);

// run_ladder's results collected in order.
std::vector<LengthResult> evaluate_ladder(const Transformer& model, const TaskDef& task,
                                          const TaskParams& params, const EvalOptions& opt,
                                          const EvalProgress& progress = {});

nlohmann::json to_json(const LengthResult& r);

}  // namespace lb
