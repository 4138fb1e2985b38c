// A sampler written in Swift, in a llama.cpp sampler chain: it bans the letter "e" by pushing
// the logit of every token containing it to minus infinity, then greedy picks the best of the rest.
import Llama

final class NoLetterE: LlamaCustomSampler, @unchecked Sendable {
    let banned: Set<LlamaToken>
    init(vocab: LlamaVocab) throws {
        banned = Set(try (0..<vocab.count).filter { String(decoding: try vocab.piece($0), as: UTF8.self).lowercased().contains("e") })
    }
    func apply(_ candidates: inout TokenCandidates) {
        for i in 0..<candidates.count where banned.contains(candidates.token(at: i)) {
            candidates.setLogit(-.infinity, at: i)
        }
    }
}

let runtime = try await LlamaRuntime.load()
let model = try await LlamaModel.loadDefault(runtime: runtime)
let context = try LlamaContext(model: model, options: ContextOptions(contextLength: 512))
let sampler = try NoLetterE(vocab: model.vocab)
let prompt = try model.formatChat([.user("Describe a sunny day at the beach.")])
let text = try await context.generate(prompt: prompt, sampling: SamplerChain([.custom(sampler), .greedy]),
                                      options: GenerationOptions(maxTokens: 40)).summary().text
print(text)
guard !text.lowercased().contains("e") else { fatalError("the custom sampler let an 'e' through") }
