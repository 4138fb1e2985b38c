import Foundation
import LlamaJinja

// Each format's syntax for tool calls, over the text that follows any reasoning.
extension ParseState {
    mutating func parseBody(_ s: Substring) {
        switch parser.format {
        case .hermes:
            delimitedCalls(s, section: nil, open: "<tool_call>", close: "</tool_call>") { $0.jsonCall($1, closed: $2) }
        case .qwen3Coder:
            delimitedCalls(s, section: nil, open: "<tool_call>", close: "</tool_call>") { $0.xmlFunctionCall($1, closed: $2) }
        case .glm45:
            delimitedCalls(s, section: nil, open: "<tool_call>", close: "</tool_call>") { $0.glmCall($1, closed: $2) }
        case .minimaxM2:
            delimitedCalls(s, section: ("<minimax:tool_call>", "</minimax:tool_call>"), open: "<invoke name=\"", close: "</invoke>", closeSuffix: "\n") {
                $0.invokeCall($1, closed: $2)
            }
        case .kimiK2:
            delimitedCalls(s, section: ("<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"),
                           open: "<|tool_call_begin|>", close: "<|tool_call_end|>") { $0.kimiCall($1, closed: $2) }
        case .deepseekV3, .deepseekR1:
            let r1 = parser.format == .deepseekR1
            delimitedCalls(s, section: ("<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>"),
                           open: "<｜tool▁call▁begin｜>", close: "<｜tool▁call▁end｜>") { $0.deepseekCall($1, closed: $2, r1: r1) }
        case .functionaryV31:
            functionaryV31(s)
        case .functionaryV32:
            functionaryV32(s)
        case .granite:
            guard let rest = contentUntil(s, markers: ["<|tool_call|>"]) else { return }
            jsonArrayCalls(rest.dropFirst("<|tool_call|>".count), close: nil, keys: .standard)
        case .apertus:
            guard let rest = contentUntil(s, markers: ["<|tools_prefix|>"]) else { return }
            jsonArrayCalls(rest.dropFirst("<|tools_prefix|>".count), close: "<|tools_suffix|>", keys: .nameIsKey)
        case .commandR7B:
            commandR7B(s)
        case .commandRPlus:
            commandRPlus(s)
        case .apriel:
            guard !parser.tools.isEmpty, let rest = contentUntil(s, markers: ["<tool_calls>"]) else {
                if parser.tools.isEmpty { addContent(s) }
                return
            }
            jsonArrayCalls(rest.dropFirst("<tool_calls>".count), close: "</tool_calls>", keys: CallKeys())
        case .mistral:
            mistral(s)
        case .llama3:
            llama3(s)
        case .generic:
            generic(s)
        default:
            addContent(s)
        }
    }

    // MARK: Calls between tags

    /// Content up to the first call (or section), then calls between `open` and `close`
    /// separated by whitespace. `body` reads one call's inner text; it returns false when the
    /// call is malformed (then its text is kept as content).
    mutating func delimitedCalls(_ s: Substring, section: (start: String, end: String)?, open: String, close: String,
                                 closeSuffix: String = "", body: (inout ParseState, Substring, Bool) -> Bool) {
        let markers = [section?.start, open].compactMap { $0 }
        guard var rest = contentUntil(s, markers: markers) else { return }
        var inSection = false
        if let section, rest.hasPrefix(section.start) {
            rest = rest.dropFirst(section.start.count)
            inSection = true
        }
        while true {
            let r = rest.trimmingLeadingWhitespace
            if inSection, let section, r.hasPrefix(section.end) {
                trailing(r.dropFirst(section.end.count))
                return
            }
            if r.hasPrefix(open) {
                let inner = r.dropFirst(open.count)
                // A stream shows the call closed only once `close` and `closeSuffix` are both written.
                if let c = inner.find(close), !(isPartial && closeSuffix.count > inner[c.upperBound...].count && closeSuffix.hasPrefix(inner[c.upperBound...])) {
                    if !body(&self, inner[inner.startIndex..<c.lowerBound], true) {
                        keep(r, .invalidArguments, "a malformed tool call")
                        return
                    }
                    rest = inner[c.upperBound...]
                    continue
                }
                if isPartial {
                    let unclosed = inner.find(close).map { inner[inner.startIndex..<$0.lowerBound] } ?? inner.holdingBackPartial([close])
                    _ = body(&self, unclosed, false)
                } else {
                    keep(r, .unterminatedToolCall, "\(open) is never closed by \(close)")
                }
                return
            }
            if r.isEmpty || (isPartial && (r.isPrefix(of: open) || (inSection && section.map { r.isPrefix(of: $0.end) } ?? false))) {
                return
            }
            trailing(r)
            return
        }
    }

