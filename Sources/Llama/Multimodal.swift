// Images and audio through libmtmd: a projector (mmproj) loaded for a model, media decoded into
// bitmaps, prompts with media markers tokenized into chunks, and the chunks evaluated into a
// context sequence with mtmd-helper's batched evaluation.
import Crypto
public import Foundation
import LlamaRaw
import Synchronization

extension LlamaError.Code {
    /// Media bytes could not be decoded (corrupt, truncated, or a format mtmd-helper does not
    /// read), or the media is empty (a 0×0 image, no samples).
    public static let invalidMedia = LlamaError.Code(rawValue: "invalidMedia")
    /// A projector (mmproj) does not fit the text model: another embedding width, or an image
    /// template that needs tokens the model's vocabulary lacks.
    public static let projectorMismatch = LlamaError.Code(rawValue: "projectorMismatch")
}

/// How a projector is loaded. The corresponding C struct is `mtmd_context_params`.
public struct ProjectorOptions: Sendable {
    /// Run the encoder on a GPU when the libraries have one.
    public var useGPU = true
    /// Threads of the encoder (nil: libmtmd's default).
    public var threads: Int32?
    /// Run one encode pass at load time, so that the first image does not pay for allocation.
    public var warmup = true
    /// The fewest and most tokens an image may become, for projectors with dynamic resolution
    /// (nil: the projector's metadata decides).
    public var imageMinTokens: Int32?
    /// The most tokens an image may become (nil: the projector's metadata decides).
    public var imageMaxTokens: Int32?
    /// The text that marks where media go in a prompt (nil: libmtmd's `<__media__>`).
    public var mediaMarker: String?
    /// How many encoded images or clips the projector keeps, so that a chat does not encode
    /// again media it already saw (0: none).
    public var cachedMediaLimit = 32

    /// libmtmd's defaults: GPU when available, warm-up, 32 media cached.
    public init() {}
}

/// A multimodal projector (an `mmproj` GGUF file) loaded for a text model: it turns images and
/// audio into embeddings the model consumes.
///
/// The corresponding C type is `mtmd_context`. Encoding is serialized (libmtmd's context is not
/// thread-safe); any number of ``LlamaContext``s of the model may share one projector.
public final class LlamaProjector: Sendable {
    /// The text model the projector feeds.
    public let model: LlamaModel
    /// The mmproj file.
    public let path: String
    nonisolated(unsafe) let pointer: OpaquePointer
    let c: LlamaSymbols
    /// Whether the projector reads images, and audio.
    public let supportsVision: Bool
    /// Whether the projector reads audio.
    public let supportsAudio: Bool
    /// The sample rate audio must have (Hz), when the projector reads audio.
    public let audioSampleRate: Int?
    /// Whether the model places media with M-RoPE positions (Qwen2-VL and kin): a chunk then
    /// takes fewer positions than tokens.
    public let usesMRoPE: Bool
    /// The text that marks where media go in a prompt.
    public let marker: String
    /// The projector type from its metadata (`clip.projector_type`, e.g. `mlp`, `idefics3`, `qwen2a`).
    public let projectorType: String?
    let cacheLimit: Int
    /// Serializes libmtmd calls that write the context's state (encoding), and holds the cache.
    private let state = Mutex<EncodeState>(EncodeState())
    private let encodes = Atomic<Int>(0)

    struct EncodeState {
        var cache: [String: [Float]] = [:]
        var order: [String] = []
    }

