import Foundation
import LlamaTestSupport
import Testing

/// The HTML report of `llama-swift bench`, read back by Python's parsers: strict XML
/// (xml.etree) and HTML (html.parser). Prints, as JSON, each chart's series (their
/// `data-variant`), points and axis labels, each table's cells, and what could reach the
/// network (script tags, src/href attributes).
private let reportReader = """
    import json, sys, xml.etree.ElementTree as ET
    from html.parser import HTMLParser
    text = open(sys.argv[1], encoding="utf-8").read()
    class Tags(HTMLParser):
        def __init__(self):
            super().__init__()
            self.scripts, self.urls = 0, []
        def handle_starttag(self, tag, attrs):
            self.scripts += tag == "script"
            self.urls += [v for k, v in attrs if k in ("src", "href")]
    tags = Tags()
    tags.feed(text)
    tags.close()
    root = ET.fromstring(text)
    local = lambda e: e.tag.rsplit("}", 1)[-1]
    out = {"root": local(root), "scripts": tags.scripts, "urls": tags.urls, "charts": {}, "tables": {},
           "title": "".join(root.find("head/title").itertext())}
    for e in root.iter():
        if local(e) == "figure":
            chart = {"series": [], "points": {}, "labels": {}}
            for x in e.iter():
                cls = (x.get("class") or "").split()
                if local(x) == "g" and cls == ["series"]:
                    chart["series"].append(x.get("data-variant"))
                    chart["points"][x.get("data-variant")] = sum(local(c) == "circle" for c in x.iter())
                if local(x) == "text" and cls[:1] == ["axis-label"]:
                    chart["labels"][cls[1]] = "".join(x.itertext())
            out["charts"][e.get("id")] = chart
        if local(e) == "table":
            out["tables"][e.get("id")] = [["".join(c.itertext()) for c in tr if local(c) in ("td", "th")]
                                          for tr in e.iter() if local(tr) == "tr"]
    print(json.dumps(out))
    """

struct ParsedReport: Decodable {
    struct Chart: Decodable {
        var series: [String]
        var points: [String: Int]
        var labels: [String: String]
    }
    var root: String
    var scripts: Int
    var urls: [String]
    var title: String
    var charts: [String: Chart]
    var tables: [String: [[String]]]
}

/// Parses a report with the Python reader.
func parseReport(_ html: URL) async throws -> ParsedReport {
    let python = ProcessInfo.processInfo.environment["PYTHON"] ?? "python3"
    let result = try await runProcess(URL(fileURLWithPath: "/usr/bin/env"), [python, "-c", reportReader, html.path], timeout: 120)
    try #require(result.status == 0, "the report does not parse: \(result.stderr.suffix(2000))")
    return try JSONDecoder().decode(ParsedReport.self, from: Data(result.stdout.utf8))
}

@Suite("llama-swift bench report", .timeLimit(.minutes(10)))
struct BenchReportTests {
    /// Fixed figures in the shape `--json` writes: sweeps of two variants, a profile, overhead
    /// ratios and speculation; a model name with characters HTML must escape.
    static let figures = """
        {"model": "/models/a&b<c>.gguf", "threads": 2, "runs": 3, "generate": 64,
         "ratios": {"stream.gen_tps": {"min": 0.97, "median": 0.99, "max": 1.01},
                    "raw.gen_tps": {"min": 0.98, "median": 1.0, "max": 1.02}},
         "sweep": {"runs": 3, "threadsPromptTokens": 133, "threadsGenerate": 64, "promptLengthThreads": 2, "loadAverage": 1.5,
           "promptLength": [
             {"variant": "native", "metric": "prompt_tps", "points": [{"x": 16, "values": [900, 1000, 950]},
               {"x": 32, "values": [1500]}, {"x": 64, "values": [2100]}]},
             {"variant": "stream", "metric": "prompt_tps", "points": [{"x": 16, "values": [880]},
               {"x": 32, "values": [1450]}, {"x": 64, "values": [2050]}]}],
           "threads": [
             {"variant": "native", "metric": "gen_tps", "points": [{"x": 1, "values": [90]}, {"x": 2, "values": [160]}]},
             {"variant": "stream", "metric": "gen_tps", "points": [{"x": 1, "values": [89]}, {"x": 2, "values": [158]}]},
             {"variant": "native", "metric": "prompt_tps", "points": [{"x": 1, "values": [700]}, {"x": 2, "values": [1300]}]},
             {"variant": "stream", "metric": "prompt_tps", "points": [{"x": 1, "values": [690]}, {"x": 2, "values": [1290]}]}]},
         "profile": {"model": "m.gguf", "threads": 2, "loadAverage": 1.2, "phases": [
           {"name": "prompt", "tokens": 133, "decodes": 1, "profiledMilliseconds": [120, 110], "plainMilliseconds": [100, 100],
            "profile": {"nodes": 600, "entries": [
              {"operation": "MUL_MAT", "device": "CPU", "calls": 422, "milliseconds": 150, "bytes": 1000000},
              {"operation": "ROPE", "device": "CPU", "calls": 120, "milliseconds": 20, "bytes": 2000},
              {"operation": "VIEW", "device": "CPU", "calls": 300, "milliseconds": 0, "bytes": 0}]}},
           {"name": "generation", "tokens": 16, "decodes": 16, "profiledMilliseconds": [200, 210], "plainMilliseconds": [130, 140],
            "profile": {"nodes": 19200, "entries": [
              {"operation": "MUL_MAT", "device": "CPU", "calls": 6752, "milliseconds": 300, "bytes": 50000}]}}]},
         "speculation": {"load_average": 1.1, "same_tokens": true,
           "plain": {"median_tokens_per_s": 100.0, "tokens": 400},
           "lookup": {"median_tokens_per_s": 160.0, "median_speedup": 1.6, "acceptance_rate": 0.8, "tokens": 400}}}
        """

