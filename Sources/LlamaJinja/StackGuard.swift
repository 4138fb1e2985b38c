#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// The lowest stack address a render may reach before it stops with `.limitExceeded`: the
/// thread's stack bottom plus a reserve. Calls (macros, recursive loops, callers) nest one Swift
/// frame chain per level, and how deep that can go depends on the thread's stack size and on
/// the build (a debug build's frames are several times larger), so counting calls alone
/// (``JinjaTemplate/Options/Limits/maxCallDepth``) cannot promise that a template never
/// overflows the stack and ends the process. Read once per render; checking is one comparison.
struct StackGuard {
    /// Stop while this many bytes of stack are left: room for one more level and the error's way out.
    static let reserve: UInt = 256 << 10
    /// nil: the stack's bounds are unknown here (only the call count limits then).
    let floor: UInt?

    init() {
        floor = Self.stackBottom().map { $0 + Self.reserve }
    }

    /// Whether the caller's frame is still above the floor.
    @inline(never)
    func hasRoom() -> Bool {
        guard let floor else { return true }
        var marker: UInt8 = 0
        return withUnsafeMutablePointer(to: &marker) { UInt(bitPattern: $0) } > floor
    }

    /// The lowest address of the current thread's stack.
    static func stackBottom() -> UInt? {
        #if os(Linux)
        // pthread_getattr_np is a GNU extension the Glibc module does not export: found at run time.
        typealias GetAttributes = @convention(c) (pthread_t, UnsafeMutableRawPointer) -> Int32
        typealias GetStack = @convention(c) (UnsafeRawPointer, UnsafeMutablePointer<UnsafeMutableRawPointer?>,
                                             UnsafeMutablePointer<Int>) -> Int32
        typealias Destroy = @convention(c) (UnsafeMutableRawPointer) -> Int32
        guard let getAttributes = dlsym(nil, "pthread_getattr_np"), let getStack = dlsym(nil, "pthread_attr_getstack"),
              let destroy = dlsym(nil, "pthread_attr_destroy") else { return nil }
        // pthread_attr_t is 56 bytes on x86_64 and 64 on arm64: room for either.
        let attributes = UnsafeMutableRawPointer.allocate(byteCount: 256, alignment: 16)
        defer { attributes.deallocate() }
        guard unsafeBitCast(getAttributes, to: GetAttributes.self)(pthread_self(), attributes) == 0 else { return nil }
        defer { _ = unsafeBitCast(destroy, to: Destroy.self)(attributes) }
        var address: UnsafeMutableRawPointer?
        var size = 0
        guard unsafeBitCast(getStack, to: GetStack.self)(attributes, &address, &size) == 0, let address else { return nil }
        return UInt(bitPattern: address)
        #elseif canImport(Darwin)
        let top = UInt(bitPattern: pthread_get_stackaddr_np(pthread_self()))
        return top - UInt(pthread_get_stacksize_np(pthread_self()))
        #else
        return nil
        #endif
    }
}
