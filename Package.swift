// swift-tools-version: 6.1
// swift-llama-cpp: llama.cpp for Swift on Linux and macOS, with nothing to compile.
// Builds without llama.cpp and without libclang: the C types are generated declarations and
// every llama.cpp function is resolved at run time.
import CompilerPluginSupport
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "swift-llama-cpp",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Llama", targets: ["Llama"]),
        .library(name: "LlamaRaw", targets: ["LlamaRaw"]),
        // Jinja templates and chat formats on their own, without llama.cpp.
        .library(name: "LlamaJinja", targets: ["LlamaJinja"]),
        .library(name: "LlamaChat", targets: ["LlamaChat"]),
        // JSON Schema to GBNF grammars, without llama.cpp.
        .library(name: "LlamaSchema", targets: ["LlamaSchema"]),
        // The @Generable macro (typed generation); its own product, so Llama does not build swift-syntax.
        .library(name: "LlamaGenerable", targets: ["LlamaGenerable"]),
        // API listings and their Markdown diff, shared with the generator (which depends on this package).
        .library(name: "LlamaAPI", targets: ["LlamaAPI"]),
        // Child processes: one run with timeouts, TERM then KILL, line callbacks (no llama.cpp).
        .library(name: "LlamaProcess", targets: ["LlamaProcess"]),
        // The OpenAI-compatible HTTP server that `llama-swift serve` wraps, for apps that embed it.
        .library(name: "LlamaServer", targets: ["LlamaServer"]),
        .executable(name: "llama-swift", targets: ["llama-swift"]),
        // What the Llama library runs in a child process (GPU build check, RPC first contact,
        // generation over RPC): ship it beside your executable, or set LLAMA_SWIFT_HELPER.
        .executable(name: "llama-helper", targets: ["llama-helper"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3" ..< "5.0.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swiftlang/swift-subprocess", from: "1.0.2"),
        .package(url: "https://github.com/swiftlang/swift-syntax", "602.0.0" ..< "604.0.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // `swift package generate-documentation` (make docs): a command plugin, nothing a product links.
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // API listings (api.txt) read back, and the Markdown diff of two: `llama-swift api`, and the
        // generator's bump report.
        .target(name: "LlamaAPI", swiftSettings: swiftSettings),
        // The one way this package starts child processes: swift-subprocess underneath, plus
        // timeouts, process-group teardown and line callbacks. No dependency on llama.cpp.
        .target(
            name: "LlamaProcess",
            dependencies: [.product(name: "Subprocess", package: "swift-subprocess")],
            swiftSettings: swiftSettings
        ),
        // A Jinja engine with jinja2's semantics (as transformers sets it up for chat templates),
        // and JSON values that keep key order. No dependency on llama.cpp.
        .target(name: "LlamaJinja", swiftSettings: swiftSettings),
        // Chat messages, tools, chat templates rendered with LlamaJinja, and parsers of model
        // output into content, reasoning and tool calls. No dependency on llama.cpp.
        .target(name: "LlamaChat", dependencies: ["LlamaJinja"], swiftSettings: swiftSettings),
        // JSON Schema → a schema IR → grammar rules → GBNF text, as llama.cpp's converter writes
        // it; for constrained generation. No dependency on llama.cpp.
        .target(name: "LlamaSchema", dependencies: ["LlamaJinja"], swiftSettings: swiftSettings),
        // The @Generable and @Guide macros: a JSON Schema and a Generable conformance derived from a
        // struct's stored properties or an enum's cases.
        .macro(
            name: "LlamaGenerableMacros",
            dependencies: [
                .product(name: "SwiftSyntax", package: "swift-syntax"),
                .product(name: "SwiftSyntaxBuilder", package: "swift-syntax"),
                .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
                .product(name: "SwiftCompilerPlugin", package: "swift-syntax"),
                .product(name: "SwiftDiagnostics", package: "swift-syntax"),
            ],
            swiftSettings: swiftSettings
        ),
        // The macros' declarations, re-exporting LlamaSchema (Generable) and LlamaJinja (JSONValue).
        .target(name: "LlamaGenerable", dependencies: ["LlamaGenerableMacros", "LlamaSchema", "LlamaJinja"], swiftSettings: swiftSettings),
        // Generated C declarations of the pinned llama.cpp headers: types only, no functions.
        .target(name: "CLlama", path: "Sources/CLlama"),
        // std::regex as llama.cpp compiles and searches lazy-grammar trigger patterns, without exceptions (C++).
        .target(name: "CTriggerRegex", path: "Sources/CTriggerRegex"),
        // The generated symbol table and thin wrappers, and the loader that fills the table.
        .target(
            name: "LlamaRaw",
            dependencies: ["CLlama", "LlamaAPI"],
            exclude: ["generated/api.txt"],
            swiftSettings: swiftSettings
        ),
        // zlib, for unpacking release archives (part of every Swift installation on Linux and of macOS).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib"),
        // The Swift API: models, contexts, batches, samplers, generation, chat, embeddings; and
        // provisioning: release assets downloaded, verified, unpacked and cached, or built from source.
        .target(
            name: "Llama",
            dependencies: [
                "LlamaRaw", "CZlib", "LlamaChat", "LlamaSchema", "LlamaProcess", "CTriggerRegex",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // The OpenAI-compatible HTTP server (Hummingbird): endpoints, auth, limits, metrics, over LlamaSlots.
        .target(
            name: "LlamaServer",
            dependencies: [
                "Llama",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                // Remote images (--allow-remote-media), with the client the model store uses.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        // Counts heap allocations; linked into benchmark programs only.
        .target(name: "CAllocCounter", path: "Sources/CAllocCounter"),
        // The library's helper process: one HelperRequest line on stdin, HelperResponse lines on stdout.
        .executableTarget(
            name: "llama-helper",
            dependencies: ["Llama", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // One benchmark measurement per process, for `llama-swift bench`.
        .executableTarget(
            name: "llama-bench-worker",
            dependencies: ["Llama", "LlamaRaw", "CAllocCounter"],
            swiftSettings: swiftSettings
        ),
        // The command-line tool.
        .executableTarget(
            name: "llama-swift",
            dependencies: [
                "Llama", "LlamaAPI", "LlamaSchema", "LlamaProcess", "LlamaServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Streaming generation with the Llama API: what `make run` runs.
        .executableTarget(
            name: "generate",
            dependencies: ["Llama", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/generate",
            swiftSettings: swiftSettings
        ),
        // Examples: one folder each under Examples/ (see README); `make examples` builds and runs them.
        .executableTarget(name: "chat", dependencies: ["Llama"], path: "Examples/chat", swiftSettings: swiftSettings),
        .executableTarget(name: "embeddings-search", dependencies: ["Llama"], path: "Examples/embeddings-search", swiftSettings: swiftSettings),
        .executableTarget(name: "batched", dependencies: ["Llama"], path: "Examples/batched", swiftSettings: swiftSettings),
        .executableTarget(name: "custom-sampler", dependencies: ["Llama"], path: "Examples/custom-sampler", swiftSettings: swiftSettings),
        .executableTarget(name: "json-grammar", dependencies: ["Llama"], path: "Examples/json-grammar", swiftSettings: swiftSettings),
        .executableTarget(name: "tools", dependencies: ["Llama"], path: "Examples/tools", swiftSettings: swiftSettings),
        .executableTarget(name: "state", dependencies: ["Llama"], path: "Examples/state", swiftSettings: swiftSettings),
        .executableTarget(name: "ggml-graph", dependencies: ["Llama", "LlamaRaw"], path: "Examples/ggml-graph", swiftSettings: swiftSettings),
        // Greedy generation through the raw bindings; the Swift side of the token equality test.
        .executableTarget(
            name: "raw-generate",
            dependencies: ["LlamaRaw", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Examples/raw-generate",
            swiftSettings: swiftSettings
        ),
        // What both test targets need: the libraries, the model, the native reference.
        .target(
            name: "LlamaTestSupport",
            dependencies: ["LlamaRaw", "LlamaProcess"],
            path: "Tests/Support",
            exclude: ["mirror_server.py", "jsonschema_check.py"],
            swiftSettings: swiftSettings
        ),
        // The Jinja engine and chat formats against their references (jinja2, llama.cpp's parser).
        .testTarget(
            name: "LlamaJinjaTests",
            dependencies: ["LlamaJinja", "LlamaChat", "LlamaProcess", "LlamaTestSupport"],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
        // JSON Schema to GBNF against llama.cpp's converter and grammar engine, and SmolLM2's
        // constrained output against Python's jsonschema.
        .testTarget(
            name: "LlamaSchemaTests",
            dependencies: ["LlamaSchema", "LlamaJinja", "Llama", "LlamaRaw", "LlamaTestSupport"],
            swiftSettings: swiftSettings
        ),
        // @Generable: macro expansions, derived schemas, and SmolLM2's typed output against Python's jsonschema.
        .testTarget(
            name: "LlamaGenerableTests",
            dependencies: [
                "LlamaGenerable", "LlamaGenerableMacros", "Llama", "LlamaTestSupport",
                .product(name: "SwiftSyntaxMacrosGenericTestSupport", package: "swift-syntax"),
                .product(name: "SwiftSyntaxMacroExpansion", package: "swift-syntax"),
                .product(name: "SwiftSyntax", package: "swift-syntax"),
                .product(name: "SwiftSyntaxBuilder", package: "swift-syntax"),
                .product(name: "SwiftDiagnostics", package: "swift-syntax"),
            ],
            swiftSettings: swiftSettings
        ),
        // The process primitive: exit codes, signals, timeouts, process groups, signal masks.
        .testTarget(name: "LlamaProcessTests", dependencies: ["LlamaProcess", "LlamaTestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "LlamaRawTests",
            dependencies: ["LlamaRaw", "LlamaTestSupport", "raw-generate"],
            exclude: ["Native"],
            swiftSettings: swiftSettings
        ),
        // The server over loopback: its library API, the CLI as a child, and the official openai client.
        .testTarget(
            name: "LlamaServerTests",
            dependencies: ["LlamaServer", "Llama", "LlamaProcess", "LlamaTestSupport", "llama-swift",
                           .product(name: "AsyncHTTPClient", package: "async-http-client"),
                           .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                           .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "LlamaTests",
            // Not llama-bench-worker: a test bundle that depends on an executable links its code,
            // and the worker's allocation counter replaces malloc. `make test-package` builds it.
            dependencies: ["Llama", "LlamaRaw", "LlamaProcess", "LlamaTestSupport", "raw-generate", "llama-swift", "llama-helper"],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings
        ),
    ]
)
