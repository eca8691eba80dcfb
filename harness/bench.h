// `lengthbench bench TARGET`: one explicit table of benchmark targets (harness/cmd_bench.cpp).
// Benchmarks report ratios measured within one run; absolute times on shared machines are noisy.
#pragma once
#include <vector>

#include "harness/command.h"

namespace lb {

const std::vector<Command>& all_bench_targets();

int bench_tasks(int argc, char** argv);
int bench_train(int argc, char** argv);
int bench_normalizers(int argc, char** argv);
int bench_eval(int argc, char** argv);

}  // namespace lb
