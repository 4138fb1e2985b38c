import LlamaRaw

/// How an embedding context pools token embeddings into one per sequence. The C enum is
/// `llama_pooling_type`; open, so that new values of llama.cpp do not break callers.
public struct PoolingType: RawRepresentable, Hashable, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// The model's own pooling type.
    public static let unspecified = PoolingType(rawValue: LLAMA_POOLING_TYPE_UNSPECIFIED.rawValue)
    /// No pooling: one embedding per token.
    public static let none = PoolingType(rawValue: LLAMA_POOLING_TYPE_NONE.rawValue)
    /// The mean of the tokens' embeddings.
    public static let mean = PoolingType(rawValue: LLAMA_POOLING_TYPE_MEAN.rawValue)
    /// The embedding of the first (CLS) token.
    public static let cls = PoolingType(rawValue: LLAMA_POOLING_TYPE_CLS.rawValue)
    /// The embedding of the last token.
    public static let last = PoolingType(rawValue: LLAMA_POOLING_TYPE_LAST.rawValue)
    /// A relevance score, for reranking models.
    public static let rank = PoolingType(rawValue: LLAMA_POOLING_TYPE_RANK.rawValue)
}

/// Causal or not (`llama_attention_type`).
public struct AttentionType: RawRepresentable, Hashable, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// The model's own attention type.
    public static let unspecified = AttentionType(rawValue: LLAMA_ATTENTION_TYPE_UNSPECIFIED.rawValue)
    /// Each token attends to the tokens before it (generation).
    public static let causal = AttentionType(rawValue: LLAMA_ATTENTION_TYPE_CAUSAL.rawValue)
    /// Each token attends to every token (embeddings).
    public static let nonCausal = AttentionType(rawValue: LLAMA_ATTENTION_TYPE_NON_CAUSAL.rawValue)
}

/// Flash attention (`llama_flash_attn_type`).
public struct FlashAttention: RawRepresentable, Hashable, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// Flash attention where the backend supports it.
    public static let auto = FlashAttention(rawValue: LLAMA_FLASH_ATTN_TYPE_AUTO.rawValue)
    /// No flash attention.
    public static let disabled = FlashAttention(rawValue: LLAMA_FLASH_ATTN_TYPE_DISABLED.rawValue)
    /// Flash attention always.
    public static let enabled = FlashAttention(rawValue: LLAMA_FLASH_ATTN_TYPE_ENABLED.rawValue)
}

/// RoPE scaling (`llama_rope_scaling_type`).
public struct RopeScaling: RawRepresentable, Hashable, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// The model's own RoPE scaling.
    public static let unspecified = RopeScaling(rawValue: LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED.rawValue)
    /// No RoPE scaling.
    public static let none = RopeScaling(rawValue: LLAMA_ROPE_SCALING_TYPE_NONE.rawValue)
    /// Linear RoPE scaling.
    public static let linear = RopeScaling(rawValue: LLAMA_ROPE_SCALING_TYPE_LINEAR.rawValue)
    /// YaRN RoPE scaling.
    public static let yarn = RopeScaling(rawValue: LLAMA_ROPE_SCALING_TYPE_YARN.rawValue)
    /// LongRoPE scaling.
    public static let longRope = RopeScaling(rawValue: LLAMA_ROPE_SCALING_TYPE_LONGROPE.rawValue)
}

/// A tensor type for the KV cache (`ggml_type`).
public struct CacheType: RawRepresentable, Hashable, Sendable {
    public let rawValue: Int32
    public init(rawValue: Int32) { self.rawValue = rawValue }
    /// 32-bit floats.
    public static let f32 = CacheType(rawValue: Int32(GGML_TYPE_F32.rawValue))
    /// 16-bit floats (llama.cpp's default).
    public static let f16 = CacheType(rawValue: Int32(GGML_TYPE_F16.rawValue))
    /// bfloat16.
    public static let bf16 = CacheType(rawValue: Int32(GGML_TYPE_BF16.rawValue))
    /// 8-bit quantized.
    public static let q8_0 = CacheType(rawValue: Int32(GGML_TYPE_Q8_0.rawValue))
    /// 4-bit quantized.
    public static let q4_0 = CacheType(rawValue: Int32(GGML_TYPE_Q4_0.rawValue))
}

