// Buffers for activations, workspaces and their bf16 copies that are resized every batch (the
// packed row count changes with each batch). std::vector<float> zero-fills every element it grows
// by; this one leaves them uninitialised, so a buffer alternating between sizes costs no memset.
// Contract: whoever resizes such a buffer writes every element before reading it.
#pragma once
#include <cstdint>
#include <memory>
#include <new>
#include <vector>

namespace lb {

// std::allocator that default-initialises (for float: leaves alone) instead of value-initialising
// the elements vector::resize(n) adds.
template <typename T>
struct UninitAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitAllocator<U>;
  };
  UninitAllocator() = default;
  template <typename U>
  UninitAllocator(const UninitAllocator<U>&) noexcept {}
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};

using FloatBuffer = std::vector<float, UninitAllocator<float>>;
using Bf16Buffer = std::vector<uint16_t, UninitAllocator<uint16_t>>;  // bf16 bit patterns

}  // namespace lb
