// AdamW as PyTorch's torch.optim.AdamW (decoupled weight decay, bias-corrected moments), the
// Hugging Face cosine schedule with linear warmup, and global gradient-norm clipping.
#pragma once
#include <cstdint>
#include <vector>

#include "models/config.h"
#include "models/param.h"

namespace lb {

// Learning rate for optimizer step `step` (0-based), as get_cosine_schedule_with_warmup:
// lr·step/warmup during warmup (so step 0 uses 0), then lr·½(1 + cos(π·(step−W)/(total−W))),
// reaching 0 at `total`.
double lr_at(const TrainConfig& c, int64_t step);

// √(Σ grad²) over every parameter, accumulated in double: each tensor's elements in ascending
// order, the tensors' sums in parameter order. The same bits on any thread count (tensors run in
// parallel, never a split tensor).
double global_grad_norm(const std::vector<Param>& params);
// Scales every grad by max_norm / (norm + 1e-6) when norm > max_norm (torch's clip_grad_norm_).
void clip_grads(std::vector<Param>& params, double norm, double max_norm);

class AdamW {
 public:
  AdamW(const std::vector<Param>& params, double beta1, double beta2, double eps,
        double weight_decay);
  // One update with learning rate lr; increments step().
  void update(std::vector<Param>& params, double lr);
  int64_t step() const { return step_; }

  // State, for checkpoints: moments (one per param, same sizes) and the step count.
  std::vector<std::vector<float>>& exp_avg() { return m_; }
  std::vector<std::vector<float>>& exp_avg_sq() { return v_; }
  const std::vector<std::vector<float>>& exp_avg() const { return m_; }
  const std::vector<std::vector<float>>& exp_avg_sq() const { return v_; }
  void set_step(int64_t s) { step_ = s; }

 private:
  double beta1_, beta2_, eps_, weight_decay_;
  int64_t step_ = 0;
  std::vector<std::vector<float>> m_, v_;
};

// Tests: true runs AdamW::update's plain loop instead of its AVX-512 twin (the same bits).
void set_adamw_plain(bool on);

}  // namespace lb
