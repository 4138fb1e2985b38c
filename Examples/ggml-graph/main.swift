// The raw bindings, below llama.cpp: build a small ggml compute graph (a matrix product plus a
// bias), run it on the CPU backend, and check the result against Swift arithmetic.
import Foundation
import Llama
import LlamaRaw

let runtime = try await LlamaRuntime.load()
let c = runtime.raw

let ctx = c.ggml_init(ggml_init_params(mem_size: 16 << 20, mem_buffer: nil, no_alloc: false))!
defer { c.ggml_free(ctx) }
// ggml_mul_mat(a, b) computes b × aᵀ: a is 3×4 (rows of 4), b is 2×4, the result 2×3.
let a = c.ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 4, 3)!
let b = c.ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 4, 2)!
let bias = c.ggml_new_tensor_2d(ctx, GGML_TYPE_F32, 3, 2)!
let aValues: [Float] = (0..<12).map { Float($0) / 2 }
let bValues: [Float] = (0..<8).map { Float($0 % 3) - 1 }
let biasValues: [Float] = (0..<6).map { Float($0) * 10 }
for (tensor, values) in [(a, aValues), (b, bValues), (bias, biasValues)] {
    values.withUnsafeBytes { memcpy(tensor.pointee.data, $0.baseAddress!, $0.count) }
}
let product = c.ggml_add(ctx, c.ggml_mul_mat(ctx, a, b), bias)!
let graph = c.ggml_new_graph(ctx)!
c.ggml_build_forward_expand(graph, product)
let status = try c.ggml_graph_compute_with_ctx(ctx, graph, 2)  // in the CPU backend library: optional
guard status == GGML_STATUS_SUCCESS else { fatalError("ggml_graph_compute_with_ctx failed: \(status)") }

let result = Array(UnsafeBufferPointer(start: product.pointee.data.assumingMemoryBound(to: Float.self), count: 6))
var expected = [Float](repeating: 0, count: 6)
for row in 0..<2 {
    for column in 0..<3 {
        let dot = (0..<4).reduce(Float(0)) { $0 + bValues[row * 4 + $1] * aValues[column * 4 + $1] }
        expected[row * 3 + column] = dot + biasValues[row * 3 + column]
    }
}
print("ggml:  \(result)")
print("Swift: \(expected)")
guard zip(result, expected).allSatisfy({ abs($0 - $1) < 1e-4 }) else { fatalError("ggml and Swift disagree") }
