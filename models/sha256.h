// SHA-256 (FIPS 180-4) of files and byte strings, as lowercase hex: checkpoint integrity
// (checkpoints.sha256 in the results database and each checkpoint's manifest.json).
#pragma once
#include <string>

namespace lb {

std::string sha256_hex(const std::string& bytes);
// The digest of a whole file; std::runtime_error (exit 1) when it cannot be read.
std::string sha256_file_hex(const std::string& path);

}  // namespace lb
