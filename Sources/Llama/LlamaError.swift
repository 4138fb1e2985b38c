/// An error of the Llama API: a code to switch on, a message that says what to do, the
/// llama.cpp status where there was one, and the error underneath where there was one (a
/// `LlamaLoadError` with its structured payload, a process failure...).
public struct LlamaError: Error, Sendable, CustomStringConvertible, Equatable {
    /// What went wrong. Open: new codes may be added.
    public struct Code: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
        public let rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The dynamic loader refused a llama.cpp library (not a library, wrong architecture, a
        /// dependency missing).
        public static let libraryLoad = Code(rawValue: "libraryLoad")
        /// No llama.cpp libraries where they were looked for: none given, the folder does not
        /// exist, or a required library is not in it.
        public static let libraryNotFound = Code(rawValue: "libraryNotFound")
        /// The libraries are another llama.cpp version than the bindings were generated from.
        public static let versionMismatch = Code(rawValue: "versionMismatch")
        /// The libraries lack functions the bindings require (the underlying `LlamaLoadError`
        /// lists them as symbol specs).
        public static let missingSymbols = Code(rawValue: "missingSymbols")
        /// ggml registered no backend from the libraries' folder (no usable CPU backend).
        public static let noBackend = Code(rawValue: "noBackend")
        /// A GPU build was refused: it crashed or failed a child process that loaded it first, or
        /// ggml registered no GPU device from it.
        public static let backendRejected = Code(rawValue: "backendRejected")
        /// An RPC server speaks another ggml RPC protocol version, or is not a ggml RPC server.
        public static let rpcProtocol = Code(rawValue: "rpcProtocol")
        /// A server does not accept connections: the host does not resolve, or nothing listens.
        public static let unreachable = Code(rawValue: "unreachable")
        /// A server could not bind its address (in use, or not an address of this machine).
        public static let bindFailed = Code(rawValue: "bindFailed")
        /// The `llama-helper` program, needed to run something in a child process, was not found.
        public static let helperNotFound = Code(rawValue: "helperNotFound")
        /// The helper program answered outside the protocol: another protocol version, or lines
        /// that are not protocol messages.
        public static let helperProtocol = Code(rawValue: "helperProtocol")
        /// A file does not exist or cannot be read.
        public static let fileNotFound = Code(rawValue: "fileNotFound")
        /// A file cannot be written where it was asked for (no permission, no such folder, no space).
        public static let fileNotWritable = Code(rawValue: "fileNotWritable")
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
        /// Generated text did not decode into the requested type (the message holds the text and the decoder's reason).
        public static let decodingFailed = Code(rawValue: "decodingFailed")
        /// A tool-calling conversation still asked for tools after its last allowed round.
        public static let toolRoundsExceeded = Code(rawValue: "toolRoundsExceeded")
        /// No capacity now: the queue of requests waiting for a slot is full, or the engine is shutting down (retry later).
        public static let busy = Code(rawValue: "busy")
    }

    /// What went wrong, to switch on.
    public let code: Code
    /// What went wrong and what to do, for people.
    public let message: String
    /// The status a llama.cpp function returned, when it returned one.
    public let status: Int32?
    /// The error this one reports, when there was one: a `LlamaLoadError` (with the missing
    /// symbols or the version found), a helper's failure, a process that could not start...
    public let underlying: (any Error & Sendable)?

    /// An error with its code and message.
    ///
    /// - Parameters:
    ///   - code: what went wrong.
    ///   - message: what went wrong and what to do.
    ///   - status: the status a llama.cpp function returned, if any.
    ///   - underlying: the error this one reports, if any.
    public init(_ code: Code, _ message: String, status: Int32? = nil, underlying: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.status = status
        self.underlying = underlying
    }

    /// Equal codes, messages and statuses (the underlying errors are not compared).
    public static func == (a: LlamaError, b: LlamaError) -> Bool {
        a.code == b.code && a.message == b.message && a.status == b.status
    }

    public var description: String {
        message + (status.map { " (llama.cpp status \($0))" } ?? "")
    }
}
