// `lengthbench bench normalizers`: forward and forward+backward time per score of every
// registry normalizer (plus the libm-exp softmax twin and the generic α root-finder) at each row
// length, and the ratio to our softmax measured in the same run on the same rows.
// Rows: N(0, sigma²) scores (default sigma 2, about the spread of trained attention logits),
// enough rows per length for a ~1 MiB working set per buffer (at least 4), one thread. Each
// measurement repeats until --min-time; trials go round-robin over the normalizers, so a burst
// of load on a shared machine hits them alike, and the best of --trials is kept. Times are the
// thread's CPU time (CLOCK_THREAD_CPUTIME_ID), so time spent descheduled is not counted.
// ssmax and asentmax run the softmax and 1.5-entmax row maps (their scaling is the model's), so
// their rows double as a noise check against softmax and entmax.
#include <cstdio>
#include <ctime>
#include <functional>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/rng.h"
#include "harness/bench.h"
#include "harness/format.h"
#include "models/kernels/normalizer.h"
#include "models/kernels/row_kernels.h"

namespace po = boost::program_options;

namespace lb {
namespace {

struct Variant {
  std::string label;
  NormalizerSpec spec;
  bool plain_softmax = false;  // softmax_forward_plain instead of the registry kernel
};

// This thread's CPU time in seconds: on a shared machine, time spent descheduled is not counted.
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

// CPU seconds per call of fn, repeating until min_time has passed.
double time_per_call(const std::function<void()>& fn, double min_time) {
  int64_t calls = 0;
  const double t0 = thread_cpu_seconds();
  double elapsed = 0.0;
  do {
    fn();
    ++calls;
    elapsed = thread_cpu_seconds() - t0;
  } while (elapsed < min_time);
  return elapsed / calls;
}

std::string fixed(double v, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.*f", digits, v);
  return buf;
}

}  // namespace

int bench_normalizers(int argc, char** argv) {
  std::string lengths_text = "64,1024,16384,65536", names_text;
  double sigma = 2.0, min_time = 0.05;
  int trials = 5;
  po::options_description opts("options");
  opts.add_options()
      ("lengths", po::value(&lengths_text), "row lengths (default 64,1024,16384,65536)")
      ("normalizers", po::value(&names_text), "comma-separated registry names (default: all)")
      ("sigma", po::value(&sigma), "scores ~ N(0, sigma^2) (default 2)")
      ("min-time", po::value(&min_time), "seconds per measurement (default 0.05)")
      ("trials", po::value(&trials), "round-robin trials, best kept (default 5)");
  std::string format;
  add_format_options(opts, &format, {"text", "json"});
  po::variables_map vm;
  if (!parse_command_line(argc, argv,
                          "bench normalizers [--lengths 64,1024,16384,65536] [--json]", opts, {},
                          vm)) {
    return 0;
  }
  const bool as_json = chosen_format(vm, format, {"text", "json"}) == "json";
  const auto lengths = parse_int_list(lengths_text, "lengths", 1, int64_t{1} << 22);
  LB_REQUIRE(sigma > 0 && sigma < 1e4, "--sigma " << sigma << " must be in (0, 1e4)");
  LB_REQUIRE(min_time > 0 && min_time < 60, "--min-time " << min_time << " must be in (0, 60)");
  LB_REQUIRE(trials >= 1 && trials <= 100, "--trials " << trials << " must be in [1, 100]");

  std::vector<Variant> variants;
  variants.push_back({"softmax", normalizer_from_name("softmax")});
  variants.push_back({"softmax(libm exp)", normalizer_from_name("softmax"), true});
  std::vector<std::string> names = all_normalizer_names();
  if (!names_text.empty()) {
    names.clear();
    std::string item;
    for (char c : names_text + ",") {
      if (c != ',') {
        item += c;
        continue;
      }
      normalizer_from_name(item);  // validates with "did you mean"
      names.push_back(item);
      item.clear();
    }
  }
  for (const auto& name : names) {
    if (name != "softmax") variants.push_back({name, normalizer_from_name(name)});
    if (name == "entmax") {
      variants.push_back({"entmax(alpha=1.25, root)", normalizer_from_name("entmax", {{"alpha", "1.25"}})});
    }
  }

  nlohmann::json rows_json = nlohmann::json::array();
  if (!as_json) {
    std::printf("scores N(0, %.3g^2), one thread, best of %d trials x %.2fs; CPU ns per score\n", sigma,
                trials, min_time);
    std::printf("%-26s %7s %10s %8s %12s %8s\n", "normalizer", "n", "fwd ns", "x soft", "fwd+bwd ns",
                "x soft");
  }
  for (const int64_t n : lengths) {
    const int64_t rows = std::max<int64_t>(4, (int64_t{1} << 18) / n);
    Rng rng(derive_seed({hash_tag("bench_normalizers"), static_cast<uint64_t>(n)}));
    std::vector<float> z(rows * n), g(rows * n), p(rows * n), dz(rows * n);
    for (auto& v : z) v = static_cast<float>(sigma * rng.normal());
    for (auto& v : g) v = static_cast<float>(rng.normal());
    const size_t nv = variants.size();
    std::vector<double> fwd(nv, 1e30), fb(nv, 1e30);
    for (int t = 0; t < trials; ++t) {
      for (size_t k = 0; k < nv; ++k) {
        const Variant& var = variants[k];
        auto forward = [&] {
          for (int64_t r = 0; r < rows; ++r) {
            if (var.plain_softmax) {
              softmax_forward_plain(z.data() + r * n, n, 1.0f, p.data() + r * n);
            } else {
              normalize_forward(var.spec, z.data() + r * n, n, p.data() + r * n);
            }
          }
        };
        auto both = [&] {
          forward();
          for (int64_t r = 0; r < rows; ++r) {
            normalize_backward(var.spec, z.data() + r * n, p.data() + r * n, g.data() + r * n, n,
                               dz.data() + r * n);
          }
        };
        const double per = 1e9 / static_cast<double>(rows * n);
        fwd[k] = std::min(fwd[k], time_per_call(forward, min_time) * per);
        fb[k] = std::min(fb[k], time_per_call(both, min_time) * per);
      }
    }
    const double soft_fwd = fwd[0], soft_both = fb[0];  // variants[0] is our softmax
    for (size_t k = 0; k < nv; ++k) {
      const Variant& var = variants[k];
      if (as_json) {
        rows_json.push_back({{"normalizer", var.label}, {"spec", to_json(var.spec)}, {"n", n},
                             {"rows", rows}, {"forward_ns_per_score", fwd[k]},
                             {"forward_backward_ns_per_score", fb[k]},
                             {"forward_ratio_to_softmax", fwd[k] / soft_fwd},
                             {"forward_backward_ratio_to_softmax", fb[k] / soft_both}});
      } else {
        std::printf("%-26s %7lld %10s %8s %12s %8s\n", var.label.c_str(),
                    static_cast<long long>(n), fixed(fwd[k], 3).c_str(),
                    fixed(fwd[k] / soft_fwd, 2).c_str(), fixed(fb[k], 3).c_str(),
                    fixed(fb[k] / soft_both, 2).c_str());
      }
    }
  }
  if (as_json) {
    std::cout << nlohmann::json({{"sigma", sigma}, {"threads", 1}, {"trials", trials},
                                 {"clock", "CLOCK_THREAD_CPUTIME_ID"},
                                 {"min_time_s", min_time}, {"results", rows_json}})
                     .dump(2)
              << "\n";
  }
  return 0;
}

}  // namespace lb
