import Foundation
import FuzzSupport
import Llama

// State bytes into a small context (256 tokens, 2 sequences): the whole context and one
// sequence, in memory (`restore(state:)`) and as files (`loadState(from:)`), each with an
// optional token list. Input: a mode byte, a token count (255: none) and the tokens, a sequence
// byte for the sequence modes, then the state bytes. Any bytes must load or fail with
// `.stateFailed`/`.invalidArgument`; after a failed load greedy generation must work at once;
// after a load that succeeded (the format has no checksum) generation may fail, but typed.
// The cache is left as the generation leaves it, so every load meets a full cache. llama.cpp's
// assertion, a crash or a hang is a finding. Seeds: states of a real context.

nonisolated(unsafe) var context: LlamaContext!
let prompt = "The sea is"

enum Mode: UInt8, CaseIterable { case memory, sequenceMemory, file, sequenceFile }

func encode(_ mode: Mode, tokens: [LlamaToken]?, sequence: UInt8 = 0, state: Data) -> Data {
    var data = Data([mode.rawValue, tokens.map { UInt8($0.count) } ?? 255])
    for t in tokens ?? [] { withUnsafeBytes(of: t.littleEndian) { data.append(contentsOf: $0) } }
    if mode == .sequenceMemory || mode == .sequenceFile { data.append(sequence) }
    return data + state
}

@main
enum FuzzState {
    static func main() {
        Fuzz.initialize { dir in
            let source = Fuzz.context(sequences: 2)
            let result = Fuzz.blocking { () async throws -> [Data] in
                _ = try await source.generate(prompt: prompt, options: GenerationOptions(maxTokens: 3)).summary()
                let tokens = await source.cachedTokens
                try await source.copySequence(0, to: 1)
                let file = Fuzz.scratchFile("seed-state.bin")
                let sequenceFile = Fuzz.scratchFile("seed-sequence.bin")
                try await source.saveState(to: file)
                try await source.saveState(sequence: 0, to: sequenceFile)
                return [
                    encode(.memory, tokens: tokens, state: await source.state()),
                    encode(.memory, tokens: nil, state: await source.state()),
                    encode(.sequenceMemory, tokens: tokens, sequence: 0, state: await source.state(sequence: 0)),
                    encode(.sequenceMemory, tokens: nil, sequence: 1, state: await source.state(sequence: 1)),
                    // Files carry their own tokens: the list in the input is not used.
                    encode(.file, tokens: nil, state: try Data(contentsOf: file)),
                    encode(.sequenceFile, tokens: nil, sequence: 0, state: try Data(contentsOf: sequenceFile)),
                    encode(.sequenceFile, tokens: nil, sequence: 1, state: try Data(contentsOf: sequenceFile)),
                ]
            }
            for (i, seed) in try result.get().enumerated() { try Fuzz.seed(seed, i, in: dir, name: "state") }
        }
        context = Fuzz.context(sequences: 2)
        Fuzz.run(test)
    }
}

func test(_ input: UnsafeBufferPointer<UInt8>) {
    var reader = ByteReader(Array(input))
    let mode = Mode(rawValue: reader.byte() % 4)!
    let count = reader.byte()
    let tokens: [LlamaToken]? = count == 255 ? nil : (0..<Int(count % 9)).map { _ in LlamaToken(bitPattern: reader.uint32()) }
    let sequence = Int32(mode == .sequenceMemory || mode == .sequenceFile ? reader.byte() % 3 : 0)
    let state = Data(reader.remaining)
    let context = context!
    let loaded = Fuzz.blocking { () async throws -> Void in
        switch mode {
        case .memory: try await context.restore(state: state, tokens: tokens)
        case .sequenceMemory: try await context.restore(state: state, into: sequence, tokens: tokens)
        case .file, .sequenceFile:
            let file = Fuzz.scratchFile("state.bin")
            try state.write(to: file)
            _ = mode == .file ? try await context.loadState(from: file) : try await context.loadState(from: file, into: sequence)
        }
    }
    let failed = Fuzz.expect(loaded, allowed: [.stateFailed, .invalidArgument], "loading \(mode) state of \(state.count) bytes") == nil
    let next = Fuzz.blocking { try await context.generate(prompt: prompt, options: GenerationOptions(maxTokens: 2)).summary() }
    if failed {
        Fuzz.expect(next, allowed: [], "greedy generation right after a failed \(mode) load")
    } else {
        Fuzz.expect(next, allowed: [.decodeFailed, .contextOverflow, .stateFailed], "greedy generation after a \(mode) load that succeeded")
    }
}
