import Foundation
import LlamaRaw
import CTriggerRegex

/// One step of a sampler chain: every built-in sampler of llama.cpp, and samplers written in
/// Swift (``LlamaCustomSampler``).
public enum SamplerStage: Sendable {
    /// The most likely token (`llama_sampler_init_greedy`).
    case greedy
    /// A random draw from the distribution (`llama_sampler_init_dist`).
    case distribution(seed: UInt32 = SamplerChain.randomSeed)
    /// Keep the k most likely tokens (`llama_sampler_init_top_k`).
    case topK(Int32)
    /// Keep the most likely tokens whose probabilities add up to p (`llama_sampler_init_top_p`).
    case topP(Float, minKeep: Int = 1)
    /// Keep tokens at least p times as likely as the most likely one (`llama_sampler_init_min_p`).
    case minP(Float, minKeep: Int = 1)
    /// Locally typical sampling (`llama_sampler_init_typical`).
    case typical(Float, minKeep: Int = 1)
    /// Divide the logits by a temperature (`llama_sampler_init_temp`).
    case temperature(Float)
    /// Dynamic temperature (`llama_sampler_init_temp_ext`).
    case temperatureExtended(Float, delta: Float, exponent: Float)
    /// Exclude Top Choices (`llama_sampler_init_xtc`).
    case xtc(probability: Float, threshold: Float, minKeep: Int = 1, seed: UInt32 = SamplerChain.randomSeed)
    /// Keep tokens within n standard deviations of the top logit (`llama_sampler_init_top_n_sigma`).
    case topNSigma(Float)
    /// Mirostat 1.0, which selects a token (`llama_sampler_init_mirostat`).
    case mirostat(tau: Float, eta: Float, m: Int32 = 100, seed: UInt32 = SamplerChain.randomSeed)
    /// Mirostat 2.0, which selects a token (`llama_sampler_init_mirostat_v2`).
    case mirostatV2(tau: Float, eta: Float, seed: UInt32 = SamplerChain.randomSeed)
    /// Adaptive-p (`llama_sampler_init_adaptive_p`).
    case adaptiveP(target: Float, decay: Float, seed: UInt32 = SamplerChain.randomSeed)
    /// Only tokens a GBNF grammar allows (`llama_sampler_init_grammar`).
    case grammar(String, root: String = "root")
    /// A grammar that applies once a trigger pattern or token appears (`..._grammar_lazy_patterns`).
    case lazyGrammar(String, root: String = "root", triggerPatterns: [String], triggerTokens: [LlamaToken] = [])
    /// Repetition, frequency and presence penalties over the last n tokens (`llama_sampler_init_penalties`).
    case penalties(lastN: Int32 = 64, repeat: Float = 1.0, frequency: Float = 0, presence: Float = 0)
    /// DRY repetition penalty (`llama_sampler_init_dry`).
    case dry(multiplier: Float, base: Float = 1.75, allowedLength: Int32 = 2, penaltyLastN: Int32 = -1,
             sequenceBreakers: [String] = ["\n", ":", "\"", "*"])
    /// Add a bias to the logits of some tokens (`llama_sampler_init_logit_bias`).
    case logitBias([LlamaToken: Float])
    /// Fill-in-the-middle (`llama_sampler_init_infill`).
    case infill
    /// A sampler written in Swift.
    case custom(any LlamaCustomSampler)
}

extension SamplerStage {
    /// Whether the stage selects a token (the others only reshape the candidates); nil for a
    /// sampler written in Swift, which may or may not.
    var selectsToken: Bool? {
        switch self {
        case .greedy, .distribution, .mirostat, .mirostatV2, .adaptiveP: return true
        case .custom: return nil
        default: return false
        }
    }
}

/// A sampler chain, as a value: built into llama.cpp samplers when generation starts.
///
/// A chain must contain a stage that selects a token (``SamplerStage/greedy``,
/// ``SamplerStage/distribution(seed:)``, ``SamplerStage/mirostat(tau:eta:m:seed:)``,
/// ``SamplerStage/mirostatV2(tau:eta:seed:)``, ``SamplerStage/adaptiveP(target:decay:seed:)``),
/// or a ``SamplerStage/custom(_:)`` sampler that selects: a chain without one is an
/// `.invalidArgument` error when generation starts (nothing is appended for you), and a step
/// where no stage selected a token is the same error, never llama.cpp's assertion.
///
/// Grammars are checked when the chain is built (some token of the vocabulary must be able to
/// begin the text) and at each step (the token chosen must be one the grammar allows): a
/// grammar that no token can satisfy, or that generation led into a dead end, is a
/// `.grammarDeadEnd` error, never llama.cpp's abort. (A lazy grammar is checked once triggered;
/// the tokens llama.cpp replays at the trigger are not.)
public struct SamplerChain: Sendable {
    /// The stages, applied in order; one of them must select a token.
    public var stages: [SamplerStage]

