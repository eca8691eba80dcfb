#include "harness/overrides.h"

#include <fstream>

#include "core/check.h"

namespace lb {

using nlohmann::json;

namespace {

bool is_index(const std::string& s) {
  return !s.empty() && s.size() < 9 && s.find_first_not_of("0123456789") == std::string::npos;
}

std::string joined(const std::vector<std::string>& path, size_t n) {
  std::string out;
  for (size_t i = 0; i < n && i < path.size(); ++i) out += (i ? "." : "") + path[i];
  return out;
}

// The name a list item answers to: itself when a string, else its "task" or "name".
std::string item_name(const json& item) {
  if (item.is_string()) return item.get<std::string>();
  if (item.is_object()) {
    if (item.contains("task") && item["task"].is_string()) return item["task"];
    if (item.contains("name") && item["name"].is_string()) return item["name"];
  }
  return "";
}

std::string sets_text(const std::vector<std::string>& sets) {
  std::string out;
  for (const auto& s : sets) out += (out.empty() ? "" : ", ") + s;
  return out;
}

}  // namespace

Override parse_override(const std::string& text) {
  const auto eq = text.find('=');
  LB_REQUIRE(eq != std::string::npos && eq > 0,
             "--set '" << text << "' is not of the form PATH=VALUE (e.g. model.hidden=128)");
  Override o;
  o.text = text;
  const std::string path = text.substr(0, eq), value = text.substr(eq + 1);
  size_t start = 0;
  while (true) {
    const auto dot = path.find('.', start);
    o.path.push_back(
        path.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    LB_REQUIRE(!o.path.back().empty(),
               "--set '" << text << "': empty segment in path '" << path << "'");
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  try {
    o.value = json::parse(value);
  } catch (const json::exception&) {
    o.value = value;  // not JSON: a string such as a normalizer name
  }
  return o;
}

void apply_override(json& doc, const Override& o) {
  json* node = &doc;
  std::string parent_key;
  for (size_t i = 0; i < o.path.size(); ++i) {
    const std::string& seg = o.path[i];
    const bool last = i + 1 == o.path.size();
    if (node->is_null()) *node = json::object();
    if (node->is_object()) {
      if (last) {
        (*node)[seg] = o.value;
        return;
      }
      node = &(*node)[seg];
    } else if (node->is_array()) {
      json* item = nullptr;
      if (is_index(seg)) {
        const size_t k = std::stoul(seg);
        LB_REQUIRE(k < node->size(), "--set " << o.text << ": " << joined(o.path, i) << " has "
                                              << node->size() << " entries, no index " << k);
        item = &(*node)[k];
      } else {
        std::vector<std::string> names;
        for (auto& it : *node) {
          names.push_back(item_name(it));
          if (names.back() == seg) {
            LB_REQUIRE(!item, "--set " << o.text << ": several entries of " << joined(o.path, i)
                                       << " are named '" << seg << "'; use an index");
            item = &it;
          }
        }
        if (!item) {
          throw UsageError("--set " + o.text + ": " +
                           unknown_name_message("entry of " + joined(o.path, i), seg, names));
        }
      }
      if (last) {
        *item = o.value;
        return;
      }
      if (item->is_string()) {
        *item = json{{parent_key == "tasks" ? "task" : "name", item->get<std::string>()}};
      }
      node = item;
    } else {
      throw UsageError("--set " + o.text + ": " + joined(o.path, i) + " is " + node->dump() +
                       ", not an object or a list, so it has no '" + seg + "'");
    }
    parent_key = seg;
  }
}

void apply_overrides(json& doc, const std::vector<std::string>& sets) {
  for (const auto& s : sets) apply_override(doc, parse_override(s));
}

void add_set_option(boost::program_options::options_description& opts,
                    std::vector<std::string>* sets) {
  opts.add_options()("set", boost::program_options::value(sets)->composing(),
                     "override a config value, PATH=VALUE (repeatable): model.hidden=128, "
                     "train.steps=4000, tasks.sort.train.task_params.seq_len=24, seeds=[0,1,2]; "
                     "VALUE is JSON, else a string");
}

Suite load_suite(const std::string& file, const std::vector<std::string>& sets) {
  if (sets.empty()) return load_suite(file);
  std::ifstream in(file);
  LB_REQUIRE(in, "cannot read suite file '" << file << "'");
  json j;
  try {
    j = json::parse(in);
  } catch (const json::exception& e) {
    throw UsageError("suite file '" + file + "' is not valid JSON: " + e.what());
  }
  apply_overrides(j, sets);
  try {
    return expand_suite(j);
  } catch (const UsageError& e) {
    throw UsageError(file + " with --set " + sets_text(sets) + ": " + e.what());
  }
}

void apply_config_overrides(ModelConfig& model, TrainConfig& train,
                            const std::vector<std::string>& sets) {
  if (sets.empty()) return;
  json doc = {{"model", to_json(model)}, {"train", to_json(train)}};
  apply_overrides(doc, sets);
  try {
    require_known_keys(doc, "", {"model", "train"});
    model = model_config_from_json(doc["model"], "/model");
    train = train_config_from_json(doc["train"], "/train", train);
  } catch (const UsageError& e) {
    throw UsageError("--set " + sets_text(sets) + ": " + e.what());
  }
}

}  // namespace lb
