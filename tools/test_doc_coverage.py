"""tools/doc_coverage.py over symbol-graph fixtures of ours (tools/fixtures/doc_coverage): what it counts,
what it leaves out, and that it fails on a public symbol without a doc comment."""

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import doc_coverage  # noqa: E402

TOOLS = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(TOOLS, "fixtures", "doc_coverage")
DOCUMENTED = os.path.join(FIXTURES, "documented")
UNDOCUMENTED = os.path.join(FIXTURES, "undocumented")


def run(*args):
    """(exit status, stdout, stderr) of the checker's main."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        status = doc_coverage.main(list(args))
    return status, out.getvalue(), err.getvalue()


class DocCoverageTests(unittest.TestCase):
    def test_counts_public_symbols_and_inherited_documentation(self):
        modules = doc_coverage.analyse(doc_coverage.graph_files([DOCUMENTED]), ["/generated/"])
        self.assertEqual(set(modules), {"Demo"})
        demo = modules["Demo"]
        # Widget, size, init(size:), description (inherited), Kind, Kind.small, String.widgetTag; not the
        # synthesized !=, the internal layout(), the extension block or the generated function.
        self.assertEqual((demo["documented"], demo["total"]), (7, 7))
        self.assertEqual(demo["missing"], [])

    def test_fully_documented_module_passes_at_100_percent(self):
        status, out, err = run("--require", "Demo=100", "--exclude-path", "/generated/", DOCUMENTED)
        self.assertEqual(status, 0, err)
        self.assertIn("Demo: 7/7 public symbols documented (100.0 %)  ok", out)

    def test_generated_code_counts_unless_excluded(self):
        status, out, err = run("--require", "Demo=100", DOCUMENTED)
        self.assertEqual(status, 1)
        self.assertIn("Demo: 7/8", out)
        self.assertIn("Sources/Demo/generated/Generated.swift:2: Demo.generated() (swift.func) has no doc comment", err)

    def test_public_symbol_without_comment_fails_and_is_named(self):
        status, out, err = run("--require", "Gap=100", UNDOCUMENTED)
        self.assertEqual(status, 1)
        self.assertIn("Gap: 1/3 public symbols documented (33.3 %)  FAIL (required 100 %)", out)
        # The line is the declaration's (symbol graphs count from 0), the name the symbol's full path.
        self.assertIn("Sources/Gap/Gauge.swift:5: Gap.Gauge.level (swift.property) has no doc comment", err)
        self.assertIn("Sources/Gap/Gauge.swift:7: Gap.Gauge.reset() (swift.func) has no doc comment", err)
        self.assertIn("error: documentation coverage below the requirement in Gap", err)

    def test_removing_one_comment_from_a_documented_graph_fails(self):
        with tempfile.TemporaryDirectory() as tmp:
            for name in os.listdir(DOCUMENTED):
                shutil.copy(os.path.join(DOCUMENTED, name), tmp)
            path = os.path.join(tmp, "Demo.symbols.json")
            with open(path) as f:
                graph = json.load(f)
            size = next(s for s in graph["symbols"] if s["pathComponents"] == ["Widget", "size"])
            del size["docComment"]
            with open(path, "w") as f:
                json.dump(graph, f)
            status, _, err = run("--require", "Demo=100", "--exclude-path", "/generated/", tmp)
            self.assertEqual(status, 1)
            self.assertIn("Demo.Widget.size (swift.property) has no doc comment", err)
            # A lower requirement is met: 6 of 7.
            status, _, err = run("--require", "Demo=85", "--exclude-path", "/generated/", tmp)
            self.assertEqual(status, 0, err)

    def test_required_module_without_a_graph_fails(self):
        status, out, err = run("--require", "Missing=0", DOCUMENTED)
        self.assertEqual(status, 1)
        self.assertIn("Missing: 0/0", out)
        self.assertIn("was its symbol graph built?", err)

    def test_bad_input_is_a_usage_error(self):
        status, _, err = run("--require", "Demo", DOCUMENTED)
        self.assertEqual(status, 2)
        self.assertIn("MODULE=PERCENT", err)
        status, _, err = run(os.path.join(FIXTURES, "no-such-folder"))
        self.assertEqual(status, 2)
        self.assertIn("no such file or folder", err)

    def test_json_report_and_command_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            report = os.path.join(tmp, "coverage.json")
            result = subprocess.run([sys.executable, os.path.join(TOOLS, "doc_coverage.py"), "--json", report,
                                     "--require", "Gap=100", UNDOCUMENTED], capture_output=True, text=True, timeout=60)
            self.assertEqual(result.returncode, 1, result.stderr)
            with open(report) as f:
                data = json.load(f)
            self.assertEqual(data["Gap"]["total"], 3)
            self.assertEqual([m["symbol"] for m in data["Gap"]["missing"]], ["Gap.Gauge.level", "Gap.Gauge.reset()"])


if __name__ == "__main__":
    unittest.main()
