# Shared by the benchmarks: N namespaces named $BENCH_PREFIX-N, each with a veth (eth0 inside, an
# address 10.X.Y.Z/16 and a default route) whose host end is a port of the bridge $BENCH_BRIDGE, and
# P processes each in a namespace of its own (unshare --net). Everything is removed by bench_teardown,
# which callers run from an EXIT trap.
BENCH_PREFIX=${BENCH_PREFIX:-nsib}
BENCH_BRIDGE=${BENCH_BRIDGE:-nsibbr0}
BENCH_PIDS=()

# The address of namespace i in 10.200.0.0/16 (10.200.0.1 is the bridge).
bench_address() {
  local i=$1
  echo "10.200.$(( (i + 2) / 254 )).$(( (i + 2) % 254 + 1 ))"
}

bench_topology() {
  local n=$1 p=${2:-0} batch
  batch=$(mktemp)
  echo "link add $BENCH_BRIDGE type bridge" >> "$batch"
  echo "link set $BENCH_BRIDGE up" >> "$batch"
  echo "address add 10.200.0.1/16 dev $BENCH_BRIDGE" >> "$batch"
  for i in $(seq 1 "$n"); do
    echo "netns add $BENCH_PREFIX-$i" >> "$batch"
    echo "link add ${BENCH_PREFIX}v$i type veth peer name eth0 netns $BENCH_PREFIX-$i" >> "$batch"
    echo "link set ${BENCH_PREFIX}v$i master $BENCH_BRIDGE up" >> "$batch"
  done
  ip -batch "$batch"
  for i in $(seq 1 "$n"); do
    printf 'link set lo up\nlink set eth0 up\naddress add %s/16 dev eth0\nroute add default via 10.200.0.1\n' \
      "$(bench_address "$i")" | ip -n "$BENCH_PREFIX-$i" -batch -
  done
  rm -f "$batch"
  for _ in $(seq 1 "$p"); do
    unshare --net -- sleep 36000 &
    BENCH_PIDS+=($!)
  done
  sleep 0.5
}

bench_teardown() {
  local batch
  for pid in "${BENCH_PIDS[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  batch=$(mktemp)
  for ns in $(ip netns list | awk '{print $1}' | grep "^$BENCH_PREFIX-" || true); do echo "netns del $ns" >> "$batch"; done
  [ -s "$batch" ] && ip -batch "$batch" >/dev/null 2>&1 || true
  ip link del "$BENCH_BRIDGE" 2>/dev/null || true
  rm -f "$batch"
}

# Peak resident set size of a command, in MB (GNU time's %M is in KB).
bench_peak_rss_mb() {
  local out kb
  out=$(mktemp)
  /usr/bin/time -f '%M' -o "$out" "$@" >/dev/null 2>&1 || true
  kb=$(tail -1 "$out")
  rm -f "$out"
  awk -v kb="$kb" 'BEGIN { printf "%.1f", kb / 1024 }'
}
