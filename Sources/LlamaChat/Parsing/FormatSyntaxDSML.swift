import Foundation
import LlamaJinja

// DeepSeek V3.2 / V4 (DSML markup) and Command R+.
extension ParseState {
    /// DeepSeek V3.2 / V4: `<think>` reasoning (ended by `</think>` or by the call block itself),
    /// content, then one `<｜DSML｜BLOCK>` of `<｜DSML｜invoke name="NAME">` calls. `s` starts
    /// with what the generation prompt wrote of the reply (`<think>` when thinking).
    mutating func parseDSML(_ s: Substring, block: String) {
        let callsStart = "<｜DSML｜\(block)>"
        let withTools = !parser.tools.isEmpty
        let callMarkers = withTools ? ["\n\n" + callsStart, callsStart] : []
        var rest = s
        if parser.reasoning == .auto, rest.hasPrefix("<think>") {
            let body = rest.dropFirst("<think>".count)
            guard let (stop, marker) = Self.earliest(body, ["</think>"] + callMarkers) else {
                // Still thinking (or stopped while thinking): all of it is reasoning.
                output.reasoning = String(isPartial ? body.holdingBackPartial(["</think>"] + callMarkers) : body)
                return
            }
            output.reasoning = String(body[body.startIndex..<stop.lowerBound])
            if marker != "</think>" {
                dsmlCalls(body[stop.lowerBound...].trimmingLeadingWhitespace, block: block)
                return
            }
            rest = body[stop.upperBound...]
        }
        guard withTools else {
            addContent(rest)
            return
        }
        guard let (stop, _) = Self.earliest(rest, callMarkers) else {
            addContent(isPartial ? rest.holdingBackPartial(callMarkers) : rest)
            return
        }
        addContent(rest[rest.startIndex..<stop.lowerBound])
        dsmlCalls(rest[stop.lowerBound...].trimmingLeadingWhitespace, block: block)
    }

    /// The first of `markers` in `s` (the one starting earliest), with which it is.
    static func earliest(_ s: Substring, _ markers: [String]) -> (Range<Substring.Index>, String)? {
        var best: (Range<Substring.Index>, String)?
        for m in markers {
            if let r = s.find(m), best.map({ r.lowerBound < $0.0.lowerBound }) ?? true { best = (r, m) }
        }
        return best
    }

