#include "models/config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"

namespace lb {

using nlohmann::json;

void require_known_keys(const json& j, const std::string& path,
                        const std::vector<std::string>& accepted) {
  LB_REQUIRE(j.is_object(), "config " << (path.empty() ? "/" : path) << " must be a JSON object, got "
                                      << j.dump());
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const auto& a : accepted) ok = ok || a == it.key();
    if (!ok) throw UsageError(unknown_name_message("config key", path + "/" + it.key(), [&] {
                                std::vector<std::string> full;
                                for (const auto& a : accepted) full.push_back(path + "/" + a);
                                return full;
                              }()));
  }
}

namespace {

int64_t get_int(const json& j, const std::string& path, int64_t lo, int64_t hi) {
  LB_REQUIRE(j.is_number_integer() || j.is_number_unsigned(),
             "config " << path << " must be an integer, got " << j.dump());
  const int64_t v = j.get<int64_t>();
  LB_REQUIRE(v >= lo && v <= hi,
             "config " << path << " = " << v << " is outside [" << lo << ", " << hi << "]");
  return v;
}

double get_double(const json& j, const std::string& path, double lo, double hi) {
  LB_REQUIRE(j.is_number(), "config " << path << " must be a number, got " << j.dump());
  const double v = j.get<double>();
  LB_REQUIRE(v >= lo && v <= hi,
             "config " << path << " = " << v << " is outside [" << lo << ", " << hi << "]");
  return v;
}

bool get_bool(const json& j, const std::string& path) {
  LB_REQUIRE(j.is_boolean(), "config " << path << " must be true or false, got " << j.dump());
  return j.get<bool>();
}

}  // namespace

ModelConfig model_preset(const std::string& name) {
  ModelConfig c;
  auto set = [&](int64_t L, int64_t C, int64_t H, int64_t D, int64_t F) {
    c.layers = L, c.hidden = C, c.heads = H, c.head_dim = D, c.ffn = F;
  };
  if (name == "tiny") set(2, 16, 4, 4, 32);
  else if (name == "copy") set(2, 256, 16, 16, 1024);
  else if (name == "sort") set(2, 256, 8, 32, 1024);
  else if (name == "reverse") set(6, 256, 8, 32, 1024);
  else if (name == "mqmtar") set(4, 512, 16, 32, 1024);
  else if (name == "flip_flop") set(4, 256, 8, 256, 512);  // head_dim inherited from gemma-2-2b
  else throw UsageError(unknown_name_message("model preset", name, model_preset_names()));
  return c;
}

const std::vector<std::string>& model_preset_names() {
  static const std::vector<std::string> kNames = {"tiny", "copy", "sort", "reverse", "mqmtar",
                                                  "flip_flop"};
  return kNames;
}

ModelConfig model_config_from_json(const json& j, const std::string& path) {
  require_known_keys(j, path,
                     {"preset", "vocab_size", "num_labels", "layers", "hidden", "heads",
                      "head_dim", "ffn", "attention", "position", "rope_theta",
                      "embedding_padding_idx", "init_std"});
  ModelConfig c;
  if (j.contains("preset")) {
    LB_REQUIRE(j["preset"].is_string(), "config " << path << "/preset must be a string");
    c = model_preset(j["preset"].get<std::string>());
  }
  auto p = [&](const char* k) { return path + "/" + k; };
  if (j.contains("vocab_size")) c.vocab_size = get_int(j["vocab_size"], p("vocab_size"), 0, 1 << 24);
  if (j.contains("num_labels")) c.num_labels = get_int(j["num_labels"], p("num_labels"), 0, 1 << 24);
  if (j.contains("layers")) c.layers = get_int(j["layers"], p("layers"), 1, 1024);
  if (j.contains("hidden")) c.hidden = get_int(j["hidden"], p("hidden"), 1, 1 << 16);
  if (j.contains("heads")) c.heads = get_int(j["heads"], p("heads"), 1, 1024);
  if (j.contains("head_dim")) c.head_dim = get_int(j["head_dim"], p("head_dim"), 1, 4096);
  if (j.contains("ffn")) c.ffn = get_int(j["ffn"], p("ffn"), 1, 1 << 18);
  if (j.contains("attention")) {
    try {
      c.attention = normalizer_from_json(j["attention"]);
    } catch (const UsageError& e) {
      throw UsageError("config " + p("attention") + ": " + e.what());
    }
  }
  if (j.contains("position")) {
    LB_REQUIRE(j["position"].is_string(), "config " << p("position") << " must be a string");
    try {
      c.position = position_encoding_from_name(j["position"].get<std::string>());
    } catch (const UsageError& e) {
      throw UsageError("config " + p("position") + ": " + e.what());
    }
  }
  if (j.contains("rope_theta")) c.rope_theta = get_double(j["rope_theta"], p("rope_theta"), 1, 1e12);
  if (j.contains("embedding_padding_idx")) {
    c.embedding_padding_idx =
        get_int(j["embedding_padding_idx"], p("embedding_padding_idx"), -1, 1 << 24);
  }
  if (j.contains("init_std")) c.init_std = get_double(j["init_std"], p("init_std"), 0, 10);
  LB_REQUIRE(c.position != PosEncoding::kRope || c.head_dim % 2 == 0,
             "config " << p("head_dim") << " = " << c.head_dim << " must be even for rope");
  return c;
}

