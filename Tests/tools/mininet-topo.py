#!/usr/bin/python3
"""Mininet test topology for nsinspect (no controller, no `mn -c` needed).

    h1 10.0.1.1 ─┐                                   ┌─ h3 10.0.2.1
                 ├─ s1 (LinuxBridge) ─ r1 ─ s2 (OVS netdev, standalone) ─┘
    h2 10.0.1.2 ─┘   r1-eth0 10.0.1.254   r1-eth1 10.0.2.254

r1 is a plain Host with net.ipv4.ip_forward=1; h1..h3 default-route via r1.
h1 ping h3 answers with ttl 63.

Switch choice (--s1 / --s2: linuxbridge | ovs | none; --plain = both none).
With 'none' the hosts are cabled straight to r1 instead:
    s1=none: h1 ─ r1-eth0 (10.0.1.0/24), h2 10.0.3.1 ─ r1-eth2 10.0.3.254
    s2=none: h3 ─ r1-eth1 (10.0.2.0/24)
An OVS switch uses a PRIVATE ovsdb-server/ovs-vswitchd started by ovs.sh
(next to this file) under --ovs-dir (OVS_RUNDIR etc. are exported so every
ovs-vsctl Mininet runs talks to it); `ovs.sh stop` removes it at the end.
/var/run/openvswitch and /etc/openvswitch are never used.

Protocol: once up (and, unless --no-check, after h1 ping h3 worked) a JSON
description (pids, interfaces, addresses) is written to --ready-file
(atomically: tmp + rename). Then it waits until --stop-file exists, or
SIGTERM/SIGINT/SIGHUP, or --duration seconds, then tears everything down and
removes the ready file (and the stop file). Exit status 0 = clean teardown.

Run with the system python (Mininet is a Debian package):
    /usr/bin/python3 Tests/tools/mininet-topo.py --ready-file F --stop-file G --ovs-dir D [--s1 ..] [--s2 ..]
Used by nsinspect's end-to-end tests (Tests/EndToEndTests/MininetTests.swift).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

if '/usr/lib/python3/dist-packages' not in sys.path and \
        os.path.realpath(sys.executable) != os.path.realpath('/usr/bin/python3'):
    # e.g. a pyenv python3 on PATH: re-run with Debian's python3, which has Mininet.
    os.execv('/usr/bin/python3', ['/usr/bin/python3'] + sys.argv)

from mininet.net import Mininet
from mininet.node import Host, OVSSwitch
from mininet.nodelib import LinuxBridge
from mininet.link import Link
from mininet.log import setLogLevel, info, error

HERE = os.path.dirname(os.path.abspath(__file__))
OVS_SCRIPT = os.path.join(HERE, 'ovs.sh')


def now():
    return time.monotonic()


class Router(Host):
    "A Host that forwards IPv4 (inside its own namespace only)."

    def config(self, **params):
        r = super().config(**params)
        self.cmd('sysctl -qw net.ipv4.ip_forward=1')
        return r

    def terminate(self):
        # nothing global to undo: ip_forward is per network namespace
        super().terminate()


def parse():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--s1', choices=['linuxbridge', 'ovs', 'none'], default='linuxbridge')
    p.add_argument('--s2', choices=['ovs', 'linuxbridge', 'none'], default='ovs')
    p.add_argument('--plain', action='store_true', help='no switches: --s1 none --s2 none')
    p.add_argument('--ready-file', required=True)
    p.add_argument('--stop-file', required=True)
    p.add_argument('--duration', type=float, default=0, help='stop after N s (0 = wait for stop file/signal)')
    p.add_argument('--ovs-dir', default='/tmp/nsinspect-mininet-ovs',
                   help='private OVS state dir (for ovs.sh)')
    p.add_argument('--keep-ovs', action='store_true',
                   help='do not stop the private OVS daemons at the end')
    p.add_argument('--no-check', action='store_true', help='skip the ping checks before ready')
    p.add_argument('--loglevel', default='info')
    a = p.parse_args()
    if a.plain:
        a.s1 = a.s2 = 'none'
    return a


SWITCH = {
    'linuxbridge': dict(cls=LinuxBridge),
    # datapath='user' => datapath_type=netdev; no openvswitch.ko needed
    'ovs': dict(cls=OVSSwitch, datapath='user', failMode='standalone'),
}


def start_private_ovs(a):
    t = now()
    subprocess.run([OVS_SCRIPT, 'start', a.ovs_dir], check=True)
    # Make every `ovs-vsctl` Mininet runs (from this process and from the
    # switches' bash shells, which inherit our environment) use the private db.
    for k, sub in (('OVS_RUNDIR', 'run'), ('OVS_DBDIR', 'db'),
                   ('OVS_LOGDIR', 'log'), ('OVS_SYSCONFDIR', 'etc')):
        os.environ[k] = os.path.join(a.ovs_dir, sub)
    return now() - t


def stop_private_ovs(a):
    subprocess.run([OVS_SCRIPT, 'stop', a.ovs_dir])


def build(a):
    # Mininet.init() would call fixLimits(), which raises host-wide sysctls
    # (fs.file-max, net.core.[rw]mem_max, tcp_[rw]mem, netdev_max_backlog,
    # neigh gc_thresh1-3, route.max_size, kernel.pty.max) and never restores
    # them. Skip it so the host stays as found.
    Mininet.inited = True
    net = Mininet(topo=None, controller=None, build=False, autoSetMacs=False,
                  cleanup=False, waitConnected=False)
    h1 = net.addHost('h1', ip='10.0.1.1/24', defaultRoute='via 10.0.1.254')
    h2_ip, h2_gw = ('10.0.1.2/24', '10.0.1.254') if a.s1 != 'none' else ('10.0.3.1/24', '10.0.3.254')
    h2 = net.addHost('h2', ip=h2_ip, defaultRoute='via ' + h2_gw)
    h3 = net.addHost('h3', ip='10.0.2.1/24', defaultRoute='via 10.0.2.254')
    r1 = net.addHost('r1', cls=Router, ip=None)

    if a.s1 != 'none':
        s1 = net.addSwitch('s1', **SWITCH[a.s1])
        net.addLink(h1, s1, intfName1='h1-eth0', intfName2='s1-eth1')
        net.addLink(h2, s1, intfName1='h2-eth0', intfName2='s1-eth2')
        net.addLink(r1, s1, intfName1='r1-eth0', intfName2='s1-eth3',
                    params1={'ip': '10.0.1.254/24'})
    else:
        net.addLink(h1, r1, intfName1='h1-eth0', intfName2='r1-eth0',
                    params2={'ip': '10.0.1.254/24'})
    if a.s2 != 'none':
        s2 = net.addSwitch('s2', **SWITCH[a.s2])
        net.addLink(r1, s2, intfName1='r1-eth1', intfName2='s2-eth1',
                    params1={'ip': '10.0.2.254/24'})
        net.addLink(h3, s2, intfName1='h3-eth0', intfName2='s2-eth2')
    else:
        net.addLink(r1, h3, intfName1='r1-eth1', intfName2='h3-eth0',
                    params1={'ip': '10.0.2.254/24'})
    if a.s1 == 'none':
        net.addLink(h2, r1, intfName1='h2-eth0', intfName2='r1-eth2',
                    params2={'ip': '10.0.3.254/24'})
    return net


def describe(net, a, timings):
    d = {'pid': os.getpid(), 's1': a.s1, 's2': a.s2, 'timings_s': timings,
         'ovs_dir': a.ovs_dir if 'ovs' in (a.s1, a.s2) else None,
         'stop_file': a.stop_file, 'hosts': {}, 'switches': {}}
    for h in net.hosts:
        d['hosts'][h.name] = {
            'pid': h.pid,
            'netns': os.readlink('/proc/%d/ns/net' % h.pid),
            'cmdline': open('/proc/%d/cmdline' % h.pid, 'rb').read().split(b'\0')[:-1],
            'intfs': {i.name: i.IP() for i in h.intfList() if i.name != 'lo'},
        }
        d['hosts'][h.name]['cmdline'] = [c.decode() for c in d['hosts'][h.name]['cmdline']]
    for s in net.switches:
        d['switches'][s.name] = {
            'class': type(s).__name__, 'pid': s.pid,
            'netns': os.readlink('/proc/%d/ns/net' % s.pid),
            'intfs': [i.name for i in s.intfList() if i.name != 'lo'],
        }
    return d


def main():
    a = parse()
    setLogLevel(a.loglevel)
    for f in (a.ready_file, a.stop_file):
        if os.path.exists(f):
            os.unlink(f)

    stop = {'why': None}

    def on_signal(signum, _frame):
        stop['why'] = signal.Signals(signum).name
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, on_signal)

    timings = {}
    net = None
    use_ovs = 'ovs' in (a.s1, a.s2)
    rc = 0
    t0 = now()
    try:
        if use_ovs:
            timings['ovs_daemons'] = round(start_private_ovs(a), 3)
        t = now()
        net = build(a)
        net.build()
        net.start()
        timings['mininet_build_start'] = round(now() - t, 3)

        if not a.no_check:
            t = now()
            ok = True
            pairs = [('h1', 'h3'), ('h1', 'h2'), ('h3', 'h2')]
            for src, dst in pairs:
                s, d = net.get(src), net.get(dst)
                out = ''
                # first ping also primes ARP / OVS MAC learning
                for attempt in range(10):
                    out = s.cmd('ping -c1 -W1 %s' % d.IP())
                    if ' 0% packet loss' in out:
                        break
                ttl = [w for w in out.split() if w.startswith('ttl=')]
                info('*** check %s -> %s (%s): %s %s\n' % (src, dst, d.IP(),
                     'ok' if ' 0% packet loss' in out else 'FAILED', ttl[:1]))
                ok &= ' 0% packet loss' in out
            timings['ping_checks'] = round(now() - t, 3)
            if not ok:
                error('*** ping checks failed\n')
                rc = 3
        timings['total_to_ready'] = round(now() - t0, 3)

        d = describe(net, a, timings)
        for name, h in d['hosts'].items():
            print('%s pid=%d netns=%s intfs=%s' % (name, h['pid'], h['netns'],
                  ','.join('%s(%s)' % kv for kv in h['intfs'].items())), flush=True)
        for name, s in d['switches'].items():
            print('%s %s pid=%d netns=%s ports=%s' % (name, s['class'], s['pid'], s['netns'],
                  ','.join(s['intfs'])), flush=True)
        tmp = a.ready_file + '.tmp'
        with open(tmp, 'w') as f:
            json.dump(d, f, indent=1)
        os.rename(tmp, a.ready_file)
        print('READY %s (%.2fs)' % (a.ready_file, timings['total_to_ready']), flush=True)

        deadline = now() + a.duration if a.duration > 0 else None
        while stop['why'] is None and not os.path.exists(a.stop_file):
            if deadline and now() >= deadline:
                stop['why'] = 'duration'
                break
            time.sleep(0.2)
        print('STOPPING (%s)' % (stop['why'] or 'stop file'), flush=True)
    except Exception as e:  # noqa
        error('*** %s: %s\n' % (type(e).__name__, e))
        rc = 2
    finally:
        # No more signal interruptions during teardown.
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, signal.SIG_IGN)
        t = now()
        if net is not None:
            try:
                net.stop()
            except Exception as e:  # noqa
                error('*** net.stop: %s\n' % e)
                rc = rc or 4
        # Belt and braces: anything with our names still in the root namespace?
        names = ['h1-eth0', 'h2-eth0', 'h3-eth0', 'r1-eth0', 'r1-eth1', 'r1-eth2',
                 's1', 's2', 's1-eth1', 's1-eth2', 's1-eth3', 's2-eth1', 's2-eth2']
        for n in names:
            if subprocess.run(['ip', 'link', 'show', 'dev', n], capture_output=True).returncode == 0:
                error('*** leftover link %s, deleting\n' % n)
                subprocess.run(['ip', 'link', 'del', 'dev', n])
        if use_ovs and not a.keep_ovs:
            stop_private_ovs(a)
        for f in (a.ready_file, a.stop_file, a.ready_file + '.tmp'):
            if os.path.exists(f):
                os.unlink(f)
        print('STOPPED in %.2fs' % (now() - t), flush=True)
    return rc


if __name__ == '__main__':
    sys.exit(main())
