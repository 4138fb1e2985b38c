// The C API as llama.cpp declares it, through the generated symbol table (no Llama layer).
import Foundation
import LlamaRaw

let directory = ProcessInfo.processInfo.environment["LLAMA_SWIFT_LIB_DIR"] ?? "/path/to/llama-b11434"
let modelPath = ProcessInfo.processInfo.environment["LLAMA_MODEL"] ?? "model.gguf"

// snippet.show
let llama = try LlamaLibraries.load(from: URL(fileURLWithPath: directory))
let c = llama.symbols
let model = c.llama_model_load_from_file(modelPath, c.llama_model_default_params())
defer { c.llama_model_free(model) }
print("parameters:", c.llama_model_n_params(model))
// snippet.end
