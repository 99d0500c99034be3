import Foundation
import GRDB
import Wire

extension SQLiteStore: FleetStatusStore {
    public func keep(_ statuses: [KeptStatus]) throws {
        guard !statuses.isEmpty else { return }
        try self.pool.write { db in
            let statement = try db.cachedStatement(
                sql: """
                    INSERT INTO node_status (node_id, received_at, sent_at, via, body) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (node_id) DO UPDATE SET received_at = excluded.received_at, sent_at = excluded.sent_at,
                        via = excluded.via, body = excluded.body
                    WHERE excluded.sent_at > node_status.sent_at
                    """
            )
            for status in statuses {
                try statement.execute(arguments: [status.nodeID, status.receivedAt, status.sentAt, status.via, status.body])
            }
        }
    }

    public func fleet() throws -> [FleetNode] {
        try self.pool.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT n.*, s.received_at AS status_received_at, s.sent_at AS status_sent_at, s.via AS status_via,
                        CAST(s.body AS BLOB) AS status_body,
                        (SELECT MAX(b.received_at) FROM batches b WHERE b.origin = n.node_id) AS batch_received_at
                    FROM nodes n LEFT JOIN node_status s ON s.node_id = n.node_id
                    ORDER BY n.created_at
                    """
            ).compactMap { row in
                guard let node = Self.node(row) else { return nil }
                var status: KeptStatus?
                if let receivedAt = row["status_received_at"] as Int64?, let sentAt = row["status_sent_at"] as Int64?,
                    let body = row["status_body"] as Data?
                {
                    status = KeptStatus(
                        nodeID: node.nodeID, receivedAt: receivedAt, sentAt: sentAt, via: row["status_via"] as UUID?,
                        body: String(decoding: body, as: UTF8.self)
                    )
                }
                let seen = [status?.receivedAt, row["batch_received_at"] as Int64?].compactMap { $0 }.max()
                return FleetNode(node: node, lastSeenAt: seen, status: status)
            }
        }
    }
}
