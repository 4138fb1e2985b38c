"""make test-bump: version bumps for real, on a copy of the repository.

Bumps from b11434 to the older b11003 (real API differences, real sources from PyPI), builds the
package, bumps back and checks the tree is exactly as it was, then checks that bad input leaves
every file untouched. GitHub is a fake on 127.0.0.1: its release API reports asset digests and
it serves one tag archive of our own whose header does not parse.
"""

import hashlib
import http.server
import io
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINDGEN = os.path.join(ROOT, "Generator", ".build", "debug", "llama-bindgen")
OLD_TAG = "b11003"
BROKEN_TAG = "b11435"
X64_DIGEST = "ab" * 32
CUDART_DIGEST = "cd" * 32


def broken_source_archive():
    """A tag archive laid out like GitHub's, whose llama.h does not parse."""
    with open(os.path.join(ROOT, "headers", "manifest.json")) as f:
        manifest = json.load(f)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        def add(path, data):
            info = tarfile.TarInfo(f"llama.cpp-{BROKEN_TAG}/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for h in manifest["headers"]:
            with open(os.path.join(ROOT, "headers", "pinned", h["path"]), "rb") as f:
                data = f.read()
            if h["path"] == "include/llama.h":
                data += b"\nstruct broken_by_the_test { int x\n"
            add(h["path"], data)
        add(".github/workflows/release.yml", b"name: release\njobs: {}\n")
    return buffer.getvalue()


class FakeGitHub(http.server.BaseHTTPRequestHandler):
    archive = b""

    def do_GET(self):
        if self.path == f"/repos/ggml-org/llama.cpp/releases/tags/{OLD_TAG}":
            body = json.dumps({"tag_name": OLD_TAG, "assets": [
                {"name": f"llama-{OLD_TAG}-bin-ubuntu-x64.tar.gz", "digest": "sha256:" + X64_DIGEST},
                {"name": f"cudart-llama-{OLD_TAG}-bin-ubuntu-cuda-12.8-x64.tar.gz", "digest": "sha256:" + CUDART_DIGEST},
            ]}).encode()
        elif self.path == f"/ggml-org/llama.cpp/archive/refs/tags/{BROKEN_TAG}.tar.gz":
            body = self.archive
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class BumpTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if not os.path.exists(BINDGEN):
            raise RuntimeError(f"{BINDGEN} is missing: run `make generator` (make test-bump does)")
        FakeGitHub.archive = broken_source_archive()
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}"
        cls.work = tempfile.mkdtemp(prefix="llama-bump-test-")
        cls.repo = os.path.join(cls.work, "repo")
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.split("\n")
        for f in filter(None, files):
            if not os.path.exists(os.path.join(ROOT, f)):
                continue
            dest = os.path.join(cls.repo, f)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, f), dest)
        shutil.copytree(os.path.join(ROOT, "headers", "pinned"), os.path.join(cls.repo, "headers", "pinned"))

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def bump(self, tag, *extra):
        return subprocess.run(
            [BINDGEN, "bump", "--tag", tag, "--package", self.repo,
             "--manifest", os.path.join(self.repo, "headers", "manifest.json"),
             "--headers", os.path.join(self.repo, "headers", "pinned"),
             "--diff-out", os.path.join(self.repo, ".bump", "api-diff.md"),
             "--github-api", self.url, "--github", self.url, *extra],
            cwd=self.repo, capture_output=True, text=True, timeout=1200)

    def snapshot(self):
        """Digests of every file a bump may write."""
        result = {}
        for top in ("headers", "Sources/CLlama/include/generated", "Sources/LlamaRaw/generated"):
            for folder, _, names in os.walk(os.path.join(self.repo, top)):
                for n in names:
                    p = os.path.join(folder, n)
                    with open(p, "rb") as f:
                        result[os.path.relpath(p, self.repo)] = hashlib.sha256(f.read()).hexdigest()
        return result

    def diff(self):
        with open(os.path.join(self.repo, ".bump", "api-diff.md")) as f:
            return f.read()

    def manifest(self):
        with open(os.path.join(self.repo, "headers", "manifest.json")) as f:
            return json.load(f)

    def test_1_round_trip_to_an_older_tag_and_back(self):
        before = self.snapshot()

        down = self.bump(OLD_TAG)
        self.assertEqual(down.returncode, 0, down.stderr[-3000:])
        self.assertIn("the package builds against llama.cpp " + OLD_TAG, down.stderr)
        diff = self.diff()
        self.assertIn(f"# llama.cpp API changes: b11434 → {OLD_TAG}", diff)
        removed = diff.split("### Removed")[1].split("##")[0]
        self.assertIn("- `llama_get_causal_attn(const struct llama_context * ctx) -> bool [libllama]`", removed)
        self.assertIn("`llama_batch_ext_init(struct llama_context * ctx) -> struct llama_batch_ext * [libllama]`",
                      removed)
        self.assertIn("- `enum llama_vocab_type`: removed `LLAMA_VOCAB_TYPE_TEST`", diff)
        self.assertIn("- `LLAMA_SESSION_VERSION`: `11 (int)` → `10 (int)`", diff)
        self.assertIn("- `struct llama_embd` removed", diff)
        self.assertIn("- `mtmd_helper_post_decode_callback`: `int32_t (*)(const struct mtmd_helper_embd_batch *, void *)`"
                      " → `int32_t (*)(struct llama_batch, void *)`", diff)
        m = self.manifest()
        self.assertEqual(m["tag"], OLD_TAG)
        x64 = next(a for a in m["release"]["assets"] if a["name"] == f"llama-{OLD_TAG}-bin-ubuntu-x64.tar.gz")
        self.assertEqual(x64.get("sha256"), X64_DIGEST)
        cuda = next(a for a in m["release"]["assets"] if a["name"] == f"llama-{OLD_TAG}-bin-ubuntu-cuda-12.8-x64.tar.gz")
        self.assertEqual(cuda["companions"][0].get("sha256"), CUDART_DIGEST)
        self.assertTrue(all(s["url"].startswith("https://github.com/") for s in m["sources"] if "url" in s))
        with open(os.path.join(self.repo, "Sources", "LlamaRaw", "generated", "LlamaPin.swift")) as f:
            self.assertIn(f'public static let tag = "{OLD_TAG}"', f.read())

        up = self.bump("b11434")
        self.assertEqual(up.returncode, 0, up.stderr[-3000:])
        diff = self.diff()
        added = diff.split("### Added")[1].split("##")[0]
        self.assertIn("- `llama_get_causal_attn(const struct llama_context * ctx) -> bool [libllama]`", added)
        self.assertIn("added `LLAMA_VOCAB_TYPE_TEST = ", diff)
        self.assertEqual(self.snapshot(), before, "a round trip must give back exactly the committed files")

        same = self.bump("b11434", "--no-build")
        self.assertEqual(same.returncode, 0, same.stderr[-3000:])
        self.assertIn("No API changes.", self.diff())
        self.assertEqual(self.snapshot(), before)

    def test_6_tags_with_an_identical_api_are_remembered(self):
        before = self.snapshot()
        self.assertEqual(self.bump("b11401", "--no-build").returncode, 0)
        self.assertIsNone(self.manifest().get("api_compatible_tags"))
        same_api = self.bump("b11393", "--no-build")
        self.assertEqual(same_api.returncode, 0, same_api.stderr[-3000:])
        self.assertIn("No API changes.", self.diff())
        self.assertEqual(self.manifest()["api_compatible_tags"], ["b11401"])
        with open(os.path.join(self.repo, "Sources", "LlamaRaw", "generated", "LlamaPin.swift")) as f:
            self.assertIn('public static let compatibleTags: [String] = ["b11401"]', f.read())
        back = self.bump("b11434", "--no-build")
        self.assertEqual(back.returncode, 0, back.stderr[-3000:])
        self.assertEqual(self.snapshot(), before, "an API change forgets the compatible tags")

    def test_7_handwritten_calls_that_break_are_named(self):
        before = self.snapshot()
        user = os.path.join(self.repo, "Sources", "LlamaRaw", "UsesCausalAttention.swift")
        with open(user, "w") as f:
            f.write("extension LlamaSymbols {\n"
                    "    func isCausal(_ ctx: OpaquePointer?) -> Bool { llama_get_causal_attn(ctx) }\n"
                    "}\n")
        try:
            broken = self.bump(OLD_TAG)
            self.assertNotEqual(broken.returncode, 0)
            self.assertIn(f"the handwritten code no longer compiles against the {OLD_TAG} bindings", broken.stderr)
            self.assertIn("UsesCausalAttention.swift:2:", broken.stderr)
            self.assertIn("llama_get_causal_attn", broken.stderr)
        finally:
            os.remove(user)
        back = self.bump("b11434", "--no-build")
        self.assertEqual(back.returncode, 0, back.stderr[-3000:])
        self.assertEqual(self.snapshot(), before)

    def assert_refused(self, tag, *extra, message):
        before = self.snapshot()
        result = self.bump(tag, "--no-build", *extra)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(message, result.stderr)
        self.assertIn("nothing was changed", result.stderr)
        self.assertEqual(self.snapshot(), before)

    def test_2_a_name_that_is_not_a_tag(self):
        self.assert_refused("latest", message="'latest' is not a llama.cpp tag")

    def test_3_an_unknown_tag(self):
        self.assert_refused("b99999999", message="no source of llama.cpp b99999999 answered")

    def test_4_a_source_whose_digest_does_not_match(self):
        self.assert_refused(OLD_TAG, "--source-sha256", "0" * 64, message="sha256 mismatch")

    def test_5_headers_that_do_not_parse(self):
        self.assert_refused(BROKEN_TAG, message="include/llama.h:")


if __name__ == "__main__":
    unittest.main()
