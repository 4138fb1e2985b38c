public import Foundation

// The messages between the library and its `llama-helper` program: one request line on the
// helper's stdin, response lines on its stdout, each a JSON object with `protocolVersion` and one
// key naming what it is (`{"protocolVersion":2,"backendCheck":{...}}`). Failures are messages
// too (`failure`, with a LlamaError code); a crash is seen through the process's termination.

/// The version of the helper protocol; the library and the helper it starts must agree.
public enum LlamaHelperProtocol {
    /// Bumped whenever a message changes shape.
    public static let version = 2

    /// A line that is not a message of this protocol version.
    public struct Violation: Error, Sendable, CustomStringConvertible {
        /// The version the line names, when it names one.
        public var foundVersion: Int?
        public var description: String

        /// A violation: the version the line names (if any) and what is wrong.
        public init(foundVersion: Int?, description: String) {
            self.foundVersion = foundVersion
            self.description = description
        }
    }

    /// One JSON line (without its newline). Fails only for a value JSON cannot hold (a NaN).
    public static func encode<T: Encodable>(_ message: T) throws(LlamaError) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do { return try encoder.encode(message) } catch {
            throw LlamaError(.invalidArgument, "a helper message cannot be written as JSON: \(error)", underlying: error)
        }
    }

    private struct Envelope: Decodable { var protocolVersion: Int? }

    /// Decodes a line: first its `protocolVersion` (another version is a violation that says
    /// so, whatever else the line holds), then the message.
    public static func decode<T: Decodable>(_ type: T.Type, from line: Data) throws(Violation) -> T {
        let preview = String(decoding: line.prefix(200), as: UTF8.self)
        let envelope: Envelope
        do { envelope = try JSONDecoder().decode(Envelope.self, from: line) } catch {
            throw Violation(foundVersion: nil, description: "not a JSON object: \(preview)")
        }
        guard let found = envelope.protocolVersion else {
            throw Violation(foundVersion: nil, description: "no protocolVersion in \(preview)")
        }
        guard found == version else {
            throw Violation(foundVersion: found, description: "protocol version \(found), expected \(version)")
        }
        do { return try JSONDecoder().decode(T.self, from: line) } catch {
            throw Violation(foundVersion: found, description: "not a valid \(T.self): \(error) in \(preview)")
        }
    }
}

/// What the library asks its `llama-helper` program to do, in a child process.
public struct HelperRequest: Codable, Sendable, Equatable {
    /// The protocol version of the sender (``LlamaHelperProtocol/version``).
    public var protocolVersion: Int
    /// What to do.
    public var command: Command

    /// A request for a command, in this protocol version.
    public init(_ command: Command, protocolVersion: Int = LlamaHelperProtocol.version) {
        self.protocolVersion = protocolVersion
        self.command = command
    }

    /// The commands the helper runs.
    public enum Command: Sendable, Equatable {
        /// Load the libraries of a folder (a GPU build) and list ggml's devices.
        case backendCheck(BackendCheck)
        /// First contact with an RPC server: handshake, then its devices through ggml.
        case rpcCheck(RPCCheck)
        /// Generate text, streaming tokens, then a summary.
        case generate(Generate)
        /// Load a model file that is not trusted (our checks, then llama.cpp's loader), where an
        /// abort ends only the helper: ``LlamaModel/validate(at:runtime:helper:vocabularyOnly:timeout:)``.
        case validateModel(ValidateModel)
    }

    /// Load an untrusted model file in the helper, where an abort ends only the helper.
    public struct ValidateModel: Codable, Sendable, Equatable {
        /// The release folder to load; nil: as ``LlamaRuntime/load(libraryDirectory:options:allowVersionMismatch:logger:progress:)``
        /// finds it in the helper's environment.
        public var directory: String?
        /// The GGUF file (the first part of a split model).
        public var path: String
        /// Load the vocabulary only (llama.cpp's `vocab_only`): fast, and what tokenizing needs;
        /// false loads the weights too (every tensor's shape checked by llama.cpp).
        public var vocabularyOnly: Bool

        /// A validation of a model file, with the libraries of `directory` (nil: as the helper finds them).
        public init(directory: String? = nil, path: String, vocabularyOnly: Bool = false) {
            self.directory = directory
            self.path = path
            self.vocabularyOnly = vocabularyOnly
        }
    }

    /// Load a GPU build's libraries and list ggml's devices, to check the build works here.
    public struct BackendCheck: Codable, Sendable, Equatable {
        /// The release folder (`.../llama-<tag>`).
        public var directory: String
        /// The build the folder holds.
        public var variant: LlamaVariant

