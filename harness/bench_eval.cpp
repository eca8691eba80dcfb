// `lengthbench bench eval`: long-context inference of the MQMTAR model (4 layers, 512 hidden,
// 16 heads × 32, FFN 1024; random weights — speed does not depend on training) with softmax and
// ASEntmax: per length, prefill and decode seconds of one sample, generated tokens/s, peak RSS,
// and the ratio of decode time to reading the KV cache once per generated token at the memory
// bandwidth measured in the same run (a streaming read over a buffer much larger than the caches).
// Decoding generates the MQMTAR target length (12 tokens + eos) regardless of what is predicted.
//
// Prefill throughput (issue 14): the prefill's FLOPs (linear layers plus causal attention counted
// dense, 4·D per query-key pair and head) per second, as a fraction of the fp32 and bf16 oneDNN
// matmul rates (2048³, all threads) measured at the start of the same run. `--prefill
// blocked,plain` runs the blocked prefill (models/blocked_attention.h) and its plain twin
// (the former path) in one run; plain runs last, since its per-thread scratch stays resident.
// Protocol: the wall time of the paper's MQMTAR evaluation (1,000 test samples at 64×, 256× and
// 1024× the training length 64: 4,096, 16,384, 65,536 tokens), one sample after another on all
// threads: seconds per sample at a measured length, and at another length the seconds of the
// nearest measured length scaled by the ratio of prefill FLOPs (an extrapolation that assumes
// the same FLOP rate).
#include <omp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "core/check.h"
#include "harness/bench.h"
#include "harness/format.h"
#include "models/dnnl_util.h"
#include "models/inference.h"
#include "tasks/registry.h"
#include "tasks/split.h"

namespace po = boost::program_options;

namespace lb {

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Best-of-5 streaming read rate over `bytes`, bytes/s, on all threads.
double read_bandwidth(int64_t bytes) {
  const int64_t n = bytes / 4;
  std::vector<float> buf(n);
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) buf[i] = static_cast<float>(i & 255);
  double best = 1e30, sink = 0.0;
  for (int rep = 0; rep < 5; ++rep) {
    const double t0 = now_s();
    // 16 independent lanes per thread, so the loop is bound by memory, not by add latency.
    float total = 0.f;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (int64_t b = 0; b < n / 4096; ++b) {
      float lanes[16] = {};
      for (int64_t i = b * 4096; i < (b + 1) * 4096; i += 16) {
#pragma omp simd
        for (int k = 0; k < 16; ++k) lanes[k] += buf[i + k];
      }
      for (int k = 0; k < 16; ++k) total += lanes[k];
    }
    best = std::min(best, now_s() - t0);
    sink += total;
  }
  if (sink == -1.0) std::printf(" ");  // keep the sum alive
  return static_cast<double>(n) * 4.0 / best;
}

// Resident memory of this process now (VmRSS), bytes.
int64_t current_rss() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

// Peak RSS while it lives: a thread samples VmRSS every 5 ms. (VmHWM cannot be reset in every
// container, and one process measures several runs.)
class RssSampler {
 public:
  RssSampler()
      : peak_(current_rss()), thread_([this] {
          while (!stop_) {
            peak_ = std::max<int64_t>(peak_, current_rss());
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          }
        }) {}
  int64_t stop() {
    stop_ = true;
    thread_.join();
    return std::max<int64_t>(peak_, current_rss());
  }

