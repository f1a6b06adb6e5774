#!/usr/bin/env bash
# Issue 2's benchmark: `nsinspect list` against `lsns -t net` and `ip netns list` with 1000 namespaces
# (each with a veth to a root bridge) and 200 processes in namespaces of their own.
# Usage: Benchmarks/census.sh [NAMESPACES] [PROCESSES]   (root; builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
. Benchmarks/topology.sh
N=${1:-1000}
P=${2:-200}
BIN=.build/release/nsinspect
[ -x "$BIN" ] || swift build -c release --static-swift-stdlib
trap bench_teardown EXIT
echo "# building $N namespaces with veths to $BENCH_BRIDGE and $P unshared processes"
bench_topology "$N" "$P"
echo "# namespaces seen: nsinspect $("$BIN" list --json | grep -o '"ns":' | wc -l), lsns $(lsns -t net -n | wc -l), ip netns $(ip netns list | wc -l)"
# `list` leaves IFACES/ADDRS out above 256 namespaces; `--interfaces` asks every namespace for them.
hyperfine -N --warmup 5 --runs 40 --export-markdown /tmp/nsinspect-census.md \
  "$BIN list" "lsns -t net" "ip netns list" "$BIN list --interfaces" "$BIN list --json"
cat /tmp/nsinspect-census.md
echo
echo "peak RSS (MB): nsinspect list $(bench_peak_rss_mb "$BIN" list), nsinspect list --interfaces $(bench_peak_rss_mb "$BIN" list --interfaces), nsinspect list --json $(bench_peak_rss_mb "$BIN" list --json), lsns -t net $(bench_peak_rss_mb lsns -t net), ip netns list $(bench_peak_rss_mb ip netns list)"