    /// Loads `path` for `model`, after checking that it is a readable projector GGUF; libmtmd
    /// then checks that it fits the model (its output width is the model's embedding width).
    public init(model: LlamaModel, path: String, options: ProjectorOptions = ProjectorOptions()) throws(LlamaError) {
        let runtime = model.runtime
        let c = runtime.raw
        guard !runtime.libraries.absentLibraries.contains(.mtmd) else {
            throw LlamaError(.unsupported, "libmtmd is not in \(runtime.libraryDirectory.path): images and audio need a "
                + "llama.cpp build with libmtmd (release archives have it; source builds need -DLLAMA_BUILD_MTMD=ON)")
        }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw LlamaError(.fileNotFound, "cannot read the projector \(path): no such file, or no permission. "
                + "Pass the mmproj GGUF of the model (models pull --mmproj fetches it)")
        }
        // What libmtmd would assert on (a damaged header, truncated tensors) is refused here first.
        let file: GGUFFile
        do { file = try GGUFFile(path: path, runtime: runtime) } catch {
            throw LlamaError(.invalidModel, "\(path) is not a readable projector: \(error.message)", underlying: error)
        }
        let type = Self.projectorType(file)
        let hasVision = file["clip.has_vision_encoder"] == .bool(true)
        let hasAudio = file["clip.has_audio_encoder"] == .bool(true)
        guard type != nil, hasVision || hasAudio else {
            let architecture = file["general.architecture"].map { " (architecture \($0))" } ?? ""
            throw LlamaError(.invalidModel, "\(path) is not a multimodal projector\(architecture): it has no "
                + "clip.projector_type and no vision or audio encoder. Pass the model's mmproj-*.gguf, not a text model")
        }
        var params = try Self.mtmd(c.mtmd_context_params_default)
        params.use_gpu = options.useGPU
        if let threads = options.threads {
            guard threads > 0 else { throw LlamaError(.invalidArgument, "threads must be positive") }
            params.n_threads = threads
        }
        params.warmup = options.warmup
        params.print_timings = false
        if let n = options.imageMinTokens { params.image_min_tokens = n }
        if let n = options.imageMaxTokens { params.image_max_tokens = n }
        if let min = options.imageMinTokens, let max = options.imageMaxTokens, min > max {
            throw LlamaError(.invalidArgument, "imageMinTokens (\(min)) is more than imageMaxTokens (\(max))")
        }
        if let marker = options.mediaMarker, marker.isEmpty {
            throw LlamaError(.invalidArgument, "the media marker must not be empty")
        }
        let loaded: (OpaquePointer?, [String]) = try MultimodalLog.capturing(c) { () throws(LlamaError) -> OpaquePointer? in
            try Array((options.mediaMarker ?? "").utf8CString).withUnsafeBufferPointer { (marker) throws(LlamaError) -> OpaquePointer? in
                if options.mediaMarker != nil { params.media_marker = marker.baseAddress }
                return try Self.mtmd { () throws(LlamaSymbolError) in try c.mtmd_init_from_file(path, model.pointer, params) }
            }
        }
        guard let ctx = loaded.0 else {
            let errors = loaded.1
            if let mismatch = errors.first(where: { $0.contains("mismatch between text model") }) {
                throw LlamaError(.projectorMismatch, "the projector \(path) does not fit the model \(model.path): "
                    + "\(mismatch.replacingOccurrences(of: "\n", with: " ")) Use the mmproj made for this model")
            }
            throw LlamaError(.invalidModel, "libmtmd could not load the projector \(path)"
                + (errors.isEmpty ? "" : ": " + errors.suffix(3).joined(separator: " ")))
        }
        self.model = model
        self.path = path
        self.c = c
        pointer = ctx
        projectorType = type
        supportsVision = (try? c.mtmd_support_vision(ctx)) ?? false
        supportsAudio = (try? c.mtmd_support_audio(ctx)) ?? false
        let rate = (try? c.mtmd_get_audio_sample_rate(ctx)) ?? -1
        audioSampleRate = rate > 0 ? Int(rate) : nil
        usesMRoPE = (try? c.mtmd_decode_use_mrope(ctx)) ?? false
        marker = ((try? c.mtmd_get_marker(ctx)) ?? nil).map { String(cString: $0) } ?? "<__media__>"
        cacheLimit = max(0, options.cachedMediaLimit)
    }

    deinit { try? c.mtmd_free(pointer) }

    /// libmtmd's default media marker (`<__media__>`).
    public static func defaultMarker(runtime: LlamaRuntime) throws(LlamaError) -> String {
        try mtmd { () throws(LlamaSymbolError) in try runtime.raw.mtmd_default_marker() }.map { String(cString: $0) } ?? "<__media__>"
    }

    static func projectorType(_ file: GGUFFile) -> String? {
        for key in ["clip.projector_type", "clip.vision.projector_type", "clip.audio.projector_type"] {
            if case .string(let s) = file[key], !s.isEmpty { return s }
        }
        return nil
    }

    /// Calls a libmtmd function, whose absence is `.unsupported`.
    static func mtmd<R>(_ body: () throws(LlamaSymbolError) -> R) throws(LlamaError) -> R {
        do { return try body() } catch {
            throw LlamaError(.unsupported, error.description, underlying: error)
        }
    }

    /// How many times media were encoded (cache hits do not count).
    public var encodeCount: Int { encodes.load(ordering: .relaxed) }

    /// Forgets the encoded media kept for reuse.
    public func clearCache() {
        state.withLock { s in
            s.cache = [:]
            s.order = []
        }
    }

    // MARK: Tokenizing

    /// Splits a prompt at its media markers (``marker``) into text and media chunks: one media
    /// item per marker, in order. Text is tokenized with the model's vocabulary.
    ///
    /// The corresponding C function is `mtmd_tokenize`.
    public func tokenize(_ text: String, media: [LlamaMedia] = [], addSpecial: Bool = true,
                         parseSpecial: Bool = true) throws(LlamaError) -> LlamaMultimodalPrompt {
        let markers = text.components(separatedBy: marker).count - 1
        guard markers == media.count else {
            throw LlamaError(.invalidArgument, "the prompt has \(markers) media marker(s) (\(marker)) but \(media.count) "
                + "media were given: put one marker where each image or audio clip goes")
        }
        for item in media {
            if item.isAudio && !supportsAudio {
                throw LlamaError(.unsupported, "the projector \(path) does not read audio (it has no audio encoder)")
            }
            if !item.isAudio && !supportsVision {
                throw LlamaError(.unsupported, "the projector \(path) does not read images (it has no vision encoder)")
            }
        }
        guard let chunks = try Self.mtmd(c.mtmd_input_chunks_init) else {
            throw LlamaError(.creationFailed, "libmtmd could not allocate input chunks")
        }
        let status: Int32 = try withExtendedLifetime(media) { () throws(LlamaError) -> Int32 in
            let bitmaps: [OpaquePointer?] = media.map { $0.pointer }
            let utf8 = Array(text.utf8CString)
            return try utf8.withUnsafeBufferPointer { (chars) throws(LlamaError) -> Int32 in
                var input = mtmd_input_text(text: chars.baseAddress, text_len: chars.count - 1,
                                            add_special: addSpecial, parse_special: parseSpecial)
                return try bitmaps.withUnsafeBufferPointer { (list) throws(LlamaError) -> Int32 in
                    try state.withLock { _ throws(LlamaError) -> Int32 in
                        try Self.mtmd { () throws(LlamaSymbolError) in
                            try c.mtmd_tokenize(pointer, chunks, &input, list.baseAddress, list.count)
                        }
                    }
                }
            }
        }
        let prompt = LlamaMultimodalPrompt(pointer: chunks, c: c, mediaIDs: media.map(\.id))
        switch status {
        case 0: break
        case 1: throw LlamaError(.invalidArgument, "the prompt's media markers do not match the \(media.count) media given",
                                 status: status)
        case 2: throw LlamaError(.invalidMedia, "the projector could not preprocess the media (an image too small or "
                                    + "too large for it, or audio too short)", status: status)
        default: throw LlamaError(.invalidArgument, "libmtmd could not tokenize the prompt", status: status)
        }
        let vocabCount = model.vocab.count
        for chunk in prompt.chunks where chunk.kind == .text {
            if let bad = chunk.tokens.first(where: { $0 < 0 || $0 >= vocabCount }) {
                throw LlamaError(.projectorMismatch, "the projector \(path) (\(projectorType ?? "unknown type")) frames media "
                    + "with tokens the model's vocabulary lacks (token \(bad)): it was made for another text model. "
                    + "Use the mmproj made for \(model.path)")
            }
        }
        return prompt
    }

    // MARK: Encoding

    /// The embeddings of a media chunk of `prompt` (tokens × the model's embedding width,
    /// row-major), encoded once and then taken from the cache by the media's id.
    ///
    /// The corresponding C functions are `mtmd_encode_chunk` and `mtmd_get_output_embd`.
    public func embeddings(of prompt: LlamaMultimodalPrompt, chunk index: Int) throws(LlamaError) -> [Float] {
        guard prompt.chunks.indices.contains(index), prompt.chunks[index].kind != .text else {
            throw LlamaError(.invalidArgument, "chunk \(index) of the prompt is not an image or audio chunk")
        }
        return try withExtendedLifetime(prompt) { () throws(LlamaError) -> [Float] in
            try encode(prompt.chunkPointer(index), key: prompt.cacheKey(of: index), tokens: prompt.chunks[index].tokenCount)
        }
    }

    func encode(_ chunk: OpaquePointer, key: String?, tokens: Int) throws(LlamaError) -> [Float] {
        let width = Int(c.llama_model_n_embd_inp(model.pointer))
        return try state.withLock { (s) throws(LlamaError) -> [Float] in
            if let key, let hit = s.cache[key] { return hit }
            let status = try Self.mtmd { () throws(LlamaSymbolError) in try c.mtmd_encode_chunk(pointer, chunk) }
            guard status == 0 else {
                throw LlamaError(.decodeFailed, "the projector failed to encode the media", status: status)
            }
            encodes.add(1, ordering: .relaxed)
            guard let out = try Self.mtmd({ () throws(LlamaSymbolError) in try c.mtmd_get_output_embd(pointer) }) else {
                throw LlamaError(.decodeFailed, "the projector produced no embeddings")
            }
            let embeddings = Array(UnsafeBufferPointer(start: out, count: tokens * width))
            if let key, cacheLimit > 0 {
                s.cache[key] = embeddings
                s.order.append(key)
                while s.order.count > cacheLimit { s.cache[s.order.removeFirst()] = nil }
            }
            return embeddings
        }
    }
}

