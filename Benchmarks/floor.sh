#!/usr/bin/env bash
# Issue 16's benchmark: nsinspect against the floor, side by side in one run. N namespaces (default
# 1000), each with a veth to a root bridge and an address:
#   `dump --json` against Benchmarks/dumpfloor.c (one process, setns into each namespace, the same four
#   netlink dumps, nothing decoded or printed): wall, user and system time;
#   `list` and `list --no-interfaces` against `ip netns list` (names and nsids, the same kernel walk);
#   start-up: `nsinspect --version` against `lsns --version`, `list` against `lsns -t net` with P
#   unshared processes (default 0);
#   peak RSS of dump and list.
# Usage: Benchmarks/floor.sh [N] [P]   (root; builds the release binary if it is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
. Benchmarks/topology.sh
N=${1:-1000}
P=${2:-0}
BIN=.build/release/nsinspect
FLOOR=$(mktemp -d)/dumpfloor
[ -x "$BIN" ] || swift build -c release --static-swift-stdlib
cc -O2 -Wall -o "$FLOOR" Benchmarks/dumpfloor.c
trap 'bench_teardown; rm -rf "$(dirname "$FLOOR")"' EXIT
echo "# idle host: start-up"
hyperfine -N --warmup 5 --runs 50 "$BIN --version" "lsns --version" "$BIN list" "lsns -t net" 2>&1 | grep -E "Benchmark|Time"
echo "# building $N namespaces with veths to $BENCH_BRIDGE, and $P unshared processes"
bench_topology "$N" "$P"
echo "# floor: $("$FLOOR")"
hyperfine -N --warmup 3 --runs 30 --export-markdown /tmp/nsinspect-floor.md \
  "$FLOOR" "$BIN dump --json" "ip netns list" "$BIN list" "$BIN list --no-interfaces" "lsns -t net"
cat /tmp/nsinspect-floor.md
echo
echo "peak RSS (MB): dump --json $(bench_peak_rss_mb "$BIN" dump --json), list $(bench_peak_rss_mb "$BIN" list), floor $(bench_peak_rss_mb "$FLOOR")"
