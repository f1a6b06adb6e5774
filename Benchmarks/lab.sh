#!/usr/bin/env bash
# Issue 4's benchmark: `nsinspect lab up` / `lab down` of a generated lab of N namespaces, each with a
# veth (eth0 inside, an address in 10.201.0.0/16, a default route) whose host end is a port of one host
# bridge, against the same lab built with `ip`:
#   - ip -batch: one `ip -batch` file for the host side (namespaces, veths, bridge ports) and one
#     `ip -n NS -batch -` per namespace for what lives inside it (an address cannot be put on eth0
#     before it moves: moving a link flushes its addresses), i.e. N + 1 ip processes;
#   - ip script: a shell script of one `ip` command per step, the way labs are usually written.
# Down: `lab down` against `ip -batch` of `netns del` (the veths go with their namespaces) + the bridge.
# `ip netns del` returns before the kernel has destroyed the namespaces; `lab down` returns once the
# lab's host links are gone too (so `up` can follow at once). Between runs everything is waited for.
# Usage: Benchmarks/lab.sh [N] [RUNS]   (root; builds the release binary first when it is missing)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}
RUNS=${2:-5}
BIN=${NSINSPECT_BIN:-$PWD/.build/release/nsinspect}
[ -x "$BIN" ] || swift build -c release --static-swift-stdlib
P=nslb          # namespace prefix: nslb-1 … nslb-N
BR=nslbbr0
work=$(mktemp -d)
teardown() {
  "$BIN" lab down "$work/lab.yaml" >/dev/null 2>&1 || true
  local batch="$work/clean"
  : > "$batch"
  for ns in $(ip netns list | awk '{print $1}' | grep "^$P-" || true); do echo "netns del $ns" >> "$batch"; done
  [ -s "$batch" ] && ip -batch "$batch" >/dev/null 2>&1 || true
  ip link del "$BR" 2>/dev/null || true
  rm -rf "$work"
}
trap teardown EXIT

addr() { echo "10.201.$(( (i + 2) / 254 )).$(( (i + 2) % 254 + 1 ))"; }

# The lab file.
{
  echo "lab: nslb"
  echo "namespaces:"
  for i in $(seq 1 "$N"); do echo "  $P-$i: {routes: [default via 10.201.0.1]}"; done
  echo "bridges:"
  echo "  - name: host:$BR"
  echo "    address: 10.201.0.1/16"
  echo "    ports: [$(for i in $(seq 1 "$N"); do printf '%s' "${P}v$i"; [ "$i" -lt "$N" ] && printf ', '; done)]"
  echo "links:"
  for i in $(seq 1 "$N"); do echo "  - {a: $P-$i:eth0 $(addr)/16, b: host:${P}v$i}"; done
} > "$work/lab.yaml"

# ip -batch: host side in one file, then one batch per namespace.
{
  echo "link add $BR type bridge"
  echo "address add 10.201.0.1/16 dev $BR"
  echo "link set $BR up"
  for i in $(seq 1 "$N"); do
    echo "netns add $P-$i"
    echo "link add ${P}v$i type veth peer name eth0 netns $P-$i"
    echo "link set ${P}v$i master $BR up"
  done
} > "$work/host.batch"
{
  echo "#!/bin/sh"
  echo "ip -batch $work/host.batch"
  for i in $(seq 1 "$N"); do
    echo "printf 'link set lo up\nlink set eth0 up\naddress add $(addr)/16 dev eth0\nroute add default via 10.201.0.1\n' | ip -n $P-$i -batch -"
  done
} > "$work/batch-up.sh"
# ip script: one command per step.
{
  echo "#!/bin/sh"
  echo "set -e"
  echo "ip link add $BR type bridge"
  echo "ip address add 10.201.0.1/16 dev $BR"
  echo "ip link set $BR up"
  for i in $(seq 1 "$N"); do
    echo "ip netns add $P-$i"
    echo "ip link add ${P}v$i type veth peer name eth0 netns $P-$i"
    echo "ip link set ${P}v$i master $BR up"
    echo "ip -n $P-$i link set lo up"
    echo "ip -n $P-$i link set eth0 up"
    echo "ip -n $P-$i address add $(addr)/16 dev eth0"
    echo "ip -n $P-$i route add default via 10.201.0.1"
  done
} > "$work/script-up.sh"
{
  for i in $(seq 1 "$N"); do echo "netns del $P-$i"; done
  echo "link del $BR"
} > "$work/down.batch"