    /// `{"name": ..., "arguments": {...}}`.
    mutating func jsonCall(_ inner: Substring, closed: Bool, keys: CallKeys = .standard) -> Bool {
        switch scanJSON(inner) {
        case .value(let json):
            guard json.text.endIndex == inner.endIndex || inner[json.end...].allSatisfy(\.isWhitespace) else {
                return closed ? false : true
            }
            return addJSONCall(json.value, keys: keys, at: inner.startIndex, source: json.text)
        case .incomplete(let text):
            if closed { return false }
            if let (name, args) = partialJSONCall(text, keys: keys) { addPartialCall(name: name, argumentsSoFar: args, id: partialID(text, keys: keys)) }
            return true
        case .invalid:
            return !closed && inner.trimmed.isEmpty
        }
    }

    @discardableResult
    mutating func addJSONCall(_ value: JSONValue, keys: CallKeys, at index: Substring.Index, source: Substring? = nil) -> Bool {
        // The arguments keep the text the model wrote, so a stream's pieces add up to them.
        let argsText = source.flatMap { partialJSONCall($0, keys: keys)?.1 }.flatMap { $0.isEmpty ? nil : $0 }
        guard case .object(let object) = value else {
            warn(.invalidArguments, "a tool call that is not a JSON object", at: index)
            return false
        }
        if keys.nameIsKey, object.count == 1, let name = object.keys.first {
            return addCall(name: name, arguments: object[name], argumentsText: argsText, at: index)
        }
        guard let name = object[keys.name]?.stringValue else {
            warn(.missingToolName, "a tool call without \"\(keys.name)\"", at: index)
            return false
        }
        let args = keys.arguments.lazy.compactMap { object[$0] }.first
        let id = keys.id.flatMap { object[$0] }.flatMap { v -> String? in
            if case .int(let i) = v { return String(i) }
            return v.stringValue
        }
        return addCall(name: name, arguments: args, argumentsText: args?.stringValue == nil ? argsText : nil, id: id, at: index)
    }

