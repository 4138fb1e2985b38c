public import Foundation
import LlamaRaw

extension GGUFFile {
    /// The GGUF type a metadata value is written as.
    public enum ScalarType: String, Sendable, CaseIterable {
        /// `GGUF_TYPE_UINT8`.
        case uint8 = "u8"
        /// `GGUF_TYPE_INT8`.
        case int8 = "i8"
        /// `GGUF_TYPE_UINT16`.
        case uint16 = "u16"
        /// `GGUF_TYPE_INT16`.
        case int16 = "i16"
        /// `GGUF_TYPE_UINT32` (most of llama.cpp's hyper-parameters).
        case uint32 = "u32"
        /// `GGUF_TYPE_INT32`.
        case int32 = "i32"
        /// `GGUF_TYPE_UINT64`.
        case uint64 = "u64"
        /// `GGUF_TYPE_INT64`.
        case int64 = "i64"
        /// `GGUF_TYPE_FLOAT32`.
        case float32 = "f32"
        /// `GGUF_TYPE_FLOAT64`.
        case float64 = "f64"
        /// `GGUF_TYPE_BOOL`.
        case bool
        /// `GGUF_TYPE_STRING`.
        case string = "str"
    }

    /// One change of a rewrite (``GGUFFile/rewrite(_:to:setting:removing:runtime:)``): a key set
    /// to a scalar value.
    public struct MetadataEdit: Sendable, Equatable, CustomStringConvertible {
        /// The key, e.g. `llama.pooling_type`.
        public var key: String
        /// The value: `.int`, `.uint`, `.float`, `.bool` or `.string` (arrays cannot be written).
        public var value: Value
        /// The type to write. `nil`: the type the key has in the file; for a new key, `i32` for
        /// `.int`, `u32` for `.uint` (llama.cpp's hyper-parameters), `f32` for `.float`, wider
        /// where the value needs it.
        public var type: ScalarType?

        /// A key set to `value`, written as `type`.
        public init(key: String, value: Value, type: ScalarType? = nil) {
            self.key = key
            self.value = value
            self.type = type
        }

        /// Parses `KEY=TYPE:VALUE`, `--override-kv`'s syntax: TYPE is `int`, `uint`, `float`, `bool`,
        /// `str`, or a width (`u8`, `i8`, `u16`, `i16`, `u32`, `i32`, `u64`, `i64`, `f32`, `f64`).
        public init(parsing text: String) throws(LlamaError) {
            func malformed(_ why: String) -> LlamaError {
                LlamaError(.invalidArgument, "\(text.prefix(200)): \(why); write KEY=TYPE:VALUE, e.g. llama.pooling_type=u32:4")
            }
            guard let equals = text.firstIndex(of: "="), equals != text.startIndex else {
                throw malformed("it has no KEY= before TYPE:VALUE")
            }
            let typed = text[text.index(after: equals)...]
            guard let colon = typed.firstIndex(of: ":") else { throw malformed("the value has no TYPE: prefix") }
            let name = String(typed[..<colon]), raw = String(typed[typed.index(after: colon)...])
            key = String(text[..<equals])
            let width: ScalarType? = ScalarType(rawValue: name)
            switch width ?? ["int": ScalarType.int64, "uint": .uint64, "float": .float64][name] {
            case .int8, .int16, .int32, .int64:
                guard let v = Int64(raw) else { throw malformed("\(raw) is not an integer") }
                value = .int(v)
            case .uint8, .uint16, .uint32, .uint64:
                guard let v = UInt64(raw) else { throw malformed("\(raw) is not an unsigned integer") }
                value = .uint(v)
            case .float32, .float64:
                guard let v = Double(raw), v.isFinite else { throw malformed("\(raw) is not a finite number") }
                value = .float(v)
            case .bool:
                guard raw == "true" || raw == "false" else { throw malformed("a bool is true or false, not \(raw)") }
                value = .bool(raw == "true")
            case .string:
                value = .string(raw)
            case nil:
                throw malformed("unknown type \(name): use int, uint, float, bool, str or a width (u32, i32, f32, ...)")
            }
            type = width
        }

        public var description: String {
            let name = type?.rawValue ?? {
                switch value {
                case .int: "int"
                case .uint: "uint"
                case .float: "float"
                case .bool: "bool"
                default: "str"
                }
            }()
            if case .string(let s) = value { return "\(key)=\(name):\(s)" }
            return "\(key)=\(name):\(value)"
        }
    }

