import Foundation
import LlamaJinja

extension Substring {
    /// The range of the first `tag` at or after `start`.
    func find(_ tag: String, from start: Index? = nil) -> Range<Index>? {
        guard !tag.isEmpty else { return nil }
        return range(of: tag, options: .literal, range: (start ?? startIndex)..<endIndex)
    }

    /// Leading spaces, tabs and newlines removed.
    var trimmingLeadingWhitespace: Substring { drop { $0.isWhitespace } }

    /// Trailing spaces, tabs and newlines removed.
    var trimmingTrailingWhitespace: Substring {
        var end = endIndex
        while end > startIndex, self[index(before: end)].isWhitespace { end = index(before: end) }
        return self[startIndex..<end]
    }

    var trimmed: Substring { trimmingLeadingWhitespace.trimmingTrailingWhitespace }

    /// The text without its last characters where they could be the start of one of `tags`
    /// still being written (a streamed `</thi` is held back until it is known not to be `</think>`).
    func holdingBackPartial(_ tags: [String]) -> Substring {
        var keep = endIndex
        for tag in tags where !tag.isEmpty {
            var length = Swift.min(tag.count - 1, count)
            while length > 0 {
                let start = index(endIndex, offsetBy: -length)
                if tag.hasPrefix(self[start...]) {
                    keep = Swift.min(keep, start)
                    break
                }
                length -= 1
            }
        }
        return self[startIndex..<keep]
    }

    /// Whether the whole text is the beginning of `tag` (possibly all of it).
    func isPrefix(of tag: String) -> Bool { !isEmpty && tag.hasPrefix(self) }
}

/// Where a JSON value written at the start of a text ends.
enum JSONExtent {
    /// A whole value ends at this index (whether it is valid JSON is checked by parsing it).
    case complete(Substring.Index)
    /// The text ends inside the value.
    case incomplete
    /// The text does not start with a JSON value.
    case invalid
}

/// Finds the end of the JSON value the text starts with (after whitespace), by brackets and
/// strings, without building it: enough to cut a value out of a stream.
func jsonExtent(_ s: Substring) -> JSONExtent {
    var i = s.startIndex
    while i < s.endIndex, s[i].isWhitespace { i = s.index(after: i) }
    guard i < s.endIndex else { return .incomplete }
    let first = s[i]
    if first == "{" || first == "[" {
        var depth = 0
        var inString = false
        var escaped = false
        while i < s.endIndex {
            let c = s[i]
            if inString {
                if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { inString = false }
            } else if c == "\"" {
                inString = true
            } else if c == "{" || c == "[" {
                depth += 1
            } else if c == "}" || c == "]" {
                depth -= 1
                if depth == 0 { return .complete(s.index(after: i)) }
            }
            i = s.index(after: i)
        }
        return .incomplete
    }
    if first == "\"" {
        var escaped = false
        i = s.index(after: i)
        while i < s.endIndex {
            let c = s[i]
            if escaped { escaped = false } else if c == "\\" { escaped = true } else if c == "\"" { return .complete(s.index(after: i)) }
            i = s.index(after: i)
        }
        return .incomplete
    }
    if first == "-" || first.isNumber || "tfn".contains(first) {
        while i < s.endIndex, !(s[i].isWhitespace || ",]}".contains(s[i])) { i = s.index(after: i) }
        return i == s.endIndex ? .incomplete : .complete(i)
    }
    return .invalid
}

/// A JSON value cut from the start of a text: the value, its text, and where it ends.
struct ScannedJSON {
    var value: JSONValue
    var text: Substring
    var end: Substring.Index
}

enum JSONScan {
    case value(ScannedJSON)
    /// The text ends inside the value: what there is so far.
    case incomplete(Substring)
    case invalid(String)
}

func scanJSON(_ s: Substring) -> JSONScan {
    let start = s.trimmingLeadingWhitespace
    switch jsonExtent(start) {
    case .incomplete: return .incomplete(start)
    case .invalid: return .invalid("not a JSON value")
    case .complete(let end):
        let text = start[start.startIndex..<end]
        do {
            return .value(ScannedJSON(value: try JSONValue(parsing: String(text)), text: text, end: end))
        } catch {
            return .invalid(error.description)
        }
    }
}

extension String {
    func utf8Offset(of index: String.Index) -> Int { utf8.distance(from: utf8.startIndex, to: index) }
}
