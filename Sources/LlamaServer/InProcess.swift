import Foundation
import Hummingbird
import HTTPTypes
import Llama
import NIOCore

extension LlamaServer {
    /// Handles one POST body as the HTTP server would (routing, JSON, validation, generation,
    /// OpenAI-shaped errors) without a socket, and returns the status and the body (for a stream,
    /// every event). For fuzzing and tests: no API key or body-size check, no CORS.
    @_spi(Testing) public func respond(path: String, body: [UInt8]) async -> (status: Int, body: String) {
        let responder = Responder(core: core)
        var response: Response
        do {
            guard Responder.generationRoutes.contains(path) || Responder.postRoutes.contains(path) else {
                throw APIError(.notFound, "no endpoint POST \(path)", type: "not_found_error", code: "not_found")
            }
            response = try await responder.dispatch(path, try Responder.parseJSON(body), arrival: .now)
        } catch let e as APIError {
            response = ServerCore.error(e)
        } catch {
            response = ServerCore.error(APIError.from(error))
        }
        let collected = CollectedBody()
        do { try await response.body.write(CollectingWriter(into: collected)) } catch {
            return (Int(response.status.code), collected.text + "\n(the body ended with \(error))")
        }
        return (Int(response.status.code), collected.text)
    }
}

/// The bytes a response body wrote.
private final class CollectedBody: @unchecked Sendable {
    var buffer = ByteBuffer()
    var text: String { String(buffer: buffer) }
}

private struct CollectingWriter: ResponseBodyWriter {
    let into: CollectedBody

    mutating func write(_ buffer: ByteBuffer) async throws {
        var b = buffer
        into.buffer.writeBuffer(&b)
    }

    consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
}
