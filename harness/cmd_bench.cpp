#include <iostream>
#include <string>

#include "core/check.h"
#include "harness/bench.h"

namespace lb {

const std::vector<Command>& all_bench_targets() {
  static const std::vector<Command> kTargets = {
      {"tasks", "sample generation throughput per task at short and long lengths", bench_tasks},
      {"train", "decoder training tokens/s and MFU (copy config, softmax and asentmax)", bench_train},
      {"normalizers", "forward and forward+backward ns per score of every normalizer, ratio to softmax",
       bench_normalizers},
      {"eval", "long-context inference: prefill/decode s, tokens/s, peak RSS, decode vs KV-read bound",
       bench_eval},
  };
  return kTargets;
}

int cmd_bench(int argc, char** argv) {
  std::vector<std::string> names;
  for (const auto& t : all_bench_targets()) names.push_back(t.name);
  if (argc < 2 || argv[1] == std::string("--help") || argv[1] == std::string("-h")) {
    std::cout << "usage: lengthbench bench TARGET [options]   (TARGET --help for each)\n\n"
                 "targets:\n";
    for (const auto& t : all_bench_targets()) {
      const std::string name = t.name;
      std::cout << "  " << name << std::string(name.size() < 13 ? 13 - name.size() : 1, ' ')
                << t.summary << "\n";
    }
    return argc < 2 ? 2 : 0;
  }
  for (const auto& t : all_bench_targets()) {
    if (argv[1] == std::string(t.name)) return t.run(argc - 1, argv + 1);
  }
  throw UsageError(unknown_name_message("bench target", argv[1], names));
}

}  // namespace lb
