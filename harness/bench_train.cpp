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
#include <tuple>

#include "core/check.h"
#include "harness/bench.h"
#include "harness/format.h"
#include "harness/overrides.h"
#include "harness/trainer.h"
#include "models/dnnl_util.h"
#include "models/kernels/fused_attention.h"
#include "results/db.h"

namespace po = boost::program_options;

namespace lb {

nlohmann::json bench_provenance() {
  const Provenance p = Provenance::current(num_threads());
  return {{"git_commit", p.git_commit},
          {"git_dirty", p.git_dirty},
          {"lengthbench_version", p.lengthbench_version},
          {"compiler", p.compiler},
          {"onednn_version", p.onednn_version},
          {"onednn_isa", p.onednn_isa},
          {"host", p.host}};
}

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
  cmd << "'" << python << "' '" << script << "' train --threads " << threads << " --layers "
      << m.layers << " --hidden " << m.hidden << " --heads " << m.heads << " --head-dim "
      << m.head_dim << " --ffn " << m.ffn << " --batch " << t.batch << " --steps " << steps
      << " --warmup " << warm << " --attn "
      << (is_entmax_family(m.attention.kind) ? "entmax15" : "softmax") << (t.bf16 ? " --bf16" : "")
      << " 2>/dev/null";
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

// The per-round measurements of one configuration at one thread count.
struct Measure {
  std::vector<double> tok_s, step_s, model_flops_s, vs_first, peer_tok_s, peer_ratio;
  double mean_len = 0.0, last_loss = 0.0;
};

// One benchmarked configuration (a model size, a normalizer, a precision, an attention kernel),
// measured at every thread count (`at`, one per thread count).
struct BenchRow {
  std::string model_name;
  ModelConfig model;
  TrainConfig train;
  bool fused = true;
  std::unique_ptr<Trainer> trainer;
  std::vector<Measure> at;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream list(s);
  for (std::string item; std::getline(list, item, ',');) out.push_back(item);
  return out;
}

// The small-model regime of the scaled reproduction (harness/suites/small16.json): 2 layers of
// width 64 (batch 32) or 128 (batch 64), heads of 16, copy at lengths 8–24 (16 ids).
bool small_model(const std::string& name, ModelConfig& m, TrainConfig& t) {
  if (name != "small" && name != "small128") return false;
  const bool wide = name == "small128";
  m.layers = 2, m.hidden = wide ? 128 : 64, m.heads = wide ? 8 : 4, m.head_dim = 16;
  m.ffn = 2 * m.hidden;
  t.task = "copy";
  t.task_params = {{"seq_len", "16"}, {"vary_len", "8"}, {"vocab", "16"}};
  t.batch = wide ? 64 : 32;
  return true;
}

}  // namespace

