public import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a probe could not read, or why a driver is unusable.
public struct LlamaProbeError: Error, Sendable, CustomStringConvertible {
    public var description: String
    /// A probe failure with what went wrong.
    public init(_ description: String) { self.description = description }
}

/// The driver libraries the probes ask: libcuda, libvulkan, and whether a runtime library can be
/// opened at all. Injectable, so that tests can present any machine.
public protocol LlamaDriverLibraries: Sendable {
    /// libcuda after `cuInit(0)`: the CUDA version the driver supports (`cuDriverGetVersion`,
    /// e.g. 12080 for 12.8) and `cuDeviceGetCount`. Throws why it cannot be had.
    func cuda() throws(LlamaProbeError) -> (version: Int, devices: Int)
    /// Vulkan's physical devices: name and type (`discrete`, `integrated`, `virtual`, `cpu`,
    /// `other`). Throws why they cannot be listed (no loader, no driver).
    func vulkan() throws(LlamaProbeError) -> [(name: String, type: String)]
    /// Whether any of these libraries can be opened (HIP, Level Zero, SYCL, OpenVINO runtimes).
    func canOpen(_ names: [String]) -> Bool
}

/// The machine's own driver libraries, through dlopen.
public struct SystemDriverLibraries: LlamaDriverLibraries {
    /// The driver libraries of this machine.
    public init() {}

    public func cuda() throws(LlamaProbeError) -> (version: Int, devices: Int) {
        guard let handle = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL) ?? dlopen("libcuda.so", RTLD_NOW | RTLD_LOCAL) else {
            throw LlamaProbeError("libcuda.so.1 cannot be opened: \(dlerror().map { String(cString: $0) } ?? "not found")")
        }
        typealias Init = @convention(c) (UInt32) -> Int32
        typealias GetInt = @convention(c) (UnsafeMutablePointer<Int32>) -> Int32
        guard let initSym = dlsym(handle, "cuInit"), let versionSym = dlsym(handle, "cuDriverGetVersion"),
              let countSym = dlsym(handle, "cuDeviceGetCount") else {
            throw LlamaProbeError("libcuda lacks cuInit, cuDriverGetVersion or cuDeviceGetCount")
        }
        let status = unsafeBitCast(initSym, to: Init.self)(0)
        guard status == 0 else { throw LlamaProbeError("cuInit failed with CUDA error \(status) (driver and kernel module out of step?)") }
        var version: Int32 = 0, count: Int32 = 0
        guard unsafeBitCast(versionSym, to: GetInt.self)(&version) == 0, unsafeBitCast(countSym, to: GetInt.self)(&count) == 0 else {
            throw LlamaProbeError("libcuda answered cuInit but not cuDriverGetVersion/cuDeviceGetCount")
        }
        return (Int(version), Int(count))
    }

    /// Vulkan's physical devices through the loader (`vkEnumeratePhysicalDevices`,
    /// `vkGetPhysicalDeviceProperties`): name and type (`discrete`, `integrated`, `virtual`,
    /// `cpu`, `other`). The structs are laid out by hand from the Vulkan specification's
    /// field order (64-bit ABI): only the fields read here.
    public func vulkan() throws(LlamaProbeError) -> [(name: String, type: String)] {
        guard let handle = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL) ?? dlopen("libvulkan.so", RTLD_NOW | RTLD_LOCAL) else {
            throw LlamaProbeError("libvulkan.so.1 cannot be opened: \(dlerror().map { String(cString: $0) } ?? "not found")")
        }
        typealias Create = @convention(c) (UnsafeRawPointer, UnsafeRawPointer?, UnsafeMutablePointer<OpaquePointer?>) -> Int32
        typealias Enumerate = @convention(c) (OpaquePointer, UnsafeMutablePointer<UInt32>, UnsafeMutablePointer<OpaquePointer?>?) -> Int32
        typealias Properties = @convention(c) (OpaquePointer, UnsafeMutableRawPointer) -> Void
        typealias Destroy = @convention(c) (OpaquePointer, UnsafeRawPointer?) -> Void
        guard let c = dlsym(handle, "vkCreateInstance"), let e = dlsym(handle, "vkEnumeratePhysicalDevices"),
              let p = dlsym(handle, "vkGetPhysicalDeviceProperties"), let d = dlsym(handle, "vkDestroyInstance") else {
            throw LlamaProbeError("libvulkan lacks the instance functions")
        }
        // VkApplicationInfo (48 bytes): sType 0, apiVersion 1.2 at offset 44.
        let app = UnsafeMutableRawPointer.allocate(byteCount: 48, alignment: 8)
        app.initializeMemory(as: UInt8.self, repeating: 0, count: 48)
        app.storeBytes(of: UInt32(1 << 22 | 2 << 12), toByteOffset: 44, as: UInt32.self)
        // VkInstanceCreateInfo (64 bytes): sType 1, pApplicationInfo at offset 24.
        let info = UnsafeMutableRawPointer.allocate(byteCount: 64, alignment: 8)
        info.initializeMemory(as: UInt8.self, repeating: 0, count: 64)
        info.storeBytes(of: UInt32(1), toByteOffset: 0, as: UInt32.self)
        info.storeBytes(of: UnsafeRawPointer(app), toByteOffset: 24, as: UnsafeRawPointer.self)
        defer { app.deallocate(); info.deallocate() }
        var instance: OpaquePointer?
        let status = unsafeBitCast(c, to: Create.self)(info, nil, &instance)
        guard status == 0, let instance else { throw LlamaProbeError("vkCreateInstance failed (VkResult \(status))") }
        defer { unsafeBitCast(d, to: Destroy.self)(instance, nil) }
        var count: UInt32 = 0
        guard unsafeBitCast(e, to: Enumerate.self)(instance, &count, nil) == 0 else {
            throw LlamaProbeError("vkEnumeratePhysicalDevices failed")
        }
        var devices = [OpaquePointer?](repeating: nil, count: Int(count))
        _ = unsafeBitCast(e, to: Enumerate.self)(instance, &count, &devices)
        // VkPhysicalDeviceProperties (824 bytes): deviceType at 16, deviceName[256] at 20.
        let properties = UnsafeMutableRawPointer.allocate(byteCount: 1024, alignment: 16)
        defer { properties.deallocate() }
        let types = ["other", "integrated", "discrete", "virtual", "cpu"]
        return devices.prefix(Int(count)).compactMap { $0 }.map { device in
            properties.initializeMemory(as: UInt8.self, repeating: 0, count: 1024)
            unsafeBitCast(p, to: Properties.self)(device, properties)
            let type = Int(properties.load(fromByteOffset: 16, as: UInt32.self))
            let name = String(cString: properties.advanced(by: 20).assumingMemoryBound(to: CChar.self))
            return (name, type < types.count ? types[type] : "other")
        }
    }

    public func canOpen(_ names: [String]) -> Bool {
        names.contains { name in
            guard let h = dlopen(name, RTLD_LAZY | RTLD_LOCAL) else { return false }
            dlclose(h)
            return true
        }
    }
}

