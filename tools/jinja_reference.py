#!/usr/bin/env python3
"""The reference renderer for chat templates: Python's jinja2, set up the way Hugging Face
transformers sets it up for `apply_chat_template`, and a reader of the chat templates a GGUF
file carries.

    jinja_reference.py render JOBS.json [--out OUT.json] [--timeout SECONDS]
        JOBS.json: [{"id": ..., "template": PATH | "source": TEXT, "context": {...},
                     "now": "2025-03-14T09:26:53Z"}, ...]
        prints (or writes) [{"id": ..., "output": TEXT}
                            | {"id": ..., "error": MESSAGE, "type": EXCEPTION, "line": N}, ...]
        in the order of the jobs. Every job runs in this one process; a template is compiled once.
    jinja_reference.py chat-template MODEL.gguf [--name NAME] [--list]
        prints the GGUF's `tokenizer.chat_template` (or `tokenizer.chat_template.NAME`) as is,
        with no newline added; --list prints the names of the templates it carries.
    jinja_reference.py version
        prints the jinja2 version (exit 1 with a message when jinja2 is not installed).

The environment follows transformers' facts: an ImmutableSandboxedEnvironment with
trim_blocks and lstrip_blocks, the loop-controls extension and a `generation` block (which
transformers uses to track assistant spans and which renders its body unchanged), a `tojson`
filter that is `json.dumps` with ensure_ascii=False, indent, separators and sort_keys, and the
globals `raise_exception(message)` (a TemplateError with the template's message) and
`strftime_now(format)`. Here `strftime_now` reads the job's fixed `now`, not the clock.
"""

import argparse
import datetime
import json
import signal
import struct
import sys


def load_jinja2():
    try:
        import jinja2  # noqa: F401
        import jinja2.ext
        import jinja2.sandbox
    except ImportError:
        print("jinja_reference: Python module jinja2 is not installed: run `make deps` "
              "(or `python3 -m pip install jinja2`)", file=sys.stderr)
        sys.exit(1)
    return jinja2


class Timeout(Exception):
    pass


