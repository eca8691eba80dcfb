// `lengthbench bench train` and `bench eval --checkpoint` through the real binary: the
// interleaved rounds' JSON (every configuration, a measurement per round, ratios paired to the
// first row), the checkpoint rows with their tile statistics, and the one-line errors.
#include <doctest/doctest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "results/db.h"

namespace {

// Exit status and combined stdout+stderr of `lengthbench ARGS`.
int run_lengthbench(const std::string& args, std::string* out) {
  FILE* f = popen((std::string(LB_BINARY) + " " + args + " 2>&1").c_str(), "r");
  REQUIRE(f != nullptr);
  std::array<char, 4096> buf;
  out->clear();
  while (std::fgets(buf.data(), buf.size(), f)) *out += buf.data();
  const int status = pclose(f);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST_CASE("bench train: rounds x configurations in the JSON, ratios paired to the first row") {
  const auto cfg = std::filesystem::temp_directory_path() / "lb_bench_test_tiny.json";
  std::ofstream(cfg) << R"({"model": {"preset": "tiny"},
                           "train": {"task": "copy", "task_params": {"seq_len": "8", "vary_len": "2"}}})";
  std::string out;
  REQUIRE(run_lengthbench("bench train --config " + cfg.string() +
                              " --batch 4 --rounds 2 --steps 1 --warmup-steps 0 --threads 1"
                              " --attention softmax,entmax --precision fp32,bf16 --json",
                          &out) == 0);
  const auto j = nlohmann::json::parse(out.substr(out.find('{')));
  CHECK(j["rounds"] == 2);
  CHECK(j["matmul_peak_gflops"].get<double>() > 0);
  CHECK(j["matmul_peak_bf16_gflops"].get<double>() > 0);
  // The binary and the machine: as a stored run's provenance (results/db.h).
  const lb::Provenance prov = lb::Provenance::current(1);
  CHECK(j["provenance"]["git_commit"] == prov.git_commit);
  CHECK(j["provenance"]["onednn_isa"] == prov.onednn_isa);
  CHECK(j["provenance"]["host"] == prov.host);
  REQUIRE(j["runs"].size() == 4);
  const char* expect[4][2] = {
      {"softmax", "fp32"}, {"softmax", "bf16"}, {"entmax", "fp32"}, {"entmax", "bf16"}};
  for (size_t i = 0; i < 4; ++i) {
    const auto& r = j["runs"][i];
    CAPTURE(i);
    CHECK(r["attention"] == expect[i][0]);
    CHECK(r["precision"] == expect[i][1]);
    CHECK(r["tokens_per_s_rounds"].size() == 2);
    CHECK(r["tokens_per_s"].get<double>() > 0);
    CHECK(r["mfu"].get<double>() > 0);
    CHECK(r["peer"].is_null());
    CHECK(r.contains("mfu_bf16_peak") == (i % 2 == 1));
  }
  CHECK(j["runs"][0]["step_vs_first"].get<double>() == 1.0);
  std::filesystem::remove(cfg);
}

TEST_CASE("bench train: bad input is one line naming the value, exit code 2") {
  std::string out;
  CHECK(run_lengthbench("bench train --precision fp16", &out) == 2);
  CHECK(out == "lengthbench: error: --precision 'fp16': accepted fp32, bf16\n");
  CHECK(run_lengthbench("bench train --rounds 0", &out) == 2);
  CHECK(out == "lengthbench: error: --rounds 0 must be >= 1\n");
  CHECK(run_lengthbench("bench train --task sort --peer peer.py", &out) == 2);
  CHECK(out.find("--peer compares on the peer's copy batches") != std::string::npos);
  CHECK(out.find("not task 'sort'") != std::string::npos);
}

namespace {

// A one-step checkpoint of the tiny model (head_dim 16, so the blocked prefill takes it) with
// ASEntmax on `task` with `params` (a JSON object), in a fresh temporary directory.
std::string tiny_checkpoint(const std::string& name, const std::string& task,
                            const std::string& params) {
  const auto tmp = std::filesystem::temp_directory_path();
  const auto cfg = tmp / ("lb_bench_test_" + name + ".json");
  const auto dir = tmp / ("lb_bench_test_" + name + "_ckpt");
  std::filesystem::remove_all(dir);
  std::ofstream(cfg) << R"({"model": {"preset": "tiny", "head_dim": 16}, "train": {"task": ")"
                     << task << R"(", "task_params": )" << params << "}}";
  std::string out;
  REQUIRE(run_lengthbench("train --config " + cfg.string() + " --attention asentmax --steps 1" +
                              " --batch 2 --threads 1 --out " + dir.string(),
                          &out) == 0);
  std::filesystem::remove(cfg);
  return dir.string();
}

}  // namespace

TEST_CASE("bench eval: --checkpoint rows name the checkpoint and carry the tile statistics") {
  const std::string dir = tiny_checkpoint("copy", "copy", R"({"seq_len": "8", "vary_len": "2"})");
  std::string out;
  REQUIRE(run_lengthbench("bench eval --checkpoint " + dir +
                              " --lengths 256 --threads 1 --prefill blocked,plain --json",
                          &out) == 0);
  const auto j = nlohmann::json::parse(out.substr(out.find('{')));
  CHECK(j["provenance"]["host"] == lb::Provenance::current(1).host);
  CHECK(j["provenance"]["git_commit"] == lb::Provenance::current(1).git_commit);
  REQUIRE(j["checkpoints"].size() == 1);
  CHECK(j["checkpoints"][0]["task"] == "copy");
  REQUIRE(j["runs"].size() == 2);
  for (const auto& r : j["runs"]) {
    CAPTURE(r.dump());
    CHECK(r["checkpoint"] == dir);
    CHECK(r["attention"] == "asentmax");
    if (r["prefill"] == "blocked") {
      CHECK(r["tile_stats"]["units"].get<int64_t>() > 0);
      CHECK(r["tiles_visited_fraction"].get<double>() > 0);
      CHECK(r["tiles_visited_fraction"].get<double>() <= 1);
    } else {  // the plain prefill has no tiles
      CHECK(r["tiles_visited_fraction"].is_null());
      CHECK(r["tile_stats"].is_null());
    }
  }
  std::filesystem::remove_all(dir);
}

TEST_CASE("bench eval: --checkpoint bad input is one line naming the value, exit code 2") {
  // local_count with runs of up to 200 holds no block below length 101.
  const std::string dir = tiny_checkpoint(
      "local_count", "local_count", R"({"seq_len": "200", "vary_len": "8", "max_reps": "200"})");
  std::string out;
  CHECK(run_lengthbench("bench eval --checkpoint " + dir + " --attention softmax", &out) == 2);
  CHECK(out ==
        "lengthbench: error: --attention is not allowed with --checkpoint (each checkpoint's "
        "config names its normalizer)\n");
  CHECK(run_lengthbench("bench eval --checkpoint " + dir + " --lengths 64", &out) == 2);
  CHECK(out == "lengthbench: error: --checkpoint '" + dir +
                   "': task local_count has no test sample at length 64: local_count: length 64 "
                   "holds no block of up to max_reps 200 (need length >= 101)\n");
  CHECK(run_lengthbench("bench eval --checkpoint ," + dir, &out) == 2);
  CHECK(out == "lengthbench: error: --checkpoint '," + dir + "' has an empty entry\n");
  std::filesystem::remove_all(dir);
}