/// An image or an audio clip, decoded, ready to go in a prompt. The corresponding C type is
/// `mtmd_bitmap`.
public final class LlamaMedia: Sendable {
    nonisolated(unsafe) let pointer: OpaquePointer
    let c: LlamaSymbols
    /// Whether it is audio (PCM samples) rather than an image.
    public let isAudio: Bool
    /// Pixels of an image; for audio, ``width`` is the number of samples and ``height`` 1.
    public let width: Int
    /// Pixels of an image's height; 1 for audio.
    public let height: Int
    /// What identifies the content: projectors reuse the embeddings of media with the same id.
    /// Media decoded from bytes have the SHA-256 of the bytes; pixels and samples the SHA-256
    /// of their values, unless given one.
    public let id: String

    /// The most pixels an image given as pixels may have.
    public static let maxPixels = 1 << 28

    private init(pointer: OpaquePointer, c: LlamaSymbols, id: String?) throws(LlamaError) {
        self.pointer = pointer
        self.c = c
        isAudio = (try? c.mtmd_bitmap_is_audio(pointer)) ?? false
        width = Int((try? c.mtmd_bitmap_get_nx(pointer)) ?? 0)
        height = Int((try? c.mtmd_bitmap_get_ny(pointer)) ?? 0)
        if let id {
            _ = try? c.mtmd_bitmap_set_id(pointer, id)
            self.id = id
        } else {
            self.id = ((try? c.mtmd_bitmap_get_id(pointer)) ?? nil).map { String(cString: $0) } ?? ""
        }
        guard width > 0, height > 0 else {
            throw LlamaError(.invalidMedia, isAudio ? "the audio has no samples" : "the image is empty (\(width)×\(height))")
        }
    }

