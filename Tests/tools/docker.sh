#!/bin/bash
# dockerd (docker.io) for nsinspect's end-to-end tests, docker-in-docker style: in a network namespace of
# its own (PREFIX-docker, named in /var/run/netns so `ip netns exec PREFIX-docker …` works) and a private
# mount namespace, with three containers of a busybox image built from /bin/busybox (busybox-static):
# PREFIX-web and PREFIX-db on the default bridge docker0, PREFIX-none with --network none.
#
#   docker.sh up STATE PREFIX     start everything; the last lines on stdout are KEY=VALUE:
#                                 SOCKET DOCKERD_PID NETNS BRIDGE IMAGE WEB_PID WEB_IP WEB_ID DB_PID DB_IP DB_ID
#                                 NONE_PID NONE_IP(empty) NONE_ID.  `docker -H unix://$SOCKET …` talks to it.
#   docker.sh down STATE PREFIX   undo it (idempotent: after a failed up, after kill -9, twice in a row)
#
# Everything of ours is in STATE (socket, pidfile, logs, image tar, rootfs, the list of what up made);
# down removes it. Inside dockerd's mount namespace tmpfs covers /run (docker's exec root with the
# containers' netns bind mounts, containerd's state), /var/lib/docker (the data root: config.v2.json is
# readable from the host only as /proc/DOCKERD/root/var/lib/docker/…), /etc/docker (key.json) and /opt
# (the managed containerd creates /opt/containerd). docker0, the veths, the nft/iptables rules and
# net.ipv4.ip_forward=1 all stay in PREFIX-docker; nothing changes in the host's network namespace.
# On the host up makes only: /var/run/netns/PREFIX-docker, the mount point /var/lib/docker if missing, and
# the cgroups /sys/fs/cgroup/*/docker/ID of the cgroupfs driver (/docker itself if missing). down removes
# exactly what up recorded, and ends processes only by the PIDs (with their start times) it recorded, the
# processes of dockerd's recorded mount namespace, and those in the cgroups of our containers' ids.

# A harness's pipes leaked to us past fd 2 would be inherited by dockerd and keep the harness waiting for
# end of file: close every inherited descriptor above 2 (bash reads this script from 255).
for fd in $(ls /proc/$$/fd); do if [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ]; then eval "exec $fd>&-" 2>/dev/null; fi; done

set -uo pipefail
export LC_ALL=C
PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
TOOL=docker.sh
usage() { echo "usage: $TOOL up|down STATE PREFIX" >&2; exit 2; }
[ $# -eq 3 ] || usage
CMD=$1 STATE=${2%/} PREFIX=$3
case $CMD in up|down) ;; *) usage ;; esac
case $STATE in
    /*/*|/[!/]*) ;;
    *) echo "$TOOL: STATE must be an absolute path below / (got '$STATE')" >&2; exit 2 ;;
esac
# Paths dockerd's private mount namespace covers: STATE there would not be the host's STATE.
case $STATE/ in
    /run/*|/var/run/*|/var/lib/docker/*|/etc/docker/*|/opt/*)
        echo "$TOOL: STATE $STATE is under a directory dockerd's mount namespace covers with tmpfs" >&2; exit 2 ;;
esac
[[ $PREFIX =~ ^[a-z0-9][a-z0-9_.-]{0,40}$ ]] || { echo "$TOOL: PREFIX must be [a-z0-9][a-z0-9_.-]* (docker names images with it)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "$TOOL: must run as root" >&2; exit 1; }

NS=$PREFIX-docker
IMAGE=$PREFIX-busybox
SOCK=$STATE/docker.sock
REC=$STATE/record
MARK=$STATE/.nsinspect-test-tool
MADE=.made-by-nsinspect-test-tool   # in a mount point up had to create on the host
export DOCKER_CONFIG=$STATE/client    # the docker CLI keeps nothing in ~/.docker
D=(docker -H "unix://$SOCK")

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
# (source $PREFIX-docker-run) to count as ours.
mntns_members() {
    local p t m inode=${1//[!0-9]/} checked=0
    [ -n "$inode" ] || return 0
    for p in $(find /proc/[0-9]*/ns/mnt -maxdepth 0 -lname "mnt:?$inode?" 2>/dev/null | cut -d/ -f3); do
        if [ $checked = 0 ]; then
            m=$(cat "/proc/$p/mountinfo" 2>/dev/null) && [ -n "$m" ] || continue   # ended meanwhile
            grep -q " - tmpfs $PREFIX-docker-run " <<< "$m" || return 0
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

