// `lengthbench bench train`: training throughput of the decoder (real tokens/s) and model FLOP
// utilisation = model FLOPs/s ÷ oneDNN's fp32 matmul rate on a large square product measured in
// the same run. Default: the copy configuration at batch 128 (lengths 32–64), softmax and
// ASEntmax, both with NAPE.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "harness/bench.h"
#include "harness/check.h"
#include "models/dnnl_util.h"
#include "models/trainer.h"

namespace po = boost::program_options;

namespace lb {

namespace {

// Best-of-5 rate of an n×n×n fp32 product, FLOP/s.
double matmul_peak(int64_t n) {
  std::vector<float> a(n * n, 0.5f), b(n * n, 0.25f), c(n * n);
  matmul(false, false, 1, n, n, n, a.data(), b.data(), c.data(), false);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    matmul(false, false, 1, n, n, n, a.data(), b.data(), c.data(), false);
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * n * n * n / best;
}

// Runs the PyTorch peer with our sizes; its last stdout line is a JSON object with tokens_per_s.
// Softmax runs the peer's softmax, the entmax family its exact 1.5-entmax. Returns null on failure.
nlohmann::json run_peer(const std::string& python, const std::string& script, const ModelConfig& m,
                        const TrainConfig& t, int threads, int64_t steps, int64_t warm) {
  std::ostringstream cmd;
  cmd << "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} '"
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

int bench_train(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()
      ("task", po::value<std::string>()->default_value("copy"), "task")
      ("config", po::value<std::string>(), "JSON config (model sizes, batch); default: the task's preset")
      ("attention", po::value<std::string>()->default_value("softmax,asentmax"), "normalizers, comma-separated")
      ("steps", po::value<int64_t>()->default_value(5), "timed steps per normalizer")
      ("warmup-steps", po::value<int64_t>()->default_value(2), "untimed steps first")
      ("batch", po::value<int64_t>(), "samples per batch (default 128)")
      ("bf16", "bf16 matmul inputs")
      ("threads", po::value<int>()->default_value(2), "threads")
      ("peer", po::value<std::string>(), "also run this PyTorch peer script (../shared/peers/torch_gemma.py) after each of ours, same sizes, and report the ratio")
      ("python", po::value<std::string>()->default_value("/usr/bin/python3"), "interpreter for --peer")
      ("json", "one JSON object instead of a table");
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
  train.bf16 = vm.count("bf16") > 0;
  const int64_t steps = vm["steps"].as<int64_t>(), warm = vm["warmup-steps"].as<int64_t>();
  LB_REQUIRE(steps >= 1, "--steps " << steps << " must be >= 1");
  train.steps = steps + warm;
  train.warmup = 1;

  const double peak = matmul_peak(2048);
  nlohmann::json out = {{"task", train.task},         {"batch", train.batch},
                        {"threads", num_threads()},    {"bf16", train.bf16},
                        {"matmul_peak_gflops", peak / 1e9}, {"runs", nlohmann::json::array()}};
  std::stringstream names(vm["attention"].as<std::string>());
  std::string name;
  while (std::getline(names, name, ',')) {
    ModelConfig mc = base;
    mc.attention = normalizer_from_name(name);
    Trainer trainer(mc, train);
    for (int64_t i = 0; i < warm; ++i) trainer.step();
    int64_t tokens = 0, samples = 0;
    double seconds = 0.0, loss = 0.0;
    for (int64_t i = 0; i < steps; ++i) {
      const StepStats s = trainer.step();
      tokens += s.tokens;
      samples += train.batch;
      seconds += s.seconds;
      loss = s.loss;
    }
    const double mean_len = static_cast<double>(tokens) / samples;
    const double flops = model_train_flops_per_token(trainer.model_config(), mean_len) * tokens;
    const double tok_s = tokens / seconds;
    nlohmann::json peer = nullptr;
    if (vm.count("peer")) {
      peer = run_peer(vm["python"].as<std::string>(), vm["peer"].as<std::string>(),
                      trainer.model_config(), train, num_threads(), steps, warm);
      LB_REQUIRE(!peer.is_null(), "--peer '" << vm["peer"].as<std::string>()
                                             << "' did not print a JSON result");
      peer["ratio"] = tok_s / peer["tokens_per_s"].get<double>();
    }
    out["runs"].push_back({{"peer", peer},{"attention", normalizer_name(mc.attention)},
                           {"position", position_encoding_name(mc.position)},
                           {"tokens_per_s", tok_s},
                           {"step_s", seconds / steps},
                           {"mean_length", mean_len},
                           {"model_gflops", flops / seconds / 1e9},
                           {"mfu", flops / seconds / peak},
                           {"last_loss", loss}});
  }
  if (vm.count("json")) {
    std::cout << out.dump() << "\n";
    return 0;
  }
  std::printf("bench train: %s, batch %lld, %d threads%s; oneDNN fp32 matmul 2048^3: %.1f GFLOP/s\n",
              train.task.c_str(), static_cast<long long>(train.batch), num_threads(),
              train.bf16 ? ", bf16 matmuls" : "", peak / 1e9);
  std::printf("%-12s %-6s %10s %8s %10s %6s %14s %7s\n", "attention", "pos", "tokens/s",
              "step s", "GFLOP/s", "MFU", "peer tokens/s", "ratio");
  for (const auto& r : out["runs"]) {
    std::printf("%-12s %-6s %10.0f %8.3f %10.1f %5.1f%%", r["attention"].get<std::string>().c_str(),
                r["position"].get<std::string>().c_str(), r["tokens_per_s"].get<double>(),
                r["step_s"].get<double>(), r["model_gflops"].get<double>(),
                100 * r["mfu"].get<double>());
    if (!r["peer"].is_null()) {
      std::printf(" %14.0f %6.2fx", r["peer"]["tokens_per_s"].get<double>(),
                  r["peer"]["ratio"].get<double>());
    }
    std::printf("\n");
  }
  return 0;
}

}  // namespace lb
