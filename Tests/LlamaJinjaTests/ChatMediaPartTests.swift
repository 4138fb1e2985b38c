import Foundation
import LlamaChat
import LlamaJinja
import Testing

/// Image and audio content parts: OpenAI's JSON read into typed parts and written back, and
/// rendered for templates as llama.cpp's server renders them (the media marker where each goes).
@Suite("Chat media parts: OpenAI JSON and template rendering")
struct ChatMediaPartTests {
    static let png = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3])
    static let wav = Data("RIFF....WAVEfmt ".utf8)

    static let message = """
        {"role":"user","content":[{"type":"text","text":"Look:"},\
        {"type":"image_url","image_url":{"url":"data:image/png;base64,\(png.base64EncodedString())","detail":"low"}},\
        {"type":"image_url","image_url":{"url":"https://example.com/cat.jpg"}},\
        {"type":"input_audio","input_audio":{"data":"\(wav.base64EncodedString())","format":"wav"}},\
        {"type":"text","text":"now"},{"type":"file","file":{"file_id":"f1"}}]}
        """

    @Test("image_url (data: and https: URLs, detail) and input_audio decode to typed parts and encode back to the same JSON")
    func roundTrip() throws {
        let json = try JSONValue(parsing: Self.message)
        let message = try ChatMessage(json: json)
        guard case .parts(let parts) = message.content else { Issue.record("no parts"); return }
        #expect(parts.count == 6)
        #expect(parts[0] == .text("Look:"))
        #expect(parts[1] == .image(ChatMedia(data: Self.png, format: "image/png", detail: "low")))
        #expect(parts[2] == .image(ChatMedia(url: "https://example.com/cat.jpg")))
        #expect(parts[3] == .audio(ChatMedia(data: Self.wav, format: "wav")))
        #expect(parts[5] == .other(try JSONValue(parsing: #"{"type":"file","file":{"file_id":"f1"}}"#)))
        #expect(message.content.media.count == 3)
        #expect(message.openAIValue == json)

        // Codable gives the same parts (Foundation's coders do not keep the order of keys, which `.other` holds).
        let decoded = try JSONDecoder().decode(ChatMessage.self, from: Data(Self.message.utf8))
        guard case .parts(let decodedParts) = decoded.content else { Issue.record("no parts"); return }
        #expect(Array(decodedParts.prefix(5)) == Array(parts.prefix(5)))
        let again = try ChatMessage(json: try JSONValue(parsing: try JSONEncoder().encode(decoded)))
        guard case .parts(let againParts) = again.content else { Issue.record("no parts"); return }
        #expect(Array(againParts.prefix(5)) == Array(parts.prefix(5)))
    }

    @Test("malformed media: not base64, a data: URL of another kind or not base64, no data: .invalidMedia")
    func malformed() throws {
        let bad = [
            #"{"type":"image_url","image_url":{"url":"data:image/png;base64,@@@not base64@@@"}}"#,
            #"{"type":"image_url","image_url":{"url":"data:text/plain;base64,aGVsbG8="}}"#,
            #"{"type":"image_url","image_url":{"url":"data:image/png,rawbytes"}}"#,
            #"{"type":"image_url","image_url":{"url":"data:image/png;base64,"}}"#,
            #"{"type":"image_url","image_url":{}}"#,
            #"{"type":"input_audio","input_audio":{"format":"wav"}}"#,
            #"{"type":"input_audio","input_audio":{"data":"!!!!","format":"wav"}}"#,
            #"{"type":"input_audio","input_audio":{"data":"data:image/png;base64,aGVsbG8="}}"#,
        ]
        for text in bad {
            let error = #expect(throws: ChatFormatError.self, "\(text)") { try ChatContentPart(json: try JSONValue(parsing: text)) }
            #expect(error?.code == .invalidMedia, "\(text)")
        }
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(ChatContentPart.self, from: Data(bad[0].utf8))
        }
    }

    @Test("templates see content with media as text: the marker where each medium goes, no line break next to it")
    func rendering() throws {
        let template = try ChatTemplate("{% for m in messages %}[{{ m.role }}]{{ m.content }}\n{% endfor %}")
        let message = try ChatMessage(json: try JSONValue(parsing: Self.message))
        let rendered = try template.render(messages: [message], addGenerationPrompt: false, mediaMarker: "<M>")
        // llama.cpp's rule: text parts joined by a line break, none before or after a marker; other parts left out.
        #expect(rendered == "[user]Look:<M><M><M>now\n")
        #expect(try template.render(messages: [message], addGenerationPrompt: false) == "[user]Look:<__media__><__media__><__media__>now\n")
        let texts = ChatMessage(role: "user", content: .parts([.text("a"), .text("b"), .image(ChatMedia(url: "file:///x.png")), .text("c")]))
        #expect(texts.content.text(mediaMarker: "<M>") == "a\nb<M>c")
        // Without media, parts stay a list (templates that index them keep working).
        let plain = ChatMessage(role: "user", content: .parts([.text("a"), .text("b")]))
        #expect(plain.templateValue["content"]?.arrayValue?.count == 2)
    }
}
