// Scalar bf16 conversions of the fp32 values the bf16 paths store (KV cache, products' copies):
// round to nearest even (finite inputs), and back. The vector conversion of whole arrays is
// fp32_to_bf16 (dnnl_util.h), whose plain twin rounds the same way.
#pragma once
#include <cstdint>
#include <cstring>

namespace lb {

inline uint16_t bf16_round(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  u += 0x7FFFu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float bf16_widen(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace lb
