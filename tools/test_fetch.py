"""Tests of tools/fetch.py's verification and extraction, on real files in a temporary folder."""

import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fetch  # noqa: E402


def digest(data):
    return hashlib.sha256(data).hexdigest()


class VerificationTests(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="fetch-test-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, relative, data):
        path = os.path.join(self.dir, relative)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_header_mismatch_names_the_file_and_both_digests(self):
        good, bad = b"int a;\n", b"int b;\n"
        self.write("include/x.h", bad)
        manifest = {"headers": [{"path": "include/x.h", "sha256": digest(good), "library": "x"}]}
        with self.assertRaises(fetch.FetchError) as caught:
            fetch.check_headers(self.dir, manifest)
        message = str(caught.exception)
        self.assertIn("include/x.h", message)
        self.assertIn(digest(good), message)
        self.assertIn(digest(bad), message)
        self.assertFalse(fetch.headers_valid(self.dir, manifest))

    def test_missing_header_is_named(self):
        manifest = {"headers": [{"path": "include/y.h", "sha256": digest(b""), "library": "x"}]}
        with self.assertRaisesRegex(fetch.FetchError, "include/y.h: not in the source tree"):
            fetch.check_headers(self.dir, manifest)

    def test_a_corrupt_download_is_removed(self):
        cache = fetch.Cache(self.dir, {"tag": "b1"})
        expected = digest(b"the real archive")

        def fetcher(dest):
            with open(dest, "wb") as f:
                f.write(b"something else")

        with self.assertRaisesRegex(fetch.FetchError, "sha256 mismatch"):
            fetch.fetch_verified(cache, "a.tar.gz", fetcher, expected, "a.tar.gz")
        self.assertFalse(os.path.exists(os.path.join(cache.downloads, "a.tar.gz")))

    def test_a_valid_download_is_reused(self):
        cache = fetch.Cache(self.dir, {"tag": "b1"})
        data = b"archive"
        calls = []

        def fetcher(dest):
            calls.append(dest)
            with open(dest, "wb") as f:
                f.write(data)

        first = fetch.fetch_verified(cache, "a.tar.gz", fetcher, digest(data), "a.tar.gz")
        second = fetch.fetch_verified(cache, "a.tar.gz", fetcher, digest(data), "a.tar.gz")
        self.assertEqual(first, second)
        self.assertEqual(len(calls), 1)

    def test_extraction_refuses_paths_outside_the_target(self):
        archive = os.path.join(self.dir, "evil.tar.gz")
        with tarfile.open(archive, "w:gz") as tar:
            info = tarfile.TarInfo("../escaped.txt")
            payload = b"x"
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
        target = os.path.join(self.dir, "out")
        os.makedirs(target)
        with self.assertRaises(tarfile.TarError):
            fetch.safe_extract_tar(archive, target)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "escaped.txt")))

    def test_packed_archive_has_the_release_layout(self):
        bin_dir = os.path.join(self.dir, "bin")
        self.write("bin/libllama.so.0.6.0", b"\x7fELF")
        os.symlink("libllama.so.0.6.0", os.path.join(bin_dir, "libllama.so"))
        license_path = self.write("LICENSE", b"license")
        archive = os.path.join(self.dir, "dist", "llama-b1-bin-ubuntu-x64.tar.gz")
        fetch.pack_release(bin_dir, license_path, archive, "b1")
        with tarfile.open(archive) as tar:
            names = tar.getnames()
            self.assertEqual(names[0], "llama-b1")
            self.assertIn("llama-b1/libllama.so.0.6.0", names)
            self.assertIn("llama-b1/LICENSE", names)
            self.assertTrue(tar.getmember("llama-b1/libllama.so").issym())

    def test_pinned_manifest_is_complete(self):
        manifest = fetch.load_manifest(os.path.join(fetch.ROOT, "headers", "manifest.json"))
        libraries = {l["name"] for l in manifest["libraries"]}
        self.assertTrue(all(h["library"] in libraries for h in manifest["headers"]))
        self.assertTrue(all(len(h["sha256"]) == 64 for h in manifest["headers"]))
        self.assertTrue(any(s.get("sha256") for s in manifest["sources"]))
        self.assertTrue(all(lib in libraries for lib in manifest["symbol_libraries"].values()))


if __name__ == "__main__":
    unittest.main()
