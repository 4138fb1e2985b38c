// swift-tools-version: 6.1
// swift-llama-cpp: llama.cpp for Swift on Linux and macOS, with nothing to compile.
// Builds without llama.cpp and without libclang: the C types are generated declarations and
// every llama.cpp function is resolved at run time.
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "swift-llama-cpp",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "LlamaRaw", targets: ["LlamaRaw"]),
    ],
    targets: [
        // Generated C declarations of the pinned llama.cpp headers: types only, no functions.
        .target(name: "CLlama", path: "Sources/CLlama"),
        // The generated symbol table and thin wrappers, and the loader that fills the table.
        .target(
            name: "LlamaRaw",
            dependencies: ["CLlama"],
            exclude: ["generated/api.txt"],
            swiftSettings: swiftSettings
        ),
        // Greedy generation through the raw bindings; the Swift side of the token equality test.
        .executableTarget(
            name: "raw-generate",
            dependencies: ["LlamaRaw"],
            path: "Examples/raw-generate",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "LlamaRawTests",
            dependencies: ["LlamaRaw", "raw-generate"],
            exclude: ["Native"],
            swiftSettings: swiftSettings
        ),
    ]
)
