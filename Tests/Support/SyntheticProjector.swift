public import Foundation
public import LlamaRaw

/// Small projector GGUFs written through the bound gguf API: seeded random weights, tiny
/// encoders, and an output width of the text model's embedding width, so that SmolLM2 consumes
/// their embeddings. No real vision or audio model is reachable here; equality with a C program
/// over the same libraries is the proof.
public enum SyntheticProjector {
    public enum Kind: Sendable {
        /// LLaVA-style: a 2-layer ViT over 32×32 images in 8×8 patches, and an MLP (16 tokens per image).
        case llava
        /// Qwen2-Audio: a Whisper encoder (1 layer, 80 mel bins) and a linear projection.
        case qwen2Audio
        /// Idefics3 (SmolVLM): its image template needs tokens SmolLM2 lacks.
        case idefics3
    }


    static let width = 16, heads = 2, feedForward = 32

    /// Writes a projector of `kind` whose embeddings are `output` wide.
    public static func write(_ kind: Kind, output: Int, to path: String, seed: UInt64 = 7, symbols c: LlamaSymbols) throws {
        var random = SplitMix64(state: seed)
        let e = width
        var tensors: [(String, [Int64], Float)] = []  // name, ggml shape (ne), scale (0: ones-ish norm weights)
        func linear(_ name: String, _ input: Int, _ outputs: Int, bias: Bool = true) {
            tensors.append(("\(name).weight", [Int64(input), Int64(outputs)], 0.3))
            if bias { tensors.append(("\(name).bias", [Int64(outputs)], 0.1)) }
        }
        func norm(_ name: String, _ n: Int) {
            tensors.append(("\(name).weight", [Int64(n)], -1))
            tensors.append(("\(name).bias", [Int64(n)], 0.1))
        }
        func block(_ prefix: String, _ i: Int, keyBias: Bool) {
            linear("\(prefix).blk.\(i).attn_q", e, e)
            linear("\(prefix).blk.\(i).attn_k", e, e, bias: keyBias)
            linear("\(prefix).blk.\(i).attn_v", e, e)
            linear("\(prefix).blk.\(i).attn_out", e, e)
            norm("\(prefix).blk.\(i).ln1", e)
            norm("\(prefix).blk.\(i).ln2", e)
            linear("\(prefix).blk.\(i).ffn_up", e, feedForward)
            linear("\(prefix).blk.\(i).ffn_down", feedForward, e)
        }

        guard let gguf = c.gguf_init_empty() else { throw TestEnvironment.Missing(description: "gguf_init_empty failed") }
        defer { c.gguf_free(gguf) }
        func u32(_ key: String, _ v: UInt32) { c.gguf_set_val_u32(gguf, key, v) }
        c.gguf_set_val_str(gguf, "general.architecture", "clip")
        c.gguf_set_val_str(gguf, "general.name", "synthetic \(kind) projector (tests)")
        let section: String
        switch kind {
        case .llava, .idefics3:
            section = "vision"
            c.gguf_set_val_str(gguf, "clip.projector_type", kind == .llava ? "mlp" : "idefics3")
            c.gguf_set_val_bool(gguf, "clip.has_vision_encoder", true)
            c.gguf_set_val_bool(gguf, "clip.use_gelu", true)
            u32("clip.vision.image_size", 32)
            u32("clip.vision.patch_size", 8)
            for key in ["clip.vision.image_mean", "clip.vision.image_std"] {
                let half: [Float] = [0.5, 0.5, 0.5]
                half.withUnsafeBufferPointer { c.gguf_set_arr_data(gguf, key, GGUF_TYPE_FLOAT32, $0.baseAddress, 3) }
            }
            let blocks = kind == .llava ? 2 : 1
            tensors.append(("v.patch_embd.weight", [8, 8, 3, Int64(e)], 0.3))
            tensors.append(("v.patch_embd.bias", [Int64(e)], 0.1))
            tensors.append(("v.position_embd.weight", [Int64(e), 16], 0.3))
            if kind == .llava { norm("v.pre_ln", e) } else { norm("v.post_ln", e) }
            for i in 0..<blocks { block("v", i, keyBias: true) }
            if kind == .llava {
                linear("mm.0", e, 64)
                linear("mm.2", 64, output)
            } else {
                u32("clip.vision.projector.scale_factor", 2)
                u32("clip.vision.preproc_image_size", 64)
                tensors.append(("mm.model.fc.weight", [Int64(e * 4), Int64(output)], 0.3))
            }
            u32("clip.vision.block_count", UInt32(blocks))
        case .qwen2Audio:
            section = "audio"
            c.gguf_set_val_str(gguf, "clip.projector_type", "qwen2a")
            c.gguf_set_val_bool(gguf, "clip.has_audio_encoder", true)
            u32("clip.audio.num_mel_bins", 80)
            u32("clip.audio.block_count", 1)
            tensors.append(("a.conv1d.1.weight", [3, 80, Int64(e)], 0.3))
            tensors.append(("a.conv1d.1.bias", [1, Int64(e)], 0.1))
            tensors.append(("a.conv1d.2.weight", [3, Int64(e), Int64(e)], 0.3))
            tensors.append(("a.conv1d.2.bias", [1, Int64(e)], 0.1))
            tensors.append(("a.position_embd.weight", [Int64(e), 1500], 0.3))
            block("a", 0, keyBias: false)
            norm("a.post_ln", e)
            linear("mm.a.fc", e, output)
        }
        u32("clip.\(section).embedding_length", UInt32(e))
        u32("clip.\(section).attention.head_count", UInt32(heads))
        u32("clip.\(section).feed_forward_length", UInt32(feedForward))
        u32("clip.\(section).projection_dim", UInt32(output))
        c.gguf_set_val_f32(gguf, "clip.\(section).attention.layer_norm_epsilon", 1e-6)

        let elements = tensors.reduce(0) { $0 + Int($1.1.reduce(1, *)) }
        let params = ggml_init_params(mem_size: elements * 4 + tensors.count * 1024 + (1 << 16), mem_buffer: nil, no_alloc: false)
        guard let ggml = c.ggml_init(params) else { throw TestEnvironment.Missing(description: "ggml_init failed") }
        defer { c.ggml_free(ggml) }
        for (name, shape, scale) in tensors {
            let t: UnsafeMutablePointer<ggml_tensor>?
            switch shape.count {
            case 1: t = c.ggml_new_tensor_1d(ggml, GGML_TYPE_F32, shape[0])
            case 2: t = c.ggml_new_tensor_2d(ggml, GGML_TYPE_F32, shape[0], shape[1])
            case 3: t = c.ggml_new_tensor_3d(ggml, GGML_TYPE_F32, shape[0], shape[1], shape[2])
            default: t = c.ggml_new_tensor_4d(ggml, GGML_TYPE_F32, shape[0], shape[1], shape[2], shape[3])
            }
            guard let t, let data = t.pointee.data else { throw TestEnvironment.Missing(description: "ggml_new_tensor failed") }
            _ = c.ggml_set_name(t, name)
            let values = data.assumingMemoryBound(to: Float.self)
            for i in 0..<Int(shape.reduce(1, *)) { values[i] = scale < 0 ? 1 + random.weight(0.2) : random.weight(scale) }
            c.gguf_add_tensor(gguf, t)
        }
        guard c.gguf_write_to_file(gguf, path, false) else {
            throw TestEnvironment.Missing(description: "gguf_write_to_file \(path) failed")
        }
    }
}


