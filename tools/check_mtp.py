#!/usr/bin/env python3
"""MTP drafting against llama.cpp's own: `llama-server --spec-type draft-mtp` on the synthetic hy_v3 model
that MTPTests wrote (with LLAMA_MTP_CHECK_DIR set, `make check-mtp`), the same prompt tokens, greedy,
the same number of tokens. Compares the tokens and the drafted/accepted counts (its timings' draft_n and
draft_n_accepted) with ours (ours.json), prints both and writes check-mtp.json beside them.

    check_mtp.py --dir .build/check-mtp --llama-server path/to/llama-server [--n-max 3]

Exit status 1 when the tokens differ, or the counts differ (--allow-count-diff N lets them differ by N)."""
import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def post(port, path, body, timeout):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


def wait_ready(proc, port, log_path, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server exited with {proc.returncode} (log: {log_path})")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.2)
    raise RuntimeError(f"llama-server: /health not 200 within {timeout:.0f} s (log: {log_path})")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dir", required=True, help="the folder MTPTests exported to (ours.json, the model)")
    ap.add_argument("--llama-server", required=True)
    ap.add_argument("--n-max", type=int, default=3)
    ap.add_argument("--allow-count-diff", type=int, default=0)
    args = ap.parse_args()

    with open(os.path.join(args.dir, "ours.json")) as f:
        ours = json.load(f)
    port = free_port()
    log_path = os.path.join(args.dir, "llama-server.log")
    argv = [args.llama_server, "-m", ours["model"], "--host", "127.0.0.1", "--port", str(port), "--parallel", "1",
            "-c", str(ours["context"]), "-b", str(ours["batch"]), "-t", str(ours["threads"]), "-tb", str(ours["threads"]),
            "--no-webui", "--spec-type", "draft-mtp", "--spec-draft-n-max", str(args.n_max)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        try:
            wait_ready(proc, port, log_path)
            answer = post(port, "/completion", {
                "prompt": ours["prompt_tokens"], "n_predict": ours["n_predict"], "temperature": 0,
                "cache_prompt": False, "return_tokens": True, "seed": 1}, timeout=300)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    theirs_tokens = answer.get("tokens", [])
    timings = answer.get("timings", {})
    same = sum(1 for a, b in zip(ours["tokens"], theirs_tokens) if a == b)
    first_diff = next((i for i, (a, b) in enumerate(zip(ours["tokens"], theirs_tokens)) if a != b), None)
    result = {
        "tokens": {"ours": len(ours["tokens"]), "llama-server": len(theirs_tokens), "equal_positions": same,
                   "first_difference": first_diff, "identical": ours["tokens"] == theirs_tokens},
        "drafted": {"ours": ours["drafted"], "llama-server": timings.get("draft_n")},
        "accepted": {"ours": ours["accepted"], "llama-server": timings.get("draft_n_accepted")},
        "n_max": args.n_max,
    }
    with open(os.path.join(args.dir, "check-mtp.json"), "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))
    ok = result["tokens"]["identical"]
    for key in ("drafted", "accepted"):
        theirs = result[key]["llama-server"]
        if theirs is None or abs(theirs - result[key]["ours"]) > args.allow_count_diff:
            ok = False
    if not ok:
        print(f"check-mtp: disagreement (llama-server log: {log_path})", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