TrainConfig train_config_from_json(const json& j, const std::string& path, TrainConfig c) {
  require_known_keys(j, path,
                     {"task", "task_params", "data_seed", "seed", "steps", "batch", "lr", "warmup",
                      "beta1", "beta2", "eps", "weight_decay", "clip", "bf16", "log_every",
                      "checkpoint_every"});
  auto p = [&](const char* k) { return path + "/" + k; };
  if (j.contains("task")) {
    LB_REQUIRE(j["task"].is_string(), "config " << p("task") << " must be a string");
    c.task = j["task"].get<std::string>();
  }
  if (j.contains("task_params")) {
    const json& tp = j["task_params"];
    LB_REQUIRE(tp.is_object(), "config " << p("task_params") << " must be an object");
    c.task_params.clear();
    for (auto it = tp.begin(); it != tp.end(); ++it) {
      LB_REQUIRE(it.value().is_number() || it.value().is_string(),
                 "config " << p("task_params") << "/" << it.key() << " must be a number");
      c.task_params.emplace_back(it.key(), it.value().is_string()
                                               ? it.value().get<std::string>()
                                               : it.value().dump());
    }
  }
  if (j.contains("data_seed")) c.data_seed = get_int(j["data_seed"], p("data_seed"), 0, INT64_MAX);
  if (j.contains("seed")) c.seed = get_int(j["seed"], p("seed"), 0, INT64_MAX);
  if (j.contains("steps")) c.steps = get_int(j["steps"], p("steps"), 1, INT64_MAX / 2);
  if (j.contains("batch")) c.batch = get_int(j["batch"], p("batch"), 1, 1 << 20);
  if (j.contains("lr")) c.lr = get_double(j["lr"], p("lr"), 0, 10);
  if (j.contains("warmup")) c.warmup = get_int(j["warmup"], p("warmup"), 0, INT64_MAX / 2);
  if (j.contains("beta1")) c.beta1 = get_double(j["beta1"], p("beta1"), 0, 0.999999);
  if (j.contains("beta2")) c.beta2 = get_double(j["beta2"], p("beta2"), 0, 0.999999);
  if (j.contains("eps")) c.eps = get_double(j["eps"], p("eps"), 0, 1);
  if (j.contains("weight_decay")) c.weight_decay = get_double(j["weight_decay"], p("weight_decay"), 0, 10);
  if (j.contains("clip")) c.clip = get_double(j["clip"], p("clip"), 0, 1e9);
  if (j.contains("bf16")) c.bf16 = get_bool(j["bf16"], p("bf16"));
  if (j.contains("log_every")) c.log_every = get_int(j["log_every"], p("log_every"), 1, INT64_MAX / 2);
  if (j.contains("checkpoint_every")) {
    c.checkpoint_every = get_int(j["checkpoint_every"], p("checkpoint_every"), 0, INT64_MAX / 2);
  }
  return c;
}

json to_json(const ModelConfig& c) {
  return json{{"vocab_size", c.vocab_size},
              {"num_labels", c.num_labels},
              {"layers", c.layers},
              {"hidden", c.hidden},
              {"heads", c.heads},
              {"head_dim", c.head_dim},
              {"ffn", c.ffn},
              {"attention", to_json(c.attention)},
              {"position", position_encoding_name(c.position)},
              {"rope_theta", c.rope_theta},
              {"embedding_padding_idx", c.embedding_padding_idx},
              {"init_std", c.init_std}};
}

json to_json(const TrainConfig& c) {
  json tp = json::object();
  for (const auto& kv : c.task_params) tp[kv.first] = kv.second;
  return json{{"task", c.task},       {"task_params", tp},       {"data_seed", c.data_seed},
              {"seed", c.seed},       {"steps", c.steps},        {"batch", c.batch},
              {"lr", c.lr},           {"warmup", c.warmup},      {"beta1", c.beta1},
              {"beta2", c.beta2},     {"eps", c.eps},            {"weight_decay", c.weight_decay},
              {"clip", c.clip},       {"bf16", c.bf16},          {"log_every", c.log_every},
              {"checkpoint_every", c.checkpoint_every}};
}

void load_config_file(const std::string& file, ModelConfig& model, TrainConfig& train) {
  LB_REQUIRE(!std::filesystem::is_directory(file), "config file '" << file << "' is a directory");
  std::ifstream in(file);
  LB_REQUIRE(in, "cannot read config file '" << file << "'");
  const json j = parse_json_strict(in, "config file '" + file + "'");
  require_known_keys(j, "", {"model", "train", "step"});
  if (j.contains("model")) model = model_config_from_json(j["model"], "/model");
  if (j.contains("train")) train = train_config_from_json(j["train"], "/train", train);
}

int64_t model_param_count(const ModelConfig& c) {
  const int64_t C = c.hidden, HD = c.heads * c.head_dim;
  const int64_t per_layer = 4 * C * HD + 3 * C * c.ffn + 4 * C;
  return c.vocab_size * C + c.layers * per_layer + C + c.num_labels * C;
}

double model_train_flops_per_token(const ModelConfig& c, double mean_length) {
  const double C = c.hidden, HD = static_cast<double>(c.heads * c.head_dim);
  const double matmul_params = c.layers * (4 * C * HD + 3 * C * c.ffn) + c.num_labels * C;
  // Causal attention: a query at position i multiplies i+1 keys twice (scores and mix), 2 FLOPs
  // per multiply-add; averaged over a sequence of length T that is 2·2·HD·(T+1)/2 per layer.
  const double attn = c.layers * 2.0 * HD * (mean_length + 1);
  return 3.0 * (2.0 * matmul_params + attn);
}

}  // namespace lb
