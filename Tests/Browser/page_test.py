#!/usr/bin/env python3
"""Browser test of `nsinspect serve`'s page, run against a live server by the Swift test suite.

    page_test.py --url http://127.0.0.1:PORT --namespaces host1,router1,router2,host2 --veths 3 \
        --from host1 --to host2 --ttl 62 --new-namespace NAME \
        --new-namespace-command "ip netns add NAME" --screenshots DIR

Checks, in a headless Chromium: the graph shows every namespace and at least N veths between them;
clicking a namespace fills #details; a trace shows an agreeing verdict, the reply's ttl and a pcapng
link; running the command that makes a new namespace adds its node without reloading the page.
Prints "page test passed" and exits 0, or prints one line saying what was missing and exits 1.
It deletes nothing (the caller removes the new namespace).
"""
import argparse
import os
import shlex
import subprocess
import sys

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import sync_playwright


class Failure(Exception):
    pass


def css_string(value):
    """A value quoted for a CSS attribute selector."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def ns_node(name):
    return f"g.node.ns[data-ns={css_string(name)}]"


def wait_js(page, what, expression, arg, timeout_s):
    """Waits for a JS predicate; on timeout fails saying `what` was missing."""
    try:
        page.wait_for_function(expression, arg=arg, timeout=timeout_s * 1000)
    except PlaywrightError:
        raise Failure(f"after {timeout_s} s: {what}") from None


# Namespaces of the listed ones without a node, and veths between listed namespaces (an end is
# "NETNS:IFNAME"; interface names cannot hold ':', so the namespace is everything before the last one).
GRAPH_STATE = """([names]) => {
  const nodes = new Set([...document.querySelectorAll("g.node.ns")].map((g) => g.getAttribute("data-ns")));
  const nsOf = (end) => (end || "").slice(0, Math.max(0, (end || "").lastIndexOf(":")));
  const veths = [...document.querySelectorAll("line.edge.veth")]
    .filter((l) => names.includes(nsOf(l.getAttribute("data-a"))) && names.includes(nsOf(l.getAttribute("data-b")))).length;
  return { missing: names.filter((n) => !nodes.has(n)), veths };
}"""


def check(page, a, shots, errors):
    names = a.namespaces
    page.goto(a.url, wait_until="load", timeout=15000)

    # 1. The graph: every namespace and enough veths between them.
    try:
        page.wait_for_function(f"(args) => {{ const s = ({GRAPH_STATE})(args); return !s.missing.length && s.veths >= args[1]; }}",
                               arg=[names, a.veths], timeout=15000)
    except PlaywrightError:
        state = page.evaluate(GRAPH_STATE, [names])
        missing = [f"no g.node.ns for {', '.join(state['missing'])}"] if state["missing"] else []
        if state["veths"] < a.veths:
            missing.append(f"{state['veths']} line.edge.veth between the listed namespaces, want {a.veths}")
        raise Failure("after 15 s the graph has " + "; ".join(missing)) from None
    page.screenshot(path=os.path.join(shots, "graph.png"))

    # 2. Details of the first namespace.
    try:
        page.locator(ns_node(a.from_ns)).click(timeout=10000)
    except PlaywrightError as e:
        raise Failure(f"could not click the node of {a.from_ns}: {str(e).splitlines()[0]}") from None
    wait_js(page, f"#details table.links has no row after clicking {a.from_ns}",
            "() => document.querySelectorAll('#details table.links tbody tr td:not(.none)').length > 0", None, 15)

    # 3. A trace: an agreeing verdict, the reply's ttl, a pcapng link.
    page.select_option("#from", a.from_ns)
    page.select_option("#to", a.to_ns)
    page.fill("#count", "1")
    page.click("#trace")
    wait_js(page, "no .verdict and no #trace-error after the trace",
            "() => document.querySelector('#trace-result .verdict') || document.querySelector('#trace-error').textContent.trim()",
            None, 30)
    error = page.text_content("#trace-error").strip()
    if error:
        raise Failure(f"#trace-error after the trace: {error}")
    verdicts = page.locator("#trace-result .verdict").all_text_contents()
    if not any("they agree" in v for v in verdicts):
        raise Failure(f"no .verdict says 'they agree': {verdicts}")
    if page.locator("#timeline .hop").count() == 0:
        raise Failure("#timeline shows no .hop rows")
    replies = page.locator("#trace-result .reply-ttl").all_text_contents()
    if not any(f"ttl {a.ttl}" in r for r in replies):
        raise Failure(f"#trace-result has no .reply-ttl with 'ttl {a.ttl}': {replies}")
    href = page.get_attribute("#pcap", "href")
    if not href:
        raise Failure("#pcap has no href after the trace")
    pcap = page.request.get(page.evaluate("(h) => new URL(h, location.href).href", href))
    if not pcap.ok or pcap.body()[:4] != b"\x0a\x0d\x0d\x0a":
        raise Failure(f"#pcap's {href} is not a pcapng (status {pcap.status})")
    page.screenshot(path=os.path.join(shots, "trace.png"))

    # 4. Live: a namespace made now appears without a reload.
    if a.new_namespace:
        page.evaluate("() => { window.__marker = 1; }")
        command = shlex.split(a.new_namespace_command or f"ip netns add {a.new_namespace}")
        done = subprocess.run(command, shell=False, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise Failure(f"{command} exited {done.returncode}: {done.stderr.strip()}")
        wait_js(page, f"no node for the new namespace {a.new_namespace} (not live?)",
                "(sel) => document.querySelector(sel)", ns_node(a.new_namespace), 15)
        if page.evaluate("() => window.__marker") != 1:
            raise Failure("the page was reloaded to show the new namespace")
        page.screenshot(path=os.path.join(shots, "live.png"))

    if errors:
        raise Failure(f"JavaScript error on the page: {errors[0]}")


def main():
    ap = argparse.ArgumentParser(description="browser test of nsinspect serve's page")
    ap.add_argument("--url", required=True)
    ap.add_argument("--namespaces", required=True, help="comma-separated netns names that must be drawn")
    ap.add_argument("--veths", type=int, default=0, help="at least this many veths between them")
    ap.add_argument("--from", dest="from_ns")
    ap.add_argument("--to", dest="to_ns")
    ap.add_argument("--ttl", type=int, required=True, help="the reply ttl the trace must show")
    ap.add_argument("--new-namespace", help="a namespace the command below makes; its node must appear live")
    ap.add_argument("--new-namespace-command", help='default: "ip netns add NAME"')
    ap.add_argument("--screenshots", default=".")
    a = ap.parse_args()
    a.namespaces = [n for n in a.namespaces.split(",") if n]
    a.from_ns = a.from_ns or a.namespaces[0]
    a.to_ns = a.to_ns or a.namespaces[-1]
    os.makedirs(a.screenshots, exist_ok=True)

    errors, status = [], ""
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        except PlaywrightError as e:
            print(f"page test failed: cannot start /usr/bin/chromium: {str(e).splitlines()[0]}", file=sys.stderr)
            return 1
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))
            # Console errors (a 409, a dropped event stream) are reported, not failures.
            page.on("console", lambda m: m.type == "error" and print(f"page console error: {m.text}", file=sys.stderr))
            try:
                check(page, a, a.screenshots, errors)
            except (Failure, PlaywrightError, subprocess.TimeoutExpired) as e:
                try:
                    status = page.text_content("#status", timeout=2000)
                except PlaywrightError:
                    status = "(no #status)"
                message = str(e).splitlines()[0] if str(e) else type(e).__name__
                print(f"page test failed: {message} [#status: {status}]", file=sys.stderr)
                if errors and errors[0] not in message:
                    print(f"JavaScript error on the page: {errors[0]}", file=sys.stderr)
                try:
                    page.screenshot(path=os.path.join(a.screenshots, "failure.png"))
                except PlaywrightError:
                    pass
                return 1
        finally:
            browser.close()
    print("page test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
