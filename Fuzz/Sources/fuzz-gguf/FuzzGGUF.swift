import Foundation
import FuzzSupport
import Llama

// GGUF bytes through our reader (`GGUFFile`, gguf's parser underneath), then, for files it
// accepts, our pre-validation of what llama.cpp's loader asserts on (`GGUFFile.validate`), then,
// for files that pass, llama.cpp's vocabulary load (`vocabularyOnly`, through `LlamaModel`).
// Each step must succeed or throw `.invalidModel`; llama.cpp's assertion in the vocabulary
// loader (a duplicate token, counts that disagree...), a crash or a hang is a finding. Seeds:
// SmolLM2's metadata without tensors, and the pinned source's vocabulary files.

let file = Fuzz.scratchFile("input.gguf")

/// A GGUF file's header and metadata with its tensor table dropped (no tensors, no data): a
/// vocabulary-only file of the same model. nil when the bytes are not GGUF v2/v3.
func metadataOnly(_ bytes: Data) -> Data? {
    var offset = 0
    func read<T: FixedWidthInteger>(_: T.Type) -> T? {
        guard offset + MemoryLayout<T>.size <= bytes.count else { return nil }
        defer { offset += MemoryLayout<T>.size }
        return bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
    }
    func skipString() -> Bool {
        guard let n = read(UInt64.self), offset + Int(n) <= bytes.count else { return false }
        offset += Int(n)
        return true
    }
    let sizes: [UInt32: Int] = [0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8]
    func skipValue(_ type: UInt32) -> Bool {
        if let n = sizes[type] { offset += n; return offset <= bytes.count }
        if type == 8 { return skipString() }
        guard type == 9, let element = read(UInt32.self), let count = read(UInt64.self) else { return false }
        for _ in 0..<count { guard skipValue(element) else { return false } }
        return true
    }
    guard read(UInt32.self) == 0x4655_4747, let version = read(UInt32.self), version >= 2,
          read(UInt64.self) != nil, let kvCount = read(UInt64.self) else { return nil }
    for _ in 0..<kvCount {
        guard skipString(), let type = read(UInt32.self), skipValue(type) else { return nil }
    }
    var out = bytes.prefix(offset)
    out.replaceSubrange(8..<16, with: [UInt8](repeating: 0, count: 8))
    while out.count % 32 != 0 { out.append(0) }
    return Data(out)
}

@main
enum FuzzGGUF {
    static func main() {
        Fuzz.initialize { dir in
            // The metadata is in the first few MiB of the model.
            let handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: Fuzz.modelPath))
            let head = try handle.read(upToCount: 8 << 20) ?? Data()
            try handle.close()
            guard let smol = metadataOnly(head) else { Fuzz.setupFailure("\(Fuzz.modelPath): no GGUF metadata in its first 8 MiB") }
            try Fuzz.seed(smol, 0, in: dir, name: "smollm2-metadata")
            let models = Fuzz.source.appendingPathComponent("models")
            // The smaller vocabularies of the pinned source (libFuzzer's inputs stay under a few MiB).
            var i = 0
            for name in try FileManager.default.contentsOfDirectory(atPath: models.path).sorted()
            where name.hasPrefix("ggml-vocab-") && name.hasSuffix(".gguf") {
                let data = try Data(contentsOf: models.appendingPathComponent(name))
                guard data.count <= 2 << 20, let vocab = metadataOnly(data) else { continue }
                try Fuzz.seed(vocab, i, in: dir, name: "vocab")
                i += 1
            }
        }
        _ = Fuzz.runtime
        Fuzz.run(test)
    }
}

func test(_ input: UnsafeBufferPointer<UInt8>) {
    do { try Data(input).write(to: file) } catch {
        Fuzz.setupFailure("cannot write \(file.path): \(error)")
    }
    let runtime = Fuzz.runtime
    let read = Result { () throws(LlamaError) in try GGUFFile(path: file.path, runtime: runtime) }
    guard Fuzz.expect(read.mapError { $0 as any Error }, allowed: [.invalidModel], "reading the GGUF file") != nil else { return }
    let validated = Result { () throws(LlamaError) in try GGUFFile.validate(path: file.path, runtime: runtime) }
    guard Fuzz.expect(validated.mapError { $0 as any Error }, allowed: [.invalidModel], "validating the GGUF file") != nil else { return }
    var options = ModelOptions()
    options.vocabularyOnly = true
    let loaded = Result { () throws(LlamaError) in try LlamaModel(runtime: runtime, path: file.path, options: options) }
    Fuzz.expect(loaded.mapError { $0 as any Error }, allowed: [.invalidModel], "loading the vocabulary")
}
