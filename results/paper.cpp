#include "results/paper.h"

namespace lb {

const char* paper_table1_json() {
  return
#include "lb_paper_table1.inc"  // results/paper_table1.json as a raw string literal (generated)
      ;
}

}  // namespace lb