    /// Writes a copy of the GGUF file at `input` to `output` with metadata keys set and removed,
    /// and the tensor data unchanged (streamed, so a large model needs no memory for its weights),
    /// as gguf-py's `gguf_new_metadata.py` does.
    ///
    /// The copy is written beside `output` (beside the file it links to, when it is a symbolic
    /// link, which stays) and renamed into place when complete, so a failure or a cancelled task
    /// (`.cancelled`) leaves no partial file; `output` may be `input`, and an existing `output`
    /// keeps its permissions. Bad edits are `.invalidArgument` before anything is written: a value
    /// out of its type's range, an array (or a scalar for a key that holds one), a removed key
    /// that is not there, or `general.alignment` (the data would move).
    public static func rewrite(_ input: String, to output: String, setting edits: [MetadataEdit],
                               removing removals: [String] = [], runtime: LlamaRuntime) throws(LlamaError) {
        let source = try GGUFFile(path: input, runtime: runtime, arrayPreview: 0)
        let c = runtime.raw
        guard let ctx = c.gguf_init_from_file(input, gguf_init_params(no_alloc: true, ctx: nil)) else {
            throw LlamaError(.invalidModel, "\(input) is not a readable GGUF file: its header is damaged or truncated")
        }
        defer { c.gguf_free(ctx) }
        for key in Set(removals) {
            guard !key.utf8.contains(0) else { throw LlamaError(.invalidArgument, "a metadata key must be text without NUL") }
            guard key != "general.alignment" else {
                throw LlamaError(.invalidArgument, "general.alignment cannot be removed: the tensor data would move")
            }
            guard c.gguf_find_key(ctx, key) >= 0 else {
                throw LlamaError(.invalidArgument, "\(input) has no metadata key \(key) to remove")
            }
            c.gguf_remove_key(ctx, key)
        }
        for edit in edits { try apply(edit, to: ctx, c) }

        // A link is followed: its target is replaced, the link stays.
        let target = URL(fileURLWithPath: output).resolvingSymlinksInPath()
        let temporary = target.deletingLastPathComponent().appendingPathComponent(".gguf-\(UUID().uuidString).partial").path
        func fail(_ why: String) -> LlamaError {
            unlink(temporary)
            return LlamaError(.fileNotWritable, "writing \(output) failed (\(why)): check the free space and permissions")
        }
        guard c.gguf_write_to_file(ctx, temporary, true) else { throw fail("the metadata could not be written") }
        guard let reader = FileHandle(forReadingAtPath: input), let writer = FileHandle(forWritingAtPath: temporary) else {
            throw fail("cannot open the files")
        }
        defer { try? reader.close(); try? writer.close() }
        // The data section with the padding after its last tensor, which llama.cpp reads too.
        let end = source.tensors.map { source.dataOffset + $0.offset + $0.size }.max() ?? source.dataOffset
        let alignment = max(1, source.alignment)
        let padded = (end - source.dataOffset + alignment - 1) / alignment * alignment
        do {
            try writer.seekToEnd()
            try reader.seek(toOffset: UInt64(source.dataOffset))
            var left = end - source.dataOffset
            while left > 0 {
                if Task.isCancelled {
                    unlink(temporary)
                    throw LlamaError(.cancelled, "the copy to \(output) was cancelled; nothing was written")
                }
                guard let chunk = try reader.read(upToCount: min(left, 8 << 20)), !chunk.isEmpty else {
                    throw LlamaError(.invalidModel, "\(input) ended before its tensor data did")
                }
                try writer.write(contentsOf: chunk)
                left -= chunk.count
            }
            if padded > end - source.dataOffset { try writer.write(contentsOf: Data(count: padded - (end - source.dataOffset))) }
            try writer.synchronize()
        } catch let error as LlamaError {
            unlink(temporary)
            throw error
        } catch {
            throw fail("\(error)")
        }
        // An existing output keeps its permissions.
        if let mode = (try? FileManager.default.attributesOfItem(atPath: target.path))?[.posixPermissions] as? NSNumber {
            chmod(temporary, mode_t(mode.uint16Value))
        }
        guard rename(temporary, target.path) == 0 else { throw fail(String(cString: strerror(errno))) }
    }

