#!/usr/bin/env bash
# Issue 6's benchmark: `nsinspect conntrack NS --json` against `conntrack -L -o extended` (conntrack-tools,
# through `ip netns exec`) on a table of N entries (100 000 by default) in one namespace; median of several
# runs each, side by side in one hyperfine run, and the peak RSS of both.
#
# The entries are real flows: in a namespace of its own, one Python socket sends a UDP datagram to N
# different destination ports (two addresses behind a veth, resolved by permanent neighbour entries so no
# ARP is needed), and a SNAT rule rewrites their source, so every entry has a NAT rewrite as in a NAT lab.
# Nothing answers, so every entry is [UNREPLIED]; the namespace's UDP timeout is raised to an hour so the
# table stays whole while it is measured.
# Usage: Benchmarks/conntrack.sh [N] [RUNS]   (root; builds the release binary first if it is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
. Benchmarks/topology.sh
N=${1:-100000}
RUNS=${2:-10}
BIN=.build/release/nsinspect
# Not under $BENCH_PREFIX: bench_teardown of another benchmark removes every namespace with that prefix.
NS=${BENCH_CT_NS:-nsict-$$}
[ -x "$BIN" ] || swift build -c release --static-swift-stdlib

global_max=$(sysctl -n net.netfilter.nf_conntrack_max)
teardown() {
  ip netns del "$NS" 2>/dev/null || true
  [ "$(sysctl -n net.netfilter.nf_conntrack_max)" = "$global_max" ] || sysctl -qw net.netfilter.nf_conntrack_max="$global_max"
}
trap teardown EXIT

echo "# namespace $NS: veth ct0/ct1, SNAT to 10.99.0.100, $N UDP flows"
ip netns add "$NS"
ip -n "$NS" -batch - <<EOF
link set lo up
link add ct0 type veth peer name ct1
link set ct0 up
link set ct1 up
address add 10.99.0.1/24 dev ct0
EOF
for i in 2 3 4 5 6 7 8 9; do
  echo "neighbour add 10.99.0.$i lladdr 02:00:00:00:99:0$i dev ct0 nud permanent"
done | ip -n "$NS" -batch -
ip netns exec "$NS" nft 'table ip bench { chain post { type nat hook postrouting priority srcnat; oifname "ct0" snat to 10.99.0.100; }; }'
ip netns exec "$NS" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=3600
max=$(ip netns exec "$NS" sysctl -n net.netfilter.nf_conntrack_max)
if [ "$max" -lt "$N" ]; then
  # Only the initial namespace's value can be raised; a namespace may not go above it.
  echo "# nf_conntrack_max is $max; raising it to $N" >&2
  sysctl -qw net.netfilter.nf_conntrack_max="$N"
  ip netns exec "$NS" sysctl -qw net.netfilter.nf_conntrack_max="$N"
fi

start=$(date +%s.%N)
ip netns exec "$NS" python3 - "$N" <<'EOF'
import socket, sys
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("10.99.0.1", 5000))
sent = 0
# 65 535 destination ports on each of 10.99.0.2 … 10.99.0.9 (each has a permanent neighbour entry).
for host in range(2, 10):
    for port in range(1, 65536):
        if sent == n:
            sys.exit(0)
        s.sendto(b"x", ("10.99.0.%d" % host, port))
        sent += 1
EOF
made=$(ip netns exec "$NS" conntrack -C)
echo "# $made entries in $(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s"
if [ "$made" -lt "$N" ]; then
  echo "conntrack.sh: only $made of $N entries were made (nf_conntrack_max, or drops)" >&2
  exit 1
fi

# The two agree on what they list.
ours=$("$BIN" conntrack "$NS" --json | grep -o '"protocol"' | wc -l)
theirs=$(ip netns exec "$NS" conntrack -L -o extended 2>/dev/null | wc -l)
echo "# entries listed: nsinspect $ours, conntrack -L $theirs"

hyperfine -N --warmup 1 --runs "$RUNS" --export-markdown /tmp/nsinspect-conntrack.md --export-json /tmp/nsinspect-conntrack.json \
  -n "nsinspect conntrack $NS --json" "$BIN conntrack $NS --json" \
  -n "nsinspect conntrack $NS" "$BIN conntrack $NS" \
  -n "ip netns exec $NS conntrack -L -o extended" "ip netns exec $NS conntrack -L -o extended"
cat /tmp/nsinspect-conntrack.md
echo
python3 - <<'EOF'
import json
results = json.load(open("/tmp/nsinspect-conntrack.json"))["results"]
print("median of %d runs:" % len(results[0]["times"]))
for r in results:
    print("  %8.1f ms  %s" % (r["median"] * 1000, r["command"]))
EOF
echo "peak RSS (MB): nsinspect conntrack --json $(bench_peak_rss_mb "$BIN" conntrack "$NS" --json)," \
  "nsinspect conntrack $(bench_peak_rss_mb "$BIN" conntrack "$NS")," \
  "ip netns exec conntrack -L -o extended $(bench_peak_rss_mb ip netns exec "$NS" conntrack -L -o extended)"
