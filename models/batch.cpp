#include "models/batch.h"

#include "core/check.h"

namespace lb {

Batch make_batch(const std::vector<Sample>& samples) {
  Batch b;
  int64_t rows = 0;
  for (const Sample& s : samples) rows += s.length();
  // Each vector sized once, not grown by doubling through ~log2(rows) reallocations per batch.
  b.offsets.reserve(samples.size() + 1);
  b.ids.reserve(rows), b.targets.reserve(rows), b.mask.reserve(rows), b.pos.reserve(rows);
  b.offsets.push_back(0);
  for (const Sample& s : samples) {
    const int64_t T = s.length();
    LB_CHECK(static_cast<int64_t>(s.target.size()) == T &&
                 static_cast<int64_t>(s.loss_mask.size()) == T,
             "sample with mismatched input/target/mask lengths");
    for (int64_t t = 0; t < T; ++t) {
      b.ids.push_back(s.input[t]);
      b.targets.push_back(s.target[t]);
      b.mask.push_back(s.loss_mask[t] && s.target[t] >= 0 ? 1 : 0);
      b.pos.push_back(static_cast<int32_t>(t));
      b.n_targets += b.mask.back();
    }
    b.offsets.push_back(b.rows());
  }
  return b;
}

}  // namespace lb
