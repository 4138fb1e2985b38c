#!/usr/bin/env bash
# Runs libFuzzer targets of Fuzz/ (built by `make fuzz-build`) for a bounded time each and prints,
# per target: executions, executions per second, coverage (cov and ft of libFuzzer's last status
# line), corpus size and crashes. Usage: Fuzz/run.sh SECONDS TARGET... (targets: grammar state gguf
# sampler schema template server). Needs LLAMA_LIB_DIR, LLAMA_MODEL and LLAMA_SOURCE (the Makefile exports
# them). Each target's corpus is .build-fuzz/corpus/<target>, seeded at run time by the target itself
# (LLAMA_FUZZ_SEEDS) from the pinned source, the model and states of a real context; crashes, hangs
# and out-of-memory inputs are kept in .build-fuzz/crashes/<target>/. Exit status 1 when any target
# found one; a summary is written to .build-fuzz/summary.txt. FUZZ_KEEP_GOING=1 runs libFuzzer's fork mode,
# which keeps fuzzing after a finding (every finding is kept), to see all that a run can find.
set -uo pipefail

seconds=${1:?usage: Fuzz/run.sh SECONDS TARGET...}
shift
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/.build-fuzz
bin=$out/release
: "${LLAMA_LIB_DIR:?set LLAMA_LIB_DIR (make paths)}" "${LLAMA_MODEL:?set LLAMA_MODEL}" "${LLAMA_SOURCE:?set LLAMA_SOURCE}"
export LLAMA_LIB_DIR LLAMA_MODEL LLAMA_SOURCE
# libFuzzer handles deadly signals (and keeps the input); the Swift runtime's backtracer must not take them first.
export SWIFT_BACKTRACE=enable=no

failed=0
summary=()
for target in "$@"; do
  exe=$bin/fuzz-$target
  [ -x "$exe" ] || { echo "error: $exe is not built: make fuzz-build" >&2; exit 2; }
  corpus=$out/corpus/$target
  crashes=$out/crashes/$target
  log=$out/logs/$target.log
  mkdir -p "$corpus" "$crashes" "$out/logs"
  # Seeds from real inputs, written by the target (its LLVMFuzzerInitialize) and merged into the corpus.
  if ! LLAMA_FUZZ_SEEDS="$corpus" "$exe" > "$out/logs/$target.seeds.log" 2>&1; then
    cat "$out/logs/$target.seeds.log" >&2
    echo "error: fuzz-$target could not write its seeds" >&2
    exit 2
  fi
  dict=()
  [ -f "$root/Fuzz/dicts/$target.dict" ] && dict=(-dict="$root/Fuzz/dicts/$target.dict")
  timeout=10
  [ "$target" = gguf ] && timeout=30
  # What libFuzzer keeps for a finding (slow-unit-* files are not findings).
  findings() { ls "$crashes" | grep -E '^(crash|timeout|oom|leak)-' | wc -l; }
  before=$(findings)
  echo "fuzz-$target: $seconds s, corpus $corpus ($(ls "$corpus" | wc -l) inputs), log $log" >&2
  keep_going=()
  [ "${FUZZ_KEEP_GOING:-0}" = 1 ] && keep_going=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  # A hard bound above libFuzzer's own, in case a target hangs outside an input.
  timeout --signal=KILL $((seconds + 300)) "$exe" "$corpus" -max_total_time="$seconds" -print_final_stats=1 \
    -timeout="$timeout" -rss_limit_mb=6144 -artifact_prefix="$crashes/" "${dict[@]}" "${keep_going[@]}" > "$log" 2>&1
  status=$?
  execs=$(grep 'stat::number_of_executed_units:' "$log" | tail -1 | awk '{print $2}')
  rate=$(grep 'stat::average_exec_per_sec:' "$log" | tail -1 | awk '{print $2}')
  last=$(grep -E '^#[0-9]+.*cov: [0-9]+' "$log" | tail -1)
  # Fork mode prints no final stats: its last status line has the count and the rate.
  [ -z "$execs" ] && execs=$(sed -nE 's/^#([0-9]+):.*/\1/p' <<< "$last")
  [ -z "$rate" ] && rate=$(sed -nE 's/.*exec\/s: ([0-9]+).*/\1/p' <<< "$last")
  cov=$(sed -nE 's/.*cov: ([0-9]+).*/\1/p' <<< "$last")
  ft=$(sed -nE 's/.*ft: ([0-9]+).*/\1/p' <<< "$last")
  corpus_size=$(sed -nE 's/.*corp: ([0-9]+(\/[0-9a-zA-Z]+)?).*/\1/p' <<< "$last")
  found=$(( $(findings) - before ))
  if [ "$status" -ne 0 ] && [ "$found" -eq 0 ]; then found=1; fi
  line="fuzz-$target: ${execs:-0} executions, ${rate:-0} execs/s, cov ${cov:-?}, ft ${ft:-?}, corpus ${corpus_size:-?}, crashes $found (exit $status)"
  if [ "$found" -gt 0 ]; then
    failed=1
    line+="; inputs in $crashes/: $(ls -t "$crashes" | grep -E '^(crash|timeout|oom|leak)-' | head -n "$found" | tr '\n' ' ')"
    grep -E 'FUZZ FINDING|ERROR: libFuzzer|GGML_ASSERT|GGML_ABORT|Fatal error|SUMMARY' "$log" | head -5 >&2
  fi
  echo "$line"
  summary+=("$line")
done
printf '%s\n' "${summary[@]}" > "$out/summary.txt"
exit $failed