 private:
  std::atomic<int64_t> peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

int bench_eval(int argc, char** argv) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  po::options_description opts("options");
  opts.add_options()("lengths", po::value<std::string>()->default_value("4096,16384,65536"),
                     "MQMTAR lengths L")(
      "attention", po::value<std::string>()->default_value("softmax,asentmax"),
      "normalizers, comma-separated")("kv", po::value<std::string>()->default_value("bf16"),
                                      "KV cache storage: bf16 or f32")(
      "new-tokens", po::value<int64_t>()->default_value(13), "tokens decoded per sample")(
      "threads", po::value<int>()->default_value(cores), "threads")(
      "prefill", po::value<std::string>()->default_value("blocked"),
      "prefill paths, comma-separated: blocked, plain");
  std::string format;
  add_format_options(opts, &format, {"text", "json"});
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "bench eval [options]", opts, {}, vm)) return 0;
  const bool as_json = chosen_format(vm, format, {"text", "json"}) == "json";
  set_num_threads(vm["threads"].as<int>());
  const auto lengths = parse_int_list(vm["lengths"].as<std::string>(), "lengths", 64, 1 << 20);
  const std::string kv = vm["kv"].as<std::string>();
  LB_REQUIRE(kv == "bf16" || kv == "f32", "--kv '" << kv << "' is not one of: bf16, f32");
  const int64_t new_tokens = vm["new-tokens"].as<int64_t>();
  LB_REQUIRE(new_tokens >= 1, "--new-tokens " << new_tokens << " must be >= 1");

  const TaskDef& task = find_task("mqmtar");
  const TaskParams params = make_params(task, {});
  ModelConfig base = model_preset("mqmtar");
  const Vocab vocab = task_vocab(task, params);
  base.vocab_size = vocab.size, base.num_labels = std::max(vocab.num_labels, vocab.size);

  std::vector<std::string> paths;
  {
    std::stringstream ps(vm["prefill"].as<std::string>());
    for (std::string p; std::getline(ps, p, ',');) {
      LB_REQUIRE(p == "blocked" || p == "plain",
                 "--prefill '" << p << "' is not one of: blocked, plain");
      paths.push_back(p);
    }
    std::stable_sort(paths.begin(), paths.end(), [](const std::string& a, const std::string& b) {
      return a == "blocked" && b != "blocked";
    });
  }
  const double bw = read_bandwidth(int64_t(512) << 20);
  set_matmul_bf16(false);
  const double mm_f32 = matmul_peak(2048);
  set_matmul_bf16(true);
  const double mm_bf16 = matmul_peak(2048);
  set_matmul_bf16(false);
  nlohmann::json out = {{"model", "mqmtar 4x512, 16 heads x 32, ffn 1024"},
                        {"threads", num_threads()},
                        {"kv", kv},
                        {"new_tokens", new_tokens},
                        {"read_bandwidth_gbs", bw / 1e9},
                        {"matmul_f32_gflops", mm_f32 / 1e9},
                        {"matmul_bf16_gflops", mm_bf16 / 1e9},
                        {"runs", nlohmann::json::array()},
                        {"protocol", nlohmann::json::array()}};
  for (const std::string& path : paths) {
    std::stringstream names(vm["attention"].as<std::string>());
    std::string name;
    while (std::getline(names, name, ',')) {
      ModelConfig mc = base;
      mc.attention = normalizer_from_name(name);
      Transformer model(mc);
      model.init(1);
      InferenceOptions io;
      io.kv_bf16 = kv == "bf16";
      io.blocked = path == "blocked";
      InferenceEngine engine(model, io);
      {  // warm-up: oneDNN generates its kernels on first use
        std::vector<int32_t> ids(80, 3);
        std::vector<float> logits;
        InferenceSession warm(engine, 96);
        warm.append(ids.data(), 64, logits);
        for (int64_t t = 64; t < 80; ++t) warm.append(ids.data() + t, 1, logits);
      }
      std::vector<std::pair<double, double>> per_sample;  // (L, seconds per sample)
      for (int64_t L : lengths) {
        const Sample s = Split(task, params, 0, SplitKind::kTest, L).get(0);
        const int64_t P = s.first_target_pos + 1;
        engine.reserve_positions(P + new_tokens);
        RssSampler rss_sampler;
        const double t0 = now_s();
        std::vector<float> logits;
        InferenceSession session(engine, P + new_tokens);
        session.append(s.input.data(), P, logits);
        const double t1 = now_s();
        double bound = 0.0;
        for (int64_t t = 0; t < new_tokens; ++t) {
          const int32_t next =
              static_cast<int32_t>(argmax(logits.data(), mc.num_labels) % mc.vocab_size);
          // The step reads every cached key and value once, its own included.
          bound +=
              static_cast<double>(engine.kv_bytes_per_position()) * (session.length() + 1) / bw;
          session.append(&next, 1, logits);
        }
        const double t2 = now_s();
        const int64_t rss = rss_sampler.stop();
        const double kv_bytes =
            static_cast<double>(engine.kv_bytes_per_position()) * session.length();
        const double Pd = static_cast<double>(P);
        const double C = mc.hidden, HD = mc.heads * mc.head_dim, F = mc.ffn;
        const double prefill_flops =
            mc.layers * (2.0 * Pd * (4.0 * C * HD + 3.0 * C * F) + 2.0 * HD * Pd * (Pd + 1.0));
        const double prefill_rate = prefill_flops / (t1 - t0);
        per_sample.emplace_back(static_cast<double>(L), t2 - t0);
        out["runs"].push_back({{"attention", name},
                               {"prefill", path},
                               {"length", L},
                               {"prefill_gflops", prefill_rate / 1e9},
                               {"prefill_over_matmul_f32", prefill_rate / mm_f32},
                               {"prefill_over_matmul_bf16", prefill_rate / mm_bf16},
                               {"positions", session.length()},
                               {"prefill_s", t1 - t0},
                               {"decode_s", t2 - t1},
                               {"seconds_per_sample", t2 - t0},
                               {"generated_tokens_per_s", new_tokens / (t2 - t1)},
                               {"decode_ms_per_token", 1e3 * (t2 - t1) / new_tokens},
                               {"bound_ms_per_token", 1e3 * bound / new_tokens},
                               {"decode_over_bound", (t2 - t1) / bound},
                               {"kv_cache_mib", kv_bytes / (1 << 20)},
                               {"peak_rss_mib", static_cast<double>(rss) / (1 << 20)}});
        if (!as_json) {
          const auto& r = out["runs"].back();
          if (out["runs"].size() == 1) {
            std::printf(
                "bench eval: MQMTAR model, %d threads, %s KV cache, %lld decoded tokens; "
                "streaming read %.1f GB/s; matmul %.1f GFLOP/s fp32, %.1f bf16\n",
                num_threads(), kv.c_str(), static_cast<long long>(new_tokens), bw / 1e9,
                mm_f32 / 1e9, mm_bf16 / 1e9);
            std::printf("%-10s %-8s %7s %10s %7s %7s %9s %10s %8s %10s %10s %7s %8s %8s\n",
                        "attention", "prefill", "L", "prefill s", "/f32mm", "/bf16mm", "decode s",
                        "s/sample", "tok/s", "ms/tok", "bound ms", "ratio", "KV MiB", "RSS MiB");
          }
          std::printf(
              "%-10s %-8s %7lld %10.2f %7.3f %7.3f %9.3f %10.2f %8.1f %10.2f %10.2f %7.2f "
              "%8.0f %8.0f\n",
              name.c_str(), path.c_str(), static_cast<long long>(L), r["prefill_s"].get<double>(),
              r["prefill_over_matmul_f32"].get<double>(),
              r["prefill_over_matmul_bf16"].get<double>(), r["decode_s"].get<double>(),
              r["seconds_per_sample"].get<double>(), r["generated_tokens_per_s"].get<double>(),
              r["decode_ms_per_token"].get<double>(), r["bound_ms_per_token"].get<double>(),
              r["decode_over_bound"].get<double>(), r["kv_cache_mib"].get<double>(),
              r["peak_rss_mib"].get<double>());
          std::fflush(stdout);
        }
      }
      // Protocol wall time: a measured length counts as measured; another is scaled from the
      // measured length nearest to it (log scale) by the ratio of prefill FLOPs.
      auto flops_at = [&](double L) {
        const double C = mc.hidden, HD = mc.heads * mc.head_dim, F = mc.ffn;
        return mc.layers * (2.0 * L * (4.0 * C * HD + 3.0 * C * F) + 2.0 * HD * L * (L + 1.0));
      };
      auto seconds_at = [&](double L) {
        std::pair<double, double> near = per_sample.front();
        for (const auto& m : per_sample) {
          if (std::fabs(std::log(m.first / L)) < std::fabs(std::log(near.first / L))) near = m;
        }
        return near.second * flops_at(L) / flops_at(near.first);
      };
      double protocol_s = 0.0;
      for (double L : {4096.0, 16384.0, 65536.0}) protocol_s += 1000.0 * seconds_at(L);
      out["protocol"].push_back(
          {{"attention", name}, {"prefill", path}, {"hours", protocol_s / 3600.0}});
      if (!as_json) {
        std::printf(
            "%-10s %-8s protocol (1,000 samples at 4,096, 16,384, 65,536; extrapolated): %.2f h\n",
            name.c_str(), path.c_str(), protocol_s / 3600.0);
      }
    }
  }
  if (as_json) std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace lb
