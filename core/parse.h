// Strict parsing of option and parameter values, shared by the command line, task parameters and
// normalizer parameters. Every function throws lb::UsageError naming the bad value and what would
// be accepted; none needs a command-line library.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lb {

// "k=v" pairs from --param options into (key, value) pairs; a pair without '=' is a UsageError.
std::vector<std::pair<std::string, std::string>> parse_key_values(
    const std::vector<std::string>& items, const char* option_name);

// "64,128,256" into numbers; empty items, non-numbers and values outside [lo, hi] are UsageErrors.
std::vector<int64_t> parse_int_list(const std::string& text, const char* option_name, int64_t lo,
                                    int64_t hi);

// Strict number parsing for option values: the whole string must be a number.
int64_t parse_int(const std::string& text, const std::string& what);
double parse_double(const std::string& text, const std::string& what);

}  // namespace lb
