//! The SQLite backend: the embedded default (`sqlite://PATH`).
//!
//! WAL journal, `synchronous = FULL` (a committed capture survives power
//! loss), foreign keys on, and writes in `BEGIN IMMEDIATE` transactions so
//! concurrent writers queue on the busy timeout instead of failing.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Row;

use super::{
    db_time, parse_db_time, shared_sql, CaptureQuery, Hit, Index, IndexError, LinkFilter,
    RecordQuery,
};
use crate::model::{ApiToken, PageChange, PendingObject, Role};
use crate::model::{
    Capture, CaptureId, CaptureStatus, Claim, CustodyEvent, EvidenceLink, NewRun, PassageCheck,
    RecordEntry, Relation, Resource, Run, RunFinish, RunState, Sha256, Stats, WarcRef,
};

/// Migrations in order; each runs once, in its own transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("migrations/sqlite/0001_initial.sql"),
    ),
    (2, "runs", include_str!("migrations/sqlite/0002_runs.sql")),
    (
        3,
        "provenance",
        include_str!("migrations/sqlite/0003_provenance.sql"),
    ),
    (
        4,
        "pending objects",
        include_str!("migrations/sqlite/0004_pending_objects.sql"),
    ),
    (
        5,
        "page change",
        include_str!("migrations/sqlite/0005_page_change.sql"),
    ),
    (
        6,
        "transparency log",
        include_str!("migrations/sqlite/0006_transparency_log.sql"),
    ),
    (
        7,
        "fixity",
        include_str!("migrations/sqlite/0007_fixity.sql"),
    ),
    (
        8,
        "timestamps",
        include_str!("migrations/sqlite/0008_timestamps.sql"),
    ),
    (
        9,
        "api tokens",
        include_str!("migrations/sqlite/0009_api_tokens.sql"),
    ),
];

pub struct SqliteIndex {
    pool: SqlitePool,
}

impl SqliteIndex {
    pub async fn open(path: &Path) -> Result<SqliteIndex, IndexError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| IndexError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await?;
        let index = SqliteIndex { pool };
        index.migrate().await?;
        Ok(index)
    }

    async fn migrate(&self) -> Result<(), IndexError> {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS custody_migration (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)",
        )
        .execute(&self.pool)
        .await?;
        for (version, name, sql) in MIGRATIONS {
            let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM custody_migration WHERE version = ?")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(*sql))
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "INSERT INTO custody_migration (version, name, applied_at) VALUES (?, ?, ?)",
            )
            .bind(version)
            .bind(name)
            .bind(db_time(&Utc::now()))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn resources(&self, id: &str) -> Result<Vec<Resource>, IndexError> {
        let rows = sqlx::query(
            "SELECT url, status, mime, payload_sha256, bytes, truncated, error FROM resource WHERE capture_id = ? ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Resource {
                    url: r.get("url"),
                    status: r.get::<Option<i64>, _>("status").map(|s| s as u16),
                    mime: r.get("mime"),
                    payload_sha256: opt_digest(r.get("payload_sha256"))?,
                    bytes: r.get::<i64, _>("bytes") as u64,
                    truncated: r.get("truncated"),
                    error: r.get("error"),
                })
            })
            .collect()
    }

    async fn capture_from_row(&self, row: &SqliteRow) -> Result<Capture, IndexError> {
        let id: String = row.get("id");
        let status: String = row.get("status");
        let warc = match row.get::<Option<String>, _>("warc_sha256") {
            Some(sha) => Some(WarcRef {
                key: row.get("key"),
                sha256: digest(&sha)?,
                bytes: row.get::<i64, _>("bytes") as u64,
            }),
            None => None,
        };
        Ok(Capture {
            id: id
                .parse()
                .map_err(|_| IndexError::Corrupt(format!("capture id {id:?}")))?,
            seed_url: row.get("seed_url"),
            status: CaptureStatus::parse(&status)
                .ok_or_else(|| IndexError::Corrupt(format!("status {status:?}")))?,
            error: row.get("error"),
            started_at: parse_db_time(row.get("started_at"))?,
            finished_at: parse_db_time(row.get("finished_at"))?,
            warc,
            records: row.get::<i64, _>("record_count") as u64,
            resources: self.resources(&id).await?,
            schedule: row.get("schedule"),
            scheduled_for: row
                .get::<Option<String>, _>("scheduled_for")
                .as_deref()
                .map(parse_db_time)
                .transpose()?,
            change: page_change(
                row.get("previous_capture"),
                row.get::<Option<String>, _>("page_change").as_deref(),
            )?,
        })
    }
}

fn page_change(
    previous: Option<String>,
    change: Option<&str>,
) -> Result<Option<PageChange>, IndexError> {
    let Some(previous) = previous else {
        return Ok(None);
    };
    Ok(Some(PageChange {
        previous_capture: previous
            .parse()
            .map_err(|_| IndexError::Corrupt(format!("capture id {previous:?}")))?,
        changed: change == Some("changed"),
    }))
}

const CAPTURE_COLUMNS: &str = "SELECT c.id, c.seed_url, c.status, c.error, c.started_at, c.finished_at, c.warc_sha256, \
     c.record_count, c.schedule, c.scheduled_for, c.previous_capture, c.page_change, w.key, w.bytes FROM capture c LEFT JOIN warc_file w ON w.sha256 = c.warc_sha256";

const RECORD_COLUMNS: &str =
    "record_id, warc_type, target_uri, surt, date, timestamp, mime, status, \
     payload_digest, block_digest, offset, length";

fn digest(s: &str) -> Result<Sha256, IndexError> {
    s.parse()
        .map_err(|_| IndexError::Corrupt(format!("digest {s:?}")))
}

fn opt_digest(s: Option<String>) -> Result<Option<Sha256>, IndexError> {
    s.as_deref().map(digest).transpose()
}

