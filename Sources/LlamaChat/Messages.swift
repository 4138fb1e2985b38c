public import Foundation
public import LlamaJinja

/// One message of a conversation, in the shape OpenAI-style chat APIs use: a role, content as
/// text or parts, and for assistants the tool calls they made and their reasoning; for tool
/// results, the call they answer.
public struct ChatMessage: Sendable, Equatable, Codable {
    /// `system`, `user`, `assistant`, `tool` (or any role a template knows, e.g. `developer`).
    public var role: String
    /// The message's content: text, parts, or none.
    public var content: ChatContent
    /// A participant's name (`name`), or a tool result's tool name.
    public var name: String?
    /// The calls an assistant message makes (`tool_calls`).
    public var toolCalls: [ToolCall]
    /// For a tool result: the id of the call it answers (`tool_call_id`).
    public var toolCallID: String?
    /// An assistant's thinking, apart from its answer (`reasoning_content`).
    public var reasoning: String?

    /// A message; every parameter is the property of the same name.
    public init(role: String, content: ChatContent = .text(""), name: String? = nil, toolCalls: [ToolCall] = [],
                toolCallID: String? = nil, reasoning: String? = nil) {
        self.role = role
        self.content = content
        self.name = name
        self.toolCalls = toolCalls
        self.toolCallID = toolCallID
        self.reasoning = reasoning
    }

    /// A message of a role with text content.
    public init(role: String, content: String) { self.init(role: role, content: .text(content)) }

    /// A system message.
    public static func system(_ content: String) -> ChatMessage { ChatMessage(role: "system", content: content) }
    /// A user message.
    public static func user(_ content: String) -> ChatMessage { ChatMessage(role: "user", content: content) }
    /// An assistant message, with the tool calls it makes and its reasoning.
    public static func assistant(_ content: String, toolCalls: [ToolCall] = [], reasoning: String? = nil) -> ChatMessage {
        ChatMessage(role: "assistant", content: .text(content), toolCalls: toolCalls, reasoning: reasoning)
    }
    /// A tool's result, answering the call `id`.
    public static func tool(_ content: String, callID: String?, name: String? = nil) -> ChatMessage {
        ChatMessage(role: "tool", content: .text(content), name: name, toolCallID: callID)
    }

    /// The text of the content: the text itself, or its text parts joined.
    public var text: String { content.text }

    enum CodingKeys: String, CodingKey {
        case role, content, name
        case toolCalls = "tool_calls"
        case toolCallID = "tool_call_id"
        case reasoning = "reasoning_content"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        role = try c.decode(String.self, forKey: .role)
        content = try c.decodeIfPresent(ChatContent.self, forKey: .content) ?? .none
        name = try c.decodeIfPresent(String.self, forKey: .name)
        toolCalls = try c.decodeIfPresent([ToolCall].self, forKey: .toolCalls) ?? []
        toolCallID = try c.decodeIfPresent(String.self, forKey: .toolCallID)
        reasoning = try c.decodeIfPresent(String.self, forKey: .reasoning)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(role, forKey: .role)
        try c.encode(content, forKey: .content)
        try c.encodeIfPresent(name, forKey: .name)
        if !toolCalls.isEmpty { try c.encode(toolCalls, forKey: .toolCalls) }
        try c.encodeIfPresent(toolCallID, forKey: .toolCallID)
        try c.encodeIfPresent(reasoning, forKey: .reasoning)
    }
}

/// A message's content: text, a list of parts, or none (an assistant message that only calls tools).
public enum ChatContent: Sendable, Equatable, Codable, ExpressibleByStringLiteral {
    /// Text.
    case text(String)
    /// A list of parts (OpenAI's content array).
    case parts([ChatContentPart])
    /// No content (`null`): an assistant message that only calls tools.
    case none

    public init(stringLiteral value: String) { self = .text(value) }

    /// Whether a part is an image or audio clip.
    public var hasMedia: Bool { media.isEmpty == false }

    /// The images and audio clips, in order.
    public var media: [ChatContentPart] {
        guard case .parts(let parts) = self else { return [] }
        return parts.filter { $0.media != nil }
    }

