// The names of a tag's release assets, read from llama.cpp's release workflow
// (`.github/workflows/release.yml` in the tag's source tree), and their classification into
// the manifest's os / arch / variant / companions.
public import BindgenCore
import Foundation
import Yams

/// A YAML value reduced to what the workflow's matrices and environments need.
public indirect enum WorkflowValue: Hashable, Sendable, CustomStringConvertible {
    case scalar(String)
    case list([WorkflowValue])
    case map([String: WorkflowValue])

    init(_ node: Node) {
        switch node {
        case .scalar(let s): self = .scalar(s.string)
        case .sequence(let s): self = .list(s.map(WorkflowValue.init))
        case .mapping(let m):
            var out: [String: WorkflowValue] = [:]
            for (k, v) in m { if let key = k.string { out[key] = WorkflowValue(v) } }
            self = .map(out)
        case .alias: self = .scalar("")
        }
    }

    /// The text a workflow expression gives for the value.
    public var description: String {
        switch self {
        case .scalar(let s): return s
        case .list(let l): return "[" + l.map(\.description).joined(separator: ", ") + "]"
        case .map(let m): return "{" + m.keys.sorted().map { "\($0): \(m[$0]!)" }.joined(separator: ", ") + "}"
        }
    }

    var mapValue: [String: WorkflowValue]? { if case .map(let m) = self { m } else { nil } }
    var listValue: [WorkflowValue]? { if case .list(let l) = self { l } else { nil } }
    var scalarValue: String? { if case .scalar(let s) = self { s } else { nil } }
}

/// One combination of a job's matrix: axis (or include key) → value.
public typealias MatrixCombination = [String: WorkflowValue]

public enum ReleaseWorkflow {
    /// The combinations a job's `strategy.matrix` runs, as GitHub Actions expands them: the
    /// product of the list-valued axes, then each `include` entry merged into every combination
    /// whose axis values it matches, or added as its own when it matches none. A matrix given as
    /// an expression (`${{ fromJson(...) }}`) is one empty combination. `exclude` is ignored.
    public static func expandMatrix(_ job: [String: WorkflowValue]) -> [MatrixCombination] {
        let matrixValue = job["strategy"]?.mapValue?["matrix"]
        if case .scalar = matrixValue { return [[:]] }
        let matrix = matrixValue?.mapValue ?? [:]
        // Axes in the order the workflow lists them do not matter to the set of combinations;
        // sorted keys keep the result deterministic.
        let axes = matrix.keys.sorted().filter { $0 != "include" && $0 != "exclude" && matrix[$0]?.listValue != nil }
        var combos: [MatrixCombination] = [[:]]
        for axis in axes {
            let values = matrix[axis]!.listValue!
            combos = combos.flatMap { c in values.map { v in c.merging([axis: v]) { $1 } } }
        }
        let include = matrix["include"]?.listValue?.compactMap(\.mapValue) ?? []
        if !axes.isEmpty {
            for extra in include {
                var matched = false
                for i in combos.indices where extra.allSatisfy({ k, v in !axes.contains(k) || combos[i][k] == v }) {
                    combos[i].merge(extra) { $1 }
                    matched = true
                }
                if !matched { combos.append(extra) }
            }
        } else if !include.isEmpty {
            combos = include
        }
        return combos
    }

