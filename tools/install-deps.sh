#!/usr/bin/env bash
# Installs the system packages the build and the tests need, when they are missing:
# cmake and a C++ compiler (to build llama.cpp from the pinned source) and libclang-dev (for
# the generator), zlib1g-dev (release archives are unpacked with zlib), curl (the
# download tests compare with it and read the loopback mirror). Needs root (or sudo) only when something is missing.
# Then the Python modules the tests use as references: jinja2 (the chat-template renderer, set
# up as transformers sets it up by tools/jinja_reference.py) and jsonschema (the validator of
# grammar-constrained output), from PyPI with pip, or from Debian's python3-jinja2 and
# python3-jsonschema where pip cannot install.
set -euo pipefail
PYTHON="${PYTHON:-python3}"
JINJA2_VERSION=3.1.6
JSONSCHEMA_VERSION=4.26.0
packages=(cmake g++ libclang-dev zlib1g-dev curl)
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

# A Python module the tests use as a reference: checked with CHECK, installed with pip at the
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
