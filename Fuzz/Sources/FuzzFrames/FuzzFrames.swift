import Crypto
import NIOCore
import FuzzSupport
import Wire

// Feeds arbitrary bytes to the frame reader as a stream, as a hub or agent receives them,
// and opens every BATCH that parses. Any trap, leak or unbounded allocation is a finding;
// thrown WireErrors are the expected outcome for bad input.
private let limits = FrameLimits()
private let key = try! Curve25519.Signing.PrivateKey(rawRepresentation: Array(UInt8(1)...UInt8(32))).publicKey
// libFuzzer calls the entry point from one thread only.
nonisolated(unsafe) private let decompressor = ZstdDecompressor()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFrames(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    var buffer = ByteBuffer(bytes: UnsafeBufferPointer(start: start, count: count))
    while true {
        let frame: Frame?
        do {
            frame = try Frame.read(from: &buffer, limits: limits)
        } catch {
            return 0
        }
        guard let frame else { return 0 }
        switch frame {
        case .batch(let batch):
            _ = try? batch.open(verifyingWith: key, limits: limits.batch, decompressor: decompressor)
        case .forward(let forwarded):
            _ = try? forwarded.batch.open(verifyingWith: key, limits: limits.batch, decompressor: decompressor)
        case .hello(let hello):
            _ = try? hello.verifyProof(for: Challenge(hubID: hello.nodeID, nonce: Array(repeating: 0, count: 32)))
        case .enroll(let request):
            _ = try? request.hello.verifyProof(for: request.challenge)
        case .status(let report):
            _ = try? report.verified(by: key)
        case .challenge, .welcome, .ack, .reject, .credit, .ping, .pong, .goAway, .registry, .enrolled:
            break
        }
        // Whatever decoded must encode and decode to itself.
        var again = ByteBuffer()
        frame.write(into: &again)
        guard (try? Frame.read(from: &again, limits: limits)) == frame else {
            fatalError("frame did not survive a round trip: \(frame)")
        }
    }
}

@_cdecl("FuzzFrames_main")
public func FuzzFramesMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    runLibFuzzer(argc, argv, fuzzFrames)
}
