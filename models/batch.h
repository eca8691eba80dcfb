// A training batch in the packed layout: the samples stacked row after row, no padding.
// Sample b is rows offsets[b] .. offsets[b+1]−1, at positions 0 .. T_b−1.
#pragma once
#include <cstdint>
#include <vector>

#include "tasks/sample.h"

namespace lb {

struct Batch {
  std::vector<int64_t> offsets;  // (B + 1)
  std::vector<int32_t> ids;      // (N) input token ids
  std::vector<int32_t> targets;  // (N) label per row, −1 where none
  std::vector<uint8_t> mask;     // (N) 1 where the label counts in the loss
  std::vector<int32_t> pos;      // (N) position of the row within its sample
  int64_t n_targets = 0;         // Σ mask
  int64_t rows() const { return static_cast<int64_t>(ids.size()); }
  int64_t samples() const { return static_cast<int64_t>(offsets.size()) - 1; }
};

Batch make_batch(const std::vector<Sample>& samples);

}  // namespace lb
