#!/usr/bin/env bash
# The GPU check of DESIGN.md ("GPU checks"), prepared so that the first task lent the GPU machine
# proves the GPU path with one script. Two halves:
#
#   tools/gpu-check.sh pack [DIR]            here (`make gpu-pack` builds the static programs and runs it)
#   tools/gpu-check.sh build|run [options]   there: no network, no Swift; nvcc, cmake, cc, python3
#
# `pack` writes DIR (default .build/gpu-pack): llama-swift and llama-bench-worker built with
# --static-swift-stdlib and stripped (and llama-helper when the package has it), the pinned
# llama.cpp tree (only what cmake needs), the manifest's release and CUDA cmake flags, and the
# model, as one payload cut into DIR/part1, DIR/part2, ... each under the device tool's 64 MiB
# carry limit (the model alone is 94 MB, the two programs about 20 MB each compressed), with
# every file's sha256.
#
# On the device, with the repository as the working tree (this script, greedy.c and Bench/ travel
# with it), calls in a row while the machine stays warm (ignored files stay between calls):
#   - one call per part but the last, carrying ".build/gpu-pack/partN" and running `true`;
#   - the last part's call runs `tools/gpu-check.sh build`: checks and unpacks the pack and builds
#     the CUDA libraries (minutes; a call may take 10), build.log to $OUT;
#   - a last call runs `tools/gpu-check.sh run`: the checks on what `build` prepared (`run` alone
#     also prepares, when one call has the time). Everything goes to $OUT: environment.txt,
#     build.log, plan.json (the probes and the variant chosen, with reasons), devices.json
#     (`devices --json` through the real path: probe, plan, a bundle of the CUDA build, the
#     backend check in a child, load), greedy.txt (GPU against CPU: greedy.c's token ids with
#     agreement counts, llama-swift's text), bench-gpu.json and bench.log (`llama-swift bench`
#     against the native C program on the GPU), fitting.txt (runs with memory limits and with the
#     free memory the device reports, the GPU memory each held), summary.txt.
#
# build and run options:
#   --dry-run        no CUDA: build (or take) the CPU libraries and go through every step on the
#                    CPU, to test this script on a machine without a GPU
#   --lib-dir DIR    use this unpacked release folder instead of building (with --dry-run)
#   --pack DIR       the pack (default .build/gpu-pack)
#   --out DIR        where the results go (default $OUT, else .build/gpu-check-out)
#   --jobs N         compile jobs (default: all processors)
# GPU_PACK_BIN: where `pack` takes the programs (default .build/release); GPU_PACK_ALLOW_DYNAMIC=1
# lets it take programs linked to the Swift runtime (to test this script here with a debug build).
# GPU_CHECK_CUDA_ARCHS overrides the CUDA architectures (default: the GPU present's, from nvidia-smi);
# GPU_CHECK_BUILD_SECONDS bounds the compile of one call (default 540; `build` again goes on).
# Exit status: 0 when every step passed, 1 when a step failed (summary.txt says which), 2 on usage.
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PACK_LIMIT=$((62 * 1024 * 1024))   # per part, under the 64 MiB carry limit with room for the tree's own files