/// The generated images: the same formula as the C program's `gradient:W:H`.
public func gradientRGB(width w: Int, height h: Int) -> [UInt8] {
    let dx = w > 1 ? w - 1 : 1, dy = h > 1 ? h - 1 : 1, dxy = w + h > 2 ? w + h - 2 : 1
    var rgb = [UInt8](repeating: 0, count: w * h * 3)
    for y in 0..<h {
        for x in 0..<w {
            let p = (y * w + x) * 3
            rgb[p] = UInt8(x * 255 / dx)
            rgb[p + 1] = UInt8(y * 255 / dy)
            rgb[p + 2] = UInt8((x + y) * 255 / dxy)
        }
    }
    return rgb
}

/// A PNG file of 8-bit RGB pixels (stored, uncompressed deflate blocks): test images as clients send them.
public func pngImage(rgb: [UInt8], width: Int, height: Int) -> Data {
    func be32(_ v: UInt32) -> [UInt8] { [UInt8(v >> 24), UInt8(v >> 16 & 0xFF), UInt8(v >> 8 & 0xFF), UInt8(v & 0xFF)] }
    func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        return ~crc
    }
    func chunk(_ type: String, _ data: [UInt8]) -> [UInt8] {
        let body = Array(type.utf8) + data
        return be32(UInt32(data.count)) + body + be32(crc32(body))
    }
    var raw: [UInt8] = []
    for y in 0..<height { raw += [0] + rgb[(y * width * 3)..<((y + 1) * width * 3)] }
    var zlib: [UInt8] = [0x78, 0x01]
    var offset = 0
    repeat {
        let n = min(65535, raw.count - offset)
        let final: UInt8 = offset + n == raw.count ? 1 : 0
        zlib += [final, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8((~n >> 8) & 0xFF)] + raw[offset..<(offset + n)]
        offset += n
    } while offset < raw.count
    var a: UInt32 = 1, b: UInt32 = 0
    for byte in raw {
        a = (a + UInt32(byte)) % 65521
        b = (b + a) % 65521
    }
    zlib += be32(b << 16 | a)
    let header = be32(UInt32(width)) + be32(UInt32(height)) + [8, 2, 0, 0, 0]
    return Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + chunk("IHDR", header) + chunk("IDAT", zlib) + chunk("IEND", []))
}
