// Libraries for an app to ship: a verified bundle, then a runtime that loads only from it.
import Foundation
import Llama

let bundle = URL(fileURLWithPath: "MyApp.bundle/llama")

// snippet.show
// Once, when packaging: verified copies of the builds the app supports.
let manifest = try await LlamaBundle.create(at: bundle, targets: [
    (platform: LlamaPlatform(os: "linux", arch: "x64"), variant: .cpu),
    (platform: LlamaPlatform(os: "linux", arch: "x64"), variant: "cuda-12.8"),
])
print(manifest.entries.map(\.path))

// At run time: the bundle, no network. Every file's sha256 is checked before it is loaded.
var options = LlamaInstallOptions()
options.bundleDirectory = bundle
options.offline = true
let runtime = try await LlamaRuntime.load(options: options)
// snippet.end
print(runtime.libraryDirectory.path)
