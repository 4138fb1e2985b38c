import Foundation

/// Template source → tokens, with jinja2's whitespace rules: `-` strips all whitespace on its
/// side of a tag, `+` keeps it, `lstrip_blocks` removes the spaces and tabs that precede a block
/// or comment tag on its line, `trim_blocks` removes the newline right after one.
struct Token: Equatable {
    enum Kind: Equatable {
        case data(String)
        case varBegin, varEnd, blockBegin, blockEnd
        case name(String)
        case string(String)
        case integer(Int)
        case float(Double)
        case op(String)
        case eof
    }
    let kind: Kind
    /// Byte offset in the normalized source.
    let offset: Int
}

struct Lexer {
    let src: [UInt8]
    let options: JinjaTemplate.Options
    var pos = 0
    var tokens: [Token] = []
    /// Offsets of line starts, for line:column.
    let lineStarts: [Int]

    /// jinja2 normalizes `\r\n` and `\r` to `\n` and drops one trailing newline.
    static func normalize(_ source: String, keepTrailingNewline: Bool) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(source.utf8.count)
        var it = Array(source.utf8)[...]
        while let b = it.popFirst() {
            if b == 0x0D {
                if it.first == 0x0A { it.removeFirst() }
                out.append(0x0A)
            } else {
                out.append(b)
            }
        }
        if !keepTrailingNewline, out.last == 0x0A { out.removeLast() }
        return out
    }

    init(source: String, options: JinjaTemplate.Options) {
        src = Lexer.normalize(source, keepTrailingNewline: options.keepTrailingNewline)
        self.options = options
        var starts = [0]
        for (i, b) in src.enumerated() where b == 0x0A { starts.append(i + 1) }
        lineStarts = starts
    }

    func location(_ offset: Int) -> (line: Int, column: Int) {
        var lo = 0, hi = lineStarts.count - 1
        while lo < hi {
            let mid = (lo + hi + 1) / 2
            if lineStarts[mid] <= offset { lo = mid } else { hi = mid - 1 }
        }
        // Column in characters, not bytes.
        let start = lineStarts[lo]
        let prefix = String(decoding: src[start..<min(offset, src.count)], as: UTF8.self)
        return (lo + 1, prefix.count + 1)
    }

    func error(_ message: String, at offset: Int) -> JinjaError {
        let (l, c) = location(offset)
        return JinjaError(.syntax, message, line: l, column: c)
    }

    func at(_ s: String, _ p: Int) -> Bool {
        let u = Array(s.utf8)
        guard p + u.count <= src.count else { return false }
        for k in 0..<u.count where src[p + k] != u[k] { return false }
        return true
    }

    static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x0B || b == 0x0C }

    /// The byte length of the whitespace character at `p` (Python's `\s` and `str.isspace`: also
    /// U+001C-001F, U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F, U+205F, U+3000),
    /// or 0. jinja2's whitespace control strips all of them.
    static func spaceWidth(_ s: [UInt8], at p: Int) -> Int {
        guard p >= 0, p < s.count else { return 0 }
        let b = s[p]
        if (0x09...0x0D).contains(b) || (0x1C...0x20).contains(b) { return 1 }
        func byte(_ i: Int) -> UInt8? { p + i < s.count ? s[p + i] : nil }
        switch b {
        case 0xC2: return byte(1) == 0x85 || byte(1) == 0xA0 ? 2 : 0
        case 0xE1: return byte(1) == 0x9A && byte(2) == 0x80 ? 3 : 0
        case 0xE2:
            if byte(1) == 0x80, let c = byte(2), (0x80...0x8A).contains(c) || c == 0xA8 || c == 0xA9 || c == 0xAF { return 3 }
            return byte(1) == 0x81 && byte(2) == 0x9F ? 3 : 0
        case 0xE3: return byte(1) == 0x80 && byte(2) == 0x80 ? 3 : 0
        default: return 0
        }
    }

    /// The byte length of the whitespace character that ends just before `end`, or 0.
    static func spaceWidth(_ s: [UInt8], before end: Int) -> Int {
        for w in 1...3 where end - w >= 0 && spaceWidth(s, at: end - w) == w { return w }
        return 0
    }

    /// `s` without its trailing whitespace (Python's `rstrip()`).
    static func trimTrailingSpace(_ s: inout [UInt8]) {
        while case let w = spaceWidth(s, before: s.count), w > 0 { s.removeLast(w) }
    }

    /// Whether `s[from...]` is all whitespace.
    static func isAllSpace(_ s: [UInt8], from: Int) -> Bool {
        var p = from
        while p < s.count {
            let w = spaceWidth(s, at: p)
            guard w > 0 else { return false }
            p += w
        }
        return true
    }

    /// Past the whitespace at `p`.
    func skipSpace(_ p: Int) -> Int {
        var p = p
        while case let w = Lexer.spaceWidth(src, at: p), w > 0 { p += w }
        return p
    }

    mutating func tokenize() throws(JinjaError) -> [Token] {
        var lineStarting = true
        while pos < src.count {
            // Find the next tag start.
            var p = pos
            var tagKind: UInt8 = 0
            while p + 1 < src.count {
                if src[p] == UInt8(ascii: "{") {
                    let n = src[p + 1]
                    if n == UInt8(ascii: "{") || n == UInt8(ascii: "%") || n == UInt8(ascii: "#") { tagKind = n; break }
                }
                p += 1
            }
            if tagKind == 0 {
                emitData(pos, src.count, offset: pos)
                pos = src.count
                break
            }
            var text = Array(src[pos..<p])
            let sign: UInt8? = p + 2 < src.count && (src[p + 2] == UInt8(ascii: "-") || src[p + 2] == UInt8(ascii: "+")) ? src[p + 2] : nil
            if sign == UInt8(ascii: "-") {
                Lexer.trimTrailingSpace(&text)
            } else if sign != UInt8(ascii: "+"), options.lstripBlocks, tagKind != UInt8(ascii: "{") {
                let lpos = (text.lastIndex(of: 0x0A).map { $0 + 1 }) ?? 0
                if lpos > 0 || lineStarting {
                    if Lexer.isAllSpace(text, from: lpos) { text.removeSubrange(lpos...) }
                }
            }
            if !text.isEmpty { tokens.append(Token(kind: .data(String(decoding: text, as: UTF8.self)), offset: pos)) }
            let tagStart = p
            pos = p + 2 + (sign == nil ? 0 : 1)
            switch tagKind {
            case UInt8(ascii: "#"):
                lineStarting = try skipComment(from: tagStart)
            case UInt8(ascii: "%"):
                if let raw = try rawBlock(tagStart: tagStart) {
                    lineStarting = raw
                } else {
                    tokens.append(Token(kind: .blockBegin, offset: tagStart))
                    lineStarting = try lexInside(end: "%}", endKind: .blockEnd, trim: options.trimBlocks, start: tagStart)
                }
            default:
                tokens.append(Token(kind: .varBegin, offset: tagStart))
                lineStarting = try lexInside(end: "}}", endKind: .varEnd, trim: false, start: tagStart)
            }
        }
        tokens.append(Token(kind: .eof, offset: src.count))
        return tokens
    }

    mutating func emitData(_ a: Int, _ b: Int, offset: Int) {
        if b > a { tokens.append(Token(kind: .data(String(decoding: src[a..<b], as: UTF8.self)), offset: offset)) }
    }

    /// After an end tag: `-` strips following whitespace; `trim` (trim_blocks) one newline
    /// unless `+`. Returns whether the consumed text ends a line.
    mutating func afterEnd(sign: UInt8?, trim: Bool) -> Bool {
        var last: UInt8 = 0
        if sign == UInt8(ascii: "-") {
            while case let w = Lexer.spaceWidth(src, at: pos), w > 0 { pos += w; last = src[pos - 1] }
        } else if sign != UInt8(ascii: "+"), trim, pos < src.count, src[pos] == 0x0A {
            last = 0x0A
            pos += 1
        }
        return last == 0x0A
    }

    mutating func skipComment(from start: Int) throws(JinjaError) -> Bool {
        // jinja2's lexer stops without a word when the template ends right after `{#`.
        if pos >= src.count { return false }
        var p = pos
        while p + 1 < src.count {
            if src[p] == UInt8(ascii: "#"), src[p + 1] == UInt8(ascii: "}") {
                let sign: UInt8? = p > pos && (src[p - 1] == UInt8(ascii: "-") || src[p - 1] == UInt8(ascii: "+")) ? src[p - 1] : nil
                pos = p + 2
                return afterEnd(sign: sign, trim: options.trimBlocks)
            }
            p += 1
        }
        throw error("unexpected end of template: the comment is not closed (missing '#}')", at: start)
    }

    /// `{% raw %}...{% endraw %}`: the content as data. Returns nil when the tag is not `raw`.
    mutating func rawBlock(tagStart: Int) throws(JinjaError) -> Bool? {
        var p = pos
        p = skipSpace(p)
        guard at("raw", p) else { return nil }
        p += 3
        p = skipSpace(p)
        var sign: UInt8? = nil
        // jinja2's raw_begin: `-%}` or `%}` only (`+%}` makes it an ordinary, unknown tag), and
        // no trim_blocks newline after it.
        if p < src.count, src[p] == UInt8(ascii: "-") { sign = src[p]; p += 1 }
        guard at("%}", p) else { return nil }
        pos = p + 2
        _ = afterEnd(sign: sign, trim: false)
        // jinja2's lexer stops without a word when the template ends right here.
        if pos >= src.count { return false }
        // Find {%[-+]? endraw [-+]?%}
        var q = pos
        while q + 1 < src.count {
            if src[q] == UInt8(ascii: "{"), src[q + 1] == UInt8(ascii: "%") {
                var r = q + 2
                var beginSign: UInt8? = nil
                if r < src.count, src[r] == UInt8(ascii: "-") || src[r] == UInt8(ascii: "+") { beginSign = src[r]; r += 1 }
                r = skipSpace(r)
                if at("endraw", r) {
                    r += 6
                    r = skipSpace(r)
                    var endSign: UInt8? = nil
                    if r < src.count, src[r] == UInt8(ascii: "-") || src[r] == UInt8(ascii: "+") { endSign = src[r]; r += 1 }
                    if at("%}", r) {
                        var text = Array(src[pos..<q])
                        if beginSign == UInt8(ascii: "-") {
                            Lexer.trimTrailingSpace(&text)
                        } else if beginSign != UInt8(ascii: "+"), options.lstripBlocks {
                            let lpos = (text.lastIndex(of: 0x0A).map { $0 + 1 }) ?? 0
                            if lpos > 0, Lexer.isAllSpace(text, from: lpos) { text.removeSubrange(lpos...) }
                        }
                        if !text.isEmpty { tokens.append(Token(kind: .data(String(decoding: text, as: UTF8.self)), offset: pos)) }
                        pos = r + 2
                        return afterEnd(sign: endSign, trim: options.trimBlocks)
                    }
                }
            }
            q += 1
        }
        throw error("unexpected end of template: the raw block is not closed (missing '{% endraw %}')", at: tagStart)
    }

    static let operators3: [String] = []
    static let operators2 = ["//", "**", "==", "!=", "<=", ">="]
    static let operators1 = Set("+-/*%~<>=()[]{},.:|;!".utf8)

    /// Tokens inside `{{ }}` or `{% %}` up to the end tag (ignored while brackets are open).
    mutating func lexInside(end: String, endKind: Token.Kind, trim: Bool, start: Int) throws(JinjaError) -> Bool {
        var balance: [UInt8] = []
        while true {
            pos = skipSpace(pos)
            guard pos < src.count else {
                throw error("unexpected end of template: the tag is not closed (missing '\(end)')", at: start)
            }
            if balance.isEmpty {
                var sign: UInt8? = nil
                var p = pos
                if src[p] == UInt8(ascii: "-") || src[p] == UInt8(ascii: "+") { sign = src[p]; p += 1 }
                if at(end, p), sign == nil || sign == UInt8(ascii: "-") || endKind == .blockEnd {
                    tokens.append(Token(kind: endKind, offset: pos))
                    pos = p + 2
                    return afterEnd(sign: sign, trim: trim)
                }
            }
            let b = src[pos]
            let tokStart = pos
            if b == UInt8(ascii: "_") || (b >= 0x41 && b <= 0x5A) || (b >= 0x61 && b <= 0x7A) {
                var p = pos + 1
                while p < src.count, src[p] == UInt8(ascii: "_") || (src[p] >= 0x41 && src[p] <= 0x5A) || (src[p] >= 0x61 && src[p] <= 0x7A) || (src[p] >= 0x30 && src[p] <= 0x39) { p += 1 }
                tokens.append(Token(kind: .name(String(decoding: src[pos..<p], as: UTF8.self)), offset: tokStart))
                pos = p
            } else if b >= 0x30 && b <= 0x39 {
                tokens.append(try number())
            } else if b == UInt8(ascii: "'") || b == UInt8(ascii: "\"") {
                tokens.append(Token(kind: .string(try string(quote: b)), offset: tokStart))
            } else {
                var matched: String? = nil
                for op in Lexer.operators2 where at(op, pos) { matched = op; break }
                if matched == nil, Lexer.operators1.contains(b) { matched = String(UnicodeScalar(b)) }
                guard let op = matched else {
                    throw error("unexpected character '\(String(decoding: [b], as: UTF8.self))'", at: pos)
                }
                if op == "!" { throw error("unexpected character '!'", at: pos) }
                switch op {
                case "(", "[", "{": balance.append(b)
                case ")", "]", "}":
                    let open: UInt8 = op == ")" ? UInt8(ascii: "(") : op == "]" ? UInt8(ascii: "[") : UInt8(ascii: "{")
                    guard balance.last == open else { throw error("unexpected '\(op)'", at: pos) }
                    balance.removeLast()
                default: break
                }
                tokens.append(Token(kind: .op(op), offset: tokStart))
                pos += op.utf8.count
            }
        }
    }

    /// A number as jinja2's lexer reads it: its float pattern first (not right after a `.`, so
    /// `x.0.1` is `x[0][1]`), then its integer pattern (`0b`, `0o`, `0x`, no leading zeros).
    mutating func number() throws(JinjaError) -> Token {
        let start = pos
        func isDigit(_ p: Int, _ radix: Int = 10) -> Bool {
            guard p < src.count else { return false }
            let c = src[p] | 0x20
            switch radix {
            case 2: return src[p] == 0x30 || src[p] == 0x31
            case 8: return src[p] >= 0x30 && src[p] <= 0x37
            case 16: return (src[p] >= 0x30 && src[p] <= 0x39) || (c >= 0x61 && c <= 0x66)
            default: return src[p] >= 0x30 && src[p] <= 0x39
            }
        }
        /// `(\d+_)*\d+` from `p`: where it ends, or nil.
        func digits(_ p: Int) -> Int? {
            guard isDigit(p) else { return nil }
            var p = p
            while true {
                while isDigit(p) { p += 1 }
                guard p + 1 < src.count, src[p] == UInt8(ascii: "_"), isDigit(p + 1) else { return p }
                p += 1
            }
        }
        let afterDot = start > 0 && src[start - 1] == UInt8(ascii: ".")
        if !afterDot, let whole = digits(start) {
            var end: Int? = nil
            var p = whole
            if p < src.count, src[p] == UInt8(ascii: "."), let f = digits(p + 1) { p = f; end = f }
            if p < src.count, src[p] | 0x20 == UInt8(ascii: "e") {
                var q = p + 1
                if q < src.count, src[q] == UInt8(ascii: "+") || src[q] == UInt8(ascii: "-") { q += 1 }
                if let e = digits(q) { end = e }
            }
            if let end {
                pos = end
                let text = String(decoding: src[start..<end], as: UTF8.self).replacingOccurrences(of: "_", with: "")
                guard let d = Double(text) else { throw error("bad number '\(text)'", at: start) }
                return Token(kind: .float(d), offset: start)
            }
        }
        var radix = 10
        var p = start
        if src[p] == 0x30, p + 1 < src.count {
            switch src[p + 1] | 0x20 {
            case UInt8(ascii: "b"): radix = 2
            case UInt8(ascii: "o"): radix = 8
            case UInt8(ascii: "x"): radix = 16
            default: break
            }
        }
        var text = ""
        if radix != 10 {
            // `0x(_?[\da-f])+`
            var q = p + 2
            while true {
                if isDigit(q, radix) { q += 1 } else if q + 1 < src.count, src[q] == UInt8(ascii: "_"), isDigit(q + 1, radix) { q += 2 } else { break }
            }
            if q > p + 2 {
                text = String(decoding: src[(p + 2)..<q], as: UTF8.self)
                p = q
            } else {
                radix = 10
            }
        }
        if radix == 10 {
            // `[1-9](_?\d)*` or `0(_?0)*`
            let zero = src[p] == 0x30
            func ok(_ i: Int) -> Bool { zero ? (i < src.count && src[i] == 0x30) : isDigit(i) }
            var q = p + 1
            while true {
                if ok(q) { q += 1 } else if q + 1 < src.count, src[q] == UInt8(ascii: "_"), ok(q + 1) { q += 2 } else { break }
            }
            text = String(decoding: src[p..<q], as: UTF8.self)
            p = q
        }
        pos = p
        text = text.replacingOccurrences(of: "_", with: "")
        guard let i = Int(text, radix: radix) else { throw error("integer '\(text)' is too large", at: start) }
        return Token(kind: .integer(i), offset: start)
    }

    /// A quoted string with Python's escapes (jinja2 decodes them with `unicode-escape`).
    mutating func string(quote: UInt8) throws(JinjaError) -> String {
        let start = pos
        pos += 1
        var bytes = [UInt8]()
        while true {
            guard pos < src.count else { throw error("unexpected end of template: the string is not closed", at: start) }
            let b = src[pos]
            if b == quote { pos += 1; break }
            if b != UInt8(ascii: "\\") { bytes.append(b); pos += 1; continue }
            guard pos + 1 < src.count else { throw error("unexpected end of template: the string is not closed", at: start) }
            let e = src[pos + 1]
            pos += 2
            func hex(_ n: Int) -> UInt32? {
                guard pos + n <= src.count, let v = UInt32(String(decoding: src[pos..<pos + n], as: UTF8.self), radix: 16) else { return nil }
                pos += n
                return v
            }
            func scalar(_ v: UInt32?) throws(JinjaError) {
                guard let v, let s = Unicode.Scalar(v) else { throw error("bad escape in string", at: pos) }
                bytes.append(contentsOf: Array(String(Character(s)).utf8))
            }
            switch e {
            case UInt8(ascii: "n"): bytes.append(0x0A)
            case UInt8(ascii: "t"): bytes.append(0x09)
            case UInt8(ascii: "r"): bytes.append(0x0D)
            case UInt8(ascii: "\\"): bytes.append(0x5C)
            case UInt8(ascii: "'"): bytes.append(0x27)
            case UInt8(ascii: "\""): bytes.append(0x22)
            case UInt8(ascii: "a"): bytes.append(0x07)
            case UInt8(ascii: "b"): bytes.append(0x08)
            case UInt8(ascii: "f"): bytes.append(0x0C)
            case UInt8(ascii: "v"): bytes.append(0x0B)
            case 0x0A: break
            case UInt8(ascii: "x"): try scalar(hex(2))
            case UInt8(ascii: "u"): try scalar(hex(4))
            case UInt8(ascii: "U"): try scalar(hex(8))
            case 0x30...0x37:
                var v = UInt32(e - 0x30)
                var n = 1
                while n < 3, pos < src.count, src[pos] >= 0x30, src[pos] <= 0x37 { v = v * 8 + UInt32(src[pos] - 0x30); pos += 1; n += 1 }
                try scalar(v)
            default:
                bytes.append(0x5C)
                bytes.append(e)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
