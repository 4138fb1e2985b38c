#!/usr/bin/env python3
"""Open the built documentation site in headless Chromium and save a screenshot of a page.

    tools/docs_screenshot.py [--site .build/docs] [--page documentation/llama] [--out .build/docs-llama.png]

DocC's static site loads its pages with JavaScript from JSON files, so it is served over HTTP (on
127.0.0.1, a port the system chooses), not opened as a file. Chromium (Debian's `chromium`
package) renders it with a virtual time budget that lets the page's scripts finish, and writes
the PNG. Fails when the site has no such page, Chromium is missing, or no screenshot is written.
"""

import argparse
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", default=".build/docs")
    parser.add_argument("--page", default="documentation/llama")
    parser.add_argument("--out", default=".build/docs-llama.png")
    parser.add_argument("--size", default="1400,1800", help="window size, WIDTH,HEIGHT")
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args(argv)

    if not os.path.isfile(os.path.join(args.site, "index.html")):
        print(f"error: {args.site} has no index.html: run make docs first", file=sys.stderr)
        return 1
    if not os.path.isdir(os.path.join(args.site, args.page)):
        print(f"error: {args.site} has no page {args.page}", file=sys.stderr)
        return 1
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if not browser:
        print("error: no Chromium: apt-get install chromium", file=sys.stderr)
        return 1

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=os.path.abspath(args.site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/{args.page.strip('/')}/"
    out = os.path.abspath(args.out)
    if os.path.exists(out):
        os.remove(out)
    try:
        with tempfile.TemporaryDirectory() as profile:
            command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                       f"--user-data-dir={profile}", f"--window-size={args.size}",
                       "--virtual-time-budget=15000", f"--screenshot={out}", url]
            result = subprocess.run(command, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        print(f"error: Chromium did not finish within {args.timeout:g} s", file=sys.stderr)
        return 1
    finally:
        server.shutdown()
    if result.returncode != 0 or not os.path.isfile(out) or os.path.getsize(out) == 0:
        print(result.stderr[-2000:], file=sys.stderr)
        print(f"error: Chromium wrote no screenshot of {url}", file=sys.stderr)
        return 1
    print(f"{url} -> {out} ({os.path.getsize(out)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
