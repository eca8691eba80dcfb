// `lengthbench attention`: the attention weights of one sample of a task, teacher-forced through
// a checkpoint (the reference sequence, as evaluation's draft pass feeds it), drawn per layer ×
// head as heatmaps (tools/attention_map.h) in DIR/attention.svg, with the numbers in
// DIR/attention.json: {"task", "length", "sample", "tokens": [T], "relevant": [[...] per row],
// "layers", "heads", "weights": [layer][head][i][0..i]}.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "harness/command.h"
#include "harness/suite.h"
#include "harness/trainer.h"
#include "models/dnnl_util.h"
#include "models/inference.h"
#include "tasks/registry.h"
#include "tasks/split.h"
#include "tools/attention_map.h"
#include "tools/svg_plot.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace lb {

namespace {
constexpr int64_t kMaxPositions = 1024;  // T x T cells per head; longer maps are unreadable
}

int cmd_attention(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()("checkpoint", po::value<std::string>(),
                     "checkpoint directory (config.json + model.safetensors)")(
      "task", po::value<std::string>(), "task (default: the checkpoint's)")(
      "length", po::value<int64_t>(), "nominal length L of the sample")(
      "sample", po::value<int64_t>()->default_value(0), "sample index in the split")(
      "split", po::value<std::string>()->default_value("test"), "test or validation")(
      "seed", po::value<uint64_t>()->default_value(0), "evaluation split seed")(
      "out", po::value<std::string>(), "folder for attention.svg and attention.json (created)")(
      "threads", po::value<int>()->default_value(1), "threads");
  po::variables_map vm;
  if (!parse_command_line(argc, argv,
                          "attention --checkpoint DIR --task T --length L [--sample I] --out DIR",
                          opts, {}, vm)) {
    return 0;
  }
  LB_REQUIRE(vm.count("checkpoint"), "attention needs --checkpoint DIR");
  LB_REQUIRE(vm.count("length"), "attention needs --length L");
  LB_REQUIRE(vm.count("out"), "attention needs --out DIR");
  const std::string dir = vm["checkpoint"].as<std::string>();
  const int64_t L = vm["length"].as<int64_t>(), index = vm["sample"].as<int64_t>();
  LB_REQUIRE(index >= 0, "--sample " << index << " must be >= 0");
  const std::string split = vm["split"].as<std::string>();
  const SplitKind split_kind = parse_eval_split(split, "--split");
  set_num_threads(vm["threads"].as<int>());

  ModelConfig mc;
  TrainConfig tc;
  Trainer::read_checkpoint_config(dir, mc, tc);
  std::string task_name = tc.task;
  auto task_params = tc.task_params;
  if (vm.count("task") && vm["task"].as<std::string>() != tc.task) {
    task_name = vm["task"].as<std::string>();
    task_params.clear();
  }
  const TaskDef& task = find_task(task_name);
  const TaskParams params = make_params(task, task_params);
  const Split s(task, params, vm["seed"].as<uint64_t>(), split_kind, L);
  const Sample sample = s.get(index);
  const int64_t T = sample.length();
  LB_REQUIRE(T <= kMaxPositions, "--length " << L << " gives " << T
                                             << " positions; attention maps "
                                                "are drawn up to "
                                             << kMaxPositions);
  Transformer model(mc);
  Trainer::read_checkpoint_weights(dir, model);
  LB_REQUIRE(task_vocab(task, params).size <= mc.vocab_size,
             "task " << task.name << " needs vocabulary " << task_vocab(task, params).size
                     << " but checkpoint '" << dir << "' has " << mc.vocab_size);

  AttentionMap m;
  m.layers = mc.layers, m.heads = mc.heads, m.T = T;
  m.weights.assign(static_cast<size_t>(m.layers * m.heads * T * T), 0.f);
  const AttnObserver obs = [&](const AttnRowView& v) {
    float* row = m.weights.data() + ((v.layer * m.heads + v.head) * T + v.pos) * T;
    std::copy(v.p, v.p + std::min(v.n, T), row);
  };
  InferenceEngine engine(model);
  engine.reserve_positions(T);
  InferenceSession session(engine, T);
  session.observe(&obs, 0, T);
  std::vector<float> logits;
  session.append(sample.input.data(), T, logits, 0);

  m.tokens = sample.input;
  m.relevant.resize(T);
  for (int64_t i = 0; i < T; ++i) {
    const auto [b, e] = sample.relevant(i);
    m.relevant[i].assign(b, e);
  }
  m.title = std::string(task.name) + ", length " + std::to_string(L) + ", sample " +
            std::to_string(index) + " (" + split +
            "): " + normalizer_display_name(attention_code(mc.attention)) + " + " +
            position_display_name(position_encoding_name(mc.position));

  const std::string out = vm["out"].as<std::string>();
  std::error_code ec;
  fs::create_directories(out, ec);
  LB_REQUIRE(fs::is_directory(out), "--out '" << out << "' is not a directory we can create");
  nlohmann::json j = {{"checkpoint", dir},
                      {"task", task.name},
                      {"length", L},
                      {"sample", index},
                      {"split", split},
                      {"tokens", sample.input},
                      {"relevant", m.relevant},
                      {"layers", m.layers},
                      {"heads", m.heads},
                      {"weights", nlohmann::json::array()}};
  for (int64_t l = 0; l < m.layers; ++l) {
    nlohmann::json layer = nlohmann::json::array();
    for (int64_t h = 0; h < m.heads; ++h) {
      nlohmann::json rows = nlohmann::json::array();
      for (int64_t i = 0; i < T; ++i) {
        const float* r = m.weights.data() + ((l * m.heads + h) * T + i) * T;
        rows.push_back(std::vector<float>(r, r + i + 1));
      }
      layer.push_back(std::move(rows));
    }
    j["weights"].push_back(std::move(layer));
  }
  for (const auto& [name, text] :
       {std::pair<std::string, std::string>{"attention.svg", svg_attention_map(m)},
        {"attention.json", j.dump() + "\n"}}) {
    const std::string path = out + "/" + name;
    std::ofstream f(path + ".tmp");
    LB_REQUIRE(f << text, "cannot write '" << path << "'");
    f.close();
    fs::rename(path + ".tmp", path);
    std::cout << "wrote " << path << "\n";
  }
  return 0;
}

}  // namespace lb
