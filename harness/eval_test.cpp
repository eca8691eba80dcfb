// Evaluation metrics on hand-made rows and sequences, and the decoding/ladder contract on a tiny
// model: draft decoding equals plain greedy decoding, per-position tasks, thread-count
// independence, the stop-at-zero rule.
#include "harness/eval.h"

#include <doctest/doctest.h>
#include <omp.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"
#include "harness/trainer.h"
#include "models/batch.h"
#include "tasks/registry.h"

namespace lb {
namespace {

TEST_CASE("eval: uniform row has normalised entropy 1") {
  const int64_t n = 50;
  std::vector<float> p(n, 1.f / n);
  const int32_t rel[] = {3, 7};
  const RowDispersion r = row_dispersion(p.data(), n, false, rel, rel + 2);
  CHECK(r.entropy == doctest::Approx(std::log(50.0)).epsilon(1e-5));
  CHECK(r.entropy_norm == doctest::Approx(1.0).epsilon(1e-5));
  CHECK(r.max_weight == doctest::Approx(0.02));
  CHECK(r.support == 50);  // 99% of a uniform row needs ceil(49.5) = 50 keys
  CHECK(r.relevant_mass == doctest::Approx(0.04));
  CHECK(row_dispersion(p.data(), n, true, nullptr, nullptr).support == 50);
}

TEST_CASE("eval: one-hot row has entropy 0, support 1 and relevant mass 1 on a hit") {
  std::vector<float> p(20, 0.f);
  p[6] = 1.f;
  const int32_t hit[] = {6}, miss[] = {5, 7};
  for (bool sparse : {false, true}) {
    const RowDispersion r = row_dispersion(p.data(), 20, sparse, hit, hit + 1);
    CHECK(r.entropy == 0.0);
    CHECK(r.entropy_norm == 0.0);
    CHECK(r.support == 1);
    CHECK(r.max_weight == 1.0);
    CHECK(r.has_relevant);
    CHECK(r.relevant_mass == 1.0);
  }
  CHECK(row_dispersion(p.data(), 20, true, miss, miss + 2).relevant_mass == 0.0);
  CHECK_FALSE(row_dispersion(p.data(), 20, true, nullptr, nullptr).has_relevant);
}

TEST_CASE("eval: 99% mass support, percentiles, edit distance") {
  std::vector<float> p = {0.5f, 0.3f, 0.15f, 0.04f, 0.01f};
  CHECK(mass_support(p.data(), 5, 0.99) == 4);
  CHECK(mass_support(p.data(), 5, 0.5) == 1);
  CHECK(mass_support(p.data(), 5, 0.95) == 3);
  std::vector<float> eq(1000, 0.001f);
  CHECK(mass_support(eq.data(), 1000, 0.99) == 990);
  CHECK(percentile({1, 2, 3, 4, 5}, 0.5) == 3.0);
  CHECK(percentile({1, 2, 3, 4, 5}, 0.05) == doctest::Approx(1.2));
  CHECK(edit_distance({1, 2, 3}, {1, 2, 3}) == 0);
  CHECK(edit_distance({1, 2, 3}, {1, 3}) == 1);
  CHECK(edit_distance({}, {4, 5}) == 2);
  CHECK(edit_distance({1, 2, 3, 4}, {2, 1, 3, 5}) == 3);
}

ModelConfig tiny_model(const TaskDef& task, const TaskParams& params, const char* norm) {
  ModelConfig c = model_preset("tiny");
  const Vocab v = task_vocab(task, params);
  c.vocab_size = v.size, c.num_labels = std::max<int32_t>(v.num_labels, v.size);
  c.attention = normalizer_from_name(norm);
  c.init_std = 0.3;
  return c;
}

TEST_CASE("eval: draft decoding equals plain greedy decoding") {
  const TaskDef& task = find_task("copy");
  const TaskParams params = make_params(task, {});
  for (const char* norm : {"softmax", "asentmax"}) {
    CAPTURE(norm);
    Transformer model(tiny_model(task, params, norm));
    model.init(4);
    InferenceEngine eng(model);
    const Split split(task, params, 0, SplitKind::kTest, 16);
    for (int64_t i = 0; i < 3; ++i) {
      Sample s = split.get(i);
      DecodeOptions plain;
      plain.draft_reference = false;
      const SampleOutcome a = evaluate_sample(eng, task, s, plain);
      const SampleOutcome b = evaluate_sample(eng, task, s, DecodeOptions{});
      CHECK(a.generated == b.generated);
      // The model's own output as the reference: the draft is accepted whole and exact.
      const int32_t eos = s.target.back();
      std::vector<int32_t> out = a.decoded;
      Sample own = s;
      own.raw.trg = out;
      own.input.resize(own.first_target_pos + 1);
      own.target.resize(own.first_target_pos);
      for (int32_t t : out) own.input.push_back(t), own.target.push_back(t);
      own.target.push_back(eos);
      own.loss_mask.assign(own.input.size(), 1);
      if (a.generated.back() == eos && a.generated.size() == out.size() + 1) {
        const SampleOutcome c = evaluate_sample(eng, task, own, DecodeOptions{});
        CHECK(c.exact);
        CHECK(c.generated == a.generated);
        CHECK(c.correct == c.total);
      }
      // Statistics cover the rows decoding ran, one per generated token.
      REQUIRE(b.attn.size() == static_cast<size_t>(model.config().layers * model.config().heads));
      CHECK(b.attn[0].rows == static_cast<int64_t>(std::min(b.generated.size(), s.raw.trg.size() + 1)));
    }
  }
}

TEST_CASE("eval: head kinds follow the position encoding and the length scaling") {
  const TaskDef& task = find_task("n_back");
  const TaskParams params = make_params(task, {});
  for (const char* norm : {"softmax", "asentmax", "ssmax"}) {
    CAPTURE(norm);
    ModelConfig c = tiny_model(task, params, norm);
    const bool scaled = c.attention.length_scale != LengthScale::kNone;
    const int H = static_cast<int>(c.heads);
    REQUIRE(H >= 2);
    c.position = PosEncoding::kNape;
    for (int h = 0; h < H; ++h) {
      CHECK(head_kind(c, h) == (h < H / 2 ? std::string("alibi")
                                          : std::string(scaled ? "nope+scaled" : "nope")));
    }
    c.position = PosEncoding::kRope;
    CHECK(head_kind(c, 0) == (scaled ? "rope+scaled" : "rope"));
    c.position = PosEncoding::kAlibi;
    CHECK(head_kind(c, H - 1) == (scaled ? "alibi+scaled" : "alibi"));
  }
  // The ladder's statistics carry them.
  Transformer model(tiny_model(task, params, "asentmax"));
  model.init(3);
  EvalOptions opt;
  opt.lengths = {16};
  opt.samples = 2;
  const auto r = evaluate_ladder(model, task, params, opt);
  CHECK(r[0].attn.front().head_kind == "alibi");
  CHECK(r[0].attn.back().head_kind == "nope+scaled");
}

TEST_CASE("eval: the teacher-forced loss is the training loss of the samples, in any chunking") {
  const TaskDef& task = find_task("copy");
  const TaskParams params = make_params(task, {});
  Transformer model(tiny_model(task, params, "entmax"));
  model.init(5);
  const double one_by_one =
      teacher_forced_loss(model, task, params, 0, SplitKind::kValidation, 16, 5, 1);
  const double together =
      teacher_forced_loss(model, task, params, 0, SplitKind::kValidation, 16, 5, int64_t(1) << 30);
  CHECK(std::isfinite(one_by_one));
  CHECK(one_by_one > 0);
  CHECK(one_by_one == doctest::Approx(together).epsilon(1e-5));
  // The same as one forward over the batch of those samples.
  const Split split(task, params, 0, SplitKind::kValidation, 16);
  std::vector<Sample> samples;
  for (int64_t i = 0; i < 5; ++i) samples.push_back(split.get(i));
  CHECK(model.forward(make_batch(samples)) == doctest::Approx(together).epsilon(1e-6));
  // Untrained, it is about log(vocabulary): a wrong split or mask would not be.
  CHECK(together > 1.0);
}

TEST_CASE("eval: ladder numbers do not depend on the thread count; stop at zero") {
  const TaskDef& task = find_task("n_back");
  const TaskParams params = make_params(task, {});
  Transformer model(tiny_model(task, params, "asentmax"));
  model.init(9);
  EvalOptions opt;
  opt.lengths = {16, 24};
  opt.samples = 6;
  omp_set_num_threads(1);
  const auto a = evaluate_ladder(model, task, params, opt);
  omp_set_num_threads(2);
  const auto b = evaluate_ladder(model, task, params, opt);
  REQUIRE(a.size() == 2);
  for (size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].eval.exact_match == b[i].eval.exact_match);
    CHECK(a[i].eval.token_accuracy == b[i].eval.token_accuracy);
    CHECK(a[i].mean_entropy == b[i].mean_entropy);
    REQUIRE(a[i].attn.size() == b[i].attn.size());
    for (size_t k = 0; k < a[i].attn.size(); ++k) {
      CHECK(a[i].attn[k].support == b[i].attn[k].support);
      CHECK(a[i].attn[k].scale_p50 == b[i].attn[k].scale_p50);
    }
  }
  CHECK(a[0].eval.token_accuracy >= 0.0);
  CHECK(a[0].attn[0].queries > 0);
  CHECK(a[0].attn.back().scale_p50.has_value());  // asentmax: the last head is length-scaled
  CHECK_FALSE(a[0].attn.front().scale_p50.has_value());  // NAPE: head 0 is an ALiBi head