    /// The name and the arguments so far of a JSON call still being written.
    func partialJSONCall(_ text: Substring, keys: CallKeys) -> (String, Substring)? {
        if keys.nameIsKey {
            guard let m = text.firstMatch(of: /^\s*\{\s*"((?:[^"\\]|\\.)*)"\s*:\s*/) else {
                // A name still being written shows once it is a whole tool name (as llama.cpp
                // matches the names it was given).
                if let m = text.wholeMatch(of: /\s*\{\s*"((?:[^"\\]|\\.)*)"?\s*/), parser.tools.contains(where: { $0.name == m.1 }) {
                    return (String(m.1), "")
                }
                return nil
            }
            return (String(m.1), argumentsSoFar(text[m.range.upperBound...]))
        }
        let namePattern = try! Regex<(Substring, Substring)>("\"\(keys.name)\"\\s*:\\s*\"((?:[^\"\\\\]|\\\\.)*)\"")
        guard let m = text.firstMatch(of: namePattern) else { return nil }
        for key in keys.arguments {
            let argsPattern = try! Regex<Substring>("\"\(key)\"\\s*:\\s*")
            if let a = text.firstMatch(of: argsPattern) { return (String(m.1), argumentsSoFar(text[a.range.upperBound...])) }
        }
        return (String(m.1), "")
    }

    /// The id of a JSON call still being written, once its value is complete (a string or a number).
    func partialID(_ text: Substring, keys: CallKeys) -> String? {
        guard let key = keys.id else { return nil }
        let pattern = try! Regex<(Substring, Substring)>("\"\(key)\"\\s*:\\s*(\"(?:[^\"\\\\]|\\\\.)*\"|-?[0-9]+(?=[\\s,}]))")
        guard let m = text.firstMatch(of: pattern), let v = try? JSONValue(parsing: String(m.1)) else { return nil }
        if case .int(let i) = v { return String(i) }
        return v.stringValue
    }

    /// The arguments value as far as it is written: up to its end when it is complete.
    func argumentsSoFar(_ s: Substring) -> Substring {
        if case .complete(let end) = jsonExtent(s) { return s[s.startIndex..<end] }
        return s
    }

    // MARK: Tagged parameters

    /// Arguments from `(name, raw value)` pairs: a value is JSON unless the tool's schema makes
    /// the parameter a string (or it does not parse).
    mutating func addTaggedCall(name: String, parameters: [(String, Substring)], at index: Substring.Index) -> Bool {
        var object = JSONObject()
        for (key, raw) in parameters { object[key] = taggedValue(tool: name, parameter: key, raw) }
        return addCall(name: name, arguments: .object(object), at: index)
    }

    func taggedValue(tool: String, parameter: String, _ raw: Substring) -> JSONValue {
        let type = parser.schemaType(tool: tool, parameter: parameter)
        if type == "string" { return .string(String(raw)) }
        if let v = try? JSONValue(parsing: String(raw.trimmed)) { return v }
        return .string(String(raw))
    }

    /// `<function=NAME>` then `<parameter=KEY>\nVALUE\n</parameter>`... then `</function>`.
    mutating func xmlFunctionCall(_ inner: Substring, closed: Bool) -> Bool {
        let r = inner.trimmingLeadingWhitespace
        guard r.hasPrefix("<function=") else { return !closed }
        let afterTag = r.dropFirst("<function=".count)
        guard let gt = afterTag.find(">") else { return !closed }
        let name = String(afterTag[afterTag.startIndex..<gt.lowerBound])
        var rest = afterTag[gt.upperBound...]
        var params: [(String, Substring)] = []
        while let open = rest.trimmingLeadingWhitespace.find("<parameter="), rest.trimmingLeadingWhitespace.hasPrefix("<parameter=") {
            let afterOpen = rest.trimmingLeadingWhitespace[open.upperBound...]
            guard let gt = afterOpen.find(">") else { break }
            let key = String(afterOpen[afterOpen.startIndex..<gt.lowerBound])
            let valueStart = afterOpen[gt.upperBound...]
            guard let end = valueStart.find("</parameter>") else {
                if closed { return false }
                break
            }
            var value = valueStart[valueStart.startIndex..<end.lowerBound]
            if value.hasPrefix("\n") { value = value.dropFirst() }
            if value.hasSuffix("\n") { value = value.dropLast() }
            params.append((key, value))
            rest = valueStart[end.upperBound...]
        }
        if closed {
            guard rest.trimmed == "</function>" else { return false }
            return addTaggedCall(name: name, parameters: params, at: inner.startIndex)
        }
        streamTaggedCall(name: name, afterName: afterTag[gt.lowerBound...], syntax: .qwen3Coder)
        return true
    }

    /// GLM: `NAME` then `<arg_key>KEY</arg_key><arg_value>VALUE</arg_value>`...
    mutating func glmCall(_ inner: Substring, closed: Bool) -> Bool {
        let nameEnd = inner.find("<arg_key>")?.lowerBound ?? inner.endIndex
        let nameText = inner[inner.startIndex..<nameEnd]
        let name = String(nameText.prefix { $0 != "<" && $0 != "\n" }.trimmed)
        var rest = inner[nameEnd...]
        var params: [(String, Substring)] = []
        while rest.trimmingLeadingWhitespace.hasPrefix("<arg_key>") {
            let afterKey = rest.trimmingLeadingWhitespace.dropFirst("<arg_key>".count)
            guard let keyEnd = afterKey.find("</arg_key>") else { break }
            let key = String(afterKey[afterKey.startIndex..<keyEnd.lowerBound].trimmed)
            let v = afterKey[keyEnd.upperBound...].trimmingLeadingWhitespace
            guard v.hasPrefix("<arg_value>") else { break }
            let valueStart = v.dropFirst("<arg_value>".count)
            guard let end = valueStart.find("</arg_value>") else { break }
            params.append((key, valueStart[valueStart.startIndex..<end.lowerBound]))
            rest = valueStart[end.upperBound...]
        }
        if closed {
            guard rest.trimmed.isEmpty else { return false }
            return addTaggedCall(name: name, parameters: params, at: inner.startIndex)
        }
        let afterName = inner[inner.startIndex...].drop { $0 != "<" && $0 != "\n" }
        streamTaggedCall(name: name, afterName: afterName, syntax: parser.compactGLM ? .glmCompact : .glm)
        return true
    }

    /// MiniMax: `NAME">` then `<parameter name="KEY">VALUE</parameter>`...
    mutating func invokeCall(_ inner: Substring, closed: Bool) -> Bool {
        guard let q = inner.find("\">") else { return !closed }
        let name = String(inner[inner.startIndex..<q.lowerBound])
        var rest = inner[q.upperBound...]
        var params: [(String, Substring)] = []
        while rest.trimmingLeadingWhitespace.hasPrefix("<parameter name=\"") {
            let afterOpen = rest.trimmingLeadingWhitespace.dropFirst("<parameter name=\"".count)
            guard let gt = afterOpen.find("\">") else { break }
            let key = String(afterOpen[afterOpen.startIndex..<gt.lowerBound])
            let valueStart = afterOpen[gt.upperBound...]
            guard let end = valueStart.find("</parameter>") else { break }
            params.append((key, valueStart[valueStart.startIndex..<end.lowerBound]))
            rest = valueStart[end.upperBound...]
        }
        if closed {
            guard rest.trimmed.isEmpty else { return false }
            return addTaggedCall(name: name, parameters: params, at: inner.startIndex)
        }
        streamTaggedCall(name: name, afterName: inner[q.lowerBound...], syntax: .minimax)
        return true
    }

    /// How a format with tagged parameters writes them, as far as a stream shows them.
    struct TaggedSyntax {
        /// After the function name: the call shows once it is written.
        var nameSuffix: String
        /// The call shows only once its first parameter tag has started (the name has no suffix).
        var needsArgOpen = false
        var argOpen: String
        /// After a parameter's name; empty when the name is one of the tool's parameters, complete as written.
        var argNameEnd: String
        var valueOpen: String
        var valueClose: String
        /// Closes the call inside its text (the `}` shows once it is written); nil when the
        /// call's own close tag does.
        var callClose: String?

        static let qwen3Coder = TaggedSyntax(nameSuffix: ">\n", argOpen: "<parameter=", argNameEnd: ">\n", valueOpen: "",
                                             valueClose: "\n</parameter>\n", callClose: "</function>\n")
        static let glm = TaggedSyntax(nameSuffix: "\n", argOpen: "<arg_key>", argNameEnd: "</arg_key>\n", valueOpen: "<arg_value>",
                                      valueClose: "</arg_value>\n")
        static let glmCompact = TaggedSyntax(nameSuffix: "", needsArgOpen: true, argOpen: "<arg_key>", argNameEnd: "</arg_key>",
                                             valueOpen: "<arg_value>", valueClose: "</arg_value>")
        static let minimax = TaggedSyntax(nameSuffix: "\">\n", argOpen: "<parameter name=\"", argNameEnd: "", valueOpen: "\">",
                                          valueClose: "</parameter>\n")
    }

    /// A call with tagged parameters still being written, as llama.cpp streams it: `{`, then each
    /// parameter's `"name":` once its name is written, a string value as it arrives (its closing
    /// quote once the value's close tag is), another value as written so far.
    mutating func streamTaggedCall(name: String, afterName s: Substring, syntax: TaggedSyntax) {
        let name = String(name[...].trimmed)
        guard !name.isEmpty, s.hasPrefix(syntax.nameSuffix) else { return }
        var r = s.dropFirst(syntax.nameSuffix.count)
        if syntax.needsArgOpen, !r.trimmingLeadingWhitespace.hasPrefix(syntax.argOpen) { return }
        var args = "{"
        var count = 0
        while true {
            let t = r.trimmingLeadingWhitespace
            guard t.hasPrefix(syntax.argOpen) else { break }
            let a = t.dropFirst(syntax.argOpen.count)
            let key: String
            var rest: Substring
            if syntax.argNameEnd.isEmpty {
                let names = parser.parameterNames(tool: name).filter { a.hasPrefix($0) }
                guard let k = names.max(by: { $0.count < $1.count }) else { break }
                key = k
                rest = a.dropFirst(k.count)
            } else {
                guard let e = a.find(syntax.argNameEnd) else { break }
                key = String(a[a.startIndex..<e.lowerBound].trimmed)
                rest = a[e.upperBound...]
            }
            args += (count > 0 ? "," : "") + JSONValue.string(key).jsonText + ":"
            count += 1
            guard rest.hasPrefix(syntax.valueOpen) else { break }
            let v = rest.dropFirst(syntax.valueOpen.count)
            let isString = parser.schemaType(tool: name, parameter: key).map { $0 == "string" } ?? true
            let closeTag = v.find(syntax.valueClose)
            let value = closeTag.map { v[v.startIndex..<$0.lowerBound] } ?? v.holdingBackPartial([syntax.valueClose])
            if isString {
                var escaped = JSONValue.string(String(value)).jsonText
                if closeTag == nil { escaped.removeLast() }
                args += escaped
            } else {
                args += value.trimmed
            }
            guard let closeTag else {
                addPartialCall(name: name, argumentsSoFar: args[...])
                return
            }
            r = v[closeTag.upperBound...]
        }
        if let close = syntax.callClose, r.trimmingLeadingWhitespace.hasPrefix(close) { args += "}" }
        addPartialCall(name: name, argumentsSoFar: args[...])
    }

    // MARK: Named calls with JSON arguments

    /// Kimi K2: `functions.NAME:INDEX<|tool_call_argument_begin|>{...}`; the id is `functions.NAME:INDEX`.
    mutating func kimiCall(_ inner: Substring, closed: Bool) -> Bool {
        guard let sep = inner.find("<|tool_call_argument_begin|>") else { return !closed }
        let head = String(inner[inner.startIndex..<sep.lowerBound].trimmed)
        var name = head.hasPrefix("functions.") ? String(head.dropFirst("functions.".count)) : head
        if let colon = name.lastIndex(of: ":") { name = String(name[..<colon]) }
        return namedArguments(name: name, inner[sep.upperBound...], closed: closed, id: head)
    }

    /// DeepSeek: `NAME<｜tool▁sep｜>{...}` (V3.1) or `function<｜tool▁sep｜>NAME\n```json\n{...}\n```` (R1).
    mutating func deepseekCall(_ inner: Substring, closed: Bool, r1: Bool) -> Bool {
        guard let sep = inner.find("<｜tool▁sep｜>") else { return !closed }
        if !r1 {
            let name = String(inner[inner.startIndex..<sep.lowerBound].trimmed)
            return namedArguments(name: name, inner[sep.upperBound...], closed: closed)
        }
        let afterSep = inner[sep.upperBound...]
        guard let fence = afterSep.find("```json") else {
            if closed { return false }
            return true
        }
        let name = String(afterSep[afterSep.startIndex..<fence.lowerBound].trimmed)
        var args = afterSep[fence.upperBound...]
        if let close = args.find("```") { args = args[args.startIndex..<close.lowerBound] } else if closed { return false }
        return namedArguments(name: name, args, closed: closed)
    }

    /// A call whose name is known and whose arguments are a JSON object.
    mutating func namedArguments(name: String, _ args: Substring, closed: Bool, id: String? = nil) -> Bool {
        switch scanJSON(args) {
        case .value(let json):
            if closed, !args[json.end...].allSatisfy(\.isWhitespace) { return false }
            return addCall(name: name, arguments: json.value, argumentsText: json.text, id: id, at: args.startIndex)
        case .incomplete(let text):
            if closed {
                warn(.invalidArguments, "the arguments of \(name) end early", at: args.startIndex)
                return false
            }
            addPartialCall(name: name, argumentsSoFar: text, id: id)
            return true
        case .invalid(let why):
            if closed || !args.trimmed.isEmpty {
                warn(.invalidArguments, "the arguments of \(name): \(why)", at: args.startIndex)
                return !closed && isPartial
            }
            addPartialCall(name: name, argumentsSoFar: "", id: id)
            return true
        }
    }

    // MARK: JSON arrays of calls

    struct CallKeys {
        var name = "name"
        var arguments = ["arguments"]
        var id: String?
        var nameIsKey = false
        static let standard = CallKeys(id: "id")
        static let llama = CallKeys(arguments: ["parameters", "arguments"])
        static let nameIsKey = CallKeys(nameIsKey: true)
        static let cohere = CallKeys(name: "tool_name", arguments: ["parameters"], id: "tool_call_id")
    }

    /// `[{call}, {call}]` then `close` (when the format has one).
    mutating func jsonArrayCalls(_ s: Substring, close: String?, keys: CallKeys) {
        switch scanJSON(s) {
        case .value(let json):
            guard case .array(let items) = json.value else {
                keep(s, .invalidArguments, "the tool calls are not a JSON array")
                return
            }
            var r = json.text.dropFirst().trimmingLeadingWhitespace  // the items' own text
            for item in items {
                var source: Substring?
                if case .complete(let end) = jsonExtent(r) {
                    source = r[r.startIndex..<end]
                    r = r[end...].trimmingLeadingWhitespace
                    if r.hasPrefix(",") { r = r.dropFirst().trimmingLeadingWhitespace }
                }
                if !addJSONCall(item, keys: keys, at: json.text.startIndex, source: source) { addContent(source ?? json.text) }
            }
            var rest = s[json.end...].trimmingLeadingWhitespace
            if let close {
                if rest.hasPrefix(close) { rest = rest.dropFirst(close.count) } else if isPartial, rest.isPrefix(of: close) { return }
            }
            trailing(rest)
        case .incomplete(let text):
            guard isPartial else {
                keep(text, .unterminatedToolCall, "the list of tool calls is never closed")
                return
            }
            var r = text.dropFirst().trimmingLeadingWhitespace  // "["
            while !r.isEmpty {
                switch jsonExtent(r) {
                case .complete(let end):
                    if let v = try? JSONValue(parsing: String(r[r.startIndex..<end])) {
                        addJSONCall(v, keys: keys, at: r.startIndex, source: r[r.startIndex..<end])
                    }
                    r = r[end...].trimmingLeadingWhitespace
                    if r.hasPrefix(",") { r = r.dropFirst().trimmingLeadingWhitespace }
                case .incomplete:
                    if let (name, args) = partialJSONCall(r, keys: keys) { addPartialCall(name: name, argumentsSoFar: args, id: partialID(r, keys: keys)) }
                    return
                case .invalid:
                    return
                }
            }
        case .invalid(let why):
            keep(s, .invalidArguments, "the tool calls: \(why)")
        }
    }

    // MARK: Formats with their own layout

    mutating func functionaryV31(_ s: Substring) {
        guard let rest = contentUntil(s, markers: ["<function=", "<|python_tag|>"]) else { return }
        if rest.hasPrefix("<|python_tag|>") {
            let code = rest.dropFirst("<|python_tag|>".count)
            _ = addCall(name: "python", arguments: ["code": .string(String(code))], at: code.startIndex)
            return
        }
        delimitedCalls(rest, section: nil, open: "<function=", close: "</function>") { state, inner, closed in
            guard let gt = inner.find(">") else { return !closed }
            let name = String(inner[inner.startIndex..<gt.lowerBound])
            return state.namedArguments(name: name, inner[gt.upperBound...], closed: closed)
        }
    }

    /// `>>>RECIPIENT\nBODY` segments (the first `>>>` is the generation prompt's): `all` is text,
    /// anything else a call whose body is the JSON arguments.
    mutating func functionaryV32(_ s: Substring) {
        var rest = s
        if rest.hasPrefix(">>>") { rest = rest.dropFirst(3) }
        while !rest.isEmpty {
            guard let newline = rest.find("\n") else {
                if !isPartial { addContent(rest) }
                return
            }
            let recipient = String(rest[rest.startIndex..<newline.lowerBound].trimmed)
            let body = rest[newline.upperBound...]
            let next = body.find(">>>")
            let segment = next.map { body[body.startIndex..<$0.lowerBound] } ?? (isPartial ? body.holdingBackPartial([">>>"]) : body)
            let closed = next != nil || !isPartial
            if recipient == "all" {
                addContent(segment)
            } else if recipient == "python", !segment.trimmingLeadingWhitespace.hasPrefix("{") {
                _ = addCall(name: "python", arguments: ["code": .string(String(segment))], at: segment.startIndex)
            } else if !namedArguments(name: recipient, segment, closed: closed), closed {
                keep(segment, .invalidArguments, "the arguments of \(recipient)")
            }
            guard let next else { return }
            rest = body[next.upperBound...]
        }
    }

    mutating func commandR7B(_ s: Substring) {
        guard let rest = contentUntil(s, markers: ["<|START_ACTION|>"]) else {
            unwrapResponse()
            return
        }
        unwrapResponse()
        jsonArrayCalls(rest.dropFirst("<|START_ACTION|>".count), close: "<|END_ACTION|>", keys: .cohere)
    }

    /// Command R7B's content is `<|START_RESPONSE|>...<|END_RESPONSE|>`.
    mutating func unwrapResponse() {
        var c = output.content[...].trimmingLeadingWhitespace
        if isPartial, c.isPrefix(of: "<|START_RESPONSE|>") {
            output.content = ""
            return
        }
        guard c.hasPrefix("<|START_RESPONSE|>") else { return }
        c = c.dropFirst("<|START_RESPONSE|>".count)
        if let end = c.find("<|END_RESPONSE|>") { c = c[c.startIndex..<end.lowerBound] } else if isPartial { c = c.holdingBackPartial(["<|END_RESPONSE|>"]) }
        output.content = String(c)
    }

    mutating func mistral(_ s: Substring) {
        guard var rest = contentUntil(s, markers: ["[TOOL_CALLS]"]) else { return }
        rest = rest.dropFirst("[TOOL_CALLS]".count)
        if rest.trimmingLeadingWhitespace.hasPrefix("[") {
            jsonArrayCalls(rest, close: nil, keys: .standard)
            return
        }
        // NAME[CALL_ID]ID[ARGS]{...}, repeated (each after its own [TOOL_CALLS] or directly).
        while !rest.isEmpty {
            guard let argsTag = rest.find("[ARGS]") else {
                if !isPartial { keep(rest, .unterminatedToolCall, "[TOOL_CALLS] without [ARGS]") }
                return
            }
            var head = rest[rest.startIndex..<argsTag.lowerBound]
            var id: String?
            if let callID = head.find("[CALL_ID]") {
                id = String(head[callID.upperBound...])
                head = head[head.startIndex..<callID.lowerBound]
            }
            let name = String(head.trimmed)
            let args = rest[argsTag.upperBound...]
            switch scanJSON(args) {
            case .value(let json):
                _ = addCall(name: name, arguments: json.value, argumentsText: json.text, id: id, at: args.startIndex)
                rest = args[json.end...].trimmingLeadingWhitespace
                if rest.hasPrefix("[TOOL_CALLS]") { rest = rest.dropFirst("[TOOL_CALLS]".count) } else {
                    if isPartial, rest.isPrefix(of: "[TOOL_CALLS]") { return }
                    if !rest.isEmpty, !(rest.hasPrefix("[") || rest.first?.isLetter == true) {
                        trailing(rest)
                        return
                    }
                    if rest.isEmpty { return }
                }
            case .incomplete(let text):
                if isPartial { addPartialCall(name: name, argumentsSoFar: text, id: id) } else {
                    keep(args, .invalidArguments, "the arguments of \(name) end early")
                }
                return
            case .invalid(let why):
                if isPartial, args.trimmed.isEmpty { addPartialCall(name: name, argumentsSoFar: "", id: id); return }
                keep(args, .invalidArguments, "the arguments of \(name): \(why)")
                return
            }
        }
    }

    mutating func llama3(_ s: Substring) {
        let lead = s.trimmingLeadingWhitespace
        if lead.hasPrefix("{") {
            var rest = lead
            var calls = 0
            while rest.hasPrefix("{") {
                switch scanJSON(rest) {
                case .value(let json):
                    guard json.value["name"]?.stringValue != nil, addJSONCall(json.value, keys: .llama, at: json.text.startIndex, source: json.text) else {
                        if calls == 0 { output.warnings.removeAll(); addContent(s); return }
                        keep(rest, .invalidArguments, "a malformed tool call")
                        return
                    }
                    calls += 1
                    rest = rest[json.end...].trimmingLeadingWhitespace
                    if rest.hasPrefix(";") { rest = rest.dropFirst().trimmingLeadingWhitespace }
                case .incomplete(let text):
                    if isPartial {
                        if let (name, args) = partialJSONCall(text, keys: .llama) { addPartialCall(name: name, argumentsSoFar: args) }
                    } else if calls == 0 { addContent(s) } else { keep(text, .unterminatedToolCall, "a tool call that ends early") }
                    return
                case .invalid:
                    if calls == 0 { addContent(s) } else { trailing(rest) }
                    return
                }
            }
            trailing(rest)
            return
        }
        guard let rest = contentUntil(s, markers: ["<|python_tag|>"]) else { return }
        let call = rest.dropFirst("<|python_tag|>".count)
        if call.trimmingLeadingWhitespace.hasPrefix("{") {
            // As llama.cpp: the tag stays in the content, the JSON call after it is a call.
            addContent(rest[rest.startIndex..<call.startIndex])
            llama3(call)
            return
        }
        // A built-in tool's `NAME.call(...)`: llama.cpp's parser keeps it as content, and so do we.
        addContent(rest)
    }

    /// The whole reply is `{"tool_calls": [...]}`, `{"tool_call": {...}}` or `{"response": ...}`.
    mutating func generic(_ s: Substring) {
        switch scanJSON(s) {
        case .value(let json):
            if let calls = json.value["tool_calls"]?.arrayValue {
                for call in calls { addJSONCall(call, keys: .standard, at: json.text.startIndex) }
            } else if let call = json.value["tool_call"] {
                addJSONCall(call, keys: .standard, at: json.text.startIndex)
            } else if let response = json.value["response"] {
                addContent(response.stringValue.map { $0[...] } ?? response.jsonText[...])
            } else {
                addContent(s)
                return
            }
            trailing(s[json.end...])
        case .incomplete(let text):
            if !isPartial { keep(text, .unterminatedToolCall, "the reply's JSON ends early") }
        case .invalid:
            addContent(s)
        }
    }

    // MARK: Harmony (gpt-oss)

    /// Messages `<|start|>assistant<|channel|>CHANNEL[ to=functions.NAME][ <|constrain|>json]<|message|>BODY`
    /// ended by `<|end|>`, `<|call|>` or `<|return|>`: `analysis` is reasoning, `final` content,
    /// a recipient makes a call with the body as arguments.
    mutating func parseHarmony(_ s: Substring) {
        var rest = s
        let ends = ["<|end|>", "<|call|>", "<|return|>", "<|start|>"]
        while !rest.isEmpty {
            var r = rest
            if r.hasPrefix("<|start|>") { r = r.dropFirst("<|start|>".count) }
            guard let messageTag = r.find("<|message|>") else {
                if isPartial, r.isEmpty || r.find("<|channel|>") != nil || r.isPrefix(of: "<|channel|>") || rest.isPrefix(of: "<|start|>")
                    || r.isPrefix(of: "assistant") || r.hasPrefix("assistant") { return }
                if isPartial, r.hasPrefix(" to=") { return }
                if r.hasPrefix("<|channel|>") || r.hasPrefix("assistant") || r.hasPrefix(" to=") {
                    keep(rest, .unterminatedToolCall, "a harmony header without <|message|>")
                } else {
                    addContent(isPartial ? rest.holdingBackPartial(ends + ["<|channel|>"]) : rest)
                }
                return
            }
            let header = r[r.startIndex..<messageTag.lowerBound]
            // The recipient may stand in the header right after the role:
            // `<|start|>assistant to=functions.NAME<|channel|>commentary json<|message|>`.
            guard header.hasPrefix("<|channel|>") || header.hasPrefix("assistant") || header.hasPrefix(" to=") else {
                addContent(rest)
                return
            }
            var body = r[messageTag.upperBound...]
            var next: Substring?
            var firstEnd: Range<Substring.Index>?
            for e in ends { if let found = body.find(e), firstEnd.map({ found.lowerBound < $0.lowerBound }) ?? true { firstEnd = found } }
            if let firstEnd {
                next = body[firstEnd.upperBound...]
                if body[firstEnd] == "<|start|>" { next = body[firstEnd.lowerBound...] }
                body = body[body.startIndex..<firstEnd.lowerBound]
            } else if isPartial {
                body = body.holdingBackPartial(ends)
            }
            let channel = header.firstMatch(of: /<\|channel\|>(\w+)/).map { String($0.1) } ?? ""
            if let to = header.firstMatch(of: /to=functions\.([^\s<]+)/) {
                let name = String(to.1)
                if !namedArguments(name: name, body, closed: firstEnd != nil || !isPartial), !isPartial {
                    addContent(body)
                }
            } else if channel == "analysis" {
                if parser.reasoning == .auto { output.reasoning += body } else { addContent(body) }
            } else {
                addContent(body)
            }
            guard let n = next else { return }
            rest = n
        }
    }
}
