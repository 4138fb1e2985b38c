// swift-tools-version: 6.1
// Coverage-guided fuzz targets (libFuzzer) over swift-llama-cpp's code paths: one executable per
// target, built apart from the root package so that `swift build` and `make test` never pay for it.
// Build and run them with `make fuzz` (see Fuzz/run.sh): the build passes `-sanitize=fuzzer` to every
// Swift module, so the library's own code is instrumented.
import Foundation
import PackageDescription

// A path dependency's identity is its folder's name, which is whatever the checkout is called.
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
let rootIdentity = root.lastPathComponent

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

func llama(_ product: String) -> Target.Dependency { .product(name: product, package: rootIdentity) }

let targets = ["grammar", "state", "gguf", "sampler", "schema", "template", "server"]

let package = Package(
    name: "swift-llama-cpp-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        // libFuzzer's driver entry (LLVMFuzzerRunDriver), declared for Swift.
        .target(name: "CFuzzer"),
        // The runtime, model and context of the fuzz targets, seeds written at run time, byte decoding.
        .target(
            name: "FuzzSupport",
            dependencies: ["CFuzzer", llama("Llama"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
    ] + targets.map { name in
        .executableTarget(
            name: "fuzz-\(name)",
            dependencies: ["FuzzSupport", llama("Llama"), llama("LlamaSchema"), llama("LlamaJinja"), llama("LlamaServer")],
            swiftSettings: swiftSettings,
            // gold fails on the sanitizer-coverage sections (an internal error); the toolchain's lld links them.
            linkerSettings: [.unsafeFlags(["-use-ld=lld"])]
        )
    }
)
