public import Foundation

extension LlamaVariant {
    /// Choose from what the machine has (see ``LlamaVariantSelection``).
    public static let auto = LlamaVariant(rawValue: "auto")
    /// AMD GPUs (the release calls the archive `rocm-<version>`).
    public static let hip = LlamaVariant(rawValue: "hip")
    /// Intel GPUs through SYCL (`sycl-fp16` or `sycl-fp32` builds).
    public static let sycl = LlamaVariant(rawValue: "sycl")
    /// Intel devices through OpenVINO.
    public static let openvino = LlamaVariant(rawValue: "openvino")
    /// NVIDIA GPUs: the CUDA build the driver supports best.
    public static let cuda = LlamaVariant(rawValue: "cuda")
}

/// Which llama.cpp build to use, and why: the candidates in order, and every variant that was
/// ruled out with its reason. A GPU user who ends up on the CPU reads here why.
public struct LlamaVariantSelection: Sendable, Codable, Equatable {
    /// A build to try, in order, and why it is a candidate.
    public struct Candidate: Sendable, Codable, Equatable {
        /// The build.
        public var variant: LlamaVariant
        /// Why it is a candidate (what the probes found).
        public var reason: String
        /// The error's code when the variant was tried and failed (`.backendRejected`,
        /// `.downloadFailed`...); nil when the plan ruled it out from the hardware.
        public var code: LlamaError.Code?

        /// A candidate build with its reason (and the error code of a failed check, if any).
        public init(variant: LlamaVariant, reason: String, code: LlamaError.Code? = nil) {
            self.variant = variant
            self.reason = reason
            self.code = code
        }
    }
    /// A build that was not used, and why.
    public struct Rejection: Sendable, Codable, Equatable {
        /// A variant of the release, or a family (`cuda`, `vulkan`...) when no build of it was a candidate.
        public var variant: LlamaVariant
        /// Why it was not used.
        public var reason: String
        /// The error's code when the variant was tried and failed (`.backendRejected`,
        /// `.downloadFailed`...); nil when the plan ruled it out from the hardware.
        public var code: LlamaError.Code?

        /// A rejected build with its reason (and the error code when a check failed).
        public init(variant: LlamaVariant, reason: String, code: LlamaError.Code? = nil) {
            self.variant = variant
            self.reason = reason
            self.code = code
        }
    }

    /// What was asked for.
    public var request: LlamaVariant
    /// To try in this order (the last is the CPU for `.auto`).
    public var candidates: [Candidate]
    /// Builds that were not used, each with its reason.
    public var rejected: [Rejection]
    /// Set once a candidate was installed and verified.
    public var chosen: LlamaVariant?
    /// What the probes found.
    public var hardware: LlamaHardwareReport

    /// The requests that are chosen from the hardware rather than taken as they are.
    public static let families: Set<String> = ["auto", "cuda", "hip", "rocm", "sycl", "openvino", "metal", "vulkan"]

    /// Whether a request is chosen from the hardware (`.auto`, or a family the release does not
    /// name as a variant) rather than taken as it is (then a missing asset means a source build).
    public static func choosesFromHardware(_ variant: LlamaVariant, release: LlamaRelease, platform: LlamaPlatform) -> Bool {
        families.contains(variant.rawValue) && !release.variants(for: platform).contains(variant)
    }

    /// The first candidate, before verification.
    public var preferred: LlamaVariant? { candidates.first?.variant }

    /// A few lines for a person.
    public var summary: String {
        var lines: [String] = []
        if let chosen { lines.append("variant: \(chosen)") }
        for c in candidates { lines.append("  candidate \(c.variant): \(c.reason)") }
        for r in rejected { lines.append("  not \(r.variant): \(r.reason)") }
        for n in hardware.notes { lines.append("  note: \(n)") }
        return lines.joined(separator: "\n")
    }

