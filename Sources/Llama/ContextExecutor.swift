import Foundation

/// The executor of one ``LlamaContext``: a thread of its own that runs the context's jobs in order.
///
/// `llama_decode` blocks its thread for as long as the evaluation takes (the calling thread computes
/// too). On Swift's cooperative pool, which has one thread per core, that thread would be lost to
/// every other task for the duration — HTTP handling, template rendering, other actors — and on a
/// 2-core machine half the pool waits on each decode. A dedicated thread keeps the pool free, as
/// llama.cpp's own server keeps its decode loop on a thread apart from the HTTP threads.
///
/// The thread ends when the context is gone (``stop()`` from its deinit) and the queue is empty.
final class ContextExecutor: SerialExecutor, @unchecked Sendable {
    // Guarded by `mutex`: the jobs waiting, and whether the owner is gone.
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()
    private var jobs: [UnownedJob] = []
    private var stopped = false
    /// The thread running the jobs (set before the first job can run).
    private var thread: pthread_t?

    /// Stack of the thread: ggml's graph building and the samplers recurse little, but the
    /// default of some platforms (512 KiB for secondary threads on Darwin) is small.
    private static let stackSize = 8 << 20

    init() {
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        let attributes = UnsafeMutablePointer<pthread_attr_t>.allocate(capacity: 1)
        pthread_attr_init(attributes)
        defer {
            pthread_attr_destroy(attributes)
            attributes.deallocate()
        }
        pthread_attr_setstacksize(attributes, Self.stackSize)
        pthread_attr_setdetachstate(attributes, Int32(PTHREAD_CREATE_DETACHED))
        let context = Unmanaged.passRetained(self).toOpaque()
        #if canImport(Darwin)
        var created: pthread_t?
        #else
        var created = pthread_t()
        #endif
        let status = pthread_create(&created, attributes, { raw in
            #if canImport(Darwin)
            let executor = Unmanaged<ContextExecutor>.fromOpaque(raw).takeRetainedValue()
            #else
            let executor = Unmanaged<ContextExecutor>.fromOpaque(raw!).takeRetainedValue()
            #endif
            executor.runLoop()
            return nil
        }, context)
        // Without a thread the process cannot go on in any useful way (the system refused a thread).
        precondition(status == 0, "could not start the thread of a llama context: error \(status)")
        thread = created
    }

    deinit {
        pthread_cond_destroy(&condition)
        pthread_mutex_destroy(&mutex)
    }

    func enqueue(_ job: consuming ExecutorJob) {
        let job = UnownedJob(job)
        pthread_mutex_lock(&mutex)
        jobs.append(job)
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    func asUnownedSerialExecutor() -> UnownedSerialExecutor {
        UnownedSerialExecutor(ordinary: self)
    }

    /// Whether the caller runs on this executor's thread (for `assumeIsolated`).
    func checkIsolated() {
        guard let thread else { preconditionFailure("the context's thread has not started") }
        precondition(pthread_equal(pthread_self(), thread) != 0, "not on the llama context's thread")
    }

    /// Lets the thread end once no job is left (the context is gone; no new job can come).
    func stop() {
        pthread_mutex_lock(&mutex)
        stopped = true
        pthread_cond_signal(&condition)
        pthread_mutex_unlock(&mutex)
    }

    private func runLoop() {
        var batch: [UnownedJob] = []
        while true {
            pthread_mutex_lock(&mutex)
            while jobs.isEmpty && !stopped { pthread_cond_wait(&condition, &mutex) }
            if jobs.isEmpty {
                pthread_mutex_unlock(&mutex)
                return
            }
            swap(&batch, &jobs)
            pthread_mutex_unlock(&mutex)
            let executor = asUnownedSerialExecutor()
            for job in batch { job.runSynchronously(on: executor) }
            batch.removeAll(keepingCapacity: true)
        }
    }
}
