#include "models/config.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/check.h"
#include "core/field_table.h"
#include "core/name_table.h"

namespace lb {

using nlohmann::json;

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

namespace {

// The paper's per-task sizes (the released configs/experiment/*.yaml); `kind` is the row's index
// (NameTable's key).
struct Preset {
  const char* name;
  int kind;
  int64_t layers, hidden, heads, head_dim, ffn;
};

const NameTable<Preset>& preset_table() {
  //                            name  kind   L    C   H    D     F
  static const NameTable<Preset> kTable("model preset", {{"tiny", 0, 2, 16, 4, 4, 32},
                                                         {"copy", 1, 2, 256, 16, 16, 1024},
                                                         {"sort", 2, 2, 256, 8, 32, 1024},
                                                         {"reverse", 3, 6, 256, 8, 32, 1024},
                                                         {"mqmtar", 4, 4, 512, 16, 32, 1024},
                                                         // head_dim inherited from gemma-2-2b
                                                         {"flip_flop", 5, 4, 256, 8, 256, 512}});
  return kTable;
}

// Config readers of one JSON value at `path`, validating it.
auto ints(int64_t lo, int64_t hi) {
  return [lo, hi](const json& v, const std::string& path) { return get_int(v, path, lo, hi); };
}
auto reals(double lo, double hi) {
  return [lo, hi](const json& v, const std::string& path) { return get_double(v, path, lo, hi); };
}
auto bools() {
  return [](const json& v, const std::string& path) { return get_bool(v, path); };
}

// read(), with a UsageError from it prefixed by the config path.
template <typename T, typename Read>
T with_path(const std::string& path, Read read) {
  try {
    return read();
  } catch (const UsageError& e) {
    throw UsageError("config " + path + ": " + e.what());
  }
}

const FieldTable<ModelConfig>& model_fields() {
  using M = ModelConfig;
  static const FieldTable<M> kFields({
      member("vocab_size", &M::vocab_size, ints(0, 1 << 24)),
      member("num_labels", &M::num_labels, ints(0, 1 << 24)),
      member("layers", &M::layers, ints(1, 1024)),
      member("hidden", &M::hidden, ints(1, 1 << 16)),
      member("heads", &M::heads, ints(1, 1024)),
      member("head_dim", &M::head_dim, ints(1, 4096)),
      member("ffn", &M::ffn, ints(1, 1 << 18)),
      {"attention",
       [](const json& v, const std::string& path, M& c) {
         c.attention = with_path<NormalizerSpec>(path, [&] { return normalizer_from_json(v); });
       },
       [](const M& c) { return to_json(c.attention); }},
      {"position",
       [](const json& v, const std::string& path, M& c) {
         LB_REQUIRE(v.is_string(), "config " << path << " must be a string");
         c.position = with_path<PosEncoding>(
             path, [&] { return position_encoding_from_name(v.get<std::string>()); });
       },
       [](const M& c) { return json(position_encoding_name(c.position)); }},
      member("rope_theta", &M::rope_theta, reals(1, 1e12)),
      member("embedding_padding_idx", &M::embedding_padding_idx, ints(-1, 1 << 24)),
      member("init_std", &M::init_std, reals(0, 10)),
  });
  return kFields;
}

const FieldTable<TrainConfig>& train_fields() {
  using T = TrainConfig;
  static const FieldTable<T> kFields({
      {"task",
       [](const json& v, const std::string& path, T& c) {
         LB_REQUIRE(v.is_string(), "config " << path << " must be a string");
         c.task = v.get<std::string>();
       },
       [](const T& c) { return json(c.task); }},
      {"task_params",
       [](const json& tp, const std::string& path, T& c) {
         LB_REQUIRE(tp.is_object(), "config " << path << " must be an object");
         c.task_params.clear();
         for (auto it = tp.begin(); it != tp.end(); ++it) {
           LB_REQUIRE(it.value().is_number() || it.value().is_string(),
                      "config " << path << "/" << it.key() << " must be a number");
           c.task_params.emplace_back(it.key(), it.value().is_string()
                                                    ? it.value().get<std::string>()
                                                    : it.value().dump());
         }
       },
       [](const T& c) {
         json tp = json::object();
         for (const auto& kv : c.task_params) tp[kv.first] = kv.second;
         return tp;
       }},
      member("data_seed", &T::data_seed, ints(0, INT64_MAX)),
      member("seed", &T::seed, ints(0, INT64_MAX)),
      member("steps", &T::steps, ints(1, INT64_MAX / 2)),
      member("batch", &T::batch, ints(1, 1 << 20)),
      member("lr", &T::lr, reals(0, 10)),
      member("warmup", &T::warmup, ints(0, INT64_MAX / 2)),
      member("beta1", &T::beta1, reals(0, 0.999999)),
      member("beta2", &T::beta2, reals(0, 0.999999)),
      member("eps", &T::eps, reals(0, 1)),
      member("weight_decay", &T::weight_decay, reals(0, 10)),
      member("clip", &T::clip, reals(0, 1e9)),
      member("bf16", &T::bf16, bools()),
      member("log_every", &T::log_every, ints(1, INT64_MAX / 2)),
      member("checkpoint_every", &T::checkpoint_every, ints(0, INT64_MAX / 2)),
  });
  return kFields;
}

}  // namespace

ModelConfig model_preset(const std::string& name) {
  const Preset& p = preset_table().row_named(name);
  ModelConfig c;
  c.layers = p.layers, c.hidden = p.hidden, c.heads = p.heads, c.head_dim = p.head_dim,
  c.ffn = p.ffn;
  return c;
}

const std::vector<std::string>& model_preset_names() { return preset_table().names(); }

ModelConfig model_config_from_json(const json& j, const std::string& path) {
  std::vector<std::string> accepted = {"preset"};
  for (const auto& k : model_fields().keys()) accepted.push_back(k);
  require_known_keys(j, path, accepted);
  ModelConfig c;
  if (j.contains("preset")) {
    LB_REQUIRE(j["preset"].is_string(), "config " << path << "/preset must be a string");
    c = model_preset(j["preset"].get<std::string>());
  }
  model_fields().read(j, path, c);
  LB_REQUIRE(c.position != PosEncoding::kRope || c.head_dim % 2 == 0,
             "config " << path << "/head_dim = " << c.head_dim << " must be even for rope");
  return c;
}

TrainConfig train_config_from_json(const json& j, const std::string& path, TrainConfig c) {
  require_known_keys(j, path, train_fields().keys());
  train_fields().read(j, path, c);
  return c;
}

json to_json(const ModelConfig& c) { return model_fields().write(c); }

json to_json(const TrainConfig& c) { return train_fields().write(c); }

void load_config_file(const std::string& file, ModelConfig& model, TrainConfig& train) {
  LB_REQUIRE(!std::filesystem::is_directory(file), "config file '" << file << "' is a directory");
  std::ifstream in(file);
  LB_REQUIRE(in, "cannot read config file '" << file << "'");
  const json j = parse_json_strict(in, "config file '" + file + "'");
  require_known_keys(j, "", {"model", "train", "step"});
  if (j.contains("model")) model = model_config_from_json(j["model"], "/model");
  if (j.contains("train")) train = train_config_from_json(j["train"], "/train", train);
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
