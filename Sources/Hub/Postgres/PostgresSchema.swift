import Foundation

/// The PostgreSQL store's schema: every table, index and migration of ``PostgresStore``, in
/// the order they were introduced. A migration, once released, never changes: a change is
/// a new migration at the end. ``PostgresStore`` applies the missing ones at start, holding
/// ``migrationLock`` (a session advisory lock), so hubs that start together migrate once.
enum PostgresSchema {
    /// The advisory lock key migrations and partition upkeep hold ("FMSH" as a number).
    static let migrationLock: Int64 = 0x464D_5348

    /// Migrations by version, in order.
    static let migrations: [(version: String, sql: String)] = [
        (
            "v1",
            """
            CREATE TABLE nodes (
                node_id uuid PRIMARY KEY,
                public_key bytea NOT NULL,
                key_id bigint NOT NULL,
                role smallint NOT NULL,
                sites text NOT NULL,
                created_at bigint NOT NULL,
                revoked_at bigint
            );
            CREATE TABLE enrollment_tokens (
                token_hash bytea PRIMARY KEY,
                sites text NOT NULL,
                role smallint NOT NULL,
                created_at bigint NOT NULL,
                expires_at bigint NOT NULL,
                used_at bigint,
                node_id uuid
            );
            CREATE TABLE batches (
                origin uuid NOT NULL,
                sequence bigint NOT NULL,
                record_count integer NOT NULL,
                stored_records integer NOT NULL,
                received_at bigint NOT NULL,
                PRIMARY KEY (origin, sequence)
            );
            CREATE INDEX batches_by_origin_received ON batches (origin, received_at);
            -- Partitioned by the record id's range: a UUIDv7 begins with its capture time in
            -- ms, so a month of ids is one range, and the primary key (the id, which is the
            -- partition key) stays unique across every partition: each duplicate is caught.
            -- Ids outside the partitions made so far (a clock far ahead, ids of other
            -- versions) land in the default partition.
            CREATE TABLE records (
                id uuid NOT NULL,
                origin uuid NOT NULL,
                sequence bigint NOT NULL,
                source smallint NOT NULL,
                scale smallint NOT NULL,
                score smallint NOT NULL,
                negative boolean NOT NULL,
                occurred_at bigint NOT NULL,
                captured_at bigint NOT NULL,
                stored_at bigint NOT NULL,
                site text NOT NULL,
                channel text NOT NULL,
                subject text NOT NULL,
                topic text NOT NULL,
                survey text NOT NULL,
                customer text NOT NULL,
                comment text NOT NULL,
                attributes text NOT NULL,
                PRIMARY KEY (id)
            ) PARTITION BY RANGE (id);
            CREATE TABLE records_default PARTITION OF records DEFAULT;
            CREATE INDEX records_by_time ON records (occurred_at);
            CREATE INDEX records_by_site ON records (site, occurred_at);
            CREATE INDEX records_by_subject ON records (subject, occurred_at);
            CREATE INDEX records_by_score ON records (scale, score, occurred_at);
            CREATE TABLE alerts (
                id uuid PRIMARY KEY,
                rule text NOT NULL,
                kind text NOT NULL,
                status text NOT NULL,
                level integer NOT NULL,
                max_level integer NOT NULL,
                site text NOT NULL,
                subject text NOT NULL,
                summary text NOT NULL,
                details text NOT NULL,
                record_id uuid,
                created_at bigint NOT NULL,
                captured_at bigint NOT NULL,
                deadline_at bigint,
                acknowledged_at bigint,
                closed_at bigint,
                note text NOT NULL DEFAULT ''
            );
            CREATE INDEX alerts_by_status ON alerts (status, created_at);
            CREATE INDEX alerts_by_deadline ON alerts (status, deadline_at);
            -- claimed_by and claimed_until: the hub sending a delivery holds a lease on it, so
            -- each webhook goes out from one hub, and a dead hub's claims pass to the others
            -- when the lease ends.
            CREATE TABLE alert_deliveries (
                id uuid PRIMARY KEY,
                alert_id uuid NOT NULL,
                level integer NOT NULL,
                target text NOT NULL,
                state text NOT NULL,
                attempts integer NOT NULL DEFAULT 0,
                next_attempt_at bigint NOT NULL,
                last_error text NOT NULL DEFAULT '',
                delivered_at bigint,
                claimed_by uuid,
                claimed_until bigint,
                UNIQUE (alert_id, level, target)
            );
            CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_attempt_at);
            CREATE TABLE alert_windows (
                rule text NOT NULL,
                key text NOT NULL,
                firing boolean NOT NULL,
                PRIMARY KEY (rule, key)
            );
            CREATE TABLE alert_window_events (
                rule text NOT NULL,
                key text NOT NULL,
                occurred_at bigint NOT NULL,
                record_id uuid NOT NULL,
                negative boolean NOT NULL,
                stored_at bigint NOT NULL,
                PRIMARY KEY (rule, key, occurred_at, record_id)
            );
            CREATE INDEX alert_window_events_by_arrival ON alert_window_events (stored_at);
            CREATE TABLE node_status (
                node_id uuid PRIMARY KEY,
                received_at bigint NOT NULL,
                sent_at bigint NOT NULL,
                via uuid,
                body text NOT NULL
            );
            """
        ),
        (
            "v2-access",
            """
            CREATE TABLE api_tokens (
                id uuid PRIMARY KEY,
                token_hash bytea NOT NULL UNIQUE,
                name text NOT NULL,
                role text NOT NULL,
                sites text NOT NULL,
                created_at bigint NOT NULL,
                expires_at bigint,
                revoked_at bigint
            );
            CREATE TABLE audit (
                sequence bigserial PRIMARY KEY,
                at bigint NOT NULL,
                actor_token uuid,
                actor_name text NOT NULL,
                action text NOT NULL,
                object uuid NOT NULL,
                from_state text NOT NULL,
                to_state text NOT NULL,
                note text NOT NULL
            );
            CREATE INDEX audit_by_object ON audit (object, sequence);
            """
        ),
        (
            "v3-rollups",
            // Rating counts per hourly cell (RollupCell) and per site and local day
            // (SiteCell): reports read these, not the records. Added to in each commit's
            // transaction; the hourly ones filled once from the stored records by `backfills`
            // (misuse judged by the same Swift rule as at commit), the daily ones by
            // PostgresStore.alignReportZone. They hold no customer data and outlive
            // `retentionMonths`.
            """
            CREATE TABLE rollups (
                hour bigint NOT NULL,
                site text NOT NULL,
                subject text NOT NULL,
                channel text NOT NULL,
                topic text NOT NULL,
                source smallint NOT NULL,
                survey text NOT NULL,
                scale smallint NOT NULL,
                score smallint NOT NULL,
                misuse boolean NOT NULL,
                count bigint NOT NULL,
                PRIMARY KEY (hour, site, subject, channel, topic, source, survey, scale, score, misuse)
            );
            CREATE TABLE daily_rollups (
                day bigint NOT NULL,
                site text NOT NULL,
                source smallint NOT NULL,
                scale smallint NOT NULL,
                score smallint NOT NULL,
                misuse boolean NOT NULL,
                count bigint NOT NULL,
                PRIMARY KEY (day, site, source, scale, score, misuse)
            );
            CREATE TABLE report_settings (key text PRIMARY KEY, value text NOT NULL);
            CREATE INDEX records_negative_by_site ON records (site, occurred_at) WHERE negative;
            """
        ),
        (
            "v4-cases",
            // Every alert is a case (docs/ALERTS.md, "Cases"): an owner, a due time and its
            // follow-ups (remind_at and overdue_at: pending until sent or the case closes),
            // the last change (the stuck list), whether the customer was reached. The old
            // statuses map onto the new life. Deliveries carry their event and, for a case
            // event, the case as it left it; an alert can now have several deliveries at one
            // level to one target.
            """
            ALTER TABLE alerts RENAME COLUMN acknowledged_at TO first_action_at;
            ALTER TABLE alerts ADD COLUMN owner text NOT NULL DEFAULT '';
            ALTER TABLE alerts ADD COLUMN due_at bigint;
            ALTER TABLE alerts ADD COLUMN remind_at bigint;
            ALTER TABLE alerts ADD COLUMN overdue_at bigint;
            ALTER TABLE alerts ADD COLUMN updated_at bigint NOT NULL DEFAULT 0;
            ALTER TABLE alerts ADD COLUMN customer_reached boolean;
            UPDATE alerts SET
                status = CASE status WHEN 'acknowledged' THEN 'inProgress' WHEN 'resolved' THEN 'completed' ELSE status END,
                first_action_at = COALESCE(first_action_at, closed_at),
                updated_at = COALESCE(closed_at, first_action_at, created_at);
            CREATE INDEX alerts_by_created ON alerts (created_at);
            CREATE INDEX alerts_reminders ON alerts (remind_at) WHERE remind_at IS NOT NULL;
            CREATE INDEX alerts_overdue ON alerts (overdue_at) WHERE overdue_at IS NOT NULL;
            ALTER TABLE alert_deliveries DROP CONSTRAINT alert_deliveries_alert_id_level_target_key;
            ALTER TABLE alert_deliveries ADD COLUMN event text NOT NULL DEFAULT '';
            ALTER TABLE alert_deliveries ADD COLUMN payload text;
            UPDATE alert_deliveries SET event = CASE WHEN level = 0 THEN 'alert.raised' ELSE 'alert.escalated' END;
            ALTER TABLE alert_deliveries ALTER COLUMN event DROP DEFAULT;
            CREATE INDEX alert_deliveries_by_alert ON alert_deliveries (alert_id);
            """
        ),
        (
            "v5-sessions",
            // Browser sessions of the operations port: a token exchanged for a cookie (the
            // cookie's SHA-256 only), ending at expires_at or at logout.
            """
            CREATE TABLE sessions (
                hash bytea PRIMARY KEY,
                token_id uuid NOT NULL,
                created_at bigint NOT NULL,
                expires_at bigint NOT NULL
            );
            CREATE INDEX sessions_by_token ON sessions (token_id, created_at);
            CREATE INDEX sessions_by_expiry ON sessions (expires_at);
            """
        ),
        (
            "v6-daily-score-columns",
            // The daily rollups count every score of a site's day on one scale in one row, a
            // column per score (ScoreCounts), rather than a row per score: a sixth of the rows
            // to read. Counted again from the hourly rollups in the zone they were counted in
            // (the backfill); a database that never counted them counts them at start.
            """
            DROP TABLE daily_rollups;
            CREATE TABLE daily_rollups (
                day bigint NOT NULL,
                site text NOT NULL,
                source smallint NOT NULL,
                scale smallint NOT NULL,
                misuse boolean NOT NULL,
                s0 bigint NOT NULL DEFAULT 0,
                s1 bigint NOT NULL DEFAULT 0,
                s2 bigint NOT NULL DEFAULT 0,
                s3 bigint NOT NULL DEFAULT 0,
                s4 bigint NOT NULL DEFAULT 0,
                s5 bigint NOT NULL DEFAULT 0,
                s6 bigint NOT NULL DEFAULT 0,
                s7 bigint NOT NULL DEFAULT 0,
                s8 bigint NOT NULL DEFAULT 0,
                s9 bigint NOT NULL DEFAULT 0,
                s10 bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (day, site, source, scale, misuse)
            );
            """
        ),
        (
            "v7-site-hours",
            // Ratings per UTC hour, site, source, scale and misuse flag, a column per score:
            // reports by site and source read these for the hours beside whole days and in a
            // zone other than the report zone. Counted from the hourly rollups (the backfill).
            """
            CREATE TABLE site_hours (
                hour bigint NOT NULL,
                site text NOT NULL,
                source smallint NOT NULL,
                scale smallint NOT NULL,
                misuse boolean NOT NULL,
                s0 bigint NOT NULL DEFAULT 0,
                s1 bigint NOT NULL DEFAULT 0,
                s2 bigint NOT NULL DEFAULT 0,
                s3 bigint NOT NULL DEFAULT 0,
                s4 bigint NOT NULL DEFAULT 0,
                s5 bigint NOT NULL DEFAULT 0,
                s6 bigint NOT NULL DEFAULT 0,
                s7 bigint NOT NULL DEFAULT 0,
                s8 bigint NOT NULL DEFAULT 0,
                s9 bigint NOT NULL DEFAULT 0,
                s10 bigint NOT NULL DEFAULT 0,
                PRIMARY KEY (hour, site, source, scale, misuse)
            );
            """
        ),
        (
            "v8-listing-indexes-only",
            // Statistics come from the rollups: the record indexes by subject and by score
            // served only them, and each cost every commit an index insert per record. The
            // listings keep theirs: by time, by site, and the negatives by site.
            """
            DROP INDEX IF EXISTS records_by_subject;
            DROP INDEX IF EXISTS records_by_score;
            """
        ),
    ]

    /// Work a migration does in Swift after its SQL, in the same transaction.
    static let backfills: [String: @Sendable (PostgresSession) throws -> Void] = [
        "v3-rollups": PostgresStore.backfillRollups,
        "v6-daily-score-columns": { session in
            let stored = try session.query("SELECT value FROM report_settings WHERE key = 'timeZone'").first?.decode(String.self)
            if let zone = stored.flatMap(TimeZone.init(identifier:)) { try PostgresStore.countDays(session, in: zone) }
        },
        "v7-site-hours": PostgresStore.countSiteHours,
    ]
}

extension PostgresSchema {
    /// The statements of a migration, one per `;` at a line's end (PostgreSQL's extended
    /// protocol takes one statement at a time). Comment lines are left out.
    static func statements(of sql: String) -> [String] {
        var statements: [String] = []
        var current: [Substring] = []
        for line in sql.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty || trimmed.hasPrefix("--") { continue }
            current.append(line)
            if trimmed.hasSuffix(";") {
                statements.append(current.joined(separator: "\n"))
                current = []
            }
        }
        if !current.isEmpty { statements.append(current.joined(separator: "\n")) }
        return statements
    }
}
