// The attention weights of one sample as heatmaps: a grid of panels (layer × head), one cell per
// (query i, key j), self-contained SVG written by hand. The figure the paper uses to show
// dispersion.
//
// Cells: keys j > i (not visible to query i) are light grey; an exact zero weight (the
// normalizer's support excludes the key: entmax, sparsemax, asentmax, topk) is white; any weight
// w > 0, however small, is blue, from pale (w → 0) to dark (w = 1) on a √w scale, so a sparse
// zero never looks like a small weight. The task's relevant positions (tasks/sample.h) of each
// query row are outlined in red. Equal neighbouring cells of a row are merged into one rect.
// The bytes depend only on the AttentionMap.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace lb {

struct AttentionMap {
  std::string title;  // "copy, length 16, sample 0: 1.5-entmax + NAPE"
  int64_t layers = 0, heads = 0, T = 0;
  // weights[(layer·heads + head)·T·T + i·T + j], j <= i; entries j > i are ignored.
  std::vector<float> weights;
  // For each query row i the relevant key positions.
  std::vector<std::vector<int32_t>> relevant;  // (T)
  std::vector<int32_t> tokens;                 // (T) input ids, shown on hover (title)
};

// Colour of one cell: "#e4e4e4" for invisible keys, "#ffffff" for exact zeros, else the blue
// ramp at √w quantised to 32 levels (never white).
std::string attention_cell_colour(float w, bool visible);

std::string svg_attention_map(const AttentionMap& map);

}  // namespace lb
