// The reference generator's text format: one split = <name>.src + <name>.trg, one sample per
// line, data ids separated by single spaces. Evaluation splits are named as the reference names
// them, `validation_<i>_<L>` and `test_<i>_<L>` (i = index in the length list), plus `train`.
#pragma once
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "tasks/split.h"

namespace lb {

std::string text_split_name(SplitKind kind, int index, int64_t length);

// Writes samples [0, count) of `split` to dir/name.{src,trg} with `threads` generator threads;
// the bytes do not depend on the thread count. Files appear whole (written to .tmp, renamed).
// Returns the number of tokens written (src + trg).
int64_t write_text_split(const Split& split, int64_t count, const std::string& dir,
                         const std::string& name, int threads);

struct TextSplitInfo {
  std::string name;  // "test_0_64", "train"
  std::string kind;  // "test", "validation", "train", or whatever precedes _<i>_<group>
  int index = -1;    // position in the reference's length list; -1 for train
  std::string group; // the value of mdps_key_for_file (the length, by default)
};

// The splits in a directory: every <name>.src with a matching <name>.trg, ordered as the
// reference orders them (by kind, then index). A .src without .trg is a UsageError.
std::vector<TextSplitInfo> list_text_splits(const std::string& dir);

// Streams the samples of one split, checking every token against the task's vocabulary and
// every sample against the task's definition (UsageError naming file and line).
class TextSplitReader {
 public:
  TextSplitReader(const TaskDef& task, const TaskParams& params, const std::string& dir,
                  const std::string& name);
  // False at the end of the files.
  bool next(Sample& out);
  int64_t line() const { return line_; }

 private:
  const TaskDef* task_;
  TaskParams params_;
  Vocab vocab_;
  std::string src_path_, trg_path_;
  std::ifstream src_, trg_;
  int64_t line_ = 0;
};

// Parses one line of space-separated ids; UsageError (naming `where`) on anything else.
void parse_token_line(const std::string& text, const std::string& where, int32_t max_id,
                      std::vector<int32_t>& out);

}  // namespace lb
