public import Foundation
import LlamaRaw

/// The header of a GGUF file, read through the gguf bindings without loading tensor data:
/// metadata and the tensor table.
public struct GGUFFile: Sendable {
    /// A metadata value. Arrays keep their length and a preview of their first items.
    public indirect enum Value: Sendable, Equatable, Encodable, CustomStringConvertible {
        /// A signed integer (any width).
        case int(Int64)
        /// An unsigned integer (any width).
        case uint(UInt64)
        /// A floating-point number (32 or 64 bits).
        case float(Double)
        /// A boolean.
        case bool(Bool)
        /// A string.
        case string(String)
        /// An array: the GGUF type of its elements, its length and its first items.
        case array(elementType: String, count: Int, preview: [Value])

        public var description: String {
            switch self {
            case .int(let v): return "\(v)"
            case .uint(let v): return "\(v)"
            case .float(let v): return "\(v)"
            case .bool(let v): return "\(v)"
            case .string(let s): return s.count > 120 ? String(s.prefix(117)).debugDescription + "..." : s.debugDescription
            case .array(let type, let count, let preview):
                return "[\(type) × \(count)] [" + preview.map(\.description).joined(separator: ", ") + (count > preview.count ? ", ..." : "") + "]"
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            switch self {
            case .int(let v): try c.encode(v)
            case .uint(let v): try c.encode(v)
            case .float(let v): try c.encode(v)
            case .bool(let v): try c.encode(v)
            case .string(let s): try c.encode(s)
            case .array(let type, let count, let preview):
                try c.encode(["type": AnyEncodable(type), "count": AnyEncodable(count), "preview": AnyEncodable(preview)])
            }
        }
    }

    /// One entry of the tensor table.
    public struct Tensor: Sendable, Equatable, Codable {
        /// The tensor's name (`blk.0.attn_q.weight`).
        public var name: String
        /// The ggml type name (`q4_1`, `f32`...).
        public var type: String
        /// The size of each dimension.
        public var shape: [Int64]
        /// Offset from the start of the data section.
        public var offset: Int
        /// Bytes of tensor data.
        public var size: Int
    }

    /// The file that was read.
    public var path: String
    /// The GGUF format version.
    public var version: UInt32
    /// The alignment of tensor data, in bytes.
    public var alignment: Int
    /// Where the tensor data starts in the file.
    public var dataOffset: Int
    /// The file's size in bytes.
    public var fileSize: Int64
    /// Metadata in file order.
    public var metadata: [(key: String, value: Value)]
    /// The tensor table, in file order.
    public var tensors: [Tensor]

    /// Sum of the tensors' sizes.
    public var tensorBytes: Int { tensors.reduce(0) { $0 + $1.size } }

    /// The value of a metadata key (`general.architecture`), or nil when the file has none.
    public subscript(key: String) -> Value? { metadata.first { $0.key == key }?.value }

    /// Reads the header. A file that is not GGUF, is damaged, or is shorter than its tensor
    /// table says is a `.invalidModel` error.
    public init(path: String, runtime: LlamaRuntime, arrayPreview: Int = 8) throws(LlamaError) {
        try LlamaModel.checkGGUF(path)
        let c = runtime.raw
        let params = gguf_init_params(no_alloc: true, ctx: nil)
        guard let ctx = c.gguf_init_from_file(path, params) else {
            throw LlamaError(.invalidModel, "\(path) is not a readable GGUF file: its header is damaged or truncated")
        }
        defer { c.gguf_free(ctx) }
        self.path = path
        version = c.gguf_get_version(ctx)
        alignment = c.gguf_get_alignment(ctx)
        dataOffset = c.gguf_get_data_offset(ctx)
        fileSize = GGUFFile.sizeOfFile(at: path)
        metadata = (0..<c.gguf_get_n_kv(ctx)).map { id in
            (String(cString: c.gguf_get_key(ctx, id)!), Self.value(ctx, id, c, preview: arrayPreview))
        }
        tensors = (0..<c.gguf_get_n_tensors(ctx)).map { id in
            let ne = c.gguf_get_tensor_ne(ctx, id)
            let shape = (0..<4).map { ne?[$0] ?? 1 }
            let dims = shape.lastIndex { $0 != 1 }.map { $0 + 1 } ?? 1
            return Tensor(name: String(cString: c.gguf_get_tensor_name(ctx, id)!),
                          type: c.ggml_type_name(c.gguf_get_tensor_type(ctx, id)).map { String(cString: $0) } ?? "?",
                          shape: Array(shape.prefix(dims)), offset: c.gguf_get_tensor_offset(ctx, id),
                          size: c.gguf_get_tensor_size(ctx, id))
        }
        let end = tensors.map { Int64(dataOffset + $0.offset + $0.size) }.max() ?? Int64(dataOffset)
        guard end <= fileSize else {
            throw LlamaError(.invalidModel, "\(path) is truncated: its tensors end at byte \(end), but the file has \(fileSize) "
                + "bytes. Download it again.")
        }
    }

    private static func value(_ ctx: OpaquePointer, _ id: Int64, _ c: LlamaSymbols, preview: Int) -> Value {
        let type = c.gguf_get_kv_type(ctx, id)
        if type == GGUF_TYPE_ARRAY {
            let element = c.gguf_get_arr_type(ctx, id)
            let count = c.gguf_get_arr_n(ctx, id)
            // Strings have no flat data (asking for it aborts).
            let data = element == GGUF_TYPE_STRING ? nil : c.gguf_get_arr_data(ctx, id)
            let items: [Value] = (0..<min(count, preview)).map { i in
                if element == GGUF_TYPE_STRING { return .string(String(cString: c.gguf_get_arr_str(ctx, id, i)!)) }
                guard let data else { return .string("?") }
                return scalar(element, data, index: i)
            }
            return .array(elementType: c.gguf_type_name(element).map { String(cString: $0) } ?? "?", count: count, preview: items)
        }
        if type == GGUF_TYPE_STRING { return .string(c.gguf_get_val_str(ctx, id).map { String(cString: $0) } ?? "") }
        guard let data = c.gguf_get_val_data(ctx, id) else { return .string("?") }
        return scalar(type, data, index: 0)
    }

    private static func scalar(_ type: gguf_type, _ data: UnsafeRawPointer, index i: Int) -> Value {
        switch type {
        case GGUF_TYPE_UINT8: return .uint(UInt64(data.load(fromByteOffset: i, as: UInt8.self)))
        case GGUF_TYPE_INT8: return .int(Int64(data.load(fromByteOffset: i, as: Int8.self)))
        case GGUF_TYPE_UINT16: return .uint(UInt64(data.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        case GGUF_TYPE_INT16: return .int(Int64(data.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)))
        case GGUF_TYPE_UINT32: return .uint(UInt64(data.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        case GGUF_TYPE_INT32: return .int(Int64(data.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
        case GGUF_TYPE_FLOAT32: return .float(Double(data.loadUnaligned(fromByteOffset: 4 * i, as: Float.self)))
        case GGUF_TYPE_BOOL: return .bool(data.load(fromByteOffset: i, as: UInt8.self) != 0)
        case GGUF_TYPE_UINT64: return .uint(data.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))
        case GGUF_TYPE_INT64: return .int(data.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
        case GGUF_TYPE_FLOAT64: return .float(data.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
        default: return .string("?")
        }
    }
}

// MARK: Validation before llama.cpp loads a file

extension GGUFFile {
    /// The largest `block_count` llama.cpp accepts (`LLAMA_MAX_LAYERS`, src/llama-hparams.h).
    static let maxLayers: Int64 = 512
    /// The largest `expert_count` llama.cpp accepts (`LLAMA_MAX_EXPERTS`, src/llama-hparams.h).
    static let maxExperts: Int64 = 1024
    /// The values of `rope.scaling.type` llama.cpp knows (any other ends the process).
    static let ropeScalingTypes: Set<String> = ["none", "linear", "yarn", "longrope"]

    /// Checks a model file for what llama.cpp's loader asserts on instead of reporting (it ends
    /// the process; a model file is untrusted input), reading the metadata only:
    /// - the header parses, and every tensor's data lies inside the file;
    /// - the vocabulary's token texts are distinct, compared as bytes after llama.cpp's renaming of
    ///   empty ones (a duplicate fails `GGML_ASSERT(id_to_token.size() == token_to_id.size())`);
    ///   scores and token types are arrays of the right element type and at least as many;
    /// - unless `vocabularyOnly` (llama.cpp then reads no hyperparameters): `block_count` within
    ///   1...512, `nextn_predict_layers` at most that, expert counts that agree with each other
    ///   (`expert_count` ≤ 1024, `expert_used_count` ≤ `expert_count`, groups that divide them),
    ///   and a `rope.scaling.type` llama.cpp knows.
    ///
    /// `LlamaModel` runs this before every load (about 10 ms for SmolLM2's 49,152 tokens). It
    /// cannot cover every architecture's own assertions on tensor shapes: for files you do not
    /// trust, ``LlamaModel/validate(at:runtime:helper:vocabularyOnly:timeout:)`` loads them in the
    /// helper process, where an abort is a reported failure.
    ///
    /// - Throws: `.invalidModel` naming the problem; `.fileNotFound` when the file cannot be read.
    public static func validate(path: String, runtime: LlamaRuntime, vocabularyOnly: Bool = false) throws(LlamaError) {
        try LlamaModel.checkGGUF(path)
        let c = runtime.raw
        guard let ctx = c.gguf_init_from_file(path, gguf_init_params(no_alloc: true, ctx: nil)) else {
            throw LlamaError(.invalidModel, "\(path) is not a readable GGUF file: its header is damaged or truncated")
        }
        defer { c.gguf_free(ctx) }
        try checkTensorExtents(ctx, c, path: path)
        try checkVocabulary(ctx, c, path: path)
        if !vocabularyOnly { try checkHyperparameters(ctx, c, path: path) }
    }

    static func checkTensorExtents(_ ctx: OpaquePointer, _ c: LlamaSymbols, path: String) throws(LlamaError) {
        let fileSize = GGUFFile.sizeOfFile(at: path)
        let dataOffset = Int64(c.gguf_get_data_offset(ctx))
        for id in 0..<c.gguf_get_n_tensors(ctx) {
            let (end, overflow) = dataOffset.addingReportingOverflow(Int64(c.gguf_get_tensor_offset(ctx, id)))
            let (last, overflow2) = end.addingReportingOverflow(Int64(c.gguf_get_tensor_size(ctx, id)))
            guard !overflow, !overflow2, last <= fileSize else {
                let name = c.gguf_get_tensor_name(ctx, id).map { String(cString: $0) } ?? "#\(id)"
                throw LlamaError(.invalidModel, "\(path) is damaged or truncated: the data of tensor \(name) ends past the "
                    + "end of the file (\(fileSize) bytes). Download it again.")
            }
        }
    }

    static func checkVocabulary(_ ctx: OpaquePointer, _ c: LlamaSymbols, path: String) throws(LlamaError) {
        let tokensKey = c.gguf_find_key(ctx, "tokenizer.ggml.tokens")
        // No token list, or one of another type: llama.cpp reports that itself.
        guard tokensKey >= 0, c.gguf_get_kv_type(ctx, tokensKey) == GGUF_TYPE_ARRAY,
              c.gguf_get_arr_type(ctx, tokensKey) == GGUF_TYPE_STRING else { return }
        let count = c.gguf_get_arr_n(ctx, tokensKey)
        // As llama.cpp builds its map: the C string (up to a NUL), an empty one renamed `[EMPTY_i]`;
        // compared as bytes (Swift strings would equate canonically equivalent texts).
        var seen = Set<Data>(minimumCapacity: count)
        for i in 0..<count {
            guard let text = c.gguf_get_arr_str(ctx, tokensKey, i) else { continue }
            let length = strlen(text)
            let bytes = length == 0 ? Data("[EMPTY_\(i)]".utf8) : Data(bytes: text, count: length)
            guard seen.insert(bytes).inserted else {
                let shown = String(decoding: bytes, as: UTF8.self)
                throw LlamaError(.invalidModel, "\(path) is damaged: token \(i) of its vocabulary, \(shown.debugDescription), "
                    + "appears twice (llama.cpp would end the process loading it)")
            }
        }
        for (key, types) in [("tokenizer.ggml.scores", [GGUF_TYPE_FLOAT32, GGUF_TYPE_INT32]), ("tokenizer.ggml.token_type", [GGUF_TYPE_INT32])] {
            let id = c.gguf_find_key(ctx, key)
            guard id >= 0 else { continue }
            guard c.gguf_get_kv_type(ctx, id) == GGUF_TYPE_ARRAY, types.contains(c.gguf_get_arr_type(ctx, id)) else {
                throw LlamaError(.invalidModel, "\(path) is damaged: \(key) is not an array of "
                    + types.map { c.gguf_type_name($0).map { String(cString: $0) } ?? "?" }.joined(separator: " or "))
            }
            let n = c.gguf_get_arr_n(ctx, id)
            guard n >= count else {
                throw LlamaError(.invalidModel, "\(path) is damaged: \(key) has \(n) entries for \(count) tokens")
            }
        }
        // A WordPiece (BERT) vocabulary has no byte tokens: llama.cpp aborts (`token_to_byte`) building
        // its token cache when one is marked so. Found by the GGUF fuzz target.
        let modelKey = c.gguf_find_key(ctx, "tokenizer.ggml.model")
        let typesKey = c.gguf_find_key(ctx, "tokenizer.ggml.token_type")
        if modelKey >= 0, c.gguf_get_kv_type(ctx, modelKey) == GGUF_TYPE_STRING,
           c.gguf_get_val_str(ctx, modelKey).map({ String(cString: $0) }) == "bert", typesKey >= 0,
           let types = c.gguf_get_arr_data(ctx, typesKey) {
            let byteType: Int32 = 6  // LLAMA_TOKEN_TYPE_BYTE
            for i in 0..<count where types.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self) == byteType {
                throw LlamaError(.invalidModel, "\(path) is damaged: token \(i) of its WordPiece (bert) vocabulary is marked as "
                    + "a byte token, which WordPiece has none of (llama.cpp would end the process loading it)")
            }
        }
    }

    static func checkHyperparameters(_ ctx: OpaquePointer, _ c: LlamaSymbols, path: String) throws(LlamaError) {
        let archKey = c.gguf_find_key(ctx, "general.architecture")
        guard archKey >= 0, c.gguf_get_kv_type(ctx, archKey) == GGUF_TYPE_STRING,
              let archText = c.gguf_get_val_str(ctx, archKey) else { return }
        let arch = String(cString: archText)
        /// An integer value (scalar, or the largest of an array); nil when absent or not an integer
        /// (llama.cpp reports a wrong type itself).
        func integer(_ name: String) -> Int64? {
            let id = c.gguf_find_key(ctx, "\(arch).\(name)")
            guard id >= 0 else { return nil }
            switch value(ctx, id, c, preview: Int.max) {
            case .int(let v): return v
            case .uint(let v): return Int64(clamping: v)
            case .array(_, _, let items):
                return items.compactMap { item -> Int64? in
                    switch item {
                    case .int(let v): return v
                    case .uint(let v): return Int64(clamping: v)
                    default: return nil
                    }
                }.max()
            default: return nil
            }
        }
        func damaged(_ what: String) -> LlamaError {
            LlamaError(.invalidModel, "\(path) is damaged: \(what) (llama.cpp would end the process loading it)")
        }
        if let layers = integer("block_count") {
            guard layers > 0, layers <= maxLayers else { throw damaged("\(arch).block_count is \(layers), not within 1...\(maxLayers)") }
            if let nextn = integer("nextn_predict_layers"), nextn > layers {
                throw damaged("\(arch).nextn_predict_layers is \(nextn), more than its \(layers) layers")
            }
        }
        let experts = integer("expert_count") ?? 0
        let used = integer("expert_used_count") ?? 0
        let groups = integer("expert_group_count") ?? 0
        let groupsUsed = integer("expert_group_used_count") ?? 0
        guard experts >= 0, experts <= maxExperts else { throw damaged("\(arch).expert_count is \(experts), not within 0...\(maxExperts)") }
        guard used >= 0, used <= experts else { throw damaged("\(arch).expert_used_count is \(used), more than the \(experts) experts") }
        if experts > 0 {
            guard used > 0 else { throw damaged("\(arch).expert_used_count is 0 for \(experts) experts") }
            guard groups >= 0, groups < experts else { throw damaged("\(arch).expert_group_count is \(groups) for \(experts) experts") }
            if groups > 1 {
                guard experts % groups == 0, groupsUsed > 0, groupsUsed < groups else {
                    throw damaged("the expert groups (\(groups), \(groupsUsed) used) do not divide the \(experts) experts")
                }
            }
        } else if groups != 0 {
            throw damaged("\(arch).expert_group_count is \(groups), but the model has no experts")
        }
        let ropeKey = c.gguf_find_key(ctx, "\(arch).rope.scaling.type")
        if ropeKey >= 0, c.gguf_get_kv_type(ctx, ropeKey) == GGUF_TYPE_STRING, let text = c.gguf_get_val_str(ctx, ropeKey) {
            let type = String(cString: text)
            guard ropeScalingTypes.contains(type) else {
                throw damaged("\(arch).rope.scaling.type is \(type.debugDescription), not one of \(ropeScalingTypes.sorted().joined(separator: ", "))")
            }
        }
    }
}

/// Encodes any Encodable value (for mixed dictionaries).
struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}

extension GGUFFile {
    /// The size of the file at `path` in bytes, through symbolic links (a linked model is the
    /// file it points to); 0 when it cannot be read.
    static func sizeOfFile(at path: String) -> Int64 {
        let target = URL(fileURLWithPath: path).resolvingSymlinksInPath().path
        return (try? FileManager.default.attributesOfItem(atPath: target)[.size] as? Int64) ?? 0
    }
}