    deinit { try? c.mtmd_bitmap_free(pointer) }

    /// Reads and decodes a file: an image (JPEG, PNG, BMP, GIF... as stb_image reads them) or
    /// audio (WAV, MP3, FLAC), told apart by their bytes. Audio is resampled to the projector's rate.
    public convenience init(file path: String, projector: LlamaProjector) throws(LlamaError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw LlamaError(.fileNotFound, "cannot read the media file \(path): no such file, or no permission")
        }
        try self.init(bytes: data, projector: projector, what: path)
    }

    /// Decodes the bytes of an image or audio file (see ``init(file:projector:)``).
    public convenience init(bytes: Data, projector: LlamaProjector) throws(LlamaError) {
        try self.init(bytes: bytes, projector: projector, what: "the media bytes")
    }

    private convenience init(bytes: Data, projector: LlamaProjector, what: String) throws(LlamaError) {
        let c = projector.c
        guard !bytes.isEmpty else { throw LlamaError(.invalidMedia, "\(what): no bytes") }
        let options = try LlamaProjector.mtmd(c.mtmd_helper_init_opt_default)
        let wrapper = try [UInt8](bytes).withUnsafeBufferPointer { (raw) throws(LlamaError) -> mtmd_helper_bitmap_wrapper in
            try MultimodalLog.quietly(c) { () throws(LlamaError) -> mtmd_helper_bitmap_wrapper in
                try LlamaProjector.mtmd { () throws(LlamaSymbolError) in
                    try c.mtmd_helper_bitmap_init_from_buf(projector.pointer, raw.baseAddress,
                                                           raw.count, false, options)
                }
            }
        }
        if let video = wrapper.video_ctx { try? c.mtmd_helper_video_free(video) }
        guard let bitmap = wrapper.bitmap else {
            if !projector.supportsAudio, Self.looksLikeAudio(bytes) {
                throw LlamaError(.unsupported, "\(what) is audio, but the projector \(projector.path) reads only images "
                    + "(it has no audio encoder)")
            }
            throw LlamaError(.invalidMedia, "\(what) could not be decoded: not an image (JPEG, PNG, BMP, GIF, TGA, PSD, HDR, "
                + "PIC, PNM) or audio file (WAV, MP3, FLAC) that libmtmd reads, or the file is damaged or truncated")
        }
        try self.init(pointer: bitmap, c: c, id: nil)
    }

    /// Whether bytes begin like a WAV, MP3 or FLAC file (libmtmd decodes audio only for a
    /// projector that reads audio).
    static func looksLikeAudio(_ bytes: Data) -> Bool {
        let head = [UInt8](bytes.prefix(12))
        func starts(_ s: String, at offset: Int = 0) -> Bool {
            let m = Array(s.utf8)
            return head.count >= offset + m.count && Array(head[offset..<(offset + m.count)]) == m
        }
        if starts("RIFF") && starts("WAVE", at: 8) { return true }
        if starts("ID3") || starts("fLaC") { return true }
        return head.count >= 2 && head[0] == 0xFF && head[1] & 0xE0 == 0xE0
    }

    /// An image from 8-bit RGB pixels, row by row (`width × height × 3` bytes).
    public convenience init(rgb: [UInt8], width: Int, height: Int, runtime: LlamaRuntime, id: String? = nil) throws(LlamaError) {
        guard width > 0, height > 0 else { throw LlamaError(.invalidMedia, "the image is empty (\(width)×\(height))") }
        guard width <= Self.maxPixels / height, width <= Int(UInt32.max), height <= Int(UInt32.max) else {
            throw LlamaError(.invalidMedia, "the image is \(width)×\(height): more than \(Self.maxPixels) pixels")
        }
        guard rgb.count == width * height * 3 else {
            throw LlamaError(.invalidArgument, "\(rgb.count) bytes are not the \(width * height * 3) of a \(width)×\(height) RGB image")
        }
        let c = runtime.raw
        guard let bitmap = try LlamaProjector.mtmd({ () throws(LlamaSymbolError) in
            try c.mtmd_bitmap_init(UInt32(width), UInt32(height), rgb)
        }) else { throw LlamaError(.creationFailed, "libmtmd could not create the image") }
        try self.init(pointer: bitmap, c: c, id: id ?? Self.digest("rgb \(width)x\(height)", rgb))
    }

    /// Audio from mono PCM samples in [-1, 1] at the projector's ``LlamaProjector/audioSampleRate``.
    public convenience init(pcm: [Float], runtime: LlamaRuntime, id: String? = nil) throws(LlamaError) {
        guard !pcm.isEmpty else { throw LlamaError(.invalidMedia, "the audio has no samples") }
        guard pcm.allSatisfy(\.isFinite) else { throw LlamaError(.invalidMedia, "the audio has samples that are not finite") }
        let c = runtime.raw
        guard let bitmap = try LlamaProjector.mtmd({ () throws(LlamaSymbolError) in
            try c.mtmd_bitmap_init_from_audio(pcm.count, pcm)
        }) else { throw LlamaError(.creationFailed, "libmtmd could not create the audio") }
        let bytes = pcm.withUnsafeBytes { Array($0) }
        try self.init(pointer: bitmap, c: c, id: id ?? Self.digest("pcm", bytes))
    }

    static func digest(_ kind: String, _ bytes: [UInt8]) -> String {
        var hasher = SHA256()
        hasher.update(data: Data(kind.utf8))
        hasher.update(data: bytes)
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}