    /// A chain of these stages.
    public init(_ stages: [SamplerStage]) { self.stages = stages }

    /// The seed that asks llama.cpp for a random one (`LLAMA_DEFAULT_SEED`).
    public static let randomSeed: UInt32 = 0xFFFF_FFFF

    /// Always the most likely token: deterministic.
    public static let greedy = SamplerChain([.greedy])

    /// The usual chain: penalties, top-k, top-p, min-p, temperature, then a seeded draw.
    public static func standard(temperature: Float = 0.8, topK: Int32 = 40, topP: Float = 0.95, minP: Float = 0.05,
                                repeatPenalty: Float = 1.0, seed: UInt32 = SamplerChain.randomSeed) -> SamplerChain {
        if temperature <= 0 { return .greedy }
        return SamplerChain([.penalties(repeat: repeatPenalty), .topK(topK), .topP(topP), .minP(minP),
                             .temperature(temperature), .distribution(seed: seed)])
    }

    /// Checks what can be checked without llama.cpp: a stage must select a token, and grammars
    /// must be text llama.cpp can take without ending the process (see ``GrammarPrecheck``).
    func validate() throws(LlamaError) {
        guard stages.contains(where: { $0.selectsToken != false }) else {
            throw LlamaError(.invalidArgument, "the sampler chain has no stage that selects a token "
                + "(\(stages.isEmpty ? "it is empty" : "\(stages.count) stages, none selecting")): end it with .greedy, "
                + ".distribution(seed:), .mirostat or .mirostatV2 (or a custom sampler that sets `selected`)")
        }
        for stage in stages {
            switch stage {
            case .grammar(let grammar, let root):
                try GrammarPrecheck.check(grammar, root: root)
            case .lazyGrammar(let grammar, let root, let patterns, _):
                try GrammarPrecheck.check(grammar, root: root)
                for pattern in patterns { try GrammarPrecheck.checkTriggerPattern(pattern) }
            default: break
            }
        }
    }

    /// Builds the C chain for a model.
    func make(for model: LlamaModel) throws(LlamaError) -> SamplerInstance {
        try validate()
        let c = model.runtime.raw
        var params = c.llama_sampler_chain_default_params()
        params.no_perf = false
        guard let chain = c.llama_sampler_chain_init(params) else {
            throw LlamaError(.creationFailed, "llama.cpp could not create a sampler chain")
        }
        let instance = SamplerInstance(runtime: model.runtime, pointer: chain, vocabCount: Int(model.vocab.count))
        for (index, stage) in stages.enumerated() {
            guard let s = try Self.make(stage, model: model) else {
                throw LlamaError(.creationFailed, "llama.cpp could not create the sampler \(stage)")
            }
            c.llama_sampler_chain_add(chain, s)
            switch stage {
            case .grammar:
                try instance.checkGrammarStart(s)
                if let added = c.llama_sampler_chain_get(chain, Int32(index)) { instance.grammars.append(added) }
            case .lazyGrammar(let grammar, let root, let patterns, let tokens):
                if let added = c.llama_sampler_chain_get(chain, Int32(index)) { instance.grammars.append(added) }
                instance.triggers.append(try LazyGrammarTrigger(model: model, grammar: grammar, root: root,
                                                                patterns: patterns, tokens: tokens))
            default: break
            }
        }
        return instance
    }

