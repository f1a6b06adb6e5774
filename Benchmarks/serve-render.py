"""Time from navigation to the graph drawn (every namespace node present) in headless Chromium.
Usage: serve-render.py URL N  (N: at least this many namespace nodes)."""
import sys
import time

from playwright.sync_api import sync_playwright

url, n = sys.argv[1], int(sys.argv[2])
with sync_playwright() as p:
    browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
    page = browser.new_page()
    times = []
    for run in range(3):
        start = time.monotonic()
        page.goto(url)
        page.wait_for_function(f"document.querySelectorAll('g.node.ns').length >= {n}", timeout=60000)
        times.append(time.monotonic() - start)
    browser.close()
print("first render with %d namespaces: %s s (3 loads)" % (n, ", ".join("%.3f" % t for t in times)))