    /// Orders the variants of `release` for `platform` by what `hardware` shows.
    ///
    /// `.auto` tries NVIDIA (CUDA build by the CUDA version the driver supports), AMD (HIP),
    /// Intel (SYCL), Metal, Vulkan, then the CPU. A named family (`.cuda`, `.vulkan`...) gives
    /// only that family's build, or no candidate with the reason; an exact variant
    /// (`cuda-12.8`) is taken as it is.
    public static func plan(_ request: LlamaVariant, hardware: LlamaHardwareReport, release: LlamaRelease = .pinned,
                            platform: LlamaPlatform = .current) -> LlamaVariantSelection {
        var s = LlamaVariantSelection(request: request, candidates: [], rejected: [], chosen: nil, hardware: hardware)
        let all = release.variants(for: platform)
        func released(_ family: String) -> [LlamaVariant] {
            all.filter { $0.family == family }.sorted { LlamaRelease.versionOrder($0.version ?? "", $1.version ?? "") }
        }
        func add(_ v: LlamaVariant, _ why: String) { s.candidates.append(.init(variant: v, reason: why)) }
        func reject(_ v: LlamaVariant, _ why: String) { s.rejected.append(.init(variant: v, reason: why)) }

        if request != .auto, request.version != nil || all.contains(request) {
            if all.contains(request) { add(request, "requested") } else { reject(request, "no release asset for \(platform)") }
            return s
        }
        let wanted: Set<String> = request == .auto ? ["cuda", "rocm", "sycl", "metal", "vulkan", "cpu"]
            : [request == .hip ? "rocm" : request.rawValue]

        // NVIDIA → CUDA
        if wanted.contains("cuda") {
            let builds = released("cuda")
            if let nvidia = hardware.nvidia {
                let names = nvidia.gpus.map(\.name).joined(separator: ", ")
                if let problem = nvidia.problem {
                    reject(.cuda, "NVIDIA GPU (\(names)) found, but CUDA is unusable: \(problem)")
                } else if builds.isEmpty {
                    reject(.cuda, "llama.cpp \(release.tag) has no CUDA build for \(platform)")
                } else if let supported = nvidia.cudaVersion {
                    let fitting = builds.filter { !LlamaRelease.versionOrder(supported, $0.version ?? "") }
                    if let best = fitting.last {
                        add(best, "NVIDIA \(names); the driver\(nvidia.driverVersion.map { " \($0)" } ?? "") supports CUDA \(supported)")
                    } else {
                        reject(.cuda, "the NVIDIA driver supports CUDA \(supported), older than every CUDA build of the release "
                            + "(\(builds.map(\.rawValue).joined(separator: ", "))): update the driver")
                    }
                }
            } else if request == .cuda {
                reject(.cuda, "no NVIDIA GPU or driver found")
            }
        }
        // AMD → HIP/ROCm
        if wanted.contains("rocm") {
            if let amd = hardware.amd {
                let names = amd.gpus.map(\.name).joined(separator: ", ")
                if let build = released("rocm").last {
                    if amd.hipRuntime { add(build, "AMD \(names) with the HIP runtime") } else {
                        reject(build, "AMD \(names) found, but the HIP runtime (libamdhip64) is not installed")
                    }
                } else {
                    reject("rocm", "llama.cpp \(release.tag) has no ROCm build for \(platform)")
                }
            } else if request == .hip {
                reject("rocm", "no AMD GPU (/dev/kfd) found")
            }
        }
        // Intel → SYCL
        if wanted.contains("sycl") {
            if let intel = hardware.intel {
                let build = released("sycl").first { $0.version == "fp16" } ?? released("sycl").first
                if let build, intel.syclRuntime && intel.levelZero {
                    add(build, "Intel GPU with the Level Zero and SYCL runtimes")
                } else if let build {
                    reject(build, "Intel GPU found, but the \(intel.levelZero ? "SYCL" : "Level Zero") runtime is not installed")
                }
            } else if request == .sycl {
                reject(.sycl, "no Intel GPU found")
            }
        }
        if wanted.contains("openvino"), let build = released("openvino").last {
            if hardware.intel?.openVINORuntime == true { add(build, "the OpenVINO runtime is installed") } else {
                reject(build, "the OpenVINO runtime (libopenvino) is not installed")
            }
        }
        // Apple → Metal
        if wanted.contains("metal") {
            if hardware.metal, let build = released("metal").first { add(build, "Apple silicon") }
            else if request == .metal { reject(.metal, "Metal needs Apple silicon (macOS arm64)") }
        }
        // A Vulkan device that is a GPU → Vulkan
        if wanted.contains("vulkan") {
            let gpus = hardware.vulkanDevices.filter { $0.vendor != "vulkan-cpu" }
            let others = (hardware.nvidia?.gpus ?? []) + (hardware.amd?.gpus ?? []) + (hardware.intel?.gpus ?? [])
            if let build = released("vulkan").first {
                if !gpus.isEmpty {
                    add(build, "Vulkan GPU(s): \(gpus.map { "\($0.name) (\($0.vendor.dropFirst(7)))" }.joined(separator: ", "))")
                } else if !others.isEmpty || request == .vulkan {
                    let why = hardware.notes.first { $0.hasPrefix("Vulkan: ") }.map { String($0.dropFirst(8)) }
                        ?? (hardware.vulkanDevices.isEmpty ? "no Vulkan device" : "Vulkan lists only CPU devices")
                    reject(.vulkan, why)
                }
            } else if request == .vulkan {
                reject(.vulkan, "llama.cpp \(release.tag) has no Vulkan build for \(platform)")
            }
        }
        if wanted.contains("cpu") {
            let cpuBuild = all.first { $0 == .cpu } ?? all.first { $0 == .metal }
            if let cpuBuild, !s.candidates.contains(where: { $0.variant == cpuBuild }) {
                add(cpuBuild, s.candidates.isEmpty ? "no usable GPU found" : "the fallback when no GPU build loads")
            }
        }
        return s
    }
}