/// A machine described by a file, for tests: `{"cuda": {"version": 12080, "devices": 1}}` or
/// `{"cuda": {"error": "..."}}`, and `"libraries": ["libvulkan.so.1", ...]` that can be opened.
public struct FixtureDriverLibraries: LlamaDriverLibraries, Decodable {
    struct CUDA: Decodable { var version: Int?; var devices: Int?; var error: String?; var hangSeconds: Double? }
    struct Vulkan: Decodable { var devices: [[String: String]]?; var error: String? }
    var cudaAnswer: CUDA?
    var vulkanAnswer: Vulkan?
    var libraries: [String]
    enum CodingKeys: String, CodingKey { case cudaAnswer = "cuda", vulkanAnswer = "vulkan", libraries }

    /// Reads a fixture machine's `drivers.json`: the libraries that open, and what CUDA and Vulkan answer.
    public init(file: URL) throws {
        self = try JSONDecoder().decode(Self.self, from: Data(contentsOf: file))
    }

    public func cuda() throws(LlamaProbeError) -> (version: Int, devices: Int) {
        guard let c = cudaAnswer else { throw LlamaProbeError("libcuda.so.1 cannot be opened: not found") }
        if let hang = c.hangSeconds { Thread.sleep(forTimeInterval: hang) }  // a driver that blocks
        if let error = c.error { throw LlamaProbeError(error) }
        return (c.version ?? 0, c.devices ?? 0)
    }