/// Everything a context is created with: the fields of `llama_context_params` (its callbacks
/// excepted: cancellation takes the abort callback's place). nil keeps llama.cpp's default.
public struct ContextOptions: Sendable {
    /// The context window in tokens (llama.cpp's default when nil; 0 is not allowed).
    public var contextLength: UInt32?
    /// The most tokens one decode call takes.
    public var batchSize: UInt32?
    /// The physical batch size.
    public var microBatchSize: UInt32?
    /// The most sequences one context holds at once (parallel prompts, embeddings).
    public var maxSequences: UInt32?
    /// Threads for generation and for prompt processing.
    public var threads: Int32?
    /// CPU threads for prompt batches (llama.cpp's `--threads-batch`).
    public var batchThreads: Int32?
    /// RoPE scaling (llama.cpp's `--rope-scaling`).
    public var ropeScaling: RopeScaling?
    /// How embeddings are pooled (llama.cpp's `--pooling`).
    public var pooling: PoolingType?
    /// Causal or non-causal attention (llama.cpp's `--attention`).
    public var attention: AttentionType?
    /// Flash attention (llama.cpp's `--flash-attn`).
    public var flashAttention: FlashAttention?
    /// RoPE base frequency (llama.cpp's `--rope-freq-base`).
    public var ropeFrequencyBase: Float?
    /// RoPE frequency scale (llama.cpp's `--rope-freq-scale`).
    public var ropeFrequencyScale: Float?
    /// YaRN extrapolation mix factor (llama.cpp's `--yarn-ext-factor`).
    public var yarnExtensionFactor: Float?
    /// YaRN attention magnitude scale (llama.cpp's `--yarn-attn-factor`).
    public var yarnAttentionFactor: Float?
    /// YaRN low correction dimension (llama.cpp's `--yarn-beta-fast`).
    public var yarnBetaFast: Float?
    /// YaRN high correction dimension (llama.cpp's `--yarn-beta-slow`).
    public var yarnBetaSlow: Float?
    /// YaRN original context length (llama.cpp's `--yarn-orig-ctx`).
    public var yarnOriginalContext: UInt32?
    /// KV cache defragmentation threshold (llama.cpp's `--defrag-thold`).
    public var defragmentationThreshold: Float?
    /// The type of the K cache (llama.cpp's `--cache-type-k`).
    public var keyCacheType: CacheType?
    /// The type of the V cache (llama.cpp's `--cache-type-v`).
    public var valueCacheType: CacheType?
    /// Compute embeddings (for embedding models and pooled sentence embeddings).
    public var embeddings: Bool?
    /// Keep the KV cache and its attention on the GPU (llama.cpp's `--no-kv-offload` when false).
    public var offloadKQV: Bool?
    /// Skip performance timings (measured by default).
    public var noPerformanceCounters: Bool?
    /// Offload host tensor operations to the device (llama.cpp's `--no-op-offload` when false).
    public var offloadOperations: Bool?
    /// Full-size sliding-window cache.
    public var fullSlidingWindowCache: Bool?
    /// One KV buffer shared by all sequences (needed to embed several texts in one decode).
    public var unifiedCache: Bool?
    /// The most outputs (logits or embeddings) one batch may ask for.
    public var maxOutputs: UInt32?
    /// The most outputs one sequence may ask for in a batch.
    public var maxOutputsPerSequence: UInt32?
    /// Sequences of recurrent state kept (for recurrent models).
    public var recurrentStateSequences: UInt32?

    /// Options with llama.cpp's defaults but for the given fields (nil keeps a default).
    public init(contextLength: UInt32? = nil, batchSize: UInt32? = nil, maxSequences: UInt32? = nil,
                threads: Int32? = nil, embeddings: Bool? = nil, pooling: PoolingType? = nil) {
        self.contextLength = contextLength
        self.batchSize = batchSize
        self.maxSequences = maxSequences
        self.threads = threads
        self.embeddings = embeddings
        self.pooling = pooling
    }

    func validate() throws(LlamaError) {
        func positive<T: BinaryInteger>(_ value: T?, _ name: String) throws(LlamaError) {
            if let value, value <= 0 { throw LlamaError(.invalidArgument, "\(name) must be positive, not \(value)") }
        }
        try positive(contextLength, "contextLength")
        try positive(batchSize, "batchSize")
        try positive(microBatchSize, "microBatchSize")
        try positive(maxSequences, "maxSequences")
        try positive(threads, "threads")
        try positive(batchThreads, "batchThreads")
        if let f = ropeFrequencyScale, f <= 0 { throw LlamaError(.invalidArgument, "ropeFrequencyScale must be positive") }
    }

    func apply(to p: inout llama_context_params) {
        func set<T>(_ value: T?, _ field: inout T) { if let value { field = value } }
        set(contextLength, &p.n_ctx)
        set(batchSize, &p.n_batch)
        set(microBatchSize ?? batchSize.map { min($0, p.n_ubatch) }, &p.n_ubatch)
        set(maxSequences, &p.n_seq_max)
        set(threads, &p.n_threads)
        set(batchThreads ?? threads, &p.n_threads_batch)
        set(ropeScaling.map { llama_rope_scaling_type(rawValue: $0.rawValue) }, &p.rope_scaling_type)
        set(pooling.map { llama_pooling_type(rawValue: $0.rawValue) }, &p.pooling_type)
        set(attention.map { llama_attention_type(rawValue: $0.rawValue) }, &p.attention_type)
        set(flashAttention.map { llama_flash_attn_type(rawValue: $0.rawValue) }, &p.flash_attn_type)
        set(ropeFrequencyBase, &p.rope_freq_base)
        set(ropeFrequencyScale, &p.rope_freq_scale)
        set(yarnExtensionFactor, &p.yarn_ext_factor)
        set(yarnAttentionFactor, &p.yarn_attn_factor)
        set(yarnBetaFast, &p.yarn_beta_fast)
        set(yarnBetaSlow, &p.yarn_beta_slow)
        set(yarnOriginalContext, &p.yarn_orig_ctx)
        set(defragmentationThreshold, &p.defrag_thold)
        set(keyCacheType.map { ggml_type(rawValue: UInt32($0.rawValue)) }, &p.type_k)
        set(valueCacheType.map { ggml_type(rawValue: UInt32($0.rawValue)) }, &p.type_v)
        set(embeddings, &p.embeddings)
        set(offloadKQV, &p.offload_kqv)
        p.no_perf = noPerformanceCounters ?? false  // llama.cpp's default is off; counters are cheap
        set(offloadOperations, &p.op_offload)
        set(fullSlidingWindowCache, &p.swa_full)
        set(unifiedCache, &p.kv_unified)
        set(maxOutputs, &p.n_outputs_max)
        set(maxOutputsPerSequence, &p.n_outputs_max_per_seq)
        set(recurrentStateSequences, &p.n_rs_seq)
    }
}
