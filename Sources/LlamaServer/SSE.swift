import Hummingbird
import Llama
import NIOCore

/// A write to the client failed (it went away): the stream ends and its slot is freed.
struct SSEWriteError: Error {
    var underlying: any Error
}

/// Server-sent events on a response body: `data: <json>\n\n` lines, ending `data: [DONE]`.
struct SSEWriter {
    var inner: any ResponseBodyWriter

    mutating func send(_ text: String) async throws {
        do { try await inner.write(ByteBuffer(string: text)) } catch { throw SSEWriteError(underlying: error) }
    }

    mutating func event(_ value: JSONValue) async throws { try await send("data: \(value.jsonText)\n\n") }

    /// An error as the last event (OpenAI's shape), then `[DONE]`.
    mutating func error(_ error: APIError) async throws {
        try await event(error.json)
        try await done()
    }

    mutating func done() async throws { try await send("data: [DONE]\n\n") }
}

extension ServerCore {
    /// A streaming response whose events `body` writes.
    func sse(_ body: @escaping @Sendable (inout SSEWriter) async throws -> Void) -> Response {
        var headers: HTTPFields = [:]
        headers[.contentType] = "text/event-stream"
        headers[.cacheControl] = "no-cache"
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var sse = SSEWriter(inner: writer)
            try await body(&sse)
            try await sse.inner.finish(nil)
        })
    }
}
