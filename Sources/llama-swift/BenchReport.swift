import Foundation

/// The HTML report of `llama-swift bench --html`: one self-contained file (inline SVG charts and
/// CSS, no script, nothing fetched) that is also well-formed XML, so that tools and tests can
/// read it back.
struct BenchReport {
    /// A line chart: one series per variant.
    struct Chart {
        struct Series {
            /// The variant's key (`native`, `stream`), kept in the SVG as `data-variant`.
            var variant: String
            var label: String
            var points: [(x: Double, y: Double)]
        }
        var id: String
        var title: String
        var caption: String
        var xLabel: String
        var yLabel: String
        /// A base-2 logarithmic x axis (prompt lengths that double).
        var logX: Bool
        var series: [Series]
    }

    /// A table; `bars` names a column of percentages drawn as bars too.
    struct Table {
        var id: String
        var title: String
        var caption: String
        var columns: [String]
        var rows: [[String]]
        var bars: Int?
    }

    enum Block {
        case heading(String)
        case paragraph(String)
        case chart(Chart)
        case table(Table)
    }

    var title: String
    var facts: [(String, String)]
    var blocks: [Block]

    // MARK: Writing

    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.count)
        for ch in text {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }

    static let palette = ["#1f5fa8", "#d0452f", "#2e8b57", "#8e44ad", "#b8860b", "#555555"]

    static let style = """
        body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px; \
        color: #222; padding: 0 1em; }
        h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
        dl.facts { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
        dl.facts dt { font-weight: 600; }
        .charts { display: flex; flex-wrap: wrap; gap: 1.5em; }
        figure { margin: 0; } figcaption { font-size: 0.9em; color: #444; max-width: 520px; }
        svg text { font-size: 12px; fill: #333; } svg .title { font-size: 14px; font-weight: 600; }
        svg .grid line { stroke: #e4e4e4; } svg .axis line { stroke: #777; }
        table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em; }
        h3 { font-size: 1.05em; margin-bottom: 0.2em; } p.note { margin-top: 0; color: #444; font-size: 0.92em; }
        th, td { padding: 0.25em 0.8em; border-bottom: 1px solid #eee; text-align: left; }
        td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
        .bar { display: inline-block; height: 0.7em; background: #1f5fa8; margin-right: 0.4em; vertical-align: middle; }
        """

    func html() -> String {
        var out = "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\"/>\n"
        out += "<title>\(Self.escape(title))</title>\n<style>\n\(Self.style)\n</style>\n</head>\n<body>\n"
        out += "<h1>\(Self.escape(title))</h1>\n<dl class=\"facts\">\n"
        for (key, value) in facts { out += "<dt>\(Self.escape(key))</dt><dd>\(Self.escape(value))</dd>\n" }
        out += "</dl>\n"
        var openCharts = false
        for block in blocks {
            if case .chart = block {
                if !openCharts { out += "<div class=\"charts\">\n" }
                openCharts = true
            } else if openCharts {
                out += "</div>\n"
                openCharts = false
            }
            switch block {
            case .heading(let text): out += "<h2>\(Self.escape(text))</h2>\n"
            case .paragraph(let text): out += "<p>\(Self.escape(text))</p>\n"
            case .chart(let chart): out += Self.svg(chart)
            case .table(let table): out += Self.table(table)
            }
        }
        if openCharts { out += "</div>\n" }
        return out + "</body>\n</html>\n"
    }

    static func table(_ t: Table) -> String {
        func numeric(_ cell: String) -> Bool { cell.first.map { $0.isNumber || $0 == "-" } ?? false }
        var out = "<h3>\(escape(t.title))</h3>\n" + (t.caption.isEmpty ? "" : "<p class=\"note\">\(escape(t.caption))</p>\n")
        out += "<table class=\"report-table\" id=\"\(escape(t.id))\">\n"
        let numericColumns = t.columns.indices.map { c in !t.rows.isEmpty && t.rows.allSatisfy { c < $0.count && numeric($0[c]) } }
        out += "<thead><tr>" + t.columns.enumerated().map { c, name in
            "<th\(numericColumns[c] ? " class=\"num\"" : "")>\(escape(name))</th>"
        }.joined() + "</tr></thead>\n<tbody>\n"
        for row in t.rows {
            out += "<tr>" + row.enumerated().map { c, cell in
                var body = escape(cell)
                if c == t.bars, let value = Double(cell.filter { $0.isNumber || $0 == "." }) {
                    body = "<span class=\"bar\" style=\"width: \(String(format: "%.1f", min(100, value) * 1.2))px\"></span>" + body
                }
                return "<td\(c < numericColumns.count && numericColumns[c] ? " class=\"num\"" : "")>\(body)</td>"
            }.joined() + "</tr>\n"
        }
        return out + "</tbody>\n</table>\n"
    }

    /// Round numbers for an axis from 0 to at least `top`: the step and the count of steps.
    static func niceScale(_ top: Double, steps: Int = 5) -> (step: Double, count: Int) {
        guard top > 0, top.isFinite else { return (1, 1) }
        let raw = top / Double(steps)
        let magnitude = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 2.5, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        return (step, Int((top / step).rounded(.up)))
    }

    static func number(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e9 ? String(Int(v)) : String(format: abs(v) >= 100 ? "%.0f" : "%.1f", v)
    }

    static func svg(_ chart: Chart) -> String {
        let width = 520.0, height = 360.0, left = 72.0, right = 24.0, top = 36.0, bottom = 88.0
        let plotW = width - left - right, plotH = height - top - bottom
        let xs = chart.series.flatMap { $0.points.map(\.x) }.filter { !chart.logX || $0 > 0 }
        let ys = chart.series.flatMap { $0.points.map(\.y) }
        let fx: (Double) -> Double = chart.logX ? { log2(max($0, 1e-9)) } : { $0 }
        var lo = fx(xs.min() ?? 0), hi = fx(xs.max() ?? 1)
        if hi <= lo { lo -= 1; hi += 1 }
        let (step, count) = niceScale((ys.max() ?? 1) * 1.05)
        let yTop = step * Double(count)
        func px(_ x: Double) -> Double { left + (fx(x) - lo) / (hi - lo) * plotW }
        func py(_ y: Double) -> Double { top + plotH - y / yTop * plotH }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }

        var out = "<figure class=\"chart\" id=\"\(escape(chart.id))\">\n"
        out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" "
            + "viewBox=\"0 0 \(Int(width)) \(Int(height))\" role=\"img\" aria-label=\"\(escape(chart.title))\">\n"
        out += "<text class=\"title\" x=\"\(f(left))\" y=\"20\">\(escape(chart.title))</text>\n<g class=\"grid\">\n"
        for i in 0...count {
            let y = py(step * Double(i))
            out += "<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(y))\" y2=\"\(f(y))\"/>\n"
        }
        out += "</g>\n<g class=\"axis y\">\n<line x1=\"\(f(left))\" x2=\"\(f(left))\" y1=\"\(f(top))\" y2=\"\(f(top + plotH))\"/>\n"
        for i in 0...count {
            out += "<text class=\"tick\" x=\"\(f(left - 6))\" y=\"\(f(py(step * Double(i)) + 4))\" text-anchor=\"end\">"
                + "\(number(step * Double(i)))</text>\n"
        }
        out += "<text class=\"axis-label y\" transform=\"translate(16 \(f(top + plotH / 2))) rotate(-90)\" "
            + "text-anchor=\"middle\">\(escape(chart.yLabel))</text>\n</g>\n"
        out += "<g class=\"axis x\">\n<line x1=\"\(f(left))\" x2=\"\(f(left + plotW))\" y1=\"\(f(top + plotH))\" "
            + "y2=\"\(f(top + plotH))\"/>\n"
        var ticks = Array(Set(xs)).sorted()
        if !chart.logX, let first = ticks.first, let last = ticks.last, ticks.count > 16 {
            let stride = max(1, ((last - first) / 8).rounded(.up))
            ticks = Array(Swift.stride(from: first, through: last, by: stride))
        }
        for x in ticks {
            out += "<text class=\"tick\" x=\"\(f(px(x)))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\">\(number(x))</text>\n"
        }
        out += "<text class=\"axis-label x\" x=\"\(f(left + plotW / 2))\" y=\"\(f(top + plotH + 36))\" "
            + "text-anchor=\"middle\">\(escape(chart.xLabel))</text>\n</g>\n"
        for (index, series) in chart.series.enumerated() {
            let color = palette[index % palette.count]
            let points = series.points.filter { !chart.logX || $0.x > 0 }.sorted { $0.x < $1.x }
            out += "<g class=\"series\" data-variant=\"\(escape(series.variant))\">\n"
            out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\""
                + points.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ") + "\"/>\n"
            for p in points {
                out += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"3.5\" fill=\"\(color)\"><title>"
                    + "\(escape(series.label)): \(escape(chart.xLabel)) \(number(p.x)), \(number(p.y)) \(escape(chart.yLabel))"
                    + "</title></circle>\n"
            }
            // The legend, under the x axis.
            let lx = left + Double(index % 3) * 150, ly = top + plotH + 56 + Double(index / 3) * 16
            out += "<g class=\"legend\"><line x1=\"\(f(lx))\" x2=\"\(f(lx + 18))\" y1=\"\(f(ly - 4))\" y2=\"\(f(ly - 4))\" "
                + "stroke=\"\(color)\" stroke-width=\"2\"/><text x=\"\(f(lx + 24))\" y=\"\(f(ly))\">\(escape(series.label))</text></g>\n"
            out += "</g>\n"
        }
        out += "</svg>\n<figcaption>\(escape(chart.caption))</figcaption>\n</figure>\n"
        return out
    }
}