        /// A check of the build of `variant` in `directory`.
        public init(directory: String, variant: LlamaVariant) {
            self.directory = directory
            self.variant = variant
        }
    }

    /// First contact with an RPC server: the handshake, then its devices.
    public struct RPCCheck: Codable, Sendable, Equatable {
        /// The release folder whose libraries make the contact.
        public var directory: String
        /// `host:port`
        public var endpoint: String
        /// The longest wait for the connection and for each answer.
        public var timeoutSeconds: Double

        /// A first contact with `endpoint` using the libraries of `directory`.
        public init(directory: String, endpoint: String, timeoutSeconds: Double) {
            self.directory = directory
            self.endpoint = endpoint
            self.timeoutSeconds = timeoutSeconds
        }
    }

    /// Generate text in the helper (generation over RPC, where a failing server ends only the helper).
    public struct Generate: Codable, Sendable, Equatable {
        /// The release folder to load; nil: as ``LlamaRuntime/load(libraryDirectory:options:allowVersionMismatch:logger:progress:)``
        /// finds it in the helper's environment.
        public var directory: String?
        /// The GGUF file.
        public var model: String
        /// The user's prompt (rendered with the model's chat template unless ``raw``).
        public var prompt: String
        /// The prompt as it is, without the model's chat template.
        public var raw: Bool
        /// The most tokens to generate.
        public var maxTokens: Int
        /// Text that ends generation when it appears.
        public var stopSequences: [String]
        /// How tokens are sampled.
        public var sampling: Sampling
        /// `host:port` of RPC servers whose devices take the layers.
        public var rpcServers: [String]
        /// The longest wait for an RPC server's first contact.
        public var rpcTimeoutSeconds: Double
        /// The context length.
        public var contextLength: UInt32
        /// CPU threads (nil: llama.cpp's default).
        public var threads: Int32?
        /// Layers to offload (-1: all).
        public var gpuLayers: Int32
        /// The model parameters beyond placement (``ModelOptions/metadataOverrides``,
        /// ``ModelOptions/tensorBufferOverrides``, repacking, host buffers, load and lazy modes,
        /// tensor checks); nil: llama.cpp's defaults.
        public var parameters: ModelParameters?
        /// With a value, the context shifts when it fills, keeping this many prompt tokens
        /// (``ContextShift/on(keep:)``); nil: generation stops with `.contextFull`.
        public var contextShiftKeep: Int?

        /// The fields of ``ModelOptions`` beyond placement, in their text forms (as the flags write them).
        public struct ModelParameters: Codable, Sendable, Equatable {
            /// `KEY=TYPE:VALUE` items (``ModelOptions/MetadataOverride``).
            public var metadataOverrides: [String] = []
            /// `PATTERN=BUFFER_TYPE` items (``ModelOptions/TensorBufferOverride``).
            public var tensorBufferOverrides: [String] = []
            /// ``ModelOptions/useExtraBufferTypes``.
            public var useExtraBufferTypes = true
            /// ``ModelOptions/noHost``.
            public var noHost = false
            /// ``ModelOptions/loadMode``'s name.
            public var loadMode: String?
            /// ``ModelOptions/lazyMode``'s name.
            public var lazyMode: String?
            /// ``ModelOptions/checkTensors``.
            public var checkTensors = false

            /// The text forms of `options`' parameters.
            public init(_ options: ModelOptions) {
                metadataOverrides = options.metadataOverrides.map(\.description)
                tensorBufferOverrides = options.tensorBufferOverrides.map(\.description)
                useExtraBufferTypes = options.useExtraBufferTypes
                noHost = options.noHost
                loadMode = options.loadMode?.description
                lazyMode = options.lazyMode?.description
                checkTensors = options.checkTensors
            }

            /// Sets these parameters on `options`; a malformed item is `.invalidArgument`.
            public func apply(to options: inout ModelOptions) throws(LlamaError) {
                var overrides: [ModelOptions.MetadataOverride] = []
                for item in metadataOverrides { overrides.append(try ModelOptions.MetadataOverride(parsing: item)) }
                var tensors: [ModelOptions.TensorBufferOverride] = []
                for item in tensorBufferOverrides { tensors.append(try ModelOptions.TensorBufferOverride(parsing: item)) }
                options.metadataOverrides = overrides
                options.tensorBufferOverrides = tensors
                options.useExtraBufferTypes = useExtraBufferTypes
                options.noHost = noHost
                if let loadMode {
                    guard let mode = ModelOptions.LoadMode(name: loadMode) else {
                        throw LlamaError(.invalidArgument, "unknown load mode \(loadMode)")
                    }
                    options.loadMode = mode
                }
                if let lazyMode {
                    guard let mode = ModelOptions.LazyMode(name: lazyMode) else {
                        throw LlamaError(.invalidArgument, "unknown lazy mode \(lazyMode)")
                    }
                    options.lazyMode = mode
                }
                options.checkTensors = checkTensors
            }
        }

