// A named parameter tensor with its gradient. Models expose their parameters as one vector in a
// fixed order (the checkpoint order); names are Hugging Face Gemma-2's.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lb {

struct Param {
  std::string name;
  std::vector<int64_t> shape;
  std::vector<float> value;
  std::vector<float> grad;  // same size; accumulates (+=) until zeroed

  Param() = default;
  Param(std::string n, std::vector<int64_t> s) : name(std::move(n)), shape(std::move(s)) {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    value.assign(count, 0.f);
    grad.assign(count, 0.f);
  }
  int64_t size() const { return static_cast<int64_t>(value.size()); }
  float* data() { return value.data(); }
  const float* data() const { return value.data(); }
};

}  // namespace lb
