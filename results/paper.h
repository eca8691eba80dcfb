// The paper's published numbers, shipped as data (results/paper_table1.json, embedded at build
// time): Table 1 exact match (%) with its source and protocol, for `table --paper`.
#pragma once

namespace lb {

// The JSON text of results/paper_table1.json.
const char* paper_table1_json();

}  // namespace lb
