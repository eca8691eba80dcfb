// Suite expansion: counts, unique keys, overrides, filters, shards, malformed suites.
#include "harness/suite.h"

#include <doctest/doctest.h>

#include <set>

#include "core/check.h"
#include "models/kernels/fused_attention.h"

using namespace lb;
using nlohmann::json;

namespace {

json grid() {
  return json::parse(R"({
    "name": "g",
    "model": {"preset": "tiny"},
    "train": {"steps": 10, "batch": 4},
    "tasks": ["copy", {"task": "sort", "model": {"layers": 3}, "train": {"steps": 20},
                       "eval": {"lengths": [64, 128], "samples": 7}}],
    "attention": ["softmax", {"name": "entmax", "alpha": 1.3}, "asentmax"],
    "position": ["nape", "rope"],
    "lr": [1e-3, 4e-4],
    "seeds": [0, 1, 2],
    "eval": {"samples": 11}
  })");
}

std::string error_of(const json& j) {
  try {
    expand_suite(j);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("suite: the grid expands to every combination with unique, readable keys") {
  const Suite s = expand_suite(grid());
  CHECK(s.runs.size() == 2 * 3 * 2 * 2 * 3);
  std::set<std::string> keys, hashes;
  for (const auto& r : s.runs) {
    keys.insert(r.key);
    hashes.insert(r.config_hash);
  }
  CHECK(keys.size() == s.runs.size());
  CHECK(hashes.size() == s.runs.size());
  CHECK(keys.count("g/copy.v1/entmax-alpha=1.3/rope/L2C16H4D4F32/lr0.001/s2") == 1);
  CHECK(keys.count("g/sort.v1/asentmax/nape/L3C16H4D4F32/lr0.0004/s0") == 1);
  for (const auto& r : s.runs) {
    CAPTURE(r.key);
    CHECK(r.train.data_seed == r.seed);
    CHECK(r.train.seed == r.seed);
    if (r.task == "sort") {  // per-entry overrides win over the shared defaults
      CHECK(r.model.layers == 3);
      CHECK(r.train.steps == 20);
      CHECK(r.eval.lengths == std::vector<int64_t>{64, 128});
      CHECK(r.eval.samples == 7);
      CHECK(r.select.length == 128);  // the 4th evaluation length, or the last
    } else {
      CHECK(r.model.layers == 2);
      CHECK(r.train.steps == 10);
      CHECK(r.eval.lengths.size() == 7);  // the task's ladder 64..4096
      CHECK(r.eval.samples == 11);
      CHECK(r.select.length == 512);
    }
    CHECK(r.train_max_length == 64);
    CHECK(r.config["train"]["lr"] == r.train.lr);
  }
  // Expansion is deterministic: the same suite gives the same keys and hashes.
  const Suite again = expand_suite(grid());
  for (size_t i = 0; i < s.runs.size(); ++i) CHECK(again.runs[i].config_hash == s.runs[i].config_hash);
}

TEST_CASE(
    "suite: an opt-in kernel is part of the run's config and hash; off leaves both as they were") {
  REQUIRE_FALSE(fused_attention_enabled());
  const Suite plain = expand_suite(grid());
  set_fused_attention(true);
  const Suite fused = expand_suite(grid());
  set_fused_attention(false);
  REQUIRE(plain.runs.size() == fused.runs.size());
  for (size_t i = 0; i < plain.runs.size(); ++i) {
    CHECK_FALSE(plain.runs[i].config.contains("kernels"));
    CHECK(fused.runs[i].config["kernels"]["fused_attention"] == true);
    CHECK(fused.runs[i].config_hash != plain.runs[i].config_hash);
    CHECK(fused.runs[i].key == plain.runs[i].key);  // the same run, under another kernel
  }
}

TEST_CASE("suite: filters and shards partition the runs") {
  const Suite s = expand_suite(grid());
  CHECK(filter_runs(s.runs, "/asentmax/").size() == 24);
  CHECK(filter_runs(s.runs, "copy.*s0$").size() == 12);
  CHECK_THROWS_AS(filter_runs(s.runs, "("), UsageError);
  std::set<std::string> seen;
  size_t total = 0;
  for (int64_t i = 0; i < 5; ++i) {
    for (const auto& r : shard_runs(s.runs, i, 5)) seen.insert(r.key);
    total += shard_runs(s.runs, i, 5).size();
  }
  CHECK(total == s.runs.size());
  CHECK(seen.size() == s.runs.size());
  CHECK(parse_shard("2/4") == std::pair<int64_t, int64_t>{2, 4});
  CHECK_THROWS_AS(parse_shard("4/4"), UsageError);
  CHECK_THROWS_AS(parse_shard("x"), UsageError);
}

TEST_CASE("suite: malformed suites are refused with the JSON path") {
  json j = grid();
  j["modle"] = json::object();
  CHECK(error_of(j).find("modle") != std::string::npos);
  j = grid();
  j["tasks"][1]["model"]["layrs"] = 2;
  CHECK(error_of(j).find("/tasks/1/model") != std::string::npos);
  j = grid();
  j["tasks"][0] = "cpy";
  CHECK(error_of(j).find("did you mean 'copy'") != std::string::npos);
  j = grid();
  j["attention"][1]["alpha"] = 0.5;
  CHECK(error_of(j).find("/attention/1") != std::string::npos);
  j = grid();
  j["position"] = {"nape", "rop"};
  CHECK(error_of(j).find("/position/1") != std::string::npos);
  j = grid();
  j["seeds"] = {0, 0};
  CHECK(error_of(j).find("share the key") != std::string::npos);
  j = grid();
  j["lr"] = {-1};
  CHECK(error_of(j).find("/lr/0") != std::string::npos);
  j = grid();
  j["eval"]["lengths"] = {64, "x"};
  CHECK(error_of(j).find("/eval/lengths/1") != std::string::npos);
  j = grid();
  j.erase("tasks");
  CHECK(error_of(j).find("/tasks is required") != std::string::npos);
  j = grid();
  j["tasks"] = {{{"task", "mqmtar"}, {"eval", {{"lengths", {20}}}}}};
  CHECK(error_of(j).find("length 20") != std::string::npos);
  CHECK(error_of(json::array()).find("JSON object") != std::string::npos);
}

TEST_CASE("suite: the shipped smoke suite loads") {
  const Suite s = load_suite(std::string(LB_SOURCE_DIR) + "/harness/suites/smoke.json");
  CHECK(s.name == "smoke");
  CHECK(s.runs.size() == 4);
  for (const auto& r : s.runs) CHECK(estimate_run_flops(r) > 0);
  CHECK_THROWS_AS(load_suite("/nonexistent.json"), UsageError);
}

// Issue 16: each config struct declares its fields once (models/field_table.h). Every key that
// to_json writes is accepted back, reads to the same value, and is refused with its path when
// its value has the wrong type; the run config written to the database has exactly these keys.
TEST_CASE("suite: config field tables drive accepted keys, reading and writing") {
  ModelConfig m = model_preset("sort");
  m.attention = normalizer_from_name("entmax", {{"alpha", "1.3"}});
  m.position = PosEncoding::kRope;
  m.vocab_size = 7;
  TrainConfig t;
  t.task_params = {{"seq_len", "24"}};
  t.seed = 5;
  t.bf16 = true;
  const json mj = to_json(m), tj = to_json(t);
  CHECK(to_json(model_config_from_json(mj)) == mj);
  CHECK(to_json(train_config_from_json(tj)) == tj);
  for (const auto& [doc, path] : {std::pair{mj, std::string("/model")}, {tj, "/train"}}) {
    for (auto it = doc.begin(); it != doc.end(); ++it) {
      CAPTURE(it.key());
      json bad = doc;
      bad[it.key()] = json::array({1});
      std::string err;
      try {
        if (path == "/model")
          model_config_from_json(bad, path);
        else
          train_config_from_json(bad, path);
      } catch (const UsageError& e) {
        err = e.what();
      }
      CHECK(err.find(path + "/" + it.key()) != std::string::npos);
    }
  }
  const Suite s = expand_suite(grid());
  const json& config = s.runs[0].config;
  for (const char* section : {"eval", "select"}) {
    CAPTURE(section);
    json j = grid();
    j[section] = config[section];  // what a run records is a valid section, read back the same
    CHECK(expand_suite(j).runs[0].config[section] == config[section]);
    j[section]["bogus"] = 1;
    CHECK(error_of(j).find(std::string("unknown config key '/") + section + "/bogus'") !=
          std::string::npos);
  }
  CHECK(config["eval"].size() == 5);
  CHECK(config["select"].size() == 4);
}
