#include "harness/check.h"

#include <algorithm>

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
