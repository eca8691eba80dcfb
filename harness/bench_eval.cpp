// `lengthbench bench eval`: long-context inference of the MQMTAR model (4 layers, 512 hidden,
// 16 heads × 32, FFN 1024; random weights: softmax's speed does not depend on training, α-entmax's
// may) with softmax and ASEntmax: per length, prefill and decode seconds of one sample, generated
// tokens/s, peak RSS, and the ratio of decode time to reading the KV cache once per generated token
// at the memory bandwidth measured in the same run (a streaming read over a buffer much larger than
// the caches). Decoding generates the MQMTAR target length (12 tokens + eos) regardless of what is
// predicted.
// `--checkpoint DIR[,DIR...]` benchmarks trained models instead (each with its own config and the
// first test sample of its own task at each length; --attention is then refused): random weights
// give flat α-entmax rows, trained ones may not, and only then has the blocked prefill tiles to
// skip. Each row also gives the tile statistics (models/blocked_attention.h) of the α-entmax units
// of its blocked prefill: the fraction of causally available key tiles the output pass visited
// (per unit, and per query row), the tiles the threshold passes recomputed per available tile,
// and the rows searched in the candidate buffer (null for the plain prefill and for softmax).
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
#include "harness/trainer.h"
#include "models/blocked_attention.h"
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

// A benchmarked model: the random MQMTAR preset with one normalizer, or a trained checkpoint
// (its own config, weights and task).
struct Subject {
  std::string checkpoint;  // "" for the random preset
  ModelConfig mc;
  const TaskDef* task = nullptr;
  TaskParams params;
};

// "4x512, 16 heads x 32, ffn 1024"
std::string describe(const ModelConfig& mc) {
  std::ostringstream os;
  os << mc.layers << "x" << mc.hidden << ", " << mc.heads << " heads x " << mc.head_dim << ", ffn "
     << mc.ffn;
  return os.str();
}

// The checkpoints of --checkpoint, each checked before anything is measured: its config and
// weights readable, and a test sample of its task at every length (UsageError naming the
// checkpoint and the length otherwise).
std::vector<Subject> read_checkpoints(const std::string& list,
                                      const std::vector<int64_t>& lengths) {
  std::vector<Subject> out;
  std::stringstream ds(list);
  for (std::string dir; std::getline(ds, dir, ',');) {
    LB_REQUIRE(!dir.empty(), "--checkpoint '" << list << "' has an empty entry");
    Subject s;
    s.checkpoint = dir;
    TrainConfig tc;
    Trainer::read_checkpoint_config(dir, s.mc, tc);
    LB_REQUIRE(s.mc.vocab_size > 0 && s.mc.num_labels > 0,
               "checkpoint '" << dir << "' config has no vocab_size/num_labels");
    s.task = &find_task(tc.task);
    s.params = make_params(*s.task, tc.task_params);
    {
      Transformer probe(s.mc);
      Trainer::read_checkpoint_weights(dir, probe);
    }
    for (int64_t L : lengths) {
      try {
        Split(*s.task, s.params, 0, SplitKind::kTest, L).get(0);
      } catch (const UsageError& e) {
        throw UsageError("--checkpoint '" + dir + "': task " + s.task->name +
                         " has no test sample at length " + std::to_string(L) + ": " + e.what());
      }
    }
    out.push_back(std::move(s));
  }
  LB_REQUIRE(!out.empty(), "--checkpoint '" << list << "' names no directory");
  return out;
}

// The row's tile statistics: the counts and their fractions, null where no α-entmax unit of the
// blocked prefill ran (the plain prefill, softmax, normalizers the blocked path does not take).
nlohmann::json tile_json(const BlockedTileStats& t) {
  auto ratio = [&](int64_t a, int64_t b) {
    return t.units ? nlohmann::json(static_cast<double>(a) / static_cast<double>(b)) : nullptr;
  };
  nlohmann::json counts = nullptr;
  if (t.units) {
    counts = {{"units", t.units},
              {"tiles", t.tiles},
              {"tiles_visited", t.tiles_visited},
              {"row_tiles", t.row_tiles},
              {"row_tiles_support", t.row_tiles_support},
              {"rows", t.rows},
              {"rows_buffered", t.rows_buffered},
              {"threshold_passes", t.threshold_passes},
              {"tiles_recomputed", t.tiles_recomputed},
              {"tiles_far", t.tiles_far},
              {"compactions", t.compactions}};
  }
  return {{"tiles_visited_fraction", ratio(t.tiles_visited, t.tiles)},
          {"row_tiles_support_fraction", ratio(t.row_tiles_support, t.row_tiles)},
          {"tiles_recomputed_per_tile", ratio(t.tiles_recomputed, t.tiles)},
          {"rows_buffered_fraction", ratio(t.rows_buffered, t.rows)},
          {"tiles_far_fraction", ratio(t.tiles_far, t.tiles)},
          {"compactions_per_row", ratio(t.compactions, t.rows)},
          {"tile_stats", counts}};
}

