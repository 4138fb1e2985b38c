// Release asset digests from GitHub's REST API: the release of a tag lists each asset with a
// `digest` of the form `sha256:<hex>`. llama.cpp publishes no checksum file, so this is where
// pinned digests come from.
public import BindgenCore
public import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

public enum ReleaseDigests {
    /// Asset name → sha256 for the release of `tag`, or nil when the API cannot be reached or
    /// does not know the tag (the bump goes on without digests; `warn` says why).
    public static func fetch(api: String, tag: String, timeout: TimeInterval = 20,
                             warn: @Sendable (String) -> Void = { _ in }) async -> [String: String]? {
        let base = api.hasSuffix("/") ? String(api.dropLast()) : api
        let address = "\(base)/repos/ggml-org/llama.cpp/releases/tags/\(tag)"
        guard let url = URL(string: address) else {
            warn("no release digests: \(address) is not a URL")
            return nil
        }
        var request = URLRequest(url: url, timeoutInterval: timeout)
        request.setValue("application/vnd.github+json", forHTTPHeaderField: "Accept")
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout * 3
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        do {
            let (data, response) = try await session.data(for: request)
            if let http = response as? HTTPURLResponse, http.statusCode != 200 {
                warn("no release digests from \(address): HTTP \(http.statusCode)")
                return nil
            }
            return try parse(data)
        } catch {
            warn("no release digests from \(address): \(error.localizedDescription)")
            return nil
        }
    }

    struct Release: Decodable {
        struct Asset: Decodable {
            var name: String
            var digest: String?
        }
        var assets: [Asset]?
    }

    /// The digests of a release API answer: assets whose digest is `sha256:<hex>`.
    public static func parse(_ data: Data) throws -> [String: String] {
        let release = try JSONDecoder().decode(Release.self, from: data)
        var digests: [String: String] = [:]
        for asset in release.assets ?? [] {
            guard let digest = asset.digest, digest.hasPrefix("sha256:") else { continue }
            digests[asset.name] = String(digest.dropFirst("sha256:".count))
        }
        return digests
    }

    /// The assets with the digests filled in (nil for an asset the release does not list).
    public static func apply(_ digests: [String: String], to assets: [Manifest.Asset]) -> [Manifest.Asset] {
        assets.map { a in
            var a = a
            a.sha256 = digests[a.name]
            a.companions = a.companions.map { $0.map { Manifest.Asset.Companion(name: $0.name, sha256: digests[$0.name]) } }
            return a
        }
    }
}
