import Foundation
import GRDB

/// The embedded store's schema: every table, index and migration of ``SQLiteStore``, in the
/// order they were introduced. A migration, once released, never changes: a change is a new
/// migration at the end.
enum SQLiteSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE nodes (
                        node_id BLOB NOT NULL PRIMARY KEY,
                        public_key BLOB NOT NULL,
                        key_id INTEGER NOT NULL,
                        role INTEGER NOT NULL,
                        site TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        revoked_at INTEGER
                    ) WITHOUT ROWID;
                    CREATE TABLE enrollment_tokens (
                        token_hash BLOB NOT NULL PRIMARY KEY,
                        site TEXT NOT NULL,
                        role INTEGER NOT NULL,
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL,
                        used_at INTEGER,
                        node_id BLOB
                    ) WITHOUT ROWID;
                    CREATE TABLE batches (
                        origin BLOB NOT NULL,
                        sequence INTEGER NOT NULL,
                        record_count INTEGER NOT NULL,
                        stored_records INTEGER NOT NULL,
                        received_at INTEGER NOT NULL,
                        PRIMARY KEY (origin, sequence)
                    ) WITHOUT ROWID;
                    CREATE TABLE records (
                        id BLOB NOT NULL PRIMARY KEY,
                        origin BLOB NOT NULL,
                        sequence INTEGER NOT NULL,
                        source INTEGER NOT NULL,
                        scale INTEGER NOT NULL,
                        score INTEGER NOT NULL,
                        negative INTEGER NOT NULL,
                        occurred_at INTEGER NOT NULL,
                        captured_at INTEGER NOT NULL,
                        stored_at INTEGER NOT NULL,
                        site TEXT NOT NULL,
                        channel TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        topic TEXT NOT NULL,
                        survey TEXT NOT NULL,
                        customer TEXT NOT NULL,
                        comment TEXT NOT NULL,
                        attributes TEXT NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX records_by_time ON records (occurred_at);
                    CREATE INDEX records_by_site ON records (site, occurred_at);
                    CREATE INDEX records_by_subject ON records (subject, occurred_at);
                    CREATE INDEX records_by_score ON records (scale, score, occurred_at);
                    """
            )
        }
        migrator.registerMigration("v2-alerts") { db in
            try db.execute(
                sql: """
                    CREATE TABLE alerts (
                        id BLOB NOT NULL PRIMARY KEY,
                        rule TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        status TEXT NOT NULL,
                        level INTEGER NOT NULL,
                        max_level INTEGER NOT NULL,
                        site TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        summary TEXT NOT NULL,
                        details TEXT NOT NULL,
                        record_id BLOB,
                        created_at INTEGER NOT NULL,
                        captured_at INTEGER NOT NULL,
                        deadline_at INTEGER,
                        acknowledged_at INTEGER,
                        closed_at INTEGER,
                        note TEXT NOT NULL DEFAULT ''
                    ) WITHOUT ROWID;
                    CREATE INDEX alerts_by_status ON alerts (status, created_at);
                    CREATE INDEX alerts_by_deadline ON alerts (status, deadline_at);
                    CREATE TABLE alert_deliveries (
                        id BLOB NOT NULL PRIMARY KEY,
                        alert_id BLOB NOT NULL,
                        level INTEGER NOT NULL,
                        target TEXT NOT NULL,
                        state TEXT NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        next_attempt_at INTEGER NOT NULL,
                        last_error TEXT NOT NULL DEFAULT '',
                        delivered_at INTEGER,
                        UNIQUE (alert_id, level, target)
                    ) WITHOUT ROWID;
                    CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_attempt_at);
                    CREATE TABLE alert_windows (
                        rule TEXT NOT NULL,
                        key TEXT NOT NULL,
                        firing INTEGER NOT NULL,
                        PRIMARY KEY (rule, key)
                    ) WITHOUT ROWID;
                    """
            )
        }
        migrator.registerMigration("v3-site-scopes") { db in
            // Before scopes a node's site was informational; "" meant none. A node or token
            // with a site is bound to it; one without keeps reporting for any site, so an
            // upgrade refuses none of its ratings (the hub logs how many such nodes there are;
            // `feedback-hub agents sites` narrows them).
            try db.execute(
                sql: """
                    ALTER TABLE nodes ADD COLUMN sites TEXT NOT NULL DEFAULT '*';
                    UPDATE nodes SET sites = site WHERE site <> '';
                    ALTER TABLE nodes DROP COLUMN site;
                    ALTER TABLE enrollment_tokens ADD COLUMN sites TEXT NOT NULL DEFAULT '*';
                    UPDATE enrollment_tokens SET sites = site WHERE site <> '';
                    ALTER TABLE enrollment_tokens DROP COLUMN site;
                    """
            )
        }
        migrator.registerMigration("v4-node-status") { db in
            // The index makes a node's newest batch one seek, so "last seen" costs one lookup
            // per node and not a scan of its batches (built once, on upgrade).
            try db.execute(
                sql: """
                    CREATE TABLE node_status (
                        node_id BLOB NOT NULL PRIMARY KEY,
                        received_at INTEGER NOT NULL,
                        sent_at INTEGER NOT NULL,
                        via BLOB,
                        body TEXT NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX batches_by_origin_received ON batches (origin, received_at);
                    """
            )
        }
        migrator.registerMigration("v5-alert-window-events") { db in
            // A window rule counts the ratings it considered (AlertEvaluator decides which, in
            // Swift, once), not a query over `records` that repeated its filters in SQL. On
            // upgrade the windows start empty: a window rule can fire again once its window
            // has filled with new ratings.
            try db.execute(
                sql: """
                    CREATE TABLE alert_window_events (
                        rule TEXT NOT NULL,
                        key TEXT NOT NULL,
                        occurred_at INTEGER NOT NULL,
                        record_id BLOB NOT NULL,
                        negative INTEGER NOT NULL,
                        stored_at INTEGER NOT NULL,
                        PRIMARY KEY (rule, key, occurred_at, record_id)
                    ) WITHOUT ROWID;
                    CREATE INDEX alert_window_events_by_arrival ON alert_window_events (stored_at);
                    """
            )
        }
        migrator.registerMigration("v6-access") { db in
            // API tokens of the operations port (their secrets' SHA-256 only) and the audit
            // trail of changes made through it or the command line.
            try db.execute(
                sql: """
                    CREATE TABLE api_tokens (
                        id BLOB NOT NULL PRIMARY KEY,
                        token_hash BLOB NOT NULL UNIQUE,
                        name TEXT NOT NULL,
                        role TEXT NOT NULL,
                        sites TEXT NOT NULL,
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER,
                        revoked_at INTEGER
                    ) WITHOUT ROWID;
                    CREATE TABLE audit (
                        sequence INTEGER PRIMARY KEY AUTOINCREMENT,
                        at INTEGER NOT NULL,
                        actor_token BLOB,
                        actor_name TEXT NOT NULL,
                        action TEXT NOT NULL,
                        object BLOB NOT NULL,
                        from_state TEXT NOT NULL,
                        to_state TEXT NOT NULL,
                        note TEXT NOT NULL
                    );
                    CREATE INDEX audit_by_object ON audit (object, sequence);
                    """
            )
        }
        migrator.registerMigration("v7-rollups") { db in
            // Rating counts per hourly cell (RollupCell) and per site and local day
            // (SiteCell): reports read these, not the records. Added to in each commit's
            // transaction; filled here once from the records already stored, misuse judged
            // by the same Swift rule as at commit.
            try db.execute(
                sql: """
                    CREATE TABLE rollups (
                        hour INTEGER NOT NULL,
                        site TEXT NOT NULL,
                        subject TEXT NOT NULL,
                        channel TEXT NOT NULL,
                        topic TEXT NOT NULL,
                        source INTEGER NOT NULL,
                        survey TEXT NOT NULL,
                        scale INTEGER NOT NULL,
                        score INTEGER NOT NULL,
                        misuse INTEGER NOT NULL,
                        count INTEGER NOT NULL,
                        PRIMARY KEY (hour, site, subject, channel, topic, source, survey, scale, score, misuse)
                    ) WITHOUT ROWID;
                    CREATE TABLE daily_rollups (
                        day INTEGER NOT NULL,
                        site TEXT NOT NULL,
                        source INTEGER NOT NULL,
                        scale INTEGER NOT NULL,
                        score INTEGER NOT NULL,
                        misuse INTEGER NOT NULL,
                        count INTEGER NOT NULL,
                        PRIMARY KEY (day, site, source, scale, score, misuse)
                    ) WITHOUT ROWID;
                    CREATE TABLE report_settings (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
                    CREATE INDEX records_negative_by_site ON records (site, occurred_at) WHERE negative = 1;
                    """
            )
            // The daily rollups are counted in the report zone once the store knows it
            // (SQLiteStore.alignReportZone), right after the migrations.
            try SQLiteStore.backfillRollups(db)
        }
        migrator.registerMigration("v8-cases") { db in
            // Every alert is a case (docs/ALERTS.md, "Cases"): an owner, a due time and its
            // follow-ups (remind_at and overdue_at: pending until sent or the case closes),
            // the last change (the stuck list), whether the customer was reached. The old
            // statuses map onto the new life. Deliveries carry their event and, for a case
            // event, the case as it left it; an alert can now have several deliveries at
            // one level to one target, so the table is rebuilt without that uniqueness.
            try db.execute(
                sql: """
                    ALTER TABLE alerts RENAME COLUMN acknowledged_at TO first_action_at;
                    ALTER TABLE alerts ADD COLUMN owner TEXT NOT NULL DEFAULT '';
                    ALTER TABLE alerts ADD COLUMN due_at INTEGER;
                    ALTER TABLE alerts ADD COLUMN remind_at INTEGER;
                    ALTER TABLE alerts ADD COLUMN overdue_at INTEGER;
                    ALTER TABLE alerts ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
                    ALTER TABLE alerts ADD COLUMN customer_reached INTEGER;
                    UPDATE alerts SET
                        status = CASE status WHEN 'acknowledged' THEN 'inProgress' WHEN 'resolved' THEN 'completed' ELSE status END,
                        first_action_at = COALESCE(first_action_at, closed_at),
                        updated_at = COALESCE(closed_at, first_action_at, created_at);
                    CREATE INDEX alerts_by_created ON alerts (created_at);
                    CREATE INDEX alerts_reminders ON alerts (remind_at) WHERE remind_at IS NOT NULL;
                    CREATE INDEX alerts_overdue ON alerts (overdue_at) WHERE overdue_at IS NOT NULL;
                    CREATE TABLE alert_deliveries_v8 (
                        id BLOB NOT NULL PRIMARY KEY,
                        alert_id BLOB NOT NULL,
                        level INTEGER NOT NULL,
                        target TEXT NOT NULL,
                        event TEXT NOT NULL,
                        payload TEXT,
                        state TEXT NOT NULL,
                        attempts INTEGER NOT NULL DEFAULT 0,
                        next_attempt_at INTEGER NOT NULL,
                        last_error TEXT NOT NULL DEFAULT '',
                        delivered_at INTEGER
                    ) WITHOUT ROWID;
                    INSERT INTO alert_deliveries_v8
                        SELECT id, alert_id, level, target, CASE WHEN level = 0 THEN 'alert.raised' ELSE 'alert.escalated' END, NULL,
                            state, attempts, next_attempt_at, last_error, delivered_at
                        FROM alert_deliveries;
                    DROP TABLE alert_deliveries;
                    ALTER TABLE alert_deliveries_v8 RENAME TO alert_deliveries;
                    CREATE INDEX alert_deliveries_due ON alert_deliveries (state, next_attempt_at);
                    CREATE INDEX alert_deliveries_by_alert ON alert_deliveries (alert_id);
                    """
            )
        }
        migrator.registerMigration("v9-sessions") { db in
            // Browser sessions of the operations port: a token exchanged for a cookie (the
            // cookie's SHA-256 only), ending at expires_at or at logout.
            try db.execute(
                sql: """
                    CREATE TABLE sessions (
                        hash BLOB NOT NULL PRIMARY KEY,
                        token_id BLOB NOT NULL,
                        created_at INTEGER NOT NULL,
                        expires_at INTEGER NOT NULL
                    ) WITHOUT ROWID;
                    CREATE INDEX sessions_by_token ON sessions (token_id, created_at);
                    CREATE INDEX sessions_by_expiry ON sessions (expires_at);
                    """
            )
        }
        migrator.registerMigration("v10-daily-score-columns") { db in
            // The daily rollups count every score of a site's day on one scale in one row, a
            // column per score (ScoreCounts), rather than a row per score: a month of a
            // site is a sixth of the rows to read (docs/BENCHMARKS.md). Counted again from
            // the hourly rollups in the zone they were counted in; a store that never
            // counted them counts them at start (SQLiteStore.alignReportZone).
            try db.execute(
                sql: """
                    DROP TABLE daily_rollups;
                    CREATE TABLE daily_rollups (
                        day INTEGER NOT NULL,
                        site TEXT NOT NULL,
                        source INTEGER NOT NULL,
                        scale INTEGER NOT NULL,
                        misuse INTEGER NOT NULL,
                        s0 INTEGER NOT NULL DEFAULT 0,
                        s1 INTEGER NOT NULL DEFAULT 0,
                        s2 INTEGER NOT NULL DEFAULT 0,
                        s3 INTEGER NOT NULL DEFAULT 0,
                        s4 INTEGER NOT NULL DEFAULT 0,
                        s5 INTEGER NOT NULL DEFAULT 0,
                        s6 INTEGER NOT NULL DEFAULT 0,
                        s7 INTEGER NOT NULL DEFAULT 0,
                        s8 INTEGER NOT NULL DEFAULT 0,
                        s9 INTEGER NOT NULL DEFAULT 0,
                        s10 INTEGER NOT NULL DEFAULT 0,
                        PRIMARY KEY (day, site, source, scale, misuse)
                    ) WITHOUT ROWID;
                    """
            )
            let stored = try String.fetchOne(db, sql: "SELECT value FROM report_settings WHERE key = 'timeZone'")
            if let zone = stored.flatMap(TimeZone.init(identifier:)) { try SQLiteStore.countDays(db, in: zone) }
        }
        migrator.registerMigration("v11-site-hours") { db in
            // Ratings per UTC hour, site, source, scale and misuse flag, a column per score:
            // reports by site and source read these for the hours beside whole days and in
            // a zone other than the report zone, a seventh of the hourly rollups' rows.
            // Counted here from the hourly rollups; added to in each commit's transaction.
            try db.execute(
                sql: """
                    CREATE TABLE site_hours (
                        hour INTEGER NOT NULL,
                        site TEXT NOT NULL,
                        source INTEGER NOT NULL,
                        scale INTEGER NOT NULL,
                        misuse INTEGER NOT NULL,
                        s0 INTEGER NOT NULL DEFAULT 0,
                        s1 INTEGER NOT NULL DEFAULT 0,
                        s2 INTEGER NOT NULL DEFAULT 0,
                        s3 INTEGER NOT NULL DEFAULT 0,
                        s4 INTEGER NOT NULL DEFAULT 0,
                        s5 INTEGER NOT NULL DEFAULT 0,
                        s6 INTEGER NOT NULL DEFAULT 0,
                        s7 INTEGER NOT NULL DEFAULT 0,
                        s8 INTEGER NOT NULL DEFAULT 0,
                        s9 INTEGER NOT NULL DEFAULT 0,
                        s10 INTEGER NOT NULL DEFAULT 0,
                        PRIMARY KEY (hour, site, source, scale, misuse)
                    ) WITHOUT ROWID;
                    """
            )
            try SQLiteStore.countSiteHours(db)
        }
        migrator.registerMigration("v12-listing-indexes-only") { db in
            // Statistics come from the rollups: the record indexes by subject and by score
            // served only them, and each cost every commit a B-tree insert per record. The
            // listings keep theirs: by time, by site, and the negatives by site.
            try db.execute(sql: "DROP INDEX IF EXISTS records_by_subject; DROP INDEX IF EXISTS records_by_score")
        }
        return migrator
    }
}
