import Foundation
import PostgresNIO
import Wire

extension PostgresStore: ReportStore {}

extension PostgresStore: FleetStatusStore {
    public func keep(_ statuses: [KeptStatus]) throws {
        guard !statuses.isEmpty else { return }
        try self.pool.withSession { session in
            try session.execute(
                """
                INSERT INTO node_status (node_id, received_at, sent_at, via, body)
                SELECT node_id, received_at, sent_at, NULLIF(via, \(PostgresAlertLedger.noRecord)), body
                FROM UNNEST(\(statuses.map(\.nodeID))::uuid[], \(statuses.map(\.receivedAt))::int8[], \(statuses.map(\.sentAt))::int8[],
                    \(statuses.map { $0.via ?? PostgresAlertLedger.noRecord })::uuid[], \(statuses.map(\.body))::text[])
                    AS t(node_id, received_at, sent_at, via, body)
                ON CONFLICT (node_id) DO UPDATE SET received_at = excluded.received_at, sent_at = excluded.sent_at,
                    via = excluded.via, body = excluded.body
                WHERE excluded.sent_at > node_status.sent_at
                """
            )
        }
    }

    public func fleet() throws -> [FleetNode] {
        try self.pool.withSession { session in
            try session.query(
                """
                SELECT n.node_id, n.public_key, n.key_id, n.role, n.sites, n.created_at, n.revoked_at,
                    s.received_at, s.sent_at, s.via, s.body,
                    (SELECT MAX(b.received_at) FROM batches b WHERE b.origin = n.node_id)
                FROM nodes n LEFT JOIN node_status s ON s.node_id = n.node_id
                ORDER BY n.created_at
                """
            ).compactMap { row -> FleetNode? in
                guard let node = try Self.node(row) else { return nil }
                let columns = row.makeRandomAccess()
                let receivedAt = try columns[7].decode(Int64?.self)
                let sentAt = try columns[8].decode(Int64?.self)
                let via = try columns[9].decode(UUID?.self)
                let body = try columns[10].decode(String?.self)
                let batchAt = try columns[11].decode(Int64?.self)
                var status: KeptStatus?
                if let receivedAt, let sentAt, let body {
                    status = KeptStatus(nodeID: node.nodeID, receivedAt: receivedAt, sentAt: sentAt, via: via, body: body)
                }
                let seen = [status?.receivedAt, batchAt].compactMap { $0 }.max()
                return FleetNode(node: node, lastSeenAt: seen, status: status)
            }
        }
    }
}
