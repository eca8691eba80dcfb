// `lengthbench tasks`, `gen` and `export`: the task registry from the command line.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/check.h"
#include "core/version.h"
#include "harness/command.h"
#include "harness/format.h"
#include "tasks/registry.h"
#include "tasks/text_format.h"

namespace po = boost::program_options;
namespace fs = std::filesystem;

namespace lb {

namespace {

constexpr int64_t kMaxLength = int64_t{1} << 24;

std::string format_value(double v, bool integer) {
  std::ostringstream os;
  if (integer) {
    os << static_cast<int64_t>(v);
  } else {
    os << v;
  }
  return os.str();
}

std::string join_ids(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
  return out;
}

nlohmann::json sample_json(const TaskDef& task, const std::string& split, int64_t index,
                           const Sample& s) {
  nlohmann::json relevant = nlohmann::json::array();
  for (int64_t i = s.first_target_pos; i < s.length(); ++i) {
    auto [b, e] = s.relevant(i);
    relevant.push_back(std::vector<int32_t>(b, e));
  }
  return {{"task", task.name},     {"split", split},          {"index", index},
          {"src", s.raw.src},      {"trg", s.raw.trg},        {"input", s.input},
          {"target", s.target},    {"loss_mask", s.loss_mask}, {"first_target_pos", s.first_target_pos},
          {"relevant", relevant}};
}

// The dataset manifest written by export: what made the files.
nlohmann::json read_manifest(const std::string& dir) {
  const std::string path = dir + "/lengthbench.json";
  if (!fs::exists(path)) return nullptr;
  std::ifstream in(path);
  LB_REQUIRE(in && !fs::is_directory(path), "cannot read dataset manifest '" << path << "'");
  return parse_json_strict(in, "dataset manifest '" + path + "'");
}

SplitKind split_kind_from_name(const std::string& name) {
  for (SplitKind k : {SplitKind::kTrain, SplitKind::kValidation, SplitKind::kTest}) {
    if (name == split_kind_name(k)) return k;
  }
  throw UsageError("unknown split '" + name + "' (known: train, validation, test)");
}

}  // namespace

int cmd_tasks(int argc, char** argv) {
  po::options_description opts("options");
  std::string format;
  add_format_options(opts, &format, {"text", "json"});
  po::variables_map vm;
  if (!parse_command_line(argc, argv, "tasks [--format text|json]", opts, {}, vm)) return 0;
  const bool as_json = chosen_format(vm, format, {"text", "json"}) == "json";
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : all_tasks()) {
    const TaskParams p = make_params(t, {});
    const Vocab v = task_vocab(t, p);
    if (as_json) {
      nlohmann::json params = nlohmann::json::object();
      for (const auto& d : t.params) params[d.name] = {{"default", d.default_value}, {"help", d.help}};
      out.push_back({{"name", t.name}, {"version", t.version}, {"summary", t.summary},
                     {"vocab_size", v.size}, {"eval_lengths", t.eval_lengths},
                     {"gen_multiplier", t.gen_multiplier}, {"params", params}});
      continue;
    }
    std::cout << t.name << " (v" << t.version << "): " << t.summary << "\n"
              << "    model vocabulary " << v.size << " (data ids 0.." << v.max_data_id
              << ", pad " << v.pad << ", bos " << v.bos << ", eos " << v.eos << ", sep " << v.sep
              << ")";
    if (v.num_labels > v.size) std::cout << ", labels 0.." << v.num_labels - 1;
    std::cout << "\n    evaluation lengths " << t.eval_lengths.front() << ".."
              << t.eval_lengths.back() << "\n";
    for (const auto& d : t.params) {
      std::cout << "    " << d.name << "=" << format_value(d.default_value, d.integer)
                << std::string(std::max<size_t>(1, 20 - strlen(d.name) -
                                                       format_value(d.default_value, d.integer).size()),
                               ' ')
                << d.help << "\n";
    }
  }
  if (as_json) std::cout << out.dump(2) << "\n";
  return 0;
}

