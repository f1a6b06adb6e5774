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

. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh" || exit 1
# Inherited descriptors are closed first: dockerd would keep a harness's pipes open.
tool_init docker.sh "up|down STATE PREFIX"
prefix_args "$@"
# Paths dockerd's private mount namespace covers: STATE there would not be the host's STATE.
case $STATE/ in
    /run/*|/var/run/*|/var/lib/docker/*|/etc/docker/*|/opt/*)
        echo "$TOOL: STATE $STATE is under a directory dockerd's mount namespace covers with tmpfs" >&2; exit 2 ;;
esac
check_prefix
need_root

NS=$PREFIX-docker
IMAGE=$PREFIX-busybox
SOCK=$STATE/docker.sock
export DOCKER_CONFIG=$STATE/client    # the docker CLI keeps nothing in ~/.docker
D=(docker -H "unix://$SOCK")

# The other running setups of this tool (hand_over): dockerd … --pidfile STATE/dockerd.pid
SETUP_PROC=dockerd
state_of() { local s; s=$(tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null | sed -n '/^--pidfile$/{n;p;q}'); echo "${s%/dockerd.pid}"; }
answers() { timeout 5 "${D[@]}" version >/dev/null 2>&1; }   # dockerd, on SOCK

# ---------------------------------------------------------------------------------------------- down
do_down() {
    [ -d "$STATE" ] || return 0
    local t0 tokens=() ids=() t d mnt dtok
    t0=$(now)
    dtok=$(recorded_pid dockerd)
    mnt=$(records mntns | tail -1)
    # 1. Through the API while dockerd answers: remove every container (busybox sleep as PID 1 ignores
    #    SIGTERM, so `rm -f`, which kills at once, rather than `stop`).
    if [ -n "$dtok" ] && tok_alive "$dtok" && [ -S "$SOCK" ] && answers; then
        ids+=($(timeout 10 "${D[@]}" ps -aq --no-trunc 2>/dev/null))
        [ ${#ids[@]} -gt 0 ] && timeout 60 "${D[@]}" rm -f "${ids[@]}" >/dev/null 2>&1
    fi
    ids+=($(records container))
    # Container ids from the data root, seen through any process still in dockerd's mount namespace.
    if [ -n "$mnt" ]; then
        for t in $(mntns_members "$mnt" "$PREFIX-docker-run"); do
            ids+=($(ls "/proc/${t%%:*}/root/var/lib/docker/containers" 2>/dev/null)); break
        done
    fi
    ids=($(printf '%s\n' "${ids[@]+"${ids[@]}"}" | grep -E '^[0-9a-f]{64}$' | sort -u))
    # 2. dockerd first (it stops its containerd), then whatever is left of ours.
    if [ -n "$dtok" ] && tok_alive "$dtok"; then
        signal_all TERM "$dtok"
        wait_gone 100 "$dtok" || { say "dockerd ${dtok%%:*} ignored SIGTERM for 10 s; SIGKILL"; signal_all KILL "$dtok"; }
    fi
    tokens=($(recorded_tokens))
    [ -n "$mnt" ] && tokens+=($(mntns_members "$mnt" "$PREFIX-docker-run"))
    tokens+=($(cgroup_members $(id_cgroups docker/ "${ids[@]+"${ids[@]}"}")))
    # After a clean dockerd stop nothing is left; after a crash the shims and the containers (busybox sleep
    # as PID 1 ignores SIGTERM) are, and nothing of theirs needs a graceful end.
    kill_tokens "${tokens[@]+"${tokens[@]}"}"
    # 3. cgroups: our containers' (runc removes them on rm, not after a crash), then /docker if up saw it made.
    for d in $(id_cgroups docker/ "${ids[@]+"${ids[@]}"}"); do rmdir "$d" 2>/dev/null || say "cannot rmdir $d"; done
    remove_or_hand_over cgroup '%s is not empty (another docker?); kept' $(records cgroup | tac)
    # 4. names `nsinspect adopt --auto` may have given our containers
    del_adopted_names docker web db none
    # 5. dockerd's network namespace: docker0, the veths and the nft rules go with it.
    del_named_netns
    # 6. mount points up made on the host (the tmpfs on them was in dockerd's mount namespace)
    remove_mount_points /var/lib/docker /etc/docker
    finish_down "$t0"
}

# ------------------------------------------------------------------------------------------------ up
do_up() {
    local t0 t1 hp dpid cpid m out i line pid ip id name
    t0=$(now)
    need_tools "docker.io util-linux iproute2 iptables" \
        dockerd docker containerd containerd-shim-runc-v2 runc nsenter unshare ip iptables setsid timeout chroot tar find pgrep
    need_busybox
    [ ${#SOCK} -lt 100 ] || { echo "$TOOL: socket path $SOCK is ${#SOCK} bytes; a unix socket path must stay below 100" >&2; exit 2; }

    begin_up answers   # an earlier setup counts as complete only while dockerd answers

    # 1. busybox image: a root with the static busybox and its applets, as a tar to import
    busybox_image_tar

    # 2. network namespace, held by its name (it outlives a dockerd crash; down deletes it)
    add_named_netns "$NS"

    # 3. mount points the private mounts need; cgroup parents runc will make (cgroupfs driver: /docker/ID)
    make_mount_points /var/lib/docker /etc/docker
    for m in $(cgroup_mounts); do [ -d "$m/docker" ] || record cgroup "$m/docker"; done

    # 4. dockerd in PREFIX-docker and a new private mount namespace
    { inner_head /bin/sh "$NS" ""; cat <<EOF; } > "$STATE/inner.sh"
mount -t tmpfs -o mode=755 $PREFIX-docker-run /run
mount -t tmpfs -o mode=710 $PREFIX-docker-lib /var/lib/docker
mount -t tmpfs -o mode=755 $PREFIX-docker-etc /etc/docker
mount -t tmpfs -o mode=755 $PREFIX-docker-opt /opt
exec dockerd --host unix://$SOCK --pidfile $STATE/dockerd.pid \\
    --storage-driver vfs --exec-opt native.cgroupdriver=cgroupfs
EOF
    t1=$(now)
    start_inner /bin/sh "$NS" "$STATE/dockerd.log"
    hp=$INNER_PID
    record_pid "$hp" launcher
    for ((i = 0; i < 300; i++)); do
        token "$hp" >/dev/null || fail "dockerd exited while starting; $STATE/dockerd.log ends:
$(tail -20 "$STATE/dockerd.log")"
        [ -S "$SOCK" ] && answers && break
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
        container_env "$name" "$pid" "$id" "$ip" "$t1"
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
    finish_up "$t0"
}

run_command
