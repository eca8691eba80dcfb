#include "harness/command.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <sstream>

#include "harness/check.h"

namespace po = boost::program_options;

namespace lb {

bool parse_command_line(int argc, char** argv, const char* usage,
                        const po::options_description& options,
                        const po::positional_options_description& positional,
                        po::variables_map& vm) {
  po::options_description all(options);
  all.add_options()("help,h", "print this help");
  try {
    po::store(po::command_line_parser(argc, argv)
                  .options(all)
                  .positional(positional)
                  .style(po::command_line_style::default_style &
                         ~po::command_line_style::allow_guessing)
                  .run(),
              vm);
    if (vm.count("help")) {
      std::cout << "usage: lengthbench " << usage << "\n\n" << all << "\n";
      return false;
    }
    po::notify(vm);
  } catch (const po::error& e) {
    throw UsageError(std::string(argv[0]) + ": " + e.what() + " (see 'lengthbench " + argv[0] +
                     " --help')");
  }
  return true;
}

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
    LB_REQUIRE(v >= lo && v <= hi, "--" << option_name << " value " << v << " is outside ["
                                        << lo << ", " << hi << "]");
    out.push_back(v);
  }
  LB_REQUIRE(!out.empty(), "--" << option_name << " is empty; give comma-separated integers");
  return out;
}

}  // namespace lb