    static func make(_ stage: SamplerStage, model: LlamaModel) throws(LlamaError) -> UnsafeMutablePointer<llama_sampler>? {
        let c = model.runtime.raw
        let vocab = model.vocab.pointer
        func probability(_ p: Float, _ name: String) throws(LlamaError) {
            guard !p.isNaN else { throw LlamaError(.invalidArgument, "\(name) must be a number within 0...1, not NaN") }
            guard p >= 0, p <= 1 else { throw LlamaError(.invalidArgument, "\(name) must be within 0...1, not \(p)") }
        }
        func temperature(_ t: Float) throws(LlamaError) {
            guard !t.isNaN else { throw LlamaError(.invalidArgument, "temperature must be a number (0 or more), not NaN") }
            guard t >= 0 else { throw LlamaError(.invalidArgument, "temperature must not be negative, not \(t)") }
        }
        switch stage {
        case .greedy: return c.llama_sampler_init_greedy()
        case .distribution(let seed): return c.llama_sampler_init_dist(seed)
        case .topK(let k):
            guard k > 0 else { throw LlamaError(.invalidArgument, "topK must be positive, not \(k)") }
            return c.llama_sampler_init_top_k(k)
        case .topP(let p, let minKeep):
            try probability(p, "topP")
            return c.llama_sampler_init_top_p(p, minKeep)
        case .minP(let p, let minKeep):
            try probability(p, "minP")
            return c.llama_sampler_init_min_p(p, minKeep)
        case .typical(let p, let minKeep):
            try probability(p, "typical")
            return c.llama_sampler_init_typical(p, minKeep)
        case .temperature(let t):
            try temperature(t)
            return c.llama_sampler_init_temp(t)
        case .temperatureExtended(let t, let delta, let exponent):
            try temperature(t)
            guard !delta.isNaN, !exponent.isNaN else {
                throw LlamaError(.invalidArgument, "temperature delta and exponent must be numbers, not NaN")
            }
            return c.llama_sampler_init_temp_ext(t, delta, exponent)
        case .xtc(let p, let threshold, let minKeep, let seed):
            try probability(p, "xtc probability")
            return c.llama_sampler_init_xtc(p, threshold, minKeep, seed)
        case .topNSigma(let n): return c.llama_sampler_init_top_n_sigma(n)
        case .mirostat(let tau, let eta, let m, let seed):
            return c.llama_sampler_init_mirostat(model.vocab.count, seed, tau, eta, m)
        case .mirostatV2(let tau, let eta, let seed): return c.llama_sampler_init_mirostat_v2(seed, tau, eta)
        case .adaptiveP(let target, let decay, let seed): return c.llama_sampler_init_adaptive_p(target, decay, seed)
        case .grammar(let grammar, let root):
            guard let s = c.llama_sampler_init_grammar(vocab, grammar, root) else {
                throw LlamaError(.invalidGrammar, "the GBNF grammar did not parse (start symbol \"\(root)\"); "
                    + "llama.cpp's log names the error")
            }
            return s
        case .lazyGrammar(let grammar, let root, let patterns, let tokens):
            let s = withCStrings(patterns) { p in
                c.llama_sampler_init_grammar_lazy_patterns(vocab, grammar, root, p, patterns.count, tokens, tokens.count)
            }
            guard let s else { throw LlamaError(.invalidGrammar, "the lazy GBNF grammar did not parse") }
            return s
        case .penalties(let lastN, let rep, let freq, let presence):
            guard lastN >= -1 else { throw LlamaError(.invalidArgument, "penalty lastN must be -1 or more") }
            return c.llama_sampler_init_penalties(model.vocab.count, lastN, rep, freq, presence)
        case .dry(let multiplier, let base, let allowed, let lastN, let breakers):
            return withCStrings(breakers) { b in
                c.llama_sampler_init_dry(vocab, multiplier, base, allowed, lastN, b, breakers.count)
            }
        case .logitBias(let biases):
            for t in biases.keys { try model.vocab.check(t) }
            let entries = biases.sorted { $0.key < $1.key }.map { llama_logit_bias(token: $0.key, bias: $0.value) }
            return c.llama_sampler_init_logit_bias(model.vocab.count, Int32(entries.count), entries)
        case .infill: return c.llama_sampler_init_infill(vocab)
        case .custom(let sampler): return CustomSamplerInterface.shared.make(sampler, c: c)
        }
    }
}

/// Calls `body` with a C array of C strings.
func withCStrings<R>(_ strings: [String], _ body: (UnsafeMutablePointer<UnsafePointer<CChar>?>?) -> R) -> R {
    var pointers = strings.map { UnsafePointer(strdup($0)) }
    defer { pointers.forEach { free(UnsafeMutablePointer(mutating: $0)) } }
    return pointers.withUnsafeMutableBufferPointer { body($0.baseAddress) }
}

