import Foundation

/// What `lstat` says of a path (a final link is not followed), read through FileManager: the
/// archive code's one way to ask whether a path is a folder, a link or a file, its permission
/// bits and its size.
struct PathStatus {
    enum Kind { case directory, link, regular, other }

    var kind: Kind
    /// The permission bits (`mode & 0o7777`).
    var permissions: Int
    var size: Int

    /// nil when the path does not exist or cannot be read.
    init?(_ path: String) {
        guard let a = try? FileManager.default.attributesOfItem(atPath: path) else { return nil }
        switch a[.type] as? FileAttributeType {
        case .typeDirectory?: kind = .directory
        case .typeSymbolicLink?: kind = .link
        case .typeRegular?: kind = .regular
        default: kind = .other
        }
        permissions = (a[.posixPermissions] as? NSNumber)?.intValue ?? 0
        size = (a[.size] as? NSNumber)?.intValue ?? 0
    }
}
