import Foundation
import Hummingbird
import NIOCore
import Support

/// JSON answers of the operations API: sorted keys, and errors as
/// `{"error":{"code","message","field"}}`.
enum OperationsJSON {
    static func response(_ status: HTTPResponse.Status, _ object: [String: Any]) -> Response {
        let data = JSONWriter.data(object)
        return Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ status: HTTPResponse.Status, _ code: String, _ message: String, field: String? = nil) -> Response {
        var error: [String: Any] = ["code": code, "message": message]
        if let field { error["field"] = field }
        return Self.response(status, ["error": error])
    }
}
