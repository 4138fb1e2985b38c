import ArgumentParser
import Foundation
import Llama
import LlamaServer

/// `serve`'s flags for images and audio: projectors per model, and remote media.
struct ServeMediaFlags: ParsableArguments {
    @Option(help: "A multimodal projector (mmproj GGUF) for the model: chat requests may then carry image_url and input_audio parts. With several --model, ALIAS=FILE names the model; repeatable. (--models-dir: a folder's mmproj file is its model's.)")
    var mmproj: [String] = []
    @Flag(help: "Fetch images and audio that requests give as http(s) URLs (refused by default: clients send base64 data: URLs). The server then reaches any address a client names: trusted clients only.")
    var allowRemoteMedia = false
    @Option(help: "With --allow-remote-media: the largest file fetched, in bytes (413 beyond).")
    var mediaMaxBytes = 20 << 20
    @Option(help: "With --allow-remote-media: seconds fetching one file may take (408 beyond).")
    var mediaTimeout: Double = 10

    func validate() throws {
        guard mediaMaxBytes > 0 else { throw ValidationError("--media-max-bytes must be positive") }
        guard mediaTimeout > 0 else { throw ValidationError("--media-timeout must be positive") }
    }

    /// Gives each `--mmproj` to its model (FILE: the only --model; ALIAS=FILE: that one) and
    /// sets the remote-media limits.
    func apply(to served: inout [ServedModel], configuration: inout LlamaServerConfiguration) throws {
        for value in mmproj {
            let (alias, path) = Serve.split(value)
            let index: Int
            if let alias {
                guard let i = served.firstIndex(where: { $0.id == alias }) else {
                    throw ValidationError("--mmproj \(value): no --model is served as \"\(alias)\" (models: "
                        + "\(served.map(\.id).joined(separator: ", ")))")
                }
                index = i
            } else {
                guard served.count == 1 else {
                    throw ValidationError("--mmproj \(value): \(served.count) models are served; say which with ALIAS=FILE")
                }
                index = 0
            }
            guard served[index].projectorPath == nil else {
                throw ValidationError("--mmproj: the model \"\(served[index].id)\" is given two projectors")
            }
            served[index].projectorPath = path
        }
        configuration.allowRemoteMedia = allowRemoteMedia
        configuration.mediaMaxBytes = mediaMaxBytes
        configuration.mediaTimeout = .milliseconds(Int64(mediaTimeout * 1000))
    }
}