    /// The content as text the way llama.cpp's server renders content with media: text parts
    /// joined with a line break, `mediaMarker` where each image or audio clip goes, and no line
    /// break before or after a marker. Other parts are left out.
    public func text(mediaMarker: String) -> String {
        guard case .parts(let parts) = self else { return text }
        var out = "", lastWasMedia = false
        for part in parts {
            switch part {
            case .text(let t):
                if !lastWasMedia && !out.isEmpty { out += "\n" }
                out += t
                lastWasMedia = false
            case .image, .audio:
                out += mediaMarker
                lastWasMedia = true
            case .other: continue
            }
        }
        return out
    }

    /// The content in OpenAI's JSON shape: a string, an array of parts, or null.
    public var jsonValue: JSONValue {
        switch self {
        case .text(let s): return .string(s)
        case .parts(let parts): return .array(parts.map(\.jsonValue))
        case .none: return .null
        }
    }

    /// The text, or the text parts joined; empty for none.
    public var text: String {
        switch self {
        case .text(let s): return s
        case .parts(let parts): return parts.compactMap { if case .text(let t) = $0 { return t } else { return nil } }.joined()
        case .none: return ""
        }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .none } else if let s = try? c.decode(String.self) { self = .text(s) } else {
            self = .parts(try c.decode([ChatContentPart].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .text(let s): try c.encode(s)
        case .parts(let p): try c.encode(p)
        case .none: try c.encodeNil()
        }
    }
}

/// One part of a message's content: text, an image, an audio clip, or a part of another type
/// kept as the JSON it was given so that nothing is lost.
public enum ChatContentPart: Sendable, Equatable, Codable {
    /// A text part (`{"type": "text", "text": ...}`).
    case text(String)
    /// An image (`{"type": "image_url", "image_url": {"url": "data:image/png;base64,..." or "https://...", "detail": ...}}`).
    case image(ChatMedia)
    /// An audio clip (`{"type": "input_audio", "input_audio": {"data": BASE64, "format": "wav"}}`).
    case audio(ChatMedia)
    /// Any other part (`file`, `input_video`, ...), kept as its JSON object.
    case other(JSONValue)

    public init(from decoder: any Decoder) throws {
        let value = try JSONValue(from: decoder)
        do { self = try ChatContentPart(json: value) } catch {
            throw DecodingError.dataCorrupted(DecodingError.Context(codingPath: decoder.codingPath, debugDescription: error.message))
        }
    }

    public func encode(to encoder: any Encoder) throws { try jsonValue.encode(to: encoder) }

    /// The part as OpenAI's JSON shape (media as base64 `data:` URLs or their URL).
    public var jsonValue: JSONValue {
        switch self {
        case .text(let t): return ["type": "text", "text": .string(t)]
        case .image(let m):
            var o: JSONObject = ["url": .string(m.urlText)]
            if let detail = m.detail { o["detail"] = .string(detail) }
            return ["type": "image_url", "image_url": .object(o)]
        case .audio(let m):
            var o = JSONObject()
            switch m.source {
            case .data(let data, let format):
                o["data"] = .string(data.base64EncodedString())
                if let format { o["format"] = .string(format) }
            case .url(let url): o["url"] = .string(url)
            }
            return ["type": "input_audio", "input_audio": .object(o)]
        case .other(let v): return v
        }
    }

    /// The image or audio clip of a media part.
    public var media: ChatMedia? {
        switch self {
        case .image(let m), .audio(let m): return m
        case .text, .other: return nil
        }
    }

