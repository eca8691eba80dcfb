// `lengthbench bench train`: training throughput of the decoder (real tokens/s) and model FLOP
// utilisation = model FLOPs/s ÷ oneDNN's fp32 matmul rate on a large square product measured in
// the same run (at the start of every round; the best is used). Default: the copy configuration at
// batch 128 (lengths 32–64), softmax and ASEntmax, both with NAPE. Configurations (normalizer ×
// precision) are interleaved over rounds and reported as medians, with ratios paired within a
// round, so a shared machine's drifting load biases no configuration.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "harness/bench.h"
#include "harness/check.h"
#include "models/dnnl_util.h"
#include "models/trainer.h"

namespace po = boost::program_options;

namespace lb {

// Best-of-5 rate of an n×n×n fp32 product, FLOP/s.
double matmul_peak(int64_t n) {
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  matmul(false, false, 1, n, n, n, a.data(), b.data(), c.data(), false);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    matmul(false, false, 1, n, n, n, a.data(), b.data(), c.data(), false);
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * n * n / best;
}

namespace {

// Runs the PyTorch peer with our sizes; its last stdout line is a JSON object with tokens_per_s.
// Softmax runs the peer's softmax, the entmax family its exact 1.5-entmax. Returns null on failure.
nlohmann::json run_peer(const std::string& python, const std::string& script, const ModelConfig& m,
                        const TrainConfig& t, int threads, int64_t steps, int64_t warm) {
  std::ostringstream cmd;
  cmd << "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/"
         "openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} '"
      << python << "' '" << script << "' train --threads " << threads << " --layers " << m.layers
      << " --hidden " << m.hidden << " --heads " << m.heads << " --head-dim " << m.head_dim
      << " --ffn " << m.ffn << " --batch " << t.batch << " --steps " << steps << " --warmup "
      << warm << " --attn " << (is_entmax_family(m.attention.kind) ? "entmax15" : "softmax")
      << (t.bf16 ? " --bf16" : "") << " 2>/dev/null";
  FILE* f = popen(cmd.str().c_str(), "r");
  if (!f) return nullptr;
  std::string out, last;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, f)) out += buf;
  pclose(f);
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) last = line;
  }
  try {
    auto j = nlohmann::json::parse(last);
    return {{"attn", is_entmax_family(m.attention.kind) ? "entmax15" : "softmax"},
            {"torch", j.value("torch", "")},
            {"tokens_per_s", j.at("tokens_per_s")}};
  } catch (const nlohmann::json::exception&) {
    return nullptr;
  }
}

}  // namespace

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// One benchmarked configuration (a normalizer at one precision) and its per-round measurements.
struct BenchRow {
  ModelConfig model;
  TrainConfig train;
  std::unique_ptr<Trainer> trainer;
  std::vector<double> tok_s, step_s, model_flops_s, vs_first, peer_tok_s, peer_ratio;  // per round
  double mean_len = 0.0, last_loss = 0.0;
};

}  // namespace

