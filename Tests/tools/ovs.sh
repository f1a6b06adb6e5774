#!/bin/bash
# A private Open vSwitch for nsinspect's tests: ovsdb-server and ovs-vswitchd with every file under DIR
# (OVS_RUNDIR, OVS_DBDIR, OVS_LOGDIR and OVS_SYSCONFDIR point there), userspace datapath only, so it runs
# without the openvswitch kernel module and never touches /var/run/openvswitch or /etc/openvswitch.
#
#   ovs.sh start DIR      start both daemons (idempotent); prints their PIDs
#   ovs.sh stop DIR       delete this database's bridges, stop the daemons, remove DIR (idempotent)
#   ovs.sh vsctl DIR ...  ovs-vsctl against this database
#
# Stopping deletes the bridges first, so the netdev datapath's tap devices (ovs-netdev and one per
# bridge) go with them; daemons that ignore `exit` get SIGTERM, then SIGKILL, by the PIDs in their own
# pidfiles. Nothing of any other Open vSwitch is touched.
set -uo pipefail
command=${1:?usage: ovs.sh start|stop|vsctl DIR}
dir=${2:?usage: ovs.sh start|stop|vsctl DIR}
shift 2
export OVS_RUNDIR=$dir/run OVS_DBDIR=$dir/db OVS_LOGDIR=$dir/log OVS_SYSCONFDIR=$dir/etc
export OVS_PKGDATADIR=${OVS_PKGDATADIR:-/usr/share/openvswitch}
sock=$OVS_RUNDIR/db.sock

pid_of() { [ -s "$OVS_RUNDIR/$1.pid" ] && cat "$OVS_RUNDIR/$1.pid"; }
# Running: exists and is not a zombie (an init that reaps late leaves <defunct> entries for a while).
running() { [ -r "/proc/$1/stat" ] && ! awk '{exit ($3=="Z")?0:1}' "/proc/$1/stat" 2>/dev/null; }
alive() { local p; p=$(pid_of "$1") && running "$p"; }
# (not common.sh's wait_gone: a daemon here is named by its pidfile, for at most 5 s)
daemon_gone() { local p i; p=$(pid_of "$1") || return 0; for i in $(seq 50); do running "$p" || return 0; sleep 0.1; done; return 1; }

# Descriptors the caller leaked to us (a harness's output pipes, duplicated past 2) would be inherited by
# the detached daemons and keep the caller waiting for end of file: close everything above 2.
. "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/common.sh" || exit 1
close_inherited_fds

case $command in
start)
    for tool in ovsdb-server ovs-vswitchd ovs-vsctl ovsdb-tool; do
        command -v "$tool" >/dev/null || { echo "ovs.sh: $tool not found (apt-get install openvswitch-switch)" >&2; exit 1; }
    done
    mkdir -p "$OVS_RUNDIR" "$OVS_DBDIR" "$OVS_LOGDIR" "$OVS_SYSCONFDIR"
    chmod 700 "$dir"
    if ! alive ovsdb-server; then
        rm -f "$OVS_RUNDIR"/ovsdb-server.* "$sock"
        [ -s "$OVS_DBDIR/conf.db" ] || ovsdb-tool create "$OVS_DBDIR/conf.db" "$OVS_PKGDATADIR/vswitch.ovsschema" || exit 1
        # The daemons' stdio goes nowhere: a detached daemon holding the caller's pipes would keep whoever
        # reads them (a test harness) waiting for EOF forever.
        ovsdb-server "$OVS_DBDIR/conf.db" --remote="punix:$sock" --remote=db:Open_vSwitch,Open_vSwitch,manager_options \
            --pidfile="$OVS_RUNDIR/ovsdb-server.pid" --log-file="$OVS_LOGDIR/ovsdb-server.log" --no-chdir --detach \
            </dev/null >/dev/null 2>&1 || { tail -5 "$OVS_LOGDIR/ovsdb-server.log" >&2; exit 1; }
        ovs-vsctl --db="unix:$sock" --no-wait init || exit 1
    fi
    if ! alive ovs-vswitchd; then
        rm -f "$OVS_RUNDIR"/ovs-vswitchd.*
        # The log says the kernel module is missing; only the netdev datapath is used.
        ovs-vswitchd "unix:$sock" --pidfile="$OVS_RUNDIR/ovs-vswitchd.pid" --log-file="$OVS_LOGDIR/ovs-vswitchd.log" \
            -vconsole:off --no-chdir --detach </dev/null >/dev/null 2>&1 || { tail -5 "$OVS_LOGDIR/ovs-vswitchd.log" >&2; exit 1; }
    fi
    # Without --no-wait this returns once ovs-vswitchd has applied the database.
    ovs-vsctl --db="unix:$sock" --timeout=15 init || { tail -5 "$OVS_LOGDIR/ovs-vswitchd.log" >&2; exit 1; }
    echo "ovsdb-server $(pid_of ovsdb-server) ovs-vswitchd $(pid_of ovs-vswitchd) $sock"
    ;;
stop)
    [ -d "$dir" ] || exit 0
    bridges=""
    if alive ovsdb-server; then
        bridges=$(ovs-vsctl --db="unix:$sock" --timeout=5 list-br 2>/dev/null)
        for bridge in $bridges; do
            if alive ovs-vswitchd; then
                ovs-vsctl --db="unix:$sock" --timeout=10 --if-exists del-br "$bridge"
            else
                ovs-vsctl --db="unix:$sock" --timeout=5 --no-wait --if-exists del-br "$bridge"
            fi
        done
    fi
    for daemon in ovs-vswitchd ovsdb-server; do
        alive "$daemon" || continue
        p=$(pid_of "$daemon")
        ovs-appctl -t "$daemon" --timeout=5 exit $([ "$daemon" = ovs-vswitchd ] && echo --cleanup) >/dev/null 2>&1
        daemon_gone "$daemon" && continue
        kill "$p" 2>/dev/null; daemon_gone "$daemon" && continue
        kill -9 "$p" 2>/dev/null; daemon_gone "$daemon"
    done
    # A vswitchd that died without --cleanup leaves the netdev datapath's tap devices (persistent): one
    # per bridge of this database, and ovs-netdev when no other ovs-vswitchd runs.
    for tap in $bridges; do
        ip -d link show "$tap" 2>/dev/null | grep -q " tun " && ip link del "$tap" 2>/dev/null
    done
    if ! ps -eo stat=,comm= | awk '$1 !~ /^Z/ && $2 == "ovs-vswitchd" { found = 1 } END { exit !found }' \
        && ip -d link show ovs-netdev 2>/dev/null | grep -q " tun "; then
        ip link del ovs-netdev 2>/dev/null
    fi
    rm -rf "$dir"
    ;;
vsctl)
    exec ovs-vsctl --db="unix:$sock" --timeout=10 "$@"
    ;;
*)
    echo "usage: ovs.sh start|stop|vsctl DIR" >&2; exit 2
    ;;
esac
