#include "core/parse.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <sstream>

#include "core/check.h"

namespace lb {

std::vector<std::pair<std::string, std::string>> parse_key_values(
    const std::vector<std::string>& items, const char* option_name) {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& item : items) {
    const auto eq = item.find('=');
    LB_REQUIRE(eq != std::string::npos && eq > 0,
               "--" << option_name << " '" << item << "' is not of the form key=value");
    out.emplace_back(item.substr(0, eq), item.substr(eq + 1));
  }
  return out;
}

int64_t parse_int(const std::string& text, const std::string& what) {
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(text.c_str(), &end, 10);
  LB_REQUIRE(!text.empty() && end && *end == '\0' && errno == 0,
             what << " '" << text << "' is not an integer");
  return v;
}

double parse_double(const std::string& text, const std::string& what) {
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  LB_REQUIRE(!text.empty() && end && *end == '\0' && errno == 0 && std::isfinite(v),
             what << " '" << text << "' is not a finite number");
  return v;
}

std::vector<int64_t> parse_int_list(const std::string& text, const char* option_name, int64_t lo,
                                    int64_t hi) {
  std::vector<int64_t> out;
  std::stringstream ss(text);
  std::string item;
  while (std::getline(ss, item, ',')) {
    const int64_t v = parse_int(item, std::string("--") + option_name + " item");
    LB_REQUIRE(v >= lo && v <= hi,
               "--" << option_name << " value " << v << " is outside [" << lo << ", " << hi << "]");
    out.push_back(v);
  }
  LB_REQUIRE(!out.empty(), "--" << option_name << " is empty; give comma-separated integers");
  return out;
}

}  // namespace lb
