#include "tasks/text_format.h"

#include <algorithm>
#include <atomic>
#include <charconv>
#include <filesystem>
#include <thread>

#include "core/check.h"

namespace fs = std::filesystem;

namespace lb {

std::string text_split_name(SplitKind kind, int index, int64_t length) {
  if (kind == SplitKind::kTrain) return "train";
  return std::string(split_kind_name(kind)) + "_" + std::to_string(index) + "_" +
         std::to_string(length);
}

static void append_line(const std::vector<int32_t>& ids, std::string& out) {
  char buf[16];
  for (size_t i = 0; i < ids.size(); ++i) {
    if (i) out.push_back(' ');
    auto r = std::to_chars(buf, buf + sizeof buf, ids[i]);
    out.append(buf, r.ptr);
  }
  out.push_back('\n');
}

int64_t write_text_split(const Split& split, int64_t count, const std::string& dir,
                         const std::string& name, int threads) {
  fs::create_directories(dir);
  const std::string src_path = dir + "/" + name + ".src", trg_path = dir + "/" + name + ".trg";
  std::ofstream src(src_path + ".tmp", std::ios::binary), trg(trg_path + ".tmp", std::ios::binary);
  LB_REQUIRE(src && trg, "cannot write " << src_path << ".tmp in " << dir);
  threads = std::max(1, threads);
  // Rounds of `threads` chunks: each thread renders its chunk, then chunks are written in order.
  const int64_t chunk = std::max<int64_t>(1, std::min<int64_t>(256, count / threads + 1));
  std::vector<std::string> src_text(threads), trg_text(threads);
  std::vector<int64_t> tokens(threads, 0);
  int64_t total = 0;
  for (int64_t round = 0; round < count; round += chunk * threads) {
    auto render = [&](int w) {
      src_text[w].clear();
      trg_text[w].clear();
      tokens[w] = 0;
      const int64_t lo = round + w * chunk, hi = std::min(count, lo + chunk);
      for (int64_t i = lo; i < hi; ++i) {
        const RawSample s = split.raw(i);
        append_line(s.src, src_text[w]);
        append_line(s.trg, trg_text[w]);
        tokens[w] += static_cast<int64_t>(s.src.size() + s.trg.size());
      }
    };
    std::vector<std::thread> pool;
    for (int w = 1; w < threads; ++w) pool.emplace_back(render, w);
    render(0);
    for (auto& t : pool) t.join();
    for (int w = 0; w < threads; ++w) {
      src << src_text[w];
      trg << trg_text[w];
      total += tokens[w];
    }
  }
  src.close();
  trg.close();
  LB_REQUIRE(src && trg, "writing " << src_path << " failed (disk full?)");
  fs::rename(src_path + ".tmp", src_path);
  fs::rename(trg_path + ".tmp", trg_path);
  return total;
}

std::vector<TextSplitInfo> list_text_splits(const std::string& dir) {
  LB_REQUIRE(fs::is_directory(dir), "dataset directory '" << dir << "' does not exist");
  std::vector<TextSplitInfo> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".src") continue;
    TextSplitInfo info;
    info.name = e.path().stem().string();
    LB_REQUIRE(fs::exists(fs::path(dir) / (info.name + ".trg")),
               "dataset '" << dir << "': " << info.name << ".src has no matching .trg");
    // <kind>_<index>_<group>, as the reference's data_provider parses it.
    const auto last = info.name.rfind('_');
    const auto mid = last == std::string::npos ? last : info.name.rfind('_', last - 1);
    info.kind = info.name;
    if (mid != std::string::npos && mid > 0) {
      const std::string idx = info.name.substr(mid + 1, last - mid - 1);
      if (!idx.empty() && std::all_of(idx.begin(), idx.end(), ::isdigit)) {
        info.kind = info.name.substr(0, mid);
        info.index = std::stoi(idx);
        info.group = info.name.substr(last + 1);
      }
    }
    out.push_back(info);
  }
  auto rank = [](const std::string& k) { return k == "validation" ? 0 : k == "test" ? 1 : 2; };
  std::sort(out.begin(), out.end(), [&](const TextSplitInfo& a, const TextSplitInfo& b) {
    return std::make_tuple(rank(a.kind), a.kind, a.index, a.name) <
           std::make_tuple(rank(b.kind), b.kind, b.index, b.name);
  });
  return out;
}

void parse_token_line(const std::string& text, const std::string& where, int32_t max_id,
                      std::vector<int32_t>& out) {
  out.clear();
  const char* p = text.data();
  const char* end = p + text.size();
  while (end > p && (end[-1] == '\r' || end[-1] == ' ')) --end;  // tolerate CRLF and trailing space
  while (p < end) {
    while (p < end && *p == ' ') ++p;
    if (p == end) break;
    int32_t v = 0;
    const auto r = std::from_chars(p, end, v);
    const char* stop = r.ptr;
    LB_REQUIRE(r.ec == std::errc() && (stop == end || *stop == ' '),
               where << ": '" << std::string(p, std::find(p, end, ' ')) << "' is not a token id");
    LB_REQUIRE(v >= 0 && v <= max_id,
               where << ": token " << v << " is outside the task's ids 0.." << max_id);
    out.push_back(v);
    p = stop;
  }
  LB_REQUIRE(!out.empty(), where << ": empty line");
}

TextSplitReader::TextSplitReader(const TaskDef& task, const TaskParams& params,
                                 const std::string& dir, const std::string& name)
    : task_(&task), params_(params), vocab_(task_vocab(task, params)),
      src_path_(dir + "/" + name + ".src"), trg_path_(dir + "/" + name + ".trg"),
      src_(src_path_), trg_(trg_path_) {
  LB_REQUIRE(src_ && trg_, "cannot read split '" << name << "' in '" << dir << "' (need "
                                                  << name << ".src and " << name << ".trg)");
}

bool TextSplitReader::next(Sample& out) {
  std::string s, t;
  const bool has_src = static_cast<bool>(std::getline(src_, s));
  const bool has_trg = static_cast<bool>(std::getline(trg_, t));
  if (!has_src && !has_trg) return false;
  ++line_;
  LB_REQUIRE(has_src && has_trg, src_path_ << ": .src and .trg differ in line count (line "
                                           << line_ << ")");
  RawSample raw;
  parse_token_line(s, src_path_ + ":" + std::to_string(line_), vocab_.max_data_id, raw.src);
  const int32_t max_trg = task_->format == TaskFormat::kPerPosition ? vocab_.num_labels - 1
                                                                    : vocab_.max_data_id;
  parse_token_line(t, trg_path_ + ":" + std::to_string(line_), max_trg, raw.trg);
  try {
    out = encode_sample(*task_, params_, std::move(raw));
  } catch (const UsageError& e) {
    throw UsageError(src_path_ + ":" + std::to_string(line_) + ": " + e.what());
  }
  return true;
}

}  // namespace lb
