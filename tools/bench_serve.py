#!/usr/bin/env python3
"""Load generator for `make bench-serve` and `make soak-serve` (Python standard library only).

bench: starts `llama-swift serve` and llama.cpp's `llama-server` with the same model, --parallel, context and
threads, then sends the same streaming chat completions (greedy, fixed seed, max_tokens) at each concurrency,
alternating the servers round by round. Per server and concurrency: generated tokens/s (all requests of a round over its wall time, median of
the rounds), time to first
token p50/p95, inter-token latency p50 (gaps between streamed content events), and ours / llama-server ratios.
Writes bench-serve.json and bench-serve.svg in --out.

soak: our server alone at one concurrency for --seconds, mixing streamed and whole answers; samples the server's
RSS (/proc/PID/status) and prompt-cache bytes (/metrics) every --sample seconds; fails when RSS grew more than
--max-growth after the warm-up (or after the prompt cache first held 3/4 of --cache-ram, if later: that memory is
kept by design), or when any request failed.

rerank: /v1/rerank of both servers on the same synthetic rerankers (the model copied with rank pooling by
`llama-swift gguf set`: plain, with BOS/EOS/SEP added, and with a `rerank` template), the same queries and documents, in
Jina's and TEI's shapes: the order, the token counts (usage) and the scores must agree; prints the counts.

lookup: prompt lookup against llama.cpp's own n-gram speculation on the same rewrite task (Bench/rewrite.txt),
same model and threads, rounds alternating: ours from `llama-swift bench --speculation-only` (plain and lookup), llama.cpp's
from llama-server's timings, plain and `--spec-type ngram-simple` (its defaults, and n-gram and draft sizes like ours).
Prints each side's speed-up over its own plain generation.

Every child is bounded by a timeout and killed at the end; ports come from the OS.
"""
import argparse, asyncio, json, os, queue, signal, socket, statistics, subprocess, sys, threading, time

PROMPTS = [
    "Write a long, detailed story about a lighthouse keeper who finds a message in a bottle.",
    "Explain in detail, step by step, how a steam engine works, with examples.",
    "Write a long essay about the history of the bicycle.",
    "Describe a journey across a desert in great detail, day by day.",
    "Write a detailed recipe for bread and explain every step at length.",
    "Tell a long story about a robot learning to paint.",
    "Explain how the internet works to a beginner, in as much detail as you can.",
    "Write a long letter from a sailor to his family describing life at sea.",
    "Describe the four seasons in a mountain village, at length.",
    "Write a detailed guide to planting a vegetable garden.",
    "Tell a long fairy tale about a fox and a crow.",
    "Explain the water cycle in detail with many examples.",
    "Write a long story about two friends building a boat.",
    "Describe a busy city market in great detail.",
    "Write a long history of a small imaginary kingdom.",
    "Explain how airplanes fly, in detail, for a curious child.",
]


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values, q):
    if not values:
        return None
    v = sorted(values)
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


# ---------------------------------------------------------------- HTTP over loopback (asyncio, HTTP/1.1)

class HTTPError(Exception):
    pass


async def _read_head(reader):
    status_line = await reader.readline()
    if not status_line:
        raise HTTPError("connection closed before the status line")
    parts = status_line.decode("latin-1").split(" ", 2)
    status = int(parts[1])
    headers = {}
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        k, _, v = line.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return status, headers


async def _body_chunks(reader, headers):
    """Yields the body's bytes as they arrive (chunked, content-length or until close)."""
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size_line = await reader.readline()
            if not size_line:
                raise HTTPError("connection closed inside a chunked body")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                await reader.readline()
                return
            data = await reader.readexactly(size)
            await reader.readexactly(2)
            yield data
    elif "content-length" in headers:
        n = int(headers["content-length"])
        if n:
            yield await reader.readexactly(n)
    else:
        while True:
            data = await reader.read(65536)
            if not data:
                return
            yield data


