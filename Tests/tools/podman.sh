#!/bin/bash
# Rootful podman (4.x, CNI backend) for nsinspect's end-to-end tests, in a network namespace of its own
# (PREFIX-podman, named in /var/run/netns) and a private mount namespace. Podman has no daemon: a
# `sleep infinity` holder keeps both namespaces, and every podman command runs inside them through the
# wrapper STATE/podman. Busybox image built from /bin/busybox (busybox-static); containers PREFIX-web and
# PREFIX-db on the default network "podman" (CNI bridge cni-podman0, 10.88.0.0/16, inside PREFIX-podman),
# PREFIX-none with --network none.
#
#   podman.sh up STATE PREFIX     start everything; the last lines on stdout are KEY=VALUE:
#                                 PODMAN HOLDER_PID NETNS BRIDGE IMAGE WEB_PID WEB_IP WEB_ID DB_PID DB_IP DB_ID
#                                 NONE_PID NONE_IP(empty) NONE_ID.  `$PODMAN inspect …` runs podman there.
#   podman.sh down STATE PREFIX   undo it (idempotent: after a failed up, after kill -9, twice in a row)
#
# Workarounds this kind of host needs (no CAP_SYS_RESOURCE, hybrid cgroups, PID 1 not systemd): a
# containers.conf (CONTAINERS_CONF) with default_ulimits within our hard limits, the cgroupfs manager, and
# runc (crun 1.8 refuses hybrid cgroups whose v2 hierarchy has a controller).
# Inside the holder's mount namespace tmpfs covers /run (runroot, /run/netns/netns-* of the containers),
# /var/lib/containers (graph root, containers.json), /var/lib/cni (IPAM), /dev/shm (libpod_lock),
# /var/tmp, /var/cache (short-name-aliases lock); /etc/cni/net.d is a private copy in STATE (the CNI
# backend writes cni.lock there). cni-podman0, the veths, the CNI firewall rules and ip_forward=1 stay in
# PREFIX-podman. On the host up makes only /var/run/netns/PREFIX-podman, the mount points
# /var/lib/containers and /var/lib/cni if missing, and the cgroups /sys/fs/cgroup/*/libpod_parent/…
# (libpod_parent itself if missing). down removes what up recorded and ends processes only by their
# recorded PIDs (with start times), the processes of the holder's mount namespace, and those in the
# cgroups of our containers' ids.

# A harness's pipes leaked to us past fd 2 would be inherited by the holder and conmon and keep the
# harness waiting for end of file: close every inherited descriptor above 2 (bash reads this script from 255).
for fd in $(ls /proc/$$/fd); do if [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ]; then eval "exec $fd>&-" 2>/dev/null; fi; done

