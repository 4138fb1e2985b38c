// LlamaRaw is the C API in Swift: its users need the C types (llama_token, llama_batch, the
// enums and constants), so the generated declarations come with it.
@_exported public import CLlama
