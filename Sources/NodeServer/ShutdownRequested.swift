/// Asks a connection to finish: GOAWAY, drain in-flight batches, close.
struct ShutdownRequested: Sendable {}