die() { echo "gpu-check: $*" >&2; exit 2; }
log() { echo "gpu-check: $*" >&2; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# ---------------------------------------------------------------------------------------------
# pack (here)

pack() {
    local dir=${1:-$ROOT/.build/gpu-pack} bin=${GPU_PACK_BIN:-$ROOT/.build/release}
    : "${LLAMA_SOURCE:?set LLAMA_SOURCE (the pinned llama.cpp tree; make gpu-pack exports it)}"
    : "${LLAMA_MODEL:?set LLAMA_MODEL (the SmolLM2 GGUF; make gpu-pack exports it)}"
    local tag
    tag=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["tag"])' "$ROOT/headers/manifest.json") || die "cannot read headers/manifest.json"
    for p in llama-swift llama-bench-worker; do
        [ -x "$bin/$p" ] || die "$bin/$p is missing: swift build -c release --static-swift-stdlib --product $p"
    done
    local stage="$dir/.stage"
    rm -rf "$dir" && mkdir -p "$stage/bin" || die "cannot create $dir"
    for p in llama-swift llama-bench-worker llama-helper; do
        [ -x "$bin/$p" ] || continue
        # A static Swift standard library: nothing but glibc (and libstdc++ for the C++ parts) is needed there.
        if [ -z "${GPU_PACK_ALLOW_DYNAMIC:-}" ] && ldd "$bin/$p" 2>/dev/null | grep -q 'libswiftCore'; then die "$bin/$p links the Swift runtime dynamically: build it with --static-swift-stdlib"; fi
        strip -o "$stage/bin/$p" "$bin/$p" || die "cannot strip $bin/$p"
    done
    # What cmake needs of the tree with the release flags (LLAMA_BUILD_MTMD builds tools/mtmd standalone).
    (cd "$LLAMA_SOURCE" && tar -cf "$stage/source.tar" --transform 's,^,llama.cpp/,' \
        CMakeLists.txt LICENSE cmake ggml src include vendor licenses tools/mtmd) || die "cannot pack $LLAMA_SOURCE"
    # The build flags as data (headers/manifest.json): the release's, and the CUDA variant's on top.
    python3 - "$ROOT/headers/manifest.json" "$stage" <<'EOF' || die "the manifest has no cmake flags (cmake.flags, release_flags, variant_flags.cuda)"
import json, os, sys
cmake = json.load(open(sys.argv[1]))["cmake"]
with open(os.path.join(sys.argv[2], "cmake-flags.txt"), "w") as f:
    f.writelines(flag + "\n" for flag in cmake["flags"] + cmake["release_flags"])
with open(os.path.join(sys.argv[2], "cmake-cuda-flags.txt"), "w") as f:
    f.writelines(flag + "\n" for flag in cmake["variant_flags"]["cuda"])
EOF
    cp "$LLAMA_MODEL" "$stage/"
    {
        echo "tag $tag"
        echo "model $(basename "$LLAMA_MODEL")"
        (cd "$stage" && find . -type f ! -name contents.txt | sort | while read -r f; do echo "file ${f#./} $(sha "$f")"; done)
    } > "$stage/contents.txt"
    # One payload (the programs and the source compress; the model does not), cut into parts that
    # each fit one call's carry.
    (cd "$stage" && tar -cf - bin source.tar cmake-flags.txt cmake-cuda-flags.txt contents.txt) | xz -T2 -6 > "$dir/programs.tar.xz" || die "cannot compress the programs"
    local payload="$dir/payload.tar"
    tar -cf "$payload" -C "$dir" programs.tar.xz -C "$stage" "$(basename "$LLAMA_MODEL")" || die "cannot write the payload"
    rm -rf "$stage" "$dir/programs.tar.xz"
    local size parts i
    size=$(stat -c %s "$payload")
    parts=$(( (size + PACK_LIMIT - 1) / PACK_LIMIT ))
    for ((i = 1; i <= parts; i++)); do
        mkdir -p "$dir/part$i"
        tail -c +$(( (i - 1) * PACK_LIMIT + 1 )) "$payload" | head -c "$PACK_LIMIT" > "$dir/part$i/payload.$i"
    done
    {
        echo "parts $parts"
        echo "payload $(sha "$payload")"
        for ((i = 1; i <= parts; i++)); do echo "part $i $(sha "$dir/part$i/payload.$i")"; done
    } > "$dir/pack.txt"
    for ((i = 1; i <= parts; i++)); do cp "$dir/pack.txt" "$dir/part$i/pack.txt"; done
    rm -f "$payload" "$dir/pack.txt"
    log "packed $dir: $size bytes in $parts part(s) of at most $PACK_LIMIT bytes; on the device carry each of:"
    for ((i = 1; i <= parts; i++)); do log "  ${dir#"$ROOT"/}/part$i ($(du -sb "$dir/part$i" | cut -f1) bytes)"; done
}

# ---------------------------------------------------------------------------------------------
# run (there)

DRY=0 PREBUILT="" PACKDIR="$ROOT/.build/gpu-pack" OUTDIR="${OUT:-}" JOBS=""
FAILED=()
step_ok() { echo "ok    $1" >> "$OUTDIR/summary.txt"; log "ok: $1"; }
step_fail() { echo "FAIL  $1" >> "$OUTDIR/summary.txt"; log "FAILED: $1"; FAILED+=("$1"); }
note() { echo "      $1" >> "$OUTDIR/summary.txt"; }