fn record_from_row(r: &SqliteRow) -> Result<RecordEntry, IndexError> {
    Ok(RecordEntry {
        record_id: r.get("record_id"),
        warc_type: r.get("warc_type"),
        target_uri: r.get("target_uri"),
        surt: r.get("surt"),
        date: parse_db_time(r.get("date"))?,
        timestamp: r.get("timestamp"),
        mime: r.get("mime"),
        status: r.get::<Option<i64>, _>("status").map(|s| s as u16),
        payload_digest: opt_digest(r.get("payload_digest"))?,
        block_digest: digest(r.get("block_digest"))?,
        offset: r.get::<i64, _>("offset") as u64,
        length: r.get::<i64, _>("length") as u64,
    })
}

#[async_trait]
impl Index for SqliteIndex {
    async fn put_capture_with(
        &self,
        capture: &Capture,
        records: &[RecordEntry],
        log: bool,
    ) -> Result<(), IndexError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM capture WHERE id = ?")
            .bind(capture.id.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        if exists.is_some() {
            return Err(IndexError::Duplicate(capture.id.to_string()));
        }
        if let Some(warc) = &capture.warc {
            // The same bytes may already be known (content addressing).
            sqlx::query("INSERT INTO warc_file (sha256, key, bytes, stored_at) VALUES (?, ?, ?, ?) ON CONFLICT (sha256) DO NOTHING")
                .bind(warc.sha256.hex())
                .bind(&warc.key)
                .bind(warc.bytes as i64)
                .bind(db_time(&Utc::now()))
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query(
            "INSERT INTO capture (id, seed_url, status, error, started_at, finished_at, warc_sha256, record_count, \
             schedule, scheduled_for, previous_capture, page_change) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(capture.id.as_str())
        .bind(&capture.seed_url)
        .bind(capture.status.as_str())
        .bind(&capture.error)
        .bind(db_time(&capture.started_at))
        .bind(db_time(&capture.finished_at))
        .bind(capture.warc.as_ref().map(|w| w.sha256.hex()))
        .bind(capture.records as i64)
        .bind(&capture.schedule)
        .bind(capture.scheduled_for.as_ref().map(db_time))
        .bind(capture.change.as_ref().map(|c| c.previous_capture.to_string()))
        .bind(capture.change.as_ref().map(|c| {
            if c.changed {
                "changed"
            } else {
                "unchanged"
            }
        }))
        .execute(&mut *tx)
        .await?;
        for (seq, r) in capture.resources.iter().enumerate() {
            sqlx::query(
                "INSERT INTO resource (capture_id, seq, url, status, mime, payload_sha256, bytes, truncated, error) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(capture.id.as_str())
            .bind(seq as i64)
            .bind(&r.url)
            .bind(r.status.map(i64::from))
            .bind(&r.mime)
            .bind(r.payload_sha256.map(|d| d.hex()))
            .bind(r.bytes as i64)
            .bind(&r.truncated)
            .bind(&r.error)
            .execute(&mut *tx)
            .await?;
        }
        if let Some(warc) = &capture.warc {
            for r in records {
                sqlx::query(
                    "INSERT INTO record (record_id, capture_id, warc_sha256, warc_type, target_uri, surt, date, timestamp, \
                     mime, status, payload_digest, block_digest, offset, length) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(&r.record_id)
                .bind(capture.id.as_str())
                .bind(warc.sha256.hex())
                .bind(&r.warc_type)
                .bind(&r.target_uri)
                .bind(&r.surt)
                .bind(db_time(&r.date))
                .bind(&r.timestamp)
                .bind(&r.mime)
                .bind(r.status.map(i64::from))
                .bind(r.payload_digest.map(|d| d.hex()))
                .bind(r.block_digest.hex())
                .bind(r.offset as i64)
                .bind(r.length as i64)
                .execute(&mut *tx)
                .await?;
            }
        }
        // The capture is indexed: its upload is no longer pending.
        sqlx::query("DELETE FROM pending_object WHERE capture_id = ?")
            .bind(capture.id.as_str())
            .execute(&mut *tx)
            .await?;
        // The capture's first custody event, in the same transaction.
        let detail = serde_json::json!({
            "seed_url": capture.seed_url,
            "warc_sha256": capture.warc.as_ref().map(|w| w.sha256.hex()),
            "error": capture.error,
            "schedule": capture.schedule,
        });
        sqlx::query("INSERT INTO custody_event (object_kind, object_id, event, actor, at, outcome, detail) VALUES ('capture', ?, 'captured', ?, ?, ?, ?)")
            .bind(capture.id.as_str())
            .bind(capture.schedule.as_ref().map(|s| format!("schedule:{s}")).unwrap_or_else(|| "custody".into()))
            .bind(db_time(&capture.finished_at))
            .bind(capture.status.as_str())
            .bind(detail.to_string())
            .execute(&mut *tx)
            .await?;
        if log {
            append_leaf(&mut tx, &crate::tlog::capture_leaf(capture, records)).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn capture(&self, id: &CaptureId) -> Result<Option<Capture>, IndexError> {
        let sql = format!("{CAPTURE_COLUMNS} WHERE c.id = ?");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.capture_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    async fn captures(&self, seed_url: Option<&str>) -> Result<Vec<Capture>, IndexError> {
        let rows = match seed_url {
            Some(url) => {
                let sql =
                    format!("{CAPTURE_COLUMNS} WHERE c.seed_url = ? ORDER BY c.started_at, c.id");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(url)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql = format!("{CAPTURE_COLUMNS} ORDER BY c.started_at, c.id");
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.capture_from_row(row).await?);
        }
        Ok(out)
    }

    async fn latest_ok_capture(&self, seed_url: &str) -> Result<Option<Capture>, IndexError> {
        let sql = format!(
            "{CAPTURE_COLUMNS} WHERE c.seed_url = ? AND c.status = 'ok' \
             ORDER BY c.started_at DESC, c.id DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(seed_url)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.capture_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    async fn records(&self, id: &CaptureId) -> Result<Vec<RecordEntry>, IndexError> {
        let sql =
            format!("SELECT {RECORD_COLUMNS} FROM record WHERE capture_id = ? ORDER BY offset");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.as_str())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(record_from_row).collect()
    }

    async fn nearest_response(
        &self,
        url: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Option<Hit>, IndexError> {
        let base = format!(
            "{} WHERE r.target_uri = ? AND r.warc_type IN ('response', 'revisit')",
            hit_select()
        );
        let pick = |row: Option<SqliteRow>| row.as_ref().map(hit_from_row).transpose();
        let Some(at) = at else {
            let sql = format!("{base} ORDER BY r.date DESC LIMIT 1");
            return pick(
                sqlx::query(sqlx::AssertSqlSafe(sql))
                    .bind(url)
                    .fetch_optional(&self.pool)
                    .await?,
            );
        };
        let t = db_time(&at);
        let before = format!("{base} AND r.date <= ? ORDER BY r.date DESC LIMIT 1");
        let after = format!("{base} AND r.date > ? ORDER BY r.date ASC LIMIT 1");
        let before = pick(
            sqlx::query(sqlx::AssertSqlSafe(before))
                .bind(url)
                .bind(&t)
                .fetch_optional(&self.pool)
                .await?,
        )?;
        let after = pick(
            sqlx::query(sqlx::AssertSqlSafe(after))
                .bind(url)
                .bind(&t)
                .fetch_optional(&self.pool)
                .await?,
        )?;
        Ok(match (before, after) {
            (Some(b), Some(a)) => {
                if (a.record.date - at) < (at - b.record.date) {
                    Some(a)
                } else {
                    Some(b)
                }
            }
            (b, a) => b.or(a),
        })
    }

    async fn original_response(
        &self,
        url: &str,
        payload_digest: crate::model::Sha256,
    ) -> Result<Option<Hit>, IndexError> {
        let sql = format!(
            "{} WHERE r.target_uri = ? AND r.warc_type = 'response' AND r.payload_digest = ? \
             ORDER BY r.date ASC LIMIT 1",
            hit_select()
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(url)
            .bind(payload_digest.hex())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(hit_from_row).transpose()
    }

    async fn record_hit(&self, record_id: &str) -> Result<Option<Hit>, IndexError> {
        let sql = format!("{} WHERE r.record_id = ?", hit_select());
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(record_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(hit_from_row).transpose()
    }

    async fn planned_until(
        &self,
        schedule: &str,
        url: &str,
    ) -> Result<Option<DateTime<Utc>>, IndexError> {
        let t: Option<String> = sqlx::query_scalar(
            "SELECT planned_until FROM schedule_state WHERE schedule = ? AND url = ?",
        )
        .bind(schedule)
        .bind(url)
        .fetch_optional(&self.pool)
        .await?;
        t.as_deref().map(parse_db_time).transpose()
    }

    async fn plan_runs(
        &self,
        schedule: &str,
        url: &str,
        runs: &[NewRun],
        until: DateTime<Utc>,
    ) -> Result<u64, IndexError> {
        let host = url::Url::parse(url)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .unwrap_or_default();
        let now = db_time(&Utc::now());
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut added = 0;
        for r in runs {
            let done = sqlx::query(
                "INSERT INTO run (schedule, url, host, scheduled_for, state, not_before, catch_up, error, created_at, updated_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (schedule, url, scheduled_for) DO NOTHING",
            )
            .bind(schedule)
            .bind(url)
            .bind(&host)
            .bind(db_time(&r.scheduled_for))
            .bind(r.state.as_str())
            .bind(db_time(&r.not_before))
            .bind(r.catch_up)
            .bind(&r.error)
            .bind(&now)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            added += done.rows_affected();
        }
        sqlx::query(
            "INSERT INTO schedule_state (schedule, url, planned_until) VALUES (?, ?, ?) \
             ON CONFLICT (schedule, url) DO UPDATE SET planned_until = excluded.planned_until \
             WHERE excluded.planned_until > schedule_state.planned_until",
        )
        .bind(schedule)
        .bind(url)
        .bind(db_time(&until))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(added)
    }

    async fn has_active_run(&self, schedule: &str, url: &str) -> Result<bool, IndexError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM run WHERE schedule = ? AND url = ? AND state IN ('due', 'running')")
            .bind(schedule)
            .bind(url)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    async fn claim_run(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        busy_hosts: &[String],
    ) -> Result<Option<Run>, IndexError> {
        let now_s = db_time(&now);
        let placeholders = vec!["?"; busy_hosts.len()].join(", ");
        let host_filter = if busy_hosts.is_empty() {
            String::new()
        } else {
            format!("AND r.host NOT IN ({placeholders})")
        };
        let pick = format!(
            "SELECT r.id FROM run r \
             WHERE ((r.state = 'due' AND r.not_before <= ?) OR (r.state = 'running' AND r.lease_expires < ?)) {host_filter} \
             AND NOT EXISTS (SELECT 1 FROM run o WHERE o.schedule = r.schedule AND o.url = r.url AND o.id <> r.id \
                             AND o.state = 'running' AND o.lease_expires >= ?) \
             ORDER BY r.scheduled_for, r.id LIMIT 1"
        );
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut q = sqlx::query_scalar::<_, i64>(sqlx::AssertSqlSafe(pick))
            .bind(&now_s)
            .bind(&now_s);
        for h in busy_hosts {
            q = q.bind(h);
        }
        let Some(id) = q.bind(&now_s).fetch_optional(&mut *tx).await? else {
            return Ok(None);
        };
        // An attempt whose lease ran out without an ending was lost (its
        // worker died); say so before starting the next one.
        sqlx::query("UPDATE run_attempt SET outcome = 'lease_expired', finished_at = ? WHERE run_id = ? AND outcome = 'running'")
            .bind(&now_s)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "UPDATE run SET state = 'running', lease_owner = ?, lease_expires = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
        )
        .bind(owner)
        .bind(db_time(&lease_until))
        .bind(&now_s)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM run WHERE id = ?"
        )))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let run = run_from_row(&row)?;
        sqlx::query("INSERT INTO run_attempt (run_id, attempt, owner, started_at, outcome) VALUES (?, ?, ?, ?, 'running')")
            .bind(id)
            .bind(run.attempts as i64)
            .bind(owner)
            .bind(&now_s)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(run))
    }

    async fn renew_lease(
        &self,
        run_id: i64,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, IndexError> {
        let done = sqlx::query("UPDATE run SET lease_expires = ? WHERE id = ? AND lease_owner = ? AND state = 'running'")
            .bind(db_time(&until))
            .bind(run_id)
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_run(
        &self,
        run_id: i64,
        owner: &str,
        finish: &RunFinish,
        now: DateTime<Utc>,
    ) -> Result<(), IndexError> {
        let now_s = db_time(&now);
        let (state, outcome, capture_id, error, not_before) = match finish {
            RunFinish::Done { capture_id } => {
                ("done", "done", Some(capture_id.to_string()), None, None)
            }
            RunFinish::Retry {
                capture_id,
                error,
                at,
            } => (
                "due",
                "retry",
                capture_id.as_ref().map(|c| c.to_string()),
                Some(error.clone()),
                Some(db_time(at)),
            ),
            RunFinish::Failed { capture_id, error } => (
                "failed",
                "failed",
                capture_id.as_ref().map(|c| c.to_string()),
                Some(error.clone()),
                None,
            ),
            RunFinish::Interrupted { error } => (
                "interrupted",
                "interrupted",
                None,
                Some(error.clone()),
                None,
            ),
        };
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query(
            "UPDATE run SET state = ?, capture_id = COALESCE(?, capture_id), error = ?, not_before = COALESCE(?, not_before), \
             lease_owner = NULL, lease_expires = NULL, updated_at = ? WHERE id = ? AND lease_owner = ? AND state = 'running'",
        )
        .bind(state)
        .bind(&capture_id)
        .bind(&error)
        .bind(&not_before)
        .bind(&now_s)
        .bind(run_id)
        .bind(owner)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 1 {
            sqlx::query(
                "UPDATE run_attempt SET outcome = ?, finished_at = ?, capture_id = ?, error = ? \
                 WHERE run_id = ? AND owner = ? AND outcome = 'running'",
            )
            .bind(outcome)
            .bind(&now_s)
            .bind(&capture_id)
            .bind(&error)
            .bind(run_id)
            .bind(owner)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn requeue_interrupted(&self, now: DateTime<Utc>) -> Result<u64, IndexError> {
        let done = sqlx::query("UPDATE run SET state = 'due', not_before = ?, updated_at = ? WHERE state = 'interrupted'")
            .bind(db_time(&now))
            .bind(db_time(&now))
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn runs(&self, schedule: Option<&str>) -> Result<Vec<Run>, IndexError> {
        let rows = match schedule {
            Some(s) => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM run WHERE schedule = ? ORDER BY scheduled_for, id"
                )))
                .bind(s)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM run ORDER BY scheduled_for, id"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(run_from_row).collect()
    }

    async fn stats(&self, now: DateTime<Utc>) -> Result<Stats, IndexError> {
        let counts = sqlx::query("SELECT status, COUNT(*) AS n FROM capture GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        let mut stats = Stats::default();
        for row in &counts {
            let n = row.get::<i64, _>("n") as u64;
            match row.get::<String, _>("status").as_str() {
                "ok" => stats.captures_ok = n,
                _ => stats.captures_failed += n,
            }
        }
        stats.stored_bytes =
            sqlx::query_scalar::<_, Option<i64>>("SELECT SUM(bytes) FROM warc_file")
                .fetch_one(&self.pool)
                .await?
                .unwrap_or(0) as u64;
        let by_state = sqlx::query("SELECT state, COUNT(*) AS n FROM run GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        for state in RunState::ALL {
            let n = by_state
                .iter()
                .find(|r| r.get::<String, _>("state") == state.as_str())
                .map(|r| r.get::<i64, _>("n") as u64)
                .unwrap_or(0);
            stats.runs.push((state, n));
        }
        let now_s = db_time(&now);
        let waiting = sqlx::query("SELECT COUNT(*) AS n, MIN(scheduled_for) AS oldest FROM run WHERE state = 'due' AND not_before <= ?")
            .bind(&now_s)
            .fetch_one(&self.pool)
            .await?;
        stats.queue_depth = waiting.get::<i64, _>("n") as u64;
        let backlog: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM timestamp_request")
            .fetch_one(&self.pool)
            .await?;
        stats.timestamp_backlog = backlog as u64;
        let quarantined: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM warc_file WHERE quarantined IS NOT NULL")
                .fetch_one(&self.pool)
                .await?;
        stats.quarantined = quarantined as u64;
        stats.oldest_waiting = waiting
            .get::<Option<String>, _>("oldest")
            .as_deref()
            .map(parse_db_time)
            .transpose()?;
        Ok(stats)
    }

    async fn restore_leaf(&self, leaf: &crate::tlog::LogLeaf) -> Result<(), IndexError> {
        let next = self.log_size().await?;
        if leaf.index != next {
            return Err(IndexError::Corrupt(format!(
                "log leaf {} cannot follow leaf {}",
                leaf.index,
                next as i64 - 1
            )));
        }
        sqlx::query("INSERT INTO log_leaf (idx, kind, object_id, data, leaf_hash, appended_at) VALUES (?, ?, ?, ?, ?, ?)")
            .bind(leaf.index as i64)
            .bind(&leaf.kind)
            .bind(&leaf.object_id)
            .bind(&leaf.data)
            .bind(leaf.leaf_hash.hex())
            .bind(db_time(&leaf.appended_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn log_size(&self) -> Result<u64, IndexError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM log_leaf")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn log_leaf_hashes(&self, size: u64) -> Result<Vec<Sha256>, IndexError> {
        let rows: Vec<String> =
            sqlx::query_scalar("SELECT leaf_hash FROM log_leaf WHERE idx < ? ORDER BY idx")
                .bind(size as i64)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|h| digest(h)).collect()
    }

    async fn log_leaves_of(
        &self,
        kind: &str,
        object_id: &str,
    ) -> Result<Vec<crate::tlog::LogLeaf>, IndexError> {
        let rows = sqlx::query("SELECT idx, kind, object_id, data, leaf_hash, appended_at FROM log_leaf WHERE kind = ? AND object_id = ? ORDER BY idx")
            .bind(kind)
            .bind(object_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(leaf_from_row).collect()
    }

    async fn log_leaves(
        &self,
        from: u64,
        to: u64,
    ) -> Result<Vec<crate::tlog::LogLeaf>, IndexError> {
        let rows = sqlx::query("SELECT idx, kind, object_id, data, leaf_hash, appended_at FROM log_leaf WHERE idx >= ? AND idx < ? ORDER BY idx")
            .bind(from as i64)
            .bind(to as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(leaf_from_row).collect()
    }

    async fn put_checkpoint(&self, c: &crate::tlog::Checkpoint) -> Result<(), IndexError> {
        sqlx::query("INSERT INTO checkpoint (tree_size, root, note, created_at) VALUES (?, ?, ?, ?) ON CONFLICT (tree_size) DO NOTHING")
            .bind(c.tree_size as i64)
            .bind(c.root.hex())
            .bind(&c.note)
            .bind(db_time(&c.created_at))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<crate::tlog::Checkpoint>, IndexError> {
        let rows = sqlx::query(
            "SELECT tree_size, root, note, created_at FROM checkpoint ORDER BY tree_size",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::tlog::Checkpoint {
                    tree_size: r.get::<i64, _>("tree_size") as u64,
                    root: digest(r.get("root"))?,
                    note: r.get("note"),
                    created_at: parse_db_time(r.get("created_at"))?,
                })
            })
            .collect()
    }

    async fn warc_files(&self) -> Result<Vec<crate::model::WarcFile>, IndexError> {
        let rows = sqlx::query(
            "SELECT sha256, key, bytes, quarantined FROM warc_file ORDER BY stored_at, sha256",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::model::WarcFile {
                    sha256: digest(r.get("sha256"))?,
                    key: r.get("key"),
                    bytes: r.get::<i64, _>("bytes") as u64,
                    quarantined: r.get("quarantined"),
                })
            })
            .collect()
    }

    async fn record_fixity(&self, e: &crate::model::FixityEvent) -> Result<(), IndexError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO fixity_event (object_key, location, algorithm, expected, observed, outcome, detail, at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&e.object_key)
            .bind(&e.location)
            .bind(&e.algorithm)
            .bind(e.expected.hex())
            .bind(e.observed.map(|o| o.hex()))
            .bind(&e.outcome)
            .bind(&e.detail)
            .bind(db_time(&e.at))
            .execute(&mut *tx)
            .await?;
        // A failed check quarantines the object; a good one releases it. A
        // store error concludes nothing.
        if e.location == "primary" && e.outcome != "error" {
            let good = e.outcome == "ok" || e.outcome == "repaired";
            let reason = (!good).then(|| {
                format!(
                    "{} at {}: {}",
                    e.outcome,
                    db_time(&e.at),
                    e.detail.clone().unwrap_or_default()
                )
            });
            sqlx::query("UPDATE warc_file SET quarantined = ? WHERE key = ?")
                .bind(reason)
                .bind(&e.object_key)
                .execute(&mut *tx)
                .await?;
        }
        append_leaf(&mut tx, &crate::tlog::fixity_leaf(e)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fixity_events(&self, key: &str) -> Result<Vec<crate::model::FixityEvent>, IndexError> {
        let rows = sqlx::query("SELECT object_key, location, algorithm, expected, observed, outcome, detail, at FROM fixity_event WHERE object_key = ? ORDER BY id")
            .bind(key)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::model::FixityEvent {
                    object_key: r.get("object_key"),
                    location: r.get("location"),
                    algorithm: r.get("algorithm"),
                    expected: digest(r.get("expected"))?,
                    observed: opt_digest(r.get("observed"))?,
                    outcome: r.get("outcome"),
                    detail: r.get("detail"),
                    at: parse_db_time(r.get("at"))?,
                })
            })
            .collect()
    }

    async fn request_timestamp(
        &self,
        subject_kind: &str,
        subject_id: &str,
        imprint: Sha256,
        tsa_url: &str,
    ) -> Result<(), IndexError> {
        sqlx::query("INSERT INTO timestamp_request (subject_kind, subject_id, imprint, tsa_url, next_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (subject_kind, subject_id, tsa_url) DO NOTHING")
            .bind(subject_kind)
            .bind(subject_id)
            .bind(imprint.hex())
            .bind(tsa_url)
            .bind(db_time(&Utc::now()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn due_timestamps(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<crate::model::TimestampRequest>, IndexError> {
        let rows = sqlx::query("SELECT id, subject_kind, subject_id, imprint, tsa_url, attempts, last_error FROM timestamp_request WHERE next_at <= ? ORDER BY next_at, id LIMIT ?")
            .bind(db_time(&now))
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::model::TimestampRequest {
                    id: r.get("id"),
                    subject_kind: r.get("subject_kind"),
                    subject_id: r.get("subject_id"),
                    imprint: digest(r.get("imprint"))?,
                    tsa_url: r.get("tsa_url"),
                    attempts: r.get::<i32, _>("attempts") as u32,
                    last_error: r.get("last_error"),
                })
            })
            .collect()
    }

    async fn timestamp_received(
        &self,
        request_id: i64,
        token: &crate::model::TimestampToken,
    ) -> Result<(), IndexError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO timestamp_token (subject_kind, subject_id, imprint, tsa_url, token_der, gen_time, received_at) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&token.subject_kind)
            .bind(&token.subject_id)
            .bind(token.imprint.hex())
            .bind(&token.tsa_url)
            .bind(&token.token_der)
            .bind(&token.gen_time)
            .bind(db_time(&token.received_at))
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM timestamp_request WHERE id = ?")
            .bind(request_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn timestamp_failed(
        &self,
        request_id: i64,
        error: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), IndexError> {
        sqlx::query("UPDATE timestamp_request SET attempts = attempts + 1, last_error = ?, next_at = ? WHERE id = ?")
            .bind(error)
            .bind(db_time(&next_at))
            .bind(request_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn timestamp_tokens(
        &self,
        subject_kind: &str,
        subject_id: &str,
    ) -> Result<Vec<crate::model::TimestampToken>, IndexError> {
        let rows = sqlx::query("SELECT subject_kind, subject_id, imprint, tsa_url, token_der, gen_time, received_at FROM timestamp_token WHERE subject_kind = ? AND subject_id = ? ORDER BY id")
            .bind(subject_kind)
            .bind(subject_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(crate::model::TimestampToken {
                    subject_kind: r.get("subject_kind"),
                    subject_id: r.get("subject_id"),
                    imprint: digest(r.get("imprint"))?,
                    tsa_url: r.get("tsa_url"),
                    token_der: r.get("token_der"),
                    gen_time: r.get("gen_time"),
                    received_at: parse_db_time(r.get("received_at"))?,
                })
            })
            .collect()
    }

    async fn put_claim(&self, c: &Claim) -> Result<(), IndexError> {
        let tags = serde_json::to_string(&c.tags).unwrap_or_else(|_| "[]".into());
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT version FROM claim WHERE id = ? AND version = ?")
                .bind(&c.id)
                .bind(c.version as i64)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_some() {
            return Err(IndexError::Duplicate(format!(
                "claim {} version {}",
                c.id, c.version
            )));
        }
        sqlx::query(
            "INSERT INTO claim (id, version, text, event_start, event_end, place, latitude, longitude, tags, language, author, origin, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&c.id)
        .bind(c.version as i64)
        .bind(&c.text)
        .bind(&c.event_start)
        .bind(&c.event_end)
        .bind(&c.place)
        .bind(c.latitude)
        .bind(c.longitude)
        .bind(tags)
        .bind(&c.language)
        .bind(&c.author)
        .bind(&c.origin)
        .bind(db_time(&c.created_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_versions(&self, id: &str) -> Result<Vec<Claim>, IndexError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CLAIM_COLUMNS} FROM claim WHERE id = ? ORDER BY version"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(claim_from_row).collect()
    }

    async fn claims(&self, search: Option<&str>) -> Result<Vec<Claim>, IndexError> {
        let words: Vec<String> = search
            .unwrap_or("")
            .split_whitespace()
            .map(|w| {
                format!(
                    "%{}%",
                    w.to_lowercase()
                        .replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_")
                )
            })
            .collect();
        let mut sql = format!(
            "SELECT {CLAIM_COLUMNS} FROM claim c WHERE version = (SELECT MAX(version) FROM claim v WHERE v.id = c.id)"
        );
        for _ in &words {
            sql.push_str(" AND lower(text) LIKE ? ESCAPE '\\'");
        }
        sql.push_str(" ORDER BY (SELECT MIN(created_at) FROM claim f WHERE f.id = c.id), id");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for w in &words {
            q = q.bind(w);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(claim_from_row).collect()
    }

    async fn claim_by_origin(&self, origin: &str, text: &str) -> Result<Option<Claim>, IndexError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CLAIM_COLUMNS} FROM claim WHERE origin = ? AND text = ? ORDER BY version DESC LIMIT 1"
        )))
        .bind(origin)
        .bind(text)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(claim_from_row).transpose()
    }

    async fn put_link(&self, l: &EvidenceLink) -> Result<(), IndexError> {
        let selectors =
            serde_json::to_string(&l.selectors).map_err(|e| IndexError::Corrupt(e.to_string()))?;
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query(
            "INSERT INTO evidence_link (id, claim_id, claim_version, capture_id, record_id, target_uri, payload_digest, relation, \
             selectors, quote_given, rationale, author, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&l.id)
        .bind(&l.claim_id)
        .bind(l.claim_version as i64)
        .bind(l.capture_id.as_str())
        .bind(&l.record_id)
        .bind(&l.target_uri)
        .bind(l.payload_digest.hex())
        .bind(l.relation.as_str())
        .bind(selectors)
        .bind(&l.quote_given)
        .bind(&l.rationale)
        .bind(&l.author)
        .bind(db_time(&l.created_at))
        .execute(&mut *tx)
        .await?;
        append_leaf(&mut tx, &crate::tlog::link_leaf(l)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn links(&self, filter: &LinkFilter) -> Result<Vec<EvidenceLink>, IndexError> {
        let mut sql = format!("SELECT {LINK_COLUMNS} FROM evidence_link WHERE 1 = 1");
        if filter.claim_id.is_some() {
            sql.push_str(" AND claim_id = ?");
        }
        if filter.capture_id.is_some() {
            sql.push_str(" AND capture_id = ?");
        }
        if filter.target_uri.is_some() {
            sql.push_str(" AND target_uri = ?");
        }
        sql.push_str(" ORDER BY created_at, id");
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(c) = &filter.claim_id {
            q = q.bind(c);
        }
        if let Some(c) = &filter.capture_id {
            q = q.bind(c.as_str());
        }
        if let Some(t) = &filter.target_uri {
            q = q.bind(t);
        }
        let rows = q.fetch_all(&self.pool).await?;
        rows.iter().map(link_from_row).collect()
    }

    async fn put_passage_check(&self, c: &PassageCheck) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO passage_check (link_id, capture_id, captured_at, present) VALUES (?, ?, ?, ?) \
             ON CONFLICT (link_id, capture_id) DO NOTHING",
        )
        .bind(&c.link_id)
        .bind(c.capture_id.as_str())
        .bind(db_time(&c.captured_at))
        .bind(c.present)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn passage_checks(&self, link_id: &str) -> Result<Vec<PassageCheck>, IndexError> {
        let rows = sqlx::query(
            "SELECT link_id, capture_id, captured_at, present FROM passage_check WHERE link_id = ? ORDER BY captured_at, capture_id",
        )
        .bind(link_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.get("capture_id");
                Ok(PassageCheck {
                    link_id: r.get("link_id"),
                    capture_id: id
                        .parse()
                        .map_err(|_| IndexError::Corrupt(format!("capture id {id:?}")))?,
                    captured_at: parse_db_time(r.get("captured_at"))?,
                    present: r.get::<bool, _>("present"),
                })
            })
            .collect()
    }

    async fn add_event(&self, e: &CustodyEvent) -> Result<(), IndexError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        sqlx::query("INSERT INTO custody_event (object_kind, object_id, event, actor, at, outcome, detail) VALUES (?, ?, ?, ?, ?, ?, ?)")
            .bind(&e.object_kind)
            .bind(&e.object_id)
            .bind(&e.event)
            .bind(&e.actor)
            .bind(db_time(&e.at))
            .bind(&e.outcome)
            .bind(e.detail.to_string())
            .execute(&mut *tx)
            .await?;
        append_leaf(&mut tx, &crate::tlog::event_leaf(e)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn events(
        &self,
        object_kind: &str,
        object_id: &str,
    ) -> Result<Vec<CustodyEvent>, IndexError> {
        let rows = sqlx::query(
            "SELECT object_kind, object_id, event, actor, at, outcome, detail FROM custody_event \
             WHERE object_kind = ? AND object_id = ? ORDER BY seq",
        )
        .bind(object_kind)
        .bind(object_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CustodyEvent {
                    object_kind: r.get("object_kind"),
                    object_id: r.get("object_id"),
                    event: r.get("event"),
                    actor: r.get("actor"),
                    at: parse_db_time(r.get("at"))?,
                    outcome: r.get("outcome"),
                    detail: serde_json::from_str(r.get::<&str, _>("detail"))
                        .unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }

    async fn add_events(&self, events: &[CustodyEvent]) -> Result<(), IndexError> {
        if events.is_empty() {
            return Ok(());
        }
        // Multi-row inserts: a batch of accesses is two statements per
        // 500 events, not three per event.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaf")
            .fetch_one(&mut *tx)
            .await?;
        for chunk in events.chunks(500) {
            let (mut rows, mut leaves) = super::event_batch_inserts::<sqlx::Sqlite>(chunk, next);
            rows.build().execute(&mut *tx).await?;
            leaves.build().execute(&mut *tx).await?;
            next += chunk.len() as i64;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn capture_page(&self, q: &CaptureQuery) -> Result<Vec<Capture>, IndexError> {
        let (tail, binds) = shared_sql::capture_page(q);
        let sql = format!("{CAPTURE_COLUMNS} {tail}");
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(&self.pool).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            out.push(self.capture_from_row(row).await?);
        }
        Ok(out)
    }

    async fn find_records(&self, q: &RecordQuery) -> Result<Vec<Hit>, IndexError> {
        let (tail, binds) = shared_sql::find_records(q);
        let sql = format!("{} {tail}", hit_select());
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            query = query.bind(b);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(hit_from_row).collect()
    }

    async fn put_token(&self, t: &ApiToken) -> Result<(), IndexError> {
        let secret = t
            .secret_sha256
            .ok_or_else(|| IndexError::Corrupt("a token without its secret's digest".into()))?;
        sqlx::query(shared_sql::TOKEN_INSERT)
            .bind(&t.id)
            .bind(secret.hex())
            .bind(t.role.as_str())
            .bind(&t.label)
            .bind(db_time(&t.created_at))
            .bind(t.revoked_at.as_ref().map(db_time))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn token_by_secret(
        &self,
        secret_sha256: &crate::model::Sha256,
    ) -> Result<Option<ApiToken>, IndexError> {
        let sql = format!("{} WHERE secret_sha256 = ?", shared_sql::TOKEN_COLUMNS);
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(secret_sha256.hex())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, IndexError> {
        let sql = format!("{} ORDER BY created_at, id", shared_sql::TOKEN_COLUMNS);
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool, IndexError> {
        let done = sqlx::query(shared_sql::TOKEN_REVOKE)
            .bind(db_time(&at))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn try_lead(&self) -> Result<bool, IndexError> {
        // One node per SQLite file: it always leads.
        Ok(true)
    }

    async fn add_pending_object(&self, p: &PendingObject) -> Result<(), IndexError> {
        sqlx::query("INSERT INTO pending_object (key, capture_id, seed_url, schedule, scheduled_for, created_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key, capture_id) DO NOTHING")
        .bind(&p.key)
        .bind(p.capture_id.as_str())
        .bind(&p.seed_url)
        .bind(&p.schedule)
        .bind(p.scheduled_for.as_ref().map(db_time))
        .bind(db_time(&p.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn pending_objects(
        &self,
        schedule: &str,
        seed_url: &str,
        scheduled_for: DateTime<Utc>,
    ) -> Result<Vec<PendingObject>, IndexError> {
        let rows = sqlx::query("SELECT key, capture_id, seed_url, schedule, scheduled_for, created_at FROM pending_object WHERE schedule = ? AND seed_url = ? AND scheduled_for = ? ORDER BY created_at")
        .bind(schedule)
        .bind(seed_url)
        .bind(db_time(&scheduled_for))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let id: String = r.get("capture_id");
                Ok(PendingObject {
                    key: r.get("key"),
                    capture_id: id
                        .parse()
                        .map_err(|_| IndexError::Corrupt(format!("capture id {id:?}")))?,
                    seed_url: r.get("seed_url"),
                    schedule: r.get("schedule"),
                    scheduled_for: r
                        .get::<Option<String>, _>("scheduled_for")
                        .as_deref()
                        .map(parse_db_time)
                        .transpose()?,
                    created_at: parse_db_time(r.get("created_at"))?,
                })
            })
            .collect()
    }

    async fn remove_pending_object(
        &self,
        key: &str,
        capture_id: &CaptureId,
    ) -> Result<(), IndexError> {
        sqlx::query("DELETE FROM pending_object WHERE key = ? AND capture_id = ?")
            .bind(key)
            .bind(capture_id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

const RUN_COLUMNS: &str =
    "id, schedule, url, scheduled_for, state, not_before, attempts, catch_up, lease_owner, capture_id, error";

fn run_from_row(r: &SqliteRow) -> Result<Run, IndexError> {
    let state: String = r.get("state");
    Ok(Run {
        id: r.get("id"),
        schedule: r.get("schedule"),
        url: r.get("url"),
        scheduled_for: parse_db_time(r.get("scheduled_for"))?,
        state: RunState::parse(&state)
            .ok_or_else(|| IndexError::Corrupt(format!("run state {state:?}")))?,
        not_before: parse_db_time(r.get("not_before"))?,
        attempts: r.get::<i64, _>("attempts") as u32,
        catch_up: r.get::<bool, _>("catch_up"),
        lease_owner: r.get("lease_owner"),
        capture_id: r
            .get::<Option<String>, _>("capture_id")
            .map(|c| {
                c.parse()
                    .map_err(|_| IndexError::Corrupt(format!("capture id {c:?}")))
            })
            .transpose()?,
        error: r.get("error"),
    })
}

const CLAIM_COLUMNS: &str =
    "id, version, text, event_start, event_end, place, latitude, longitude, tags, language, author, origin, created_at";

fn claim_from_row(r: &SqliteRow) -> Result<Claim, IndexError> {
    let tags: String = r.get("tags");
    Ok(Claim {
        id: r.get("id"),
        version: r.get::<i64, _>("version") as u32,
        text: r.get("text"),
        event_start: r.get("event_start"),
        event_end: r.get("event_end"),
        place: r.get("place"),
        latitude: r.get("latitude"),
        longitude: r.get("longitude"),
        tags: serde_json::from_str(&tags)
            .map_err(|_| IndexError::Corrupt(format!("claim tags {tags:?}")))?,
        language: r.get("language"),
        author: r.get("author"),
        origin: r.get("origin"),
        created_at: parse_db_time(r.get("created_at"))?,
    })
}

const LINK_COLUMNS: &str =
    "id, claim_id, claim_version, capture_id, record_id, target_uri, payload_digest, relation, \
     selectors, quote_given, rationale, author, created_at";

fn link_from_row(r: &SqliteRow) -> Result<EvidenceLink, IndexError> {
    let capture: String = r.get("capture_id");
    let relation: String = r.get("relation");
    let selectors: String = r.get("selectors");
    Ok(EvidenceLink {
        id: r.get("id"),
        claim_id: r.get("claim_id"),
        claim_version: r.get::<i64, _>("claim_version") as u32,
        capture_id: capture
            .parse()
            .map_err(|_| IndexError::Corrupt(format!("capture id {capture:?}")))?,
        record_id: r.get("record_id"),
        target_uri: r.get("target_uri"),
        payload_digest: digest(r.get("payload_digest"))?,
        relation: Relation::parse(&relation)
            .ok_or_else(|| IndexError::Corrupt(format!("relation {relation:?}")))?,
        selectors: serde_json::from_str(&selectors)
            .map_err(|_| IndexError::Corrupt("link selectors".into()))?,
        quote_given: r.get("quote_given"),
        rationale: r.get("rationale"),
        author: r.get("author"),
        created_at: parse_db_time(r.get("created_at"))?,
    })
}

/// Appends a leaf to the transparency log inside `tx` (the transaction
/// that records its object), at the next index.
async fn append_leaf(
    tx: &mut sqlx::Transaction<'_, sqlx::Sqlite>,
    leaf: &crate::tlog::Leaf,
) -> Result<u64, IndexError> {
    let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaf")
        .fetch_one(&mut **tx)
        .await?;
    sqlx::query("INSERT INTO log_leaf (idx, kind, object_id, data, leaf_hash, appended_at) VALUES (?, ?, ?, ?, ?, ?)")
        .bind(next)
        .bind(leaf.kind)
        .bind(&leaf.object_id)
        .bind(&leaf.data)
        .bind(leaf.hash().hex())
        .bind(db_time(&Utc::now()))
        .execute(&mut **tx)
        .await?;
    Ok(next as u64)
}

fn leaf_from_row(r: &SqliteRow) -> Result<crate::tlog::LogLeaf, IndexError> {
    Ok(crate::tlog::LogLeaf {
        index: r.get::<i64, _>("idx") as u64,
        kind: r.get("kind"),
        object_id: r.get("object_id"),
        data: r.get("data"),
        leaf_hash: digest(r.get("leaf_hash"))?,
        appended_at: parse_db_time(r.get("appended_at"))?,
    })
}

/// The columns of a [`Hit`]: a record with its capture and WARC file.
fn hit_select() -> String {
    format!(
        "SELECT r.capture_id, w.sha256 AS w_sha256, w.key AS w_key, w.bytes AS w_bytes, {} \
         FROM record r JOIN warc_file w ON w.sha256 = r.warc_sha256",
        RECORD_COLUMNS
            .split(", ")
            .map(|c| format!("r.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

fn hit_from_row(row: &SqliteRow) -> Result<Hit, IndexError> {
    let capture_id: String = row.get("capture_id");
    Ok(Hit {
        capture_id: capture_id
            .parse()
            .map_err(|_| IndexError::Corrupt(format!("capture id {capture_id:?}")))?,
        warc: WarcRef {
            key: row.get("w_key"),
            sha256: digest(row.get("w_sha256"))?,
            bytes: row.get::<i64, _>("w_bytes") as u64,
        },
        record: record_from_row(row)?,
    })
}

fn token_from_row(row: &SqliteRow) -> Result<ApiToken, IndexError> {
    let role: String = row.get("role");
    Ok(ApiToken {
        id: row.get("id"),
        secret_sha256: Some(digest(row.get("secret_sha256"))?),
        role: Role::parse(&role).ok_or_else(|| IndexError::Corrupt(format!("role {role:?}")))?,
        label: row.get("label"),
        created_at: parse_db_time(row.get("created_at"))?,
        revoked_at: row
            .get::<Option<String>, _>("revoked_at")
            .as_deref()
            .map(parse_db_time)
            .transpose()?,
    })
}
