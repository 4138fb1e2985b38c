#!/usr/bin/env python3
"""Generation speed over ggml's RPC backend on loopback, for `make bench-rpc`: the same greedy
run (`llama-swift run`) locally, with every layer on one RPC server, and split over two; each
server is a `llama-swift rpc serve` process. Medians of RUNS runs, alternating."""
import os, re, socket, statistics, subprocess, sys, time

cli = sys.argv[1] if len(sys.argv) > 1 else ".build/release/llama-swift"
runs = int(os.environ.get("RUNS", "5"))
threads = os.environ.get("THREADS", "2")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


servers, endpoints = [], []
for _ in range(2):
    port = free_port()
    servers.append(subprocess.Popen([cli, "rpc", "serve", "--port", str(port), "--threads", threads],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    endpoints.append(f"127.0.0.1:{port}")
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)

setups = {"local": [], "one server": ["--rpc", endpoints[0]], "two servers": ["--rpc", ",".join(endpoints)]}
rates = {name: [] for name in setups}
texts = {}
try:
    for _ in range(runs):
        for name, extra in setups.items():
            r = subprocess.run([cli, "run", "--raw", "-p", "Once upon a time", "--temp", "0", "-n", "64", "-t", threads, *extra],
                               capture_output=True, text=True, check=True)
            rates[name].append(float(re.search(r"generated at ([0-9.]+) tokens/s", r.stderr).group(1)))
            texts[name] = r.stdout
finally:
    for s in servers:
        s.terminate()
base = statistics.median(rates["local"])
for name, values in rates.items():
    m = statistics.median(values)
    print(f"{name:12s} {m:7.1f} tokens/s (×{m / base:.2f} of local)")
print("same greedy text in all three:", "yes" if len(set(texts.values())) == 1 else "NO")
