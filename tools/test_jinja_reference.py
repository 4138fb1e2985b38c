"""Tests of tools/jinja_reference.py: the jinja2 setup transformers uses, the job runner, and the
GGUF chat-template reader (on small GGUF files written here)."""

import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import jinja_reference  # noqa: E402

TOOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jinja_reference.py")
NOW = "2025-03-14T09:26:53Z"


def render(source, context=None, now=NOW):
    return jinja_reference.render_jobs([{"id": "t", "source": source, "context": context or {}, "now": now}], 10)[0]


class EnvironmentTests(unittest.TestCase):
    """The facts of transformers' chat-template environment."""

    def test_trim_and_lstrip_blocks(self):
        self.assertEqual(render("  {% if true %}\nyes\n  {% endif %}\nend")["output"], "yes\nend")

    def test_a_single_trailing_newline_is_dropped(self):
        self.assertEqual(render("a\n")["output"], "a")

    def test_tojson_keeps_non_ascii_and_key_order_and_takes_json_dumps_options(self):
        ctx = {"v": {"b": "é👋", "a": [1, 2.5, None, True]}}
        self.assertEqual(render("{{ v | tojson }}", ctx)["output"], '{"b": "é👋", "a": [1, 2.5, null, true]}')
        self.assertEqual(render("{{ v | tojson(indent=2) }}", ctx)["output"],
                         json.dumps(ctx["v"], ensure_ascii=False, indent=2))
        self.assertEqual(render("{{ v | tojson(separators=(',', ':'), sort_keys=true) }}", ctx)["output"],
                         '{"a":[1,2.5,null,true],"b":"é👋"}')
        self.assertEqual(render("{{ '<&>' | tojson }}")["output"], '"<&>"')  # no HTML escaping

    def test_raise_exception_is_a_template_error_with_the_message(self):
        result = render("a\n{{ raise_exception('Roles must alternate') }}")
        self.assertEqual((result["type"], result["error"], result["line"]), ("TemplateError", "Roles must alternate", 2))

    def test_strftime_now_reads_the_jobs_clock(self):
        self.assertEqual(render("{{ strftime_now('%Y-%m-%d %H:%M %d %b %Y') }}")["output"], "2025-03-14 09:26 14 Mar 2025")

    def test_loop_controls(self):
        self.assertEqual(render("{% for i in range(9) %}{% if i == 2 %}{% continue %}{% endif %}"
                                "{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}")["output"], "013")

    def test_generation_block_renders_its_body(self):
        self.assertEqual(render("a{% generation %}b{{ 1 + 1 }}{% endgeneration %}c")["output"], "ab2c")

    def test_the_sandbox_is_immutable(self):
        result = render("{% set xs = [] %}{{ xs.append(1) }}")
        self.assertEqual(result["type"], "SecurityError")

    def test_syntax_and_runtime_errors_carry_the_template_line(self):
        self.assertEqual(render("a\n\n{% if %}")["line"], 3)
        result = render("a\n{{ 1 / 0 }}")
        self.assertEqual((result["type"], result["line"]), ("ZeroDivisionError", 2))
        self.assertEqual(render("{{ x.y.z }}")["type"], "UndefinedError")

    def test_undefined_prints_empty_but_its_attributes_raise(self):
        self.assertEqual(render("[{{ nothing }}][{{ nothing is defined }}]")["output"], "[][False]")
        self.assertEqual(render("{{ nothing.attr }}")["type"], "UndefinedError")


class JobTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="jinja-reference-test-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def test_jobs_file_in_results_out_in_order_with_template_files(self):
        template = os.path.join(self.dir, "t.jinja")
        with open(template, "w", newline="") as f:
            f.write("{{ messages[0].content }}\r\n!")  # read as is; jinja2 itself writes template newlines as \n
        jobs = [{"id": "file", "template": template, "context": {"messages": [{"content": "hi"}]}, "now": NOW},
                {"id": "bad", "source": "{% for %}", "context": {}},
                {"id": "text", "source": "{{ 1 + 1 }}", "context": {}}]
        path, out = os.path.join(self.dir, "jobs.json"), os.path.join(self.dir, "out.json")
        with open(path, "w") as f:
            json.dump(jobs, f)
        subprocess.run([sys.executable, TOOL, "render", path, "--out", out], check=True)
        with open(out, encoding="utf-8") as f:
            results = json.load(f)
        self.assertEqual([r["id"] for r in results], ["file", "bad", "text"])
        self.assertEqual(results[0]["output"], "hi\n!")
        self.assertEqual(results[1]["type"], "TemplateSyntaxError")
        self.assertEqual(results[2]["output"], "2")

    def test_a_runaway_job_times_out_and_the_next_one_runs(self):
        jobs = [{"id": "slow", "source": "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"},
                {"id": "fast", "source": "ok"}]
        results = jinja_reference.render_jobs(jobs, 0.5)
        self.assertEqual(results[0]["type"], "Timeout")
        self.assertEqual(results[1]["output"], "ok")


def gguf(path, pairs, version=3, truncate=None):
    """A GGUF header with the given (key, type, value) pairs and no tensors."""
    def string(s):
        b = s.encode()
        return struct.pack("<Q", len(b)) + b

    data = b"GGUF" + struct.pack("<IQQ", version, 0, len(pairs))
    for key, kind, value in pairs:
        data += string(key) + struct.pack("<I", kind)
        if kind == 8:
            data += string(value)
        elif kind == 9:
            item, items = value
            data += struct.pack("<IQ", item, len(items))
            for v in items:
                data += string(v) if item == 8 else struct.pack("<i", v)
        elif kind == 4:
            data += struct.pack("<I", value)
        elif kind == 6:
            data += struct.pack("<f", value)
    with open(path, "wb") as f:
        f.write(data[:truncate] if truncate else data)


class GGUFTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="jinja-reference-gguf-")
        self.path = os.path.join(self.dir, "m.gguf")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def pairs(self):
        return [("general.architecture", 8, "llama"), ("llama.context_length", 4, 2048), ("x.rope", 6, 0.5),
                ("tokenizer.ggml.tokens", 9, (8, ["<s>", "é", "👋"])), ("tokenizer.ggml.token_type", 9, (5, [1, 2, 3])),
                ("tokenizer.chat_template", 8, "{{ messages }}✓"),
                ("tokenizer.chat_template.tool_use", 8, "{{ tools }}")]

    def test_reads_the_default_and_named_templates_past_arrays_and_scalars(self):
        gguf(self.path, self.pairs())
        self.assertEqual(jinja_reference.gguf_chat_templates(self.path), {"": "{{ messages }}✓", "tool_use": "{{ tools }}"})
        out = subprocess.run([sys.executable, TOOL, "chat-template", self.path], capture_output=True, check=True).stdout
        self.assertEqual(out.decode(), "{{ messages }}✓")  # exactly, no newline added
        out = subprocess.run([sys.executable, TOOL, "chat-template", self.path, "--name", "tool_use"], capture_output=True, check=True)
        self.assertEqual(out.stdout.decode(), "{{ tools }}")

    def test_a_model_without_a_template_says_so(self):
        gguf(self.path, self.pairs()[:3])
        r = subprocess.run([sys.executable, TOOL, "chat-template", self.path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("has no tokenizer.chat_template", r.stderr)

    def test_truncated_and_foreign_files_are_errors(self):
        gguf(self.path, self.pairs(), truncate=60)
        with self.assertRaisesRegex(jinja_reference.GGUFError, "truncated"):
            jinja_reference.gguf_chat_templates(self.path)
        with open(self.path, "wb") as f:
            f.write(b"PK\x03\x04 not a gguf")
        r = subprocess.run([sys.executable, TOOL, "chat-template", self.path], capture_output=True, text=True)
        self.assertEqual(r.returncode, 1)
        self.assertIn("not a GGUF file", r.stderr)


if __name__ == "__main__":
    unittest.main()