    /// `<｜DSML｜BLOCK>` then invokes, then `</｜DSML｜BLOCK>` and nothing after it.
    mutating func dsmlCalls(_ s: Substring, block: String) {
        let blockStart = "<｜DSML｜\(block)>", blockEnd = "</｜DSML｜\(block)>"
        let invokeOpen = "<｜DSML｜invoke name=\"", invokeEnd = "</｜DSML｜invoke>"
        let paramOpen = "<｜DSML｜parameter name=\"", paramEnd = "</｜DSML｜parameter>"
        var r = s.dropFirst(blockStart.count)
        while true {
            let t = r.trimmingLeadingWhitespace
            if t.hasPrefix(blockEnd) {
                let after = t.dropFirst(blockEnd.count)
                if !after.isEmpty { keep(after, .trailingText, "text after \(blockEnd)") }
                return
            }
            // A complete output may stop before the block's end tag (as llama.cpp accepts).
            if t.isEmpty { return }
            guard t.hasPrefix(invokeOpen) else {
                if isPartial, t.isPrefix(of: invokeOpen) || t.isPrefix(of: blockEnd) { return }
                keep(t, .invalidArguments, "\(blockStart) holds something other than \(invokeOpen)")
                return
            }
            let a = t.dropFirst(invokeOpen.count)
            guard let nameEnd = a.find("\">\n") else {
                keep(t, .unterminatedToolCall, "an unfinished \(invokeOpen)")
                return
            }
            let name = String(a[a.startIndex..<nameEnd.lowerBound])
            var body = a[nameEnd.upperBound...]
            var object = JSONObject()
            var argsText = "{"
            while true {
                let p = body.trimmingLeadingWhitespace
                if p.hasPrefix(invokeEnd) {
                    argsText += "}"
                    if !addCall(name: name, arguments: .object(object), argumentsText: argsText[...], at: t.startIndex) {
                        keep(t, .invalidArguments, "a malformed tool call")
                        return
                    }
                    r = p.dropFirst(invokeEnd.count)
                    break
                }
                guard p.hasPrefix(paramOpen) else {
                    if isPartial, p.isEmpty || p.isPrefix(of: paramOpen) || p.isPrefix(of: invokeEnd) {
                        addPartialCall(name: name, argumentsSoFar: argsText[...])
                    } else {
                        keep(t, .invalidArguments, "the call to \(name) holds something other than \(paramOpen)")
                    }
                    return
                }
                let pa = p.dropFirst(paramOpen.count)
                guard let m = pa.prefixMatch(of: /([^"<>]*)" string="(true|false)">/) else {
                    if isPartial, pa.find(">") == nil {
                        addPartialCall(name: name, argumentsSoFar: argsText[...])
                    } else {
                        keep(t, .invalidArguments, "a malformed \(paramOpen)")
                    }
                    return
                }
                let key = String(m.1), isString = m.2 == "true"
                if let type = parser.schemaType(tool: name, parameter: key), (type == "string") != isString, !isPartial {
                    keep(t, .invalidArguments, "\(key) of \(name) is marked string=\"\(m.2)\" against its schema")
                    return
                }
                argsText += (object.isEmpty ? "" : ",") + JSONValue.string(key).jsonText + ":"
                let v = pa[m.range.upperBound...]
                guard let close = v.find(paramEnd) else {
                    if !isPartial {
                        keep(t, .unterminatedToolCall, "\(paramOpen)\(key)\" is never closed by \(paramEnd)")
                        return
                    }
                    let soFar = v.holdingBackPartial([paramEnd])
                    if isString {
                        var escaped = JSONValue.string(String(soFar)).jsonText
                        escaped.removeLast()
                        argsText += escaped
                    } else {
                        argsText += soFar.trimmed
                    }
                    addPartialCall(name: name, argumentsSoFar: argsText[...])
                    return
                }
                let raw = v[v.startIndex..<close.lowerBound]
                if isString {
                    object[key] = .string(String(raw))
                    argsText += JSONValue.string(String(raw)).jsonText
                } else {
                    guard let value = try? JSONValue(parsing: String(raw.trimmed)) else {
                        if isPartial {
                            argsText += raw.trimmed
                            addPartialCall(name: name, argumentsSoFar: argsText[...])
                        } else {
                            keep(t, .invalidArguments, "the value of \(key) in the call to \(name) is not JSON")
                        }
                        return
                    }
                    object[key] = value
                    argsText += raw.trimmed
                }
                body = v[close.upperBound...]
            }
        }
    }

    /// Command R+ with tools: text between `<|CHATBOT_TOKEN|>` and `<|END_OF_TURN_TOKEN|>`, then
    /// `Action:\n```json\n[{"tool_name": ..., "parameters": {...}}]\n````; without tools, plain text.
    mutating func commandRPlus(_ s: Substring) {
        guard !parser.tools.isEmpty else {
            addContent(s)
            return
        }
        let chatbot = "<|CHATBOT_TOKEN|>", endOfTurn = "<|END_OF_TURN_TOKEN|>", action = "Action:\n```json\n"
        var rest = s
        if rest.hasPrefix(chatbot) {
            let body = rest.dropFirst(chatbot.count)
            guard let end = body.find(endOfTurn) else {
                addContent(isPartial ? body.holdingBackPartial([endOfTurn]) : body)
                return
            }
            addContent(body[body.startIndex..<end.lowerBound])
            rest = body[end.upperBound...]
        } else if isPartial, rest.isPrefix(of: chatbot) {
            return
        }
        if rest.isEmpty { return }
        if rest.hasPrefix(action) {
            jsonArrayCalls(rest.dropFirst(action.count), close: "```", keys: CallKeys(name: "tool_name", arguments: ["parameters"]))
            return
        }
        // Text outside the markup: llama.cpp shows none of it while streaming, and rejects it at the end.
        if isPartial { return }
        keep(rest, .unexpectedText, "text outside \(chatbot)…\(endOfTurn) and Action:")
    }
}
