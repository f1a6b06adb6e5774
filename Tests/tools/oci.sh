#!/bin/bash
# A pod-like container for nsinspect's end-to-end tests, built the way containerd's CRI plugin builds one,
# without containerd: a network namespace bind-mounted at /var/run/netns/cni-ID-XXXXXXXX, wired by the CNI
# loopback and bridge plugins (host-local IPAM, subnet 10.88.77.0/24, bridge named after ID), then an OCI
# runtime (runc or crun) running busybox `sleep` from a read-only root built from /bin/busybox
# (busybox-static) in that namespace.
#
#   oci.sh up STATE RUNTIME ID      RUNTIME is runc or crun; the last lines on stdout are KEY=VALUE:
#                                   PID NETNS_NAME NETNS_PATH IP BRIDGE VETH (host side) RUNTIME ID
#   oci.sh down STATE RUNTIME ID    undo it, in containerd's order (idempotent)
#
# The bridge is isGateway=false, ipMasq=false: no address, no route, no iptables/nft rule, no forwarding
# sysctl on the host (the plugin writes only per-interface sysctls of the links it makes). Everything of
# ours is in STATE: the rootfs, the bundle, the runtime's state root (--root), the CNI configurations and
# results, host-local's IPAM directory (dataDir), logs, the list of what up made; down removes it. On the
# host up makes only the netns file, the bridge (CNI DEL never removes it) and its veth, and the runtime's
# cgroups (runc: CALLER'S-CGROUP/ID, crun: /ID, both named after ID; `delete` removes them).
#
# crun 1.8 refuses hybrid cgroups whose cgroup2 hierarchy has a controller ("cgroups in hybrid mode not
# supported, drop all controllers from cgroupv2"); then every crun call runs in a private mount namespace
# where /sys/fs/cgroup/unified/cgroup.controllers reads empty. Nothing on the host changes for that.

. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh" || exit 1
# Inherited descriptors are closed first: the container would keep a harness's pipes open.
tool_init oci.sh "up|down STATE runc|crun ID"
[ $# -eq 4 ] || usage
CMD=$1 STATE=${2%/} RT=$3 ID=$4
case $CMD in up|down) ;; *) usage ;; esac
case $RT in runc|crun) ;; *) usage ;; esac
check_state
[[ $ID =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,40}$ ]] || { echo "$TOOL: ID must be [A-Za-z0-9][A-Za-z0-9_.-]*" >&2; exit 2; }
need_root

ROOT=$STATE/rootfs
RTROOT=$STATE/rt
BRIDGE=${ID:0:15}
SUBNET=10.88.77.0/24
CNI_PATH=/usr/lib/cni

rt() {   # the runtime, with its state in STATE; crun in hybrid mode behind the cgroup.controllers mask
    if [ "$RT" = crun ] && [ ! -f /sys/fs/cgroup/cgroup.controllers ] &&
        [ -n "$(cat /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null)" ]; then
        unshare -m --propagation private sh -c 'mount --bind /dev/null /sys/fs/cgroup/unified/cgroup.controllers && exec "$@"' \
            rt crun --root "$RTROOT" "$@"
    else
        "$RT" --root "$RTROOT" "$@"
    fi
}
cni() {   # ADD|DEL CONF IFNAME NETNS-PATH: the plugin named by the configuration's "type"
    local type
    type=$(sed -n 's/.*"type": *"\([^"]*\)".*/\1/p' "$2" | head -1)
    CNI_COMMAND=$1 CNI_CONTAINERID=$ID CNI_NETNS=$4 CNI_IFNAME=$3 CNI_PATH=$CNI_PATH \
        CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=$ID;K8S_POD_INFRA_CONTAINER_ID=$ID" \
        "$CNI_PATH/$type" < "$2"
}

