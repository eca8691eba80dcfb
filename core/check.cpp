#include "core/check.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

namespace lb {

void check_failed(const char* file, int line, const std::string& msg) {
  std::ostringstream os;
  os << "internal error at " << file << ":" << line << ": " << msg;
  throw std::logic_error(os.str());
}

static size_t edit_distance(const std::string& a, const std::string& b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t sub = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string closest_name(const std::string& name, const std::vector<std::string>& known) {
  std::string best;
  size_t best_d = std::max<size_t>(2, name.size() / 3) + 1;
  for (const auto& k : known) {
    const size_t d = edit_distance(name, k);
    const bool prefix = !name.empty() && k.rfind(name, 0) == 0;
    if (d < best_d || (prefix && best.empty())) {
      best_d = prefix ? std::min(d, best_d) : d;
      best = k;
    }
  }
  return best;
}

std::string unknown_name_message(const std::string& what, const std::string& name,
                                 const std::vector<std::string>& known) {
  std::ostringstream os;
  os << "unknown " << what << " '" << name << "'";
  const std::string guess = closest_name(name, known);
  if (!guess.empty()) os << "; did you mean '" << guess << "'?";
  os << " (known: ";
  for (size_t i = 0; i < known.size(); ++i) os << (i ? ", " : "") << known[i];
  os << ")";
  return os.str();
}

}  // namespace lb

namespace lb {

std::string one_line(const std::string& msg) {
  std::string out;
  out.reserve(std::min(msg.size(), kMaxMessageChars + 8));
  for (unsigned char ch : msg) {
    if (out.size() >= kMaxMessageChars) {
      out += "...";
      break;
    }
    if (ch < 0x20 || ch == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[ch >> 4];
      out += hex[ch & 15];
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

void check_safe_name(const std::string& what, const std::string& name) {
  bool ok = !name.empty() && name.size() <= kMaxNameChars && name[0] != '.' && name[0] != '-';
  for (char ch : name) {
    ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '_' ||
                ch == '+' || ch == '=' || ch == '-');
  }
  LB_REQUIRE(ok, what << " '" << name << "' is not a safe name: use 1 to " << kMaxNameChars
                      << " of A-Z a-z 0-9 . _ + = - (not starting with '.' or '-')");
}

bool path_is_inside(const std::string& path, const std::string& root) {
  namespace fs = std::filesystem;
  const fs::path p = fs::weakly_canonical(fs::absolute(path)).lexically_normal();
  const fs::path r = fs::weakly_canonical(fs::absolute(root)).lexically_normal();
  const fs::path rel = p.lexically_relative(r);
  return !rel.empty() && *rel.begin() != ".." && *rel.begin() != ".";
}

std::string shell_quote(const std::string& word) {
  std::string out = "'";
  for (char ch : word) out += ch == '\'' ? std::string("'\\''") : std::string(1, ch);
  return out + "'";
}

namespace {

// Depth limit and duplicate-key refusal, applied while the parser runs (before any recursive
// walk of the value can overflow the stack).
nlohmann::json parse_guarded(
    const std::function<nlohmann::json(nlohmann::json::parser_callback_t)>& parse,
    const std::string& what) {
  using json = nlohmann::json;
  std::vector<std::set<std::string>> keys;
  auto cb = [&](int depth, json::parse_event_t event, json& parsed) {
    if (depth > kMaxJsonDepth) {
      throw UsageError(what + " nests JSON deeper than " + std::to_string(kMaxJsonDepth) +
                       " levels");
    }
    if (event == json::parse_event_t::object_start) keys.emplace_back();
    if (event == json::parse_event_t::object_end && !keys.empty()) keys.pop_back();
    if (event == json::parse_event_t::key && !keys.empty()) {
      const std::string k = parsed.get<std::string>();
      LB_REQUIRE(keys.back().insert(k).second,
                 what << " has the key \"" << k << "\" twice in one object (JSON duplicate keys "
                      << "are ambiguous; keep one)");
    }
    return true;
  };
  try {
    return parse(cb);
  } catch (const json::exception& e) {
    throw UsageError(what + " is not valid JSON: " + e.what());
  }
}

}  // namespace

nlohmann::json parse_json_strict(std::istream& in, const std::string& what) {
  return parse_guarded(
      [&](nlohmann::json::parser_callback_t cb) { return nlohmann::json::parse(in, cb); }, what);
}

nlohmann::json parse_json_strict(const std::string& text, const std::string& what) {
  return parse_guarded(
      [&](nlohmann::json::parser_callback_t cb) { return nlohmann::json::parse(text, cb); }, what);
}

}  // namespace lb