  // An untrained model gets nothing exactly right on copy: the rest is skipped.
  const TaskDef& copy = find_task("copy");
  const TaskParams cp = make_params(copy, {});
  Transformer m2(tiny_model(copy, cp, "softmax"));
  m2.init(1);
  EvalOptions o2;
  o2.lengths = {16, 32, 64};
  o2.samples = 3;
  o2.stop_at_zero = true;
  const auto r = evaluate_ladder(m2, copy, cp, o2);
  REQUIRE(r.size() == 3);
  CHECK(r[0].eval.exact_match == 0.0);
  CHECK_FALSE(r[0].eval.skipped);
  CHECK(r[1].eval.skipped);
  CHECK(r[2].eval.skipped);
}

}  // namespace
}  // namespace lb

namespace lb {
int cmd_eval(int argc, char** argv);
namespace {

std::string run_eval_command(std::vector<std::string> args) {
  args.insert(args.begin(), "eval");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  std::ostringstream captured;
  std::streambuf* old = std::cout.rdbuf(captured.rdbuf());
  try {
    cmd_eval(static_cast<int>(argv.size()), argv.data());
  } catch (...) {
    std::cout.rdbuf(old);
    throw;
  }
  std::cout.rdbuf(old);
  return captured.str();
}

TEST_CASE("eval: the eval command reads a checkpoint and reports every length") {
  const std::string dir =
      (std::filesystem::temp_directory_path() / ("lb_eval_test_" + std::to_string(::getpid())))
          .string();
  ModelConfig mc = model_preset("tiny");
  mc.attention = normalizer_from_name("asentmax");
  TrainConfig tc;
  tc.task = "copy";
  tc.batch = 4;
  tc.steps = 2;
  Trainer trainer(mc, tc);
  trainer.step();
  trainer.save(dir);
  const auto j = nlohmann::json::parse(run_eval_command(
      {"--checkpoint", dir, "--lengths", "8,12", "--samples", "3", "--threads", "1", "--json"}));
  CHECK(j["task"] == "copy");
  CHECK(j["normalizer"] == "asentmax");
  REQUIRE(j["lengths"].size() == 2);
  CHECK(j["lengths"][1]["length"] == 12);
  CHECK(j["lengths"][1]["samples"] == 3);
  CHECK(j["lengths"][1]["kv"] == "f32");
  CHECK(j["lengths"][0]["attn"].size() == static_cast<size_t>(mc.layers * mc.heads));
  // Same numbers as the library call on the same weights.
  Transformer model(trainer.model_config());
  for (size_t i = 0; i < model.params().size(); ++i) {
    model.params()[i].value = trainer.model().params()[i].value;
  }
  EvalOptions opt;
  opt.lengths = {12};
  opt.samples = 3;
  const TaskDef& task = find_task("copy");
  const auto r = evaluate_ladder(model, task, make_params(task, {}), opt);
  CHECK(j["lengths"][1]["token_accuracy"].get<double>() == r[0].eval.token_accuracy);
  CHECK(j["lengths"][1]["mean_entropy"].get<double>() == r[0].mean_entropy);

  CHECK_THROWS_AS(run_eval_command({"--checkpoint", dir, "--split", "train"}), UsageError);
  CHECK_THROWS_AS(run_eval_command({"--checkpoint", dir, "--kv", "f16"}), UsageError);
  CHECK_THROWS_AS(run_eval_command({"--checkpoint", dir, "--task", "cpy"}), UsageError);
  CHECK_THROWS_AS(run_eval_command({"--checkpoint", dir + "/missing"}), UsageError);
  CHECK_THROWS_AS(run_eval_command({"--checkpoint", dir, "--samples", "0"}), UsageError);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace lb