# Writes a bundle (Sources/Llama/Provisioning/Bundle.swift): bundle.json and one entry per variant,
# each pointing at a release folder; every file's sha256, links as "-> target".
write_bundle() {  # BUNDLE_DIR TAG (VARIANT FOLDER)...
    local bundle=$1 tag=$2
    shift 2
    mkdir -p "$bundle"
    python3 - "$bundle" "$tag" "$@" <<'EOF'
import hashlib, json, os, shutil, sys
bundle, tag, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
entries = []
for variant, folder in zip(rest[0::2], rest[1::2]):
    rel = f"linux-x64-{variant}/llama-{tag}"
    dest = os.path.join(bundle, rel)
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(folder, dest, symlinks=True)
    files = {}
    for base, dirs, names in os.walk(dest):
        for n in names + [d for d in dirs if os.path.islink(os.path.join(base, d))]:
            p = os.path.join(base, n)
            r = os.path.relpath(p, dest)
            if os.path.islink(p):
                files[r] = "-> " + os.readlink(p)
            elif os.path.isfile(p):
                files[r] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    entries.append({"platform": {"os": "linux", "arch": "x64"}, "variant": variant, "path": rel, "files": files})
with open(os.path.join(bundle, "bundle.json"), "w") as f:
    json.dump({"tag": tag, "entries": entries}, f, indent=2, sort_keys=True)
EOF
}

# The greedy text of `llama-swift run` (it prints text, not token ids; greedy.c gives the ids).
swift_text() {  # LIB_DIR PROMPT N
    timeout 300 "$BIN/llama-swift" run --raw -p "$2" --temp 0 -n "$3" -t "$THREADS" -m "$MODEL" --lib-dir "$1" 2>>"$OUTDIR/greedy.log"
}

text_agreement() {  # A B -> "identical (N characters)" or "first difference at character P of N"
    python3 - "$1" "$2" <<'EOF'
import sys
a, b = sys.argv[1], sys.argv[2]
if a == b:
    print(f"identical ({len(a)} characters)" if a else "both empty")
else:
    p = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    print(f"first difference at character {p} of {max(len(a), len(b))}")
EOF
}

agreement() {  # A_IDS B_IDS -> "equal positions E of N, common prefix P"
    python3 - "$1" "$2" <<'EOF'
import sys
a, b = sys.argv[1].split(), sys.argv[2].split()
n = max(len(a), len(b))
equal = sum(1 for x, y in zip(a, b) if x == y)
prefix = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
print(f"{equal} of {n} positions equal, common prefix {prefix}" + (" (identical)" if a == b and a else ""))
EOF
}

# The parts put together and unpacked into DIR, every file checked against its sha256.
unpack_pack() {  # DIR
    local unpacked=$1 parts i bad=0 part want
    [ -f "$PACKDIR/part1/pack.txt" ] || die "$PACKDIR/part1/pack.txt is missing: make gpu-pack here, and carry .build/gpu-pack/part1 (then part2, ...) in calls before this one"
    parts=$(awk '$1 == "parts" { print $2 }' "$PACKDIR/part1/pack.txt")
    for ((i = 1; i <= parts; i++)); do
        part="$PACKDIR/part$i/payload.$i"
        want=$(awk -v i="$i" '$1 == "part" && $2 == i { print $3 }' "$PACKDIR/part1/pack.txt")
        [ -f "$part" ] || die "$part is missing: carry .build/gpu-pack/part$i in a call before this one (each part fits one call's carry)"
        [ "$(sha "$part")" = "$want" ] || die "$part does not match pack.txt: make gpu-pack again and carry every part"
    done
    mkdir -p "$unpacked"
    for ((i = 1; i <= parts; i++)); do cat "$PACKDIR/part$i/payload.$i"; done | tar -xf - -C "$unpacked" || die "cannot unpack the payload"
    xz -dc "$unpacked/programs.tar.xz" | tar -xf - -C "$unpacked" && rm "$unpacked/programs.tar.xz" || die "cannot unpack the programs"
    while read -r _ f want; do
        [ "$(sha "$unpacked/$f")" = "$want" ] || { log "$f does not match contents.txt"; bad=1; }
    done < <(grep '^file ' "$unpacked/contents.txt")
    [ $bad -eq 0 ] || die "the pack is damaged: make gpu-pack again and carry every part"
    step_ok "pack verified: $parts part(s), $(grep -E '^(tag|model) ' "$unpacked/contents.txt" | cut -d' ' -f2 | tr '\n' ' ')$(ls "$unpacked/bin" | tr '\n' ' ')"
}