/// A built llama.cpp sampler chain; freed with this object.
///
/// Sampling goes through ``sample(logits:)`` rather than `llama_sampler_sample`, which asserts
/// (ends the process) when no stage selected a token, and whose grammar stage aborts when the
/// token chosen is one the grammar does not allow: here both are typed errors.
final class SamplerInstance {
    let runtime: LlamaRuntime
    let pointer: UnsafeMutablePointer<llama_sampler>
    /// The grammar stages of the chain (owned by it), each asked about the chosen token before
    /// the chain accepts it.
    var grammars: [UnsafeMutablePointer<llama_sampler>] = []
    /// The candidates, one per token of the vocabulary, reused at every step.
    let candidates: UnsafeMutableBufferPointer<llama_token_data>

    init(runtime: LlamaRuntime, pointer: UnsafeMutablePointer<llama_sampler>, vocabCount: Int) {
        self.runtime = runtime
        self.pointer = pointer
        candidates = .allocate(capacity: max(vocabCount, 1))
    }
    deinit {
        runtime.raw.llama_sampler_free(pointer)
        candidates.deallocate()
    }

    /// Checks that a grammar sampler allows at least one token of the vocabulary at its start.
    func checkGrammarStart(_ grammar: UnsafeMutablePointer<llama_sampler>) throws(LlamaError) {
        for i in candidates.indices { candidates[i] = llama_token_data(id: Int32(i), logit: 0, p: 0) }
        var array = llama_token_data_array(data: candidates.baseAddress, size: candidates.count, selected: -1, sorted: false)
        runtime.raw.llama_sampler_apply(grammar, &array)
        guard candidates.prefix(array.size).contains(where: { $0.logit != -.infinity }) else {
            throw LlamaError(.grammarDeadEnd, "no token of the vocabulary can begin the grammar: it cannot be satisfied "
                + "by this model's tokens (characters no token holds, such as NUL?)")
        }
    }

    /// The lazy grammars' triggers, mirrored (see ``LazyGrammarTrigger``).
    var triggers: [LazyGrammarTrigger] = []

    /// Samples a token from the logits of one output and lets the chain accept it.
    func sample(logits: UnsafePointer<Float>) throws(LlamaError) -> LlamaToken {
        let c = runtime.raw
        var banned: [LlamaToken] = []
        var token: LlamaToken
        while true {
            for i in candidates.indices { candidates[i] = llama_token_data(id: Int32(i), logit: logits[i], p: 0) }
            for b in banned { candidates[Int(b)].logit = -.infinity }
            var array = llama_token_data_array(data: candidates.baseAddress, size: candidates.count, selected: -1, sorted: false)
            c.llama_sampler_apply(pointer, &array)
            guard array.selected >= 0, array.selected < Int64(array.size), let data = array.data else {
                throw LlamaError(.invalidArgument, "no stage of the sampler chain selected a token (selected index "
                    + "\(array.selected) of \(array.size) candidates): end the chain with .greedy or .distribution(seed:)")
            }
            token = data[Int(array.selected)].id
            guard token >= 0, token < Int32(candidates.count) else {
                throw LlamaError(.invalidArgument, "the sampler chain selected token \(token), which is not in the vocabulary")
            }
            // A token that would trigger a lazy grammar with text the grammar rejects: another one.
            guard triggers.contains(where: { !$0.allows(token) }) else { break }
            banned.append(token)
            guard banned.count < 32 else {
                throw LlamaError(.grammarDeadEnd, "the model keeps choosing tokens that open a lazy grammar's trigger "
                    + "with text the grammar rejects (\(banned.count) tried): the grammar cannot follow its trigger here")
            }
        }
        for grammar in grammars {
            var one = llama_token_data(id: token, logit: 0, p: 0)
            let allowed = withUnsafeMutablePointer(to: &one) { p in
                var single = llama_token_data_array(data: p, size: 1, selected: -1, sorted: false)
                c.llama_sampler_apply(grammar, &single)
                return p.pointee.logit != -.infinity
            }
            guard allowed else {
                throw LlamaError(.grammarDeadEnd, "the grammar allows no token here (token \(token) was chosen, which it "
                    + "rejects): the grammar cannot be continued with this model's tokens")
            }
        }
        c.llama_sampler_accept(pointer, token)
        for trigger in triggers { trigger.accept(token) }
        return token
    }
}