        /// A generation request; every parameter is the property of the same name.
        public init(directory: String? = nil, model: String, prompt: String, raw: Bool = false, maxTokens: Int = 256,
                    stopSequences: [String] = [], sampling: Sampling = .greedy, rpcServers: [String] = [],
                    rpcTimeoutSeconds: Double = 5, contextLength: UInt32 = 2048, threads: Int32? = nil, gpuLayers: Int32 = -1,
                    parameters: ModelParameters? = nil, contextShiftKeep: Int? = nil) {
            self.directory = directory
            self.model = model
            self.prompt = prompt
            self.raw = raw
            self.maxTokens = maxTokens
            self.stopSequences = stopSequences
            self.sampling = sampling
            self.rpcServers = rpcServers
            self.rpcTimeoutSeconds = rpcTimeoutSeconds
            self.contextLength = contextLength
            self.threads = threads
            self.gpuLayers = gpuLayers
            self.parameters = parameters
            self.contextShiftKeep = contextShiftKeep
        }
    }

    /// The standard chain (``SamplerChain/standard(temperature:topK:topP:minP:repeatPenalty:seed:)``),
    /// with an optional GBNF grammar in front.
    public struct Sampling: Codable, Sendable, Equatable {
        /// The temperature (0: greedy).
        public var temperature: Float
        /// Top-k (llama.cpp's `--top-k`).
        public var topK: Int32
        /// Top-p (llama.cpp's `--top-p`).
        public var topP: Float
        /// Min-p (llama.cpp's `--min-p`).
        public var minP: Float
        /// The repetition penalty (llama.cpp's `--repeat-penalty`; 1: none).
        public var repeatPenalty: Float
        /// nil: a random seed.
        public var seed: UInt32?
        /// A GBNF grammar the output must follow (nil: free text).
        public var grammar: String?

        /// Sampling settings; the defaults are llama.cpp's.
        public init(temperature: Float = 0.8, topK: Int32 = 40, topP: Float = 0.95, minP: Float = 0.05,
                    repeatPenalty: Float = 1, seed: UInt32? = nil, grammar: String? = nil) {
            self.temperature = temperature
            self.topK = topK
            self.topP = topP
            self.minP = minP
            self.repeatPenalty = repeatPenalty
            self.seed = seed
            self.grammar = grammar
        }

        /// Greedy sampling: always the most likely token.
        public static let greedy = Sampling(temperature: 0)

        /// The sampler chain these settings make.
        public var chain: SamplerChain {
            var chain = SamplerChain.standard(temperature: temperature, topK: topK, topP: topP, minP: minP,
                                              repeatPenalty: repeatPenalty, seed: seed ?? SamplerChain.randomSeed)
            if let grammar { chain.stages.insert(.grammar(grammar), at: 0) }
            return chain
        }
    }

    private enum Keys: String, CodingKey { case protocolVersion, backendCheck, rpcCheck, generate, validateModel }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        protocolVersion = try c.decode(Int.self, forKey: .protocolVersion)
        if let v = try c.decodeIfPresent(BackendCheck.self, forKey: .backendCheck) {
            command = .backendCheck(v)
        } else if let v = try c.decodeIfPresent(RPCCheck.self, forKey: .rpcCheck) {
            command = .rpcCheck(v)
        } else if let v = try c.decodeIfPresent(Generate.self, forKey: .generate) {
            command = .generate(v)
        } else if let v = try c.decodeIfPresent(ValidateModel.self, forKey: .validateModel) {
            command = .validateModel(v)
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "no known request (backendCheck, rpcCheck, generate, validateModel)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(protocolVersion, forKey: .protocolVersion)
        switch command {
        case .backendCheck(let v): try c.encode(v, forKey: .backendCheck)
        case .rpcCheck(let v): try c.encode(v, forKey: .rpcCheck)
        case .generate(let v): try c.encode(v, forKey: .generate)
        case .validateModel(let v): try c.encode(v, forKey: .validateModel)
        }
    }
}

