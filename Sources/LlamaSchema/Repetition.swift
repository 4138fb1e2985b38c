/// `item` repeated between `min` and `max` times (`max` nil: unbounded), with `separator`
/// between items when given: `x?`, `x*`, `x+`, `x{2,5}`, or `x ("," x){1,4}`.
func repetition(_ item: String, min: Int, max: Int?, separator: String = "") -> String {
    if max == 0 { return "" }
    if min == 0 && max == 1 { return item + "?" }
    if separator.isEmpty {
        if min == 1 && max == nil { return item + "+" }
        if min == 0 && max == nil { return item + "*" }
        return item + "{" + String(min) + "," + (max.map { String($0) } ?? "") + "}"
    }
    var result = item + " " + repetition("(" + separator + " " + item + ")", min: min == 0 ? 0 : min - 1, max: max.map { $0 - 1 })
    if min == 0 { result = "(" + result + ")?" }
    return result
}

/// Integer ranges as digit-by-digit alternatives (no leading zeros, at most 16 digits when
/// one side is open), following llama.cpp's converter so that the text is identical.
struct IntegerRange {
    var out = ""

    mutating func digitRange(_ from: UInt8, _ to: UInt8) {
        out += "["
        out.unicodeScalars.append(Unicode.Scalar(from))
        if from != to {
            out += "-"
            out.unicodeScalars.append(Unicode.Scalar(to))
        }
        out += "]"
    }

    mutating func moreDigits(_ minDigits: Int, _ maxDigits: Int?) {
        out += "[0-9]"
        if minDigits == maxDigits && minDigits == 1 { return }
        out += "{" + String(minDigits)
        if maxDigits != minDigits {
            out += ","
            if let maxDigits { out += String(maxDigits) }
        }
        out += "}"
    }

    mutating func uniformRange(_ from: [UInt8], _ to: [UInt8]) {
        var i = 0
        while i < from.count && i < to.count && from[i] == to[i] { i += 1 }
        if i > 0 { out += "\"" + String(decoding: from[0..<i], as: UTF8.self) + "\"" }
        guard i < from.count && i < to.count else { return }
        if i > 0 { out += " " }
        let subLen = from.count - i - 1
        if subLen > 0 {
            let fromSub = Array(from[(i + 1)...]), toSub = Array(to[(i + 1)...])
            let zeros = [UInt8](repeating: 0x30, count: subLen), nines = [UInt8](repeating: 0x39, count: subLen)
            var toReached = false
            out += "("
            if fromSub == zeros {
                digitRange(from[i], to[i] &- 1)
                out += " "
                moreDigits(subLen, subLen)
            } else {
                out += "["
                out.unicodeScalars.append(Unicode.Scalar(from[i]))
                out += "] ("
                uniformRange(fromSub, nines)
                out += ")"
                if from[i] < to[i] &- 1 {
                    out += " | "
                    if toSub == nines {
                        digitRange(from[i] + 1, to[i])
                        toReached = true
                    } else {
                        digitRange(from[i] + 1, to[i] &- 1)
                    }
                    out += " "
                    moreDigits(subLen, subLen)
                }
            }
            if !toReached {
                out += " | "
                digitRange(to[i], to[i])
                out += " "
                uniformRange(zeros, toSub)
            }
            out += ")"
        } else {
            out += "["
            out.unicodeScalars.append(Unicode.Scalar(from[i]))
            out += "-"
            out.unicodeScalars.append(Unicode.Scalar(to[i]))
            out += "]"
        }
    }

    struct Unbounded: Error {}

    /// `Int64.min`/`Int64.max` mean unbounded on that side, as in llama.cpp (so a bound that
    /// negates to one of them is unbounded too); throws when both sides end up unbounded.
    mutating func build(_ minValue: Int64, _ maxValue: Int64, decimalsLeft: Int = 16, topLevel: Bool = true) throws(Unbounded) {
        let hasMin = minValue != .min, hasMax = maxValue != .max
        if hasMin && hasMax {
            var minValue = minValue
            if minValue < 0 && maxValue < 0 {
                out += "\"-\" ("
                try build(0 &- maxValue, 0 &- minValue, decimalsLeft: decimalsLeft, topLevel: true)
                out += ")"
                return
            }
            if minValue < 0 {
                out += "\"-\" ("
                try build(0, 0 &- minValue, decimalsLeft: decimalsLeft, topLevel: true)
                out += ") | "
                minValue = 0
            }
            var minS = Array(String(minValue).utf8)
            let maxS = Array(String(maxValue).utf8)
            var digits = minS.count
            while digits < maxS.count {
                uniformRange(minS, [UInt8](repeating: 0x39, count: digits))
                minS = [0x31] + [UInt8](repeating: 0x30, count: digits)
                out += " | "
                digits += 1
            }
            uniformRange(minS, maxS)
            return
        }
        let lessDecimals = Swift.max(decimalsLeft - 1, 1)
        if hasMin {
            if minValue < 0 {
                out += "\"-\" ("
                try build(.min, 0 &- minValue, decimalsLeft: decimalsLeft, topLevel: false)
                out += ") | [0] | [1-9] "
                moreDigits(0, decimalsLeft - 1)
            } else if minValue == 0 {
                if topLevel {
                    out += "[0] | [1-9] "
                    moreDigits(0, lessDecimals)
                } else {
                    moreDigits(1, decimalsLeft)
                }
            } else if minValue <= 9 {
                let c = UInt8(0x30 + minValue)
                let rangeStart: UInt8 = topLevel ? 0x31 : 0x30
                if c > rangeStart {
                    digitRange(rangeStart, c - 1)
                    out += " "
                    moreDigits(1, lessDecimals)
                    out += " | "
                }
                digitRange(c, 0x39)
                out += " "
                moreDigits(0, lessDecimals)
            } else {
                let minS = Array(String(minValue).utf8)
                let len = minS.count
                let c = minS[0]
                if c > 0x31 {
                    digitRange(topLevel ? 0x31 : 0x30, c - 1)
                    out += " "
                    moreDigits(len, lessDecimals)
                    out += " | "
                }
                digitRange(c, c)
                out += " ("
                try build(Int64(String(decoding: minS[1...], as: UTF8.self))!, .max, decimalsLeft: lessDecimals, topLevel: false)
                out += ")"
                if c < 0x39 {
                    out += " | "
                    digitRange(c + 1, 0x39)
                    out += " "
                    moreDigits(len - 1, lessDecimals)
                }
            }
            return
        }
        if hasMax {
            if maxValue >= 0 {
                if topLevel {
                    out += "\"-\" [1-9] "
                    moreDigits(0, lessDecimals)
                    out += " | "
                }
                try build(0, maxValue, decimalsLeft: decimalsLeft, topLevel: true)
            } else {
                out += "\"-\" ("
                try build(0 &- maxValue, .max, decimalsLeft: decimalsLeft, topLevel: false)
                out += ")"
            }
            return
        }
        throw Unbounded()
    }
}
