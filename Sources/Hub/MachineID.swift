import Crypto
import Foundation

/// Why `hubId: machine` could not be resolved.
public struct MachineIDError: Error, CustomStringConvertible {
    /// What is wrong with the machine id file.
    public var reason: String
    public var description: String { "hubId: machine: \(self.reason)" }
}

extension UUID {
    /// The UUID of the first 16 of `bytes` (a digest), marked as `version` and variant 1.
    init(version: UInt8, _ bytes: [UInt8]) {
        var b = bytes
        b[6] = (b[6] & 0x0F) | (version << 4)
        b[8] = (b[8] & 0x3F) | 0x80
        self.init(uuid: (b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]))
    }
}

/// Application-specific ids derived from the machine id, as systemd derives them.
enum MachineID {
    /// The 16 bytes of a 32-digit hex id; nil for anything else.
    static func bytes(hex: String) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count == 32 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        for index in stride(from: 0, to: 32, by: 2) {
            guard let high = Self.value(digits[index]), let low = Self.value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    /// `sd_id128_get_machine_app_specific`: the first 16 bytes of HMAC-SHA256 keyed with the
    /// machine id over the application id, marked as a version 4, variant 1 UUID.
    static func appSpecific(machine: [UInt8], app: [UInt8]) -> UUID {
        let code = HMAC<SHA256>.authenticationCode(for: app, using: SymmetricKey(data: machine))
        return UUID(version: 4, Array(code.prefix(16)))
    }

    private static func value(_ digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
