#include "harness/trainer.h"

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "models/dnnl_util.h"
#include "models/profile.h"
#include "models/safetensors.h"
#include "models/sha256.h"
#include "tasks/registry.h"

namespace lb {

namespace {

constexpr const char* kOptimizerFormat = "lengthbench-adamw-1";

ModelConfig resolve_vocab(ModelConfig m, const TrainConfig& t) {
  const TaskDef& task = find_task(t.task);
  const Vocab v = task_vocab(task, make_params(task, t.task_params));
  if (m.vocab_size == 0) m.vocab_size = v.size;
  if (m.num_labels == 0) m.num_labels = std::max<int64_t>(v.num_labels, m.vocab_size);
  LB_REQUIRE(m.vocab_size >= v.size, "model vocab_size " << m.vocab_size
                                                         << " is smaller than task '" << t.task
                                                         << "' needs (" << v.size << ")");
  LB_REQUIRE(m.num_labels >= v.num_labels, "model num_labels "
                                               << m.num_labels << " is smaller than task '"
                                               << t.task << "' needs (" << v.num_labels << ")");
  return m;
}

}  // namespace

Trainer::Trainer(ModelConfig model, TrainConfig train)
    : train_(std::move(train)),
      model_(resolve_vocab(std::move(model), train_)),
      opt_(model_.params(), train_.beta1, train_.beta2, train_.eps, train_.weight_decay) {
  const TaskDef& task = find_task(train_.task);
  split_ = std::make_unique<Split>(task, make_params(task, train_.task_params), train_.data_seed,
                                   SplitKind::kTrain, 0);
  model_.init(train_.seed);
}

Batch Trainer::next_batch() const {
  std::vector<Sample> samples(train_.batch);
  for (int64_t i = 0; i < train_.batch; ++i) samples[i] = split_->get(data_position_ + i);
  return make_batch(samples);
}

StepStats Trainer::step() {
  const auto t0 = std::chrono::steady_clock::now();
  set_matmul_bf16(train_.bf16);
  Batch batch;
  {
    ProfileScope prof("data");
    batch = next_batch();
  }
  StepStats s;
  s.lr = lr_at(train_, opt_.step());
  model_.zero_grad();
  s.loss = model_.forward(batch);
  model_.backward();
  {
    ProfileScope prof("optimizer");
    s.grad_norm = global_grad_norm(model_.params());
    clip_grads(model_.params(), s.grad_norm, train_.clip);
    opt_.update(model_.params(), s.lr);
  }
  data_position_ += train_.batch;
  s.step = opt_.step();
  s.tokens = batch.rows();
  s.targets = batch.n_targets;
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  profile_step_end(s.seconds);
  return s;
}

namespace {

constexpr const char* kCheckpointFiles[] = {"model.safetensors", "optimizer.safetensors",
                                            "config.json"};

void require_finite(const std::vector<float>& v, const std::string& what) {
  for (float x : v) {
    if (!std::isfinite(x))
      throw std::runtime_error(what + " holds a non-finite value (NaN or inf)");
  }
}

}  // namespace

std::string Trainer::save(const std::string& dir, const std::string& run_config_hash) const {
  for (size_t i = 0; i < model_.params().size(); ++i) {
    const std::string& name = model_.params()[i].name;
    require_finite(model_.params()[i].value, "refusing to save: weight '" + name + "'");
    require_finite(opt_.exp_avg()[i], "refusing to save: optimizer moment of '" + name + "'");
    require_finite(opt_.exp_avg_sq()[i], "refusing to save: optimizer moment of '" + name + "'");
  }
  std::filesystem::create_directories(dir);
  const auto& params = model_.params();
  std::vector<StTensor> weights(params.size()), moments(2 * params.size());
  std::vector<std::string> names, moment_names;
  std::vector<const StTensor*> wp, mp;
  for (size_t i = 0; i < params.size(); ++i) {
    weights[i] = {params[i].shape, params[i].value};
    moments[2 * i] = {params[i].shape, opt_.exp_avg()[i]};
    moments[2 * i + 1] = {params[i].shape, opt_.exp_avg_sq()[i]};
    names.push_back(params[i].name);
    wp.push_back(&weights[i]);
    moment_names.push_back("exp_avg." + params[i].name);
    moment_names.push_back("exp_avg_sq." + params[i].name);
    mp.push_back(&moments[2 * i]);
    mp.push_back(&moments[2 * i + 1]);
  }
  write_safetensors(dir + "/model.safetensors", names, wp, {{"format", "pt"}});
  write_safetensors(dir + "/optimizer.safetensors", moment_names, mp,
                    {{"format", kOptimizerFormat},
                     {"step", std::to_string(opt_.step())},
                     {"data_position", std::to_string(data_position_)}});
  nlohmann::json cfg = {{"model", to_json(model_.config())}, {"train", to_json(train_)}};
  // For readers in other languages: task parameters typed (numbers as numbers), and the step.
  for (auto& v : cfg["train"]["task_params"]) {
    try {
      const nlohmann::json n = nlohmann::json::parse(v.get<std::string>());
      if (n.is_number()) v = n;
    } catch (const nlohmann::json::exception&) {
    }
  }
  cfg["step"] = opt_.step();
  auto write_text = [&](const std::string& file, const std::string& text) {
    std::ofstream out(dir + "/" + file);
    out << text;
    out.close();
    if (!out) throw std::runtime_error("cannot write '" + dir + "/" + file + "' (disk full?)");
  };
  write_text("config.json", cfg.dump(2) + "\n");
  nlohmann::json manifest = {{"step", opt_.step()}, {"run_config_hash", run_config_hash}};
  for (const char* f : kCheckpointFiles) manifest["sha256"][f] = sha256_file_hex(dir + "/" + f);
  write_text("manifest.json", manifest.dump(2) + "\n");
  return manifest["sha256"]["model.safetensors"];
}

std::string Trainer::save_atomic(const std::string& dir, const std::string& run_config_hash) const {
  namespace fs = std::filesystem;
  const fs::path tmp = dir + ".tmp", old = dir + ".old";
  fs::remove_all(tmp);
  const std::string digest = save(tmp.string(), run_config_hash);
  fs::remove_all(old);
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(tmp, dir);
  fs::remove_all(old);
  return digest;
}

std::string Trainer::checkpoint_to_resume(const std::string& dir) {
  namespace fs = std::filesystem;
  if (fs::exists(fs::path(dir) / "config.json")) return dir;
  if (fs::exists(fs::path(dir + ".old") / "config.json")) return dir + ".old";
  return "";
}

nlohmann::json Trainer::verify_checkpoint(const std::string& dir) {
  const std::string path = dir + "/manifest.json";
  if (!std::filesystem::exists(path)) return nullptr;
  std::ifstream in(path);
  const nlohmann::json m = parse_json_strict(in, "checkpoint manifest '" + path + "'");
  LB_REQUIRE(m.is_object() && m.contains("sha256") && m["sha256"].is_object(),
             "checkpoint manifest '" << path << "' has no \"sha256\" object");
  for (const char* f : kCheckpointFiles) {
    LB_REQUIRE(m["sha256"].contains(f) && m["sha256"][f].is_string(),
               "checkpoint manifest '" << path << "' has no sha256 of " << f);
    const std::string have = sha256_file_hex(dir + "/" + f);
    if (have != m["sha256"][f].get<std::string>()) {
      throw std::runtime_error("checkpoint '" + dir + "': " + f + " has sha256 " + have +
                               ", its manifest says " + m["sha256"][f].get<std::string>() +
                               " (corrupted, or mixed with another checkpoint's files)");
    }
  }
  return m;
}

void Trainer::read_checkpoint_config(const std::string& dir, ModelConfig& model,
                                     TrainConfig& train) {
  LB_REQUIRE(std::filesystem::is_regular_file(dir + "/config.json"),
             "'" << dir << "' is not a checkpoint directory (no config.json)");
  load_config_file(dir + "/config.json", model, train);
}

void Trainer::read_checkpoint_weights(const std::string& dir, Transformer& model) {
  verify_checkpoint(dir);
  const StFile f = read_safetensors(dir + "/model.safetensors");
  LB_REQUIRE(f.tensors.size() == model.params().size(),
             "checkpoint '" << dir << "' holds " << f.tensors.size() << " tensors; the model built "
                            << "from its config has " << model.params().size()
                            << ": config and weights disagree (e.g. layers)");
  for (const auto& [name, t] : f.tensors) {
    require_finite(t.data, "checkpoint '" + dir + "' tensor '" + name + "'");
  }
  for (Param& p : model.params()) {
    auto it = f.tensors.find(p.name);
    LB_REQUIRE(it != f.tensors.end(), "checkpoint '" << dir << "' lacks tensor '" << p.name << "'");
    LB_REQUIRE(it->second.shape == p.shape,
               "checkpoint '" << dir << "' tensor '" << p.name << "' has a different shape");
    p.value = it->second.data;
  }
}

void Trainer::load(const std::string& dir) {
  verify_checkpoint(dir);
  const StFile w = read_safetensors(dir + "/model.safetensors");
  const StFile o = read_safetensors(dir + "/optimizer.safetensors");
  auto meta = [&](const char* key) -> std::string {
    auto it = o.metadata.find(key);
    LB_REQUIRE(it != o.metadata.end(), "'" << dir << "/optimizer.safetensors' has no '" << key
                                           << "' metadata: not a lengthbench checkpoint");
    return it->second;
  };
  LB_REQUIRE(meta("format") == kOptimizerFormat,
             "'" << dir << "/optimizer.safetensors' has format '" << meta("format")
                 << "', expected '" << kOptimizerFormat << "'");
  auto& params = model_.params();
  LB_REQUIRE(w.tensors.size() == params.size(),
             "checkpoint '" << dir << "' holds " << w.tensors.size() << " tensors; this model has "
                            << params.size() << ": a different model");
  auto fetch = [&](const StFile& f, const std::string& name, const Param& p) -> const StTensor& {
    auto it = f.tensors.find(name);
    LB_REQUIRE(it != f.tensors.end(), "checkpoint '" << dir << "' lacks tensor '" << name << "'");
    LB_REQUIRE(it->second.shape == p.shape,
               "checkpoint '" << dir << "' tensor '" << name << "' has a different shape");
    return it->second;
  };
  // Validate everything before changing anything.
  for (const Param& p : params) {
    require_finite(fetch(w, p.name, p).data, "checkpoint '" + dir + "' weight '" + p.name + "'");
    require_finite(fetch(o, "exp_avg." + p.name, p).data,
                   "checkpoint '" + dir + "' optimizer moment of '" + p.name + "'");
    require_finite(fetch(o, "exp_avg_sq." + p.name, p).data,
                   "checkpoint '" + dir + "' optimizer moment of '" + p.name + "'");
  }
  for (size_t i = 0; i < params.size(); ++i) {
    params[i].value = fetch(w, params[i].name, params[i]).data;
    opt_.exp_avg()[i] = fetch(o, "exp_avg." + params[i].name, params[i]).data;
    opt_.exp_avg_sq()[i] = fetch(o, "exp_avg_sq." + params[i].name, params[i]).data;
  }
  try {
    opt_.set_step(std::stoll(meta("step")));
    data_position_ = std::stoll(meta("data_position"));
  } catch (const std::logic_error&) {
    throw UsageError("checkpoint '" + dir + "' has a malformed step or data_position");
  }
  model_.zero_grad();
}

}  // namespace lb
