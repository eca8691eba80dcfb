// `lengthbench train`: trains the Gemma-2-style decoder on a task, prints step, loss, learning
// rate, gradient norm and tokens/s (real tokens), and writes checkpoints to --out.
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/check.h"
#include "harness/command.h"
#include "harness/overrides.h"
#include "harness/trainer.h"
#include "models/dnnl_util.h"
#include "models/layer_params.h"

namespace po = boost::program_options;

namespace lb {

namespace {

void print_progress(int64_t step, int64_t total, double tok_s) {
  const int width = 30;
  const int fill = static_cast<int>(width * step / std::max<int64_t>(1, total));
  std::fprintf(stderr, "\r[%s%s] %lld/%lld  %.0f tok/s ", std::string(fill, '=').c_str(),
               std::string(width - fill, ' ').c_str(), static_cast<long long>(step),
               static_cast<long long>(total), tok_s);
  std::fflush(stderr);
}

}  // namespace

int cmd_train(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()
      ("task", po::value<std::string>(), "task name (default: the config's, else copy)")
      ("config", po::value<std::string>(), "JSON file {\"model\": {...}, \"train\": {...}}")
      ("preset", po::value<std::string>(), "model sizes: tiny, copy, sort, reverse, mqmtar, flip_flop")
      ("attention", po::value<std::string>(), "normalizer name (softmax, asentmax, ...)")
      ("position", po::value<std::string>(), "position encoding: nope, rope, alibi, nape")
      ("steps", po::value<int64_t>(), "total optimizer steps")
      ("batch", po::value<int64_t>(), "samples per batch")
      ("lr", po::value<double>(), "peak learning rate")
      ("warmup", po::value<int64_t>(), "warmup steps")
      ("seed", po::value<uint64_t>(), "initialisation seed")
      ("bf16", "bf16 matmul inputs (fp32 accumulation)")
      ("out", po::value<std::string>(), "checkpoint directory (written at the end and every checkpoint_every steps)")
      ("resume", po::value<std::string>(), "continue from this checkpoint directory")
      ("log-every", po::value<int64_t>(), "print every N steps")
      ("threads", po::value<int>()->default_value(2), "threads for oneDNN and our kernels");
  std::vector<std::string> sets;
  add_set_option(opts, &sets);
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "train [options]", opts, {}, vm)) return 0;

  ModelConfig model;
  TrainConfig train;
  bool have_model = false;
  // A kill between save_atomic's two renames leaves the checkpoint in DIR.old: resume from it.
  const std::string resume =
      vm.count("resume") ? Trainer::checkpoint_to_resume(vm["resume"].as<std::string>()) : "";
  if (vm.count("resume")) {
    LB_REQUIRE(!resume.empty(), "--resume '" << vm["resume"].as<std::string>()
                                             << "' is not a checkpoint directory (no config.json)");
    Trainer::read_checkpoint_config(resume, model, train);
    have_model = true;
    LB_REQUIRE(!vm.count("config") && !vm.count("preset") && !vm.count("attention") &&
                   !vm.count("position") && !vm.count("task") && !vm.count("batch") &&
                   !vm.count("seed"),
               "--resume takes the model, task, batch and seed from the checkpoint; only --steps, "
               "--lr, --warmup, --out, --log-every and --threads may change");
  }
  if (vm.count("config")) {
    load_config_file(vm["config"].as<std::string>(), model, train);
    have_model = true;
  }
  if (vm.count("task")) train.task = vm["task"].as<std::string>();
  if (vm.count("preset")) {
    model = model_preset(vm["preset"].as<std::string>());
  } else if (!have_model) {
    for (const auto& p : model_preset_names()) {
      if (p == train.task) model = model_preset(p);
    }
  }
  if (vm.count("attention")) model.attention = normalizer_from_name(vm["attention"].as<std::string>());
  if (vm.count("position")) model.position = position_encoding_from_name(vm["position"].as<std::string>());
  if (vm.count("steps")) train.steps = vm["steps"].as<int64_t>();
  if (vm.count("batch")) train.batch = vm["batch"].as<int64_t>();
  if (vm.count("lr")) train.lr = vm["lr"].as<double>();
  if (vm.count("warmup")) train.warmup = vm["warmup"].as<int64_t>();
  if (vm.count("seed")) train.seed = vm["seed"].as<uint64_t>();
  if (vm.count("bf16")) train.bf16 = true;
  if (vm.count("log-every")) train.log_every = vm["log-every"].as<int64_t>();
  {
    const nlohmann::json before = {to_json(model), train.task, to_json(train)["task_params"],
                                   train.batch, train.seed, train.data_seed};
    apply_config_overrides(model, train, sets);  // after the flags: --set has the last word
    const nlohmann::json after = {to_json(model), train.task, to_json(train)["task_params"],
                                  train.batch, train.seed, train.data_seed};
    LB_REQUIRE(!vm.count("resume") || before == after,
               "--set " << sets.front() << "...: with --resume the model, task, batch and seeds "
                        "come from the checkpoint; only train.steps, lr, warmup and the like may "
                        "change");
  }
  // The same ranges as a config file's train keys (models/config.cpp).
  LB_REQUIRE(train.steps >= 1, "--steps " << train.steps << " must be >= 1");
  LB_REQUIRE(train.batch >= 1 && train.batch <= (1 << 20),
             "--batch " << train.batch << " must be in [1, " << (1 << 20) << "]");
  LB_REQUIRE(std::isfinite(train.lr) && train.lr >= 0 && train.lr <= 10,
             "--lr " << train.lr << " must be a finite number in [0, 10]");
  LB_REQUIRE(train.warmup >= 0, "--warmup " << train.warmup << " must be >= 0");
  LB_REQUIRE(train.log_every >= 1, "--log-every " << train.log_every << " must be >= 1");
  LB_REQUIRE(vm["threads"].as<int>() >= 1 && vm["threads"].as<int>() <= 1024,
             "--threads " << vm["threads"].as<int>() << " must be in [1, 1024]");
  set_num_threads(vm["threads"].as<int>());

  Trainer trainer(model, train);
  if (vm.count("resume")) trainer.load(resume);
  const std::string out = vm.count("out") ? vm["out"].as<std::string>() : "";
  const ModelConfig& mc = trainer.model_config();
  std::cout << "train " << train.task << ": " << mc.layers << "x" << mc.hidden << ", " << mc.heads
            << " heads x " << mc.head_dim << ", ffn " << mc.ffn << ", vocab " << mc.vocab_size
            << ", " << normalizer_name(mc.attention) << " + " << position_encoding_name(mc.position)
            << ", " << model_param_count(mc) << " params, batch " << train.batch << ", lr "
            << train.lr << ", " << num_threads() << " threads" << (train.bf16 ? ", bf16" : "")
            << "\n";
  const bool tty = isatty(STDERR_FILENO);
  int64_t tokens = 0;
  double seconds = 0.0;
  while (trainer.steps_done() < train.steps) {
    const StepStats s = trainer.step();
    if (!std::isfinite(s.loss) || !std::isfinite(s.grad_norm)) {
      throw std::runtime_error("training diverged at step " + std::to_string(s.step) + ": loss " +
                               std::to_string(s.loss) + ", gradient norm " +
                               std::to_string(s.grad_norm) + "; no checkpoint written");
    }
    tokens += s.tokens;
    seconds += s.seconds;
    if (s.step % train.log_every == 0 || s.step == train.steps || s.step == 1) {
      if (tty) std::fprintf(stderr, "\r%60s\r", "");
      std::printf("step %6lld  loss %.4f  lr %.3e  grad_norm %.3f  tok/s %.0f\n",
                  static_cast<long long>(s.step), s.loss, s.lr, s.grad_norm,
                  tokens / std::max(seconds, 1e-9));
      std::fflush(stdout);
      tokens = 0, seconds = 0.0;
    } else if (tty) {
      print_progress(s.step, train.steps, s.tokens / std::max(s.seconds, 1e-9));
    }
    if (!out.empty() && train.checkpoint_every > 0 && s.step % train.checkpoint_every == 0) {
      trainer.save_atomic(out);
    }
  }
  if (tty) std::fprintf(stderr, "\r%60s\r", "");
  if (!out.empty()) {
    trainer.save_atomic(out);
    std::cout << "checkpoint: " << out << "/model.safetensors (+ optimizer.safetensors, config.json)\n";
  }
  return 0;
}

}  // namespace lb
