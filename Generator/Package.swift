// swift-tools-version: 6.1
// The binding generator: its own package, so that users of the library never need libclang.
import Foundation
import PackageDescription

/// Where libclang's headers and library are: LLVM_DIR (the Makefile sets it), else the newest
/// /usr/lib/llvm-N with clang-c/Index.h (where Debian's and Ubuntu's libclang-dev put them).
let llvm: String = {
    if let explicit = ProcessInfo.processInfo.environment["LLVM_DIR"], !explicit.isEmpty { return explicit }
    let versions = ((try? FileManager.default.contentsOfDirectory(atPath: "/usr/lib")) ?? []).compactMap { name -> Int? in
        guard name.hasPrefix("llvm-"), let version = Int(name.dropFirst("llvm-".count)),
              FileManager.default.fileExists(atPath: "/usr/lib/\(name)/include/clang-c/Index.h") else { return nil }
        return version
    }
    return "/usr/lib/llvm-\(versions.max() ?? 14)"
}()

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
        // The release workflow (YAML) read by `bump`, to name a tag's release assets.
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
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
        // Moving the pin to another tag: the release workflow read with Yams, digests from
        // GitHub's API, the source through the root package's `llama-swift libs source`.
        .target(
            name: "BumpCore",
            dependencies: [
                "BindgenCore",
                .product(name: "LlamaAPI", package: "swift-llama-cpp"),
                .product(name: "LlamaProcess", package: "swift-llama-cpp"),
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "llama-bindgen",
            dependencies: [
                "BindgenCore", "BumpCore",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "LlamaAPI", package: "swift-llama-cpp"),
            ],
            swiftSettings: swiftSettings + [.unsafeFlags(["-Xcc", "-I\(llvm)/include"])]
        ),
        .testTarget(
            name: "BindgenCoreTests",
            dependencies: ["BindgenCore", "BumpCore", .product(name: "LlamaProcess", package: "swift-llama-cpp")],
            exclude: ["Fixtures"],
            swiftSettings: swiftSettings + [.unsafeFlags(["-Xcc", "-I\(llvm)/include"])]
        ),
    ]
)