    private static func apply(_ edit: MetadataEdit, to ctx: OpaquePointer, _ c: LlamaSymbols) throws(LlamaError) {
        let key = edit.key
        guard !key.isEmpty, !key.utf8.contains(0) else { throw LlamaError(.invalidArgument, "a metadata key must be non-empty text without NUL") }
        guard key != "general.alignment" else {
            throw LlamaError(.invalidArgument, "general.alignment cannot be changed: the tensor data would move")
        }
        let existing = c.gguf_find_key(ctx, key)
        if existing >= 0, c.gguf_get_kv_type(ctx, existing) == GGUF_TYPE_ARRAY {
            throw LlamaError(.invalidArgument, "\(key) holds an array, which cannot be written here: remove it (--remove) "
                + "first if a scalar is meant")
        }
        let fileType: ScalarType? = existing < 0 ? nil : {
            switch c.gguf_get_kv_type(ctx, existing) {
            case GGUF_TYPE_UINT8: .uint8
            case GGUF_TYPE_INT8: .int8
            case GGUF_TYPE_UINT16: .uint16
            case GGUF_TYPE_INT16: .int16
            case GGUF_TYPE_UINT32: .uint32
            case GGUF_TYPE_INT32: .int32
            case GGUF_TYPE_UINT64: .uint64
            case GGUF_TYPE_INT64: .int64
            case GGUF_TYPE_FLOAT32: .float32
            case GGUF_TYPE_FLOAT64: .float64
            case GGUF_TYPE_BOOL: .bool
            case GGUF_TYPE_STRING: .string
            default: nil
            }
        }()
        func outOfRange(_ type: ScalarType) -> LlamaError {
            LlamaError(.invalidArgument, "\(edit): the value does not fit \(type.rawValue)\(fileType == type && edit.type == nil ? " (the key's type in the file)" : "")")
        }
        func int<T: FixedWidthInteger>(_: T.Type, _ type: ScalarType) throws(LlamaError) -> T {
            switch edit.value {
            case .int(let v): if let r = T(exactly: v) { return r }
            case .uint(let v): if let r = T(exactly: v) { return r }
            default: break
            }
            throw outOfRange(type)
        }
        let type: ScalarType
        if let explicit = edit.type ?? fileType {
            type = explicit
        } else {
            switch edit.value {
            case .int(let v): type = Int32(exactly: v) == nil ? .int64 : .int32
            case .uint(let v): type = UInt32(exactly: v) == nil ? .uint64 : .uint32
            case .float: type = .float32
            case .bool: type = .bool
            case .string: type = .string
            case .array: throw LlamaError(.invalidArgument, "\(key): arrays cannot be written; set scalars only")
            }
        }
        switch (type, edit.value) {
        case (.bool, .bool(let v)): c.gguf_set_val_bool(ctx, key, v)
        case (.string, .string(let v)):
            guard !v.utf8.contains(0) else { throw LlamaError(.invalidArgument, "\(key): a GGUF string cannot hold a NUL byte") }
            c.gguf_set_val_str(ctx, key, v)
        case (.float32, .float(let v)):
            guard Float(v).isFinite || !v.isFinite else { throw outOfRange(type) }
            c.gguf_set_val_f32(ctx, key, Float(v))
        case (.float64, .float(let v)): c.gguf_set_val_f64(ctx, key, v)
        case (.uint8, _): c.gguf_set_val_u8(ctx, key, try int(UInt8.self, type))
        case (.int8, _): c.gguf_set_val_i8(ctx, key, try int(Int8.self, type))
        case (.uint16, _): c.gguf_set_val_u16(ctx, key, try int(UInt16.self, type))
        case (.int16, _): c.gguf_set_val_i16(ctx, key, try int(Int16.self, type))
        case (.uint32, _): c.gguf_set_val_u32(ctx, key, try int(UInt32.self, type))
        case (.int32, _): c.gguf_set_val_i32(ctx, key, try int(Int32.self, type))
        case (.uint64, _): c.gguf_set_val_u64(ctx, key, try int(UInt64.self, type))
        case (.int64, _): c.gguf_set_val_i64(ctx, key, try int(Int64.self, type))
        default:
            throw LlamaError(.invalidArgument, "\(edit): the value is not a \(type.rawValue)"
                + (edit.type == nil && fileType != nil ? " (the key's type in the file; give a type to change it)" : ""))
        }
    }
}
