#!/usr/bin/env bash
# Issue 14's benchmark: `nsinspect watch` on N namespaces (default 1000, veth to a root bridge each):
# time to subscribe them all, peak RSS and threads, the time from a change to its line against
# `ip monitor`, and events per second through a batch of address changes (Benchmarks/watch-measure.py).
# Usage: Benchmarks/watch.sh [N] [RUNS] [ADDRS]   (root; builds the release binary if it is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
. Benchmarks/topology.sh
N=${1:-1000}
RUNS=${2:-50}
ADDRS=${3:-5000}
BIN=.build/release/nsinspect
[ -x "$BIN" ] || swift build -c release --static-swift-stdlib
trap bench_teardown EXIT
echo "# building $N namespaces with veths to $BENCH_BRIDGE"
bench_topology "$N" 0
python3 Benchmarks/watch-measure.py "$BIN" "$BENCH_PREFIX-1" "$RUNS" "$ADDRS"