set -uo pipefail
export LC_ALL=C
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
TOOL=podman.sh
usage() { echo "usage: $TOOL up|down STATE PREFIX" >&2; exit 2; }
[ $# -eq 3 ] || usage
CMD=$1 STATE=${2%/} PREFIX=$3
case $CMD in up|down) ;; *) usage ;; esac
case $STATE in
    /*/*|/[!/]*) ;;
    *) echo "$TOOL: STATE must be an absolute path below / (got '$STATE')" >&2; exit 2 ;;
esac
# Paths the holder's mount namespace covers: podman must see STATE's files (containers.conf, the image tar).
case $STATE/ in
    /run/*|/var/run/*|/var/lib/containers/*|/var/lib/cni/*|/dev/shm/*|/var/tmp/*|/var/cache/*|/etc/cni/*)
        echo "$TOOL: STATE $STATE is under a directory the holder's mount namespace covers" >&2; exit 2 ;;
esac
[[ $PREFIX =~ ^[a-z0-9][a-z0-9_.-]{0,40}$ ]] || { echo "$TOOL: PREFIX must be [a-z0-9][a-z0-9_.-]* (podman names images with it)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "$TOOL: must run as root" >&2; exit 1; }

NS=$PREFIX-podman
IMAGE=$PREFIX-busybox
P=$STATE/podman
REC=$STATE/record
MARK=$STATE/.nsinspect-test-tool
MADE=.made-by-nsinspect-test-tool   # in a mount point up had to create on the host
BRIDGE=cni-podman0
STORAGE=vfs

now() { date +%s%N; }
ms_since() { echo $((($(now) - $1) / 1000000)); }
say() { echo "$TOOL: $*"; }
record() { printf '%s\n' "$*" >> "$REC"; }
records() { [ -f "$REC" ] && awk -v k="$1" '$1 == k { $1 = ""; sub(/^ /, ""); print }' "$REC"; return 0; }

# /proc/PID/stat after "(comm) ": [0] is the state, [19] the start time.
pstat() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; printf '%s\n' "${s##*) }"; }
# A token PID:STARTTIME names one process for good: a PID the kernel reuses is never signalled.
token() { local f; f=($(pstat "$1")) || return 1; [ "${f[0]}" != Z ] || return 1; echo "$1:${f[19]}"; }
tok_alive() { local f; f=($(pstat "${1%%:*}")) || return 1; [ "${f[0]}" != Z ] && [ "${f[19]}" = "${1#*:}" ]; }
signal_all() { local sig=$1 t; shift; for t in "$@"; do tok_alive "$t" && kill -"$sig" "${t%%:*}" 2>/dev/null; done; return 0; }
wait_gone() {   # TENTHS TOKEN...: until none runs (zombies count as gone: PID 1 here reaps late)
    local tenths=$1 i t left; shift
    for ((i = 0; i <= tenths; i++)); do
        left=0; for t in "$@"; do tok_alive "$t" && { left=1; break; }; done
        [ $left = 0 ] && return 0
        sleep 0.1
    done
    return 1
}
record_pid() { local t; t=$(token "$1") && record pid "$t" "$2"; }   # PID ROLE
# Every process in our mount namespace MNT (e.g. "mnt:[4026532511]"), as tokens. The kernel reuses
# namespace inode numbers once a namespace is gone, so the namespace must also still have our tmpfs on /run
# (source $PREFIX-podman-run) to count as ours.
mntns_members() {
    local p t m inode=${1//[!0-9]/} checked=0
    [ -n "$inode" ] || return 0
    for p in $(find /proc/[0-9]*/ns/mnt -maxdepth 0 -lname "mnt:?$inode?" 2>/dev/null | cut -d/ -f3); do
        if [ $checked = 0 ]; then
            m=$(cat "/proc/$p/mountinfo" 2>/dev/null) && [ -n "$m" ] || continue   # ended meanwhile
            grep -q " - tmpfs $PREFIX-podman-run " <<< "$m" || return 0
            checked=1
        fi
        t=$(token "$p") && echo "$t"
    done
}
# cgroup mount points (mountinfo: the file system type follows the "-" after the optional fields)
cgroup_mounts() {
    awk '{ for (i = 7; i < NF && $i != "-"; i++) ; if ($(i + 1) == "cgroup" || $(i + 1) == "cgroup2") print $5 }' \
        /proc/self/mountinfo | sort -u
}
# A directory some mount namespace still mounts something on (do not rmdir it: that would unmount it there).
# (cat fails on processes that end meanwhile: that must not count, hence the `true` under pipefail)
mounted_anywhere() { { cat /proc/[0-9]*/mountinfo 2>/dev/null; true; } | awk -v d="$1" '$5 == d { f = 1 } END { exit !f }'; }

# STATE directories of the other running setups of this tool (their holders run as STATE/podman-holder).
other_states() {
    local p s
    for p in $(pgrep -x sleep); do
        s=$(tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null | head -1)
        case $s in */podman-holder) s=${s%/podman-holder} ;; *) continue ;; esac
        [ "$s" != "$STATE" ] && [ -e "$s/.nsinspect-test-tool" ] && [ -f "$s/record" ] && echo "$s"
    done
}
# A parent cgroup up made that another running setup of this tool still uses: hand it over (into that
# STATE's record), so that the last one to go removes it.
hand_over() {
    local s
    for s in $(other_states); do
        grep -qxF "cgroup $1" "$s/record" || echo "cgroup $1" >> "$s/record"
        say "$1 is still used by the setup in $s; handed over to it"
        return 0
    done
    return 1
}

