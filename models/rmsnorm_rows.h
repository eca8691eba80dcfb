// RMSNorm's kernels (ops.h's rmsnorm_forward, rmsnorm_backward, rmsnorm_row), with rows as lanes.
// Each row's sums (Σ x² in the forward, Σ dy·(1 + w)·x̂ in the backward) are chains of C adds in
// column order; one row at a time they are latency bound. The lane kernels (AVX-512F, picked at
// run time) take 16 rows at once, row r in lane r, and add column c of the 16 rows as one vector
// (16×16 tiles transposed in registers): every lane does its row's operations in its row's order,
// so the results are the plain twins' bits, not just close to them. Both are compiled without
// FMA contraction (CMakeLists.txt), so the bits are those of a portable x86-64 build everywhere.
// The plain twins are the code before the lanes, kept as the fallback and for the tests.
// Dimensions: R rows, C hidden. Row-major. Shapes at the declarations.
#pragma once
#include <cstdint>

namespace lb {

// Rows per lane block.
constexpr int64_t kRmsLanes = 16;

// Whether the lane kernels run: the CPU has AVX-512F and force_portable_kernels
// (models/kernels/row_kernels.h, a test hook) is off.
bool rmsnorm_lanes_enabled();

// The forward over R rows on the calling thread (no OpenMP): y = rmsnorm_row per row and
// rstd[r] its return value. x, y (R, C); w (C); rstd (R), or null where not wanted.
// The lane version takes whole blocks of kRmsLanes rows and the rest with rmsnorm_row; call it
// only where rmsnorm_lanes_enabled(). rmsnorm_rows_forward picks one.
void rmsnorm_rows_forward(const float* x, const float* w, float* y, float* rstd, int64_t R,
                          int64_t C);
void rmsnorm_rows_forward_lanes(const float* x, const float* w, float* y, float* rstd, int64_t R,
                                int64_t C);
void rmsnorm_rows_forward_plain(const float* x, const float* w, float* y, float* rstd, int64_t R,
                                int64_t C);

// ops.h's rmsnorm_backward (OpenMP threads inside): dx (R, C) =, dw (C) +=, from x, dy (R, C),
// w (C) and the forward's rstd (R). dw's sum runs over a fixed partition of the rows into 64
// chunks (rows in order within a chunk, then the chunks in order), so neither version depends on
// the thread count. The lane version (call only where rmsnorm_lanes_enabled()) gives each thread
// a run of whole chunks and goes through its rows in blocks of kRmsLanes: a block's dot products
// as lanes, then its dx and dw partials. Scratch: a buffer of the calling thread, reused.
void rmsnorm_backward_lanes(const float* x, const float* w, const float* rstd, const float* dy,
                            float* dx, float* dw, int64_t R, int64_t C);
void rmsnorm_backward_plain(const float* x, const float* w, const float* rstd, const float* dy,
                            float* dx, float* dw, int64_t R, int64_t C);

}  // namespace lb