/// A prompt split into text and media chunks (``LlamaProjector/tokenize(_:media:addSpecial:parseSpecial:)``).
/// The corresponding C type is `mtmd_input_chunks`.
public final class LlamaMultimodalPrompt: Sendable {
    /// What a chunk holds.
    public enum Kind: Sendable, Equatable {
        /// Text tokens, image embeddings, or audio embeddings.
        case text, image, audio
    }

    /// One chunk of the prompt: text or one medium.
    public struct Chunk: Sendable, Equatable {
        /// What the chunk holds.
        public var kind: Kind
        /// Tokens the chunk puts in the context (text tokens, or embeddings).
        public var tokenCount: Int
        /// Positions it takes (fewer than tokens with M-RoPE).
        public var positionCount: Int
        /// The text tokens (text chunks).
        public var tokens: [LlamaToken]
        /// The id of the media it came from (media chunks).
        public var mediaID: String?
    }

    nonisolated(unsafe) let pointer: OpaquePointer
    let c: LlamaSymbols
    /// The chunks, in prompt order.
    public let chunks: [Chunk]
    /// The ids of the media given, in order.
    let mediaIDs: [String]

    init(pointer: OpaquePointer, c: LlamaSymbols, mediaIDs: [String]) {
        self.pointer = pointer
        self.c = c
        self.mediaIDs = mediaIDs
        let count = (try? c.mtmd_input_chunks_size(pointer)) ?? 0
        chunks = (0..<count).map { i in
            let chunk = (try? c.mtmd_input_chunks_get(pointer, i)) ?? nil
            let type = (try? c.mtmd_input_chunk_get_type(chunk)) ?? MTMD_INPUT_CHUNK_TYPE_TEXT
            let kind: Kind = type == MTMD_INPUT_CHUNK_TYPE_IMAGE ? .image : type == MTMD_INPUT_CHUNK_TYPE_AUDIO ? .audio : .text
            var tokens: [LlamaToken] = []
            if kind == .text {
                var n = 0
                if let p = (try? c.mtmd_input_chunk_get_tokens_text(chunk, &n)) ?? nil { tokens = Array(UnsafeBufferPointer(start: p, count: n)) }
            }
            let id = kind == .text ? nil : ((try? c.mtmd_input_chunk_get_id(chunk)) ?? nil).map { String(cString: $0) }
            return Chunk(kind: kind, tokenCount: (try? c.mtmd_input_chunk_get_n_tokens(chunk)) ?? 0,
                         positionCount: Int((try? c.mtmd_input_chunk_get_n_pos(chunk)) ?? 0), tokens: tokens, mediaID: id)
        }
    }