# Sanity: each way builds the same thing (N namespaces, N bridge ports, a default route inside).
check() {
  local ports routes
  ports=$(ip -br link show master "$BR" | wc -l)
  routes=$(ip -n "$P-$N" route show default | wc -l)
  [ "$ports" = "$N" ] && [ "$routes" = 1 ] || { echo "$1 built $ports ports, $routes default routes in $P-$N" >&2; exit 1; }
}

# `ip netns del` returns before the kernel has destroyed the namespace (and the host ends of its
# veths): wait for that, untimed, before the next way builds the lab again.
settle() {
  local tries=0
  while ip -o link show | grep -q " ${P}v[0-9]*@" || ip link show "$BR" >/dev/null 2>&1; do
    tries=$((tries + 1)); [ "$tries" -gt 600 ] && { echo "links of the lab did not go away" >&2; exit 1; }
    sleep 0.1
  done
}
now() { date +%s.%N; }
median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
declare -A T
for run in $(seq 1 "$RUNS"); do
  t0=$(now); "$BIN" lab up "$work/lab.yaml" >/dev/null; t1=$(now); check "lab up"
  t2=$(now); "$BIN" lab down "$work/lab.yaml" >/dev/null; t3=$(now); settle; t4=$(now)
  T[labup]+="$(awk "BEGIN { print $t1 - $t0 }") "; T[labdown]+="$(awk "BEGIN { print $t3 - $t2 }") "
  T[labgone]+="$(awk "BEGIN { print $t4 - $t2 }") "
  t0=$(now); sh "$work/batch-up.sh"; t1=$(now); check "ip -batch"
  t2=$(now); ip -batch "$work/down.batch"; t3=$(now); settle; t4=$(now)
  T[batchup]+="$(awk "BEGIN { print $t1 - $t0 }") "; T[batchdown]+="$(awk "BEGIN { print $t3 - $t2 }") "
  T[batchgone]+="$(awk "BEGIN { print $t4 - $t2 }") "
  t0=$(now); sh "$work/script-up.sh"; t1=$(now); check "ip script"
  t2=$(now); ip -batch "$work/down.batch"; t3=$(now); settle
  T[scriptup]+="$(awk "BEGIN { print $t1 - $t0 }") "
done
m() { echo "${T[$1]}" | tr ' ' '\n' | grep . | median; }
rss_up=$( { /usr/bin/time -f '%M' "$BIN" lab up "$work/lab.yaml" >/dev/null; } 2>&1 | tail -1 )
rss_down=$( { /usr/bin/time -f '%M' "$BIN" lab down "$work/lab.yaml" >/dev/null; } 2>&1 | tail -1 )
lu=$(m labup) ld=$(m labdown) bu=$(m batchup) bd=$(m batchdown) su=$(m scriptup) lg=$(m labgone) bg=$(m batchgone)
echo "lab of $N namespaces (veth to a host bridge, address, default route); median of $RUNS runs, seconds"
printf '| %-34s | %8s | %8s | %14s |\n' "way" "up" "down" "down, all gone"
printf '|%s|%s|%s|%s|\n' "------------------------------------" "----------" "----------" "----------------"
printf '| %-34s | %8.3f | %8.3f | %14.3f |\n' "nsinspect lab up / lab down" "$lu" "$ld" "$lg"
printf '| %-34s | %8.3f | %8.3f | %14.3f |\n' "ip -batch (+ ip -n NS -batch each)" "$bu" "$bd" "$bg"
printf '| %-34s | %8.3f | %8s | %14s |\n' "ip script (one ip per step)" "$su" "-" "-"
echo "ratios: ip -batch / lab up = $(awk "BEGIN { printf \"%.2f\", $bu / $lu }")x, ip script / lab up = $(awk "BEGIN { printf \"%.2f\", $su / $lu }")x; down until the kernel is done: ip -batch / lab down = $(awk "BEGIN { printf \"%.2f\", $bg / $lg }")x"
echo "peak RSS: lab up $(( rss_up / 1024 )) MB, lab down $(( rss_down / 1024 )) MB"
