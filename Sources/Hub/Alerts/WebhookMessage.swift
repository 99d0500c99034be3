import Crypto
import Foundation

/// One webhook request: the body for the target's kind and, for signed webhooks, the
/// [Standard Webhooks](https://www.standardwebhooks.com) headers `webhook-id`,
/// `webhook-timestamp` and `webhook-signature` (`v1,` and the base64 HMAC-SHA256 of
/// `id.timestamp.body` under the secret's bytes).
public struct WebhookMessage: Sendable {
    /// The request body.
    public var body: String
    /// Headers to send (content type included).
    public var headers: [(String, String)]

    /// Builds the request for `delivery` to `target`, signed at `timestamp` (Unix seconds).
    public init(delivery: DueDelivery, target: AlertRules.Target, timestamp: Int64) {
        let id = delivery.id.uuidString.lowercased()
        switch target.kind {
        case .webhook:
            var body = "{\"type\":"
            AttributesJSON.append(delivery.event, to: &body)
            body += ",\"level\":\(delivery.level),\"alert\":\(delivery.details)"
            if let payload = delivery.payload { body += ",\"case\":\(payload)" }
            self.body = body + "}"
        case .slack:
            var text = ""
            AttributesJSON.append(
                CaseEvent.chatLine(event: delivery.event, level: delivery.level, summary: delivery.summary, payload: delivery.payload),
                to: &text
            )
            self.body = "{\"text\":\(text)}"
        }
        var headers = [("content-type", "application/json"), ("webhook-id", id), ("webhook-timestamp", String(timestamp))]
        if let secret = target.secret {
            headers.append(("webhook-signature", Self.signature(id: id, timestamp: timestamp, body: self.body, secret: secret)))
        }
        self.headers = headers
    }

    /// `v1,` and the base64 HMAC-SHA256 of `id.timestamp.body` under `secret`.
    public static func signature(id: String, timestamp: Int64, body: String, secret: [UInt8]) -> String {
        let mac = HMAC<SHA256>.authenticationCode(for: Data("\(id).\(timestamp).\(body)".utf8), using: SymmetricKey(data: secret))
        return "v1," + Data(mac).base64EncodedString()
    }
}
