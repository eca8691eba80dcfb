#include "tasks/task.h"

#include <cmath>
#include <sstream>

#include "core/check.h"
#include "core/parse.h"

namespace lb {

Vocab Vocab::from_max_id(int32_t max_data_id, int32_t max_label) {
  Vocab v;
  v.max_data_id = max_data_id;
  v.pad = max_data_id + 1;
  v.bos = max_data_id + 2;
  v.eos = max_data_id + 3;
  v.mask = max_data_id + 4;
  v.sep = max_data_id + 5;
  v.size = max_data_id + 6;
  v.num_labels = std::max(v.size, max_label + 1);
  return v;
}

double TaskParams::get(const std::string& name) const {
  auto it = values_.find(name);
  LB_CHECK(it != values_.end(), "task parameter '" << name << "' is not declared");
  return it->second;
}

std::pair<int64_t, int64_t> train_length_range(const TaskParams& p) {
  return {p.geti("seq_len") - p.geti("vary_len"), p.geti("seq_len") + p.geti("vary_len")};
}

TaskParams make_params(const TaskDef& task,
                       const std::vector<std::pair<std::string, std::string>>& overrides) {
  TaskParams p;
  std::vector<std::string> names;
  for (const auto& d : task.params) {
    p.set(d.name, d.default_value);
    names.push_back(d.name);
  }
  for (const auto& [key, text] : overrides) {
    const ParamDef* def = nullptr;
    for (const auto& d : task.params) {
      if (key == d.name) def = &d;
    }
    LB_REQUIRE(def, task.name << ": " << unknown_name_message("parameter", key, names));
    const double v = parse_double(text, std::string(task.name) + " parameter " + key);
    LB_REQUIRE(!def->integer || v == std::floor(v),
               task.name << ": parameter " << key << "=" << text << " must be an integer");
    LB_REQUIRE(v >= def->min && v <= def->max, task.name << ": parameter " << key << "=" << text
                                                         << " is outside [" << def->min << ", "
                                                         << def->max << "]");
    p.set(key, v);
  }
  const auto [lo, hi] = train_length_range(p);
  LB_REQUIRE(p.geti("vary_len") < p.geti("seq_len"),
             task.name << ": vary_len " << p.geti("vary_len") << " must be below seq_len "
                       << p.geti("seq_len") << " (training lengths seq_len +- vary_len must be > 0)");
  task.validate(p, lo, hi);
  return p;
}

Vocab task_vocab(const TaskDef& task, const TaskParams& p) {
  return Vocab::from_max_id(task.max_data_id(p), task.max_label ? task.max_label(p) : -1);
}

Sample encode_sample(const TaskDef& task, const TaskParams& p, RawSample raw) {
  const Vocab v = task_vocab(task, p);
  Alignment al;
  task.align(p, raw, al);
  Sample s;
  const int32_t S = static_cast<int32_t>(raw.src.size());
  const int32_t R = static_cast<int32_t>(raw.trg.size());
  if (task.format == TaskFormat::kPerPosition) {
    const int32_t T = S + 2;
    s.input.reserve(T);
    s.input.push_back(v.bos);
    s.input.insert(s.input.end(), raw.src.begin(), raw.src.end());
    s.input.push_back(v.eos);
    s.target.assign(T, -1);
    s.loss_mask.assign(T, 0);
    for (int32_t j = 0; j < R; ++j) {
      s.target[1 + j] = raw.trg[j];
      s.loss_mask[1 + j] = 1;
    }
    s.first_target_pos = 1;
  } else {
    const bool sep = task.format == TaskFormat::kSeq2Seq;
    std::vector<int32_t> full;
    full.reserve(S + R + 3);
    full.push_back(v.bos);
    full.insert(full.end(), raw.src.begin(), raw.src.end());
    if (sep) full.push_back(v.sep);
    full.insert(full.end(), raw.trg.begin(), raw.trg.end());
    full.push_back(v.eos);
    s.first_target_pos = S + (sep ? 1 : 0);
    s.input.assign(full.begin(), full.end() - 1);
    s.target.assign(full.begin() + 1, full.end());
    s.loss_mask.assign(s.input.size(), 0);
    for (size_t i = s.first_target_pos; i < s.input.size(); ++i) s.loss_mask[i] = 1;
  }
  // Alignment (trg index -> src index) into sequence positions (query position -> input position).
  const size_t T = s.input.size();
  s.relevant_begin.assign(T, 0);
  s.relevant_end.assign(T, 0);
  s.relevant_pos.resize(al.pos.size());
  for (size_t k = 0; k < al.pos.size(); ++k) s.relevant_pos[k] = al.pos[k] + 1;  // after bos
  for (int32_t t = 0; t < R; ++t) {
    s.relevant_begin[s.first_target_pos + t] = al.begin[t];
    s.relevant_end[s.first_target_pos + t] = al.end[t];
  }
  s.raw = std::move(raw);
  return s;
}

}  // namespace lb
