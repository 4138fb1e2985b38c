import Foundation
import Logging

/// Loads a GPU build in a child process before this process does: a broken driver may crash
/// the dynamic loader, and must crash the child, not the user's program. The verdict is kept per
/// variant and driver version in the cache (`<tag>/verdicts.json`), so the check runs once.
struct LlamaBackendCheck {
    let options: LlamaInstallOptions
    let hardware: LlamaHardwareReport?

    struct Verdict: Codable {
        var ok: Bool
        var reason: String
        var checkedAt: Date
    }

    var file: URL { LlamaInstaller(options: options).tagFolder.appendingPathComponent("verdicts.json") }

    func key(_ variant: LlamaVariant) -> String {
        let driver = hardware?.nvidia?.driverVersion ?? hardware?.nvidia?.cudaVersion ?? "-"
        return "\(options.platform)-\(variant.rawValue)|driver \(driver)"
    }

    func verdicts() -> [String: Verdict] {
        guard let data = try? Data(contentsOf: file) else { return [:] }
        return (try? decoder.decode([String: Verdict].self, from: data)) ?? [:]
    }

    func verify(_ dir: URL, variant: LlamaVariant) async throws(LlamaError) {
        if let known = verdicts()[key(variant)] {
            guard known.ok else {
                throw LlamaError(.libraryLoad, "\(known.reason) (verdict of \(known.checkedAt); delete \(file.path) to check again)")
            }
            return
        }
        guard let helper = options.helper else {
            options.logger.info("no helper program to load the \(variant) build in a child process first; loading it in this process")
            return
        }
        let verdict = await check(dir, helper: helper)
        var all = verdicts()
        all[key(variant)] = verdict
        try? encoder.encode(all).write(to: file, options: .atomic)
        guard verdict.ok else { throw LlamaError(.libraryLoad, verdict.reason) }
    }

    /// Runs `<helper> libs check <dir>`: exit 0 with a GPU device listed is a pass.
    func check(_ dir: URL, helper: URL) async -> Verdict {
        let child: ChildProcess
        do { child = try ChildProcess(helper.path, ["libs", "check", dir.path]) } catch {
            return Verdict(ok: false, reason: "the helper \(helper.path) could not start: \(error)", checkedAt: Date())
        }
        let output: String = await withCheckedContinuation { (done: CheckedContinuation<String, Never>) in
            Thread.detachNewThread {
                done.resume(returning: String(decoding: child.readToEnd(), as: UTF8.self))
            }
        }
        let status = child.wait()
        let lastLine = output.split(separator: "\n").last.map(String.init) ?? ""
        if status > 128 {
            return Verdict(ok: false, reason: "loading the build crashed a child process (signal \(status - 128)): the driver is broken "
                + "or does not match this build", checkedAt: Date())
        }
        guard status == 0 else {
            return Verdict(ok: false, reason: "the build failed to load in a child process: \(lastLine)", checkedAt: Date())
        }
        guard output.contains("\"gpu\"") || output.contains("\"igpu\"") else {
            return Verdict(ok: false, reason: "the build loads, but ggml registered no GPU device", checkedAt: Date())
        }
        return Verdict(ok: true, reason: "a GPU device registered in a child process", checkedAt: Date())
    }
}
