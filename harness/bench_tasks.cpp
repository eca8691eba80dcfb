// `lengthbench bench tasks`: how fast each task generates evaluation splits.
// Per task and length: raw generation (src/trg) and full encoding (model sequence, loss mask,
// relevant positions), in tokens per second on `--threads` threads, and the projected time of a
// 1,000-sample split. Repeats until at least --min-time seconds have passed.
#include <atomic>
#include <chrono>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/check.h"
#include "harness/bench.h"
#include "harness/format.h"
#include "tasks/registry.h"
#include "tasks/split.h"

namespace po = boost::program_options;

namespace lb {

namespace {

struct Rate {
  double tokens_per_s;
  int64_t samples;
};

// Generates samples 0, 1, ... on `threads` threads until min_time has passed.
template <typename Fn>
Rate measure(int threads, double min_time, int64_t batch, Fn&& one_sample) {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  int64_t done = 0, tokens = 0;
  double elapsed = 0;
  while (elapsed < min_time) {
    std::atomic<int64_t> next{done}, toks{0};
    const int64_t end = done + batch;
    auto work = [&] {
      int64_t local = 0;
      for (int64_t i = next++; i < end; i = next++) local += one_sample(i);
      toks += local;
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < threads; ++t) pool.emplace_back(work);
    work();
    for (auto& t : pool) t.join();
    done = end;
    tokens += toks;
    elapsed = std::chrono::duration<double>(clock::now() - t0).count();
  }
  return {tokens / elapsed, done};
}

}  // namespace

int bench_tasks(int argc, char** argv) {
  std::string lengths_text = "64,65536", tasks_text;
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  double min_time = 0.5;
  po::options_description opts("options");
  opts.add_options()
      ("lengths", po::value(&lengths_text), "nominal lengths (default 64,65536)")
      ("tasks", po::value(&tasks_text), "comma-separated tasks (default: all)")
      ("threads", po::value(&threads), "threads (default: all cores)")
      ("min-time", po::value(&min_time), "seconds per measurement (default 0.5)");
  std::string format;
  add_format_options(opts, &format, {"text", "json"});
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "bench tasks [--lengths 64,65536] [--threads N] [--json]",
                          opts, {}, vm)) {
    return 0;
  }
  const bool as_json = chosen_format(vm, format, {"text", "json"}) == "json";
  const auto lengths = parse_int_list(lengths_text, "lengths", 1, int64_t{1} << 24);
  LB_REQUIRE(threads >= 1 && threads <= 1024, "--threads " << threads << " must be in [1, 1024]");
  LB_REQUIRE(min_time > 0 && min_time < 600, "--min-time " << min_time << " must be in (0, 600)");
  std::vector<const TaskDef*> tasks;
  if (tasks_text.empty()) {
    for (const auto& t : all_tasks()) tasks.push_back(&t);
  } else {
    std::stringstream ss(tasks_text);
    std::string name;
    while (std::getline(ss, name, ',')) tasks.push_back(&find_task(name));
  }
  const bool json = as_json;
  nlohmann::json rows = nlohmann::json::array();
  if (!json) {
    std::cout << "threads " << threads << "; tokens = src + trg tokens\n"
              << std::left << std::setw(12) << "task" << std::right << std::setw(8) << "L"
              << std::setw(16) << "raw tok/s" << std::setw(16) << "encoded tok/s"
              << std::setw(18) << "1000 samples (s)" << "\n";
  }
  for (const TaskDef* task : tasks) {
    const TaskParams p = make_params(*task, {});
    for (int64_t L : lengths) {
      const Split split(*task, p, 1, SplitKind::kTest, L);
      const int64_t batch = std::max<int64_t>(threads, 4 * threads * 65536 / L);
      const Rate raw = measure(threads, min_time, batch, [&](int64_t i) {
        const RawSample s = split.raw(i);
        return static_cast<int64_t>(s.src.size() + s.trg.size());
      });
      const Rate enc = measure(threads, min_time, batch, [&](int64_t i) {
        const Sample s = split.get(i);
        return static_cast<int64_t>(s.raw.src.size() + s.raw.trg.size());
      });
      const RawSample one = split.raw(0);
      const double split_s = 1000.0 * (one.src.size() + one.trg.size()) / enc.tokens_per_s;
      if (json) {
        rows.push_back({{"task", task->name}, {"length", L}, {"threads", threads},
                        {"raw_tokens_per_s", raw.tokens_per_s},
                        {"encoded_tokens_per_s", enc.tokens_per_s},
                        {"seconds_per_1000_samples", split_s}});
      } else {
        std::cout << std::left << std::setw(12) << task->name << std::right << std::setw(8) << L
                  << std::setw(16) << std::setprecision(3) << std::scientific << raw.tokens_per_s
                  << std::setw(16) << enc.tokens_per_s << std::setw(18) << std::fixed
                  << std::setprecision(3) << split_s << "\n";
      }
    }
  }
  if (json) std::cout << rows.dump(2) << "\n";
  return 0;
}

}  // namespace lb
