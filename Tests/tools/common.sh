# Sourced (never run) by the end-to-end tests' runtime tools docker.sh, podman.sh, nspawn.sh and oci.sh;
# ovs.sh uses only close_inherited_fds. It defines functions and one constant, and changes nothing else
# until a tool calls them. Load it with
#   . "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh" || exit 1
# (readlink -f: the tool may be run through a symbolic link or a relative path).
#
# What the functions take from the tool that sources them:
#   TOOL, USAGE  its name and its arguments' synopsis (tool_init sets them)
#   STATE   its state directory (down removes it whole); check_state names in it
#           REC    STATE/record: what up made, a line "KIND VALUE..." each, for down to undo
#           MARK   STATE/.nsinspect-test-tool: STATE is one of ours (other_states looks for the same name)
#   PREFIX  (docker.sh, podman.sh) the name prefix of its namespaces and containers
#   do_down (fail calls it), do_up (run_command calls it)
#   SETUP_PROC and state_of PID (hand_over): the name of the long-running processes of the tool's setups,
#           and the STATE one of them serves, read from its command line

# A harness's pipes leaked to a tool past fd 2 would be inherited by what it leaves running (dockerd,
# podman's holder and conmon, systemd-nspawn, the container, the Open vSwitch daemons) and keep the harness
# waiting for end of file: close every inherited descriptor above 2 (bash reads the running script from
# 255; `.` reads this file whole and closes it before running it, so nothing of ours is open here).
close_inherited_fds() {
    local fd
    for fd in $(ls /proc/$$/fd); do if [ "$fd" -gt 2 ] && [ "$fd" -ne 255 ]; then eval "exec $fd>&-" 2>/dev/null; fi; done
}

