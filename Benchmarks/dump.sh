#!/usr/bin/env bash
# Issue 3's benchmark: `nsinspect dump --json` against `ip -all netns exec ip -j link show` (and route,
# neigh) with N namespaces each with a veth to a root bridge; `graph` time; peak RSS.
# Usage: Benchmarks/dump.sh [N]   (root; builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
. Benchmarks/topology.sh
N=${1:-1000}
BIN=.build/release/nsinspect
[ -x "$BIN" ] || swift build -c release --static-swift-stdlib
trap bench_teardown EXIT
echo "# building $N namespaces with veths to $BENCH_BRIDGE"
bench_topology "$N" 0
echo "# namespaces in the dump: $("$BIN" dump --json | grep -o '"namespace":{' | wc -l)"
echo "# graph: $("$BIN" graph --format json | grep -o '"a":{' | wc -l) veth pairs"
hyperfine -N --warmup 1 --runs 3 --export-markdown /tmp/nsinspect-dump-ip.md \
  "ip -all netns exec ip -j link show" "ip -all netns exec ip -j route show" "ip -all netns exec ip -j neigh show"
hyperfine -N --warmup 2 --runs 10 --export-markdown /tmp/nsinspect-dump.md \
  "$BIN dump --json" "$BIN graph --format json" "$BIN graph --format dot" "$BIN list"
cat /tmp/nsinspect-dump-ip.md /tmp/nsinspect-dump.md
echo
echo "peak RSS (MB): dump --json $(bench_peak_rss_mb "$BIN" dump --json), graph $(bench_peak_rss_mb "$BIN" graph --format json), list $(bench_peak_rss_mb "$BIN" list)"