    /// Reads a part in OpenAI's shape: `text`, `image_url` (a base64 `data:image/...` URL or an
    /// http(s)/file URL, and `detail`), `input_audio` (base64 `data` and `format`); other types
    /// are kept as `.other`. Malformed media (not base64, a `data:` URL of another kind) are
    /// `.invalidMedia`.
    public init(json p: JSONValue) throws(ChatFormatError) {
        switch p["type"]?.stringValue {
        case "text":
            guard let t = p["text"]?.stringValue else { throw ChatFormatError(.invalidMessage, "a text part needs a string \"text\"") }
            self = .text(t)
        case "image_url":
            // OpenAI sends {"url": ...}; some clients send the URL itself.
            let field = p["image_url"]
            guard let url = field?["url"]?.stringValue ?? field?.stringValue else {
                throw ChatFormatError(.invalidMedia, "an image_url part needs \"image_url\": {\"url\": \"data:image/...;base64,...\" or an http(s) URL}")
            }
            var media = try ChatMedia(url: url, expecting: "image")
            media.detail = field?["detail"]?.stringValue
            self = .image(media)
        case "input_audio":
            guard let audio = p["input_audio"]?.objectValue else {
                throw ChatFormatError(.invalidMedia, "an input_audio part needs \"input_audio\": {\"data\": BASE64, \"format\": \"wav\" or \"mp3\"}")
            }
            let format = audio["format"]?.stringValue
            if let data = audio["data"]?.stringValue {
                if data.hasPrefix("data:") {
                    self = .audio(try ChatMedia(url: data, expecting: "audio"))
                } else {
                    self = .audio(ChatMedia(data: try ChatMedia.base64(data), format: format))
                }
            } else if let url = audio["url"]?.stringValue {
                self = .audio(try ChatMedia(url: url, expecting: "audio"))
            } else {
                throw ChatFormatError(.invalidMedia, "an input_audio part needs \"data\": the audio file's bytes in base64")
            }
        default:
            self = .other(p)
        }
    }
}

/// An image or audio clip of a message: its bytes (with their MIME type or audio format), or
/// a URL to fetch them from. Models read them through a multimodal projector (`mmproj`).
public struct ChatMedia: Sendable, Hashable {
    /// Where the media's bytes are.
    public enum Source: Sendable, Hashable {
        /// The file's bytes, and their format: a MIME type for images (`image/png`), OpenAI's
        /// audio format for audio (`wav`, `mp3`); nil when not known. Decoders read the bytes
        /// themselves, so the format is informative.
        case data(Data, format: String?)
        /// A URL (`https://...`, `file:///...`) whose content is the media.
        case url(String)
    }

    /// The bytes or URL.
    public var source: Source
    /// OpenAI's `detail` of an image (`auto`, `low`, `high`), kept as given.
    public var detail: String?

    /// libmtmd's default media marker: the text that stands for a media item in a rendered prompt.
    public static let defaultMarker = "<__media__>"

    /// Media from the bytes of an image or audio file.
    public init(data: Data, format: String? = nil, detail: String? = nil) {
        source = .data(data, format: format)
        self.detail = detail
    }

    /// Media at a URL.
    public init(url: String, detail: String? = nil) {
        source = .url(url)
        self.detail = detail
    }

    /// Reads a `data:<kind>/...;base64,...` URL into its bytes; keeps other URLs as URLs.
    init(url: String, expecting kind: String) throws(ChatFormatError) {
        guard url.hasPrefix("data:") else {
            guard !url.isEmpty else { throw ChatFormatError(.invalidMedia, "the media URL is empty") }
            self.init(url: url)
            return
        }
        guard let comma = url.firstIndex(of: ",") else {
            throw ChatFormatError(.invalidMedia, "a data: URL needs a comma before its base64 data (data:\(kind)/...;base64,...)")
        }
        let header = url[url.index(url.startIndex, offsetBy: 5)..<comma]
        guard header.hasSuffix(";base64") else {
            throw ChatFormatError(.invalidMedia, "the data: URL must be base64-encoded (data:\(kind)/...;base64,...), not \"data:\(header)\"")
        }
        let mime = String(header.dropLast(";base64".count))
        guard mime.hasPrefix(kind + "/") else {
            throw ChatFormatError(.invalidMedia, "expected \(kind) data (data:\(kind)/...;base64,...), not \"\(mime.isEmpty ? "no MIME type" : mime)\"")
        }
        self.init(data: try Self.base64(url[url.index(after: comma)...]), format: mime)
    }