# The start of every runtime tool: no inherited pipes, strict mode, C locale, sbin on PATH.
tool_init() {   # TOOL-NAME SYNOPSIS
    close_inherited_fds
    set -uo pipefail
    export LC_ALL=C
    PATH=$PATH:/usr/local/sbin:/usr/sbin:/sbin
    TOOL=$1 USAGE=$2
}
usage() { echo "usage: $TOOL $USAGE" >&2; exit 2; }
# down removes STATE whole: it must be an absolute path, and not / itself.
check_state() {
    case $STATE in
        /*/*|/[!/]*) ;;
        *) echo "$TOOL: STATE must be an absolute path below / (got '$STATE')" >&2; exit 2 ;;
    esac
    REC=$STATE/record
    MARK=$STATE/.nsinspect-test-tool
}
# docker.sh, podman.sh: `TOOL up|down STATE PREFIX`; sets CMD, STATE (checked, with REC and MARK), PREFIX.
prefix_args() {
    [ $# -eq 3 ] || usage
    CMD=$1 STATE=${2%/} PREFIX=$3
    case $CMD in up|down) ;; *) usage ;; esac
    check_state
}
# docker.sh, podman.sh: PREFIX names their images too, and an image name is lowercase.
check_prefix() {
    [[ $PREFIX =~ ^[a-z0-9][a-z0-9_.-]{0,40}$ ]] ||
        { echo "$TOOL: PREFIX must be [a-z0-9][a-z0-9_.-]* (${TOOL%.sh} names images with it)" >&2; exit 2; }
}
need_root() { [ "$(id -u)" = 0 ] || { echo "$TOOL: must run as root" >&2; exit 1; }; }
need_tools() {   # PACKAGES TOOL...: every TOOL on PATH, or exit 1 naming what to install
    local pkgs=$1 tool; shift
    for tool in "$@"; do
        command -v "$tool" >/dev/null || { echo "$TOOL: $tool not found (apt-get install $pkgs)" >&2; exit 1; }
    done
}
need_cni_plugins() {   # DIR PLUGIN...
    local dir=$1 plugin; shift
    for plugin in "$@"; do
        [ -x "$dir/$plugin" ] || { echo "$TOOL: $dir/$plugin not found (apt-get install containernetworking-plugins)" >&2; exit 1; }
    done
}
need_busybox() { [ -x /bin/busybox ] || { echo "$TOOL: /bin/busybox not found (apt-get install busybox-static)" >&2; exit 1; }; }
# The last line of a runtime tool. down always exits 0: it says what it could not undo.
run_command() {
    case $CMD in
        up) do_up ;;
        down) do_down; exit 0 ;;
    esac
}

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
# down's last resort for what is left of ours: nothing of it needs a graceful end.
kill_tokens() {   # TOKEN...: SIGKILL, and say which still run 5 s later
    [ $# -gt 0 ] || return 0
    signal_all KILL "$@"
    wait_gone 50 "$@" ||
        say "still running after SIGKILL: $(for t in "$@"; do tok_alive "$t" && echo "${t%%:*}"; done | tr '\n' ' ')"
}
record_pid() { local t; t=$(token "$1") && record pid "$t" "$2"; }   # PID ROLE
recorded_pid() { records pid | awk -v r="$1" '$2 == r { print $1; exit }'; }   # ROLE: its token
recorded_tokens() { records pid | awk '{ print $1 }'; }

# Every process in our mount namespace MNT (e.g. "mnt:[4026532511]"), as tokens. The kernel reuses
# namespace inode numbers once a namespace is gone, so the namespace must also still have our tmpfs on /run
# (source RUN-SOURCE, e.g. $PREFIX-docker-run) to count as ours.
mntns_members() {   # MNT RUN-SOURCE
    local p t m inode=${1//[!0-9]/} checked=0
    [ -n "$inode" ] || return 0
    for p in $(find /proc/[0-9]*/ns/mnt -maxdepth 0 -lname "mnt:?$inode?" 2>/dev/null | cut -d/ -f3); do
        if [ $checked = 0 ]; then
            m=$(cat "/proc/$p/mountinfo" 2>/dev/null) && [ -n "$m" ] || continue   # ended meanwhile
            grep -q " - tmpfs $2 " <<< "$m" || return 0
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
# A container's cgroup directories in every hierarchy: MOUNT/PREFIX-PATH ID (docker/ID, libpod_parent/libpod-ID).
id_cgroups() {   # PREFIX-PATH ID...
    local pre=$1 id m; shift
    for id in "$@"; do
        for m in $(cgroup_mounts); do [ -d "$m/$pre$id" ] && echo "$m/$pre$id"; done
    done
    return 0
}
cgroup_members() {   # CGROUP-DIR...: the processes in them, as tokens
    local d p t
    for d in "$@"; do
        for p in $(cat "$d/cgroup.procs" 2>/dev/null); do t=$(token "$p") && echo "$t"; done
    done
    return 0
}
# A directory some mount namespace still mounts something on (do not rmdir it: that would unmount it there).
# (cat fails on processes that end meanwhile: that must not count, hence the `true` under pipefail)
mounted_anywhere() { { cat /proc/[0-9]*/mountinfo 2>/dev/null; true; } | awk -v d="$1" '$5 == d { f = 1 } END { exit !f }'; }

# STATE directories of the other running setups of this tool: those a process named SETUP_PROC serves.
other_states() {
    local p s
    for p in $(pgrep -x "$SETUP_PROC"); do
        s=$(state_of "$p")
        [ -n "$s" ] && [ "$s" != "$STATE" ] && [ -e "$s/.nsinspect-test-tool" ] && [ -f "$s/record" ] && echo "$s"
    done
}
# A shared directory up made (a parent cgroup, /run/systemd/nspawn…) that another running setup of this
# tool still uses: hand it over (a line KIND DIR in that STATE's record), so that the last one to go removes it.
hand_over() {   # KIND DIR
    local s
    for s in $(other_states); do
        grep -qxF "$1 $2" "$s/record" || echo "$1 $2" >> "$s/record"
        say "$2 is still used by the setup in $s; handed over to it"
        return 0
    done
    return 1
}
# rmdir only (a directory in use stays); one another setup still uses is handed over, else MESSAGE is
# said (printf format, %s the directory).
remove_or_hand_over() {   # KIND MESSAGE DIR...
    local kind=$1 msg=$2 d; shift 2
    for d in "$@"; do
        [ -d "$d" ] || continue
        rmdir "$d" 2>/dev/null || hand_over "$kind" "$d" || say "$(printf "$msg" "$d")"
    done
}

