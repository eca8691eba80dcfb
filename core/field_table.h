// One field table per configuration struct (ModelConfig, TrainConfig, EvalSpec, SelectSpec): each
// field is declared once — its JSON key, how a JSON value is read and validated into the struct,
// how the struct writes it back — and the table drives the accepted keys, reading (from_json,
// and so `--set` overrides, which patch the JSON before it is read) and writing (to_json).
//
//   static const FieldTable<TrainConfig> kFields({
//       member("steps", &TrainConfig::steps, ints(1, INT64_MAX / 2)),
//       {"task", read_task, write_task},  // a field with its own reader and writer
//   });
//   require_known_keys(j, path, kFields.keys());
//   kFields.read(j, path, config);  // fields present in j, in table order
//   json out = kFields.write(config);
#pragma once
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/check.h"

namespace lb {

// Throws UsageError when `j` is not an object ("config PATH must be a JSON object") or has a key
// outside `accepted` ("unknown config key 'PATH/key'; did you mean ...").
inline void require_known_keys(const nlohmann::json& j, const std::string& path,
                               const std::vector<std::string>& accepted) {
  LB_REQUIRE(j.is_object(), "config " << (path.empty() ? "/" : path)
                                      << " must be a JSON object, got " << j.dump());
  for (auto it = j.begin(); it != j.end(); ++it) {
    bool ok = false;
    for (const auto& a : accepted) ok = ok || a == it.key();
    if (!ok) {
      std::vector<std::string> full;
      for (const auto& a : accepted) full.push_back(path + "/" + a);
      throw UsageError(unknown_name_message("config key", path + "/" + it.key(), full));
    }
  }
}

template <typename S>
struct Field {
  const char* name;
  // Reads `value` (the document's entry at `path`, which ends in /name) into s; UsageError
  // naming the path and the value when it is not accepted.
  std::function<void(const nlohmann::json& value, const std::string& path, S& s)> read;
  std::function<nlohmann::json(const S& s)> write;
};

template <typename S>
class FieldTable {
 public:
  explicit FieldTable(std::vector<Field<S>> fields) : fields_(std::move(fields)) {
    for (const auto& f : fields_) keys_.push_back(f.name);
  }

  const std::vector<std::string>& keys() const { return keys_; }  // in table order

  // Reads the fields present in `j` (an object; unknown keys are require_known_keys' job).
  void read(const nlohmann::json& j, const std::string& path, S& s) const {
    for (const auto& f : fields_) {
      if (j.contains(f.name)) f.read(j[f.name], path + "/" + f.name, s);
    }
  }

  nlohmann::json write(const S& s) const {
    nlohmann::json out = nlohmann::json::object();
    for (const auto& f : fields_) out[f.name] = f.write(s);
    return out;
  }

 private:
  std::vector<Field<S>> fields_;
  std::vector<std::string> keys_;
};

// A field stored in member `m`: read with get(value, path) (which validates), written as JSON of
// the member's type.
template <typename S, typename M, typename Get>
Field<S> member(const char* name, M S::*m, Get get) {
  return {name,
          [m, get](const nlohmann::json& v, const std::string& path, S& s) {
            s.*m = static_cast<M>(get(v, path));
          },
          [m](const S& s) { return nlohmann::json(s.*m); }};
}

}  // namespace lb