// A fraction of a row for the text table, "-" where null.
std::string fraction_cell(const nlohmann::json& v) {
  if (v.is_null()) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", v.get<double>());
  return buf;
}

}  // namespace

int bench_eval(int argc, char** argv) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  po::options_description opts("options");
  opts.add_options()("lengths", po::value<std::string>()->default_value("4096,16384,65536"),
                     "lengths L (MQMTAR's, or each checkpoint's task's)")(
      "attention", po::value<std::string>()->default_value("softmax,asentmax"),
      "normalizers of the random MQMTAR model, comma-separated (not with --checkpoint)")(
      "checkpoint", po::value<std::string>(),
      "trained checkpoint directories, comma-separated, instead of the random model")(
      "kv", po::value<std::string>()->default_value("bf16"), "KV cache storage: bf16 or f32")(
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
  const bool trained = vm.count("checkpoint") > 0;
  std::vector<Subject> subjects;
  std::string model_name;
  if (trained) {
    LB_REQUIRE(vm["attention"].defaulted(),
               "--attention is not allowed with --checkpoint (each checkpoint's config names its "
               "normalizer)");
    subjects = read_checkpoints(vm["checkpoint"].as<std::string>(), lengths);
    model_name = "checkpoints";
  } else {
    const TaskDef& task = find_task("mqmtar");
    ModelConfig base = model_preset("mqmtar");
    const TaskParams params = make_params(task, {});
    const Vocab vocab = task_vocab(task, params);
    base.vocab_size = vocab.size, base.num_labels = std::max(vocab.num_labels, vocab.size);
    std::stringstream names(vm["attention"].as<std::string>());
    for (std::string name; std::getline(names, name, ',');) {
      Subject s;
      s.mc = base;
      s.mc.attention = normalizer_from_name(name);
      s.task = &task, s.params = params;
      subjects.push_back(std::move(s));
    }
    model_name = "mqmtar " + describe(base);
  }
  const double bw = read_bandwidth(int64_t(512) << 20);
  set_matmul_bf16(false);
  const double mm_f32 = matmul_peak(2048);
  set_matmul_bf16(true);
  const double mm_bf16 = matmul_peak(2048);
  set_matmul_bf16(false);
  nlohmann::json out = {{"model", model_name},
                        {"threads", num_threads()},
                        {"kv", kv},
                        {"new_tokens", new_tokens},
                        {"read_bandwidth_gbs", bw / 1e9},
                        {"matmul_f32_gflops", mm_f32 / 1e9},
                        {"matmul_bf16_gflops", mm_bf16 / 1e9},
                        {"runs", nlohmann::json::array()},
                        {"protocol", nlohmann::json::array()},
                        {"provenance", bench_provenance()}};
  if (trained) {
    out["checkpoints"] = nlohmann::json::array();
    for (const Subject& s : subjects) {
      out["checkpoints"].push_back({{"checkpoint", s.checkpoint},
                                    {"task", s.task->name},
                                    {"attention", normalizer_name(s.mc.attention)},
                                    {"position", position_encoding_name(s.mc.position)},
                                    {"model", describe(s.mc)}});
    }
  }
  if (!as_json) {
    std::printf(
        "bench eval: %s, %d threads, %s KV cache, %lld decoded tokens; streaming read %.1f GB/s; "
        "matmul %.1f GFLOP/s fp32, %.1f bf16\n",
        trained ? "trained checkpoints" : "MQMTAR model (random weights)", num_threads(),
        kv.c_str(), static_cast<long long>(new_tokens), bw / 1e9, mm_f32 / 1e9, mm_bf16 / 1e9);
    for (const auto& c : out.value("checkpoints", nlohmann::json::array())) {
      std::printf("checkpoint %s: %s/%s %s, task %s\n", c["checkpoint"].get<std::string>().c_str(),
                  c["attention"].get<std::string>().c_str(),
                  c["position"].get<std::string>().c_str(), c["model"].get<std::string>().c_str(),
                  c["task"].get<std::string>().c_str());
    }
    std::printf("%-10s %-8s %7s %10s %7s %7s %9s %10s %8s %10s %10s %7s %8s %8s %7s %7s %7s%s\n",
                "attention", "prefill", "L", "prefill s", "/f32mm", "/bf16mm", "decode s",
                "s/sample", "tok/s", "ms/tok", "bound ms", "ratio", "KV MiB", "RSS MiB", "tiles",
                "rowtile", "recomp", trained ? "  checkpoint" : "");
    std::fflush(stdout);
  }
  for (const std::string& path : paths) {
    for (const Subject& subject : subjects) {
      const ModelConfig& mc = subject.mc;
      const std::string name = normalizer_name(mc.attention);
      Transformer model(mc);
      if (trained)
        Trainer::read_checkpoint_weights(subject.checkpoint, model);
      else
        model.init(1);
      InferenceOptions io;
      io.kv_bf16 = kv == "bf16";
      io.blocked = path == "blocked";
      InferenceEngine engine(model, io);
      {  // warm-up: oneDNN generates its kernels on first use
        std::vector<int32_t> ids(80, std::min<int32_t>(3, static_cast<int32_t>(mc.vocab_size - 1)));
        std::vector<float> logits;
        InferenceSession warm(engine, 96);
        warm.append(ids.data(), 64, logits);
        for (int64_t t = 64; t < 80; ++t) warm.append(ids.data() + t, 1, logits);
      }
      std::vector<std::pair<double, double>> per_sample;  // (L, seconds per sample)
      for (int64_t L : lengths) {
        const Sample s = Split(*subject.task, subject.params, 0, SplitKind::kTest, L).get(0);
        const int64_t P = s.first_target_pos + 1;
        engine.reserve_positions(P + new_tokens);
        RssSampler rss_sampler;
        reset_blocked_tile_stats();
        const double t0 = now_s();
        std::vector<float> logits;
        InferenceSession session(engine, P + new_tokens);
        session.append(s.input.data(), P, logits);
        const double t1 = now_s();
        const BlockedTileStats tiles = blocked_tile_stats();
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
        nlohmann::json row = {
            {"attention", name},
            {"checkpoint", trained ? nlohmann::json(subject.checkpoint) : nullptr},
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
            {"peak_rss_mib", static_cast<double>(rss) / (1 << 20)}};
        row.update(tile_json(tiles));
        out["runs"].push_back(row);
        if (!as_json) {
          const auto& r = out["runs"].back();
          std::printf(
              "%-10s %-8s %7lld %10.2f %7.3f %7.3f %9.3f %10.2f %8.1f %10.2f %10.2f %7.2f "
              "%8.0f %8.0f %7s %7s %7s%s%s\n",
              name.c_str(), path.c_str(), static_cast<long long>(L), r["prefill_s"].get<double>(),
              r["prefill_over_matmul_f32"].get<double>(),
              r["prefill_over_matmul_bf16"].get<double>(), r["decode_s"].get<double>(),
              r["seconds_per_sample"].get<double>(), r["generated_tokens_per_s"].get<double>(),
              r["decode_ms_per_token"].get<double>(), r["bound_ms_per_token"].get<double>(),
              r["decode_over_bound"].get<double>(), r["kv_cache_mib"].get<double>(),
              r["peak_rss_mib"].get<double>(), fraction_cell(r["tiles_visited_fraction"]).c_str(),
              fraction_cell(r["row_tiles_support_fraction"]).c_str(),
              fraction_cell(r["tiles_recomputed_per_tile"]).c_str(), trained ? "  " : "",
              subject.checkpoint.c_str());
          std::fflush(stdout);
        }
      }
      if (std::string(subject.task->name) != "mqmtar") continue;
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
          {{"attention", name},
           {"checkpoint", trained ? nlohmann::json(subject.checkpoint) : nullptr},
           {"prefill", path},
           {"hours", protocol_s / 3600.0}});
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
