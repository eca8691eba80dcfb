// Deterministic random numbers, identical with any compiler, library and thread count.
// The standard library's distributions are implementation-defined, so we define our own:
// xoshiro256** as the generator, SplitMix64 for seeding, Lemire's method for bounded integers.
// Streams are derived, not shared: derive_seed(seed, tag, index...) names an independent stream,
// so sample i of a split is generated without generating samples 0..i-1.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <string_view>

namespace lb {

inline uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// FNV-1a, for turning stream tags ("train", "test") into numbers.
constexpr uint64_t hash_tag(std::string_view s) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (char c : s) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001B3ull;
  return h;
}

// Mixes a list of numbers into one seed; order matters.
inline uint64_t derive_seed(std::initializer_list<uint64_t> parts) {
  uint64_t state = 0x6C62272E07BB0142ull;
  uint64_t out = 0;
  for (uint64_t p : parts) {
    state ^= p;
    out = splitmix64(state);
    state = out;
  }
  return out;
}

class Rng {
 public:
  explicit Rng(uint64_t seed = 0) { reseed(seed); }
  void reseed(uint64_t seed) {
    uint64_t sm = seed;
    for (auto& w : s_) w = splitmix64(sm);
  }
  uint64_t next() {
    const uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }
  // Uniform in [0, n), n >= 1, unbiased (Lemire 2019).
  uint64_t below(uint64_t n) {
    uint64_t x = next();
    __uint128_t m = static_cast<__uint128_t>(x) * n;
    uint64_t l = static_cast<uint64_t>(m);
    if (l < n) {
      const uint64_t t = (0 - n) % n;
      while (l < t) {
        x = next();
        m = static_cast<__uint128_t>(x) * n;
        l = static_cast<uint64_t>(m);
      }
    }
    return static_cast<uint64_t>(m >> 64);
  }
  // Uniform integer in [lo, hi], both included.
  int64_t uniform_int(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(next() >> 11) * 0x1.0p-53; }
  bool bernoulli(double p) { return uniform() < p; }
  // Standard normal by Box-Muller with our own uniform (std::normal_distribution varies by
  // library).
  double normal();

  const uint64_t* state() const { return s_; }
  void set_state(const uint64_t s[4]) {
    for (int i = 0; i < 4; ++i) s_[i] = s[i];
  }

 private:
  static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace lb