# docker.sh, podman.sh: a network namespace held by its name in /var/run/netns (it outlives a crash of
# what runs in it; down deletes it), lo up. runnetns: /run/netns was no mount point yet (ip netns add
# makes it one, down undoes that once no name is left).
add_named_netns() {   # NS
    local out
    [ -e "/var/run/netns/$1" ] && fail "/var/run/netns/$1 already exists and is not from this STATE"
    grep -q ' /run/netns ' /proc/self/mountinfo || record runnetns
    record netns "$1"
    out=$(ip netns add "$1" 2>&1) || fail "ip netns add $1: $out"
    out=$(ip -n "$1" link set lo up 2>&1) || fail "ip -n $1 link set lo up: $out"
}
del_named_netns() {
    local d
    for d in $(records netns); do
        [ -e "/var/run/netns/$d" ] && { ip netns del "$d" || say "ip netns del $d failed"; }
    done
    if [ -n "$(records runnetns)" ] && [ -z "$(ls -A /var/run/netns 2>/dev/null)" ]; then
        umount /var/run/netns 2>/dev/null; rmdir /var/run/netns 2>/dev/null
    fi
    return 0
}
# Names `nsinspect adopt --auto` may have given our containers (they would keep the namespaces alive).
del_adopted_names() {   # RUNTIME NAME...: /var/run/netns/RUNTIME-PREFIX-NAME
    local rt=$1 n d; shift
    for n in "$@"; do
        d=/var/run/netns/$rt-$PREFIX-$n
        if [ -e "$d" ]; then umount "$d" 2>/dev/null; rm -f "$d"; fi
    done
}

MADE=.made-by-nsinspect-test-tool   # in a mount point up had to create on the host
make_mount_points() {   # DIR...: those missing, with our marker in them
    local d
    for d in "$@"; do
        if [ ! -d "$d" ]; then mkdir -p "$d" && : > "$d/$MADE" || fail "mkdir $d failed"; fi
    done
}
# The mount points up made on the host (empty but for our marker: the tmpfs on them was in the private
# mount namespace). The marker lets the last of several overlapping runs remove a directory the first one
# made, once no mount namespace mounts anything on it.
remove_mount_points() {   # DIR...
    local d
    for d in "$@"; do
        [ -e "$d/$MADE" ] || continue
        if mounted_anywhere "$d"; then say "$d is still a mount point in some mount namespace; kept"
        else rm -f "$d/$MADE"; rmdir "$d" 2>/dev/null || say "$d is not empty; kept"; fi
    done
}

finish_down() {   # T0: the last of down
    rm -rf --one-file-system "$STATE"
    say "down in $(ms_since "$1") ms"
}

