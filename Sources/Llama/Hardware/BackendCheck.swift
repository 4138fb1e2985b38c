import Foundation
import Logging

/// Loads a GPU build in a child process (`llama-helper`, request `backendCheck`) before this
/// process does: a broken driver may crash the dynamic loader, and must crash the child, not the
/// user's program. The verdict is kept per variant and driver version in the cache
/// (`<tag>/verdicts.json`), so the check runs once. Without a helper the load fails with
/// `.helperNotFound`; it never loads the build in this process unchecked.
struct LlamaBackendCheck {
    let options: LlamaInstallOptions
    let hardware: LlamaHardwareReport?
    /// The longest a check may take (loading a CUDA build is slow the first time; a hung driver must not hold the load).
    var timeout: Duration = .seconds(180)

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
                throw LlamaError(.backendRejected, "\(known.reason) (verdict of \(known.checkedAt); delete \(file.path) to check again)")
            }
            return
        }
        let helper = try LlamaHelper.locate(options.helper, purpose: "to load the \(variant) build in a child process first")
        let verdict: Verdict
        do {
            try await check(dir, variant: variant, helper: helper)
            verdict = Verdict(ok: true, reason: "a GPU device registered in a child process", checkedAt: Date())
        } catch {
            // Only a verdict on the build is kept: not a timeout, a cancellation or a helper problem.
            guard error.code == .backendRejected else { throw error }
            verdict = Verdict(ok: false, reason: error.message, checkedAt: Date())
        }
        var all = verdicts()
        all[key(variant)] = verdict
        do { try encoder.encode(all).write(to: file, options: .atomic) } catch {
            options.logger.warning("cannot keep the verdict on the \(variant) build in \(file.path): \(error)")
        }
        guard verdict.ok else { throw LlamaError(.backendRejected, verdict.reason) }
    }

    /// Asks the helper to load the build: passes when ggml registers a GPU device from it;
    /// `.backendRejected` when it does not, fails to load, or crashes the helper.
    func check(_ dir: URL, variant: LlamaVariant, helper: URL) async throws(LlamaError) {
        let request = HelperRequest(.backendCheck(.init(directory: dir.path, variant: variant)))
        let exchange = try await LlamaHelper.exchange(request, helper: helper, timeout: timeout)
        switch exchange.final {
        case .devices(let devices)? where exchange.violation == nil:
            guard devices.contains(where: \.isGPU) else {
                throw LlamaError(.backendRejected, "the \(variant) build loads, but ggml registered no GPU device "
                    + "(devices: \(devices.map(\.name).joined(separator: ", ")))")
            }
        case .failure(let failure)? where exchange.violation == nil:
            throw LlamaError(.backendRejected, "the \(variant) build failed to load in a child process: \(failure.message)",
                             underlying: failure)
        default:
            throw LlamaHelper.unanswered(exchange, helper: helper, crashCode: .backendRejected, crashed: { signal in
                "loading the \(variant) build crashed a child process (signal \(signal)): the driver is broken or does not "
                    + "match this build"
            }, timedOut: {
                LlamaError(.timeout, "loading the \(variant) build in a child process took longer than \(timeout): the driver "
                    + "may hang")
            })
        }
    }
}
