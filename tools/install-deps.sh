#!/usr/bin/env bash
# Installs the system packages the build and the tests need, when they are missing:
# cmake and a C++ compiler (to build llama.cpp from the pinned source) and libclang-dev (for
# the generator), zlib1g-dev (release archives are unpacked with zlib), curl (the
# download tests compare with it and read the loopback mirror). Needs root (or sudo) only when something is missing.
set -euo pipefail
packages=(cmake g++ libclang-dev zlib1g-dev curl)
missing=()
for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
    echo "install-deps: missing ${missing[*]}, and this is not a Debian-like system: install them yourself" >&2
    exit 1
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