# ------------------------------------------------------------------------------------------------ up
fail() {
    trap - INT TERM HUP
    echo "$TOOL up: $*" >&2
    echo "$TOOL up: undoing" >&2
    do_down >&2
    exit 1
}
healthy() {   # [CHECK...]: a complete, running setup from an earlier up (CHECK, where given, succeeds too)
    [ -s "$STATE/up.env" ] || return 1
    local t
    for t in $(recorded_tokens); do tok_alive "$t" || return 1; done
    [ $# = 0 ] || "$@" >/dev/null 2>&1
}
# up's start: a complete earlier setup in STATE is said again (exit 0), a broken one of ours taken down
# first, a STATE that is not ours refused; then STATE with its marker and an empty record, and a signal
# undoes what up made so far. CHECK: as for healthy (docker.sh: dockerd answers).
begin_up() {   # [CHECK...]
    if [ -d "$STATE" ]; then
        if healthy "$@"; then say "already up"; cat "$STATE/up.env"; exit 0; fi
        if [ -e "$MARK" ]; then say "STATE holds a broken earlier setup; removing it first"; do_down
        elif [ -n "$(ls -A "$STATE")" ]; then echo "$TOOL: $STATE exists, is not empty and is not ours" >&2; exit 1; fi
    fi
    mkdir -p "$STATE" || { echo "$TOOL: cannot create $STATE" >&2; exit 1; }
    : > "$MARK"
    : > "$REC"
    trap 'fail "interrupted by a signal"' INT TERM HUP
}
finish_up() {   # T0: STATE/up.env is written
    trap - INT TERM HUP
    say "up in $(ms_since "$1") ms"
    cat "$STATE/up.env"
}

# A root with DIR... below it, the static busybox and its applets (`busybox --install INSTALL-ARGS`).
busybox_root() {   # ROOT INSTALL-ARGS DIR...
    local root=$1 args=$2 out d; shift 2
    for d in "$@"; do mkdir -p "$root/$d"; done
    cp /bin/busybox "$root/bin/busybox" || fail "cp /bin/busybox $root/bin/ failed"
    out=$(chroot "$root" /bin/busybox $args 2>&1) ||
        fail "chroot $root /bin/busybox $args: $out (is /bin/busybox the static one? apt-get install busybox-static)"
}
# docker.sh, podman.sh: the busybox image, STATE/busybox.tar to import
busybox_image_tar() {
    local t1 out
    t1=$(now)
    busybox_root "$STATE/rootfs" "--install -s /bin" bin etc proc sys dev tmp root
    echo 'root:x:0:0:root:/root:/bin/sh' > "$STATE/rootfs/etc/passwd"
    echo 'root:x:0:' > "$STATE/rootfs/etc/group"
    out=$(tar -C "$STATE/rootfs" -cf "$STATE/busybox.tar" . 2>&1) || fail "tar -C $STATE/rootfs -cf $STATE/busybox.tar .: $out"
    say "busybox image tar in $(ms_since "$t1") ms"
}
# docker.sh, podman.sh: the head of STATE/inner.sh, run by start_inner in netns NS and a new private mount
# namespace (unshare --mount --propagation private); the tool's mounts and exec follow.
inner_head() {   # SHELL NS NOTE
    cat <<EOF
#!$1
# Runs in netns $2, in a new private mount namespace (unshare --mount --propagation private)$3.
set -eu
# Drop our copies of the host's nsfs mounts (/run/netns/*): they would keep other people's namespaces
# alive after their 'ip netns del', and could not be unmounted once /run is covered.
grep ' - nsfs ' /proc/self/mountinfo | cut -d' ' -f5 | while read -r m; do umount -l "\$m" 2>/dev/null || true; done
EOF
}
# Starts STATE/inner.sh there, detached, its output in LOG; INNER_PID is set to the launcher's PID (the
# shell running inner.sh once nsenter and unshare have exec'd).
start_inner() {   # SHELL NS LOG
    setsid nsenter --net="/var/run/netns/$2" -- unshare --mount --propagation private -- "$1" "$STATE/inner.sh" \
        < /dev/null > "$3" 2>&1 &
    INNER_PID=$!
    disown "$INNER_PID" 2>/dev/null
}
# docker.sh, podman.sh: container PREFIX-NAME runs (since T1): its KEY_PID, KEY_IP and KEY_ID lines (KEY
# is NAME in capitals) go to STATE/up.env.new; all but NAME none must have an address.
container_env() {   # NAME PID ID IP T1
    local key
    if [ "$1" != none ] && [ -z "$4" ]; then fail "container $PREFIX-$1 has no IP address"; fi
    key=$(echo "$1" | tr a-z A-Z)
    printf '%s_PID=%s\n%s_IP=%s\n%s_ID=%s\n' "$key" "$2" "$key" "$4" "$key" "$3" >> "$STATE/up.env.new"
    say "run $PREFIX-$1 in $(ms_since "$5") ms"
}
