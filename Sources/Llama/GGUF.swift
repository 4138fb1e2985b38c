public import Foundation
import LlamaRaw

/// The header of a GGUF file, read through the gguf bindings without loading tensor data:
/// metadata and the tensor table.
public struct GGUFFile: Sendable {
    /// A metadata value. Arrays keep their length and a preview of their first items.
    public indirect enum Value: Sendable, Equatable, Encodable, CustomStringConvertible {
        case int(Int64)
        case uint(UInt64)
        case float(Double)
        case bool(Bool)
        case string(String)
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

    public struct Tensor: Sendable, Equatable, Codable {
        public var name: String
        /// The ggml type name (`q4_1`, `f32`...).
        public var type: String
        public var shape: [Int64]
        /// Offset from the start of the data section.
        public var offset: Int
        public var size: Int
    }

    public var path: String
    public var version: UInt32
    public var alignment: Int
    /// Where the tensor data starts in the file.
    public var dataOffset: Int
    public var fileSize: Int64
    /// Metadata in file order.
    public var metadata: [(key: String, value: Value)]
    public var tensors: [Tensor]

    /// Sum of the tensors' sizes.
    public var tensorBytes: Int { tensors.reduce(0) { $0 + $1.size } }

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
        fileSize = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int64) ?? 0
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

/// Encodes any Encodable value (for mixed dictionaries).
struct AnyEncodable: Encodable {
    let value: any Encodable
    init(_ value: any Encodable) { self.value = value }
    func encode(to encoder: any Encoder) throws { try value.encode(to: encoder) }
}