# STATE directories of the other running setups of this tool (dockerd … --pidfile STATE/dockerd.pid).
other_states() {
    local p s
    for p in $(pgrep -x dockerd); do
        s=$(tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null | sed -n '/^--pidfile$/{n;p;q}')
        s=${s%/dockerd.pid}
        [ -n "$s" ] && [ "$s" != "$STATE" ] && [ -e "$s/.nsinspect-test-tool" ] && [ -f "$s/record" ] && echo "$s"
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
    local t0 tokens=() ids=() id t m d mnt procs dtok
    t0=$(now)
    dtok=$(records pid | awk '$2 == "dockerd" { print $1; exit }')
    mnt=$(records mntns | tail -1)
    # 1. Through the API while dockerd answers: remove every container (busybox sleep as PID 1 ignores
    #    SIGTERM, so `rm -f`, which kills at once, rather than `stop`).
    if [ -n "$dtok" ] && tok_alive "$dtok" && [ -S "$SOCK" ] && timeout 5 "${D[@]}" version >/dev/null 2>&1; then
        ids+=($(timeout 10 "${D[@]}" ps -aq --no-trunc 2>/dev/null))
        [ ${#ids[@]} -gt 0 ] && timeout 60 "${D[@]}" rm -f "${ids[@]}" >/dev/null 2>&1
    fi
    ids+=($(records container))
    # Container ids from the data root, seen through any process still in dockerd's mount namespace.
    if [ -n "$mnt" ]; then
        for t in $(mntns_members "$mnt"); do
            ids+=($(ls "/proc/${t%%:*}/root/var/lib/docker/containers" 2>/dev/null)); break
        done
    fi
    ids=($(printf '%s\n' "${ids[@]+"${ids[@]}"}" | grep -E '^[0-9a-f]{64}$' | sort -u))
    # 2. dockerd first (it stops its containerd), then whatever is left of ours.
    if [ -n "$dtok" ] && tok_alive "$dtok"; then
        signal_all TERM "$dtok"
        wait_gone 100 "$dtok" || { say "dockerd ${dtok%%:*} ignored SIGTERM for 10 s; SIGKILL"; signal_all KILL "$dtok"; }
    fi
    tokens=($(records pid | awk '{ print $1 }'))
    [ -n "$mnt" ] && tokens+=($(mntns_members "$mnt"))
    for id in "${ids[@]+"${ids[@]}"}"; do
        for m in $(cgroup_mounts); do
            [ -f "$m/docker/$id/cgroup.procs" ] || continue
            for p in $(cat "$m/docker/$id/cgroup.procs" 2>/dev/null); do t=$(token "$p") && tokens+=("$t"); done
        done
    done
    # After a clean dockerd stop nothing is left; after a crash the shims and the containers (busybox sleep
    # as PID 1 ignores SIGTERM) are, and nothing of theirs needs a graceful end.
    if [ ${#tokens[@]} -gt 0 ]; then
        signal_all KILL "${tokens[@]}"
        wait_gone 50 "${tokens[@]}" ||
            say "still running after SIGKILL: $(for t in "${tokens[@]}"; do tok_alive "$t" && echo "${t%%:*}"; done | tr '\n' ' ')"
    fi
    # 3. cgroups: our containers' (runc removes them on rm, not after a crash), then /docker if up saw it made.
    for id in "${ids[@]+"${ids[@]}"}"; do
        for m in $(cgroup_mounts); do
            [ -d "$m/docker/$id" ] && { rmdir "$m/docker/$id" 2>/dev/null || say "cannot rmdir $m/docker/$id"; }
        done
    done
    for d in $(records cgroup | tac); do
        [ -d "$d" ] || continue
        rmdir "$d" 2>/dev/null || hand_over "$d" || say "$d is not empty (another docker?); kept"
    done
    # 4. names `nsinspect adopt --auto` may have given our containers (they would keep the namespaces alive)
    for d in web db none; do
        d=/var/run/netns/docker-$PREFIX-$d
        if [ -e "$d" ]; then umount "$d" 2>/dev/null; rm -f "$d"; fi
    done
    # 5. dockerd's network namespace: docker0, the veths and the nft rules go with it.
    for d in $(records netns); do
        [ -e "/var/run/netns/$d" ] && { ip netns del "$d" || say "ip netns del $d failed"; }
    done
    if [ -n "$(records runnetns)" ] && [ -z "$(ls -A /var/run/netns 2>/dev/null)" ]; then
        umount /var/run/netns 2>/dev/null; rmdir /var/run/netns 2>/dev/null
    fi
    # 6. mount points up made on the host (empty but for our marker: the tmpfs on them was in dockerd's
    #    mount namespace). The marker lets the last of several overlapping runs remove a directory the
    #    first one made, once no mount namespace mounts anything on it.
    for d in /var/lib/docker /etc/docker; do
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
    timeout 5 "${D[@]}" version >/dev/null 2>&1
}

do_up() {
    local t0 t1 tool hp dpid cpid m d out i line pid ip id name key
    t0=$(now)
    for tool in dockerd docker containerd containerd-shim-runc-v2 runc nsenter unshare ip iptables setsid timeout chroot tar find pgrep; do
        command -v "$tool" >/dev/null || { echo "$TOOL: $tool not found (apt-get install docker.io util-linux iproute2 iptables)" >&2; exit 1; }
    done
    [ -x /bin/busybox ] || { echo "$TOOL: /bin/busybox not found (apt-get install busybox-static)" >&2; exit 1; }
    [ ${#SOCK} -lt 100 ] || { echo "$TOOL: socket path $SOCK is ${#SOCK} bytes; a unix socket path must stay below 100" >&2; exit 2; }

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

    # 2. network namespace, held by its name (it outlives a dockerd crash; down deletes it)
    [ -e "/var/run/netns/$NS" ] && fail "/var/run/netns/$NS already exists and is not from this STATE"
    grep -q ' /run/netns ' /proc/self/mountinfo || record runnetns
    record netns "$NS"
    out=$(ip netns add "$NS" 2>&1) || fail "ip netns add $NS: $out"
    out=$(ip -n "$NS" link set lo up 2>&1) || fail "ip -n $NS link set lo up: $out"

    # 3. mount points the private mounts need; cgroup parents runc will make (cgroupfs driver: /docker/ID)
    for d in /var/lib/docker /etc/docker; do
        if [ ! -d "$d" ]; then mkdir -p "$d" && : > "$d/$MADE" || fail "mkdir $d failed"; fi
    done
    for m in $(cgroup_mounts); do [ -d "$m/docker" ] || record cgroup "$m/docker"; done

    # 4. dockerd in PREFIX-docker and a new private mount namespace
    cat > "$STATE/inner.sh" <<EOF
#!/bin/sh
# Runs in netns $NS, in a new private mount namespace (unshare --mount --propagation private).
set -eu
# Drop our copies of the host's nsfs mounts (/run/netns/*): they would keep other people's namespaces
# alive after their 'ip netns del', and could not be unmounted once /run is covered.
grep ' - nsfs ' /proc/self/mountinfo | cut -d' ' -f5 | while read -r m; do umount -l "\$m" 2>/dev/null || true; done
mount -t tmpfs -o mode=755 $PREFIX-docker-run /run
mount -t tmpfs -o mode=710 $PREFIX-docker-lib /var/lib/docker
mount -t tmpfs -o mode=755 $PREFIX-docker-etc /etc/docker
mount -t tmpfs -o mode=755 $PREFIX-docker-opt /opt
exec dockerd --host unix://$SOCK --pidfile $STATE/dockerd.pid \\
    --storage-driver vfs --exec-opt native.cgroupdriver=cgroupfs
EOF
    t1=$(now)
    setsid nsenter --net="/var/run/netns/$NS" -- unshare --mount --propagation private -- /bin/sh "$STATE/inner.sh" \
        < /dev/null > "$STATE/dockerd.log" 2>&1 &
    hp=$!
    disown "$hp" 2>/dev/null
    record_pid "$hp" launcher
    for ((i = 0; i < 300; i++)); do
        token "$hp" >/dev/null || fail "dockerd exited while starting; $STATE/dockerd.log ends:
$(tail -20 "$STATE/dockerd.log")"
        [ -S "$SOCK" ] && timeout 5 "${D[@]}" version >/dev/null 2>&1 && break
        sleep 0.1
    done
    [ $i -lt 300 ] || fail "dockerd did not answer on $SOCK within 30 s; $STATE/dockerd.log ends:
$(tail -20 "$STATE/dockerd.log")"
    dpid=$(cat "$STATE/dockerd.pid" 2>/dev/null)
    [ "$(cat "/proc/$dpid/comm" 2>/dev/null)" = dockerd ] || fail "pidfile $STATE/dockerd.pid names '$dpid', not a dockerd"
    record_pid "$dpid" dockerd
    record mntns "$(readlink "/proc/$dpid/ns/mnt")"
    for cpid in $(pgrep -P "$dpid" -x containerd); do record_pid "$cpid" containerd; done
    say "dockerd up in $(ms_since "$t1") ms (pid $dpid)"

    # 5. image and containers
    t1=$(now)
    out=$(timeout 60 "${D[@]}" import - "$IMAGE" < "$STATE/busybox.tar" 2>&1) ||
        fail "docker -H unix://$SOCK import - $IMAGE < $STATE/busybox.tar: $out"
    say "import in $(ms_since "$t1") ms"
    : > "$STATE/up.env.new"
    for name in web db none; do
        t1=$(now)
        local extra=()
        [ $name = none ] && extra=(--network none)
        out=$(timeout 120 "${D[@]}" run -d --name "$PREFIX-$name" "${extra[@]+"${extra[@]}"}" "$IMAGE" sleep 86400 2>&1 < /dev/null) ||
            fail "docker -H unix://$SOCK run -d --name $PREFIX-$name ${extra[*]+"${extra[*]}"} $IMAGE sleep 86400: $out
$STATE/dockerd.log ends:
$(tail -10 "$STATE/dockerd.log")"
        id=$(printf '%s\n' "$out" | tail -1)
        [[ $id =~ ^[0-9a-f]{64}$ ]] && record container "$id"
        line=$(timeout 30 "${D[@]}" inspect -f '{{.State.Pid}} {{.Id}} {{.NetworkSettings.IPAddress}}' "$PREFIX-$name" 2>&1) ||
            fail "docker inspect $PREFIX-$name: $line"
        read -r pid id ip <<< "$line"
        token "$pid" >/dev/null || fail "container $PREFIX-$name (pid $pid) is not running"
        record_pid "$pid" "$name"
        record_pid "$(awk '/^PPid:/ { print $2 }' "/proc/$pid/status")" "$name-shim"
        if [ $name != none ] && [ -z "$ip" ]; then fail "container $PREFIX-$name has no IP address"; fi
        key=$(echo $name | tr a-z A-Z)
        printf '%s_PID=%s\n%s_IP=%s\n%s_ID=%s\n' "$key" "$pid" "$key" "$ip" "$key" "$id" >> "$STATE/up.env.new"
        say "run $PREFIX-$name in $(ms_since "$t1") ms"
    done
    out=$(ip -n "$NS" link show docker0 2>&1) || fail "no docker0 in $NS: $out"
    {
        echo "SOCKET=$SOCK"
        echo "DOCKERD_PID=$dpid"
        echo "NETNS=$NS"
        echo "BRIDGE=docker0"
        echo "IMAGE=$IMAGE"
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