/// A lazy grammar's trigger, followed on the Swift side. When the token that completes a
/// trigger is accepted, llama.cpp replays the text from the trigger on into the grammar, and
/// ends the process (an uncaught C++ exception) when the grammar rejects that text. So before
/// a token is accepted, the same search runs here (llama.cpp's rules: a pattern `^...$` must
/// match the whole text, others are searched; the replay starts at the first non-empty
/// capture group, else at the match), and text the grammar rejects — checked on a fresh
/// eager copy of the grammar — makes the sampler choose another token.
final class LazyGrammarTrigger {
    let model: LlamaModel
    let grammar: String
    let root: String
    /// The trigger patterns, searched with std::regex exactly as llama.cpp does (CTriggerRegex).
    let patterns: [String]
    let tokens: Set<LlamaToken>
    /// The pieces generated since the grammar was created, while it waits (llama.cpp's trigger buffer).
    var buffer: [UInt8] = []
    var triggered = false

    init(model: LlamaModel, grammar: String, root: String, patterns: [String], tokens: [LlamaToken]) throws(LlamaError) {
        self.model = model
        self.grammar = grammar
        self.root = root
        self.tokens = Set(tokens)
        for p in patterns { try GrammarPrecheck.checkTriggerPattern(p) }
        self.patterns = patterns
        for t in tokens { try model.vocab.check(t) }
    }

    func piece(_ token: LlamaToken) -> [UInt8] { (try? model.vocab.piece(token, special: true)) ?? [] }

    /// What happens if `token` comes next: nothing, the grammar is triggered and fed `text`, or
    /// the search fails (llama.cpp's would throw and end the process).
    enum Outcome { case none, triggers(String), fails }

    func outcome(_ token: LlamaToken) -> Outcome {
        guard !triggered else { return .none }
        if tokens.contains(token) { return .triggers(String(decoding: piece(token), as: UTF8.self)) }
        let bytes = buffer + piece(token)
        for pattern in patterns {
            let start = bytes.withUnsafeBufferPointer { b in
                b.withMemoryRebound(to: CChar.self) { llama_swift_trigger_regex_find(pattern, $0.baseAddress, $0.count) }
            }
            if start == -2 { return .fails }
            guard start >= 0, Int(start) <= bytes.count else { continue }
            return .triggers(String(decoding: bytes[Int(start)...], as: UTF8.self))
        }
        return .none
    }

    /// Whether `token` may come next: it triggers nothing, or the grammar accepts the text it triggers with.
    func allows(_ token: LlamaToken) -> Bool {
        let text: String
        switch outcome(token) {
        case .none: return true
        case .fails: return false
        case .triggers(let t): text = t
        }
        let c = model.runtime.raw
        guard let probe = c.llama_sampler_init_grammar(model.vocab.pointer, grammar, root) else { return false }
        defer { c.llama_sampler_free(probe) }
        guard let pieces = try? model.vocab.tokenize(text, addSpecial: false, parseSpecial: false) else { return false }
        for t in pieces {
            var one = llama_token_data(id: t, logit: 0, p: 0)
            let ok = withUnsafeMutablePointer(to: &one) { p in
                var single = llama_token_data_array(data: p, size: 1, selected: -1, sorted: false)
                c.llama_sampler_apply(probe, &single)
                return p.pointee.logit != -.infinity
            }
            guard ok else { return false }
            c.llama_sampler_accept(probe, t)
        }
        return true
    }

    func accept(_ token: LlamaToken) {
        guard !triggered else { return }
        if case .triggers = outcome(token) {
            triggered = true
            buffer = []
        } else {
            buffer += piece(token)
        }
    }
}

// MARK: - Samplers written in Swift

/// A sampler written in Swift, run by llama.cpp inside its chain through `llama_sampler_i`.
///
/// `apply` sees the candidates (token, logit, probability), may change logits, shrink the list
/// or select one; `accept` is told each token that was chosen.
public protocol LlamaCustomSampler: AnyObject, Sendable {
    /// The sampler's name in llama.cpp's chain (the type's name by default).
    var name: String { get }
    /// Changes the candidates: logits, the list, or the selected one.
    func apply(_ candidates: inout TokenCandidates)
    /// Told each token that was chosen (nothing by default).
    func accept(_ token: LlamaToken)
    /// Forgets what `accept` was told (nothing by default).
    func reset()
}

