// One sample of a task: the raw src/trg lines (the reference generator's text format) and the
// sequence a decoder-only model consumes, with its loss mask and the positions that matter.
//
// Source->target tasks (copy, reverse, sort, mqmtar, flip_flop, parity):
//   full   = [bos] src [sep] trg [eos]          (flip_flop: no sep)
//   input  = full[:-1]; target = full[1:]; loss_mask = 1 on the trg and eos predictions.
// Per-position tasks (local_count, n_back):
//   input  = [bos] src [eos]; target = [-1] trg [-1]; loss_mask = [0, 1...1, 0]  (no shift).
// T = input.size() = target.size() = loss_mask.size().
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

namespace lb {

// Token ids: data ids 0..max_data_id, then five specials, as the reference tokenizer.
struct Vocab {
  int32_t max_data_id = 0;
  int32_t pad = 0, bos = 0, eos = 0, mask = 0, sep = 0;
  int32_t size = 0;        // model input vocabulary = max_data_id + 6
  int32_t num_labels = 0;  // output classes the targets need (>= size only for local_count)
  static Vocab from_max_id(int32_t max_data_id, int32_t max_label = -1);
};

// For each trg index t, the src indices that determine trg[t]: pos[begin[t] .. end[t]).
struct Alignment {
  std::vector<int32_t> begin, end;  // (R)
  std::vector<int32_t> pos;         // src indices, ranges may be shared
};

struct RawSample {
  std::vector<int32_t> src;  // (S) data ids
  std::vector<int32_t> trg;  // (R) data ids (labels for per-position tasks, R == S)
};

struct Sample {
  RawSample raw;
  std::vector<int32_t> input;      // (T) model input ids
  std::vector<int32_t> target;     // (T) label predicted at each position; -1 where none
  std::vector<uint8_t> loss_mask;  // (T) 1 where the label counts
  // Positions of `input` an ideal model must attend to when predicting at query position i:
  // relevant_pos[relevant_begin[i] .. relevant_end[i]). Empty where nothing specific matters.
  // Ranges may be shared (sort: every target of one value points at that value's occurrences),
  // so storage stays O(T) at any length.
  std::vector<int32_t> relevant_begin;  // (T)
  std::vector<int32_t> relevant_end;    // (T)
  std::vector<int32_t> relevant_pos;
  // Index of the first input position whose label is a trg token (seq2seq: the sep position).
  int32_t first_target_pos = 0;

  int64_t length() const { return static_cast<int64_t>(input.size()); }
  std::pair<const int32_t*, const int32_t*> relevant(int64_t i) const {
    return {relevant_pos.data() + relevant_begin[i], relevant_pos.data() + relevant_end[i]};
  }
};

}  // namespace lb
