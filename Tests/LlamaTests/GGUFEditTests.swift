import Foundation
import Llama
import LlamaRaw
import LlamaTestSupport
import Testing

/// `GGUFFile.rewrite` and `llama-swift gguf set`: metadata set and removed, tensor data copied
/// byte for byte, bad edits refused before anything is written, no partial file left.
@Suite("GGUF metadata rewrite")
struct GGUFEditTests {
    /// The bytes from a file's data section to its end.
    static func dataSection(_ path: String, runtime: LlamaRuntime) throws -> Data {
        let file = try GGUFFile(path: path, runtime: runtime)
        let handle = try #require(FileHandle(forReadingAtPath: path))
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(file.dataOffset))
        return try #require(try handle.readToEnd())
    }

    @Test("keys set (new, existing with its type, explicit width), a key removed; the tensor data is the input's, and the model loads")
    func rewrite() async throws {
        let runtime = try Fixture.runtime.get()
        let input = try TestEnvironment.model().path
        let output = try TestEnvironment.temporaryDirectory().appendingPathComponent("edited.gguf").path
        try GGUFFile.rewrite(input, to: output, setting: [
            .init(key: "llama.pooling_type", value: .uint(4)),
            .init(key: "general.name", value: .string("edited")),
            .init(key: "tokenizer.ggml.add_bos_token", value: .bool(true)),
            .init(key: "llama.context_length", value: .uint(4096)),
            .init(key: "test.negative", value: .int(-3), type: .int16),
            .init(key: "test.ratio", value: .float(0.5)),
        ], removing: ["tokenizer.ggml.padding_token_id"], runtime: runtime)
        let before = try GGUFFile(path: input, runtime: runtime), after = try GGUFFile(path: output, runtime: runtime)
        #expect(after["llama.pooling_type"] == .uint(4))
        #expect(after["general.name"] == .string("edited"))
        #expect(after["tokenizer.ggml.add_bos_token"] == .bool(true))
        #expect(after["llama.context_length"] == .uint(4096))
        #expect(after["test.negative"] == .int(-3))
        #expect(after["test.ratio"] == .float(0.5))
        #expect(after["tokenizer.ggml.padding_token_id"] == nil)
        #expect(before["tokenizer.ggml.padding_token_id"] != nil)
        // Every other key keeps its value, every tensor its table entry and bytes.
        let changed: Set = ["llama.pooling_type", "general.name", "tokenizer.ggml.add_bos_token", "llama.context_length",
                            "test.negative", "test.ratio", "tokenizer.ggml.padding_token_id"]
        for (key, value) in before.metadata where !changed.contains(key) {
            #expect(after[key] == value, "\(key)")
        }
        #expect(after.metadata.count == before.metadata.count + 2)
        #expect(after.tensors == before.tensors)
        #expect(try Self.dataSection(output, runtime: runtime) == Self.dataSection(input, runtime: runtime))
        let model = try LlamaModel(runtime: runtime, path: output)
        #expect(model.metadata["general.name"] == "edited")
        #expect(model.vocab.addsBOS)
        // A key named twice for removal is removed once, not refused the second time.
        let twice = try TestEnvironment.temporaryDirectory().appendingPathComponent("twice.gguf").path
        try GGUFFile.rewrite(input, to: twice, setting: [], removing: ["general.name", "general.name"], runtime: runtime)
        #expect(try GGUFFile(path: twice, runtime: runtime)["general.name"] == nil)
        // The output may be the input: replaced only when complete.
        try GGUFFile.rewrite(output, to: output, setting: [.init(key: "general.name", value: .string("again"))], runtime: runtime)
        #expect(try GGUFFile(path: output, runtime: runtime)["general.name"] == .string("again"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: (output as NSString).deletingLastPathComponent) == ["edited.gguf"])
    }

    @Test("a file whose last tensor ends unaligned keeps the padding after it, which llama.cpp reads; a link is followed, permissions kept")
    func paddingAndLinks() async throws {
        let runtime = try Fixture.runtime.get()
        let c = runtime.raw
        let folder = try TestEnvironment.temporaryDirectory()
        let input = folder.appendingPathComponent("tiny.gguf").path
        // One tensor of 3 floats: 12 bytes, then padding to the 32-byte alignment.
        let gguf = try #require(c.gguf_init_empty())
        defer { c.gguf_free(gguf) }
        c.gguf_set_val_str(gguf, "general.architecture", "test")
        let ggml = try #require(c.ggml_init(ggml_init_params(mem_size: 1 << 16, mem_buffer: nil, no_alloc: false)))
        defer { c.ggml_free(ggml) }
        let t = try #require(c.ggml_new_tensor_1d(ggml, GGML_TYPE_F32, 3))
        _ = c.ggml_set_name(t, "weights")
        let values = try #require(t.pointee.data).assumingMemoryBound(to: Float.self)
        for i in 0..<3 { values[i] = Float(i) + 0.5 }
        c.gguf_add_tensor(gguf, t)
        try #require(c.gguf_write_to_file(gguf, input, false))
        let output = folder.appendingPathComponent("tiny-edited.gguf").path
        try GGUFFile.rewrite(input, to: output, setting: [.init(key: "general.name", value: .string("padded"))], runtime: runtime)
        let before = try GGUFFile(path: input, runtime: runtime), after = try GGUFFile(path: output, runtime: runtime)
        #expect(after.fileSize - Int64(after.dataOffset) == before.fileSize - Int64(before.dataOffset))
        // llama.cpp's reader with the tensor data, as a model load reads it.
        var data: OpaquePointer? = nil
        let read = try withUnsafeMutablePointer(to: &data) { slot in
            try #require(c.gguf_init_from_file(output, gguf_init_params(no_alloc: false, ctx: slot)))
        }
        c.gguf_free(read)
        if let data { c.ggml_free(data) }
        // Through a link: the target is replaced, the link stays, and the target's mode is kept.
        let link = folder.appendingPathComponent("link.gguf").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: output)
        chmod(output, 0o640)
        try GGUFFile.rewrite(link, to: link, setting: [.init(key: "general.name", value: .string("linked"))], runtime: runtime)
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: link) == output)
        #expect(try GGUFFile(path: output, runtime: runtime)["general.name"] == .string("linked"))
        let mode = try FileManager.default.attributesOfItem(atPath: output)[.posixPermissions] as? NSNumber
        #expect(mode?.uint16Value == 0o640)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).sorted() == ["link.gguf", "tiny-edited.gguf", "tiny.gguf"])
    }

    @Test("bad edits are .invalidArgument before anything is written; a bad input or output folder is typed too")
    func badEdits() async throws {
        let runtime = try Fixture.runtime.get()
        let input = try TestEnvironment.model().path
        let folder = try TestEnvironment.temporaryDirectory()
        let output = folder.appendingPathComponent("out.gguf").path
        let invalid: [(String, [GGUFFile.MetadataEdit], [String])] = [
            ("alignment", [.init(key: "general.alignment", value: .uint(64))], []),
            ("alignment removed", [], ["general.alignment"]),
            ("a missing key removed", [], ["no.such.key"]),
            ("out of the file type's range", [.init(key: "llama.block_count", value: .uint(1 << 40))], []),
            ("negative for an unsigned width", [.init(key: "x.y", value: .int(-1), type: .uint8)], []),
            ("a string for the file's u32", [.init(key: "llama.block_count", value: .string("thirty"))], []),
            ("an array", [.init(key: "x.list", value: .array(elementType: "u32", count: 1, preview: [.uint(1)]))], []),
            ("a scalar for a key holding an array", [.init(key: "tokenizer.ggml.tokens", value: .string("x"), type: .string)], []),
            ("a float past f32", [.init(key: "x.big", value: .float(1e300))], []),
            ("an empty key", [.init(key: "", value: .bool(true))], []),
        ]
        for (what, edits, removals) in invalid {
            let error = await expectLlamaError(.invalidArgument) {
                try GGUFFile.rewrite(input, to: output, setting: edits, removing: removals, runtime: runtime)
            }
            #expect(error != nil, "\(what)")
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path).isEmpty)
        let notGGUF = folder.appendingPathComponent("notes.txt")
        try Data("hello".utf8).write(to: notGGUF)
        #expect(await expectLlamaError(.invalidModel) {
            try GGUFFile.rewrite(notGGUF.path, to: output, setting: [.init(key: "a.b", value: .bool(true))], runtime: runtime)
        } != nil)
        #expect(await expectLlamaError(.fileNotWritable) {
            try GGUFFile.rewrite(input, to: "/nonexistent/folder/out.gguf", setting: [.init(key: "a.b", value: .bool(true))], runtime: runtime)
        } != nil)
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder.path) == ["notes.txt"])
        // The text form, as the CLI takes it.
        #expect(try GGUFFile.MetadataEdit(parsing: "llama.pooling_type=u32:4") == .init(key: "llama.pooling_type", value: .uint(4), type: .uint32))
        #expect(try GGUFFile.MetadataEdit(parsing: "a.b=str:x=y:z") == .init(key: "a.b", value: .string("x=y:z"), type: .string))
        #expect(try GGUFFile.MetadataEdit(parsing: "a.b=int:-2") == .init(key: "a.b", value: .int(-2)))
        for bad in ["a.b", "=u32:1", "a.b=u32", "a.b=u32:-1", "a.b=f32:nan", "a.b=bool:yes", "a.b=complex:1"] {
            #expect(await expectLlamaError(.invalidArgument) { try GGUFFile.MetadataEdit(parsing: bad) } != nil, "\(bad)")
        }
    }

    @Test("llama-swift gguf set writes the keys; a malformed item is a one-line error")
    func cli() async throws {
        let output = try TestEnvironment.temporaryDirectory().appendingPathComponent("cli.gguf").path
        let r = try await CLITests.cli(["gguf", "set", try TestEnvironment.model().path, output, "llama.pooling_type=u32:4",
                                        "--remove", "tokenizer.ggml.padding_token_id"])
        try #require(r.status == 0, "\(r.stderr)")
        let file = try GGUFFile(path: output, runtime: try Fixture.runtime.get())
        #expect(file["llama.pooling_type"] == .uint(4))
        #expect(file["tokenizer.ggml.padding_token_id"] == nil)
        CLITests.expectFailure(try await CLITests.cli(["gguf", "set", try TestEnvironment.model().path, output, "llama.pooling_type=4"]),
                               mentioning: "TYPE:")
        CLITests.expectFailure(try await CLITests.cli(["gguf", "set", try TestEnvironment.model().path, output]),
                               mentioning: "--remove")
    }
}
