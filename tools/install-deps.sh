#!/usr/bin/env bash
# Installs what the build and the tests need, when it is missing. Needs root (or sudo) only then.
# System packages: cmake and a C/C++ compiler (llama.cpp from the pinned source, the native
# reference programs the tests compile with cc), libclang-dev (the generator; any LLVM version:
# the Makefile finds the newest /usr/lib/llvm-N), zlib1g-dev (release archives are unpacked with
# zlib), curl (the download tests compare with it and read the loopback mirror), git (the bump
# tests list the tree), make, python3 with pip (it installs the Python modules below), and
# sha256sum (coreutils). The pinned sdist and the model wheel are fetched by llama-swift itself.
# Python modules: PyYAML (tools/test_repo_config.py reads the repository's workflows),
# jinja2 (the chat-template reference, set up as transformers sets it up by
# tools/jinja_reference.py) and jsonschema (the validator of grammar-constrained output), from
# PyPI with pip, or from Debian's python3-yaml, python3-jinja2 and python3-jsonschema where pip
# cannot install (an externally managed Python).
# Every other module the tools and tests import is in Python's standard library.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
JINJA2_VERSION=3.1.6
JSONSCHEMA_VERSION=4.26.0
PYYAML_VERSION=6.0.3
OPENAI_VERSION=3.57.0
packages=(cmake gcc g++ libclang-dev zlib1g-dev curl git make python3 python3-pip coreutils)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
if [ ${#missing[@]} -gt 0 ]; then
    if ! command -v apt-get >/dev/null; then
        echo "install-deps: missing ${missing[*]}, and this is not a Debian-like system: install them yourself" >&2
        exit 1
    fi
    echo "install-deps: installing ${missing[*]}" >&2
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# pip for $PYTHON (which may be another Python than Debian's): its own ensurepip first, then Debian's python3-pip.
if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    echo "install-deps: pip is missing for $PYTHON; trying ensurepip" >&2
    "$PYTHON" -m ensurepip --upgrade >/dev/null 2>&1 || true
    if ! "$PYTHON" -m pip --version >/dev/null 2>&1 && command -v apt-get >/dev/null; then
        $sudo apt-get update -qq
        $sudo apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
    fi
    "$PYTHON" -m pip --version >/dev/null 2>&1 || { echo "install-deps: $PYTHON has no pip (python3 -m pip): install python3-pip, or run with PYTHON=a Python that has pip" >&2; exit 1; }
fi

# A Python module the tests use: checked with CHECK, installed with pip at the
# pinned version, else from Debian's package; a clear failure when neither works.
python_module() {  # NAME VERSION DEBIAN_PACKAGE MINIMUM CHECK
    local name=$1 version=$2 debian=$3 minimum=$4 check=$5
    "$PYTHON" -c "$check" 2>/dev/null && return 0
    echo "install-deps: installing $name==$version for $PYTHON" >&2
    if ! "$PYTHON" -m pip install --quiet "$name==$version"; then
        if command -v apt-get >/dev/null; then
            echo "install-deps: pip could not install $name; trying Debian's $debian" >&2
            $sudo apt-get update -qq
            $sudo apt-get install -y -qq --no-install-recommends "$debian" >/dev/null
        fi
    fi
    "$PYTHON" -c "$check" 2>/dev/null || { echo "install-deps: $name >= $minimum is still not importable by $PYTHON: install it yourself (pip install $name==$version)" >&2; exit 1; }
}

# jinja2 3.1 or later (transformers requires 3.1.0); a fresh machine gets the pinned version.
python_module jinja2 "$JINJA2_VERSION" python3-jinja2 3.1 \
    'import sys, jinja2; sys.exit(tuple(map(int, jinja2.__version__.split(".")[:2])) < (3, 1))'
# jsonschema 4 or later (Draft 2020-12, validator_for, FORMAT_CHECKER); a fresh machine gets the pinned version.
python_module jsonschema "$JSONSCHEMA_VERSION" python3-jsonschema 4 \
    'import sys, importlib.metadata as m, jsonschema; sys.exit(int(m.version("jsonschema").split(".")[0]) < 4)'
# PyYAML 5.1 or later (safe_load of the release workflow); a fresh machine gets the pinned version.
python_module PyYAML "$PYYAML_VERSION" python3-yaml 5.1 \
    'import sys, yaml; sys.exit(tuple(map(int, yaml.__version__.split(".")[:2])) < (5, 1))'
# The official openai client (1.x or later), which LlamaServerTests runs against `llama-swift serve`.
python_module openai "$OPENAI_VERSION" python3-openai 1 \
    'import sys, openai; sys.exit(int(openai.__version__.split(".")[0]) < 1)'
