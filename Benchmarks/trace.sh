#!/usr/bin/env bash
# Issue 5's benchmark, on two namespaces joined by a veth (10.202.0.1 — 10.202.0.2), in one run:
#   1. ready: time from start to --ready-file (BPF programs loaded and attached, ring buffer open), for a
#      passive trace and for an active one; median of RUNS. Goal: under 300 ms.
#   2. overhead on traffic the trace does not match: iperf3 TCP A → B for 3 s, untraced and while
#      `trace A B --passive --filter 'udp and port 9'` runs; median of RUNS each, runs alternated.
#      Goal: at least 95 % of untraced throughput.
#   3. matching load: `ping -f -c 100000` A → B untraced, while `trace A B --passive --filter icmp`
#      turns every packet into events, and while a bpftrace one-liner printf()s on net_dev_start_xmit
#      and netif_receive_skb. Goal: 0 events lost, slower than untraced by less than bpftrace.
# Usage: Benchmarks/trace.sh [RUNS]   (root; builds the release binary first when it is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
BIN=${NSINSPECT_BIN:-$PWD/.build/release/nsinspect}
[ -x "$BIN" ] || swift build -c release --static-swift-stdlib
A=nsbt-a B=nsbt-b
work=$(mktemp -d)
PIDS=()
TRACE_PID=
teardown() {
  [ -n "$TRACE_PID" ] && kill "$TRACE_PID" 2>/dev/null || true
  [ -n "${BT:-}" ] && kill "$BT" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "$work"
}
trap teardown EXIT
ip netns add "$A"
ip netns add "$B"
ip -n "$A" link add eth0 type veth peer name eth0 netns "$B"
ip -n "$A" address add 10.202.0.1/24 dev eth0
ip -n "$B" address add 10.202.0.2/24 dev eth0
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; ip -n "$ns" link set eth0 up; done
ip netns exec "$A" ping -c 1 -W 1 -q 10.202.0.2 >/dev/null

now_ns() { date +%s%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }

# Starts a trace in the background (TRACE_PID) and waits for its ready file; READY_MS is how long that took.
start_trace() {
  local out=$1; shift
  rm -f "$work/ready"
  local t0; t0=$(now_ns)
  "$BIN" trace "$@" --ready-file "$work/ready" > "$out" 2>"$work/trace.err" &
  TRACE_PID=$!
  while [ ! -e "$work/ready" ]; do
    kill -0 "$TRACE_PID" 2>/dev/null || { cat "$work/trace.err" >&2; exit 1; }
  done
  READY_MS=$(( ($(now_ns) - t0) / 1000000 ))
}
stop_trace() { kill -TERM "$TRACE_PID"; wait "$TRACE_PID" || true; TRACE_PID=; }

# 1. Ready.
passive_ms=() active_ms=()
for _ in $(seq 1 "$RUNS"); do
  start_trace /dev/null "$A" "$B" --passive --filter 'udp and port 9'
  passive_ms+=("$READY_MS")
  stop_trace
  rm -f "$work/ready"
  t0=$(now_ns)
  "$BIN" trace "$A" "$B" --count 1 --ready-file "$work/ready" >/dev/null &
  TRACE_PID=$!
  while [ ! -e "$work/ready" ]; do kill -0 "$TRACE_PID" 2>/dev/null || break; done
  active_ms+=($(( ($(now_ns) - t0) / 1000000 )))
  wait "$TRACE_PID"
done
ready_passive=$(printf '%s\n' "${passive_ms[@]}" | median)
ready_active=$(printf '%s\n' "${active_ms[@]}" | median)

# 2. iperf3 with a trace filtering another flow.
# A one-shot server (-1) per client run, so every run starts from the same state.
iperf() {
  ip netns exec "$B" iperf3 -s -1 >/dev/null 2>&1 &
  PIDS=($!)
  sleep 0.2
  ip netns exec "$A" iperf3 -c 10.202.0.2 -t 3 -f m | awk '/receiver/ { print $7 }'
  wait "${PIDS[0]}" 2>/dev/null || true
  PIDS=()
}
plain=() traced=()
for _ in $(seq 1 "$RUNS"); do
  plain+=("$(iperf)")
  start_trace /dev/null "$A" "$B" --passive --filter 'udp and port 9'
  traced+=("$(iperf)")
  stop_trace
done
iperf_plain=$(printf '%s\n' "${plain[@]}" | median)
iperf_traced=$(printf '%s\n' "${traced[@]}" | median)

# 3. ping -f with every packet traced, against bpftrace printf.
flood() {
  local t0; t0=$(now_ns)
  ip netns exec "$A" ping -f -c 100000 -q 10.202.0.2 >/dev/null
  awk -v ns=$(( $(now_ns) - t0 )) 'BEGIN { printf "%.2f", ns / 1e9 }'
}
flood_runs=$(( RUNS < 3 ? RUNS : 3 ))
f_plain=() f_traced=() f_bpftrace=() lost=() events=()
for _ in $(seq 1 "$flood_runs"); do
  f_plain+=("$(flood)")
  start_trace "$work/flood.json" "$A" "$B" --passive --filter icmp --json
  f_traced+=("$(flood)")
  stop_trace
  summary=$(tail -n 1 "$work/flood.json")
  lost+=("$(echo "$summary" | sed -n 's/.*"lost":\([0-9]*\).*/\1/p')")
  events+=("$(echo "$summary" | sed -n 's/.*"events":\([0-9]*\).*/\1/p')")
  rm -f "$work/flood.json"
  # bpftrace 0.17 attaches tracepoints through tracefs, which this host does not mount: mount it in a
  # private mount namespace of bpftrace's own (the host's mounts stay as they are).
  unshare -m --propagation private sh -c 'mount -t tracefs nodev /sys/kernel/tracing && exec bpftrace -e \
    "tracepoint:net:net_dev_start_xmit, tracepoint:net:netif_receive_skb { printf(\"%s %d\n\", str(args->name), args->len); }"' \
    > "$work/bpftrace.out" 2>&1 &
  BT=$!
  until grep -q Attaching "$work/bpftrace.out" 2>/dev/null; do
    kill -0 "$BT" 2>/dev/null || { echo "bpftrace failed:" >&2; cat "$work/bpftrace.out" >&2; exit 1; }
    sleep 0.1
  done
  sleep 0.5
  f_bpftrace+=("$(flood)")
  kill -INT "$BT"; wait "$BT" 2>/dev/null || true
  rm -f "$work/bpftrace.out"
done
fp=$(printf '%s\n' "${f_plain[@]}" | median)
ft=$(printf '%s\n' "${f_traced[@]}" | median)
fb=$(printf '%s\n' "${f_bpftrace[@]}" | median)

echo "ready (ms, median of $RUNS): passive $ready_passive, active $ready_active   [goal < 300]"
echo "iperf3 TCP 3 s (Mbit/s, median of $RUNS): untraced $iperf_plain, tracing another flow $iperf_traced" \
     "= $(awk "BEGIN { printf \"%.1f\", 100 * $iperf_traced / $iperf_plain }") %   [goal >= 95 %]"
echo "ping -f -c 100000 (s, median of $flood_runs): untraced $fp, nsinspect trace --passive $ft, bpftrace printf $fb"
echo "  events per traced flood: ${events[*]}; lost: ${lost[*]}   [goal: 0 lost, $ft < $fb]"