# The libraries in the release layout (the contents of build/bin and LICENSE under llama-<tag>/):
# the manifest's release flags, and its CUDA flags for the GPU (the architecture of the GPU present).
build_libraries() {  # UNPACKED SRC RELEASE
    local unpacked=$1 src=$2 release=$3 work
    work=$(dirname "$(dirname "$release")")
    [ -d "$src" ] || { mkdir -p "$(dirname "$src")" && tar -xf "$unpacked/source.tar" -C "$(dirname "$src")"; } || die "cannot unpack the source"
    if [ -n "$PREBUILT" ]; then
        [ $DRY -eq 1 ] || die "--lib-dir is for --dry-run"
        mkdir -p "$(dirname "$release")" && cp -a "$PREBUILT" "$release"
        step_ok "libraries taken from $PREBUILT (dry run)"
        return
    fi
    local flags=()
    mapfile -t flags < "$unpacked/cmake-flags.txt"
    if [ $DRY -eq 0 ]; then
        mapfile -t -O "${#flags[@]}" flags < "$unpacked/cmake-cuda-flags.txt"
        # The architecture of the GPU present (nvidia-smi's compute capability, e.g. 9.0 -> 90), else cmake's native.
        local archs=${GPU_CHECK_CUDA_ARCHS:-$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d ' .')}
        flags+=("-DCMAKE_CUDA_ARCHITECTURES=${archs:-native}")
    fi
    # The log goes straight to $OUT: a call stopped at its time limit still brings it back.
    local log="$OUTDIR/build.log" budget=${GPU_CHECK_BUILD_SECONDS:-540} t0=$SECONDS status
    echo "cmake flags: ${flags[*]}" >> "$log"
    cmake -S "$src" -B "$work/build" "${flags[@]}" >> "$log" 2>&1 \
        && timeout "$budget" cmake --build "$work/build" -j "$JOBS" >> "$log" 2>&1
    status=$?
    cat "$log" >> "$work/build.log"
    if [ $status -eq 0 ]; then
        mkdir -p "$release" && cp -a "$work/build/bin/." "$release/" && cp "$src/LICENSE" "$release/"
        step_ok "libraries built in $((SECONDS - t0)) s ($([ $DRY -eq 1 ] && echo CPU only || echo "CUDA ${flags[-1]}"))"
    elif [ $status -eq 124 ]; then
        step_fail "the build did not finish in $budget s: run \`tools/gpu-check.sh build\` again, it goes on where it stopped (build.log)"
        finish
    else
        step_fail "libraries did not build (build.log)"
        tail -40 "$log" >&2
        finish
    fi
}