namespace {

// A seed: decimal digits only, at most 2^64 - 1 ("-1" is refused, not wrapped around).
uint64_t parse_seed(const std::string& text) {
  bool ok = !text.empty() && text.size() <= 20;
  for (char ch : text) ok = ok && ch >= '0' && ch <= '9';
  errno = 0;
  const unsigned long long v = ok ? std::strtoull(text.c_str(), nullptr, 10) : 0;
  LB_REQUIRE(ok && errno == 0, "--seed '" << text << "' must be an integer in [0, 2^64 - 1]");
  return v;
}

}  // namespace

int cmd_gen(int argc, char** argv) {
  std::string task_name, format = "text", split_name = "test", from;
  int64_t length = 0, count = 1, index = 0;
  std::string seed_text = "0";
  std::vector<std::string> params;
  po::options_description opts("options");
  opts.add_options()("task", po::value(&task_name), "task name (see `lengthbench tasks`)")(
      "length", po::value(&length), "nominal length L; 0 (default) draws training lengths")(
      "count", po::value(&count), "number of samples (default 1)")(
      "index", po::value(&index), "index of the first sample (default 0)")(
      "seed", po::value(&seed_text), "seed (default 0)")(
      "split", po::value(&split_name),
      "train, validation or test (default test; train if no --length)")(
      "param", po::value(&params)->multitoken(), "task parameter key=value (repeatable)")(
      "format", po::value(&format), "text (src | trg per line) or json (one object per line)")(
      "from", po::value(&from), "read split --split NAME from this dataset directory instead");
  po::positional_options_description pos;
  pos.add("task", 1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv,
                          "gen TASK [--length L] [--count N] [--seed S] [--param k=v ...] "
                          "[--format text|json] [--from DIR --split NAME]",
                          opts, pos, vm)) {
    return 0;
  }
  const uint64_t seed = parse_seed(seed_text);
  LB_REQUIRE(format == "text" || format == "json",
             "--format '" << format << "' is not one of: text, json");
  LB_REQUIRE(count >= 0, "--count " << count << " must be >= 0");
  LB_REQUIRE(index >= 0, "--index " << index << " must be >= 0");
  auto overrides = parse_key_values(params, "param");
  auto emit = [&](const TaskDef& task, const std::string& split, int64_t i, const Sample& s) {
    if (format == "json") {
      std::cout << sample_json(task, split, i, s).dump() << "\n";
    } else {
      std::cout << join_ids(s.raw.src) << " | " << join_ids(s.raw.trg) << "\n";
    }
  };
  if (!from.empty()) {
    const nlohmann::json manifest = read_manifest(from);
    if (task_name.empty() && manifest.is_object()) task_name = manifest.value("task", "");
    LB_REQUIRE(!task_name.empty(), "--from " << from << ": no lengthbench.json; name the TASK");
    if (manifest.is_object() && overrides.empty()) {
      for (const auto& [k, v] : manifest["params"].items()) overrides.emplace_back(k, v.dump());
    }
    const TaskDef& task = find_task(task_name);
    const TaskParams p = make_params(task, overrides);
    if (!vm.count("split")) split_name = list_text_splits(from).front().name;
    TextSplitReader reader(task, p, from, split_name);
    Sample s;
    for (int64_t i = 0; i < index + count && reader.next(s); ++i) {
      if (i >= index) emit(task, split_name, i, s);
    }
    return 0;
  }
  LB_REQUIRE(!task_name.empty(), "gen: name a TASK (known: " << [] {
    std::string k;
    for (const auto& n : all_task_names()) k += (k.empty() ? "" : ", ") + n;
    return k;
  }() << ")");
  const TaskDef& task = find_task(task_name);
  const TaskParams p = make_params(task, overrides);
  LB_REQUIRE(length >= 0 && length <= kMaxLength,
             "--length " << length << " is outside [0, " << kMaxLength << "]");
  const SplitKind kind = vm.count("split") ? split_kind_from_name(split_name)
                         : length == 0    ? SplitKind::kTrain
                                          : SplitKind::kTest;
  const Split split(task, p, seed, kind, length);
  for (int64_t i = index; i < index + count; ++i) emit(task, split_kind_name(kind), i, split.get(i));
  return 0;
}