# ---------------------------------------------------------------------------------------------- down
do_down() {
    [ -d "$STATE" ] || return 0
    local t0 ctok d nsname nspath
    t0=$(now)
    ctok=$(recorded_pid container)
    nsname=$(records netns | tail -1)
    nspath=/var/run/netns/$nsname
    # 1. the container: kill, wait, delete (also after it was killed -9: delete reaps the state and cgroups)
    if [ -n "$(records container)" ]; then
        if rt state "$ID" >/dev/null 2>&1; then
            [ -n "$ctok" ] && tok_alive "$ctok" && rt kill "$ID" KILL >/dev/null 2>&1
            [ -n "$ctok" ] && wait_gone 50 "$ctok"
            rt delete "$ID" >/dev/null 2>&1 || rt delete --force "$ID" >/dev/null 2>&1 || say "$RT delete $ID failed"
        fi
        [ -n "$ctok" ] && tok_alive "$ctok" && { signal_all KILL "$ctok"; wait_gone 50 "$ctok"; }
    fi
    # 2. CNI DEL, bridge then loopback (the plugins tolerate a missing namespace or interface)
    if [ -n "$(records cni)" ] && [ -n "$nsname" ]; then
        [ -f "$STATE/bridge.json" ] && { cni DEL "$STATE/bridge.json" eth0 "$nspath" > /dev/null 2>&1 || say "CNI bridge DEL failed"; }
        [ -f "$STATE/loopback.json" ] && { cni DEL "$STATE/loopback.json" lo "$nspath" > /dev/null 2>&1 || say "CNI loopback DEL failed"; }
    fi
    # 3. the namespace, 4. the bridge (CNI DEL never removes it), 5. the runtime's cgroups. Not common.sh's
    #    del_named_netns and remove_or_hand_over: one cni-… name without runnetns, and cgroups named after
    #    ID that no other setup shares.
    [ -n "$nsname" ] && [ -e "$nspath" ] && { ip netns del "$nsname" || say "ip netns del $nsname failed"; }
    for d in $(records bridge); do
        ip link show "$d" >/dev/null 2>&1 && { ip link del "$d" || say "ip link del $d failed"; }
    done
    for d in $(records cgroup | tac); do
        [ -d "$d" ] && { rmdir "$d" 2>/dev/null || say "cannot rmdir $d (in use?)"; }
    done
    finish_down "$t0"
}

