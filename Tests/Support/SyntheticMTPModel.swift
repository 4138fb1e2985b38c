public import Foundation
public import LlamaRaw

/// A tiny `hy_v3` model with one multi-token-prediction (NextN) layer, written through the bound
/// gguf API: no real MTP model is reachable here. Dense, pure attention: 2 trunk blocks and the
/// NextN block (64 wide, 4 heads, 2 KV heads, feed-forward 128), F32, SmolLM2's tokenizer (every
/// `tokenizer.*` key copied from the given GGUF).
///
/// The weights are rigged so that the MTP head guesses well, not perfectly: the trunk's attention
/// and feed-forward outputs are small beside the token embedding, so the next token depends mostly
/// on the current one and a little on the context; the head's `eh_proj` passes the token's
/// normalized embedding through (identity) with a little noise, and its own block is as small.
/// So the head approximates the target's next-token function, and the context it cannot see makes
/// some guesses fail: both verification paths run.
public enum SyntheticMTPModel {
    public static let width = 64, heads = 4, kvHeads = 2, feedForward = 128, trunkBlocks = 2

    /// Writes the model to `path`; `tokenizer` is a GGUF whose `tokenizer.*` keys are copied.
    /// `context` scales the attention and feed-forward outputs (how much the context moves the
    /// next token), `noise` the head's deviation from the identity.
    public static func write(to path: String, tokenizer: String, seed: UInt64 = 11, context: Float = 0.003,
                             noise: Float = 0.003, symbols c: LlamaSymbols) throws {
        var random = SplitMix64(state: seed)
        guard let source = c.gguf_init_from_file(tokenizer, gguf_init_params(no_alloc: true, ctx: nil)) else {
            throw TestEnvironment.Missing(description: "gguf_init_from_file \(tokenizer) failed")
        }
        guard let gguf = c.gguf_init_empty() else {
            c.gguf_free(source)
            throw TestEnvironment.Missing(description: "gguf_init_empty failed")
        }
        defer { c.gguf_free(gguf) }
        c.gguf_set_kv(gguf, source)
        c.gguf_free(source)
        // Only the tokenizer is wanted: the source's architecture keys and general.* go.
        var foreign: [String] = []
        for i in 0..<c.gguf_get_n_kv(gguf) {
            let key = String(cString: c.gguf_get_key(gguf, i)!)
            if !key.hasPrefix("tokenizer.") { foreign.append(key) }
        }
        for key in foreign { _ = c.gguf_remove_key(gguf, key) }
        let vocab = Int64(c.gguf_get_arr_n(gguf, c.gguf_find_key(gguf, "tokenizer.ggml.tokens")))
        guard vocab > 0 else { throw TestEnvironment.Missing(description: "\(tokenizer) has no tokenizer.ggml.tokens") }

        let arch = "hy_v3"
        func u32(_ key: String, _ v: Int) { c.gguf_set_val_u32(gguf, "\(arch).\(key)", UInt32(v)) }
        c.gguf_set_val_str(gguf, "general.architecture", arch)
        c.gguf_set_val_str(gguf, "general.name", "synthetic hy_v3 with an MTP layer (tests)")
        c.gguf_set_val_u32(gguf, "general.alignment", 32)
        u32("context_length", 4096)
        u32("embedding_length", width)
        u32("block_count", trunkBlocks + 1)
        u32("nextn_predict_layers", 1)
        u32("feed_forward_length", feedForward)
        u32("expert_feed_forward_length", feedForward)
        u32("attention.head_count", heads)
        u32("attention.head_count_kv", kvHeads)
        c.gguf_set_val_f32(gguf, "\(arch).attention.layer_norm_rms_epsilon", 1e-6)
        c.gguf_set_val_f32(gguf, "\(arch).rope.freq_base", 10000)

        enum Fill { case ones, uniform(Float), identityPlus(Float) }
        let e = Int64(width), headWidth = Int64(width / heads), kv = Int64(width / heads * kvHeads), ff = Int64(feedForward)
        var tensors: [(String, [Int64], Fill)] = [
            ("token_embd.weight", [e, vocab], .uniform(1.7)),
            ("output_norm.weight", [e], .ones),
            ("output.weight", [e, vocab], .uniform(1)),
        ]
        for i in 0...trunkBlocks {
            let b = "blk.\(i)"
            tensors += [
                ("\(b).attn_norm.weight", [e], .ones),
                ("\(b).attn_q.weight", [e, e], .uniform(0.5)),
                ("\(b).attn_k.weight", [e, kv], .uniform(0.5)),
                ("\(b).attn_v.weight", [e, kv], .uniform(0.5)),
                ("\(b).attn_output.weight", [e, e], .uniform(context)),
                ("\(b).attn_q_norm.weight", [headWidth], .ones),
                ("\(b).attn_k_norm.weight", [headWidth], .ones),
                ("\(b).ffn_norm.weight", [e], .ones),
                ("\(b).ffn_gate.weight", [e, ff], .uniform(0.5)),
                ("\(b).ffn_up.weight", [e, ff], .uniform(0.5)),
                ("\(b).ffn_down.weight", [ff, e], .uniform(context)),
            ]
        }
        let n = trunkBlocks
        tensors += [
            // concat(enorm(token), hnorm(state)) -> width: the token part through, plus noise.
            ("blk.\(n).nextn.eh_proj.weight", [2 * e, e], .identityPlus(noise)),
            ("blk.\(n).nextn.enorm.weight", [e], .ones),
            ("blk.\(n).nextn.hnorm.weight", [e], .ones),
        ]

        let elements = tensors.reduce(0) { $0 + Int($1.1.reduce(1, *)) }
        let params = ggml_init_params(mem_size: elements * 4 + tensors.count * 1024 + (1 << 16), mem_buffer: nil, no_alloc: false)
        guard let ggml = c.ggml_init(params) else { throw TestEnvironment.Missing(description: "ggml_init failed") }
        defer { c.ggml_free(ggml) }
        for (name, shape, fill) in tensors {
            let t = shape.count == 1 ? c.ggml_new_tensor_1d(ggml, GGML_TYPE_F32, shape[0])
                : c.ggml_new_tensor_2d(ggml, GGML_TYPE_F32, shape[0], shape[1])
            guard let t, let data = t.pointee.data else { throw TestEnvironment.Missing(description: "ggml_new_tensor failed") }
            _ = c.ggml_set_name(t, name)
            let values = data.assumingMemoryBound(to: Float.self)
            let rows = Int(shape[0])
            for i in 0..<Int(shape.reduce(1, *)) {
                switch fill {
                case .ones: values[i] = 1
                case .uniform(let scale): values[i] = random.weight(scale)
                // Element (input i % rows, output i / rows).
                case .identityPlus(let scale): values[i] = (i % rows == i / rows ? 1 : 0) + random.weight(scale)
                }
            }
            c.gguf_add_tensor(gguf, t)
        }
        guard c.gguf_write_to_file(gguf, path, false) else {
            throw TestEnvironment.Missing(description: "gguf_write_to_file \(path) failed")
        }
    }
}
