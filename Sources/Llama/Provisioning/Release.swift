public import Foundation
import LlamaRaw

/// An operating system and CPU architecture, named as llama.cpp's release assets name them.
public struct LlamaPlatform: Hashable, Sendable, Codable, CustomStringConvertible {
    /// `linux`, `macos` or `windows`.
    public var os: String
    /// `x64`, `arm64`, `s390x`.
    public var arch: String

    /// A platform named as release assets name it (`linux`, `x64`).
    public init(os: String, arch: String) {
        self.os = os
        self.arch = arch
    }

    /// This machine.
    public static var current: LlamaPlatform {
        #if os(macOS)
        let os = "macos"
        #elseif os(Windows)
        let os = "windows"
        #else
        let os = "linux"
        #endif
        #if arch(x86_64)
        let arch = "x64"
        #elseif arch(arm64)
        let arch = "arm64"
        #elseif arch(s390x)
        let arch = "s390x"
        #else
        let arch = "unknown"
        #endif
        return LlamaPlatform(os: os, arch: arch)
    }

    /// `linux-x64`: the form used in cache and bundle folders.
    public var description: String { "\(os)-\(arch)" }

    /// Parses `linux-x64`.
    public init?(_ text: String) {
        let parts = text.split(separator: "-", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else { return nil }
        self.init(os: parts[0], arch: parts[1])
    }
}

/// A build of llama.cpp for one kind of hardware: `cpu`, `vulkan`, `cuda-12.8`, `cuda-13.4`,
/// `rocm-10.0`, `sycl-fp16`, `openvino-2026.4.1`, `metal`... as the release assets name them.
/// Open: a new upstream variant is just a new name.
public struct LlamaVariant: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible,
    ExpressibleByStringLiteral {
    public let rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public var description: String { rawValue }

    /// The CPU build (every platform).
    public static let cpu = LlamaVariant(rawValue: "cpu")
    /// Any GPU with a Vulkan driver.
    public static let vulkan = LlamaVariant(rawValue: "vulkan")
    /// Apple GPUs through Metal (the macOS arm64 build).
    public static let metal = LlamaVariant(rawValue: "metal")
    /// The CUDA build for a CUDA version (`12.8`, `13.4`).
    public static func cuda(_ version: String) -> LlamaVariant { LlamaVariant(rawValue: "cuda-\(version)") }

    /// The name without its version: `cuda` for `cuda-12.8`.
    public var family: String { String(rawValue.split(separator: "-", maxSplits: 1).first ?? "") }
    /// What follows the family: `12.8` for `cuda-12.8`, nil for `cpu`.
    public var version: String? {
        let parts = rawValue.split(separator: "-", maxSplits: 1)
        return parts.count == 2 ? String(parts[1]) : nil
    }
}

/// One downloadable file of a release, with its pinned sha256 when the manifest has one.
public struct LlamaReleaseAsset: Hashable, Sendable, Codable {
    /// The asset's file name in the release.
    public var name: String
    /// Its pinned sha256 (nil: not pinned; recorded on first download).
    public var sha256: String?
    /// An asset and its pinned digest.
    public init(name: String, sha256: String?) {
        self.name = name
        self.sha256 = sha256
    }
}

/// The release assets of a llama.cpp tag: which archives make up each platform's variants.
public struct LlamaRelease: Sendable {
    /// The assets of one platform and variant.
    public struct Entry: Sendable, Hashable {
        /// The platform.
        public var platform: LlamaPlatform
        /// The build.
        public var variant: LlamaVariant
        /// The release archive, then the archives it needs beside it (the CUDA runtime).
        public var assets: [LlamaReleaseAsset]
        /// The assets of a platform and variant.
        public init(platform: LlamaPlatform, variant: LlamaVariant, assets: [LlamaReleaseAsset]) {
            self.platform = platform
            self.variant = variant
            self.assets = assets
        }

        /// A pinned asset: its archive, then its companions.
        init(pinned a: LlamaPinnedAsset) {
            self.init(platform: LlamaPlatform(os: a.os, arch: a.arch), variant: LlamaVariant(rawValue: a.variant),
                      assets: [LlamaReleaseAsset(name: a.name, sha256: a.sha256)]
                        + a.companions.map { LlamaReleaseAsset(name: $0.name, sha256: $0.sha256) })
        }
    }

    /// The llama.cpp tag.
    public var tag: String
    /// Every platform and variant the release has.
    public var entries: [Entry]

    /// A release: its tag and entries.
    public init(tag: String, entries: [Entry]) {
        self.tag = tag
        self.entries = entries
    }

    /// The release the bindings were generated for, from the manifest.
    public static let pinned = LlamaRelease(tag: LlamaPin.tag, entries: LlamaPin.assets.map(Entry.init(pinned:)))

    /// The variants released for a platform, in the manifest's order.
    public func variants(for platform: LlamaPlatform) -> [LlamaVariant] {
        entries.filter { $0.platform == platform }.map(\.variant)
    }

    /// The entry for a platform and variant. A variant without version (`cuda`) matches the
    /// family's newest version.
    public func entry(for platform: LlamaPlatform, variant: LlamaVariant) -> Entry? {
        let forPlatform = entries.filter { $0.platform == platform }
        if let exact = forPlatform.first(where: { $0.variant == variant }) { return exact }
        guard variant.version == nil else { return nil }
        return forPlatform.filter { $0.variant.family == variant.rawValue }
            .max { Self.versionOrder($0.variant.version ?? "", $1.variant.version ?? "") }
    }

    /// Whether version `a` sorts before `b`, comparing dotted numbers as numbers.
    static func versionOrder(_ a: String, _ b: String) -> Bool {
        let x = a.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        let y = b.split(whereSeparator: { !$0.isNumber }).compactMap { Int($0) }
        return x.lexicographicallyPrecedes(y)
    }
}
