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

. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh" || exit 1
# Inherited descriptors are closed first: the holder and conmon would keep a harness's pipes open.
tool_init podman.sh "up|down STATE PREFIX"
prefix_args "$@"
# Paths the holder's mount namespace covers: podman must see STATE's files (containers.conf, the image tar).
case $STATE/ in
    /run/*|/var/run/*|/var/lib/containers/*|/var/lib/cni/*|/dev/shm/*|/var/tmp/*|/var/cache/*|/etc/cni/*)
        echo "$TOOL: STATE $STATE is under a directory the holder's mount namespace covers" >&2; exit 2 ;;
esac
check_prefix
need_root

NS=$PREFIX-podman
IMAGE=$PREFIX-busybox
P=$STATE/podman
BRIDGE=cni-podman0
STORAGE=vfs

# Mount points of the holder's private mounts (made on the host where missing)
MOUNT_POINTS=(/var/lib/containers /var/lib/cni /etc/cni/net.d /var/cache /var/tmp /dev/shm)
# The other running setups of this tool (hand_over): holders run as STATE/podman-holder
SETUP_PROC=sleep
state_of() {
    local s
    s=$(tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null | head -1)
    case $s in */podman-holder) echo "${s%/podman-holder}" ;; esac
}

# ---------------------------------------------------------------------------------------------- down
do_down() {
    [ -d "$STATE" ] || return 0
    local t0 tokens=() ids=() t d mnt htok
    t0=$(now)
    htok=$(recorded_pid holder)
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
        for t in $(mntns_members "$mnt" "$PREFIX-podman-run"); do
            ids+=($(cat "/proc/${t%%:*}/root/var/lib/containers/storage/$STORAGE-containers/containers.json" 2>/dev/null |
                grep -oE '"id":"[0-9a-f]{64}"' | cut -d'"' -f4))
            break
        done
    fi
    ids=($(printf '%s\n' "${ids[@]+"${ids[@]}"}" | grep -E '^[0-9a-f]{64}$' | sort -u))
    # 2. Every process of ours: recorded ones (holder, conmons, containers), the holder's mount namespace,
    #    our containers' cgroups. Nothing of theirs needs a graceful end.
    tokens=($(recorded_tokens))
    [ -n "$mnt" ] && tokens+=($(mntns_members "$mnt" "$PREFIX-podman-run"))
    tokens+=($(cgroup_members $(id_cgroups libpod_parent/libpod- "${ids[@]+"${ids[@]}"}")))
    kill_tokens "${tokens[@]+"${tokens[@]}"}"
    # 3. cgroups: our containers' (podman leaves them after a crash), conmon's and libpod_parent if up saw
    #    them missing.
    for d in $(id_cgroups libpod_parent/libpod- "${ids[@]+"${ids[@]}"}"); do rmdir "$d" 2>/dev/null || say "cannot rmdir $d"; done
    for d in $(records cgroup); do [ -d "$d/conmon" ] && rmdir "$d/conmon" 2>/dev/null; done
    remove_or_hand_over cgroup '%s is not empty (another podman?); kept' $(records cgroup | tac)
    # 4. names `nsinspect adopt --auto` may have given our containers
    del_adopted_names podman web db none
    # 5. the holder's network namespace: cni-podman0, the veths and the CNI rules go with it.
    del_named_netns
    # 6. mount points up made on the host (the tmpfs on them was in the holder's mount namespace)
    remove_mount_points "${MOUNT_POINTS[@]}"
    finish_down "$t0"
}

# ------------------------------------------------------------------------------------------------ up
do_up() {
    local t0 t1 hp m out i pid ip id name nofile conmon
    t0=$(now)
    need_tools "podman runc util-linux iproute2 iptables" podman conmon runc nsenter unshare ip iptables setsid timeout chroot tar find pgrep
    need_cni_plugins /usr/lib/cni bridge host-local loopback portmap firewall tuning
    need_busybox

    begin_up

    # 1. busybox image: a root with the static busybox and its applets, as a tar to import
    busybox_image_tar

    # 2. network namespace, held by its name (down deletes it)
    add_named_netns "$NS"

    # 3. mount points for the private mounts; cgroup parent of the cgroupfs manager (/libpod_parent/…)
    make_mount_points "${MOUNT_POINTS[@]}"
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
    { inner_head /bin/bash "$NS" "; holds both"; cat <<EOF; } > "$STATE/inner.sh"
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
    start_inner /bin/bash "$NS" "$STATE/holder.log"
    hp=$INNER_PID
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
        container_env "$name" "$pid" "$id" "$ip" "$t1"
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
    finish_up "$t0"
}

run_command
