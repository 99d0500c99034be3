import Wire
/// Asks a connection to finish: GOAWAY, drain in-flight batches, close.
struct ShutdownRequested: Sendable {}

/// The backend's registry changed: relays connected with version 2 get the new snapshot.
struct RegistryChanged: Sendable {
    var frames: [RegistryUpdate]
}