// MARK: From the figures of a run

extension BenchReport {
    static let variantLabels = ["native": "native C", "raw": "Swift, raw bindings", "stream": "Swift, streaming API"]

    static func label(_ variant: String) -> String { variantLabels[variant] ?? variant }

    /// A section of the JSON document, decoded.
    static func section<T: Decodable>(_ document: [String: Any], _ key: String, as type: T.Type) throws -> T? {
        guard let value = document[key] else { return nil }
        return try JSONDecoder().decode(T.self, from: JSONSerialization.data(withJSONObject: value))
    }

    /// The report of a `bench.json` document: whichever sections it has (overhead ratios, sweeps,
    /// the per-operation profile, speculation).
    init(document: [String: Any]) throws {
        var facts: [(String, String)] = []
        if let model = document["model"] as? String { facts.append(("model", URL(fileURLWithPath: model).lastPathComponent)) }
        if let threads = document["threads"] as? Int { facts.append(("threads", "\(threads)")) }
        if let runs = document["runs"] as? Int { facts.append(("runs per variant", "\(runs)")) }
        if let generate = document["generate"] as? Int { facts.append(("tokens generated per run", "\(generate)")) }
        facts.append(("machine", "\(ProcessInfo.processInfo.activeProcessorCount) cores (where the report was written)"))
        var blocks: [Block] = []

        if let ratios = document["ratios"] as? [String: [String: Double]] {
            blocks.append(.heading("Overhead against native C"))
            let metrics = Bench.metrics.filter { ratios["stream.\($0)"] != nil }
            func cell(_ key: String) -> String {
                guard let r = ratios[key], let median = r["median"] else { return "-" }
                return String(format: "%.3f (%.3f-%.3f)", median, r["min"] ?? 0, r["max"] ?? 0)
            }
            blocks.append(.table(Table(id: "overhead", title: "Ratio to native C, run by run",
                                       caption: "median (min-max) of the interleaved runs; above 1 is more of the metric",
                                       columns: ["metric", "raw/native", "stream/native"],
                                       rows: metrics.map { [$0, cell("raw.\($0)"), cell("stream.\($0)")] })))
        }

        if let sweep = try Self.section(document, "sweep", as: SweepBench.Figures.self) {
            blocks.append(.heading("Throughput sweeps"))
            blocks.append(.paragraph("Each point is the median of \(sweep.runs) runs, each run its own process, variants "
                + "alternating; load average \(String(format: "%.2f", sweep.loadAverage)) at the start."))
            func series(_ list: [SweepBench.Figures.Series], _ metric: String) -> [Chart.Series] {
                list.filter { $0.metric == metric }.map { s in
                    Chart.Series(variant: s.variant, label: Self.label(s.variant),
                                 points: s.points.filter { !$0.values.isEmpty }.map { (Double($0.x), $0.median) })
                }
            }
            blocks.append(.chart(Chart(
                id: "prompt-length", title: "Prompt processing against prompt length",
                caption: "Prompt tokens/s of one decode of the whole prompt, \(sweep.promptLengthThreads) threads.",
                xLabel: "prompt tokens", yLabel: "prompt tokens/s", logX: true, series: series(sweep.promptLength, "prompt_tps"))))
            blocks.append(.chart(Chart(
                id: "threads-generation", title: "Generation against threads",
                caption: "Tokens/s of \(sweep.threadsGenerate) greedy tokens, one decode each.",
                xLabel: "threads", yLabel: "generated tokens/s", logX: false, series: series(sweep.threads, "gen_tps"))))
            blocks.append(.chart(Chart(
                id: "threads-prompt", title: "Prompt processing against threads",
                caption: "Prompt tokens/s of a \(sweep.threadsPromptTokens)-token prompt.",
                xLabel: "threads", yLabel: "prompt tokens/s", logX: false, series: series(sweep.threads, "prompt_tps"))))
        }

        if let profile = try Self.section(document, "profile", as: ProfileBench.Result.self) {
            blocks.append(.heading("Where a decode's time goes"))
            blocks.append(.paragraph("From llama.cpp's graph scheduler eval callback (LlamaProfiler): each node computed "
                + "alone, then timed. \(profile.threads) threads, load average \(String(format: "%.2f", profile.loadAverage)). "
                + "calls: nodes per decode; total ms: per run; MB written: output bytes per decode."))
            for phase in profile.phases {
                blocks.append(.table(Table(
                    id: "profile-\(phase.name)", title: phase.name == "prompt" ? "Prompt processing" : "Generation",
                    caption: ProfileBench.Result.summary(phase), columns: ProfileBench.Result.columns,
                    rows: ProfileBench.Result.rows(phase), bars: 4)))
            }
        }

        if let speculation = document["speculation"] as? [String: Any] {
            blocks.append(.heading("Speculative decoding"))
            var rows: [[String]] = []
            for name in ["plain", "lookup", "draft"] {
                guard let v = speculation[name] as? [String: Any] else { continue }
                let tps = v["median_tokens_per_s"] as? Double ?? 0
                let speedup = (v["median_speedup"] as? Double).map { String(format: "%.2f×", $0) } ?? "1×"
                let acceptance = (v["acceptance_rate"] as? Double).map { String(format: "%.1f%%", $0 * 100) } ?? "-"
                rows.append([name, String(format: "%.1f", tps), speedup, acceptance])
            }
            let load = (speculation["load_average"] as? Double).map { String(format: "%.2f", $0) } ?? "?"
            blocks.append(.table(Table(
                id: "speculation", title: "Rewrite a paragraph with small changes (greedy)",
                caption: "generated tokens/s, median of the runs; load average \(load) at the start",
                columns: ["variant", "tokens/s", "over plain", "acceptance"], rows: rows)))
        }
        self.init(title: "llama-swift bench", facts: facts, blocks: blocks)
    }
}
