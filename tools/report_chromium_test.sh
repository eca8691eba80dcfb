#!/bin/bash
# Slow: `lengthbench report` renders in a real browser. Runs the smoke suite into a fresh
# database, writes the report, opens it in headless Chromium (Debian's `chromium`, installed by
# `make slow`), takes a screenshot and checks that it is not blank (enough non-white pixels,
# several colours: tables, lines, text). Exit 77 (skipped) without chromium.
set -euo pipefail
bin=${1:?usage: report_chromium_test.sh LENGTHBENCH [SUITE.json]}
suite=${2:-$(dirname "$0")/../harness/suites/smoke.json}
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then echo "chromium not installed (make deps-slow); skipping"; exit 77; fi
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
"$bin" run "$suite" --db "$dir/r.sqlite" --threads 2 >/dev/null
"$bin" report "$dir/r.sqlite" --out "$dir/report"
mkdir "$dir/profile"
timeout 120 "$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$dir/profile" --window-size=1200,2400 --screenshot="$dir/shot.png" \
  "file://$dir/report/index.html" >/dev/null 2>&1 || true
test -s "$dir/shot.png" || { echo "FAIL: no screenshot"; exit 1; }
python3 - "$dir/shot.png" <<'PY'
# Decodes the PNG (8-bit RGB/RGBA, non-interlaced, as Chromium writes) with the standard library.
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
pos, idat = 8, b""
while pos < len(data):
    n, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + n]
    if kind == b"IHDR":
        w, h, depth, ctype = struct.unpack(">IIBB", body[:10])
    elif kind == b"IDAT":
        idat += body
    pos += 12 + n
assert depth == 8 and ctype in (2, 6), f"unexpected PNG type {depth}/{ctype}"
bpp = 3 if ctype == 2 else 4
raw, stride = zlib.decompress(idat), w * bpp
prev, i, nonwhite, colours = bytearray(stride), 0, 0, set()
for y in range(h):
    f, row = raw[i], bytearray(raw[i + 1:i + 1 + stride])
    i += 1 + stride
    for x in range(stride):
        a = row[x - bpp] if x >= bpp else 0
        b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
        if f == 1: row[x] = (row[x] + a) & 255
        elif f == 2: row[x] = (row[x] + b) & 255
        elif f == 3: row[x] = (row[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            row[x] = (row[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    for x in range(0, stride, bpp):
        px = bytes(row[x:x + 3])
        if px != b"\xff\xff\xff":
            nonwhite += 1
            colours.add(px)
    prev = row
frac = nonwhite / (w * h)
print(f"screenshot {w}x{h}: {frac:.1%} non-white pixels, {len(colours)} colours")
sys.exit(0 if frac > 0.02 and len(colours) > 20 else 1)
PY
echo "report renders in chromium: ok"
