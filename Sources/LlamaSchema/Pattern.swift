/// A regular-expression subset compiled to GBNF, as llama.cpp's converter compiles `pattern`:
/// anchored `^…$` patterns with literals, `.`, groups (plain and `(?:…)`), alternation,
/// character classes, `* + ?` and `{m}`, `{m,}`, `{m,n}`, and the escapes GBNF knows.
/// Everything else is `unsupported` (the string then accepts any text, with a warning) or
/// `invalid` (an error).
enum PatternFailure: Error {
    case unsupported(String)
    case invalid(String)
}

let maxPatternDepth = 100
/// llama.cpp's `MAX_REPETITION_THRESHOLD`: its grammar parser refuses a minimum count above it.
let maxGrammarRepetition = 2000
private let nonLiteral: Set<UInt8> = Set("|.()[]{}*+?^$".utf8)
private let escapedInRegexpsButNotInLiterals: Set<UInt8> = Set("^$.[]()|{}*+?".utf8)

/// The length of a GBNF escape at `pos` (`\x41`, `\u0041`, `\U00000041`, `\t`…), 0 if none.
func gbnfEscapeLength(_ p: [UInt8], _ pos: Int) -> Int {
    guard pos + 1 < p.count, p[pos] == UInt8(ascii: "\\") else { return 0 }
    var nHex = 0
    switch p[pos + 1] {
    case UInt8(ascii: "x"): nHex = 2
    case UInt8(ascii: "u"): nHex = 4
    case UInt8(ascii: "U"): nHex = 8
    case UInt8(ascii: "t"), UInt8(ascii: "r"), UInt8(ascii: "n"), UInt8(ascii: "\\"), UInt8(ascii: "\""),
        UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "-"):
        return 2
    default: return 0
    }
    if pos + 2 + nHex > p.count { return 0 }
    for h in p[(pos + 2)..<(pos + 2 + nHex)] {
        let ok = (h >= 0x30 && h <= 0x39) || (h >= 0x61 && h <= 0x66) || (h >= 0x41 && h <= 0x46)
        if !ok { return 0 }
    }
    return 2 + nHex
}

/// Like C's `stoi`: leading spaces, an optional sign, at least one digit; the rest ignored.
func cStoi(_ s: [UInt8]) -> Int? {
    var i = 0
    while i < s.count, [0x20, 0x09, 0x0A, 0x0B, 0x0C, 0x0D].contains(s[i]) { i += 1 }
    var negative = false
    if i < s.count, s[i] == UInt8(ascii: "+") || s[i] == UInt8(ascii: "-") { negative = s[i] == UInt8(ascii: "-"); i += 1 }
    var value = 0, any = false
    while i < s.count, s[i] >= 0x30, s[i] <= 0x39 {
        value = value * 10 + Int(s[i] - 0x30)
        if value > Int(Int32.max) + 1 { return nil }
        any = true
        i += 1
    }
    guard any else { return nil }
    value = negative ? -value : value
    return value > Int(Int32.max) || value < Int(Int32.min) ? nil : value
}

private func text(_ bytes: some Sequence<UInt8>) -> String { String(decoding: Array(bytes), as: UTF8.self) }

struct PatternCompiler {
    let pattern: [UInt8]
    let name: String
    let dotAll: Bool
    var i = 0
    var parenDepth = 0
    var subRuleIDs: [String: String] = [:]
    /// Whether the sequence just returned by `transform` can match the empty string.
    var lastGroupNullable = false

    /// An item of a sequence: a literal (to be quoted) or a rule expression.
    typealias Item = (text: String, isLiteral: Bool)

    static func rule(_ item: Item) -> String { item.isLiteral ? "\"" + item.text + "\"" : item.text }

    init(pattern: String, name: String, dotAll: Bool) {
        self.pattern = Array(pattern.utf8)
        self.name = name
        self.dotAll = dotAll
    }

    /// The rule name of the whole pattern, added to `rules`.
    mutating func compile(into rules: inout RuleSet) throws(PatternFailure) -> String {
        let p = pattern
        guard p.count >= 2, p.first == UInt8(ascii: "^"), p.last == UInt8(ascii: "$") else {
            throw .unsupported("not anchored with '^' and '$'")
        }
        let sub = Array(p[1..<(p.count - 1)])
        let body = Self.rule(try transform(sub, &rules))
        if parenDepth != 0 { throw .invalid("unbalanced parentheses") }
        return rules.add(name, "\"\\\"\" (" + body + ") \"\\\"\"")
    }