    deinit { try? c.mtmd_input_chunks_free(pointer) }

    /// Tokens in all (what the prompt fills of the KV cache).
    public var tokenCount: Int { chunks.reduce(0) { $0 + $1.tokenCount } }
    /// Positions in all (the next position after the prompt).
    public var positionCount: Int { chunks.reduce(0) { $0 + $1.positionCount } }

    func chunkPointer(_ index: Int) -> OpaquePointer {
        // Indices are checked by callers against `chunks`, read from the same list.
        ((try? c.mtmd_input_chunks_get(pointer, index)) ?? nil)!
    }

    /// What identifies a media chunk's embeddings: the media id, the chunk's rank among the
    /// chunks of one media item (an image may become several slices, all with its id) and its
    /// token count. The same media given twice makes twice its chunks, with the same keys.
    func cacheKey(of index: Int) -> String? {
        guard let id = chunks[index].mediaID, !id.isEmpty else { return nil }
        let total = chunks.filter { $0.mediaID == id }.count
        let perItem = max(1, total / max(1, mediaIDs.filter { $0 == id }.count))
        let rank = chunks[..<index].filter { $0.mediaID == id }.count % perItem
        return "\(id)#\(rank)/\(chunks[index].tokenCount)"
    }

    /// What identifies each chunk's content, for comparing what a cache holds with a new prompt.
    var chunkKeys: [String] {
        chunks.indices.map { i in
            chunks[i].kind == .text ? "t:" + chunks[i].tokens.map(String.init).joined(separator: ",") : "m:" + (cacheKey(of: i) ?? UUID().uuidString)
        }
    }
}