    /// Decodes base64 text (whitespace and line breaks allowed); empty or malformed is `.invalidMedia`.
    static func base64(_ text: some StringProtocol) throws(ChatFormatError) -> Data {
        let compact = text.filter { !$0.isWhitespace }
        guard !compact.isEmpty else { throw ChatFormatError(.invalidMedia, "the media data is empty") }
        guard let data = Data(base64Encoded: String(compact)) else {
            throw ChatFormatError(.invalidMedia, "the media data is not valid base64")
        }
        return data
    }

    /// The media as the URL OpenAI's `image_url` carries: a base64 `data:` URL, or the URL itself.
    public var urlText: String {
        switch source {
        case .data(let data, let format): return "data:\(format ?? "application/octet-stream");base64,\(data.base64EncodedString())"
        case .url(let url): return url
        }
    }
}

/// A call an assistant makes to a tool: its id, the tool's name, and the arguments as JSON text.
public struct ToolCall: Sendable, Equatable, Codable {
    /// The call's id, when the model or format gives one (`call_...`).
    public var id: String?
    /// The tool called.
    public var name: String
    /// The arguments, a JSON object as text (what OpenAI's API carries).
    public var arguments: String

    /// A call with its arguments as JSON text, or as a JSON value written compactly.
    public init(id: String? = nil, name: String, arguments: String) {
        self.id = id
        self.name = name
        self.arguments = arguments
    }

    /// A call with its arguments as JSON text, or as a JSON value written compactly.
    public init(id: String? = nil, name: String, arguments: JSONValue) {
        self.init(id: id, name: name, arguments: arguments.jsonText)
    }

    enum CodingKeys: String, CodingKey { case id, type, function }
    enum FunctionKeys: String, CodingKey { case name, arguments }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decodeIfPresent(String.self, forKey: .id)
        let f = try c.nestedContainer(keyedBy: FunctionKeys.self, forKey: .function)
        name = try f.decode(String.self, forKey: .name)
        // OpenAI sends a string; some clients send the object itself.
        if let s = try? f.decode(String.self, forKey: .arguments) { arguments = s } else {
            arguments = try f.decodeIfPresent(JSONValue.self, forKey: .arguments)?.jsonText ?? "{}"
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encodeIfPresent(id, forKey: .id)
        try c.encode("function", forKey: .type)
        var f = c.nestedContainer(keyedBy: FunctionKeys.self, forKey: .function)
        try f.encode(name, forKey: .name)
        try f.encode(arguments, forKey: .arguments)
    }
}

/// A tool the model may call: a name, what it does, and a JSON Schema of its parameters.
public struct ToolDefinition: Sendable, Equatable, Codable {
    /// The tool's name, as the model calls it.
    public var name: String
    /// What the tool does, for the model.
    public var description: String?
    /// A JSON Schema of the arguments object.
    public var parameters: JSONValue

    /// A tool definition; `parameters` is the JSON Schema of its arguments (an object schema).
    public init(name: String, description: String? = nil, parameters: JSONValue = ["type": "object", "properties": [:]]) {
        self.name = name
        self.description = description
        self.parameters = parameters
    }

    enum CodingKeys: String, CodingKey { case type, function }
    enum FunctionKeys: String, CodingKey { case name, description, parameters }

    /// Reads OpenAI's `{"type":"function","function":{...}}` shape, or the bare function object.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let f = c.contains(.function) ? try c.nestedContainer(keyedBy: FunctionKeys.self, forKey: .function)
            : try decoder.container(keyedBy: FunctionKeys.self)
        name = try f.decode(String.self, forKey: .name)
        description = try f.decodeIfPresent(String.self, forKey: .description)
        parameters = try f.decodeIfPresent(JSONValue.self, forKey: .parameters) ?? ["type": "object", "properties": [:]]
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode("function", forKey: .type)
        var f = c.nestedContainer(keyedBy: FunctionKeys.self, forKey: .function)
        try f.encode(name, forKey: .name)
        try f.encodeIfPresent(description, forKey: .description)
        try f.encode(parameters, forKey: .parameters)
    }
}
