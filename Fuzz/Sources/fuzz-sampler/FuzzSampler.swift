import Foundation
import FuzzSupport
import Llama

// Sampler chains decoded from bytes (1 to 6 stages of every kind, with parameters that include
// NaN, infinities, negative and huge values), built and run for three tokens on a short prompt.
// Any chain must generate or fail with a typed error (`.invalidArgument`, `.invalidGrammar`,
// `.grammarDeadEnd`, `.creationFailed`); llama.cpp's assertion, a crash, a hang or another
// error is a finding.

nonisolated(unsafe) var context: LlamaContext!

/// A Swift sampler: never selects, selects the first candidate, selects past the end, or keeps one candidate.
final class Custom: LlamaCustomSampler, @unchecked Sendable {
    let mode: UInt8
    init(mode: UInt8) { self.mode = mode }
    func apply(_ candidates: inout TokenCandidates) {
        switch mode % 4 {
        case 1 where candidates.count > 0: candidates.selected = 0
        case 2: candidates.selected = candidates.count + 5
        case 3: candidates.truncate(to: 1)
        default: break
        }
    }
}

let grammars = [#"root ::= [a-z ]+"#, #"root ::= "yes" | "no""#, #"root ::= "\u0000""#, "root ::= [0-9]{1,3} \".\"", "root ::= x\nx ::= "]
let patterns = ["\\{", "yes|no", "[a-", "(", ".*", "<tool_call>"]

func stage(_ r: inout ByteReader) -> SamplerStage {
    switch r.byte() % 22 {
    case 0: return .greedy
    case 1: return .distribution(seed: r.uint32())
    case 2: return .topK(r.int32(in: -2...70_000))
    case 3: return .topP(r.float(), minKeep: Int(r.byte()) - 1)
    case 4: return .minP(r.float(), minKeep: Int(r.byte()))
    case 5: return .typical(r.float(), minKeep: Int(r.byte() % 4))
    case 6: return .temperature(r.float())
    case 7: return .temperatureExtended(r.float(), delta: r.float(), exponent: r.float())
    case 8: return .xtc(probability: r.float(), threshold: r.float(), minKeep: Int(r.byte() % 4), seed: r.uint32())
    case 9: return .topNSigma(r.float())
    case 10: return .mirostat(tau: r.float(), eta: r.float(), m: r.int32(in: -2...200), seed: r.uint32())
    case 11: return .mirostatV2(tau: r.float(), eta: r.float(), seed: r.uint32())
    case 12: return .adaptiveP(target: r.float(), decay: r.float(), seed: r.uint32())
    case 13: return .grammar(grammars[Int(r.byte()) % grammars.count])
    case 14:
        let patternList = (0..<Int(r.byte() % 3)).map { _ in r.byte() % 4 == 0 ? r.string(maxLength: 6) : patterns[Int(r.byte()) % patterns.count] }
        return .lazyGrammar(grammars[Int(r.byte()) % grammars.count], triggerPatterns: patternList,
                            triggerTokens: (0..<Int(r.byte() % 3)).map { _ in r.int32(in: -1...49_200) })
    case 15: return .penalties(lastN: r.int32(in: -2...4096), repeat: r.float(), frequency: r.float(), presence: r.float())
    case 16:
        return .dry(multiplier: r.float(), base: r.float(), allowedLength: r.int32(in: -2...8), penaltyLastN: r.int32(in: -2...4096),
                    sequenceBreakers: (0..<Int(r.byte() % 4)).map { _ in r.string(maxLength: 4) })
    case 17:
        var biases: [LlamaToken: Float] = [:]
        for _ in 0..<Int(r.byte() % 4) { biases[r.int32(in: -1...49_200)] = r.float() }
        return .logitBias(biases)
    case 18: return .infill
    case 19: return .custom(Custom(mode: r.byte()))
    case 20: return .topK(Int32(r.byte() % 8) + 1)
    default: return .greedy
    }
}

@main
enum FuzzSampler {
    static func main() {
        Fuzz.initialize { dir in
            // The standard chain, greedy, and a few others, as the bytes the decoder reads.
            let seeds: [[UInt8]] = [
                [5, 15, 0, 64, 0, 0, 4, 1, 200, 2, 40, 0, 0, 0, 3, 4, 242, 1, 4, 4, 13, 0, 6, 4, 204, 1, 1, 0, 0, 0],
                [0, 0], [1, 13, 1], [2, 13, 0, 0], [3, 14, 1, 0, 2, 7, 0, 1], [2, 17, 2, 1, 0, 0, 0, 4, 255, 1, 0],
                [2, 10, 4, 128, 4, 25, 100, 0, 0, 0, 0, 0, 0, 0], [1, 19, 0], [3, 16, 4, 200, 4, 100, 2, 0, 0, 0, 64, 0, 0, 0, 1, 1, 10, 6],
            ]
            for (i, seed) in seeds.enumerated() { try Fuzz.seed(Data(seed), i, in: dir, name: "chain") }
        }
        context = Fuzz.context()
        Fuzz.run(test)
    }
}

func test(_ input: UnsafeBufferPointer<UInt8>) {
    var reader = ByteReader(Array(input))
    let count = 1 + Int(reader.byte() % 6)
    // Known and left out: llama.cpp's infill sampler after a grammar stage (all candidates kept,
    // most at -inf) takes seconds per token (16 s for three on SmolLM2); a top-k in front bounds it.
    var stages: [SamplerStage] = []
    for _ in 0..<count {
        let next = stage(&reader)
        if case .infill = next { stages.append(.topK(64)) }
        stages.append(next)
    }
    let chain = SamplerChain(stages)
    Fuzz.describe("\(chain.stages)")
    let context = context!
    let outcome = Fuzz.blocking {
        try await context.generate(prompt: "Hi", sampling: chain, options: GenerationOptions(maxTokens: 3)).summary()
    }
    Fuzz.expect(outcome, allowed: [.invalidArgument, .invalidGrammar, .grammarDeadEnd, .creationFailed], "generation with \(chain.stages)")
}
