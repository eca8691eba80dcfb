#include "harness/suite.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <regex>
#include <set>
#include <sstream>

#include "core/check.h"
#include "core/rng.h"
#include "harness/command.h"
#include "models/inference.h"
#include "models/kernels/fused_attention.h"
#include "tasks/registry.h"
#include "tasks/split.h"

namespace lb {

using nlohmann::json;

namespace {

// The opt-in kernels that are on in this process (models/kernels/fused_attention.h,
// models/inference.h): they change a run's numbers in their last bits, so a run's config, and
// with it its hash, records them — only when on, so a plain run's hash stays what it was. A run
// resumed or merged under another setting then meets a config-hash mismatch instead of mixing
// the two kernels' numbers.
nlohmann::json opt_in_kernels() {
  nlohmann::json k = nlohmann::json::object();
  if (fused_attention_enabled()) k["fused_attention"] = true;
  if (blocked_prefill_default()) k["blocked_prefill"] = true;
  return k;
}

// More evaluation lengths than any ladder needs (the paper's have 6-12) is a mistake.
constexpr size_t kMaxEvalLengths = 1000;

// `j[key]` as a list: a missing key gives `fallback`, a scalar gives a list of one.
json as_list(const json& j, const char* key, json fallback) {
  if (!j.contains(key)) return fallback;
  const json& v = j[key];
  if (v.is_array()) {
    LB_REQUIRE(!v.empty(), "suite /" << key << " is an empty list");
    return v;
  }
  return json::array({v});
}

json object_or_empty(const json& j, const char* key, const std::string& path) {
  if (!j.contains(key)) return json::object();
  LB_REQUIRE(j[key].is_object(), "suite " << path << "/" << key << " must be an object");
  return j[key];
}

int64_t get_int(const json& v, const std::string& path, int64_t lo, int64_t hi) {
  LB_REQUIRE(v.is_number_integer(), "suite " << path << " = " << v.dump() << " must be an integer");
  const int64_t x = v.get<int64_t>();
  LB_REQUIRE(x >= lo && x <= hi, "suite " << path << " = " << x << " is outside [" << lo << ", "
                                          << hi << "]");
  return x;
}

auto suite_ints(int64_t lo, int64_t hi) {
  return [lo, hi](const json& v, const std::string& path) { return get_int(v, path, lo, hi); };
}

// "split": test or validation, in EvalSpec and SelectSpec.
template <typename S>
Field<S> split_field() {
  return {"split",
          [](const json& v, const std::string& path, S& s) {
            LB_REQUIRE(v.is_string(),
                       "suite " << path << " = " << v.dump() << " is not one of: test, validation");
            parse_eval_split(v.get<std::string>(), "suite " + path);  // the one list of names
            s.split = v;
          },
          [](const S& s) { return json(s.split); }};
}

const FieldTable<EvalSpec>& eval_fields() {
  static const FieldTable<EvalSpec> kFields({
      split_field<EvalSpec>(),
      {"lengths",
       [](const json& v, const std::string& path, EvalSpec& e) {
         LB_REQUIRE(v.is_array() && !v.empty(),
                    "suite " << path << " must be a non-empty list of lengths");
         LB_REQUIRE(v.size() <= kMaxEvalLengths, "suite " << path << " has " << v.size()
                                                          << " lengths; at most "
                                                          << kMaxEvalLengths);
         e.lengths.clear();
         std::set<int64_t> seen;
         for (size_t i = 0; i < v.size(); ++i) {
           const std::string where = path + "/" + std::to_string(i);
           e.lengths.push_back(get_int(v[i], where, 1, 1 << 24));
           LB_REQUIRE(seen.insert(e.lengths.back()).second,
                      "suite " << where << " = " << e.lengths.back() << " is listed twice");
         }
       },
       [](const EvalSpec& e) { return json(e.lengths); }},
      member("samples", &EvalSpec::samples, suite_ints(1, 1 << 30)),
      member("stop_at_zero", &EvalSpec::stop_at_zero,
             [](const json& v, const std::string& path) {
               LB_REQUIRE(v.is_boolean(), "suite " << path << " must be true or false");
               return v.get<bool>();
             }),
      member("seed", &EvalSpec::seed, suite_ints(0, INT64_MAX)),
  });
  return kFields;
}

const FieldTable<SelectSpec>& select_fields() {
  static const FieldTable<SelectSpec> kFields({
      split_field<SelectSpec>(),
      member("length", &SelectSpec::length, suite_ints(1, 1 << 24)),
      member("samples", &SelectSpec::samples, suite_ints(1, 1 << 30)),
      member("every", &SelectSpec::every, suite_ints(0, INT64_MAX / 2)),
  });
  return kFields;
}

std::string short_number(double v) {
  std::ostringstream os;
  os << std::setprecision(3) << v;
  return os.str();
}

std::string model_code(const ModelConfig& m) {
  std::ostringstream os;
  os << "L" << m.layers << "C" << m.hidden << "H" << m.heads << "D" << m.head_dim << "F" << m.ffn;
  return os.str();
}

}  // namespace

EvalSpec eval_spec_from_json(const json& j, const std::string& path, EvalSpec e) {
  require_known_keys(j, path, eval_fields().keys());
  eval_fields().read(j, path, e);
  return e;
}

SelectSpec select_spec_from_json(const json& j, const std::string& path, SelectSpec s) {
  require_known_keys(j, path, select_fields().keys());
  select_fields().read(j, path, s);
  return s;
}

json to_json(const EvalSpec& e) { return eval_fields().write(e); }
json to_json(const SelectSpec& s) { return select_fields().write(s); }

std::string attention_code(const NormalizerSpec& spec) {
  const std::string name = normalizer_name(spec);
  const json have = to_json(spec), base = to_json(normalizer_from_name(name));
  std::string code = name;
  for (auto it = have.begin(); it != have.end(); ++it) {
    if (it.key() == "name" || (base.contains(it.key()) && base[it.key()] == it.value())) continue;
    code += "-" + it.key() + "=" + (it.value().is_string() ? it.value().get<std::string>()
                                                            : short_number(it.value().get<double>()));
  }
  return code;
}

std::string fnv1a64_hex(const std::string& text) {
  std::ostringstream os;
  os << std::hex << std::setw(16) << std::setfill('0') << hash_tag(text);
  return os.str();
}

Suite expand_suite(const json& j) {
  LB_REQUIRE(j.is_object(), "a suite must be a JSON object");
  require_known_keys(j, "", {"name", "description", "model", "train", "tasks", "attention",
                             "position", "lr", "seeds", "variants", "eval", "select"});
  LB_REQUIRE(j.contains("name") && j["name"].is_string() && !j["name"].get<std::string>().empty(),
             "suite /name must be a non-empty string");
  Suite suite;
  suite.name = j["name"];
  // The name becomes a checkpoint folder and a token in `slurm` scripts: a safe name only.
  check_safe_name("suite /name", suite.name);
  LB_REQUIRE(j.contains("tasks"), "suite /tasks is required (a list of task names or objects)");
  const json base_model = object_or_empty(j, "model", "");
  const json base_train = object_or_empty(j, "train", "");
  model_config_from_json(base_model, "suite /model");
  const TrainConfig base_train_config = train_config_from_json(base_train, "suite /train");
  const EvalSpec base_eval = eval_spec_from_json(object_or_empty(j, "eval", ""), "/eval");
  const SelectSpec base_select = select_spec_from_json(object_or_empty(j, "select", ""), "/select");

  const json tasks = as_list(j, "tasks", json::array());
  const json attentions = as_list(j, "attention", json::array({"softmax"}));
  const json positions = as_list(j, "position", json::array({"nape"}));
  const json lrs = as_list(j, "lr", json::array({base_train_config.lr}));
  const json seeds = as_list(j, "seeds", json::array({0}));
  const json variants = as_list(j, "variants", json::array({json::object()}));
  for (size_t i = 0; i < attentions.size(); ++i) {
    try {
      normalizer_from_json(attentions[i]);
    } catch (const UsageError& e) {
      throw UsageError("suite /attention/" + std::to_string(i) + ": " + e.what());
    }
  }
  for (size_t i = 0; i < positions.size(); ++i) {
    LB_REQUIRE(positions[i].is_string(), "suite /position/" << i << " must be a string");
    try {
      position_encoding_from_name(positions[i]);
    } catch (const UsageError& e) {
      throw UsageError("suite /position/" + std::to_string(i) + ": " + e.what());
    }
  }
  for (size_t i = 0; i < lrs.size(); ++i) {
    LB_REQUIRE(lrs[i].is_number() && lrs[i].get<double>() > 0 && lrs[i].get<double>() <= 10,
               "suite /lr/" << i << " = " << lrs[i].dump() << " must be a number in (0, 10]");
  }
  for (size_t i = 0; i < seeds.size(); ++i) get_int(seeds[i], "/seeds/" + std::to_string(i), 0, INT64_MAX);
  for (size_t v = 0; v < variants.size(); ++v) {
    const std::string path = "/variants/" + std::to_string(v);
    LB_REQUIRE(variants[v].is_object(), "suite " << path << " must be an object");
    require_known_keys(variants[v], path, {"name", "model", "train"});
    LB_REQUIRE(variants.size() == 1 || (variants[v].contains("name") && variants[v]["name"].is_string()),
               "suite " << path << "/name is required when there are several variants");
    if (variants[v].contains("name")) {
      LB_REQUIRE(variants[v]["name"].is_string(), "suite " << path << "/name must be a string");
      check_safe_name("suite " + path + "/name", variants[v]["name"]);
    }
    model_config_from_json(object_or_empty(variants[v], "model", path), "suite " + path + "/model");
    train_config_from_json(object_or_empty(variants[v], "train", path), "suite " + path + "/train");
  }

  std::set<std::string> keys;
  for (size_t t = 0; t < tasks.size(); ++t) {
    const std::string tpath = "/tasks/" + std::to_string(t);
    json entry = tasks[t].is_string() ? json{{"task", tasks[t]}} : tasks[t];
    LB_REQUIRE(entry.is_object() && entry.contains("task") && entry["task"].is_string(),
               "suite " << tpath << " must be a task name or an object with \"task\"");
    require_known_keys(entry, tpath, {"task", "model", "train", "eval", "select"});
    const TaskDef& task = [&]() -> const TaskDef& {
      try {
        return find_task(entry["task"]);
      } catch (const UsageError& e) {
        throw UsageError("suite " + tpath + "/task: " + e.what());
      }
    }();
    const json entry_model = object_or_empty(entry, "model", tpath);
    const json entry_train = object_or_empty(entry, "train", tpath);
    model_config_from_json(entry_model, "suite " + tpath + "/model");
    train_config_from_json(entry_train, "suite " + tpath + "/train");
    EvalSpec eval =
        eval_spec_from_json(object_or_empty(entry, "eval", tpath), tpath + "/eval", base_eval);
    SelectSpec select = select_spec_from_json(object_or_empty(entry, "select", tpath),
                                              tpath + "/select", base_select);
    if (eval.lengths.empty()) eval.lengths = task.eval_lengths;
    if (select.length == 0) select.length = eval.lengths[std::min<size_t>(3, eval.lengths.size() - 1)];

    for (const json& attention : attentions) {
      for (const json& position : positions) {
        for (const json& variant : variants) {
          for (const json& lr : lrs) {
            for (const json& seed : seeds) {
              json model = base_model;
              model.merge_patch(entry_model);
              model.merge_patch(object_or_empty(variant, "model", ""));
              model["attention"] = attention;
              model["position"] = position;
              json train = base_train;
              train.merge_patch(entry_train);
              train.merge_patch(object_or_empty(variant, "train", ""));
              train["task"] = task.name;
              train["lr"] = lr;
              train["seed"] = seed;
              train["data_seed"] = seed;
              RunSpec r;
              r.suite = suite.name;
              r.task = task.name;
              r.task_version = task.version;
              r.variant = variant.value("name", "");
              r.seed = seed.get<uint64_t>();
              r.model = model_config_from_json(model, "suite " + tpath + "/model");
              r.train = train_config_from_json(train, "suite " + tpath + "/train");
              LB_REQUIRE(r.train.checkpoint_every % r.train.log_every == 0,
                         "suite " << tpath << "/train: checkpoint_every " << r.train.checkpoint_every
                                  << " must be a multiple of log_every " << r.train.log_every
                                  << " (logged rows average whole intervals, also after a resume)");
              const TaskParams params = make_params(task, r.train.task_params);
              for (int64_t L : eval.lengths) Split(task, params, eval.seed, SplitKind::kTest, L);
              Split(task, params, eval.seed, SplitKind::kValidation, select.length);
              r.train_max_length = train_length_range(params).second;
              LB_REQUIRE(select.length > r.train_max_length,
                         "suite " << tpath << "/select/length " << select.length
                                  << " is at or below the longest training length "
                                  << r.train_max_length
                                  << "; selection must be out of distribution: give a longer "
                                     "length (default: the 4th evaluation length)");
              r.eval = eval;
              r.select = select;
              r.config = {{"model", to_json(r.model)},
                          {"train", to_json(r.train)},
                          {"task_version", task.version},
                          {"eval", to_json(eval)},
                          {"select", to_json(select)}};
              if (const nlohmann::json k = opt_in_kernels(); !k.empty()) r.config["kernels"] = k;
              r.config_hash = fnv1a64_hex(r.config.dump());
              r.key = suite.name + "/" + task.name + ".v" + std::to_string(task.version) + "/" +
                      attention_code(r.model.attention) + "/" +
                      position_encoding_name(r.model.position) + "/" +
                      (r.variant.empty() ? model_code(r.model) : r.variant) + "/lr" +
                      short_number(r.train.lr) + "/s" + std::to_string(r.seed);
              // Every key component is a folder under the checkpoint root: none may escape it.
              for (size_t b = 0, e = 0; b <= r.key.size(); b = e + 1) {
                e = std::min(r.key.find('/', b), r.key.size());
                check_safe_name("run key component", r.key.substr(b, e - b));
              }
              LB_REQUIRE(keys.insert(r.key).second,
                         "suite " << tpath << ": two runs share the key " << r.key
                                  << " (duplicate list entries?)");
              suite.runs.push_back(std::move(r));
            }
          }
        }
      }
    }
  }
  std::sort(suite.runs.begin(), suite.runs.end(),
            [](const RunSpec& a, const RunSpec& b) { return a.key < b.key; });
  return suite;
}

Suite load_suite(const std::string& file) {
  LB_REQUIRE(!std::filesystem::is_directory(file), "suite file '" << file << "' is a directory");
  std::ifstream in(file);
  LB_REQUIRE(in, "cannot read suite file '" << file << "'");
  const json j = parse_json_strict(in, "suite file '" + file + "'");
  try {
    return expand_suite(j);
  } catch (const UsageError& e) {
    throw UsageError(file + ": " + e.what());
  }
}

std::vector<RunSpec> filter_runs(const std::vector<RunSpec>& runs, const std::string& regex) {
  std::regex re;
  try {
    re = std::regex(regex, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    throw UsageError("--filter '" + regex + "' is not a valid regular expression (" + e.what() + ")");
  }
  std::vector<RunSpec> out;
  for (const auto& r : runs) {
    if (std::regex_search(r.key, re)) out.push_back(r);
  }
  return out;
}

std::pair<int64_t, int64_t> parse_shard(const std::string& text) {
  const auto slash = text.find('/');
  LB_REQUIRE(slash != std::string::npos, "--shard '" << text << "' is not of the form i/n (e.g. 0/4)");
  const int64_t i = parse_int(text.substr(0, slash), "--shard index");
  const int64_t n = parse_int(text.substr(slash + 1), "--shard count");
  LB_REQUIRE(n >= 1 && i >= 0 && i < n, "--shard " << text << " needs 0 <= i < n");
  return {i, n};
}

std::vector<RunSpec> shard_runs(const std::vector<RunSpec>& runs, int64_t index, int64_t count) {
  std::vector<RunSpec> out;
  for (const auto& r : runs) {
    if (static_cast<int64_t>(hash_tag(r.key) % static_cast<uint64_t>(count)) == index) out.push_back(r);
  }
  return out;
}

double estimate_run_flops(const RunSpec& run) {
  const TaskDef& task = find_task(run.task);
  const TaskParams params = make_params(task, run.train.task_params);
  const Split train(task, params, run.train.data_seed, SplitKind::kTrain, 0);
  double mean_len = 0;
  for (int i = 0; i < 32; ++i) mean_len += static_cast<double>(train.get(i).length()) / 32;
  ModelConfig m = run.model;
  if (m.vocab_size == 0) m.vocab_size = task_vocab(task, params).size;
  if (m.num_labels == 0) m.num_labels = task_vocab(task, params).num_labels;
  double flops = model_train_flops_per_token(m, mean_len) * mean_len * run.train.batch *
                 static_cast<double>(run.train.steps);
  // Inference costs about a third of a training step per token, plus the causal attention.
  auto eval_flops = [&](int64_t L, int64_t samples) {
    const Split s(task, params, run.eval.seed, SplitKind::kTest, L);
    const double T = static_cast<double>(s.get(0).length());
    return samples * (model_train_flops_per_token(m, T) / 3.0 * T);
  };
  const int64_t selections = run.select.every > 0 ? run.train.steps / run.select.every + 1 : 1;
  flops += selections * eval_flops(run.select.length, run.select.samples);
  for (int64_t L : run.eval.lengths) flops += eval_flops(L, run.eval.samples);
  return flops;
}

}  // namespace lb
