// `lengthbench eval`: evaluates a checkpoint on its task (or another) over a ladder of lengths:
// exact match, token accuracy, edit distance and attention dispersion per length (harness/eval.h).
// A table by default, one JSON object with --json; a progress bar on a terminal only.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/check.h"
#include "harness/command.h"
#include "harness/eval.h"
#include "harness/format.h"
#include "harness/overrides.h"
#include "harness/suite.h"
#include "harness/trainer.h"
#include "models/dnnl_util.h"
#include "models/safetensors.h"
#include "tasks/registry.h"

namespace po = boost::program_options;

namespace lb {

namespace {

void print_bar(int64_t length, int64_t done, int64_t total) {
  const int width = 30;
  const int fill = static_cast<int>(width * done / std::max<int64_t>(1, total));
  std::fprintf(stderr, "\rlength %-6lld [%s%s] %lld/%lld ", static_cast<long long>(length),
               std::string(fill, '=').c_str(), std::string(width - fill, ' ').c_str(),
               static_cast<long long>(done), static_cast<long long>(total));
  std::fflush(stderr);
}

}  // namespace

int cmd_eval(int argc, char** argv) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  po::options_description opts("options");
  opts.add_options()
      ("checkpoint", po::value<std::string>(), "checkpoint directory (config.json + model.safetensors)")
      ("task", po::value<std::string>(), "task (default: the checkpoint's)")
      ("param", po::value<std::vector<std::string>>()->composing(),
       "task parameter k=v (default: the checkpoint's task parameters)")
      ("lengths", po::value<std::string>(), "comma-separated lengths (default: the task's ladder)")
      ("samples", po::value<int64_t>()->default_value(1000), "samples per length")
      ("seed", po::value<uint64_t>()->default_value(0), "evaluation split seed")
      ("split", po::value<std::string>()->default_value("test"), "test or validation")
      ("stop-at-zero", "after the first length at 0% exact match, record the rest as skipped")
      ("kv", po::value<std::string>()->default_value("auto"),
       "KV cache storage: auto (fp32 while one sample's cache is <= 512 MiB, else bf16), f32, bf16")
      ("no-draft", "decode token by token (no reference draft; same outputs, slower)")
      ("no-attn", "skip the attention-dispersion statistics")
      ("threads", po::value<int>()->default_value(cores), "threads");
  std::string format;
  add_format_options(opts, &format, {"text", "json"});
  std::vector<std::string> sets;
  add_set_option(opts, &sets);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "eval --checkpoint DIR [options]", opts, {}, vm)) return 0;
  LB_REQUIRE(vm.count("checkpoint"), "eval needs --checkpoint DIR");
  const std::string dir = vm["checkpoint"].as<std::string>();
  set_num_threads(vm["threads"].as<int>());

  ModelConfig mc;
  TrainConfig tc;
  Trainer::read_checkpoint_config(dir, mc, tc);
  std::string task_name = tc.task;
  auto task_params = tc.task_params;
  if (vm.count("task")) {
    task_name = vm["task"].as<std::string>();
    if (task_name != tc.task) task_params.clear();
  }
  if (vm.count("param")) {
    for (const auto& kv : parse_key_values(vm["param"].as<std::vector<std::string>>(), "--param")) {
      task_params.push_back(kv);
    }
  }
  // --set on {"model", "train", "eval"}: train.task / train.task_params choose the evaluated
  // task, eval.* the ladder; the model is fixed by the weights.
  // The options fill the suite's eval section (EvalSpec, suite.h), so --set eval.* is read by the
  // same field table as a suite.
  EvalSpec spec;
  spec.split = vm["split"].as<std::string>();
  spec.samples = vm["samples"].as<int64_t>();
  spec.seed = vm["seed"].as<uint64_t>();
  spec.stop_at_zero = vm.count("stop-at-zero") > 0;
  if (vm.count("lengths")) {
    spec.lengths = parse_int_list(vm["lengths"].as<std::string>(), "lengths", 1, 1 << 24);
  }
  if (!sets.empty()) {
    tc.task = task_name;
    tc.task_params = task_params;
    nlohmann::json eval_doc = to_json(spec);
    if (spec.lengths.empty()) eval_doc.erase("lengths");  // the task's own ladder
    nlohmann::json doc = {{"model", to_json(mc)}, {"train", to_json(tc)}, {"eval", eval_doc}};
    apply_overrides(doc, sets);
    const std::string where = "--set " + sets.front() + (sets.size() > 1 ? ", ...: " : ": ");
    try {
      require_known_keys(doc, "", {"model", "train", "eval"});
      LB_REQUIRE(doc["model"] == to_json(mc),
                 "eval cannot change /model (the checkpoint's weights fix it)");
      tc = train_config_from_json(doc["train"], "/train", tc);
      EvalSpec base = spec;
      base.lengths.clear();
      spec = eval_spec_from_json(doc["eval"], "/eval", base);
    } catch (const UsageError& e) {
      throw UsageError(where + e.what());
    }
    task_name = tc.task;
    task_params = tc.task_params;
  }
  const TaskDef& task = find_task(task_name);
  const TaskParams params = make_params(task, task_params);
  LB_REQUIRE(mc.vocab_size > 0 && mc.num_labels > 0,
             "checkpoint '" << dir << "' config has no vocab_size/num_labels");
  Transformer model(mc);
  Trainer::read_checkpoint_weights(dir, model);

  EvalOptions opt;
  opt.lengths = spec.lengths;
  opt.samples = spec.samples;
  opt.seed = spec.seed;
  LB_REQUIRE(opt.samples >= 1 && opt.samples <= (int64_t{1} << 30),
             "--samples " << opt.samples << " must be in [1, " << (int64_t{1} << 30) << "]");
  const std::string split = spec.split;
  opt.split = parse_eval_split(split, "--split");
  opt.stop_at_zero = spec.stop_at_zero;
  const std::string kv = vm["kv"].as<std::string>();
  if (kv == "auto") opt.kv = EvalOptions::Kv::kAuto;
  else if (kv == "f32") opt.kv = EvalOptions::Kv::kF32;
  else if (kv == "bf16") opt.kv = EvalOptions::Kv::kBf16;
  else throw UsageError("--kv '" + kv + "' is not one of: auto, f32, bf16");
  opt.decode.draft_reference = vm.count("no-draft") == 0;
  opt.decode.attn_stats = vm.count("no-attn") == 0;
  const bool json = chosen_format(vm, format, {"text", "json"}) == "json";
  const bool tty = !json && isatty(STDERR_FILENO);

  if (!json) {
    std::printf("eval %s on %s (%s): %lldx%lld, %lld heads x %lld, %s + %s, %lld samples per "
                "length, %d threads%s\n",
                dir.c_str(), task.name, split.c_str(), static_cast<long long>(mc.layers),
                static_cast<long long>(mc.hidden), static_cast<long long>(mc.heads),
                static_cast<long long>(mc.head_dim), normalizer_name(mc.attention).c_str(),
                position_encoding_name(mc.position), static_cast<long long>(opt.samples),
                num_threads(), (", KV cache " + kv).c_str());
    std::printf("%8s %8s %8s %8s %9s %8s %9s %9s\n", "length", "samples", "exact", "tok_acc",
                "edit", "entropy", "support", "seconds");
    std::fflush(stdout);
  }
  // Rows are printed as lengths finish, so a long ladder shows progress without a terminal too.
  nlohmann::json out = {{"checkpoint", dir},
                        {"task", task.name},
                        {"split", split},
                        {"normalizer", normalizer_name(mc.attention)},
                        {"position", position_encoding_name(mc.position)},
                        {"threads", num_threads()},
                        {"kv", kv},
                        {"lengths", nlohmann::json::array()}};
  LadderCallbacks each;
  if (tty) each.progress = print_bar;
  each.done = [&](const LengthResult& r) {
    if (tty) std::fprintf(stderr, "\r%70s\r", "");
    out["lengths"].push_back(to_json(r));
    if (json) return;
    const auto L = static_cast<long long>(r.eval.length);
    if (r.eval.skipped) {
      std::printf("%8lld %8s\n", L, "skipped");
    } else {
      std::printf("%8lld %8lld %7.1f%% %7.1f%% %9.2f %8.3f %9.1f %9.2f\n", L,
                  static_cast<long long>(r.eval.samples), 100 * r.eval.exact_match,
                  100 * r.eval.token_accuracy, r.eval.edit_distance, r.mean_entropy, r.mean_support,
                  r.eval.seconds);
    }
    std::fflush(stdout);
  };
  run_ladder(model, task, params, opt, each);
  if (json) std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace lb
