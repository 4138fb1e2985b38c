// llama-helper: runs, in a process of its own, what the Llama library must not risk in its
// user's process (loading a GPU build first, the first contact with an RPC server, generation
// over RPC). It reads one request line (HelperRequest, JSON) on stdin and writes response lines
// (HelperResponse, JSON) on stdout; logs go to stderr. See LlamaHelper in the library.
import Foundation
import Llama
import Logging
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Standard output carries the protocol and nothing else: it is kept on a descriptor of its own,
// and whatever else writes to descriptor 1 (a library's printf) goes to stderr.
let protocolDescriptor = dup(STDOUT_FILENO)
guard protocolDescriptor >= 0, dup2(STDERR_FILENO, STDOUT_FILENO) >= 0 else {
    FileHandle.standardError.write(Data("llama-helper: cannot set up its output: \(String(cString: strerror(errno)))\n".utf8))
    exit(3)
}

LoggingSystem.bootstrap { label in
    var handler = StreamLogHandler.standardError(label: label)
    handler.logLevel = ProcessInfo.processInfo.environment["LLAMA_SWIFT_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .warning
    return handler
}

// A closed pipe is an error from write, not the end of the process.
signal(SIGPIPE, SIG_IGN)

let writing = Mutex(protocolDescriptor)

/// Writes one response line, whole.
@Sendable func send(_ response: HelperResponse) {
    var line: Data
    do { line = try LlamaHelperProtocol.encode(response) } catch {
        let failure = HelperResponse(.failure(.init(code: .helperProtocol, message: "an answer could not be written: \(error.message)")))
        line = (try? LlamaHelperProtocol.encode(failure)) ?? Data()
    }
    line.append(UInt8(ascii: "\n"))
    writing.withLock { fd in
        line.withUnsafeBytes { buffer in
            var written = 0
            while written < buffer.count {
                let n = write(fd, buffer.baseAddress! + written, buffer.count - written)
                if n < 0 && errno == EINTR { continue }
                // The library is gone (it closed the pipe): nothing more to say.
                guard n > 0 else { exit(4) }
                written += n
            }
        }
    }
}

guard let request = readLine(strippingNewline: true) else {
    send(HelperResponse(.failure(.init(code: .helperProtocol, message: "no request on standard input: llama-helper reads one "
        + "HelperRequest line (it is started by the Llama library, not by hand)"))))
    exit(2)
}
exit(await LlamaHelperService.answer(Data(request.utf8), send: send))
