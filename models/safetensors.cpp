#include "models/safetensors.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "core/check.h"

namespace lb {

using nlohmann::json;

void write_safetensors(const std::string& path, const std::vector<std::string>& names,
                       const std::vector<const StTensor*>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  LB_CHECK(names.size() == tensors.size(), "names and tensors differ in count");
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (size_t i = 0; i < names.size(); ++i) {
    int64_t count = 1;
    for (int64_t d : tensors[i]->shape) count *= d;
    LB_CHECK(count == static_cast<int64_t>(tensors[i]->data.size()),
             "tensor " << names[i] << " data does not match its shape");
    const uint64_t bytes = static_cast<uint64_t>(count) * 4;
    header[names[i]] = {{"dtype", "F32"},
                        {"shape", tensors[i]->shape},
                        {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');
  const std::string tmp = path + ".tmp";
  {
    // Write failures (full disk, read-only folder) are I/O errors (exit 1), not bad input.
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error("cannot write '" + tmp + "'");
    uint8_t len[8];
    const uint64_t n = text.size();
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
    out.write(reinterpret_cast<const char*>(len), 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const StTensor* t : tensors) {  // little-endian host (x86-64)
      out.write(reinterpret_cast<const char*>(t->data.data()),
                static_cast<std::streamsize>(t->data.size() * 4));
    }
    out.close();
    if (!out) throw std::runtime_error("failed writing '" + tmp + "' (disk full?)");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    throw std::runtime_error("cannot rename '" + tmp + "' to '" + path + "'");
  }
}

StFile read_safetensors(const std::string& path) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  LB_REQUIRE(in, "cannot read checkpoint file '" << path << "'");
  const uint64_t size = static_cast<uint64_t>(in.tellg());
  in.seekg(0);
  LB_REQUIRE(size >= 8, "'" << path << "' is not a safetensors file (" << size << " bytes)");
  uint8_t len[8];
  in.read(reinterpret_cast<char*>(len), 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  LB_REQUIRE(n >= 2 && n <= size - 8 && n <= (100u << 20),
             "'" << path << "' is not a safetensors file or is truncated (header length " << n
                 << ", file size " << size << ")");
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception&) {
    throw UsageError("'" + path + "' has no valid safetensors JSON header");
  }
  LB_REQUIRE(header.is_object(), "'" << path << "': safetensors header is not a JSON object");
  const uint64_t data_size = size - 8 - n;
  StFile out;
  std::vector<std::pair<uint64_t, std::string>> by_offset;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      LB_REQUIRE(it.value().is_object(), "'" << path << "': __metadata__ is not an object");
      for (auto m = it.value().begin(); m != it.value().end(); ++m) {
        LB_REQUIRE(m.value().is_string(), "'" << path << "': metadata " << m.key()
                                              << " is not a string");
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const json& e = it.value();
    const std::string where = "'" + path + "' tensor '" + it.key() + "'";
    LB_REQUIRE(e.is_object() && e.contains("dtype") && e.contains("shape") &&
                   e.contains("data_offsets"),
               where << ": entry needs dtype, shape and data_offsets");
    LB_REQUIRE(e["dtype"] == "F32", where << ": dtype " << e["dtype"].dump()
                                          << " is not supported (accepted: F32)");
    StTensor t;
    int64_t count = 1;
    try {
      t.shape = e["shape"].get<std::vector<int64_t>>();
      const auto off = e["data_offsets"].get<std::vector<uint64_t>>();
      LB_REQUIRE(off.size() == 2, where << ": data_offsets must have two entries");
      for (int64_t d : t.shape) {
        LB_REQUIRE(d >= 0 && d < (int64_t{1} << 40), where << ": bad shape");
        count *= d;
      }
      LB_REQUIRE(off[0] <= off[1] && off[1] <= data_size &&
                     off[1] - off[0] == static_cast<uint64_t>(count) * 4,
                 where << ": data_offsets [" << off[0] << ", " << off[1]
                       << "] do not fit the shape or the file (truncated?)");
      t.data.resize(count);
      in.seekg(static_cast<std::streamoff>(8 + n + off[0]));
      in.read(reinterpret_cast<char*>(t.data.data()), static_cast<std::streamsize>(count * 4));
      LB_REQUIRE(in.good(), where << ": read failed (truncated?)");
      by_offset.emplace_back(off[0], it.key());
    } catch (const json::exception&) {
      throw UsageError(where + ": malformed shape or data_offsets");
    }
    out.tensors.emplace(it.key(), std::move(t));
  }
  std::sort(by_offset.begin(), by_offset.end());
  for (auto& p : by_offset) out.order.push_back(p.second);
  return out;
}

}  // namespace lb
