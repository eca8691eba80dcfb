// Loops over [0, n) on the OpenMP threads that open no OpenMP region where it would have one
// thread. libgomp runs a one-thread region (--threads 1, OMP_NUM_THREADS=1, a false if clause,
// a region nested in another) through a whole team start and end: a team memalign'd and freed,
// and a futex wake system call at the closing barrier: 2.4-3.2 µs per empty region on the 2-core
// AMD EPYC VM, against 0.1 µs for its loop. A small-model training step at --threads 1 opened
// ~88 of them (2 layers, 25 parameters; 88.5 futex calls per step), ~3% of the step.
// Contract: where one thread would run the region, body runs for i = 0, 1, …, n−1 in order on the
// calling thread, exactly as the one-thread region ran it, so results are the same bits.
#pragma once
#include <omp.h>

#include <cstdint>

namespace lb {

// True where a parallel region opened here would get one thread.
inline bool one_thread_region() {
  return omp_get_max_threads() == 1 || omp_get_active_level() >= omp_get_max_active_levels();
}

// `#pragma omp parallel for schedule(static) if (parallel)` over body(i).
template <typename Body>
void parallel_for_static(int64_t n, const Body& body, bool parallel = true) {
  if (!parallel || one_thread_region()) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) body(i);
}

// `#pragma omp parallel for schedule(dynamic, 1) if (parallel)` over body(i).
template <typename Body>
void parallel_for_dynamic(int64_t n, const Body& body, bool parallel = true) {
  if (!parallel || one_thread_region()) {
    for (int64_t i = 0; i < n; ++i) body(i);
    return;
  }
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < n; ++i) body(i);
}

// `#pragma omp parallel` running body(threads, t) on each thread t of the team; body(1, 0)
// on the calling thread where the region would have one thread.
template <typename Body>
void parallel_team(const Body& body) {
  if (one_thread_region()) {
    body(int64_t{1}, int64_t{0});
    return;
  }
#pragma omp parallel
  body(static_cast<int64_t>(omp_get_num_threads()), static_cast<int64_t>(omp_get_thread_num()));
}

}  // namespace lb
