import ArgumentParser
import Foundation
import Llama

/// Speculative decoding flags, in the names of llama.cpp's common/arg.cpp (b11434), with the
/// older spellings it had (`--draft-max`, `--draft-min`) and `--lookup N` as shorthand.
struct SpeculationFlags: ParsableArguments {
    @Option(name: [.customLong("spec-draft-model"), .customLong("md", withSingleDash: true), .customLong("model-draft"),
                   .customLong("draft")],
            help: "A draft model for speculative decoding: a smaller GGUF model with the target's vocabulary (llama.cpp's draft-simple).")
    var draftModel: String?

    @Option(name: [.customLong("spec-type")], help: ArgumentHelp(
        "Speculative decoding: none, draft-simple (needs --spec-draft-model, the default with one), ngram-simple (prompt lookup) "
            + "or draft-mtp (the model's own multi-token-prediction layers, which it then loads).",
        valueName: "type"))
    var specType: String?

    @Option(name: [.customLong("lookup")], help: ArgumentHelp(
        "Prompt lookup with n-grams of up to N tokens (the same as --spec-type ngram-simple --spec-ngram-simple-size-n N).",
        valueName: "N"))
    var lookup: Int?

    @Option(name: [.customLong("spec-ngram-simple-size-n")], help: ArgumentHelp(
        "Prompt lookup: the longest n-gram looked up (default 4; shorter ones down to 2 are tried next).", valueName: "N"))
    var ngramSizeN: Int?

    @Option(name: [.customLong("spec-ngram-simple-size-m")], help: ArgumentHelp(
        "Prompt lookup: the most tokens guessed after a match (default 16).", valueName: "M"))
    var ngramSizeM: Int?

    @Option(name: [.customLong("spec-draft-n-max"), .customLong("draft-max"), .customLong("draft-n")],
            help: ArgumentHelp("Draft model or MTP: the most tokens drafted per step (default 16; 3 for draft-mtp).", valueName: "N"))
    var draftMax: Int?

    @Option(name: [.customLong("spec-draft-n-min"), .customLong("draft-min"), .customLong("draft-n-min")],
            help: ArgumentHelp("Draft model or MTP: shorter drafts are not used (default 0).", valueName: "N"))
    var draftMin: Int?

    @Option(name: [.customLong("spec-draft-p-min"), .customLong("draft-p-min")],
            help: ArgumentHelp("Draft model or MTP: stop drafting where its best token is less likely than P (default 0.75; 0 for draft-mtp).",
                               valueName: "P"))
    var draftPMin: Float?

    enum Kind: String { case disabled = "none", draftSimple = "draft-simple", ngramSimple = "ngram-simple", draftMTP = "draft-mtp" }

    /// The kind asked for: --spec-type, else implied by --lookup or --spec-draft-model.
    func kind() throws -> Kind {
        if let specType {
            guard let kind = Kind(rawValue: specType) else {
                throw ValidationError("--spec-type \(specType): not one of none, draft-simple, ngram-simple, draft-mtp (llama.cpp's "
                    + "ngram-map-k, ngram-mod, ngram-cache, EAGLE-3 and DFlash are not implemented)")
            }
            return kind
        }
        if draftModel != nil { return .draftSimple }
        if lookup != nil || ngramSizeN != nil || ngramSizeM != nil { return .ngramSimple }
        return .disabled
    }

    func validate() throws {
        let kind = try kind()
        if kind == .draftSimple, draftModel == nil {
            throw ValidationError("--spec-type draft-simple needs a draft model: --spec-draft-model (-md, --model-draft)")
        }
        if kind != .draftSimple, draftModel != nil {
            throw ValidationError("--spec-draft-model is used by --spec-type draft-simple, not \(kind.rawValue)")
        }
        if kind != .ngramSimple, let flag = [("--lookup", lookup), ("--spec-ngram-simple-size-n", ngramSizeN),
                                              ("--spec-ngram-simple-size-m", ngramSizeM)].first(where: { $0.1 != nil })?.0 {
            throw ValidationError("\(flag) is used by --spec-type ngram-simple (prompt lookup), not \(kind.rawValue)")
        }
        if kind == .ngramSimple, let flag = [("--spec-draft-n-max", draftMax), ("--spec-draft-n-min", draftMin)]
            .first(where: { $0.1 != nil })?.0 ?? (draftPMin != nil ? "--spec-draft-p-min" : nil) {
            throw ValidationError("\(flag) is used by a draft model or MTP, not prompt lookup: set its guess length with "
                + "--spec-ngram-simple-size-m")
        }
        if lookup != nil, ngramSizeN != nil { throw ValidationError("--lookup and --spec-ngram-simple-size-n both set the n-gram size: pass one") }
        for (name, value) in [("--lookup", lookup), ("--spec-ngram-simple-size-n", ngramSizeN), ("--spec-ngram-simple-size-m", ngramSizeM),
                              ("--spec-draft-n-max", draftMax)] {
            if let value, value < 1 || value > 1024 { throw ValidationError("\(name) must be within 1...1024, not \(value)") }
        }
        if let draftMin, draftMin < 0 { throw ValidationError("--spec-draft-n-min must not be negative") }
        if let draftPMin, !(0...1).contains(draftPMin) { throw ValidationError("--spec-draft-p-min must be within 0...1") }
    }

    var isEnabled: Bool { ((try? kind()) ?? .disabled) != .disabled }

    /// Whether the model must be loaded with its MTP layers (`--spec-type draft-mtp`, as llama.cpp loads them).
    var loadsMTP: Bool { (try? kind()) == .draftMTP }

    /// The speculation these flags ask for; checks and loads the draft model (with the target's runtime) if any.
    func speculation(target: LlamaModel, gpuLayers: Int32) async throws -> Speculation? {
        switch try kind() {
        case .disabled:
            return nil
        case .ngramSimple:
            let n = lookup ?? ngramSizeN ?? 4
            return .lookup(n: n, minN: min(2, n), maxDraft: ngramSizeM ?? 16)
        case .draftMTP:
            return .mtp(maxDraft: draftMax ?? 3, minDraft: draftMin ?? 0, pMin: draftPMin ?? 0)
        case .draftSimple:
            let path = draftModel!
            var options = ModelOptions()
            options.gpuLayers = gpuLayers
            var vocabularyOnly = ModelOptions()
            vocabularyOnly.vocabularyOnly = true
            let model: LlamaModel
            do {
                // The vocabularies first (a quick load), so that a mismatch is told before the weights load.
                try target.checkDraftCompatibility(try LlamaModel(runtime: target.runtime, path: path, options: vocabularyOnly))
                model = try await LlamaModel.load(runtime: target.runtime, paths: [path], options: options)
            } catch let error as LlamaError {
                CLI.note("error: the draft model: \(error.description)")
                throw ExitCode(1)
            }
            return .draft(model: model, maxDraft: draftMax ?? 16, minDraft: draftMin ?? 0, pMin: draftPMin ?? 0.75)
        }
    }
}
