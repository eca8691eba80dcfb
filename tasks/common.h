// Pieces shared by the task files: the common parameters and their checks.
#pragma once
#include <algorithm>
#include <cmath>
#include <vector>

#include "core/check.h"
#include "tasks/task.h"

namespace lb {

// seq_len and vary_len: training lengths uniform in [seq_len - vary_len, seq_len + vary_len].
inline std::vector<ParamDef> length_params(double seq_len, double vary_len) {
  return {
      {"seq_len", seq_len, true, 1, 1 << 30, "mean training length L"},
      {"vary_len", vary_len, true, 0, 1 << 30, "training lengths vary by +-vary_len"},
  };
}

inline ParamDef vocab_param(double vocab, const char* help = "data ids 0..vocab-1") {
  return {"vocab", vocab, true, 2, 1 << 24, help};
}

template <typename... Extra>
std::vector<ParamDef> join_params(std::vector<ParamDef> a, const Extra&... extra) {
  (a.insert(a.end(), extra.begin(), extra.end()), ...);
  return a;
}

// Shared by every task's validate(): no checks on lengths beyond the task's minimum.
inline void require_min_length(const char* task, int64_t min_length, int64_t need,
                               const char* why) {
  LB_REQUIRE(min_length >= need, task << ": length " << min_length << " is below the minimum "
                                      << need << " (" << why << ")");
}

// Uniform data tokens in [lo, hi].
inline void fill_uniform(std::vector<int32_t>& out, int64_t n, int32_t lo, int32_t hi, Rng& rng) {
  out.resize(static_cast<size_t>(n));
  for (auto& t : out) t = static_cast<int32_t>(rng.uniform_int(lo, hi));
}

// Alignment with one src position per trg token (copy, reverse, n_back ...); -1 = none.
inline void align_one_to_one(const std::vector<int32_t>& src_index, Alignment& out) {
  const size_t r = src_index.size();
  out.begin.assign(r, 0);
  out.end.assign(r, 0);
  out.pos.clear();
  for (size_t t = 0; t < r; ++t) {
    out.begin[t] = static_cast<int32_t>(out.pos.size());
    if (src_index[t] >= 0) out.pos.push_back(src_index[t]);
    out.end[t] = static_cast<int32_t>(out.pos.size());
  }
}

}  // namespace lb
