import ArgumentParser
import Dispatch
import Foundation
import Llama

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `llama-swift rpc`: serve this machine's devices to other machines over ggml's RPC backend.
struct RPC: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rpc", abstract: "Serve this machine's devices to llama-swift clients (--rpc host:port).",
        subcommands: [Serve.self])

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run ggml's RPC server on this machine's devices until interrupted.",
            discussion: """
                The RPC protocol has no authentication and no encryption: anyone who reaches the \
                port can use the devices and read what they compute. The server binds to 127.0.0.1 \
                unless --allow-remote is given with another --host.
                """)
        @Option(help: "The address to bind.")
        var host = "127.0.0.1"
        @Option(help: "The port.")
        var port: UInt16 = 50052
        @Option(name: [.short, .long], help: "CPU threads for the computation.")
        var threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
        @Option(name: .customLong("device"), help: "A device index to serve (from `llama-swift devices`); repeat for several (default: the GPUs, else the CPU).")
        var devices: [Int] = []
        @Option(help: "A folder where the server caches tensors it receives (faster reloads).")
        var tensorCache: String?
        @Flag(help: "Allow binding to an address other than loopback.")
        var allowRemote = false
        @Option(help: "The folder of an unpacked llama.cpp release to load (default: as `run`).")
        var libDir: String?
        @OptionGroup var install: InstallFlags

        func validate() throws {
            guard let endpoint = LlamaRPCEndpoint("\(host):\(port)") else { throw ValidationError("--host \(host) is not an address") }
            if !endpoint.isLoopback && !allowRemote {
                throw ValidationError("refusing to serve on \(host): the RPC protocol has no authentication. Bind to 127.0.0.1, "
                    + "or pass --allow-remote on a trusted network only")
            }
            guard threads > 0 else { throw ValidationError("--threads must be positive") }
        }

        func run() async throws {
            let endpoint = LlamaRPCEndpoint("\(host):\(port)")!
            if !endpoint.isLoopback {
                CLI.note("warning: serving on \(endpoint) without authentication: only do this on a trusted network")
            }
            let runtime = try await CLI.loadRuntime(libDir: libDir, options: install.options())
            let chosen: [LlamaDevice]
            if devices.isEmpty {
                let all = runtime.devices, gpus = all.filter(\.isGPU)
                chosen = gpus.isEmpty ? all.filter { $0.kind == .cpu } : gpus
            } else {
                chosen = try CLI.devices(devices, of: runtime)
            }
            // A clean stop on SIGINT / SIGTERM: the server has no stop call, so the process ends.
            for sig in [SIGINT, SIGTERM] {
                signal(sig, SIG_IGN)
                let source = DispatchSource.makeSignalSource(signal: sig, queue: .main)
                source.setEventHandler {
                    CLI.note("rpc: stopping the server on \(endpoint)")
                    Foundation.exit(0)
                }
                source.resume()
                Self.sources.append(source)
            }
            CLI.note("rpc: serving \(chosen.map { "\($0.name) (\($0.description))" }.joined(separator: ", ")) on \(endpoint)")
            let cache = tensorCache.map { URL(fileURLWithPath: $0) }
            let threads = threads
            Thread.detachNewThread {
                do {
                    try runtime.serveRPC(endpoint: endpoint, devices: chosen, threads: threads, cacheDirectory: cache)
                } catch {
                    CLI.note("error: \(error)")
                    Foundation.exit(1)
                }
            }
            while true { try await Task.sleep(for: .seconds(3600)) }
        }

        nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
    }
}