int cmd_export(int argc, char** argv) {
  std::string task_name, out, lengths_text;
  int64_t train_size = 10000, dev_size = 1000, test_size = 1000;
  std::string seed_text = "42";
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<std::string> params;
  po::options_description opts("options");
  opts.add_options()("task", po::value(&task_name), "task name")(
      "out", po::value(&out), "output directory (created)")("train-size", po::value(&train_size),
                                                            "training samples (default 10000)")(
      "dev-size", po::value(&dev_size), "validation samples per length (default 1000)")(
      "test-size", po::value(&test_size), "test samples per length (default 1000)")(
      "lengths", po::value(&lengths_text),
      "evaluation lengths, e.g. 64,128,256 (default: the task's)")(
      "seed", po::value(&seed_text), "seed (default 42, the reference's)")(
      "param", po::value(&params)->multitoken(), "task parameter key=value (repeatable)")(
      "threads", po::value(&threads), "generator threads (output does not depend on it)");
  po::positional_options_description pos;
  pos.add("task", 1);
  po::variables_map vm;
  if (!parse_command_line(argc, argv,
                          "export TASK --out DIR [--train-size N] [--test-size N] "
                          "[--lengths 64,128,...] [--seed S] [--param k=v ...]",
                          opts, pos, vm)) {
    return 0;
  }
  const uint64_t seed = parse_seed(seed_text);
  // Splits of an earlier export would stay beside a manifest that does not list them.
  LB_REQUIRE(!fs::exists(out) || (fs::is_directory(out) && fs::is_empty(out)),
             "export --out '" << out << "' exists and is not an empty folder; give a new one");
  LB_REQUIRE(!task_name.empty(), "export: name a TASK");
  LB_REQUIRE(!out.empty(), "export: --out DIR is required");
  for (auto [name, v] : {std::pair{"train-size", train_size}, {"dev-size", dev_size},
                         {"test-size", test_size}}) {
    LB_REQUIRE(v >= 0, "--" << name << " " << v << " must be >= 0");
  }
  LB_REQUIRE(threads >= 1 && threads <= 1024, "--threads " << threads << " must be in [1, 1024]");
  const TaskDef& task = find_task(task_name);
  const TaskParams p = make_params(task, parse_key_values(params, "param"));
  const std::vector<int64_t> lengths =
      lengths_text.empty() ? task.eval_lengths : parse_int_list(lengths_text, "lengths", 1, kMaxLength);
  // Validate every split before writing anything.
  std::vector<std::pair<std::string, Split>> splits;
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (dev_size > 0) {
      splits.emplace_back(text_split_name(SplitKind::kValidation, static_cast<int>(i), lengths[i]),
                          Split(task, p, seed, SplitKind::kValidation, lengths[i]));
    }
  }
  for (size_t i = 0; i < lengths.size(); ++i) {
    if (test_size > 0) {
      splits.emplace_back(text_split_name(SplitKind::kTest, static_cast<int>(i), lengths[i]),
                          Split(task, p, seed, SplitKind::kTest, lengths[i]));
    }
  }
  if (train_size > 0) splits.emplace_back("train", Split(task, p, seed, SplitKind::kTrain, 0));
  fs::create_directories(out);
  int64_t tokens = 0;
  for (const auto& [name, split] : splits) {
    const int64_t n = split.kind() == SplitKind::kTrain ? train_size
                      : split.kind() == SplitKind::kTest ? test_size
                                                         : dev_size;
    tokens += write_text_split(split, n, out, name, threads);
    std::cerr << "wrote " << out << "/" << name << ".{src,trg}: " << n << " samples\n";
  }
  nlohmann::json manifest = {{"task", task.name}, {"task_version", task.version},
                             {"params", p.values()}, {"seed", seed}, {"lengths", lengths},
                             {"train_size", train_size}, {"dev_size", dev_size},
                             {"test_size", test_size}, {"git_commit", git_commit()}, {"git_dirty", git_dirty()}};
  std::ofstream(out + "/lengthbench.json") << manifest.dump(2) << "\n";
  std::cerr << "exported " << splits.size() << " splits, " << tokens << " tokens, to " << out << "\n";
  return 0;
}

}  // namespace lb
