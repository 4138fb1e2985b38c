import Foundation
import FuzzSupport
import Llama

// GBNF text through `SamplerStage.grammar`: llama.cpp's grammar parser and initialisation with
// SmolLM2's vocabulary, our start check (some token must begin the text), then three greedy
// tokens with our per-step guard. Any text must generate, or fail with `.invalidGrammar` or
// `.grammarDeadEnd`; llama.cpp's abort, a crash, a hang or another error is a finding. Seeds:
// the pinned source's grammars/*.gbnf and the grammars of its JSON-schema converter test.

nonisolated(unsafe) var context: LlamaContext!

@main
enum FuzzGrammar {
    static func main() {
        Fuzz.initialize { dir in
            for (i, grammar) in try FuzzSeeds.grammars().enumerated() { try Fuzz.seed(Data(grammar.utf8), i, in: dir, name: "grammar") }
            for (i, grammar) in [#"root ::= "\u0000""#, #"root ::= [0-9]+ "." [0-9]*"#, #"root ::= a | b\na ::= "x" a?\nb ::= [^\n]{1,3}"#,
                                 #"root ::= "yes" | "no""#, "root ::= ( \"ab\" [c-e] )* \"!\""].enumerated() {
                try Fuzz.seed(Data(grammar.utf8), i, in: dir, name: "small")
            }
        }
        context = Fuzz.context()
        Fuzz.run(test)
    }
}

func test(_ input: UnsafeBufferPointer<UInt8>) {
    let text = String(decoding: input, as: UTF8.self)
    let context = context!
    let outcome = Fuzz.blocking {
        try await context.generate(prompt: "Answer:", sampling: SamplerChain([.grammar(text), .greedy]),
                                   options: GenerationOptions(maxTokens: 3)).summary()
    }
    Fuzz.expect(outcome, allowed: [.invalidGrammar, .grammarDeadEnd], "generation through the grammar")
}