# ---------------------------------------------------------------------------------------------- down
do_down() {
    [ -d "$STATE" ] || return 0
    local t0 tokens=() ids=() id t m d p mnt htok
    t0=$(now)
    htok=$(records pid | awk '$2 == "holder" { print $1; exit }')
    mnt=$(records mntns | tail -1)
    # 1. While the holder lives: remove every container (-t 0: busybox sleep as PID 1 ignores SIGTERM,
    #    podman would wait 10 s before SIGKILL), which also runs CNI DEL.
    if [ -n "$htok" ] && tok_alive "$htok" && [ -x "$P" ]; then
        ids+=($(timeout 20 "$P" ps -aq --no-trunc 2>/dev/null < /dev/null))
        timeout 60 "$P" rm -a -f -t 0 < /dev/null > /dev/null 2>&1
    fi
    ids+=($(records container))
    # Container ids from the store, seen through any process still in the holder's mount namespace.
    if [ -n "$mnt" ]; then
        for t in $(mntns_members "$mnt"); do
            ids+=($(cat "/proc/${t%%:*}/root/var/lib/containers/storage/$STORAGE-containers/containers.json" 2>/dev/null |
                grep -oE '"id":"[0-9a-f]{64}"' | cut -d'"' -f4))
            break
        done
    fi
    ids=($(printf '%s\n' "${ids[@]+"${ids[@]}"}" | grep -E '^[0-9a-f]{64}$' | sort -u))
    # 2. Every process of ours: recorded ones (holder, conmons, containers), the holder's mount namespace,
    #    our containers' cgroups. Nothing of theirs needs a graceful end.
    tokens=($(records pid | awk '{ print $1 }'))
    [ -n "$mnt" ] && tokens+=($(mntns_members "$mnt"))
    for id in "${ids[@]+"${ids[@]}"}"; do
        for m in $(cgroup_mounts); do
            [ -f "$m/libpod_parent/libpod-$id/cgroup.procs" ] || continue
            for p in $(cat "$m/libpod_parent/libpod-$id/cgroup.procs" 2>/dev/null); do t=$(token "$p") && tokens+=("$t"); done
        done
    done
    if [ ${#tokens[@]} -gt 0 ]; then
        signal_all KILL "${tokens[@]}"
        wait_gone 50 "${tokens[@]}" ||
            say "still running after SIGKILL: $(for t in "${tokens[@]}"; do tok_alive "$t" && echo "${t%%:*}"; done | tr '\n' ' ')"
    fi
    # 3. cgroups: our containers' (podman leaves them after a crash), conmon's and libpod_parent if up saw
    #    them missing.
    for id in "${ids[@]+"${ids[@]}"}"; do
        for m in $(cgroup_mounts); do
            [ -d "$m/libpod_parent/libpod-$id" ] &&
                { rmdir "$m/libpod_parent/libpod-$id" 2>/dev/null || say "cannot rmdir $m/libpod_parent/libpod-$id"; }
        done
    done
    for d in $(records cgroup | tac); do
        [ -d "$d" ] || continue
        [ -d "$d/conmon" ] && rmdir "$d/conmon" 2>/dev/null
        rmdir "$d" 2>/dev/null || hand_over "$d" || say "$d is not empty (another podman?); kept"
    done
    # 4. names `nsinspect adopt --auto` may have given our containers (they would keep the namespaces alive)
    for d in web db none; do
        d=/var/run/netns/podman-$PREFIX-$d
        if [ -e "$d" ]; then umount "$d" 2>/dev/null; rm -f "$d"; fi
    done
    # 5. the holder's network namespace: cni-podman0, the veths and the CNI rules go with it.
    for d in $(records netns); do
        [ -e "/var/run/netns/$d" ] && { ip netns del "$d" || say "ip netns del $d failed"; }
    done
    if [ -n "$(records runnetns)" ] && [ -z "$(ls -A /var/run/netns 2>/dev/null)" ]; then
        umount /var/run/netns 2>/dev/null; rmdir /var/run/netns 2>/dev/null
    fi
    # 6. mount points up made on the host (empty but for our marker: the tmpfs on them was in the holder's
    #    mount namespace). The marker lets the last of several overlapping runs remove a directory the
    #    first one made, once no mount namespace mounts anything on it.
    for d in /var/lib/containers /var/lib/cni /etc/cni/net.d /var/cache /var/tmp /dev/shm; do
        [ -e "$d/$MADE" ] || continue
        if mounted_anywhere "$d"; then say "$d is still a mount point in some mount namespace; kept"
        else rm -f "$d/$MADE"; rmdir "$d" 2>/dev/null || say "$d is not empty; kept"; fi
    done
    rm -rf --one-file-system "$STATE"
    say "down in $(ms_since "$t0") ms"
}

# ------------------------------------------------------------------------------------------------ up
fail() {
    trap - INT TERM HUP
    echo "$TOOL up: $*" >&2
    echo "$TOOL up: undoing" >&2
    do_down >&2
    exit 1
}

healthy() {   # a complete, running setup from an earlier up
    [ -s "$STATE/up.env" ] || return 1
    local t
    for t in $(records pid | awk '{ print $1 }'); do tok_alive "$t" || return 1; done
}

do_up() {
    local t0 t1 tool hp m d out i line pid ip id name key nofile plugin conmon
    t0=$(now)
    for tool in podman conmon runc nsenter unshare ip iptables setsid timeout chroot tar find pgrep; do
        command -v "$tool" >/dev/null || { echo "$TOOL: $tool not found (apt-get install podman runc util-linux iproute2 iptables)" >&2; exit 1; }
    done
    for plugin in bridge host-local loopback portmap firewall tuning; do
        [ -x "/usr/lib/cni/$plugin" ] || { echo "$TOOL: /usr/lib/cni/$plugin not found (apt-get install containernetworking-plugins)" >&2; exit 1; }
    done
    [ -x /bin/busybox ] || { echo "$TOOL: /bin/busybox not found (apt-get install busybox-static)" >&2; exit 1; }

    if [ -d "$STATE" ]; then
        if healthy; then say "already up"; cat "$STATE/up.env"; exit 0; fi
        if [ -e "$MARK" ]; then say "STATE holds a broken earlier setup; removing it first"; do_down
        elif [ -n "$(ls -A "$STATE")" ]; then echo "$TOOL: $STATE exists, is not empty and is not ours" >&2; exit 1; fi
    fi
    mkdir -p "$STATE" || { echo "$TOOL: cannot create $STATE" >&2; exit 1; }
    : > "$MARK"
    : > "$REC"
    trap 'fail "interrupted by a signal"' INT TERM HUP

    # 1. busybox image: a root with the static busybox and its applets, as a tar to import
    t1=$(now)
    mkdir -p "$STATE/rootfs"/{bin,etc,proc,sys,dev,tmp,root}
    cp /bin/busybox "$STATE/rootfs/bin/busybox" || fail "cp /bin/busybox $STATE/rootfs/bin/ failed"
    out=$(chroot "$STATE/rootfs" /bin/busybox --install -s /bin 2>&1) ||
        fail "chroot $STATE/rootfs /bin/busybox --install -s /bin: $out (is /bin/busybox the static one? apt-get install busybox-static)"
    echo 'root:x:0:0:root:/root:/bin/sh' > "$STATE/rootfs/etc/passwd"
    echo 'root:x:0:' > "$STATE/rootfs/etc/group"
    out=$(tar -C "$STATE/rootfs" -cf "$STATE/busybox.tar" . 2>&1) || fail "tar -C $STATE/rootfs -cf $STATE/busybox.tar .: $out"
    say "busybox image tar in $(ms_since "$t1") ms"

    # 2. network namespace, held by its name (down deletes it)
    [ -e "/var/run/netns/$NS" ] && fail "/var/run/netns/$NS already exists and is not from this STATE"
    grep -q ' /run/netns ' /proc/self/mountinfo || record runnetns
    record netns "$NS"
    out=$(ip netns add "$NS" 2>&1) || fail "ip netns add $NS: $out"
    out=$(ip -n "$NS" link set lo up 2>&1) || fail "ip -n $NS link set lo up: $out"

    # 3. mount points for the private mounts; cgroup parent of the cgroupfs manager (/libpod_parent/…)
    for d in /var/lib/containers /var/lib/cni /etc/cni/net.d /var/cache /var/tmp /dev/shm; do
        if [ ! -d "$d" ]; then mkdir -p "$d" && : > "$d/$MADE" || fail "mkdir $d failed"; fi
    done
    for m in $(cgroup_mounts); do [ -d "$m/libpod_parent" ] || record cgroup "$m/libpod_parent"; done
    mkdir -p "$STATE/cni-net.d"
    cp /etc/cni/net.d/*.conflist "$STATE/cni-net.d/" 2>/dev/null
    # Rootful podman asks for RLIMIT_NOFILE 1048576 and RLIMIT_NPROC 32768 or more; without
    # CAP_SYS_RESOURCE the runtime's setrlimit fails with EPERM. Stay within our hard limits.
    nofile=$(ulimit -Hn)
    [ "$nofile" = unlimited ] && nofile=1048576
    cat > "$STATE/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
[network]
network_backend = "cni"
cni_plugin_dirs = ["/usr/lib/cni"]
EOF

    # 4. the holder: netns PREFIX-podman, a new private mount namespace, `sleep infinity`
    cat > "$STATE/inner.sh" <<EOF
#!/bin/bash
# Runs in netns $NS, in a new private mount namespace (unshare --mount --propagation private); holds both.
set -eu
# Drop our copies of the host's nsfs mounts (/run/netns/*): they would keep other people's namespaces
# alive after their 'ip netns del', and could not be unmounted once /run is covered.
grep ' - nsfs ' /proc/self/mountinfo | cut -d' ' -f5 | while read -r m; do umount -l "\$m" 2>/dev/null || true; done
mount -t tmpfs -o mode=755 $PREFIX-podman-run /run
mount -t tmpfs -o mode=700 $PREFIX-podman-lib /var/lib/containers
mount -t tmpfs -o mode=755 $PREFIX-podman-cni /var/lib/cni
mount -t tmpfs -o mode=1777 $PREFIX-podman-shm /dev/shm
mount -t tmpfs -o mode=1777 $PREFIX-podman-vartmp /var/tmp
mount -t tmpfs -o mode=755 $PREFIX-podman-cache /var/cache
mount --bind $STATE/cni-net.d /etc/cni/net.d
# argv[0] names STATE: a later down hands shared cgroups over to this setup.
exec -a $STATE/podman-holder sleep infinity
EOF
    t1=$(now)
    setsid nsenter --net="/var/run/netns/$NS" -- unshare --mount --propagation private -- /bin/bash "$STATE/inner.sh" \
        < /dev/null > "$STATE/holder.log" 2>&1 &
    hp=$!
    disown "$hp" 2>/dev/null
    record_pid "$hp" holder
    for ((i = 0; i < 100; i++)); do
        token "$hp" >/dev/null || fail "the holder (setsid nsenter … unshare … $STATE/inner.sh) exited; $STATE/holder.log:
$(tail -20 "$STATE/holder.log")"
        [ "$(cat "/proc/$hp/comm" 2>/dev/null)" = sleep ] && break
        sleep 0.05
    done
    [ $i -lt 100 ] || fail "the holder did not reach 'sleep infinity' within 5 s; $STATE/holder.log:
$(tail -20 "$STATE/holder.log")"
    record mntns "$(readlink "/proc/$hp/ns/mnt")"
    cat > "$P" <<EOF
#!/bin/sh
# podman inside the $NS holder's network and mount namespaces (holder pid $hp)
CONTAINERS_CONF=$STATE/containers.conf exec nsenter -t $hp -m -n -- podman \\
    --cgroup-manager cgroupfs --storage-driver $STORAGE --runtime runc \\
    --root /var/lib/containers/storage --runroot /run/containers/storage "\$@"
EOF
    chmod 755 "$P"
    say "holder up in $(ms_since "$t1") ms (pid $hp)"

    # 5. image and containers. podman's output goes to files: conmon, which `run -d` leaves behind, must
    #    not inherit a pipe.
    t1=$(now)
    timeout 60 "$P" import -q "$STATE/busybox.tar" "$IMAGE" < /dev/null > "$STATE/podman.out" 2>&1 ||
        fail "$P import -q $STATE/busybox.tar $IMAGE: $(tail -5 "$STATE/podman.out")"
    say "import (first podman call) in $(ms_since "$t1") ms"
    : > "$STATE/up.env.new"
    for name in web db none; do
        t1=$(now)
        local extra=()
        [ $name = none ] && extra=(--network none)
        timeout 120 "$P" run -d --name "$PREFIX-$name" "${extra[@]+"${extra[@]}"}" "localhost/$IMAGE" sleep 86400 \
            < /dev/null > "$STATE/podman.out" 2>&1 ||
            fail "$P run -d --name $PREFIX-$name ${extra[*]+"${extra[*]}"} localhost/$IMAGE sleep 86400: $(tail -5 "$STATE/podman.out")"
        id=$(tail -1 "$STATE/podman.out")
        [[ $id =~ ^[0-9a-f]{64}$ ]] && record container "$id"
        timeout 30 "$P" inspect -f '{{.State.Pid}} {{.Id}} {{.NetworkSettings.IPAddress}}' "$PREFIX-$name" \
            < /dev/null > "$STATE/podman.out" 2>&1 || fail "$P inspect $PREFIX-$name: $(tail -5 "$STATE/podman.out")"
        read -r pid id ip < "$STATE/podman.out"
        token "$pid" >/dev/null || fail "container $PREFIX-$name (pid $pid) is not running"
        record_pid "$pid" "$name"
        conmon=$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status")
        [ "$(cat "/proc/$conmon/comm" 2>/dev/null)" = conmon ] && record_pid "$conmon" "$name-conmon"
        if [ $name != none ] && [ -z "$ip" ]; then fail "container $PREFIX-$name has no IP address"; fi
        key=$(echo $name | tr a-z A-Z)
        printf '%s_PID=%s\n%s_IP=%s\n%s_ID=%s\n' "$key" "$pid" "$key" "$ip" "$key" "$id" >> "$STATE/up.env.new"
        say "run $PREFIX-$name in $(ms_since "$t1") ms"
    done
    rm -f "$STATE/podman.out"
    out=$(ip -n "$NS" link show "$BRIDGE" 2>&1) || fail "no $BRIDGE in $NS: $out"
    {
        echo "PODMAN=$P"
        echo "HOLDER_PID=$hp"
        echo "NETNS=$NS"
        echo "BRIDGE=$BRIDGE"
        echo "IMAGE=localhost/$IMAGE"
        cat "$STATE/up.env.new"
    } > "$STATE/up.env"
    rm -f "$STATE/up.env.new"
    trap - INT TERM HUP
    say "up in $(ms_since "$t0") ms"
    cat "$STATE/up.env"
}

case $CMD in
    up) do_up ;;
    down) do_down; exit 0 ;;
esac