int bench_train(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()("task", po::value<std::string>()->default_value("copy"), "task")(
      "config", po::value<std::string>(),
      "JSON config (model sizes, batch); default: the task's preset")(
      "models", po::value<std::string>(),
      "model sizes, comma-separated: small (2x64, batch 32), small128 (2x128, batch 64), both on "
      "copy at lengths 8-24, or presets (copy, sort, reverse, mqmtar, flip_flop; --task's data, "
      "batch 128); default: --config, else the task's preset")(
      "attention", po::value<std::string>()->default_value("softmax,asentmax"),
      "normalizers, comma-separated")("precision", po::value<std::string>()->default_value("fp32"),
                                      "matmul precisions, comma-separated: fp32, bf16")(
      "kernel", po::value<std::string>()->default_value("fused"),
      "attention kernels, comma-separated: fused (short rows fused, the rest plain), plain")(
      "steps", po::value<int64_t>()->default_value(5), "timed steps per configuration and round")(
      "warmup-steps", po::value<int64_t>()->default_value(2), "untimed steps first")(
      "rounds", po::value<int64_t>()->default_value(3),
      "rounds; each runs every configuration in turn (medians and paired ratios over rounds)")(
      "batch", po::value<int64_t>(), "samples per batch (default 128; small models 32 / 64)")(
      "bf16", "same as --precision bf16")(
      "threads", po::value<std::string>()->default_value("2"),
      "thread counts, comma-separated (e.g. 1,2,4,8,16): every configuration at each")(
      "peer", po::value<std::string>(),
      "also run this PyTorch peer script (../shared/peers/torch_gemma.py) after each of ours, same "
      "sizes, and report the ratio; it inherits the environment, so choose its BLAS there (e.g. "
      "LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp for Debian's torch)")(
      "python", po::value<std::string>()->default_value("/usr/bin/python3"),
      "interpreter for --peer");
  std::string format;
  add_format_options(opts, &format, {"text", "json"});
  std::vector<std::string> sets;
  add_set_option(opts, &sets);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "bench train [options]", opts, {}, vm)) return 0;
  const bool as_json = chosen_format(vm, format, {"text", "json"}) == "json";
  std::vector<int> thread_counts;
  for (const auto& t : split_list(vm["threads"].as<std::string>())) {
    const int64_t n = parse_int(t, "--threads");
    LB_REQUIRE(n >= 1 && n <= 1024, "--threads " << t << " is outside [1, 1024]");
    thread_counts.push_back(static_cast<int>(n));
  }
  LB_REQUIRE(!thread_counts.empty(), "--threads is empty; give counts like 1,2,4");
  ModelConfig base;
  TrainConfig train;
  train.task = vm["task"].as<std::string>();
  train.batch = 128;
  if (vm.count("config")) {
    LB_REQUIRE(!vm.count("models"), "--models and --config exclude each other; give one");
    load_config_file(vm["config"].as<std::string>(), base, train);
  } else {
    for (const auto& p : model_preset_names()) {
      if (p == train.task) base = model_preset(p);
    }
  }
  if (vm.count("batch")) train.batch = vm["batch"].as<int64_t>();
  apply_config_overrides(base, train, sets);
  const int64_t steps = vm["steps"].as<int64_t>(), warm = vm["warmup-steps"].as<int64_t>();
  const int64_t rounds = vm["rounds"].as<int64_t>();
  LB_REQUIRE(steps >= 1, "--steps " << steps << " must be >= 1");
  LB_REQUIRE(warm >= 0, "--warmup-steps " << warm << " must be >= 0");
  LB_REQUIRE(rounds >= 1, "--rounds " << rounds << " must be >= 1");
  // (name, model, train) per model size.
  std::vector<std::tuple<std::string, ModelConfig, TrainConfig>> models;
  if (!vm.count("models")) {
    models.emplace_back(vm.count("config") ? "config" : train.task, base, train);
  } else {
    for (const auto& name : split_list(vm["models"].as<std::string>())) {
      ModelConfig m;
      TrainConfig t = train;
      if (small_model(name, m, t)) {
        if (vm.count("batch")) t.batch = train.batch;
      } else {
        std::vector<std::string> accepted = {"small", "small128"};
        for (const auto& p : model_preset_names()) accepted.push_back(p);
        bool known = false;
        for (const auto& p : model_preset_names()) known = known || p == name;
        if (!known) throw UsageError(unknown_name_message("--models entry", name, accepted));
        m = model_preset(name);
      }
      models.emplace_back(name, m, t);
    }
  }
  if (vm.count("peer")) {
    // The peer generates its own copy batches (lengths 32–64, 32 data ids), like our defaults.
    for (const auto& [name, m, t] : models) {
      const bool copy_defaults =
          t.task == "copy" &&
          std::all_of(t.task_params.begin(), t.task_params.end(), [](const auto& kv) {
            return (kv.first == "seq_len" && kv.second == "48") ||
                   (kv.first == "vary_len" && kv.second == "16") ||
                   (kv.first == "vocab" && kv.second == "32");
          });
      std::string given = "task '" + t.task + "'";
      for (const auto& [k, v] : t.task_params) given += " " + k + "=" + v;
      LB_REQUIRE(copy_defaults,
                 "--peer compares on the peer's copy batches (lengths 32-64, 32 data "
                 "ids): use --task copy with its default parameters, not "
                     << given << " (model " << name << ")");
    }
  }

  std::vector<bool> precisions;  // bf16 or not
  for (const auto& p :
       split_list(vm.count("bf16") ? std::string("bf16") : vm["precision"].as<std::string>())) {
    LB_REQUIRE(p == "fp32" || p == "bf16", "--precision '" << p << "': accepted fp32, bf16");
    precisions.push_back(p == "bf16");
  }
  std::vector<bool> kernels;  // fused or not
  for (const auto& k : split_list(vm["kernel"].as<std::string>())) {
    LB_REQUIRE(k == "fused" || k == "plain", "--kernel '" << k << "': accepted fused, plain");
    kernels.push_back(k == "fused");
  }
  const int64_t n_threads = static_cast<int64_t>(thread_counts.size());
  std::vector<BenchRow> rows;
  for (const auto& [model_name, model, model_train] : models) {
    for (const auto& name : split_list(vm["attention"].as<std::string>())) {
      for (bool bf16 : precisions) {
        for (bool fused : kernels) {
          BenchRow r;
          r.model_name = model_name;
          r.model = model;
          r.model.attention = normalizer_from_name(name);
          r.train = model_train;
          r.train.steps = (warm + rounds * steps + 1) * n_threads;
          r.train.warmup = 1;
          r.train.bf16 = bf16;
          r.fused = fused;
          r.at.resize(n_threads);
          rows.push_back(std::move(r));
        }
      }
    }
  }
  set_num_threads(thread_counts.front());
  for (auto& r : rows) {
    r.trainer = std::make_unique<Trainer>(r.model, r.train);
    set_fused_attention(r.fused);
    for (int64_t i = 0; i < warm; ++i) r.trainer->step();
  }

  // Per thread count, rounds run every configuration in turn, so load that drifts on a shared
  // machine touches all of them alike. Each round starts by measuring the matmul rates; MFU
  // divides by the best rate seen at that thread count (a rate measured during a burst of load
  // would inflate a paired MFU).
  const bool any_bf16 = std::find(precisions.begin(), precisions.end(), true) != precisions.end();
  std::vector<double> peaks(n_threads, 0.0), peaks_bf16(n_threads, 0.0);
  for (int64_t ti = 0; ti < n_threads; ++ti) {
    set_num_threads(thread_counts[ti]);
    if (ti > 0) {  // one untimed step at the new thread count (its per-thread buffers)
      for (auto& r : rows) set_fused_attention(r.fused), r.trainer->step();
    }
    for (int64_t round = 0; round < rounds; ++round) {
      set_matmul_bf16(false);
      peaks[ti] = std::max(peaks[ti], matmul_peak(2048));
      if (any_bf16) {
        set_matmul_bf16(true);
        peaks_bf16[ti] = std::max(peaks_bf16[ti], matmul_peak(2048));
        set_matmul_bf16(false);
      }
      const BenchRow* first_of_model = nullptr;
      for (auto& r : rows) {
        if (!first_of_model || first_of_model->model_name != r.model_name) first_of_model = &r;
        Measure& me = r.at[ti];
        set_fused_attention(r.fused);
        int64_t tokens = 0;
        double seconds = 0.0;
        for (int64_t i = 0; i < steps; ++i) {
          const StepStats s = r.trainer->step();
          tokens += s.tokens;
          seconds += s.seconds;
          me.last_loss = s.loss;
        }
        me.mean_len = static_cast<double>(tokens) / (steps * r.train.batch);
        me.tok_s.push_back(tokens / seconds);
        me.step_s.push_back(seconds / steps);
        me.model_flops_s.push_back(
            model_train_flops_per_token(r.trainer->model_config(), me.mean_len) * tokens / seconds);
        me.vs_first.push_back(me.step_s.back() / first_of_model->at[ti].step_s.back());
        if (vm.count("peer")) {
          nlohmann::json peer =
              run_peer(vm["python"].as<std::string>(), vm["peer"].as<std::string>(),
                       r.trainer->model_config(), r.train, num_threads(), steps, warm);
          LB_REQUIRE(!peer.is_null(),
                     "--peer '" << vm["peer"].as<std::string>() << "' did not print a JSON result");
          me.peer_tok_s.push_back(peer["tokens_per_s"].get<double>());
          me.peer_ratio.push_back(me.tok_s.back() / me.peer_tok_s.back());
        }
      }
    }
  }
  set_fused_attention(true);

  nlohmann::json out = {{"task", train.task},
                        {"batch", train.batch},
                        {"threads", thread_counts.size() == 1 ? nlohmann::json(thread_counts[0])
                                                              : nlohmann::json(thread_counts)},
                        {"rounds", rounds},
                        {"steps_per_round", steps},
                        {"matmul_peak_gflops", peaks[0] / 1e9},
                        {"matmul_peak_gflops_by_threads", nlohmann::json::array()},
                        {"runs", nlohmann::json::array()}};
  if (any_bf16) out["matmul_peak_bf16_gflops"] = peaks_bf16[0] / 1e9;
  out["provenance"] = bench_provenance();
  for (int64_t ti = 0; ti < n_threads; ++ti) {
    nlohmann::json p = {{"threads", thread_counts[ti]}, {"fp32", peaks[ti] / 1e9}};
    if (any_bf16) p["bf16"] = peaks_bf16[ti] / 1e9;
    out["matmul_peak_gflops_by_threads"].push_back(p);
  }
  for (int64_t ti = 0; ti < n_threads; ++ti) {
    for (const auto& r : rows) {
      const Measure& me = r.at[ti];
      const double flops_s = median(me.model_flops_s);
      nlohmann::json j = {{"threads", thread_counts[ti]},
                          {"model", r.model_name},
                          {"layers", r.model.layers},
                          {"hidden", r.model.hidden},
                          {"batch", r.train.batch},
                          {"attention", normalizer_name(r.model.attention)},
                          {"position", position_encoding_name(r.model.position)},
                          {"precision", r.train.bf16 ? "bf16" : "fp32"},
                          {"kernel", r.fused ? "fused" : "plain"},
                          {"tokens_per_s", median(me.tok_s)},
                          {"tokens_per_s_rounds", me.tok_s},
                          {"step_s", median(me.step_s)},
                          {"step_vs_first", median(me.vs_first)},
                          {"speedup_vs_first_threads", median(me.tok_s) / median(r.at[0].tok_s)},
                          {"mean_length", me.mean_len},
                          {"model_gflops", flops_s / 1e9},
                          {"mfu", flops_s / peaks[ti]},
                          {"last_loss", me.last_loss},
                          {"peer", nullptr}};
      if (r.train.bf16) j["mfu_bf16_peak"] = flops_s / peaks_bf16[ti];
      if (!me.peer_tok_s.empty()) {
        j["peer"] = {{"attn", is_entmax_family(r.model.attention.kind) ? "entmax15" : "softmax"},
                     {"tokens_per_s", median(me.peer_tok_s)},
                     {"tokens_per_s_rounds", me.peer_tok_s},
                     {"ratio", median(me.peer_ratio)}};
      }
      out["runs"].push_back(j);
    }
  }
  if (as_json) {
    std::cout << out.dump() << "\n";
    return 0;
  }
  const auto& prov = out["provenance"];
  std::printf("bench train on %s, commit %s%s, oneDNN %s (%s)\n",
              prov["host"].get<std::string>().c_str(),
              prov["git_commit"].get<std::string>().c_str(),
              prov["git_dirty"].get<bool>() ? " (dirty)" : "",
              prov["onednn_version"].get<std::string>().c_str(),
              prov["onednn_isa"].get<std::string>().c_str());
  std::printf("bench train: %s, median of %lld rounds x %lld steps; oneDNN 2048^3 matmul",
              train.task.c_str(), static_cast<long long>(rounds), static_cast<long long>(steps));
  for (int64_t ti = 0; ti < n_threads; ++ti) {
    std::printf("%s %d thr: fp32 %.1f", ti ? ";" : "", thread_counts[ti], peaks[ti] / 1e9);
    if (any_bf16) std::printf(", bf16 %.1f", peaks_bf16[ti] / 1e9);
  }
  std::printf(
      " GFLOP/s\nMFU: model FLOP/s over the best fp32 rate at that thread count. vs first: step "
      "time over the first row's of the same model and thread count, paired within each round. "
      "scale: tokens/s over the same row's at %d threads. ratio: ours over the peer's tokens/s, "
      "paired.\n",
      thread_counts[0]);
  std::printf("%4s %-9s %5s %-12s %-6s %-5s %-6s %10s %8s %8s %6s %9s %6s %14s %7s\n", "thr",
              "model", "batch", "attention", "pos", "prec", "kernel", "tokens/s", "step s",
              "vs first", "scale", "GFLOP/s", "MFU", "peer tokens/s", "ratio");
  for (const auto& r : out["runs"]) {
    std::printf("%4d %-9s %5lld %-12s %-6s %-5s %-6s %10.0f %8.4f %7.2fx %5.2fx %9.1f %5.1f%%",
                r["threads"].get<int>(), r["model"].get<std::string>().c_str(),
                static_cast<long long>(r["batch"].get<int64_t>()),
                r["attention"].get<std::string>().c_str(), r["position"].get<std::string>().c_str(),
                r["precision"].get<std::string>().c_str(), r["kernel"].get<std::string>().c_str(),
                r["tokens_per_s"].get<double>(), r["step_s"].get<double>(),
                r["step_vs_first"].get<double>(), r["speedup_vs_first_threads"].get<double>(),
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