def make_environment(jinja2, now):
    """One environment per job clock; templates are compiled through it and cached."""

    class Generation(jinja2.ext.Extension):
        # `{% generation %}...{% endgeneration %}` marks what the assistant wrote; for the
        # rendered text it is its body.
        tags = {"generation"}

        def parse(self, parser):
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

        def _body(self, caller):
            return caller()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(value, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(format):
        return now().strftime(format)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[Generation, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def parse_now(text):
    if text is None:
        return datetime.datetime.now
    moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return lambda: moment


def error_entry(jinja2, job_id, error):
    """The error, its exception type and, when known, the template line it happened on: a
    syntax error carries it; for a runtime error it is the innermost template frame of the
    traceback (jinja2 rewrites tracebacks to point into the template)."""
    entry = {"id": job_id, "error": str(error), "type": type(error).__name__}
    line = None
    if isinstance(error, jinja2.exceptions.TemplateSyntaxError):
        line = error.lineno
    else:
        tb = error.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == "<template>":
                line = tb.tb_lineno
            tb = tb.tb_next
    if isinstance(line, int):
        entry["line"] = line
    return entry


def render_jobs(jobs, timeout):
    jinja2 = load_jinja2()
    # The clock changes per job, so the environment reads it through a cell.
    clock = {"now": datetime.datetime.now}
    env = make_environment(jinja2, lambda: clock["now"]())
    compiled = {}
    sources = {}
    results = []

    def on_alarm(signum, frame):
        raise Timeout(f"rendering took more than {timeout} s")

    signal.signal(signal.SIGALRM, on_alarm)
    for job in jobs:
        job_id = job.get("id")
        try:
            if "source" in job:
                source = job["source"]
            else:
                path = job["template"]
                if path not in sources:
                    with open(path, encoding="utf-8", newline="") as f:  # as is, no newline translation
                        sources[path] = f.read()
                source = sources[path]
            clock["now"] = parse_now(job.get("now"))
            signal.setitimer(signal.ITIMER_REAL, timeout)
            try:
                if source not in compiled:
                    try:
                        compiled[source] = env.from_string(source)
                    except Exception as e:  # a template that does not parse fails each of its jobs
                        compiled[source] = e
                template = compiled[source]
                if isinstance(template, Exception):
                    raise template
                output = template.render(**job.get("context", {}))
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            results.append({"id": job_id, "output": output})
        except Exception as e:  # TemplateError, TypeError, RecursionError, MemoryError, Timeout, ...
            results.append(error_entry(jinja2, job_id, e))
    return results


# GGUF metadata: just enough to read the string values of the header's key/value pairs.
GGUF_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
GGUF_STRING, GGUF_ARRAY = 8, 9


class GGUFError(Exception):
    pass


class Reader:
    def __init__(self, f):
        self.f = f

    def take(self, n):
        data = self.f.read(n)
        if len(data) != n:
            raise GGUFError("truncated GGUF file")
        return data

    def unpack(self, fmt):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self):
        return self.take(self.unpack("Q")).decode("utf-8", errors="replace")

    def value(self, kind):
        if kind == GGUF_STRING:
            return self.string()
        if kind in GGUF_SCALAR:
            return self.unpack(GGUF_SCALAR[kind])
        if kind == GGUF_ARRAY:
            item, count = self.unpack("I"), self.unpack("Q")
            if item in GGUF_SCALAR:  # skip: no template lives in a numeric array
                self.f.seek(count * struct.calcsize("<" + GGUF_SCALAR[item]), 1)
                return None
            for _ in range(count):
                self.value(item)
            return None
        raise GGUFError(f"unknown GGUF value type {kind}")


def gguf_chat_templates(path):
    """{name: template} for `tokenizer.chat_template` (name "") and `tokenizer.chat_template.NAME`."""
    prefix = "tokenizer.chat_template"
    found = {}
    with open(path, "rb") as f:
        r = Reader(f)
        if r.take(4) != b"GGUF":
            raise GGUFError(f"{path}: not a GGUF file")
        version = r.unpack("I")
        if version < 2:
            raise GGUFError(f"{path}: GGUF version {version} is not supported")
        r.unpack("Q")  # tensors
        for _ in range(r.unpack("Q")):
            key, kind = r.string(), r.unpack("I")
            value = r.value(kind)
            if kind == GGUF_STRING and (key == prefix or key.startswith(prefix + ".")):
                found[key[len(prefix) + 1:]] = value
    return found


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("render", help="render a JSON file of jobs with jinja2")
    r.add_argument("jobs")
    r.add_argument("--out", help="write the results here instead of stdout")
    r.add_argument("--timeout", type=float, default=20.0, help="seconds one job may take")
    t = sub.add_parser("chat-template", help="print a GGUF file's chat template")
    t.add_argument("model")
    t.add_argument("--name", default="", help="a named variant, e.g. tool_use")
    t.add_argument("--list", action="store_true", help="list the names of the templates")
    sub.add_parser("version", help="print the jinja2 version")
    args = parser.parse_args()

    if args.command == "version":
        print(load_jinja2().__version__)
    elif args.command == "render":
        with open(args.jobs, encoding="utf-8") as f:
            jobs = json.load(f)
        text = json.dumps(render_jobs(jobs, args.timeout), ensure_ascii=False, indent=1)
        if args.out:
            with open(args.out, "w", encoding="utf-8") as f:
                f.write(text)
        else:
            sys.stdout.write(text)
    else:
        try:
            templates = gguf_chat_templates(args.model)
        except (OSError, GGUFError) as e:
            print(f"jinja_reference: {e}", file=sys.stderr)
            sys.exit(1)
        if args.list:
            for name in templates:
                print(name or "(default)")
        elif args.name in templates:
            sys.stdout.write(templates[args.name])
        else:
            what = f"tokenizer.chat_template.{args.name}" if args.name else "tokenizer.chat_template"
            print(f"jinja_reference: {args.model} has no {what}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