    public func vulkan() throws(LlamaProbeError) -> [(name: String, type: String)] {
        guard let v = vulkanAnswer else { throw LlamaProbeError("libvulkan.so.1 cannot be opened: not found") }
        if let error = v.error { throw LlamaProbeError(error) }
        return (v.devices ?? []).map { ($0["name"] ?? "?", $0["type"] ?? "other") }
    }

    public func canOpen(_ names: [String]) -> Bool { names.contains { libraries.contains($0) } }
}

/// Resumes a continuation with the first value given; later ones are dropped.
final class ResumeOnce<T: Sendable>: Sendable {
    private let continuation: Mutex<CheckedContinuation<T, Never>?>
    init(_ continuation: CheckedContinuation<T, Never>) { self.continuation = Mutex(continuation) }
    func resume(_ value: T) {
        continuation.withLock { c in
            c?.resume(returning: value)
            c = nil
        }
    }
}

/// What the probes found on a machine.
public struct LlamaHardwareReport: Sendable, Codable, Equatable {
    /// A GPU a probe found.
    public struct GPU: Sendable, Codable, Equatable {
        /// Who makes it: `nvidia`, `amd`, `intel`, or `vulkan-<type>` for a device Vulkan listed.
        public var vendor: String
        /// The name the driver or the PCI ids give.
        public var name: String
        /// Its memory, when the probe could read it.
        public var memoryBytes: UInt64?
    }
    /// What the NVIDIA probe found: driver, CUDA version, GPUs.
    public struct NVIDIA: Sendable, Codable, Equatable {
        /// From `/proc/driver/nvidia/version`.
        public var driverVersion: String?
        /// The CUDA version the driver supports (`12.8`), from libcuda.
        public var cudaVersion: String?
        /// The NVIDIA GPUs.
        public var gpus: [GPU]
        /// Why CUDA cannot be used, when it cannot.
        public var problem: String?
    }
    /// What the AMD probe found: GPUs (KFD topology, DRM) and the HIP runtime.
    public struct AMD: Sendable, Codable, Equatable {
        /// The AMD GPUs.
        public var gpus: [GPU]
        /// Whether the HIP runtime (libamdhip64) can be opened.
        public var hipRuntime: Bool
    }
    /// What the Intel probe found: GPUs and the runtimes of the SYCL and OpenVINO builds.
    public struct Intel: Sendable, Codable, Equatable {
        /// The Intel GPUs.
        public var gpus: [GPU]
        /// Whether the Level Zero loader can be opened.
        public var levelZero: Bool
        /// Whether the SYCL runtime can be opened.
        public var syclRuntime: Bool
        /// Whether the OpenVINO runtime can be opened.
        public var openVINORuntime: Bool
    }
    /// The CPU: architecture, cores and SIMD features.
    public struct CPU: Sendable, Codable, Equatable {
        /// The architecture, as release assets name it (`x64`, `arm64`).
        public var architecture: String
        /// Logical cores.
        public var cores: Int
        /// SIMD features llama.cpp's CPU variants use (avx2, avx512f, f16c, fma, neon, dotprod...).
        public var features: [String]
    }

    /// NVIDIA's driver and GPUs (nil: no NVIDIA driver).
    public var nvidia: NVIDIA?
    /// AMD's GPUs (nil: none found).
    public var amd: AMD?
    /// Intel's GPUs and runtimes (nil: none found).
    public var intel: Intel?
    /// Vulkan's physical devices (none: no loader or driver; see `notes`).
    public var vulkanDevices: [GPU]
    /// Whether Metal is available (macOS on Apple silicon).
    public var metal: Bool
    /// The CPU.
    public var cpu: CPU
    /// What a probe could not read or gave up on.
    public var notes: [String]
}

/// Probes the machine through a filesystem root and driver libraries, each probe bounded by a
/// timeout: a hung driver is reported, never waited for.
public struct LlamaHardwareProbe: Sendable {
    /// The filesystem root the probes read (`/`, or a fixture machine's folder).
    public var root: URL
    /// The driver libraries the probes ask (libcuda, Vulkan's loader...), or a fixture's answers.
    public var drivers: any LlamaDriverLibraries
    /// The longest time one probe may take; a probe that takes longer is reported as hung.
    public var timeout: Duration
    /// The platform whose builds are considered.
    public var platform: LlamaPlatform