run_check() {  # build|run [options]
    local phase=$1
    shift
    while [ $# -gt 0 ]; do
        case $1 in
            --dry-run) DRY=1 ;;
            --lib-dir) PREBUILT=$2; shift ;;
            --pack) PACKDIR=$2; shift ;;
            --out) OUTDIR=$2; shift ;;
            --jobs) JOBS=$2; shift ;;
            *) die "unknown option $1 (see the top of $0)" ;;
        esac
        shift
    done
    [ -n "$OUTDIR" ] || OUTDIR="$ROOT/.build/gpu-check-out"
    mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"
    OUTDIR=$(cd "$OUTDIR" && pwd)
    : > "$OUTDIR/summary.txt"
    JOBS=${JOBS:-$(nproc)}
    THREADS=$(( $(nproc) < 8 ? $(nproc) : 8 ))
    local work="$ROOT/.build/gpu-check-work" kind
    kind=$([ $DRY -eq 1 ] && echo cpu || echo cuda)

    # The machine.
    {
        echo "date: $(date -u +%FT%TZ)"; uname -a; echo "processors: $(nproc)"
        command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total,memory.free,compute_cap --format=csv
        command -v nvidia-smi >/dev/null && nvidia-smi | head -5
        command -v nvcc >/dev/null && nvcc --version | tail -2
        cmake --version | head -1; cc --version | head -1; python3 --version
    } > "$OUTDIR/environment.txt" 2>&1
    for tool in cmake cc python3 sha256sum; do command -v $tool >/dev/null || die "$tool is missing on this machine"; done
    if [ $DRY -eq 0 ]; then
        command -v nvcc >/dev/null || die "nvcc is missing (or use --dry-run)"
        command -v nvidia-smi >/dev/null || die "nvidia-smi is missing: no NVIDIA driver (or use --dry-run)"
        # The CUDA runtime libraries the build links (libcudart, libcublas), where the toolkit keeps them.
        local cuda_home
        cuda_home=$(dirname "$(dirname "$(readlink -f "$(command -v nvcc)")")")
        export LD_LIBRARY_PATH="$cuda_home/lib64${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi

    # The pack and the libraries, unless an earlier call (`build`) prepared them for the same kind.
    local unpacked="$work/pack" tag model_name
    local src="$work/src/llama.cpp"
    if [ "$(cat "$work/.ready" 2>/dev/null)" = "$kind" ]; then
        tag=$(awk '$1 == "tag" { print $2 }' "$unpacked/contents.txt")
        step_ok "the pack and the $kind libraries prepared by an earlier call are reused ($work)"
    else
        # A build cut short by an earlier call's time limit goes on where it stopped.
        if [ "$(cat "$work/.unpacked" 2>/dev/null)" = "$kind" ]; then
            step_ok "the pack unpacked by an earlier call is reused; the build goes on"
        else
            rm -rf "$work" && mkdir -p "$work" || die "cannot create $work"
            unpack_pack "$unpacked"
            echo "$kind" > "$work/.unpacked"
        fi
        tag=$(awk '$1 == "tag" { print $2 }' "$unpacked/contents.txt")
        build_libraries "$unpacked" "$src" "$work/release/llama-$tag"
        echo "$kind" > "$work/.ready"
    fi
    [ -f "$OUTDIR/build.log" ] || { [ -f "$work/build.log" ] && cp "$work/build.log" "$OUTDIR/build.log"; }
    model_name=$(awk '$1 == "model" { print $2 }' "$unpacked/contents.txt")
    BIN="$unpacked/bin"
    MODEL="$unpacked/$model_name"
    local release="$work/release/llama-$tag" cpu="$work/cpu/llama-$tag"
    ls -l "$release" > "$OUTDIR/release-files.txt"
    if [ $DRY -eq 0 ]; then
        [ -e "$release/libggml-cuda.so" ] && step_ok "libggml-cuda.so is in the release folder" || step_fail "no libggml-cuda.so in the release folder"
    fi
    # The CPU reference: the same folder without the CUDA backend.
    rm -rf "$cpu" && mkdir -p "$(dirname "$cpu")" && cp -a "$release" "$cpu" && rm -f "$cpu"/libggml-cuda.so*
    [ "$phase" = run ] || finish

    # The plan: probes, candidates, rejections, the chosen variant and why.
    if "$BIN/llama-swift" devices --no-load --json > "$OUTDIR/plan.json" 2> "$OUTDIR/plan.log"; then
        step_ok "devices --no-load --json (plan.json)"
    else
        step_fail "devices --no-load --json failed (plan.log)"
    fi
    local variant
    variant=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); c=d["selection"]["candidates"]; print(c[0]["variant"] if c else "")' "$OUTDIR/plan.json" 2>/dev/null)
    note "plan: first candidate ${variant:-none}"
    if [ $DRY -eq 0 ]; then
        case $variant in cuda*) step_ok "the plan chooses $variant" ;; *) step_fail "the plan does not choose a CUDA build (first: ${variant:-none}); see plan.json" ;; esac
    fi

    # The real path: .auto probes, plans, finds the build in a bundle, checks it in a child, loads it.
    local bundle="$work/bundle" gpu_index="" gpu_free=0
    if [ -n "$variant" ] && [ "$variant" != cpu ]; then write_bundle "$bundle" "$tag" "$variant" "$release" cpu "$cpu"; else write_bundle "$bundle" "$tag" cpu "$cpu"; fi
    local helper="$BIN/llama-swift"
    [ -x "$BIN/llama-helper" ] && helper="$BIN/llama-helper"
    if env -u LLAMA_SWIFT_LIB_DIR LLAMA_SWIFT_BUNDLE_DIR="$bundle" LLAMA_SWIFT_OFFLINE=1 LLAMA_SWIFT_CACHE="$work/cache" \
        LLAMA_SWIFT_HELPER="$helper" timeout 300 "$BIN/llama-swift" devices --json > "$OUTDIR/devices.json" 2> "$OUTDIR/devices.log"; then
        step_ok "devices --json through probe, plan, bundle, child check and load (devices.json)"
    else
        step_fail "devices --json through the bundle failed (devices.log)"
    fi
    timeout 300 "$BIN/llama-swift" devices --json --lib-dir "$release" > "$OUTDIR/devices-libdir.json" 2> "$OUTDIR/devices-libdir.log" \
        || step_fail "devices --json --lib-dir the release folder failed (devices-libdir.log)"
    read -r gpu_index gpu_free < <(python3 - "$OUTDIR/devices.json" "$OUTDIR/devices-libdir.json" <<'EOF'
import json, sys
for path in sys.argv[1:]:
    try: doc = json.load(open(path))
    except (OSError, ValueError): continue
    gpus = [d for d in doc.get("devices", []) if d.get("kind") in ("gpu", "igpu") and d.get("backend") != "RPC"]
    if gpus:
        print(gpus[0]["index"], gpus[0].get("memoryFree", 0)); break
else:
    print("-", 0)
EOF
)
    [ "$gpu_index" != "-" ] || gpu_index=""
    local loaded_variant
    loaded_variant=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("variant") or "")' "$OUTDIR/devices.json" 2>/dev/null)
    note "devices: variant loaded ${loaded_variant:-none}, GPU device ${gpu_index:-none}, free $gpu_free bytes"
    if [ $DRY -eq 0 ]; then
        [ -n "$gpu_index" ] && step_ok "a GPU device is registered (index $gpu_index)" || step_fail "no GPU device registered (devices.json)"
        case $loaded_variant in cuda*) step_ok "the runtime loaded $loaded_variant" ;; *) step_fail "the runtime loaded ${loaded_variant:-nothing}, not a CUDA build" ;; esac
    fi

    # Greedy generation, GPU against CPU: native C (greedy.c) and llama-swift, token ids compared.
    local greedy="$work/greedy" n=64
    : > "$OUTDIR/greedy.txt"; : > "$OUTDIR/greedy.log"
    if cc -std=c11 -O2 -I "$src/include" -I "$src/ggml/include" "$ROOT/Tests/LlamaRawTests/Native/greedy.c" -o "$greedy" \
        -L "$release" -lllama -lggml -lggml-base -Wl,-rpath,"$release" 2>> "$OUTDIR/greedy.log"; then
        step_ok "greedy.c compiled"
    else
        step_fail "greedy.c did not compile (greedy.log)"
    fi
    local prompts=("The capital of France is" "Once upon a time" "def fibonacci(n):")
    local all_native=1 all_swift=1
    for p in "${prompts[@]}"; do
        local ng nc sg sc
        ng=$(timeout 300 "$greedy" "$release" "$MODEL" "$p" "$n" "$THREADS" 2>> "$OUTDIR/greedy.log" | tail -1 | sed 's/^[^:]*: *//')
        nc=$(timeout 300 "$greedy" "$cpu" "$MODEL" "$p" "$n" "$THREADS" 2>> "$OUTDIR/greedy.log" | tail -1 | sed 's/^[^:]*: *//')
        sg=$(swift_text "$release" "$p" "$n")
        sc=$(swift_text "$cpu" "$p" "$n")
        {
            echo "prompt: $p"
            echo "  native token ids, gpu: $ng"; echo "  native token ids, cpu: $nc"
            echo "  native gpu vs cpu: $(agreement "$ng" "$nc")"
            echo "  llama-swift text, gpu: $(printf %q "$sg")"; echo "  llama-swift text, cpu: $(printf %q "$sc")"
            echo "  llama-swift gpu vs cpu: $(text_agreement "$sg" "$sc")"
        } >> "$OUTDIR/greedy.txt"
        [ -n "$ng" ] && [ "$ng" = "$nc" ] || all_native=0
        [ -n "$sg" ] && [ "$sg" = "$sc" ] || all_swift=0
        [ -n "$ng" ] && [ -n "$sg" ] || step_fail "greedy run produced nothing for \"$p\" (greedy.log)"
        note "greedy \"$p\": native ids $(agreement "$ng" "$nc"); llama-swift text $(text_agreement "$sg" "$sc")"
    done
    [ $all_native -eq 1 ] && step_ok "native greedy token ids identical on GPU and CPU" || note "native greedy token ids differ between GPU and CPU (numerics; see greedy.txt)"
    [ $all_swift -eq 1 ] && step_ok "llama-swift greedy text identical on GPU and CPU" || note "llama-swift greedy text differs between GPU and CPU (numerics; see greedy.txt)"

    # llama-swift bench on the GPU against the native C program (Bench/native_bench.c), same libraries.
    local runs=5 generate=128
    [ $DRY -eq 0 ] || { runs=1; generate=16; }
    local rel_src=${src#"$ROOT"/}
    if timeout 900 "$BIN/llama-swift" bench --lib-dir "$release" --model "$MODEL" --package-root "$ROOT" --headers "$rel_src" \
        --threads "$THREADS" --runs $runs --generate $generate --json "$OUTDIR/bench-gpu.json" > "$OUTDIR/bench.log" 2>&1; then
        step_ok "bench on $([ $DRY -eq 1 ] && echo the CPU build || echo the GPU) (bench-gpu.json)"
        grep -iE 'ratio|tokens/s|same' "$OUTDIR/bench.log" | tail -12 | sed 's/^/      /' >> "$OUTDIR/summary.txt"
    else
        step_fail "bench failed (bench.log)"
    fi

    # Layer fitting: memory limits below and above the model, and the free memory the device reports.
    : > "$OUTDIR/fitting.txt"
    echo "device $gpu_index reports $gpu_free bytes free" >> "$OUTDIR/fitting.txt"
    if [ -n "$gpu_index" ] || [ $DRY -eq 1 ]; then
        local dev=()
        [ -n "$gpu_index" ] && dev=(--device "$gpu_index")
        for limit in 0.02 0.05 0.08 0.5 ""; do
            local args=() label="free memory"
            [ -n "$limit" ] && { args=(--memory-limit "$limit"); label="limit $limit GiB"; }
            # llama.cpp's "offloaded N/M layers" line is below the CLI's log threshold: the GPU memory
            # the run holds, sampled from nvidia-smi while it runs, shows what was placed there.
            local log="$work/fitting.log" status peak=0 used
            timeout 300 "$BIN/llama-swift" run --raw -p "The capital of France is" --temp 0 -n 128 \
                -t "$THREADS" -m "$MODEL" --lib-dir "$release" "${dev[@]}" "${args[@]}" > "$log" 2>&1 &
            local pid=$!
            while kill -0 "$pid" 2>/dev/null; do
                if command -v nvidia-smi >/dev/null; then
                    used=$(nvidia-smi --query-compute-apps=pid,used_memory --format=csv,noheader,nounits 2>/dev/null \
                        | awk -F', *' -v p="$pid" '$1 == p { print $2 }')
                    [ -n "$used" ] && [ "$used" -gt "$peak" ] && peak=$used
                fi
                sleep 0.2
            done
            wait "$pid"
            status=$?
            {
                echo "== $label: exit $status, peak GPU memory of the process ${peak} MiB"
                grep -iE 'error|offload' "$log" | head -5
                tail -2 "$log"
            } >> "$OUTDIR/fitting.txt"
            note "fitting, $label: exit $status, peak GPU memory ${peak} MiB, $(grep -oE '[0-9.]+ tokens/s' "$log" | tail -1)"
            [ $status -eq 0 ] || step_fail "run with $label failed (fitting.txt)"
        done
        step_ok "fitting runs done (fitting.txt)"
    else
        step_fail "no GPU device to fit layers to"
    fi
    finish
}

finish() {
    if [ ${#FAILED[@]} -eq 0 ]; then
        echo "every step passed" >> "$OUTDIR/summary.txt"
    else
        echo "${#FAILED[@]} step(s) failed" >> "$OUTDIR/summary.txt"
    fi
    cat "$OUTDIR/summary.txt"
    [ ${#FAILED[@]} -eq 0 ] && exit 0 || exit 1
}

# One compound command, read whole before it runs: editing this file while it runs cannot change what runs.
{
    case ${1:-} in
        pack) shift; pack "$@" ;;
        build | run) run_check "$@" ;;
        *) die "usage: $0 pack [DIR] | build|run [--dry-run] [--lib-dir DIR] [--pack DIR] [--out DIR] [--jobs N]" ;;
    esac
    exit
}
