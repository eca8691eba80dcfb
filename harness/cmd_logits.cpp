// `lengthbench logits`: the output logits of a checkpoint for one token sequence, one row per
// position, as JSON {"engine": E, "tokens": [...], "logits": [[...], ...]} with every fp32 value
// printed exactly. Three engines: `train` (Transformer::forward over a one-sample packed batch),
// `infer` (InferenceEngine prefill into a KV cache, logits for every position) and `decode` (the
// first token, then one-token cached decode steps: topk's div-2 rule counts i + 1 keys there,
// normalizer.h). Used by
// tools/torch_crosscheck.py to compare both against an independent PyTorch model of the spec.
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"
#include "harness/command.h"
#include "harness/trainer.h"
#include "models/dnnl_util.h"
#include "models/inference.h"
#include "models/safetensors.h"

namespace po = boost::program_options;

namespace lb {

namespace {

// "3 17 0 5" into ids; every item an integer in [0, vocab).
std::vector<int32_t> parse_tokens(const std::string& text, int64_t vocab) {
  std::istringstream in(text);
  std::vector<int32_t> ids;
  std::string item;
  while (in >> item) {
    int64_t v = 0;
    try {
      v = parse_int(item, "--tokens item");
    } catch (const UsageError& e) {
      throw UsageError(std::string(e.what()) + "; accepted: token ids in [0, " +
                       std::to_string(vocab) + ") separated by spaces");
    }
    LB_REQUIRE(v >= 0 && v < vocab, "--tokens item " << v << " is outside the model vocabulary; "
                                                     << "accepted: token ids in [0, " << vocab << ")");
    ids.push_back(static_cast<int32_t>(v));
  }
  LB_REQUIRE(!ids.empty(), "--tokens is empty; accepted: token ids in [0, " << vocab
                                                                            << ") separated by spaces");
  return ids;
}

}  // namespace

int cmd_logits(int argc, char** argv) {
  po::options_description opts("options");
  opts.add_options()
      ("checkpoint", po::value<std::string>(), "checkpoint directory (config.json + model.safetensors)")
      ("tokens", po::value<std::string>(), "input token ids separated by spaces, e.g. \"35 3 1 4 36\"")
      ("engine", po::value<std::string>()->default_value("train"),
       "train (Transformer::forward), infer (KV-cache prefill, models/inference.h) or decode "
       "(one-token KV-cache steps)")
      ("threads", po::value<int>()->default_value(1), "threads");
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "logits --checkpoint DIR --tokens \"i j k ...\" [options]",
                          opts, {}, vm)) {
    return 0;
  }
  LB_REQUIRE(vm.count("checkpoint"), "logits needs --checkpoint DIR");
  LB_REQUIRE(vm.count("tokens"), "logits needs --tokens \"i j k ...\"");
  const std::string engine = vm["engine"].as<std::string>();
  LB_REQUIRE(engine == "train" || engine == "infer" || engine == "decode",
             "--engine '" << engine << "' is not known; accepted: train, infer, decode");
  const int threads = vm["threads"].as<int>();
  LB_REQUIRE(threads >= 1, "--threads " << threads << " must be >= 1");
  set_num_threads(threads);

  const std::string dir = vm["checkpoint"].as<std::string>();
  ModelConfig mc;
  TrainConfig tc;
  Trainer::read_checkpoint_config(dir, mc, tc);
  LB_REQUIRE(mc.vocab_size > 0 && mc.num_labels > 0,
             "checkpoint '" << dir << "' config has no vocab_size/num_labels");
  const std::vector<int32_t> ids = parse_tokens(vm["tokens"].as<std::string>(), mc.vocab_size);
  const int64_t T = static_cast<int64_t>(ids.size());
  Transformer model(mc);
  Trainer::read_checkpoint_weights(dir, model);

  const int64_t Vo = mc.num_labels;
  std::vector<float> logits;
  if (engine == "train") {
    Batch batch;  // one sample, no targets: the loss is 0 and only the logits are read
    batch.offsets = {0, T};
    batch.ids = ids;
    batch.targets.assign(T, -1);
    batch.mask.assign(T, 0);
    for (int64_t t = 0; t < T; ++t) batch.pos.push_back(static_cast<int32_t>(t));
    model.forward(batch);
    logits = model.logits();
  } else {
    InferenceEngine eng(model);
    eng.reserve_positions(T);
    InferenceSession session(eng, T);
    if (engine == "infer") {
      session.append(ids.data(), T, logits, 0);
    } else {  // decode: one append per token, each giving its position's logits
      std::vector<float> row;
      for (int64_t t = 0; t < T; ++t) {
        session.append(&ids[t], 1, row);
        logits.insert(logits.end(), row.begin(), row.end());
      }
    }
  }
  LB_CHECK(static_cast<int64_t>(logits.size()) == T * Vo,
           "engine " << engine << " returned " << logits.size() << " logits, expected " << T * Vo);

  nlohmann::json rows = nlohmann::json::array();
  for (int64_t t = 0; t < T; ++t) {
    nlohmann::json row = nlohmann::json::array();
    for (int64_t v = 0; v < Vo; ++v) row.push_back(static_cast<double>(logits[t * Vo + v]));
    rows.push_back(std::move(row));
  }
  const nlohmann::json out = {{"engine", engine}, {"tokens", ids}, {"logits", rows}};
  std::cout << out.dump() << "\n";
  return 0;
}

}  // namespace lb
