/// An error of the Llama API: a code to switch on, a message that says what to do, and the
/// llama.cpp status where there was one.
public struct LlamaError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What went wrong. Open: new codes may be added.
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The llama.cpp libraries could not be loaded.
        public static let libraryLoad = Code(rawValue: "libraryLoad")
        /// A file does not exist or cannot be read.
        public static let fileNotFound = Code(rawValue: "fileNotFound")
        /// A file is not a GGUF model, or is damaged or truncated.
        public static let invalidModel = Code(rawValue: "invalidModel")
        /// llama.cpp could not create something (context, sampler, adapter).
        public static let creationFailed = Code(rawValue: "creationFailed")
        /// A parameter is out of its range.
        public static let invalidArgument = Code(rawValue: "invalidArgument")
        /// Text is not valid UTF-8.
        public static let invalidUTF8 = Code(rawValue: "invalidUTF8")
        /// The input does not fit in the context window.
        public static let contextOverflow = Code(rawValue: "contextOverflow")
        /// llama.cpp failed to evaluate a batch.
        public static let decodeFailed = Code(rawValue: "decodeFailed")
        /// The work was cancelled.
        public static let cancelled = Code(rawValue: "cancelled")
        /// The model or context cannot do this (no chat template, no ranking head...).
        public static let unsupported = Code(rawValue: "unsupported")
        /// A grammar did not parse.
        public static let invalidGrammar = Code(rawValue: "invalidGrammar")
        /// A grammar allows no token: no token of the vocabulary can begin it, or generation reached a
        /// point where none can continue it.
        public static let grammarDeadEnd = Code(rawValue: "grammarDeadEnd")
        /// Saving or restoring state failed.
        public static let stateFailed = Code(rawValue: "stateFailed")
        /// No release asset exists for this platform and variant.
        public static let noAsset = Code(rawValue: "noAsset")
        /// A download failed (every mirror tried), or the server answered with an error.
        public static let downloadFailed = Code(rawValue: "downloadFailed")
        /// A server stopped sending within the idle timeout, or did not accept the connection in time.
        public static let timeout = Code(rawValue: "timeout")
        /// Downloaded or installed bytes do not have the expected sha256.
        public static let checksumMismatch = Code(rawValue: "checksumMismatch")
        /// An asset has no pinned digest and strict digest checking is on.
        public static let unpinnedDigest = Code(rawValue: "unpinnedDigest")
        /// An archive is damaged, of an unknown format, or holds a path or link that leaves its folder.
        public static let unsafeArchive = Code(rawValue: "unsafeArchive")
        /// Offline mode, and the cache lacks what is needed.
        public static let offline = Code(rawValue: "offline")
        /// The cache could not be read or written.
        public static let cacheFailed = Code(rawValue: "cacheFailed")
        /// A computation in a helper process failed: an RPC server stopped, or the process ended.
        public static let remoteFailed = Code(rawValue: "remoteFailed")
        /// A chat template does not parse or fails to render (the message has its line:column).
        public static let template = Code(rawValue: "template")
        /// Building llama.cpp from source failed, or no compiler or cmake was found.
        public static let buildFailed = Code(rawValue: "buildFailed")
        /// A JSON Schema given for structured output cannot be turned into a grammar (the
        /// message names the JSON pointer of the problem).
        public static let invalidSchema = Code(rawValue: "invalidSchema")
        /// A tool-calling conversation still asked for tools after its last allowed round.
        public static let toolRoundsExceeded = Code(rawValue: "toolRoundsExceeded")
    }

    public let code: Code
    public let message: String
    /// The status a llama.cpp function returned, when it returned one.
    public let status: Int32?

    public init(_ code: Code, _ message: String, status: Int32? = nil) {
        self.code = code
        self.message = message
        self.status = status
    }

    public var description: String {
        message + (status.map { " (llama.cpp status \($0))" } ?? "")
    }
}
