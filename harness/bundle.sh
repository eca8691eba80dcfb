#!/usr/bin/env bash
# Copies a lengthbench binary and every shared library it loads (ldd), the dynamic loader
# included, into one folder, so it runs on a machine without the Debian packages:
#   harness/bundle.sh build/harness/lengthbench out/bundle
#   out/bundle/run lengthbench bench train ...
set -euo pipefail
bin=${1:?usage: bundle.sh BINARY OUTDIR}
out=${2:?usage: bundle.sh BINARY OUTDIR}
mkdir -p "$out"
cp -L "$bin" "$out/lengthbench"
ldd "$bin" | awk '/=> \//{print $3} /^\t\/lib/{print $1}' | while read -r lib; do cp -L "$lib" "$out/"; done
loader=$(ldd "$bin" | awk '/ld-linux/{print $1}')
cp -L "$loader" "$out/ld-linux-x86-64.so.2"
cat > "$out/run" <<'RUN'
#!/usr/bin/env bash
# run PROGRAM ARGS...: PROGRAM from this folder, with this folder's libraries and loader.
here=$(cd "$(dirname "$0")" && pwd)
prog=$1; shift
exec "$here/ld-linux-x86-64.so.2" --library-path "$here" "$here/$prog" "$@"
RUN
chmod +x "$out/run"
echo "bundle: $out ($(du -sh "$out" | cut -f1))"
