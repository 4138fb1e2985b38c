import SwiftCompilerPlugin
import SwiftSyntaxMacros

@main
struct LlamaGenerablePlugin: CompilerPlugin {
    let providingMacros: [any Macro.Type] = [GenerableMacro.self, GuideMacro.self]
}