# ------------------------------------------------------------------------------------------------ up
do_up() {
    local t0 t1 nsname nspath out pid ip peer veth line path m d
    t0=$(now)
    need_tools "$RT iproute2 util-linux" "$RT" ip unshare chroot
    need_cni_plugins "$CNI_PATH" bridge host-local loopback
    need_busybox

    begin_up

    # 1. read-only busybox root
    t1=$(now)
    busybox_root "$ROOT" "--install -s" bin sbin usr/bin usr/sbin etc proc sys dev tmp run root
    say "rootfs in $(ms_since "$t1") ms"

    # 2. the sandbox namespace, named as containerd names it (cni-…), with ID in it
    t1=$(now)
    ip link show "$BRIDGE" >/dev/null 2>&1 && fail "a link named $BRIDGE already exists and is not from this STATE"
    nsname=cni-$ID-$(cut -c1-8 /proc/sys/kernel/random/uuid)
    nspath=/var/run/netns/$nsname
    record netns "$nsname"
    out=$(ip netns add "$nsname" 2>&1) || fail "ip netns add $nsname: $out"

    # 3. CNI: loopback (the CRI plugin always runs it), then bridge + host-local with its state in STATE
    cat > "$STATE/loopback.json" <<EOF
{"cniVersion": "1.0.0", "name": "cni-loopback", "type": "loopback"}
EOF
    cat > "$STATE/bridge.json" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$ID",
  "type": "bridge",
  "bridge": "$BRIDGE",
  "isGateway": false,
  "isDefaultGateway": false,
  "ipMasq": false,
  "hairpinMode": false,
  "ipam": {"type": "host-local", "ranges": [[{"subnet": "$SUBNET"}]], "routes": [], "dataDir": "$STATE/ipam"}
}
EOF
    record cni
    record bridge "$BRIDGE"
    cni ADD "$STATE/loopback.json" lo "$nspath" > "$STATE/cni-loopback.json" 2>&1 ||
        fail "CNI_COMMAND=ADD $CNI_PATH/loopback (netns $nspath, lo): $(cat "$STATE/cni-loopback.json")"
    cni ADD "$STATE/bridge.json" eth0 "$nspath" > "$STATE/cni-bridge.json" 2>&1 ||
        fail "CNI_COMMAND=ADD $CNI_PATH/bridge (netns $nspath, eth0) < $STATE/bridge.json: $(cat "$STATE/cni-bridge.json")"
    ip=$(sed -n 's/.*"address": *"\([0-9.]*\)\/[0-9]*".*/\1/p' "$STATE/cni-bridge.json" | head -1)
    [ -n "$ip" ] || fail "no IPv4 address in the bridge plugin's result: $(cat "$STATE/cni-bridge.json")"
    peer=$(ip -n "$nsname" -o link show eth0 | sed -n 's/^[0-9]*: eth0@if\([0-9]*\):.*/\1/p')
    veth=$(ip -o link | awk -F': ' -v i="$peer" '$1 == i { sub(/@.*/, "", $2); print $2 }')
    say "netns and CNI in $(ms_since "$t1") ms"

    # 4. OCI bundle (what `runc spec` gives, with our root, command, hostname and network namespace)
    mkdir -p "$STATE/bundle" "$RTROOT"
    cat > "$STATE/bundle/config.json" <<EOF
{
  "ociVersion": "1.0.2",
  "process": {
    "terminal": false,
    "user": {"uid": 0, "gid": 0},
    "args": ["sleep", "86400"],
    "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
    "cwd": "/",
    "capabilities": {
      "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
      "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
    },
    "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
    "noNewPrivileges": true
  },
  "root": {"path": "$ROOT", "readonly": true},
  "hostname": "$ID",
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
    {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]},
    {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
  ],
  "linux": {
    "resources": {"devices": [{"allow": false, "access": "rwm"}]},
    "namespaces": [
      {"type": "pid"},
      {"type": "network", "path": "$nspath"},
      {"type": "ipc"},
      {"type": "uts"},
      {"type": "mount"}
    ],
    "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats", "/proc/timer_list",
                    "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"],
    "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
  }
}
EOF

    # 5. run detached; the container inherits the runtime's stdio, so a file (a pipe would stay open)
    t1=$(now)
    record container "$ID"
    rt run -d --bundle "$STATE/bundle" "$ID" < /dev/null > "$STATE/container.log" 2>&1 ||
        fail "$RT --root $RTROOT run -d --bundle $STATE/bundle $ID: $(tail -5 "$STATE/container.log")"
    out=$(rt state "$ID" 2>&1) || fail "$RT --root $RTROOT state $ID: $out"
    pid=$(printf '%s\n' "$out" | sed -n 's/.*"pid": *\([0-9]*\).*/\1/p' | head -1)
    [ -n "$pid" ] && record_pid "$pid" container || fail "$RT state $ID names no running process: $out"
    # the runtime's cgroups (named after ID), in case `delete` cannot run later
    while IFS= read -r line; do
        path=${line#*:*:}
        [ "${path##*/}" = "$ID" ] || continue
        for m in $(cgroup_mounts); do [ -d "$m$path" ] && echo "$m$path"; done
    done < "/proc/$pid/cgroup" | sort -u | while read -r d; do record cgroup "$d"; done
    [ "$(stat -L -c %i "/proc/$pid/ns/net")" = "$(stat -L -c %i "$nspath")" ] || fail "the container is not in $nspath"
    say "$RT run in $(ms_since "$t1") ms"
    {
        echo "RUNTIME=$RT"
        echo "ID=$ID"
        echo "PID=$pid"
        echo "NETNS_NAME=$nsname"
        echo "NETNS_PATH=$nspath"
        echo "IP=$ip"
        echo "BRIDGE=$BRIDGE"
        echo "VETH=$veth"
    } > "$STATE/up.env"
    finish_up "$t0"
}

run_command