/// What `llama-helper` answers: one message per line.
public struct HelperResponse: Codable, Sendable, Equatable {
    /// The protocol version of the helper (``LlamaHelperProtocol/version``).
    public var protocolVersion: Int
    /// What the helper says.
    public var message: Message

    /// A response carrying a message, in this protocol version.
    public init(_ message: Message, protocolVersion: Int = LlamaHelperProtocol.version) {
        self.protocolVersion = protocolVersion
        self.message = message
    }

    /// The messages the helper writes.
    public enum Message: Sendable, Equatable {
        /// The answer to `backendCheck` (every device ggml registered) and `rpcCheck` (the server's devices).
        case devices([LlamaDevice])
        /// A generated token and the text it completed.
        case token(Token)
        /// Text released at the end of a generation.
        case text(String)
        /// The last message of a generation.
        case finished(Summary)
        /// The request failed: the last message.
        case failure(Failure)
        /// The answer to `validateModel`: the file loaded.
        case validated(ModelReport)
    }

    /// What a model file that loaded in the helper is.
    public struct ModelReport: Codable, Sendable, Equatable {
        /// `general.architecture`, when the file names one.
        public var architecture: String?
        /// llama.cpp's one-line description (architecture, size, quantization); empty for a vocabulary-only load.
        public var description: String
        /// Tokens in the vocabulary.
        public var vocabularySize: Int32
        /// Whether only the vocabulary was loaded.
        public var vocabularyOnly: Bool

        /// A report of a model file that loaded; every parameter is the property of the same name.
        public init(architecture: String?, description: String, vocabularySize: Int32, vocabularyOnly: Bool) {
            self.architecture = architecture
            self.description = description
            self.vocabularySize = vocabularySize
            self.vocabularyOnly = vocabularyOnly
        }
    }

    /// A generated token and the text it completed.
    public struct Token: Codable, Sendable, Equatable {
        /// The token id.
        public var id: Int32
        /// The text it completed (possibly empty).
        public var text: String
        /// A token and its text.
        public init(id: Int32, text: String) {
            self.id = id
            self.text = text
        }
    }

    /// A ``GenerationSummary`` as the protocol carries it.
    public struct Summary: Codable, Sendable, Equatable {
        /// Tokens of the prompt.
        public var promptTokens: Int
        /// Prompt tokens the KV cache already held.
        public var reusedPromptTokens: Int
        /// The generated tokens.
        public var generatedTokens: [Int32]
        /// The generated text (without a matched stop sequence).
        public var text: String
        /// `maxTokens`, `endOfGeneration`, `stopSequence`, `contextFull` or `cancelled`.
        public var stopReason: String
        /// The token of `endOfGeneration`.
        public var stopToken: Int32?
        /// The text of `stopSequence`.
        public var stopSequence: String?
        /// Seconds spent evaluating the prompt.
        public var promptSeconds: Double
        /// Seconds spent generating.
        public var generationSeconds: Double
        /// Seconds from the request to the first token.
        public var timeToFirstTokenSeconds: Double?

        /// The protocol's form of a generation summary.
        public init(_ s: GenerationSummary) {
            promptTokens = s.promptTokens
            reusedPromptTokens = s.reusedPromptTokens
            generatedTokens = s.generatedTokens
            text = s.text
            switch s.stopReason {
            case .maxTokens: stopReason = "maxTokens"
            case .contextFull: stopReason = "contextFull"
            case .cancelled: stopReason = "cancelled"
            case .endOfGeneration(let token):
                stopReason = "endOfGeneration"
                stopToken = token
            case .stopSequence(let text):
                stopReason = "stopSequence"
                stopSequence = text
            }
            promptSeconds = Self.seconds(s.promptDuration)
            generationSeconds = Self.seconds(s.generationDuration)
            timeToFirstTokenSeconds = s.timeToFirstToken.map(Self.seconds)
        }

        /// The summary; an unknown stop reason is a violation.
        public func summary() throws(LlamaHelperProtocol.Violation) -> GenerationSummary {
            let stop: StopReason
            switch (stopReason, stopToken, stopSequence) {
            case ("maxTokens", _, _): stop = .maxTokens
            case ("contextFull", _, _): stop = .contextFull
            case ("cancelled", _, _): stop = .cancelled
            case ("endOfGeneration", let token?, _): stop = .endOfGeneration(token)
            case ("stopSequence", _, let text?): stop = .stopSequence(text)
            default:
                throw LlamaHelperProtocol.Violation(foundVersion: LlamaHelperProtocol.version,
                                                    description: "unknown stop reason \(stopReason)")
            }
            func duration(_ s: Double) -> Duration { .nanoseconds(Int64((s * 1e9).rounded())) }
            return GenerationSummary(promptTokens: promptTokens, reusedPromptTokens: reusedPromptTokens,
                                     generatedTokens: generatedTokens, text: text, stopReason: stop,
                                     promptDuration: duration(promptSeconds), generationDuration: duration(generationSeconds),
                                     timeToFirstToken: timeToFirstTokenSeconds.map(duration))
        }