    @Test("the report of fixed figures is well-formed, self-contained, with one series per variant and labelled axes")
    func fixedFigures() async throws {
        let dir = try TestEnvironment.temporaryDirectory()
        let json = dir.appendingPathComponent("bench.json"), html = dir.appendingPathComponent("bench.html")
        try Data(Self.figures.utf8).write(to: json)
        let result = try await runProcess(TestEnvironment.productsDirectory.appendingPathComponent("llama-swift"),
                                          ["bench", "--report-from", json.path, "--html", html.path], timeout: 120)
        try #require(result.status == 0, "\(result.stderr)")
        let report = try await parseReport(html)
        #expect(report.root == "html")
        #expect(report.scripts == 0 && report.urls.isEmpty, "\(report.urls)")
        #expect(report.title == "llama-swift bench")
        #expect(try String(contentsOf: html, encoding: .utf8).contains("a&amp;b&lt;c&gt;.gguf"))
        #expect(Set(report.charts.keys) == ["prompt-length", "threads-generation", "threads-prompt"])
        for (id, chart) in report.charts {
            #expect(chart.series == ["native", "stream"], "\(id)")
            #expect(chart.labels["x"] == (id == "prompt-length" ? "prompt tokens" : "threads"), "\(id)")
            #expect(chart.labels["y"]?.hasSuffix("tokens/s") == true, "\(id)")
        }
        #expect(report.charts["prompt-length"]?.points == ["native": 3, "stream": 3])
        #expect(report.charts["threads-generation"]?.points == ["native": 2, "stream": 2])

        let prompt = try #require(report.tables["profile-prompt"])
        #expect(prompt.first == ["op", "device", "calls", "total ms", "% of decode", "MB written"])
        // Per decode and per run: 422 calls over 2 runs of 1 decode; 150 ms over 2 runs; of 230 ms profiled.
        #expect(prompt.dropFirst().first == ["MUL_MAT", "CPU", "211", "75.00", "65.2%", "0.500"])
        #expect(prompt.count == 4)
        #expect(report.tables["profile-generation"]?.dropFirst().first?.prefix(3) == ["MUL_MAT", "CPU", "211"])
        #expect(report.tables["overhead"]?.dropFirst().first == ["gen_tps", "1.000 (0.980-1.020)", "0.990 (0.970-1.010)"])
        #expect(report.tables["speculation"]?.dropFirst().map { $0[0] } == ["plain", "lookup"])
        #expect(report.tables["speculation"]?.last == ["lookup", "160.0", "1.60×", "80.0%"])
    }

    @Test("--report-from needs --html; a file that is not figures is an error")
    func badInput() async throws {
        let cli = TestEnvironment.productsDirectory.appendingPathComponent("llama-swift")
        let missing = try await runProcess(cli, ["bench", "--report-from", "x.json"], timeout: 60)
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("needs --html"))
        let dir = try TestEnvironment.temporaryDirectory()
        let json = dir.appendingPathComponent("list.json")
        try Data("[1, 2]".utf8).write(to: json)
        let wrong = try await runProcess(cli, ["bench", "--report-from", json.path, "--html", dir.appendingPathComponent("r.html").path],
                                         timeout: 60)
        #expect(wrong.status != 0)
        #expect(wrong.stderr.contains("not a JSON object of figures"))
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("r.html").path))
    }
}
