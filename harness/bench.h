// `lengthbench bench TARGET`: one explicit table of benchmark targets (harness/cmd_bench.cpp).
// Benchmarks report ratios measured within one run; absolute times on shared machines are noisy.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "harness/command.h"

namespace lb {

const std::vector<Command>& all_bench_targets();

int bench_tasks(int argc, char** argv);
int bench_train(int argc, char** argv);
int bench_normalizers(int argc, char** argv);
int bench_eval(int argc, char** argv);

// Best-of-5 rate of an n×n×n product on all threads, FLOP/s (fp32, or bf16 after
// set_matmul_bf16(true)); bench_train.cpp.
double matmul_peak(int64_t n);

// The binary and the machine of a benchmark's JSON, as a stored run records them (results/db.h
// Provenance: commit, dirty, version, compiler, oneDNN, ISA, host with the CPU's family, model and
// stepping); bench_train.cpp. Numbers from two calls of a lent machine are comparable only on
// the same CPU model.
nlohmann::json bench_provenance();

}  // namespace lb