extension LlamaCustomSampler {
    /// The sampler's name in llama.cpp's chain (the type's name by default).
    public var name: String { String(describing: type(of: self)) }
    /// Told each token that was chosen (nothing by default).
    public func accept(_ token: LlamaToken) {}
    /// Forgets what `accept` was told (nothing by default).
    public func reset() {}
}

/// The candidates of one sampling step (`llama_token_data_array`), edited in place.
public struct TokenCandidates {
    let array: UnsafeMutablePointer<llama_token_data_array>

    /// The number of candidates.
    public var count: Int { array.pointee.size }
    /// The token of the candidate at an index.
    public func token(at i: Int) -> LlamaToken { array.pointee.data[i].id }
    /// The logit of the candidate at an index.
    public func logit(at i: Int) -> Float { array.pointee.data[i].logit }
    /// The probability of the candidate at an index (set by samplers that compute it).
    public func probability(at i: Int) -> Float { array.pointee.data[i].p }
    /// Changes the logit of the candidate at an index.
    public mutating func setLogit(_ logit: Float, at i: Int) { array.pointee.data[i].logit = logit }
    /// The index of the selected candidate, if a sampler selected one.
    public var selected: Int? {
        get { array.pointee.selected < 0 ? nil : Int(array.pointee.selected) }
        nonmutating set { array.pointee.selected = Int64(newValue ?? -1) }
    }
    /// Keeps only the first `n` candidates.
    public mutating func truncate(to n: Int) { array.pointee.size = min(array.pointee.size, max(n, 1)) }
    /// Whether the candidates are sorted by logit, descending.
    public var isSorted: Bool {
        get { array.pointee.sorted }
        nonmutating set { array.pointee.sorted = newValue }
    }
}

/// Holds a Swift sampler and its C name for the lifetime of the llama.cpp sampler.
final class CustomSamplerBox {
    let sampler: any LlamaCustomSampler
    let cName: UnsafeMutablePointer<CChar>
    init(_ sampler: any LlamaCustomSampler) {
        self.sampler = sampler
        cName = strdup(sampler.name)
    }
    deinit { free(cName) }

    static func from(_ s: UnsafePointer<llama_sampler>?) -> CustomSamplerBox {
        Unmanaged<CustomSamplerBox>.fromOpaque(s!.pointee.ctx!).takeUnretainedValue()
    }
}

/// The one `llama_sampler_i` table shared by every Swift sampler; it lives for the process.
final class CustomSamplerInterface: @unchecked Sendable {
    static let shared = CustomSamplerInterface()
    let table: UnsafeMutablePointer<llama_sampler_i>

    private init() {
        var i = llama_sampler_i()
        i.name = { s in UnsafePointer(CustomSamplerBox.from(s).cName) }
        i.accept = { s, token in CustomSamplerBox.from(s).sampler.accept(token) }
        i.apply = { s, array in
            guard let array else { return }
            var candidates = TokenCandidates(array: array)
            CustomSamplerBox.from(s).sampler.apply(&candidates)
        }
        i.reset = { s in CustomSamplerBox.from(s).sampler.reset() }
        i.free = { s in
            guard let ctx = s?.pointee.ctx else { return }
            Unmanaged<CustomSamplerBox>.fromOpaque(ctx).release()
        }
        table = .allocate(capacity: 1)
        table.initialize(to: i)
    }

    func make(_ sampler: any LlamaCustomSampler, c: LlamaSymbols) -> UnsafeMutablePointer<llama_sampler>? {
        let box = Unmanaged.passRetained(CustomSamplerBox(sampler)).toOpaque()
        guard let s = c.llama_sampler_init(table, box) else {
            Unmanaged<CustomSamplerBox>.fromOpaque(box).release()
            return nil
        }
        return s
    }
}

// MARK: - Grammar text checked before llama.cpp sees it

