#!/usr/bin/env bash
# Issue 15's benchmark: `nsinspect serve` with N namespaces (default 1000, veth to a root bridge each):
# each API answer's time against the command it runs (hyperfine, side by side), the page's first render
# in headless Chromium (Benchmarks/serve-render.py), and 100 concurrent clients for 10 s with wrk.
# Usage: Benchmarks/serve.sh [N]   (root; builds the release binary if it is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
. Benchmarks/topology.sh
N=${1:-1000}
BIN=$PWD/.build/release/nsinspect
[ -x "$BIN" ] || swift build -c release --static-swift-stdlib
READY=$(mktemp -u /tmp/serve-bench-XXXXXX)
SERVER=
finish() {
  [ -n "$SERVER" ] && kill -TERM "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null || true
  bench_teardown
}
trap finish EXIT
echo "# building $N namespaces with veths to $BENCH_BRIDGE"
bench_topology "$N" 0
"$BIN" serve --listen 127.0.0.1:0 --ready-file "$READY" 2>/dev/null &
SERVER=$!
for _ in $(seq 300); do [ -s "$READY" ] && break; sleep 0.1; done
URL=$(cat "$READY")
NS="$BENCH_PREFIX-1"
echo "# serve at $URL; API answer vs the command it runs"
hyperfine -N -w 2 -r 10 \
  "curl -s -o /dev/null ${URL}api/list" "$BIN list --json" \
  "curl -s -o /dev/null ${URL}api/graph" "$BIN graph --json" \
  "curl -s -o /dev/null ${URL}api/show/$NS" "$BIN show $NS --json"
echo "# the page's first render (graph drawn) in headless Chromium"
python3 Benchmarks/serve-render.py "$URL" "$N"
echo "# 100 concurrent clients for 10 s on /api/show/$NS"
wrk -t2 -c100 -d10s --timeout 10s "${URL}api/show/$NS"
echo "# 100 concurrent clients for 10 s on /api/graph"
wrk -t2 -c100 -d10s --timeout 10s "${URL}api/graph"
echo "# server RSS after the load: $(awk '/VmHWM/ {print $2, $3}' /proc/$SERVER/status) peak"
