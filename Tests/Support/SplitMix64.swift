/// A seeded random number generator (SplitMix64), so that a test's random inputs can be made again.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The state; the seed to start with.
    public var state: UInt64

    /// A generator starting from `state`.
    public init(state: UInt64) { self.state = state }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// Uniform in [-scale, scale).
    public mutating func weight(_ scale: Float) -> Float {
        (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
}
