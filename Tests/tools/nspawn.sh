#!/bin/bash
# A systemd-nspawn machine for nsinspect's end-to-end tests, on a host without systemd-machined (PID 1 need
# not be systemd): `systemd-nspawn --register=no --keep-unit -M NAME -D STATE/rootfs --network-veth` on a
# busybox root built from /bin/busybox (busybox-static), running `sleep` as the container's PID 1.
#
#   nspawn.sh up STATE NAME [--cgroup none|scope|service]   the last lines on stdout are KEY=VALUE:
#             NSPAWN_PID LEADER_PID NETNS (inode) VETH (host side; host0 inside) CGROUP (the leader's
#             name=systemd or 0:: path) MACHINE
#   nspawn.sh down STATE NAME [...]                         undo it (idempotent; the mode comes from STATE)
#
#   --cgroup none     (default) nspawn is started in the cgroup /NAME (name=systemd and cgroup2 hierarchies)
#                     and splits it into /NAME/payload (the container) and /NAME/supervisor (itself), as
#                     --keep-unit does with whatever cgroup it is started in.
#   --cgroup scope    as none, then the payload moves to /machine.slice/machine-ESCAPED.scope/payload: where
#                     machined's CreateMachine and nspawn's sub-cgroup put it (`-` escaped as \x2d).
#   --cgroup service  as `machinectl start NAME` would: nspawn starts in
#                     /machine.slice/systemd-nspawn@NAME.service and makes payload/ and supervisor/ there.
#
# Everything of ours is in STATE (rootfs, its lock file, log, the list of what up made); down removes it.
# On the host up makes: the veth ve-NAME (nspawn shortens names over 15 bytes), the cgroup directories
# above (machine.slice only if missing), and /run/systemd/nspawn/{locks,propagate/NAME} (nspawn makes them;
# down removes ours and the directories if up saw them missing). down stops nspawn (SIGTERM, then SIGKILL)
# and the container's PID 1 by their recorded PIDs and start times.

. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh" || exit 1
# Inherited descriptors are closed first: systemd-nspawn would keep a harness's pipes open.
tool_init nspawn.sh "up|down STATE NAME [--cgroup none|scope|service]"
[ $# -ge 3 ] || usage
CMD=$1 STATE=${2%/} NAME=$3
shift 3
MODE=none
while [ $# -gt 0 ]; do
    case $1 in
        --cgroup) [ $# -ge 2 ] || usage; MODE=$2; shift 2 ;;
        --cgroup=*) MODE=${1#*=}; shift ;;
        *) usage ;;
    esac
done
case $CMD in up|down) ;; *) usage ;; esac
case $MODE in none|scope|service) ;; *) usage ;; esac
check_state
[[ $NAME =~ ^[A-Za-z0-9][A-Za-z0-9_.-]{0,50}$ ]] || { echo "$TOOL: NAME must be a machine name ([A-Za-z0-9][A-Za-z0-9_.-]*)" >&2; exit 2; }
need_root

ROOT=$STATE/rootfs
LOG=$STATE/nspawn.log

# (here, not in common.sh: only nspawn.sh records nested directories, payload/ below the launch cgroup)
deepest_first() { sort -u | awk '{ print length($0) " " $0 }' | sort -rn | cut -d' ' -f2-; }

