import ArgumentParser

/// The `llama-swift` command-line tool.
@main
struct LlamaSwift: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "llama-swift",
        abstract: "Run llama.cpp models from Swift.",
        subcommands: [Run.self, Chat.self, Embed.self, Bench.self, Devices.self, Libs.self, Models.self, API.self, GGUF.self, RPC.self, Template.self, Grammar.self, Serve.self, Quantize.self, Perplexity.self])
}