int bench_train(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()("task", po::value<std::string>()->default_value("copy"), "task")(
      "config", po::value<std::string>(),
      "JSON config (model sizes, batch); default: the task's preset")(
      "attention", po::value<std::string>()->default_value("softmax,asentmax"),
      "normalizers, comma-separated")("precision", po::value<std::string>()->default_value("fp32"),
                                      "matmul precisions, comma-separated: fp32, bf16")(
      "steps", po::value<int64_t>()->default_value(5), "timed steps per configuration and round")(
      "warmup-steps", po::value<int64_t>()->default_value(2), "untimed steps first")(
      "rounds", po::value<int64_t>()->default_value(3),
      "rounds; each runs every configuration in turn (medians and paired ratios over rounds)")(
      "batch", po::value<int64_t>(), "samples per batch (default 128)")(
      "bf16", "same as --precision bf16")("threads", po::value<int>()->default_value(2), "threads")(
      "peer", po::value<std::string>(),
      "also run this PyTorch peer script (../shared/peers/torch_gemma.py) after each of ours, same "
      "sizes, and report the ratio")(
      "python", po::value<std::string>()->default_value("/usr/bin/python3"),
      "interpreter for --peer")("json", "one JSON object instead of a table");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "bench train [options]", opts, {}, vm)) return 0;
  set_num_threads(vm["threads"].as<int>());
  ModelConfig base;
  TrainConfig train;
  train.task = vm["task"].as<std::string>();
  train.batch = 128;
  if (vm.count("config")) {
    load_config_file(vm["config"].as<std::string>(), base, train);
  } else {
    for (const auto& p : model_preset_names()) {
      if (p == train.task) base = model_preset(p);
    }
  }
  if (vm.count("batch")) train.batch = vm["batch"].as<int64_t>();
  const int64_t steps = vm["steps"].as<int64_t>(), warm = vm["warmup-steps"].as<int64_t>();
  const int64_t rounds = vm["rounds"].as<int64_t>();
  LB_REQUIRE(steps >= 1, "--steps " << steps << " must be >= 1");
  LB_REQUIRE(warm >= 0, "--warmup-steps " << warm << " must be >= 0");
  LB_REQUIRE(rounds >= 1, "--rounds " << rounds << " must be >= 1");
  if (vm.count("peer")) {
    // The peer generates its own copy batches (lengths 32–64, 32 data ids), like our defaults.
    const bool copy_defaults =
        train.task == "copy" &&
        std::all_of(train.task_params.begin(), train.task_params.end(), [](const auto& kv) {
          return (kv.first == "seq_len" && kv.second == "48") ||
                 (kv.first == "vary_len" && kv.second == "16") ||
                 (kv.first == "vocab" && kv.second == "32");
        });
    std::string given = "task '" + train.task + "'";
    for (const auto& [k, v] : train.task_params) given += " " + k + "=" + v;
    LB_REQUIRE(copy_defaults,
               "--peer compares on the peer's copy batches (lengths 32-64, 32 data "
               "ids): use --task copy with its default parameters, not "
                   << given);
  }
  train.steps = warm + rounds * steps;
  train.warmup = 1;

  std::vector<bool> precisions;  // bf16 or not
  {
    std::stringstream list(vm.count("bf16") ? std::string("bf16")
                                            : vm["precision"].as<std::string>());
    for (std::string p; std::getline(list, p, ',');) {
      LB_REQUIRE(p == "fp32" || p == "bf16", "--precision '" << p << "': accepted fp32, bf16");
      precisions.push_back(p == "bf16");
    }
  }
  std::vector<BenchRow> rows;
  {
    std::stringstream names(vm["attention"].as<std::string>());
    for (std::string name; std::getline(names, name, ',');) {
      for (bool bf16 : precisions) {
        BenchRow r;
        r.model = base;
        r.model.attention = normalizer_from_name(name);
        r.train = train;
        r.train.bf16 = bf16;
        rows.push_back(std::move(r));
      }
    }
  }
  for (auto& r : rows) {
    r.trainer = std::make_unique<Trainer>(r.model, r.train);
    for (int64_t i = 0; i < warm; ++i) r.trainer->step();
  }

  // Rounds run every configuration in turn, so load that drifts on a shared machine touches all
  // of them alike. Each round starts by measuring the matmul rates; MFU divides by the best rate
  // seen over the run (a rate measured during a burst of load would inflate a paired MFU).
  double peak = 0.0, peak_bf16 = 0.0;
  const bool any_bf16 = std::find(precisions.begin(), precisions.end(), true) != precisions.end();
  for (int64_t round = 0; round < rounds; ++round) {
    set_matmul_bf16(false);
    const double round_peak = matmul_peak(2048);
    double round_peak_bf16 = 0.0;
    if (any_bf16) {
      set_matmul_bf16(true);
      round_peak_bf16 = matmul_peak(2048);
      set_matmul_bf16(false);
    }
    peak = std::max(peak, round_peak);
    peak_bf16 = std::max(peak_bf16, round_peak_bf16);
    for (auto& r : rows) {
      int64_t tokens = 0;
      double seconds = 0.0;
      for (int64_t i = 0; i < steps; ++i) {
        const StepStats s = r.trainer->step();
        tokens += s.tokens;
        seconds += s.seconds;
        r.last_loss = s.loss;
      }
      r.mean_len = static_cast<double>(tokens) / (steps * r.train.batch);
      r.tok_s.push_back(tokens / seconds);
      r.step_s.push_back(seconds / steps);
      r.model_flops_s.push_back(model_train_flops_per_token(r.trainer->model_config(), r.mean_len) *
                                tokens / seconds);
      r.vs_first.push_back(r.step_s.back() / rows.front().step_s.back());
      if (vm.count("peer")) {
        nlohmann::json peer =
            run_peer(vm["python"].as<std::string>(), vm["peer"].as<std::string>(),
                     r.trainer->model_config(), r.train, num_threads(), steps, warm);
        LB_REQUIRE(!peer.is_null(),
                   "--peer '" << vm["peer"].as<std::string>() << "' did not print a JSON result");
        r.peer_tok_s.push_back(peer["tokens_per_s"].get<double>());
        r.peer_ratio.push_back(r.tok_s.back() / r.peer_tok_s.back());
      }
    }
  }

  nlohmann::json out = {{"task", train.task},
                        {"batch", train.batch},
                        {"threads", num_threads()},
                        {"rounds", rounds},
                        {"steps_per_round", steps},
                        {"matmul_peak_gflops", peak / 1e9},
                        {"runs", nlohmann::json::array()}};
  if (any_bf16) out["matmul_peak_bf16_gflops"] = peak_bf16 / 1e9;
  for (const auto& r : rows) {
    const double flops_s = median(r.model_flops_s);
    nlohmann::json j = {{"attention", normalizer_name(r.model.attention)},
                        {"position", position_encoding_name(r.model.position)},
                        {"precision", r.train.bf16 ? "bf16" : "fp32"},
                        {"tokens_per_s", median(r.tok_s)},
                        {"tokens_per_s_rounds", r.tok_s},
                        {"step_s", median(r.step_s)},
                        {"step_vs_first", median(r.vs_first)},
                        {"mean_length", r.mean_len},
                        {"model_gflops", flops_s / 1e9},
                        {"mfu", flops_s / peak},
                        {"last_loss", r.last_loss},
                        {"peer", nullptr}};
    if (r.train.bf16) j["mfu_bf16_peak"] = flops_s / peak_bf16;
    if (!r.peer_tok_s.empty()) {
      j["peer"] = {{"attn", is_entmax_family(r.model.attention.kind) ? "entmax15" : "softmax"},
                   {"tokens_per_s", median(r.peer_tok_s)},
                   {"tokens_per_s_rounds", r.peer_tok_s},
                   {"ratio", median(r.peer_ratio)}};
    }
    out["runs"].push_back(j);
  }
  if (vm.count("json")) {
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::printf(
      "bench train: %s, batch %lld, %d threads, median of %lld rounds x %lld steps; "
      "oneDNN 2048^3 matmul: fp32 %.1f GFLOP/s",
      train.task.c_str(), static_cast<long long>(train.batch), num_threads(),
      static_cast<long long>(rounds), static_cast<long long>(steps), peak / 1e9);
  if (any_bf16) std::printf(", bf16 %.1f GFLOP/s", peak_bf16 / 1e9);
  std::printf(
      "\nMFU: model FLOP/s over the best fp32 rate of the run. vs first: step time over "
      "the first row's, "
      "paired within each round. ratio: ours over the peer's tokens/s, paired.\n");
  std::printf("%-12s %-6s %-5s %10s %8s %8s %10s %6s %14s %7s\n", "attention", "pos", "prec",
              "tokens/s", "step s", "vs first", "GFLOP/s", "MFU", "peer tokens/s", "ratio");
  for (const auto& r : out["runs"]) {
    std::printf("%-12s %-6s %-5s %10.0f %8.3f %7.2fx %10.1f %5.1f%%",
                r["attention"].get<std::string>().c_str(), r["position"].get<std::string>().c_str(),
                r["precision"].get<std::string>().c_str(), r["tokens_per_s"].get<double>(),
                r["step_s"].get<double>(), r["step_vs_first"].get<double>(),
                r["model_gflops"].get<double>(), 100 * r["mfu"].get<double>());
    if (!r["peer"].is_null()) {
      std::printf(" %14.0f %6.2fx", r["peer"]["tokens_per_s"].get<double>(),
                  r["peer"]["ratio"].get<double>());
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace lb
