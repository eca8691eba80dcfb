#!/usr/bin/env bash
# The folders form layers, each one library (see the top-level CMakeLists.txt):
#   core < tasks < models/kernels < models < results < tools < harness
# A file may include a project header only from its own layer or a lower one. Prints every upward
# include and exits 1 if there is any. Usage: check_layers.sh [SOURCE_DIR]
set -u
cd "${1:-$(dirname "$0")/..}" || exit 2
find core tasks models results tools harness \( -name '*.h' -o -name '*.cpp' \) | sort |
  xargs grep -H '^#include "[a-z_/]*\.h"' |
  awk -F'"' '
    BEGIN { n = split("core tasks models/kernels models results tools harness", layer, " ") }
    function level(path,   i, best) {  # the longest layer folder that prefixes path
      best = 0
      for (i = 1; i <= n; i++) if (index(path, layer[i] "/") == 1) best = i
      return best
    }
    {
      file = $1; sub(/:#include $/, "", file)
      from = level(file); to = level($2)
      if (from > 0 && to > from) { print "upward include: " file " (" layer[from] ") -> " $2 " (" layer[to] ")"; bad = 1 }
    }
    END { exit bad }'