    /// A probe of a machine.
    ///
    /// - Parameters:
    ///   - root: the filesystem root to read.
    ///   - drivers: the driver libraries to ask.
    ///   - timeout: the longest time one probe may take.
    ///   - platform: the platform whose builds are considered.
    public init(root: URL = URL(fileURLWithPath: "/"), drivers: any LlamaDriverLibraries = SystemDriverLibraries(),
                timeout: Duration = .seconds(5), platform: LlamaPlatform = .current) {
        self.root = root
        self.drivers = drivers
        self.timeout = timeout
        self.platform = platform
    }

    /// A machine described by a fixture folder: its files form the root, `drivers.json` the libraries.
    public init(fixture folder: URL, platform: LlamaPlatform = LlamaPlatform(os: "linux", arch: "x64")) throws {
        self.init(root: folder, drivers: try FixtureDriverLibraries(file: folder.appendingPathComponent("drivers.json")),
                  platform: platform)
    }

    /// Runs every probe, each under ``timeout``, and reports what they found (and what they could not read, in `notes`).
    public func run() async -> LlamaHardwareReport {
        var notes: [String] = []
        let nvidia = await bounded("NVIDIA", notes: &notes) { probeNVIDIA() } ?? nil
        let amd = await bounded("AMD", notes: &notes) { probeAMD() } ?? nil
        let intel = await bounded("Intel", notes: &notes) { probeIntel() } ?? nil
        let vulkanResult = await bounded("Vulkan", notes: &notes) { () -> Result<[LlamaHardwareReport.GPU], LlamaProbeError> in
            let listed: [(name: String, type: String)]
            do { listed = try drivers.vulkan() } catch { return .failure((error as? LlamaProbeError) ?? LlamaProbeError("\(error)")) }
            return .success(listed.map { .init(vendor: "vulkan-\($0.type)", name: $0.name, memoryBytes: nil) })
        }
        var vulkan: [LlamaHardwareReport.GPU] = []
        switch vulkanResult {
        case .success(let devices)?: vulkan = devices
        case .failure(let error)?: notes.append("Vulkan: \(error.description)")
        case nil: break
        }
        let cpu = probeCPU(notes: &notes)
        return LlamaHardwareReport(nvidia: nvidia, amd: amd, intel: intel, vulkanDevices: vulkan,
                                   metal: platform.os == "macos" && platform.arch == "arm64", cpu: cpu, notes: notes)
    }

    /// Runs a probe on its own thread; after the timeout it is abandoned (left to finish on its
    /// own) and noted. The timeout is a sleeping thread, not a task: the cooperative pool may be
    /// held by blocking work, and a hung driver must still be abandoned on time.
    private func bounded<T: Sendable>(_ name: String, notes: inout [String], _ body: @escaping @Sendable () -> T) async -> T? {
        let timeout = self.timeout
        let result: T? = await withCheckedContinuation { (continuation: CheckedContinuation<T?, Never>) in
            let once = ResumeOnce(continuation)
            Thread.detachNewThread { once.resume(body()) }
            let (seconds, attoseconds) = timeout.components
            Thread.detachNewThread {
                Thread.sleep(forTimeInterval: Double(seconds) + Double(attoseconds) / 1e18)
                once.resume(nil)
            }
        }
        if result == nil { notes.append("the \(name) probe did not answer within \(timeout) and was abandoned") }
        return result
    }

    private func read(_ path: String) -> String? {
        try? String(contentsOf: root.appendingPathComponent(path), encoding: .utf8)
    }