    /// The asset names the workflow packs, with the tag filled in, sorted. Names that depend
    /// on values known only when the workflow runs are left out and reported through `warn`.
    public static func assetNames(workflow text: String, tag: String,
                                  warn: (String) -> Void = { _ in }) throws -> [String] {
        guard let root = try Yams.compose(yaml: text).map(WorkflowValue.init)?.mapValue else { return [] }
        let globalEnv = root["env"]?.mapValue ?? [:]
        let pack = try NSRegularExpression(pattern: #"(?:tar\s+-czvf|7z\s+a(?:\s+-\w+)*|zip\s+-r\s+-y)\s+(\S+\.(?:tar\.gz|zip))"#)
        let expression = try NSRegularExpression(pattern: #"\$\{\{\s*([^}]+?)\s*\}\}"#)
        let setEnv = try NSRegularExpression(pattern: #"echo "(\w+)=(.*)" >> \$GITHUB_ENV"#)
        let cut = try NSRegularExpression(pattern: #"^\$\(echo '([^']*)' \| cut -d '\.' -f 1,2\)$"#)
        var names: Set<String> = []
        var unresolved: Set<String> = []
        let jobs = root["jobs"]?.mapValue ?? [:]
        for jobName in jobs.keys.sorted() {
            guard let job = jobs[jobName]?.mapValue else { continue }
            let jobEnv = globalEnv.merging(job["env"]?.mapValue ?? [:]) { $1 }
            for combo in expandMatrix(job) {
                var stepEnv = jobEnv
                for step in job["steps"]?.listValue ?? [] {
                    guard let run = step.mapValue?["run"]?.scalarValue else { continue }
                    let env = stepEnv
                    let text = replace(expression, in: run) { groups in
                        let ref = groups[1]
                        if ref == "needs.check-release.outputs.tag_name" || ref == "steps.tag.outputs.name" { return tag }
                        if ref.hasPrefix("matrix."), let v = combo[String(ref.dropFirst(7))] { return v.description }
                        if ref.hasPrefix("env."), let v = env[String(ref.dropFirst(4))] { return v.description }
                        return groups[0]
                    }
                    // Variables a step exports for later steps: a literal, or a version cut to major.minor.
                    for groups in matches(setEnv, in: text) {
                        let (variable, value) = (groups[1], groups[2])
                        if let version = matches(cut, in: value).first?[1] {
                            stepEnv[variable] = .scalar(version.split(separator: ".", omittingEmptySubsequences: false)
                                .prefix(2).joined(separator: "."))
                        } else if !value.contains("$") {
                            stepEnv[variable] = .scalar(value)
                        }
                    }
                    for groups in matches(pack, in: text) {
                        let name = groups[1]
                        if name.contains("${{") {
                            unresolved.insert(name)
                            continue
                        }
                        names.insert(releasedName(name, tag: tag))
                    }
                }
            }
        }
        for name in unresolved.sorted() {
            warn("release.yml packs \(name), whose name depends on values known only when the workflow runs")
        }
        return names.sorted()
    }

    /// Windows artifacts are packed without the tag and renamed when released.
    static func releasedName(_ name: String, tag: String) -> String {
        for prefix in ["cudart-llama-bin-", "llama-bin-"] where name.hasPrefix(prefix) {
            return prefix.replacingOccurrences(of: "llama-bin-", with: "llama-\(tag)-bin-") + name.dropFirst(prefix.count)
        }
        return name
    }

    /// Release assets as the manifest lists them: os, arch, variant, name, companions (the
    /// `cudart-` archive of a CUDA build), ordered by os (linux, macos, windows), cpu first,
    /// then variant and arch. Names of other shapes are left out.
    public static func classify(_ names: [String], tag: String) -> [Manifest.Asset] {
        let escaped = NSRegularExpression.escapedPattern(for: tag)
        guard let shape = try? NSRegularExpression(pattern: "^(cudart-)?llama-\(escaped)-bin-(ubuntu|macos|win)-(.+)\\.(tar\\.gz|zip)$")
        else { return [] }
        var assets: [String: Manifest.Asset] = [:]
        var companions: [String: [Manifest.Asset.Companion]] = [:]
        for name in names {
            guard let groups = matches(shape, in: name).first else { continue }
            let (companion, system, rest) = (!groups[1].isEmpty, groups[2], groups[3])
            let parts = rest.split(separator: "-", omittingEmptySubsequences: false).map(String.init)
            let arch = parts.last!
            var variant = parts.dropLast().joined(separator: "-")
            if variant.isEmpty { variant = system == "macos" && arch == "arm64" ? "metal" : "cpu" }
            if system == "win", variant.hasPrefix("cpu") { variant = "cpu" }
            let os = ["ubuntu": "linux", "macos": "macos", "win": "windows"][system]!
            if companion {
                let main = name.replacingOccurrences(of: "cudart-", with: "", options: [.anchored])
                companions[main, default: []].append(Manifest.Asset.Companion(name: name, sha256: nil))
            } else {
                assets[name] = Manifest.Asset(os: os, arch: arch, variant: variant, name: name, sha256: nil, companions: nil)
            }
        }
        for (main, extra) in companions where assets[main] != nil { assets[main]!.companions = extra }
        let order = ["linux": 0, "macos": 1, "windows": 2]
        return assets.values.sorted { a, b in
            let x = (order[a.os] ?? 3, a.variant != "cpu" ? 1 : 0), y = (order[b.os] ?? 3, b.variant != "cpu" ? 1 : 0)
            if x != y { return x < y }
            return (a.variant, a.arch) < (b.variant, b.arch)
        }
    }

    /// The assets of `tag` named by the rules of another tag's assets: the same names with the tag replaced.
    public static func assets(_ assets: [Manifest.Asset], renamedFrom oldTag: String, to tag: String) -> [Manifest.Asset] {
        func rename(_ name: String) -> String { name.replacingOccurrences(of: "llama-\(oldTag)-", with: "llama-\(tag)-") }
        return assets.map { a in
            var a = a
            a.name = rename(a.name)
            a.sha256 = nil
            a.companions = a.companions.map { $0.map { Manifest.Asset.Companion(name: rename($0.name), sha256: nil) } }
            return a
        }
    }
}

/// The capture groups of every match (group 0 is the whole match; an absent group is "").
func matches(_ regex: NSRegularExpression, in text: String) -> [[String]] {
    let ns = text as NSString
    return regex.matches(in: text, range: NSRange(location: 0, length: ns.length)).map { m in
        (0..<m.numberOfRanges).map { i in
            let r = m.range(at: i)
            return r.location == NSNotFound ? "" : ns.substring(with: r)
        }
    }
}

/// `text` with every match replaced by what `replacement` returns for its groups.
func replace(_ regex: NSRegularExpression, in text: String, _ replacement: ([String]) -> String) -> String {
    let ns = text as NSString
    var out = ""
    var last = 0
    for m in regex.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
        out += ns.substring(with: NSRange(location: last, length: m.range.location - last))
        let groups = (0..<m.numberOfRanges).map { i -> String in
            let r = m.range(at: i)
            return r.location == NSNotFound ? "" : ns.substring(with: r)
        }
        out += replacement(groups)
        last = m.range.location + m.range.length
    }
    return out + ns.substring(from: last)
}
