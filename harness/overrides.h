// Command-line overrides: `--set PATH=VALUE` as a patch on a configuration document (a suite, or
// a {"model", "train"} config) applied before the document is validated, so an override is
// checked exactly like the same key written in the file (unknown keys: did-you-mean, exit 2).
//
// PATH is dotted: `model.hidden`, `train.steps`, `seeds`. Inside a list a segment is an index
// (`tasks.0`) or the entry's name: the list item equal to it (a string item becomes an object,
// {"task": s} under "tasks", {"name": s} elsewhere) or the object whose "task" or "name" equals
// it, so `tasks.sort.train.task_params.seq_len=24` reaches the sort entry. Missing object keys
// are created. VALUE is parsed as JSON (`128`, `1e-3`, `[0,1,2]`, `true`, `{"name": "entmax"}`),
// else taken as a string (`softmax`).
#pragma once
#include <boost/program_options.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "harness/suite.h"
#include "models/config.h"

namespace lb {

struct Override {
  std::vector<std::string> path;  // dotted segments
  nlohmann::json value;
  std::string text;  // the --set argument as given, for error messages
};

// "a.b=VALUE" -> Override; UsageError for a missing '=' or an empty segment.
Override parse_override(const std::string& text);
// Sets doc at o.path to o.value; UsageError naming the --set when the path cannot be followed
// (a list entry that does not exist, with did-you-mean; descending into a number or string).
void apply_override(nlohmann::json& doc, const Override& o);
void apply_overrides(nlohmann::json& doc, const std::vector<std::string>& sets);

// Adds the repeatable `--set PATH=VALUE` option, collected into `*sets`.
void add_set_option(boost::program_options::options_description& opts,
                    std::vector<std::string>* sets);

// load_suite with overrides: the file's JSON, patched, then expanded (validated) as usual.
Suite load_suite(const std::string& file, const std::vector<std::string>& sets);

// Applies overrides to a {"model": ..., "train": ...} pair and reads it back through the config
// readers (models/config.h), which validate every key. No-op when `sets` is empty.
void apply_config_overrides(ModelConfig& model, TrainConfig& train,
                            const std::vector<std::string>& sets);

}  // namespace lb