/// Checks on grammar text and lazy-grammar trigger patterns for what llama.cpp does not survive:
///
/// - a NUL character in the grammar, its start symbol or a trigger pattern (the C API cuts the
///   text there, so llama.cpp would run something other than what was passed — a pattern `"\0"`
///   becomes the empty pattern, which fires on the first token);
/// - a repetition `{m,n}` with `m > n`: llama.cpp's parser computes `n - m` unsigned and
///   allocates rules without bound (the process runs out of memory); and a minimum past
///   llama.cpp's `MAX_REPETITION_THRESHOLD` (2,000), which its parser refuses anyway (refused
///   here with a clearer message). A maximum past it is left alone: llama.cpp reads it as "no
///   maximum", and schemas with a large `maxLength` rely on that. Memory stays bounded: llama.cpp
///   refuses a repetition whose rules times its count pass the same 2,000. (Each `{m,n}` outside
///   string literals, character classes and comments is checked.)
/// - a trigger pattern std::regex does not compile: llama.cpp compiles the patterns outside any
///   `try`, so an invalid one ends the process. The pattern is compiled with the same std::regex
///   (ECMAScript grammar) first.
///
/// Each failure is an `.invalidGrammar` error.
enum GrammarPrecheck {
    /// llama.cpp's `MAX_REPETITION_THRESHOLD` (src/llama-grammar.cpp).
    static let maxRepetition = 2000

    static func check(_ grammar: String, root: String) throws(LlamaError) {
        if grammar.utf8.contains(0) || root.utf8.contains(0) {
            throw LlamaError(.invalidGrammar, "the GBNF grammar or its start symbol contains a NUL character, which "
                + "llama.cpp's C API cannot take: write it as the escape \\x00 inside a literal")
        }
        try checkRepetitions(Array(grammar.utf8))
    }

    static func checkTriggerPattern(_ pattern: String) throws(LlamaError) {
        if pattern.utf8.contains(0) {
            throw LlamaError(.invalidGrammar, "the lazy grammar's trigger pattern \(pattern.debugDescription) contains a NUL "
                + "character, which llama.cpp's C API cannot take (it would cut the pattern there): write \\x00 instead")
        }
        var message = [CChar](repeating: 0, count: 256)
        guard llama_swift_trigger_regex_check(pattern, &message, message.count) == 1 else {
            let reason = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw LlamaError(.invalidGrammar, "the lazy grammar's trigger pattern \(pattern.debugDescription) is not a "
                + "regular expression llama.cpp can compile (std::regex, ECMAScript): \(reason)")
        }
    }

    /// Every `{m}`, `{m,}` and `{m,n}` of the text, outside literals, classes and comments.
    static func checkRepetitions(_ t: [UInt8]) throws(LlamaError) {
        var i = 0
        func skipQuoted(_ close: UInt8) {
            i += 1
            while i < t.count, t[i] != close {
                if t[i] == UInt8(ascii: "\\") { i += 1 }
                i += 1
            }
            i += 1
        }
        func space() {
            while i < t.count, t[i] == 32 || t[i] == 9 || t[i] == 10 || t[i] == 13 { i += 1 }
        }
        /// The number at `i`, saturated past the bound (digits beyond it would overflow).
        func number() -> Int? {
            guard i < t.count, (48...57).contains(t[i]) else { return nil }
            var n = 0
            while i < t.count, (48...57).contains(t[i]) {
                n = min(n * 10 + Int(t[i] - 48), Int(Int32.max))
                i += 1
            }
            return n
        }
        while i < t.count {
            switch t[i] {
            case UInt8(ascii: "\""): skipQuoted(UInt8(ascii: "\""))
            case UInt8(ascii: "["): skipQuoted(UInt8(ascii: "]"))
            case UInt8(ascii: "#"):
                while i < t.count, t[i] != 10, t[i] != 13 { i += 1 }
            case UInt8(ascii: "{"):
                let at = i
                i += 1
                space()
                guard let low = number() else { continue }  // llama.cpp reports the syntax error itself
                space()
                var high: Int? = low
                if i < t.count, t[i] == UInt8(ascii: ",") {
                    i += 1
                    space()
                    high = number()
                }
                let text = String(decoding: t[at..<min(i + 1, t.count)], as: UTF8.self)
                if let high, low > high {
                    throw LlamaError(.invalidGrammar, "the GBNF repetition \(text) has a minimum (\(low)) above its maximum "
                        + "(\(high)), which llama.cpp cannot handle (it would allocate without bound): write {\(high),\(low)}")
                }
                if low > maxRepetition {
                    throw LlamaError(.invalidGrammar, "the GBNF repetition \(text) repeats at least \(low) times, more than "
                        + "llama.cpp's limit (\(maxRepetition)): use a smaller count")
                }
            default: i += 1
            }
        }
    }
}
