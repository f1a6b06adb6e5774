#!/usr/bin/env python3
"""A stand-in for `nsinspect serve`, only to develop and check the page without the real server.

Serves Sources/Serve/Assets/, /d3.min.js, and the API from sample files. About 2 s (--new-after) after
a client subscribes to /api/events it sends an "ns" "new" event for namespace "zz-new", and from then on
/api/graph includes that namespace.

    python3 mock_server.py --graph /tmp/serve-samples/graph-two-routers.json [--port 8080] [--busy]
"""
import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlparse

ASSETS = Path(__file__).resolve().parents[2] / "Sources" / "Serve" / "Assets"
D3 = Path("/usr/share/javascript/d3/d3.min.js")
TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
NEW_NS = {"netns": "zz-new", "ns": 4026599999, "interfaces": ["lo"]}
# A pcapng section header block and nothing else: enough for the page's download link.
PCAPNG = bytes.fromhex("0a0d0d0a1c0000004d3c2b1a01000000ffffffffffffffff1c000000")

args = None
new_ns_added = threading.Event()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *a):
        if args.verbose:
            super().log_message(fmt, *a)

    def send(self, status, body, ctype="application/json", headers=()):
        body = body if isinstance(body, bytes) else body.encode()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def error(self, status, message):
        self.send(status, json.dumps({"error": message}) + "\n")

    def sample(self, name):
        return (Path(args.samples) / name).read_text()

    def do_GET(self):
        url = urlparse(self.path)
        p = url.path
        if p == "/d3.min.js":
            return self.send(200, D3.read_bytes(), TYPES[".js"])
        if p == "/metrics":
            return self.send(200, "# mock\n", "text/plain")
        if p == "/api/graph":
            graph = json.loads(Path(args.graph).read_text())
            if new_ns_added.is_set() and not args.list_only:
                graph["namespaces"].append(NEW_NS)
            return self.send(200, json.dumps(graph))
        if p == "/api/list":
            listing = json.loads(self.sample("list.json"))
            if new_ns_added.is_set():
                listing["namespaces"].append({"ns": NEW_NS["ns"], "type": "net", "reference": "zz-new", "interfaces": [],
                                              "names": [{"kind": "netns", "name": "zz-new", "reference": "zz-new"}]})
            return self.send(200, json.dumps(listing))
        if p == "/api/path":
            return self.send(200, self.sample("path-host1-host2.json"))
        if p.startswith("/api/show/"):
            name = unquote(p[len("/api/show/"):])
            graph = json.loads(Path(args.graph).read_text())
            known = {n["netns"] for n in graph["namespaces"]} | ({"zz-new"} if new_ns_added.is_set() else set())
            if name not in known:
                return self.error(404, f"show: no such namespace: {name}")
            show = json.loads(self.sample("show-router1.json"))  # every namespace looks like router1 here
            show["namespace"].update(reference=name, names=[name])
            return self.send(200, json.dumps(show))
        if p.startswith("/api/pcap/"):
            return self.send(200, PCAPNG, "application/vnd.tcpdump.pcap")
        if p == "/api/events":
            return self.events()
        name = "index.html" if p == "/" else p.lstrip("/")
        f = ASSETS / name
        if "/" in name or not f.is_file():
            return self.error(404, f"no such page file '{name}'")
        self.send(200, f.read_bytes(), TYPES.get(f.suffix, "application/octet-stream"))

    def do_POST(self):
        url = urlparse(self.path)
        if url.path != "/api/trace":
            return self.error(404, "not found")
        if args.busy:
            return self.error(409, "another trace is running; try again when it ends")
        count = int(parse_qs(url.query).get("count", ["3"])[0])
        time.sleep(1)  # a real trace takes a moment
        lines = [json.loads(l) for l in self.sample("trace-host1-host2.ndjson").splitlines() if l.strip()]
        for l in lines:
            if l.get("summary"):
                l["probes"] = l["probes"][:count]
        kept = [l for l in lines if l.get("summary") or l.get("probe", 0) <= count]
        body = "".join(json.dumps(l, ensure_ascii=False) + "\n" for l in kept)
        self.send(200, body, "application/x-ndjson", [("X-Pcapng", "/api/pcap/1")])

    def events(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        try:
            self.wfile.write(b": mock watch\n\n")
            self.wfile.flush()
            time.sleep(args.new_after)
            new_ns_added.set()
            event = {"time": "2026-12-06T18:21:51.208Z", "ns": {"inode": NEW_NS["ns"], "names": ["zz-new"],
                     "reference": "zz-new"}, "event": "ns", "action": "new"}
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
            while True:  # keep the stream open, as the real server does
                time.sleep(10)
                self.wfile.write(b": keepalive\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass


def main():
    global args
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--graph", required=True, help="graph --json sample to serve as /api/graph")
    ap.add_argument("--samples", default="/tmp/serve-samples", help="folder of the other samples")
    ap.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    ap.add_argument("--new-after", type=float, default=2, help="seconds before zz-new appears")
    ap.add_argument("--list-only", action="store_true",
                    help="zz-new only in /api/list, as the real graph leaves out namespaces with nothing wired")
    ap.add_argument("--busy", action="store_true", help="answer every trace with 409, to see the error")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    server.daemon_threads = True
    print(f"mock serving on http://127.0.0.1:{server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
