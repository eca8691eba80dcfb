// Paper-style tables from the results database: per task, one row per attention variant
// (normalizer x position encoding x lr), one column per evaluation length ("64 (1x)"), cells the
// exact match in %, as the mean ± sd over seeds or the best of seeds x learning rates.
#pragma once
#include <ostream>
#include <string>

#include "results/db.h"

namespace lb {

enum class TableProtocol { kMeanSd, kBestOf };
enum class TableFormat { kMarkdown, kLatex, kCsv };

struct TableOptions {
  std::string suite, task;  // empty: all
  std::string split = "test";
  TableProtocol protocol = TableProtocol::kMeanSd;
  TableFormat format = TableFormat::kMarkdown;
};

// Returns the number of tables printed (one per suite x task).
int print_tables(ResultsDb& db, const TableOptions& opts, std::ostream& out);

}  // namespace lb
