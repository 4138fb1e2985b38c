#!/usr/bin/env python3
"""A loopback HTTP server for the provisioning and model-download tests.

Serves the files of one folder, laid out like the remote it stands in for (GitHub release
downloads, PyPI files, the Hugging Face Hub). Listens on 127.0.0.1 only, prints its port on
the first line of stdout, and honours Range requests. Faults are chosen per request by a path
prefix, so one server can play a healthy and a broken mirror:

  /404/<path>        answers 404
  /500/<path>        answers 503 (a transient failure)
  /cut/<path>        sends half the body, then closes the connection (once per path; then healthy)
  /stall/<path>      sends the headers and a few bytes, then stays silent for a minute
  /corrupt/<path>    serves the file with one byte changed
  /slow/<path>       sends the body in 40 pieces, 0.1 s apart
  /_log              the paths requested so far, one per line (the log is not logged itself)

A path ending in / serves the index.json in that folder (a PyPI simple-index page). Files
named in the optional --headers JSON ({"path": {"Header": "value"}}) get those headers,
which is how the Hub's x-linked-etag (an LFS file's sha256) is answered.
"""
import argparse
import http.server
import json
import os
import sys
import threading
import time

FAULTS = ("404", "500", "cut", "stall", "corrupt", "slow")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("root")
    ap.add_argument("--headers", help="JSON file of extra response headers per path")
    args = ap.parse_args()
    root = os.path.realpath(args.root)
    extra = {}
    if args.headers:
        with open(args.headers) as f:
            extra = json.load(f)
    log = []
    cut_done = set()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *a):
            pass

        def do_HEAD(self):
            self.serve(head=True)

        def do_GET(self):
            self.serve(head=False)

        def serve(self, head):
            path = self.path.split("?", 1)[0]
            if path == "/_log":
                with lock:
                    body = "".join(p + "\n" for p in log).encode()
                return self.reply(200, body, head)
            with lock:
                log.append(("HEAD " if head else "") + path + (" " + self.headers["Range"] if self.headers["Range"] else ""))
            fault = None
            parts = path.lstrip("/").split("/", 1)
            if parts[0] in FAULTS and len(parts) == 2:
                fault, path = parts[0], "/" + parts[1]
            if fault == "404":
                return self.reply(404, b"not found\n", head)
            if fault == "500":
                return self.reply(503, b"unavailable\n", head)
            file = os.path.realpath(os.path.join(root, path.lstrip("/")))
            if path.endswith("/"):
                file = os.path.join(file, "index.json")  # a directory page, as a static site serves it
            if not file.startswith(root + os.sep) or not os.path.isfile(file):
                return self.reply(404, b"not found\n", head)
            with open(file, "rb") as f:
                data = f.read()
            if fault == "corrupt":
                data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:]
            start, status = 0, 200
            rng = self.headers["Range"]
            if rng and rng.startswith("bytes=") and rng.endswith("-"):
                start = int(rng[len("bytes="):-1])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
            body = data[start:]
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            if status == 206:
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            for k, v in extra.get(path, {}).items():
                self.send_header(k, v)
            self.end_headers()
            if head:
                return
            if fault == "stall":
                self.wfile.write(body[:1024])
                self.wfile.flush()
                time.sleep(60)
                return
            if fault == "cut":
                with lock:
                    first = path not in cut_done
                    cut_done.add(path)
                if first:
                    self.wfile.write(body[:len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
            if fault == "slow":
                step = max(1, len(body) // 40)
                for i in range(0, len(body), step):
                    self.wfile.write(body[i:i + step])
                    self.wfile.flush()
                    time.sleep(0.1)
                return
            self.wfile.write(body)

        def reply(self, status, body, head):
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    # Ends with its parent: stdin closes when the test process exits.
    threading.Thread(target=lambda: (sys.stdin.read(), os._exit(0)), daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