    private func list(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(path).path)) ?? []).sorted()
    }

    private func exists(_ path: String) -> Bool {
        FileManager.default.fileExists(atPath: root.appendingPathComponent(path).path)
    }

    func probeNVIDIA() -> LlamaHardwareReport.NVIDIA? {
        let version = read("proc/driver/nvidia/version")
        let gpus = list("proc/driver/nvidia/gpus").compactMap { id -> LlamaHardwareReport.GPU? in
            guard let info = read("proc/driver/nvidia/gpus/\(id)/information") else { return nil }
            let model = info.split(separator: "\n").first { $0.hasPrefix("Model:") }
                .map { $0.dropFirst("Model:".count).trimmingCharacters(in: .whitespaces) } ?? "NVIDIA GPU"
            return .init(vendor: "nvidia", name: model, memoryBytes: nil)
        }
        var cuda: (version: Int, devices: Int)?
        var problem: String?
        do { cuda = try drivers.cuda() } catch { problem = error.description }
        guard version != nil || !gpus.isEmpty || cuda != nil else { return nil }
        // "NVRM version: NVIDIA UNIX x86_64 Kernel Module  570.86.15  ..." → 570.86.15
        let driver = version.flatMap { text in
            text.split(whereSeparator: { $0 == " " || $0 == "\n" }).first { part in
                part.split(separator: ".").count >= 2 && part.split(separator: ".").allSatisfy { $0.allSatisfy(\.isNumber) }
            }.map(String.init)
        }
        if let cuda, cuda.devices == 0 { problem = "libcuda reports no CUDA device" }
        let cudaVersion = cuda.map { "\($0.version / 1000).\(($0.version % 1000) / 10)" }
        var found = gpus
        if found.isEmpty, let cuda { found = (0..<cuda.devices).map { _ in .init(vendor: "nvidia", name: "NVIDIA GPU", memoryBytes: nil) } }
        return .init(driverVersion: driver, cudaVersion: cudaVersion, gpus: found, problem: problem)
    }

    func probeAMD() -> LlamaHardwareReport.AMD? {
        guard exists("dev/kfd") else { return nil }
        let gpus = list("sys/class/kfd/kfd/topology/nodes").compactMap { node -> LlamaHardwareReport.GPU? in
            guard let properties = read("sys/class/kfd/kfd/topology/nodes/\(node)/properties") else { return nil }
            let target = properties.split(separator: "\n").first { $0.hasPrefix("gfx_target_version") }?
                .split(separator: " ").last.flatMap { Int($0) } ?? 0
            guard target != 0 else { return nil }  // a CPU node
            let name = read("sys/class/kfd/kfd/topology/nodes/\(node)/name")?.trimmingCharacters(in: .whitespacesAndNewlines)
            return .init(vendor: "amd", name: (name?.isEmpty == false ? name! : "gfx\(target)"), memoryBytes: nil)
        }
        guard !gpus.isEmpty else { return nil }
        return .init(gpus: gpus, hipRuntime: drivers.canOpen(["libamdhip64.so.7", "libamdhip64.so.6", "libamdhip64.so"]))
    }

    func probeIntel() -> LlamaHardwareReport.Intel? {
        let gpus = list("sys/class/drm").filter { $0.hasPrefix("card") && !$0.contains("-") }.compactMap { card -> LlamaHardwareReport.GPU? in
            guard read("sys/class/drm/\(card)/device/vendor")?.trimmingCharacters(in: .whitespacesAndNewlines) == "0x8086" else { return nil }
            let device = read("sys/class/drm/\(card)/device/device")?.trimmingCharacters(in: .whitespacesAndNewlines) ?? "?"
            return .init(vendor: "intel", name: "Intel GPU \(device)", memoryBytes: nil)
        }
        guard !gpus.isEmpty else { return nil }
        return .init(gpus: gpus, levelZero: drivers.canOpen(["libze_loader.so.1", "libze_loader.so"]),
                     syclRuntime: drivers.canOpen(["libsycl.so.8", "libsycl.so.7", "libsycl.so"]),
                     openVINORuntime: drivers.canOpen(["libopenvino.so"]))
    }

    func probeCPU(notes: inout [String]) -> LlamaHardwareReport.CPU {
        var features: [String] = []
        var cores = 0
        if let info = read("proc/cpuinfo") {
            for line in info.split(separator: "\n") {
                if line.hasPrefix("processor") { cores += 1 }
                if features.isEmpty, line.hasPrefix("flags") || line.hasPrefix("Features") {
                    let all = Set(line.split(separator: ":").last?.split(separator: " ").map(String.init) ?? [])
                    features = ["sse4_2", "avx", "avx2", "f16c", "fma", "avx512f", "avx512bw", "avx512vnni", "avx_vnni", "amx_int8",
                                "neon", "asimd", "asimddp", "sve", "i8mm"].filter(all.contains)
                }
            }
        } else if platform.os == "linux" {
            notes.append("/proc/cpuinfo could not be read")
        }
        return .init(architecture: platform.arch, cores: max(cores, 1), features: features)
    }
}
