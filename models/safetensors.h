// The safetensors format (https://github.com/huggingface/safetensors), written here without the
// library: 8-byte little-endian header length n, n bytes of JSON header
// {"__metadata__": {str: str}, name: {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}},
// padded with spaces to a multiple of 8, then the raw little-endian data (offsets relative to the
// end of the header). Only F32 tensors. Reading validates everything and throws UsageError with
// the file name and what is wrong: truncated files, bad header, offsets out of range, other dtypes.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lb {

struct StTensor {
  std::vector<int64_t> shape;
  std::vector<float> data;
};

struct StFile {
  std::map<std::string, std::string> metadata;
  std::vector<std::string> order;  // tensor names in file order (data offset order)
  std::map<std::string, StTensor> tensors;
};

// Writes tensors in the given order; `data` sizes must match the shapes.
void write_safetensors(const std::string& path, const std::vector<std::string>& names,
                       const std::vector<const StTensor*>& tensors,
                       const std::map<std::string, std::string>& metadata);
StFile read_safetensors(const std::string& path);

}  // namespace lb
