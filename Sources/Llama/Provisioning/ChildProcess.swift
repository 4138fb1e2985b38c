import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A child process whose stdout and stderr come back through one pipe, started with posix_spawn
/// and a clean signal state: threads of a Swift program (the concurrency pool, NIO) block most
/// signals, and a child inheriting that mask never sees SIGCHLD — cmake then waits forever for
/// its own children.
final class ChildProcess: Sendable {
    struct SpawnError: Error, CustomStringConvertible {
        var description: String
    }

    let pid: pid_t
    private let output: Int32

    /// - Parameters:
    ///   - errorFile: where the child's stderr goes (default: with stdout, into the pipe).
    ///   - attached: the child shares this process's standard streams (nothing comes back through `read`).
    init(_ executable: String, _ arguments: [String], errorFile: URL? = nil, attached: Bool = false) throws(SpawnError) {
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { throw SpawnError(description: "pipe: \(String(cString: strerror(errno)))") }
        #if canImport(Glibc)
        var actions = posix_spawn_file_actions_t()
        var attributes = posix_spawnattr_t()
        #else
        var actions: posix_spawn_file_actions_t? = nil
        var attributes: posix_spawnattr_t? = nil
        #endif
        posix_spawn_file_actions_init(&actions)
        if !attached {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
            posix_spawn_file_actions_adddup2(&actions, fds[1], 1)
        }
        if attached {
        } else if let errorFile {
            posix_spawn_file_actions_addopen(&actions, 2, errorFile.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, fds[1], 2)
        }
        posix_spawn_file_actions_addclose(&actions, fds[0])
        posix_spawn_file_actions_addclose(&actions, fds[1])
        #if canImport(Glibc)
        // Nothing else of this process leaks into the child (pipes held open would keep a
        // reader of ours, or of our parent, waiting for an end that never comes).
        // (glibc 2.34+; declared only under _GNU_SOURCE, so found by name.)
        typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
        if let closeFrom = dlsym(dlopen(nil, RTLD_NOW), "posix_spawn_file_actions_addclosefrom_np") {
            _ = unsafeBitCast(closeFrom, to: CloseFrom.self)(&actions, 3)
        }
        #endif
        posix_spawnattr_init(&attributes)
        var none = sigset_t(), all = sigset_t()
        sigemptyset(&none)
        sigfillset(&all)
        posix_spawnattr_setsigmask(&attributes, &none)
        posix_spawnattr_setsigdefault(&attributes, &all)
        // Its own process group, so that stopping it stops what it started too.
        posix_spawnattr_setpgroup(&attributes, 0)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP))
        defer {
            posix_spawn_file_actions_destroy(&actions)
            posix_spawnattr_destroy(&attributes)
        }
        let argv: [UnsafeMutablePointer<CChar>?] = ([executable] + arguments).map { strdup($0) } + [nil]
        defer { for p in argv { free(p) } }
        var pid: pid_t = 0
        let status = posix_spawn(&pid, executable, &actions, &attributes, argv, environ)
        close(fds[1])
        guard status == 0 else {
            close(fds[0])
            throw SpawnError(description: String(cString: strerror(status)))
        }
        self.pid = pid
        self.output = fds[0]
    }

    /// The next output, empty at the end.
    func read() -> Data? {
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = Foundation.read(output, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            return n > 0 ? Data(buffer[0..<n]) : Data()
        }
    }

    /// Reads to the end of the output, calling `chunk` with each piece as it comes and `line`
    /// with each complete line (without its newline).
    func readLines(chunk: (Data) -> Void = { _ in }, line: (Data) -> Void) {
        var pending = Data()
        while let piece = read(), !piece.isEmpty {
            chunk(piece)
            pending.append(piece)
            while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                line(Data(pending[pending.startIndex..<newline]))
                pending = Data(pending[pending.index(after: newline)...])
            }
        }
    }

    /// Everything the child writes, until it closes its output.
    func readToEnd() -> Data {
        var data = Data()
        while let piece = read(), !piece.isEmpty { data.append(piece) }
        return data
    }

    /// Waits for the exit; the exit status, or 128 + the signal that ended it.
    func wait() -> Int32 {
        close(output)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let signal = status & 0x7F
        return signal == 0 ? (status >> 8) & 0xFF : 128 + signal
    }

    /// SIGTERM to the child and everything it started.
    func terminate() {
        kill(-pid, SIGTERM)
    }

    /// SIGKILL to the child and everything it started.
    func forceKill() {
        kill(-pid, SIGKILL)
    }
}
