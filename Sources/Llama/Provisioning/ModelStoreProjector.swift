public import Foundation

// A model's multimodal projector (mmproj) from its Hub repository, stored beside the model.

extension LlamaModelStore {
    /// Pulls the projector of a Hub model into the store, beside the model: `file` when given
    /// (a path in the repository, or a name in the model's folder), else the repository's
    /// `mmproj` GGUF files in the model's folder: the only one, else the one with the model's
    /// quantization in its name (`Q4_K_M`, `Q8_0`...), else the `F16` one.
    ///
    /// - Throws: `.fileNotFound` when the folder has no mmproj file (or not `file`);
    ///   `.invalidArgument` when several fit and none is chosen (the error lists them); the
    ///   errors of ``pull(_:expectedSHA256:progress:)``.
    public func pullProjector(for model: LlamaModelReference, file: String? = nil,
                              progress: LlamaProgressHandler? = nil) async throws(LlamaError) -> LlamaStoredModel {
        let folder = (model.file as NSString).deletingLastPathComponent
        if let file {
            let path = file.contains("/") || folder.isEmpty ? file : folder + "/" + file
            return try await pull(LlamaModelReference(repo: model.repo, file: path, revision: model.revision), progress: progress)
        }
        if let stored = storedProjector(for: model) { return stored }
        guard !options.offline else {
            throw LlamaError(.offline, "offline mode, and no projector of \(model) is in the model store")
        }
        let hub = hubURL
        let names = try await Downloader.with(options, progress: nil, headers: token.map { ["Authorization": "Bearer \($0)"] } ?? [:]) {
            (d: Downloader) async throws(LlamaError) -> [String] in
            try await hubTree(model, with: d, hub: hub).map(\.path)
        }
        let chosen = try Self.chooseProjector(names.filter { Self.isProjector($0) }, model: model)
        return try await pull(LlamaModelReference(repo: model.repo, file: chosen, revision: model.revision), progress: progress)
    }

    /// The projector stored beside a model (pulled with ``pullProjector(for:file:progress:)``), if any.
    public func storedProjector(for model: LlamaModelReference) -> LlamaStoredModel? {
        let folder = path(for: model).deletingLastPathComponent()
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).filter { Self.isProjector($0) }
        let inRepo = (model.file as NSString).deletingLastPathComponent
        let candidates = names.map { inRepo.isEmpty ? $0 : inRepo + "/" + $0 }
        guard let chosen = try? Self.chooseProjector(candidates, model: model) else { return nil }
        return stored(LlamaModelReference(repo: model.repo, file: chosen, revision: model.revision))
    }

    static func isProjector(_ path: String) -> Bool {
        let name = (path as NSString).lastPathComponent.lowercased()
        return name.hasSuffix(".gguf") && name.contains("mmproj")
    }

    /// The quantization named in a GGUF file name (`Q4_K_M`, `IQ3_XXS`, `Q8_0`, `F16`, `BF16`...), uppercased.
    static func quantization(_ name: String) -> String? {
        let stem = ((name as NSString).lastPathComponent as NSString).deletingPathExtension.uppercased()
        let pieces = stem.split(whereSeparator: { $0 == "-" || $0 == "." })
        return pieces.last { $0.wholeMatch(of: /I?Q[0-9]+(_[A-Z0-9]+)*|B?F16|F32/) != nil }.map(String.init)
    }

    /// The projector among `names` for `model`: the only one, the one of the model's
    /// quantization, else the F16 one.
    static func chooseProjector(_ names: [String], model: LlamaModelReference) throws(LlamaError) -> String {
        guard !names.isEmpty else {
            throw LlamaError(.fileNotFound, "\(model.repo) has no mmproj GGUF file beside \(model.file) at \(model.revision): "
                + "the model may not read images or audio, or its projector is in another repository (pass it as a file)")
        }
        if names.count == 1 { return names[0] }
        if let quant = quantization(model.file), let match = names.first(where: { quantization($0) == quant }) { return match }
        if let f16 = names.first(where: { quantization($0) == "F16" }) { return f16 }
        throw LlamaError(.invalidArgument, "\(model.repo) has several projectors beside \(model.file): "
            + "\(names.joined(separator: ", ")); name one (models pull --mmproj FILE)")
    }
}
