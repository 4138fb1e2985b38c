import Foundation
import Llama
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Shows progress on stderr: a redrawn bar on a terminal, a plain line per 10% step otherwise.
final class ProgressPrinter: Sendable {
    private struct State {
        var lastItem = ""
        var lastStep: Int64 = -1
        var lastDraw = ContinuousClock.now - .seconds(1)
        var barOpen = false
    }
    private let state = Mutex(State())
    let interactive: Bool

    init(interactive: Bool = isatty(STDERR_FILENO) == 1) {
        self.interactive = interactive
    }

    var handler: LlamaProgressHandler { { [self] in self.show($0) } }

    func show(_ p: LlamaProgress) {
        state.withLock { s in
            let fraction = p.total.map { $0 > 0 ? Double(p.completed) / Double($0) : 0 }
            let done = p.total.map { p.completed >= $0 } ?? false
            if interactive {
                let now = ContinuousClock.now
                guard done || p.item != s.lastItem || now - s.lastDraw >= .milliseconds(100) else { return }
                s.lastDraw = now
                if p.item != s.lastItem && s.barOpen { FileHandle.standardError.write(Data("\n".utf8)) }
                s.lastItem = p.item
                var line = "\(p.phase.rawValue) \(p.item)"
                if let fraction {
                    let width = 30, filled = Int(fraction * Double(width))
                    line += " [" + String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled) + "]"
                    line += String(format: " %3.0f%%", fraction * 100)
                }
                line += Self.amounts(p)
                FileHandle.standardError.write(Data(("\r\u{1B}[K" + line + (done ? "\n" : "")).utf8))
                s.barOpen = !done
            } else {
                let step = fraction.map { Int64($0 * 10) } ?? 0
                guard p.item != s.lastItem || step != s.lastStep || (done && s.lastStep != 10) else { return }
                if p.item == s.lastItem && fraction == nil { return }
                s.lastItem = p.item
                s.lastStep = done ? 10 : step
                let percent = fraction.map { String(format: " %.0f%%", $0 * 100) } ?? ""
                FileHandle.standardError.write(Data("\(p.phase.rawValue) \(p.item)\(percent)\(Self.amounts(p))\n".utf8))
            }
        }
    }

    private static func amounts(_ p: LlamaProgress) -> String {
        guard p.phase == .download else { return "" }
        var out = " " + bytes(p.completed) + (p.total.map { " / " + bytes($0) } ?? "")
        if let rate = p.rate { out += " (" + bytes(Int64(rate)) + "/s)" }
        return out
    }

    static func bytes(_ n: Int64) -> String {
        let units = ["B", "KiB", "MiB", "GiB"]
        var value = Double(n), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }
}
