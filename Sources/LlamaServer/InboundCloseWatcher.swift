import NIOCore
import Synchronization

/// A handler on each connection that notices when the client closes its side (the server allows
/// half-closure, so that is an `inputClosed` event, not a closed channel) or the connection goes
/// away, and calls what a request registered: a generation still being computed for a client
/// that left is cancelled, and its slot freed within one engine step.
final class InboundCloseWatcher: ChannelInboundHandler, RemovableChannelHandler, Sendable {
    typealias InboundIn = NIOAny

    private struct State {
        var closed = false
        var nextID = 0
        var actions: [Int: @Sendable () -> Void] = [:]
    }
    private let state = Mutex(State())

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ChannelEvent, e == .inputClosed { fire() }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fire()
        context.fireChannelInactive()
    }

    /// Runs `action` once when the client's side closes (at once if it has); returns an id for ``remove(_:)``.
    func onClose(_ action: @escaping @Sendable () -> Void) -> Int {
        let (id, closed) = state.withLock { s -> (Int, Bool) in
            if s.closed { return (-1, true) }
            s.nextID += 1
            s.actions[s.nextID] = action
            return (s.nextID, false)
        }
        if closed { action() }
        return id
    }

    /// Forgets an action (its request ended).
    func remove(_ id: Int) {
        _ = state.withLock { $0.actions.removeValue(forKey: id) }
    }

    private func fire() {
        let actions = state.withLock { s -> [@Sendable () -> Void] in
            s.closed = true
            defer { s.actions = [:] }
            return Array(s.actions.values)
        }
        for action in actions { action() }
    }
}
