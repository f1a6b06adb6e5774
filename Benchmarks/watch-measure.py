#!/usr/bin/env python3
"""Issue 14's measurements, run by Benchmarks/watch.sh with N namespaces already made.

- start-up: from exec to --ready-file with every namespace subscribed; peak RSS (VmHWM) and threads;
- latency: from running `ip addr add` in one namespace to the line that reports it, median of RUNS,
  for `nsinspect watch` (all namespaces) and `ip -n NS monitor address` (that one namespace) side by side;
- throughput: a batch of ADDRS address additions and removals on eth0 of one namespace (`ip -batch`), until the
  last line arrives: events per second for both tools, and whether watch reported every one.
"""
import atexit, os, signal, statistics, subprocess, sys, tempfile, threading, time

BIN, NS, RUNS, ADDRS = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))


class Reader:
    """A tool's stdout read line by line on a thread, each line with its arrival time."""
    def __init__(self, argv):
        self.lines, self.cond = [], threading.Condition()
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, bufsize=1)
        # Ended by PID however the measurement ends: an `ip monitor` left running holds its namespace.
        atexit.register(self.stop)
        threading.Thread(target=self.pump, daemon=True).start()

    def pump(self):
        for line in self.proc.stdout:
            with self.cond:
                self.lines.append((time.monotonic(), line))
                self.cond.notify_all()

    def wait_for(self, text, after, timeout=10):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for t, line in self.lines[after:]:
                    if text in line:
                        return t
                if not self.cond.wait(max(0, deadline - time.monotonic())):
                    return None

    def count(self, text):
        with self.cond:
            return sum(text in line for _, line in self.lines)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def ip(*args, input=None):
    subprocess.run(["ip", "-n", NS, *args], check=True, input=input, text=True)


ready = tempfile.mktemp()
start = time.monotonic()
watch = Reader([BIN, "watch", "--events", "addr,ns", "--ready-file", ready])
while not os.path.exists(ready):
    time.sleep(0.001)
print(f"start-up to ready: {1000 * (time.monotonic() - start):.0f} ms")
status = open(f"/proc/{watch.proc.pid}/status").read()
fields = dict(l.split(":", 1) for l in status.splitlines() if ":" in l)
print(f"watch: VmHWM {fields['VmHWM'].strip()}, VmRSS {fields['VmRSS'].strip()}, threads {fields['Threads'].strip()}")
monitor = Reader(["ip", "-n", NS, "monitor", "address"])
time.sleep(0.3)

ours, theirs = [], []
for i in range(RUNS):
    a, b = len(watch.lines), len(monitor.lines)
    address = f"10.250.{i // 250}.{i % 250 + 1}"
    t0 = time.monotonic()
    ip("addr", "add", f"{address}/32", "dev", "eth0")
    t1, t2 = watch.wait_for(address + "/32", a), monitor.wait_for(address + "/32", b)
    ours.append(1000 * (t1 - t0))
    theirs.append(1000 * (t2 - t0))
print(f"change to line (median of {RUNS}, including ip's own run): watch {statistics.median(ours):.2f} ms, "
      f"ip monitor {statistics.median(theirs):.2f} ms")

batch = "".join(f"address add 10.251.{i // 250}.{i % 250 + 1}/32 dev eth0\n" for i in range(ADDRS))
batch += "".join(f"address del 10.251.{i // 250}.{i % 250 + 1}/32 dev eth0\n" for i in range(ADDRS))
a, b = watch.count("10.251."), monitor.count("10.251.")
t0 = time.monotonic()
ip("-batch", "-", input=batch)
last = f"10.251.{(ADDRS - 1) // 250}.{(ADDRS - 1) % 250 + 1}/32"
deadline = time.monotonic() + 30
while time.monotonic() < deadline and (watch.count("10.251.") - a < 2 * ADDRS or monitor.count("10.251.") - b < 2 * ADDRS):
    time.sleep(0.01)
elapsed = time.monotonic() - t0
got_w, got_m = watch.count("10.251.") - a, monitor.count("10.251.") - b
resyncs = watch.count("resync")
print(f"{2 * ADDRS} address events in {elapsed:.2f} s: watch reported {got_w} (resyncs {resyncs}), ip monitor {got_m}; "
      f"{2 * ADDRS / elapsed:.0f} events/s")
watch.stop()
monitor.stop()