    private func joinSeq(_ seq: [Item]) -> Item {
        var parts: [String] = []
        var literal = ""
        for item in seq {
            if item.isLiteral {
                literal += item.text
            } else {
                if !literal.isEmpty { parts.append("\"" + literal + "\""); literal = "" }
                parts.append(item.text)
            }
        }
        if !literal.isEmpty { parts.append("\"" + literal + "\"") }
        return (parts.joined(separator: " "), false)
    }

    /// Whether a sequence with alternatives ("|" items) matches the empty string, from each item's.
    private static func nullable(_ seq: [Item], _ empty: [Bool]) -> Bool {
        var any = false, all = true
        for (item, e) in zip(seq, empty) {
            if item == ("|", false) {
                any = any || all
                all = true
            } else {
                all = all && e
            }
        }
        return any || all
    }

    private mutating func transform(_ sp: [UInt8], _ rules: inout RuleSet) throws(PatternFailure) -> Item {
        var seq: [Item] = []
        // Per item of `seq`: whether it can match the empty string, and whether it ends in a quantifier.
        var empty: [Bool] = []
        var quantified: [Bool] = []
        let length = sp.count
        /// A repetition of the last item: llama.cpp's grammar parser refuses a repetition without
        /// a bound around one that can be empty (`x?*`, `(a*)+`, `(a|)*`, `x*{2,}`: left
        /// recursion), and a quantifier right after another is a regex syntax error (`x**`, `x+*`)
        /// except the lazy `x*?`, `x+?`, `x??`, `x{m,n}?` (kept, as llama.cpp's converter keeps them).
        func checkRepeat(_ symbol: String, unbounded: Bool, lazy: Bool) throws(PatternFailure) {
            guard let wasQuantified = quantified.last, let canBeEmpty = empty.last else { return }
            if wasQuantified && !lazy {
                throw .invalid("quantifier \(symbol) right after another quantifier (nothing to repeat)")
            }
            if unbounded && canBeEmpty {
                throw .invalid("unsupported: the unbounded repetition \(symbol) applies to something that can match "
                    + "the empty string, which GBNF cannot express (llama.cpp rejects the grammar as left-recursive); "
                    + "make the repeated part non-empty")
            }
        }
        while i < length {
            let c = sp[i]
            let before = seq.count
            var itemEmpty = false
            defer {
                // a new item (a quantifier replaces the last one in place)
                if seq.count > before {
                    empty.append(itemEmpty)
                    quantified.append(false)
                }
            }
            switch c {
            case UInt8(ascii: "."):
                seq.append((rules.add("dot", dotAll ? "[\\U00000000-\\U0010FFFF]" : "[^\\x0A\\x0D]"), false))
                i += 1
            case UInt8(ascii: "("):
                i += 1
                if i < length && sp[i] == UInt8(ascii: "?") {
                    if i + 1 < length && sp[i + 1] == UInt8(ascii: ":") {
                        i += 2
                    } else {
                        throw .unsupported("unsupported group syntax")
                    }
                }
                parenDepth += 1
                if parenDepth > maxPatternDepth { throw .unsupported("pattern nesting too deep") }
                seq.append(("(" + Self.rule(try transform(sp, &rules)) + ")", false))
                itemEmpty = lastGroupNullable
            case UInt8(ascii: ")"):
                i += 1
                if parenDepth == 0 { throw .invalid("unbalanced parentheses") }
                parenDepth -= 1
                lastGroupNullable = Self.nullable(seq, empty)
                return joinSeq(seq)
            case UInt8(ascii: "^"), UInt8(ascii: "$"):
                throw .unsupported("anchor inside the pattern")
            case UInt8(ascii: "["):
                var brackets: [UInt8] = [c]
                i += 1
                while i < length && sp[i] != UInt8(ascii: "]") {
                    if sp[i] == UInt8(ascii: "\\") {
                        let n = gbnfEscapeLength(sp, i)
                        if n == 0 { throw .unsupported("unsupported escape in character class: " + text(sp[i..<Swift.min(i + 2, length)])) }
                        brackets += sp[i..<(i + n)]
                        i += n
                    } else {
                        brackets.append(sp[i])
                        i += 1
                    }
                }
                if i >= length { throw .invalid("unterminated character class") }
                brackets.append(UInt8(ascii: "]"))
                i += 1
                seq.append((text(brackets), false))
            case UInt8(ascii: "|"):
                seq.append(("|", false))
                i += 1
            case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"):
                guard seq.last.map({ $0 != ("|", false) }) == true else { throw .invalid("nothing to repeat") }
                try checkRepeat(text([c]), unbounded: c != UInt8(ascii: "?"), lazy: c == UInt8(ascii: "?"))
                let last = seq.popLast()!
                seq.append((Self.rule(last) + text([c]), false))
                // (the item stays in place: its entries in `empty` and `quantified` are updated)
                if c != UInt8(ascii: "+") { empty[empty.count - 1] = true }
                quantified[quantified.count - 1] = true
                i += 1
            case UInt8(ascii: "{"):
                var curly: [UInt8] = []
                i += 1
                while i < length && sp[i] != UInt8(ascii: "}") {
                    curly.append(sp[i])
                    i += 1
                }
                if i >= length { throw .unsupported("unterminated curly brackets") }
                i += 1
                let nums = curly.split(separator: UInt8(ascii: ","), omittingEmptySubsequences: false).map(Array.init)
                var minTimes = 0
                var maxTimes: Int? = nil
                guard nums.count == 1 || nums.count == 2 else { throw .unsupported("wrong number of values in curly brackets") }
                if nums.count == 1 {
                    guard let n = cStoi(nums[0]) else { throw .unsupported("invalid number in curly brackets") }
                    minTimes = n
                    maxTimes = n
                } else {
                    if !nums[0].isEmpty {
                        guard let n = cStoi(nums[0]) else { throw .unsupported("invalid number in curly brackets") }
                        minTimes = n
                    }
                    if !nums[1].isEmpty {
                        guard let n = cStoi(nums[1]) else { throw .unsupported("invalid number in curly brackets") }
                        maxTimes = n == Int(Int32.max) ? nil : n
                    }
                }
                if minTimes < 0 || (maxTimes ?? 0) < 0 {
                    throw .invalid("the repetition {\(text(curly))} has a negative count")
                }
                if minTimes > maxGrammarRepetition {
                    throw .invalid("the repetition {\(text(curly))} repeats more than \(maxGrammarRepetition) times, llama.cpp's limit")
                }
                if let maxTimes, minTimes > maxTimes {
                    throw .invalid("the repetition {\(text(curly))} has a minimum (\(minTimes)) above its maximum (\(maxTimes))")
                }
                guard seq.last.map({ $0 != ("|", false) }) == true else { throw .invalid("nothing to repeat") }
                try checkRepeat("{" + text(curly) + "}", unbounded: maxTimes == nil, lazy: false)
                var last = seq.popLast()!
                if minTimes == 0 { empty[empty.count - 1] = true }
                quantified[quantified.count - 1] = true
                if !last.isLiteral {
                    if let id = subRuleIDs[last.text] {
                        last.text = id
                    } else {
                        let id = rules.add(name + "-" + String(subRuleIDs.count + 1), last.text)
                        subRuleIDs[last.text] = id
                        last.text = id
                    }
                }
                seq.append((repetition(last.isLiteral ? "\"" + last.text + "\"" : last.text, min: minTimes, max: maxTimes), false))
            default:
                var literal: [UInt8] = []
                while i < length {
                    if sp[i] == UInt8(ascii: "\\") {
                        if i == length - 1 { throw .invalid("trailing backslash") }
                        let next = sp[i + 1]
                        if escapedInRegexpsButNotInLiterals.contains(next) {
                            i += 1
                            literal.append(sp[i])
                            i += 1
                        } else {
                            let n = gbnfEscapeLength(sp, i)
                            if n == 0 { throw .unsupported("unsupported escape: " + text(sp[i..<(i + 2)])) }
                            literal += sp[i..<(i + n)]
                            i += n
                        }
                    } else if sp[i] == UInt8(ascii: "\"") {
                        literal += Array("\\\"".utf8)
                        i += 1
                    } else if !nonLiteral.contains(sp[i]) {
                        // one character: a UTF-8 sequence is never split (llama.cpp splits it
                        // before a quantifier, and writes invalid UTF-8 into the grammar)
                        var end = i + 1
                        while end < length && sp[end] & 0xC0 == 0x80 { end += 1 }
                        guard end == length || literal.isEmpty || sp[end] == UInt8(ascii: ".") || !nonLiteral.contains(sp[end]) else { break }
                        literal += sp[i..<end]
                        i = end
                    } else {
                        break
                    }
                }
                if literal.isEmpty { throw .unsupported("unsupported character: " + text([c])) }
                seq.append((text(literal), true))
            }
        }
        lastGroupNullable = Self.nullable(seq, empty)
        return joinSeq(seq)
    }
}
