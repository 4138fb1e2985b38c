// swift-tools-version: 6.1
// The binding generator: its own package, so that users of the library never need libclang.
import Foundation
import PackageDescription

/// Where Debian's libclang-dev puts headers and the library; override with LLVM_DIR.
let llvm = ProcessInfo.processInfo.environment["LLVM_DIR"] ?? "/usr/lib/llvm-14"

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "llama-bindgen",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "llama-bindgen", targets: ["llama-bindgen"]),
        .library(name: "BindgenCore", targets: ["BindgenCore"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // The root package, for its LlamaAPI target only (API listings and their diff).
        .package(name: "swift-llama-cpp", path: ".."),
    ],
    targets: [
        .systemLibrary(name: "CClang", path: "Sources/CClang"),
        .target(
            name: "BindgenCore",
            dependencies: ["CClang"],
            swiftSettings: swiftSettings + [.unsafeFlags(["-Xcc", "-I\(llvm)/include"])],
            linkerSettings: [.unsafeFlags(["-L\(llvm)/lib", "-Xlinker", "-rpath", "-Xlinker", "\(llvm)/lib"])]
        ),
        .executableTarget(
            name: "llama-bindgen",
            dependencies: [
                "BindgenCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "LlamaAPI", package: "swift-llama-cpp"),
            ],
            swiftSettings: swiftSettings + [.unsafeFlags(["-Xcc", "-I\(llvm)/include"])]
        ),
        .testTarget(
            name: "BindgenCoreTests",
            dependencies: ["BindgenCore"],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings + [.unsafeFlags(["-Xcc", "-I\(llvm)/include"])]
        ),
    ]
)