        static func seconds(_ d: Duration) -> Double {
            Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
        }
    }

    /// A failed request: the code the library throws, and the message.
    public struct Failure: Codable, Sendable, Equatable, Error, CustomStringConvertible {
        /// The code of the error the library throws.
        public var code: LlamaError.Code
        /// The error's message.
        public var message: String
        /// What an RPC first contact found, when that failed.
        public var rpc: RPCFailure?

        /// A failure with its code, message and RPC details.
        public init(code: LlamaError.Code, message: String, rpc: RPCFailure? = nil) {
            self.code = code
            self.message = message
            self.rpc = rpc
        }

        /// The failure that carries a library error across the process boundary.
        public init(_ error: LlamaError) {
            self.init(code: error.code, message: error.message,
                      rpc: error.underlying as? RPCFailure)
        }

        public var description: String { "\(code): \(message)" }
        /// The library error this failure stands for (itself as the underlying error).
        public var error: LlamaError { LlamaError(code, message, underlying: self) }
    }

    /// Why an RPC server's first contact failed, with the versions when the handshake told them.
    public struct RPCFailure: Codable, Sendable, Equatable, Error, CustomStringConvertible {
        /// What went wrong at first contact; open for new kinds.
        public struct Kind: RawRepresentable, Hashable, Sendable, Codable, CustomStringConvertible {
            public let rawValue: String
            public init(rawValue: String) { self.rawValue = rawValue }
            public var description: String { rawValue }
            /// The server answered the handshake with a protocol version this ggml cannot talk to.
            public static let versionMismatch = Kind(rawValue: "versionMismatch")
            /// The server closed the connection or answered something that is not a handshake:
            /// not a ggml RPC server, or one of a protocol too old to answer.
            public static let noHandshake = Kind(rawValue: "noHandshake")
            /// Nothing accepts connections there (or the host does not resolve).
            public static let unreachable = Kind(rawValue: "unreachable")
            /// The server answered, but ggml found no device on it.
            public static let noDevices = Kind(rawValue: "noDevices")
        }
        /// What went wrong.
        public var kind: Kind
        /// `major.minor.patch` the server sent.
        public var serverVersion: String?
        /// `major.minor.patch` of the loaded ggml's RPC protocol.
        public var clientVersion: String?

        /// An RPC failure, with the protocol versions when the handshake told them.
        public init(kind: Kind, serverVersion: String? = nil, clientVersion: String? = nil) {
            self.kind = kind
            self.serverVersion = serverVersion
            self.clientVersion = clientVersion
        }

        public var description: String {
            "\(kind)" + (serverVersion.map { " (server \($0), client \(clientVersion ?? "?"))" } ?? "")
        }
    }

    private enum Keys: String, CodingKey { case protocolVersion, devices, token, text, finished, failure, validated }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        protocolVersion = try c.decode(Int.self, forKey: .protocolVersion)
        if let v = try c.decodeIfPresent([LlamaDevice].self, forKey: .devices) {
            message = .devices(v)
        } else if let v = try c.decodeIfPresent(Token.self, forKey: .token) {
            message = .token(v)
        } else if let v = try c.decodeIfPresent(String.self, forKey: .text) {
            message = .text(v)
        } else if let v = try c.decodeIfPresent(Summary.self, forKey: .finished) {
            message = .finished(v)
        } else if let v = try c.decodeIfPresent(Failure.self, forKey: .failure) {
            message = .failure(v)
        } else if let v = try c.decodeIfPresent(ModelReport.self, forKey: .validated) {
            message = .validated(v)
        } else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "no known response (devices, token, text, finished, failure, validated)"))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(protocolVersion, forKey: .protocolVersion)
        switch message {
        case .devices(let v): try c.encode(v, forKey: .devices)
        case .token(let v): try c.encode(v, forKey: .token)
        case .text(let v): try c.encode(v, forKey: .text)
        case .finished(let v): try c.encode(v, forKey: .finished)
        case .failure(let v): try c.encode(v, forKey: .failure)
        case .validated(let v): try c.encode(v, forKey: .validated)
        }
    }
}