async def request(port, method, path, body=None, timeout=120.0):
    """One request; returns (status, body bytes)."""
    async def go():
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            payload = json.dumps(body).encode() if body is not None else b""
            writer.write((f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
                          f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n").encode() + payload)
            await writer.drain()
            status, headers = await _read_head(reader)
            data = b"".join([c async for c in _body_chunks(reader, headers)])
            return status, data
        finally:
            writer.close()
    return await asyncio.wait_for(go(), timeout)


async def stream_chat(port, body, timeout=300.0):
    """A streamed chat completion: returns dict(ttft, gaps, tokens, events, total, text)."""
    async def go():
        t0 = time.perf_counter()
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            payload = json.dumps(body).encode()
            writer.write((f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n"
                          f"Accept: text/event-stream\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload)
            await writer.drain()
            status, headers = await _read_head(reader)
            if status != 200:
                data = b"".join([c async for c in _body_chunks(reader, headers)])
                raise HTTPError(f"status {status}: {data[:300]!r}")
            buf, times, text, usage, done, finish = b"", [], [], None, False, None
            async for chunk in _body_chunks(reader, headers):
                now = time.perf_counter()
                buf += chunk
                while b"\n\n" in buf:
                    event, buf = buf.split(b"\n\n", 1)
                    for line in event.split(b"\n"):
                        line = line.strip()
                        if not line.startswith(b"data:"):
                            continue
                        data = line[5:].strip()
                        if data == b"[DONE]":
                            done = True
                            continue
                        obj = json.loads(data)
                        if obj.get("error"):
                            raise HTTPError(f"error event: {obj['error']}")
                        if obj.get("usage"):
                            usage = obj["usage"]
                        for choice in obj.get("choices") or []:
                            delta = choice.get("delta") or {}
                            piece = (delta.get("content") or "") + (delta.get("reasoning_content") or "")
                            if piece:
                                times.append(now)
                                text.append(piece)
                            if choice.get("finish_reason"):
                                finish = choice["finish_reason"]
            if not done:
                raise HTTPError("the stream ended without data: [DONE]")
            tokens = (usage or {}).get("completion_tokens") or len(times)
            cached = ((usage or {}).get("prompt_tokens_details") or {}).get("cached_tokens")
            return {"ttft": (times[0] - t0) if times else None,
                    "gaps": [b - a for a, b in zip(times, times[1:])],
                    "tokens": tokens, "events": len(times), "total": time.perf_counter() - t0,
                    "text": "".join(text), "finish": finish, "usage": usage is not None,
                    "prompt_tokens": (usage or {}).get("prompt_tokens"), "cached_tokens": cached}
        finally:
            writer.close()
    return await asyncio.wait_for(go(), timeout)


def chat_body(prompt, max_tokens, stream=True):
    body = {"model": "bench", "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "temperature": 0, "seed": 42}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return body


# ---------------------------------------------------------------- servers

class Server:
    def __init__(self, name, argv, env, log_path):
        self.name, self.argv, self.port, self.proc = name, argv, None, None
        self.env, self.log_path, self.lines = env, log_path, queue.Queue()

    def start(self, port=None, ready_timeout=180.0):
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self.argv, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, text=True, bufsize=1, start_new_session=True)
        threading.Thread(target=self._pump, daemon=True).start()
        deadline = time.monotonic() + ready_timeout
        if port is None:  # ours: the JSON line with the port it bound
            while self.port is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{self.name}: no listening line within {ready_timeout:.0f} s (log: {self.log_path})")
                try:
                    line = self.lines.get(timeout=left)
                except queue.Empty:
                    continue
                if line is None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.wait()} before listening (log: {self.log_path})")
                if line.startswith("{") and '"port"' in line:
                    self.port = int(json.loads(line)["port"])
        else:
            self.port = port
        # Both: /health answers 200 (llama-server answers 503 while loading the model).
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode} (log: {self.log_path})")
            try:
                status, _ = asyncio.run(request(self.port, "GET", "/health", timeout=5))
                if status == 200:
                    break
            except (OSError, asyncio.TimeoutError, HTTPError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: /health not 200 within {ready_timeout:.0f} s (log: {self.log_path})")
            time.sleep(0.2)
        log(f"{self.name}: ready on port {self.port} (pid {self.proc.pid})")
        return self

    def _pump(self):
        for line in self.proc.stdout:
            self.log.write(line)
            self.log.flush()
            self.lines.put(line.strip())
        self.lines.put(None)

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def stop(self, grace=15.0):
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


def ours_env():
    """The environment of llama-swift: the libraries make exports as LLAMA_LIB_DIR, unless LLAMA_SWIFT_LIB_DIR is set."""
    env = dict(os.environ)
    if "LLAMA_SWIFT_LIB_DIR" not in env and env.get("LLAMA_LIB_DIR"):
        env["LLAMA_SWIFT_LIB_DIR"] = env["LLAMA_LIB_DIR"]
    return env


def our_server(args, out):
    env = ours_env()
    argv = [args.ours, "serve", "-m", "bench=" + args.model, "--port", "0", "--parallel", str(args.parallel),
            "-c", str(args.ctx), "-t", str(args.threads)]
    if args.cache_ram is not None:
        argv += ["--cache-ram", str(args.cache_ram)]
    return Server("llama-swift", argv, env, os.path.join(out, "llama-swift-serve.log"))


def llama_server(args, out):
    argv = [args.llama_server, "-m", args.model, "--alias", "bench", "--host", "127.0.0.1", "--port", "{port}", "--parallel", str(args.parallel),
            "-c", str(args.ctx), "-t", str(args.threads), "-tb", str(args.threads), "--no-webui"]
    return Server("llama-server", argv, dict(os.environ), os.path.join(out, "llama-server.log"))


# ---------------------------------------------------------------- bench

async def run_round(port, concurrency, prompts, max_tokens):
    """`len(prompts)` streamed requests over `concurrency` workers; returns results and wall time."""
    todo = list(enumerate(prompts))
    results, failures = [None] * len(prompts), []

    async def worker():
        while todo:
            i, p = todo.pop(0)
            try:
                results[i] = await stream_chat(port, chat_body(p, max_tokens))
            except Exception as e:  # a failed request is reported, never hidden
                failures.append(f"{type(e).__name__}: {e}")
    t0 = time.perf_counter()
    await asyncio.gather(*[worker() for _ in range(concurrency)])
    return [r for r in results if r], failures, time.perf_counter() - t0


def summarize(rounds):
    res = [r for rd in rounds for r in rd["results"]]
    tokens = sum(r["tokens"] for r in res)
    wall = sum(rd["wall"] for rd in rounds)
    ttft = [r["ttft"] for r in res if r["ttft"] is not None]
    gaps = [g for r in res for g in r["gaps"]]
    per_round = [sum(r["tokens"] for r in rd["results"]) / rd["wall"] for rd in rounds if rd["wall"]]
    return {"requests": len(res), "failed": sum(len(rd["failures"]) for rd in rounds),
            "failures": [f for rd in rounds for f in rd["failures"]][:5],
            "generated_tokens": tokens, "wall_s": round(wall, 3),
            # The median round: one burst of load from elsewhere on the machine moves it least.
            "tokens_per_s": round(statistics.median(per_round), 2) if per_round else None,
            "tokens_per_s_pooled": round(tokens / wall, 2) if wall else None,
            "ttft_p50_ms": round(percentile(ttft, 0.5) * 1e3, 1) if ttft else None,
            "ttft_p95_ms": round(percentile(ttft, 0.95) * 1e3, 1) if ttft else None,
            "itl_p50_ms": round(percentile(gaps, 0.5) * 1e3, 2) if gaps else None,
            "tokens_per_event": round(tokens / max(1, sum(r["events"] for r in res)), 2),
            # How much of the prompts the server's caches served (usage.prompt_tokens_details.cached_tokens).
            "prompt_tokens": sum(r["prompt_tokens"] or 0 for r in res),
            "cached_prompt_tokens": sum(r["cached_tokens"] or 0 for r in res),
            "per_round_tokens_per_s": [round(x, 2) for x in per_round]}


def svg_chart(levels, table, path):
    w, h, pad = 760, 330, 50
    names = ["llama-swift", "llama-server"]
    colors = {"llama-swift": "#f05138", "llama-server": "#3b6fb6"}
    panels = [("generated tokens/s (higher is better)", "tokens_per_s"), ("TTFT p50, ms (lower is better)", "ttft_p50_ms")]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">',
           f'<rect width="{w}" height="{h}" fill="white"/>']
    pw = (w - 3 * pad) / 2
    for pi, (title, key) in enumerate(panels):
        x0, y0, ph = pad + pi * (pw + pad), 40, h - 100
        vmax = max([table[str(c)][n][key] or 0 for c in levels for n in names] + [1e-9]) * 1.15
        out.append(f'<text x="{x0 + pw / 2}" y="22" text-anchor="middle" font-weight="bold">{title}</text>')
        out.append(f'<line x1="{x0}" y1="{y0 + ph}" x2="{x0 + pw}" y2="{y0 + ph}" stroke="black"/>')
        out.append(f'<line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y0 + ph}" stroke="black"/>')
        for t in range(5):
            v = vmax * t / 4
            y = y0 + ph - ph * t / 4
            out.append(f'<text x="{x0 - 4}" y="{y + 4}" text-anchor="end" font-size="10">{v:.0f}</text>')
            out.append(f'<line x1="{x0}" y1="{y}" x2="{x0 + pw}" y2="{y}" stroke="#ddd"/>')
        gw = pw / len(levels)
        bw = gw * 0.3
        for li, c in enumerate(levels):
            gx = x0 + li * gw + gw * 0.2
            for ni, n in enumerate(names):
                v = table[str(c)][n][key] or 0
                bh = ph * v / vmax
                bx = gx + ni * bw
                out.append(f'<rect x="{bx:.1f}" y="{y0 + ph - bh:.1f}" width="{bw:.1f}" height="{bh:.1f}" fill="{colors[n]}"/>')
                out.append(f'<text x="{bx + bw / 2:.1f}" y="{y0 + ph - bh - 3:.1f}" text-anchor="middle" font-size="9">{v:.0f}</text>')
            out.append(f'<text x="{gx + bw:.1f}" y="{y0 + ph + 16}" text-anchor="middle">c={c}</text>')
    for ni, n in enumerate(names):
        lx = pad + ni * 160
        out.append(f'<rect x="{lx}" y="{h - 30}" width="12" height="12" fill="{colors[n]}"/>')
        out.append(f'<text x="{lx + 18}" y="{h - 20}">{n}</text>')
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def bench(args):
    os.makedirs(args.out, exist_ok=True)
    levels = [int(c) for c in args.concurrency.split(",")]
    ours, theirs = our_server(args, args.out), llama_server(args, args.out)
    port = free_port()
    theirs.argv = [a.replace("{port}", str(port)) for a in theirs.argv]
    servers = [ours, theirs]
    try:
        ours.start()
        theirs.start(port=port)
        prompts = [PROMPTS[i % len(PROMPTS)] for i in range(args.requests)]
        # Warm-up and the greedy texts of each server for the same prompt (reported, not a pass/fail).
        texts = {}
        for s in servers:
            r = asyncio.run(stream_chat(s.port, chat_body(PROMPTS[0], args.max_tokens)))
            texts[s.name] = r["text"]
            log(f"{s.name}: warm-up {r['tokens']} tokens, usage in stream: {r['usage']}, finish {r['finish']}")
        raw = {str(c): {s.name: [] for s in servers} for c in levels}
        for c in levels:
            for rnd in range(args.rounds):
                order = servers if rnd % 2 == 0 else servers[::-1]
                # Unless --repeat-prompts: each round's prompts end with a tag of their own (the same for both
                # servers), so a prompt cache helps with the shared template prefix only, not whole prompts.
                sent = prompts if args.repeat_prompts else [f"{p} (Request {c}.{rnd}.{i}.)" for i, p in enumerate(prompts)]
                for s in order:
                    res, fails, wall = asyncio.run(run_round(s.port, c, sent, args.max_tokens))
                    raw[str(c)][s.name].append({"results": res, "failures": fails, "wall": wall})
                    tok = sum(r["tokens"] for r in res)
                    log(f"c={c} round {rnd + 1}/{args.rounds} {s.name:12s} {tok / wall:7.1f} tokens/s"
                        f"{'  FAILED ' + str(len(fails)) if fails else ''}")
    finally:
        for s in servers:
            s.stop()
    table = {}
    for c in levels:
        row = {name: summarize(raw[str(c)][name]) for name in ("llama-swift", "llama-server")}
        a, b = row["llama-swift"], row["llama-server"]
        row["ratio"] = {
            "tokens_per_s": round(a["tokens_per_s"] / b["tokens_per_s"], 3) if a["tokens_per_s"] and b["tokens_per_s"] else None,
            "ttft_p50": round(a["ttft_p50_ms"] / b["ttft_p50_ms"], 3) if a["ttft_p50_ms"] and b["ttft_p50_ms"] else None,
            "itl_p50": round(a["itl_p50_ms"] / b["itl_p50_ms"], 3) if a["itl_p50_ms"] and b["itl_p50_ms"] else None}
        table[str(c)] = row
    same = texts.get("llama-swift") == texts.get("llama-server")
    report = {"model": args.model, "parallel": args.parallel, "ctx": args.ctx, "threads": args.threads,
              "max_tokens": args.max_tokens, "repeat_prompts": args.repeat_prompts, "requests_per_round": args.requests, "rounds": args.rounds,
              "cpu_count": os.cpu_count(), "env": {k: v for k, v in os.environ.items() if k.startswith(("OMP_", "GOMP_"))},
              "load_average_at_end": os.getloadavg(),
              "same_greedy_text_warmup": same, "warmup_texts": texts, "targets": {"tokens_per_s": ">= 0.95", "ttft_p50": "<= 1.10"},
              "results": table}
    with open(os.path.join(args.out, "bench-serve.json"), "w") as f:
        json.dump(report, f, indent=2)
    svg_chart(levels, table, os.path.join(args.out, "bench-serve.svg"))
    print(f"model {os.path.basename(args.model)}, --parallel {args.parallel}, -c {args.ctx}, -t {args.threads}, "
          f"max_tokens {args.max_tokens}, {args.requests} requests x {args.rounds} rounds per server and concurrency")
    print(f"{'conc':>4} {'server':12s} {'tok/s':>8} {'TTFT p50':>9} {'TTFT p95':>9} {'ITL p50':>8} {'tok/evt':>7} {'failed':>6} {'cached':>7}")
    ok = True
    for c in levels:
        row = table[str(c)]
        for n in ("llama-swift", "llama-server"):
            r = row[n]
            print(f"{c:>4} {n:12s} {r['tokens_per_s']:>8} {r['ttft_p50_ms']:>7} ms {r['ttft_p95_ms']:>7} ms "
                  f"{r['itl_p50_ms']:>5} ms {r['tokens_per_event']:>7} {r['failed']:>6} "
                  f"{r['cached_prompt_tokens'] / max(1, r['prompt_tokens']):>7.0%}")
        q = row["ratio"]
        meets = (q["tokens_per_s"] or 0) >= 0.95 and (q["ttft_p50"] or 99) <= 1.10
        ok = ok and meets and row["llama-swift"]["failed"] == 0
        print(f"{c:>4} {'ours/theirs':12s} {q['tokens_per_s']:>8} {q['ttft_p50']:>9} {'':>9} {q['itl_p50']:>8}   "
              f"{'meets' if meets else 'BELOW'} target (>= 0.95x tokens/s, <= 1.1x TTFT p50)")
    print(f"same greedy text for the warm-up prompt: {'yes' if same else 'no'}")
    print(f"written: {os.path.join(args.out, 'bench-serve.json')}, {os.path.join(args.out, 'bench-serve.svg')}")
    return 0 if ok or not args.strict else 1


# ---------------------------------------------------------------- soak

def soak(args):
    os.makedirs(args.out, exist_ok=True)
    server = our_server(args, args.out)
    warmup = min(args.warmup, args.seconds / 2)
    samples, stats = [], {"ok": 0, "failed": 0, "tokens": 0, "failures": []}
    try:
        server.start()
        t_start = time.monotonic()

        async def worker(wid):
            i = wid
            while time.monotonic() - t_start < args.seconds:
                p = PROMPTS[i % len(PROMPTS)]
                max_tokens = (16, 64, 32, 48)[i % 4]
                try:
                    if i % 2 == 0:
                        r = await stream_chat(server.port, chat_body(p, max_tokens))
                        stats["tokens"] += r["tokens"]
                    else:
                        status, data = await request(server.port, "POST", "/v1/chat/completions",
                                                     chat_body(p, max_tokens, stream=False), timeout=300)
                        if status != 200:
                            raise HTTPError(f"status {status}: {data[:200]!r}")
                        stats["tokens"] += json.loads(data)["usage"]["completion_tokens"]
                    stats["ok"] += 1
                except Exception as e:
                    stats["failed"] += 1
                    if len(stats["failures"]) < 5:
                        stats["failures"].append(f"{type(e).__name__}: {e}")
                i += args.concurrency

        async def cache_bytes():
            try:
                status, data = await request(server.port, "GET", "/metrics", timeout=30)
            except (OSError, asyncio.TimeoutError, HTTPError):
                return None
            for line in data.decode(errors="replace").splitlines():
                if line.startswith("llamaswift_prompt_cache_bytes"):
                    return float(line.split()[-1])
            return None

        async def sampler():
            while time.monotonic() - t_start < args.seconds:
                t = time.monotonic() - t_start
                samples.append((round(t, 1), server.rss_kib(), await cache_bytes()))
                await asyncio.sleep(args.sample)
            samples.append((round(time.monotonic() - t_start, 1), server.rss_kib(), await cache_bytes()))

        async def main():
            await asyncio.gather(sampler(), *[worker(w) for w in range(args.concurrency)])
        asyncio.run(main())
        elapsed = time.monotonic() - t_start
        final_rss_alive = server.proc.poll() is None
    finally:
        server.stop()
    # The prompt cache is memory the server keeps by design, up to --cache-ram: growth is measured from
    # the warm-up's end or from when the cache first holds 3/4 of its limit, whichever is later.
    limit = args.cache_ram * 1024 * 1024 if args.cache_ram and args.cache_ram > 0 else None
    full_at = next((t for t, _, c in samples if limit and c is not None and c >= 0.75 * limit), None)
    if limit and full_at is not None:
        warmup = max(warmup, full_at)
    after = [kib for t, kib, _ in samples if t >= warmup]
    base = after[0] if after else None
    tail = after[-3:] if after else []
    end = sum(tail) / len(tail) if tail else None
    growth = (end - base) / base if base else None
    peak = max(after) if after else None
    report = {"seconds": args.seconds, "warmup_s": warmup, "concurrency": args.concurrency, "parallel": args.parallel,
              "requests_ok": stats["ok"], "requests_failed": stats["failed"], "failures": stats["failures"],
              "generated_tokens": stats["tokens"], "tokens_per_s": round(stats["tokens"] / elapsed, 2),
              "rss_kib_after_warmup": base, "rss_kib_end": end, "rss_kib_peak_after_warmup": peak,
              "rss_growth": round(growth, 4) if growth is not None else None, "max_growth": args.max_growth,
              "alive_at_end": final_rss_alive, "cache_ram_mib": args.cache_ram,
              "prompt_cache_three_quarters_full_at_s": full_at, "samples": samples}
    with open(os.path.join(args.out, "soak-serve.json"), "w") as f:
        json.dump(report, f, indent=2)
    ok = stats["failed"] == 0 and growth is not None and growth <= args.max_growth and final_rss_alive
    print(f"soak-serve: {elapsed:.0f} s at concurrency {args.concurrency} on {args.parallel} slots: "
          f"{stats['ok']} requests ok, {stats['failed']} failed, {stats['tokens']} tokens ({report['tokens_per_s']} tokens/s)")
    if base:
        if limit:
            print(f"prompt cache ({args.cache_ram} MiB): " + (f"3/4 full at {full_at:.0f} s" if full_at is not None else "never 3/4 full"))
        print(f"RSS after {warmup:.0f} s warm-up {base / 1024:.1f} MiB, end {end / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB: "
              f"growth {growth * 100:+.2f} % (limit {args.max_growth * 100:.0f} %)")
    for f in stats["failures"]:
        print("failure:", f)
    print("soak-serve:", "PASS" if ok else "FAIL", f"({os.path.join(args.out, 'soak-serve.json')})")
    return 0 if ok else 1


# ---------------------------------------------------------------- rerank against llama-server

RERANK_QUERIES = [
    ("What is the capital of France?",
     ["Paris is the capital and largest city of France.", "Berlin is the capital of Germany.",
      "The Eiffel Tower is in Paris.", "Bread is made from flour, water and yeast.", ""]),
    ("how do plants make food",
     ["Photosynthesis turns light, water and carbon dioxide into sugar.", "Cats sleep most of the day.",
      "Roots take up water and minerals from the soil.", "Ünïcödé, emoji 🌱 and 漢字 in a document."]),
    ("", ["An empty query still scores documents.", "A second one."]),
    ("A long query " + "that repeats itself " * 20, ["short", "a longer document " * 30]),
]
RERANK_TEMPLATE = ("<|im_start|>system\nJudge whether the document answers the query.<|im_end|>\n<|im_start|>user\n"
                   "<Query>: {query}\n<Document>: {document}<|im_end|>\n<|im_start|>assistant\n")


def rerank(args):
    os.makedirs(args.out, exist_ok=True)
    env = ours_env()
    models = {name: os.path.join(args.out, f"reranker-{name}.gguf") for name in ("plain", "special", "template")}
    edits = {"plain": ["llama.pooling_type=u32:4"],
             # BOS, EOS and SEP added, as BERT-style rerankers ask
             "special": ["llama.pooling_type=u32:4", "tokenizer.ggml.add_bos_token=bool:true", "tokenizer.ggml.add_eos_token=bool:true",
                         "tokenizer.ggml.add_sep_token=bool:true", "tokenizer.ggml.seperator_token_id=u32:0"],
             "template": ["llama.pooling_type=u32:4", "tokenizer.chat_template.rerank=str:" + RERANK_TEMPLATE]}
    for name, path in models.items():
        subprocess.run([args.ours, "gguf", "set", args.model, path] + edits[name], env=env, check=True, timeout=300,
                       stdout=subprocess.DEVNULL)
    counts = {"requests": 0, "documents": 0, "order_same": 0, "tokens_same": 0, "scores_exact": 0, "scores_close": 0}
    worst = 0.0
    report = []
    for name, path in models.items():
        ours = Server("llama-swift", [args.ours, "serve", "-m", "rr=" + path, "--port", "0", "-t", str(args.threads)], env,
                      os.path.join(args.out, f"rerank-{name}-llama-swift.log"))
        port = free_port()
        theirs = Server("llama-server", [args.llama_server, "-m", path, "--alias", "rr", "--host", "127.0.0.1", "--port",
                                         str(port), "--reranking", "--parallel", "1", "-c", "2048", "-t", str(args.threads),
                                         "-tb", str(args.threads), "--no-webui"],
                        dict(os.environ), os.path.join(args.out, f"rerank-{name}-llama-server.log"))
        try:
            ours.start()
            theirs.start(port=port)
            for query, documents in RERANK_QUERIES:
                for shape in ("jina", "tei"):
                    body = {"model": "rr", "query": query, ("documents" if shape == "jina" else "texts"): documents}
                    answers = {}
                    for server in (ours, theirs):
                        status, data = asyncio.run(request(server.port, "POST", "/v1/rerank", body))
                        if status != 200:
                            raise RuntimeError(f"{server.name} answered {status}: {data[:300]!r}")
                        answers[server.name] = json.loads(data)
                    a, b = answers["llama-swift"], answers["llama-server"]
                    ra, rb = (a, b) if shape == "tei" else (a["results"], b["results"])
                    label = "score" if shape == "tei" else "relevance_score"
                    sa = {r["index"]: r[label] for r in ra}
                    sb = {r["index"]: r[label] for r in rb}
                    counts["requests"] += 1
                    counts["documents"] += len(documents)
                    counts["order_same"] += [r["index"] for r in ra] == [r["index"] for r in rb]
                    if shape == "jina":
                        counts["tokens_same"] += a["usage"]["prompt_tokens"] == b["usage"]["prompt_tokens"]
                    for i in range(len(documents)):
                        d = abs(sa[i] - sb[i])
                        worst = max(worst, d)
                        counts["scores_exact"] += sa[i] == sb[i]
                        counts["scores_close"] += d <= 1e-4 * max(1.0, abs(sb[i]))
                    report.append({"model": name, "shape": shape, "query": query[:40], "ours": a, "llama_server": b})
        finally:
            ours.stop()
            theirs.stop()
    with open(os.path.join(args.out, "rerank.json"), "w") as f:
        json.dump({"counts": counts, "worst_abs_difference": worst, "requests": report}, f, indent=1)
    jina = counts["requests"] // 2
    print(f"rerank: {counts['requests']} requests ({jina} Jina, {jina} TEI), {counts['documents']} documents; "
          f"same order {counts['order_same']}/{counts['requests']}, same token counts {counts['tokens_same']}/{jina}, "
          f"scores equal {counts['scores_exact']}/{counts['documents']}, within 1e-4 {counts['scores_close']}/{counts['documents']} "
          f"(largest difference {worst:.3g})")
    ok = (counts["order_same"] == counts["requests"] and counts["tokens_same"] == jina
          and counts["scores_close"] == counts["documents"])
    print("rerank:", "PASS" if ok else "FAIL", f"({os.path.join(args.out, 'rerank.json')})")
    return 0 if ok else 1


# ---------------------------------------------------------------- prompt lookup against llama.cpp's n-gram speculation

def lookup(args):
    os.makedirs(args.out, exist_ok=True)
    env = ours_env()
    task = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Bench", "rewrite.txt")
    text = open(task).read().strip()
    theirs_variants = {"plain": [], "ngram-simple (defaults)": ["--spec-type", "ngram-simple"],
                       "ngram-simple (n 4, m 16)": ["--spec-type", "ngram-simple", "--spec-ngram-simple-size-n", "4",
                                                    "--spec-ngram-simple-size-m", "16"]}
    ours = {"plain": [], "lookup": []}
    theirs = {name: [] for name in theirs_variants}
    drafts = {}
    tokens = set()
    for rnd in range(args.rounds + 1):  # round 0 warms up and is not counted
        path = os.path.join(args.out, "lookup-ours.json")
        run = subprocess.run([args.ours, "bench", "--speculation-only", "--runs", "1", "-t", str(args.threads),
                              "-m", args.model, "--json", path], env=env, timeout=900, capture_output=True, text=True)
        if run.returncode != 0:
            raise RuntimeError(f"llama-swift bench failed: {run.stderr[-2000:]}")
        doc = json.load(open(path))["speculation"]
        if rnd > 0:
            ours["plain"].append(doc["plain"]["median_tokens_per_s"])
            ours["lookup"].append(doc["lookup"]["median_tokens_per_s"])
        drafts["ours"] = (doc["lookup"]["accepted"], doc["lookup"]["drafted"], doc["lookup"]["tokens"])
        for name, extra in theirs_variants.items():
            port = free_port()
            server = Server("llama-server", [args.llama_server, "-m", args.model, "--host", "127.0.0.1", "--port", str(port),
                                             "-c", "2048", "-np", "1", "-t", str(args.threads), "-tb", str(args.threads),
                                             "--no-webui", "--cache-ram", "0"] + extra,
                            dict(os.environ), os.path.join(args.out, "lookup-llama-server.log"))
            try:
                server.start(port=port)
                body = {"messages": [{"role": "user", "content": text}], "max_tokens": 400, "temperature": 0}
                status, data = asyncio.run(request(port, "POST", "/v1/chat/completions", body, timeout=600))
                if status != 200:
                    raise RuntimeError(f"llama-server answered {status}: {data[:300]!r}")
                answer = json.loads(data)
                timings = answer["timings"]
                tokens.add(answer["choices"][0]["message"]["content"])
                if rnd > 0:
                    theirs[name].append(timings["predicted_per_second"])
                if "draft_n" in timings:
                    drafts[name] = (timings.get("draft_n_accepted"), timings.get("draft_n"), timings.get("predicted_n"))
            finally:
                server.stop()
        log(f"lookup: round {rnd}/{args.rounds} done")
    med = statistics.median
    result = {"threads": args.threads, "rounds": args.rounds, "ours": ours, "llama_server": theirs, "drafts": drafts,
              "ours_speedup": med(ours["lookup"]) / med(ours["plain"]),
              "llama_server_speedups": {n: med(v) / med(theirs["plain"]) for n, v in theirs.items() if n != "plain"},
              "llama_server_same_text_every_variant": len(tokens) == 1}
    with open(os.path.join(args.out, "lookup.json"), "w") as f:
        json.dump(result, f, indent=1)
    print(f"lookup ({args.threads} threads, median of {args.rounds} alternating rounds, tokens/s):")
    print(f"  llama-swift   plain {med(ours['plain']):7.1f}   lookup {med(ours['lookup']):7.1f}   "
          f"{result['ours_speedup']:.2f}x   (accepted {drafts['ours'][0]} of {drafts['ours'][1]} guesses, {drafts['ours'][2]} tokens)")
    for name, speedup in result["llama_server_speedups"].items():
        a = drafts.get(name, (None, None, None))
        print(f"  llama-server  plain {med(theirs['plain']):7.1f}   {name} {med(theirs[name]):7.1f}   {speedup:.2f}x   "
              f"(accepted {a[0]} of {a[1]} guesses, {a[2]} tokens)")
    return 0


def _interrupted(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main():
    # make (or a timeout) ends us with SIGTERM, a background job ignores SIGINT: both stop the servers.
    signal.signal(signal.SIGTERM, _interrupted)
    signal.signal(signal.SIGINT, _interrupted)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["bench", "soak", "rerank", "lookup"])
    ap.add_argument("--ours", default=".build/release/llama-swift")
    ap.add_argument("--llama-server")
    ap.add_argument("--model", default=os.environ.get("LLAMA_MODEL"))
    ap.add_argument("--out", default=".build/bench-serve")
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=min(4, os.cpu_count() or 2))
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--concurrency", default=None, help="bench: comma list (1,4,8); soak: one number (8)")
    ap.add_argument("--requests", type=int, default=16, help="bench: requests per round")
    ap.add_argument("--rounds", type=int, default=None,
                    help="bench: rounds per server and concurrency (alternating; 4); lookup: rounds of each side (3)")
    ap.add_argument("--repeat-prompts", action="store_true", help="bench: the same prompts every round (prompt caches hit)")
    ap.add_argument("--strict", action="store_true", help="bench: exit 1 when a target is missed")
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--warmup", type=float, default=60)
    ap.add_argument("--sample", type=float, default=5)
    ap.add_argument("--max-growth", type=float, default=0.05)
    ap.add_argument("--cache-ram", type=int, default=None,
                    help="our server's --cache-ram (MiB); soak: 32 unless given, so the prompt cache reaches its limit "
                         "during the warm-up and the soak shows that the limit holds")
    args = ap.parse_args()
    if not args.model:
        ap.error("--model (or LLAMA_MODEL) is required")
    if args.mode == "soak" and args.cache_ram is None:
        args.cache_ram = 32
    if args.mode == "lookup":
        if not args.llama_server:
            ap.error("lookup needs --llama-server")
        args.rounds = args.rounds or 3
        return lookup(args)
    if args.mode == "rerank":
        if not args.llama_server:
            ap.error("rerank needs --llama-server")
        return rerank(args)
    if args.mode == "bench":
        if not args.llama_server:
            ap.error("bench needs --llama-server")
        args.concurrency = args.concurrency or "1,4,8"
        args.rounds = args.rounds or 4
        return bench(args)
    args.concurrency = int(args.concurrency or 8)
    return soak(args)


if __name__ == "__main__":
    sys.exit(main())