/// libmtmd logs through its own callback (`mtmd_helper_log_set`): routed to the runtime's log,
/// and captured while a projector loads, so that its reason for refusing one reaches the error.
enum MultimodalLog {
    struct State {
        var installed = false
        var capture: [String]?
        var quiet = 0
    }
    static let state = Mutex(State())
    /// Serializes loads, so that one capture holds one load's lines.
    static let loading = Mutex(())

    static let callback: ggml_log_callback = { level, text, _ in
        guard let text else { return }
        let (capturing, quiet) = MultimodalLog.state.withLock { s -> (Bool, Bool) in
            if level == GGML_LOG_LEVEL_ERROR, s.capture != nil {
                s.capture!.append(String(cString: text).trimmingCharacters(in: .whitespacesAndNewlines))
            }
            return (s.capture != nil, s.quiet > 0)
        }
        // Errors of a failed load become the thrown error; failed decodes are the caller's error.
        if (capturing || quiet) && level == GGML_LOG_LEVEL_ERROR { return }
        LlamaLog.receive(level: level, text: text)
    }

    static func install(_ c: LlamaSymbols) {
        let first = state.withLock { s -> Bool in
            defer { s.installed = true }
            return !s.installed
        }
        if first { try? c.mtmd_helper_log_set(callback, nil) }
    }

    /// Runs `body`, collecting the error lines libmtmd logs meanwhile.
    static func capturing<R>(_ c: LlamaSymbols, _ body: () throws(LlamaError) -> R) throws(LlamaError) -> (R, [String]) {
        install(c)
        return try loading.withLock { _ throws(LlamaError) -> (R, [String]) in
            state.withLock { $0.capture = [] }
            defer { state.withLock { $0.capture = nil } }
            let result = try body()
            return (result, state.withLock { $0.capture ?? [] })
        }
    }

    /// Runs `body` with libmtmd's error lines kept out of the log (the caller throws instead).
    static func quietly<R>(_ c: LlamaSymbols, _ body: () throws(LlamaError) -> R) throws(LlamaError) -> R {
        install(c)
        state.withLock { $0.quiet += 1 }
        defer { state.withLock { $0.quiet -= 1 } }
        return try body()
    }
}
