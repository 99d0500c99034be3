import Foundation

extension Thread {
    /// Starts `body` on a new thread named `name`, cut to the 15 bytes Linux allows (a longer
    /// name is refused whole). The name is set from the new thread itself: on Linux a thread
    /// can name only itself, so naming the `Thread` before `start()` names nothing.
    @discardableResult
    public static func start(named name: String, _ body: @escaping @Sendable () -> Void) -> Thread {
        var short = ""
        for character in name {
            guard short.utf8.count + character.utf8.count <= 15 else { break }
            short.append(character)
        }
        let thread = Thread { [short] in
            Thread.current.name = short
            body()
        }
        thread.start()
        return thread
    }
}
