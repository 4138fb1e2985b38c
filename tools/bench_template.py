#!/usr/bin/env python3
"""Chat-template rendering speed: our engine (llama-swift template render --benchmark) against
jinja2 set up as transformers sets it up (tools/jinja_reference.py), on the same template,
conversation (20 messages, tools) and clock, in the same run.

    bench_template.py LLAMA_SWIFT TEMPLATE.jinja [RUNS]
"""
import json, os, subprocess, sys, time, statistics
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jinja_reference  # noqa: E402

def main():
    exe, template = sys.argv[1], sys.argv[2]
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    conv = os.path.join(here, "Bench", "template-conversation.json")
    tools = os.path.join(here, "Bench", "template-tools.json")
    now = "2026-11-29T10:00:00Z"
    out = subprocess.run([exe, "template", "render", "--template", template, "--messages", conv, "--tools", tools,
                          "--add-generation-prompt", "--now", now, "--benchmark", str(runs)],
                         capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        sys.exit(f"bench-template: llama-swift failed: {out.stderr.strip()}")
    ours = json.loads(out.stdout)
    env = jinja_reference.make_environment(jinja_reference.load_jinja2(), jinja_reference.parse_now(now))
    compiled = env.from_string(open(template, encoding="utf-8").read())
    ctx = {"messages": json.load(open(conv))["messages"], "tools": json.load(open(tools)),
           "add_generation_prompt": True, "bos_token": "", "eos_token": ""}
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        compiled.render(**ctx)
        times.append((time.perf_counter() - t) * 1e3)
    ref = statistics.median(times)
    print(f"template {os.path.basename(template)}: 20 messages with tools, {ours['bytes']} bytes, median of {runs}")
    print(f"  LlamaJinja {ours['median_ms']:.3f} ms   jinja2 (precompiled) {ref:.3f} ms   ratio {ours['median_ms'] / ref:.2f}x")
    if ours["median_ms"] >= 1.0:
        sys.exit("bench-template: the target is under 1 ms median")

if __name__ == "__main__":
    main()