# The hierarchies systemd manages (where nspawn makes payload/ and supervisor/): cgroup2 on a pure v2
# host; name=systemd plus the cgroup2 one in hybrid mode.
systemd_hierarchies() {
    awk '{ for (i = 7; i < NF && $i != "-"; i++) ; t = $(i + 1); o = $(i + 3) }
         t == "cgroup2" || (t == "cgroup" && o ~ /(^|,)name=systemd(,|$)/) { print $5 }' /proc/self/mountinfo | sort -u
}
# The path nspawn takes as "its" cgroup: name=systemd in hybrid/legacy mode, 0:: on pure v2.
own_cgroup() {
    local line
    line=$(grep -m1 ':name=systemd:' "/proc/$1/cgroup" || grep -m1 '^0::' "/proc/$1/cgroup")
    printf '%s' "${line#*:*:}"
}
# systemd unit-name escaping (machined's machine-NAME.scope): keep [A-Za-z0-9:_.], others as \xNN.
unit_escape() {
    local s=$1 out= c i
    for ((i = 0; i < ${#s}; i++)); do
        c=${s:i:1}
        if [[ $c =~ [A-Za-z0-9:_.] ]] && ! { [ $i = 0 ] && [ "$c" = . ]; }; then out+=$c
        else out+=$(printf '\\x%02x' "'$c"); fi
    done
    printf '%s' "$out"
}

# The other running setups of this tool (hand_over of machine.slice, /run/systemd/nspawn…):
# systemd-nspawn … -D STATE/rootfs
SETUP_PROC=systemd-nspawn
state_of() { local s; s=$(tr '\0' '\n' < "/proc/$1/cmdline" 2>/dev/null | sed -n '/^-D$/{n;p;q}'); echo "${s%/rootfs}"; }

# ---------------------------------------------------------------------------------------------- down
do_down() {
    [ -d "$STATE" ] || return 0
    local t0 ntok tokens=() d p v
    t0=$(now)
    ntok=$(recorded_pid nspawn)
    # 1. nspawn ends its container (SIGKILL to the payload) on SIGTERM
    if [ -n "$ntok" ] && tok_alive "$ntok"; then
        signal_all TERM "$ntok"
        wait_gone 50 "$ntok" || { say "systemd-nspawn ${ntok%%:*} ignored SIGTERM for 5 s; SIGKILL"; signal_all KILL "$ntok"; wait_gone 30 "$ntok"; }
    fi
    # 2. after a kill -9 of nspawn its container lives on: the leader, and whatever is in our cgroups
    tokens=($(recorded_tokens) $(cgroup_members $(records cgroup)))
    kill_tokens "${tokens[@]+"${tokens[@]}"}"
    # 3. the host veth goes with the container's namespace
    for v in $(records veth); do
        for ((p = 0; p < 30; p++)); do ip link show "$v" >/dev/null 2>&1 || break; sleep 0.1; done
        if ip link show "$v" >/dev/null 2>&1; then ip link del "$v" 2>/dev/null || say "ip link del $v failed"; fi
    done
    # 4. cgroup directories (nspawn never removes payload/ and supervisor/), deepest first; rmdir only
    remove_or_hand_over cgroup 'cannot rmdir %s (in use?)' $(records cgroup | deepest_first)
    # 5. what nspawn leaves in /run/systemd/nspawn
    for d in $(records file); do rm -f "$d"; done
    remove_or_hand_over dir '%s is not empty (another nspawn running?); kept' $(records dir | deepest_first)
    finish_down "$t0"
}

# ------------------------------------------------------------------------------------------------ up
do_up() {
    local t0 t1 h d hiers=() launch unit scope esc npid leader c i netns peer veth cgroup procs=()
    t0=$(now)
    need_tools "systemd-container iproute2 procps" systemd-nspawn nsenter ip setsid chroot pgrep
    need_busybox
    hiers=($(systemd_hierarchies))
    [ ${#hiers[@]} -gt 0 ] || { echo "$TOOL: no name=systemd or cgroup2 hierarchy is mounted" >&2; exit 1; }
    if [ "$MODE" != none ] && [ -d /run/systemd/system ]; then
        echo "$TOOL: systemd runs as PID 1 here; --cgroup $MODE would fake its machine.slice cgroups" >&2; exit 1
    fi

    begin_up
    record mode "$MODE"

    # 1. root: static busybox and its applets; nspawn insists on /usr ("doesn't look like it has an OS tree")
    t1=$(now)
    busybox_root "$ROOT" "--install -s" bin sbin usr/bin usr/sbin etc proc sys dev tmp run var root
    printf 'ID=busybox\nNAME=BusyBox\nPRETTY_NAME="busybox for nsinspect tests"\n' > "$ROOT/etc/os-release"
    say "rootfs in $(ms_since "$t1") ms"

    # 2. what nspawn will make on the host, recorded first so that down removes it after any failure
    [ -d /run/systemd ] || record dir /run/systemd
    for d in /run/systemd/nspawn /run/systemd/nspawn/locks /run/systemd/nspawn/propagate "/run/systemd/nspawn/propagate/$NAME"; do
        [ -d "$d" ] || record dir "$d"
    done
    record file "/run/systemd/nspawn/locks/inode-$(stat -c '%d:%i' "$ROOT")"
    ip link show "ve-$NAME" >/dev/null 2>&1 && fail "a link ve-$NAME already exists and is not from this STATE"

    # 3. the cgroup nspawn starts in
    esc=$(unit_escape "$NAME")
    case $MODE in
        none|scope) launch=/$NAME ;;
        service) unit="systemd-nspawn@$NAME.service"; launch=/machine.slice/$unit ;;
    esac
    for h in "${hiers[@]}"; do
        [ "$MODE" = service ] && [ ! -d "$h/machine.slice" ] && record cgroup "$h/machine.slice"
        [ -d "$h$launch" ] && fail "cgroup $h$launch already exists and is not from this STATE"
        record cgroup "$h$launch"
        record cgroup "$h$launch/payload"
        record cgroup "$h$launch/supervisor"
        mkdir -p "$h$launch" || fail "mkdir $h$launch failed"
        procs+=("$h$launch/cgroup.procs")
    done

    # 4. start nspawn detached. Without --keep-unit it fails with "Failed to open system bus: No such file
    #    or directory" (it asks systemd for a scope even with --register=no).
    t1=$(now)
    setsid bash -c 'n=$1; shift; for ((i = 0; i < n; i++)); do echo $$ > "$1" || exit 97; shift; done; exec "$@"' \
        launch ${#procs[@]} "${procs[@]}" \
        systemd-nspawn --register=no --keep-unit -M "$NAME" -D "$ROOT" --network-veth -- /bin/sh -c 'sleep 86400' \
        < /dev/null > "$LOG" 2>&1 &
    npid=$!
    disown "$npid" 2>/dev/null
    record_pid "$npid" nspawn
    record veth "ve-$NAME"
    leader=
    for ((i = 0; i < 1500; i++)); do
        token "$npid" >/dev/null || fail "systemd-nspawn exited; $LOG:
$(tail -20 "$LOG")"
        # The container's PID 1 is the child in a new PID namespace (NSpid has two numbers); nspawn's
        # short-lived outer child is not. Ready once it has exec'd the payload and host0 exists.
        leader=
        for c in $(pgrep -P "$npid"); do
            [ "$(awk '/^NSpid:/ { print NF }' "/proc/$c/status" 2>/dev/null)" = 3 ] && { leader=$c; break; }
        done
        if [ -n "$leader" ] && [ "$(cat "/proc/$leader/comm" 2>/dev/null)" != systemd-nspawn ] &&
            nsenter -t "$leader" -n ip link show host0 >/dev/null 2>&1; then break; fi
        sleep 0.01
    done
    [ $i -lt 1500 ] || fail "the container did not start within 15 s; $LOG:
$(tail -20 "$LOG")"
    record_pid "$leader" leader
    say "nspawn started in $(ms_since "$t1") ms (pid $npid, leader $leader)"

    # 5. --cgroup scope: move the payload where machined would have put it
    if [ "$MODE" = scope ]; then
        scope=/machine.slice/machine-$esc.scope
        for h in "${hiers[@]}"; do
            for d in "$h/machine.slice" "$h$scope" "$h$scope/payload"; do
                if [ ! -d "$d" ]; then record cgroup "$d"; mkdir "$d" || fail "mkdir $d failed"; fi
            done
            for c in $(cat "$h$launch/payload/cgroup.procs"); do
                echo "$c" > "$h$scope/payload/cgroup.procs" || fail "cannot move $c into $h$scope/payload"
            done
        done
    fi

    netns=$(stat -L -c %i "/proc/$leader/ns/net")
    peer=$(nsenter -t "$leader" -n ip -o link show host0 | sed -n 's/^[0-9]*: host0@if\([0-9]*\):.*/\1/p')
    veth=$(ip -o link | awk -F': ' -v i="$peer" '$1 == i { sub(/@.*/, "", $2); print $2 }')
    [ -n "$veth" ] || fail "no host end of host0 (peer ifindex '$peer')"
    [ "$veth" = "ve-$NAME" ] || record veth "$veth"
    cgroup=$(own_cgroup "$leader")
    {
        echo "MACHINE=$NAME"
        echo "NSPAWN_PID=$npid"
        echo "LEADER_PID=$leader"
        echo "NETNS=$netns"
        echo "VETH=$veth"
        echo "CGROUP=$cgroup"
    } > "$STATE/up.env"
    finish_up "$t0"
}

run_command
