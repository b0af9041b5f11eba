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

use super::{db_time, parse_db_time, Hit, Index, IndexError};
use crate::model::{Capture, CaptureId, CaptureStatus, RecordEntry, Resource, Sha256, WarcRef};

/// Migrations in order; each runs once, in its own transaction.
const MIGRATIONS: &[(i64, &str, &str)] = &[(
    1,
    "initial",
    include_str!("migrations/sqlite/0001_initial.sql"),
)];

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
        })
    }
}

const CAPTURE_COLUMNS: &str = "SELECT c.id, c.seed_url, c.status, c.error, c.started_at, c.finished_at, c.warc_sha256, \
     c.record_count, w.key, w.bytes FROM capture c LEFT JOIN warc_file w ON w.sha256 = c.warc_sha256";

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
    async fn put_capture(
        &self,
        capture: &Capture,
        records: &[RecordEntry],
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
            "INSERT INTO capture (id, seed_url, status, error, started_at, finished_at, warc_sha256, record_count) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(capture.id.as_str())
        .bind(&capture.seed_url)
        .bind(capture.status.as_str())
        .bind(&capture.error)
        .bind(db_time(&capture.started_at))
        .bind(db_time(&capture.finished_at))
        .bind(capture.warc.as_ref().map(|w| w.sha256.hex()))
        .bind(capture.records as i64)
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
            "SELECT r.capture_id, w.sha256 AS w_sha256, w.key AS w_key, w.bytes AS w_bytes, {} \
             FROM record r JOIN warc_file w ON w.sha256 = r.warc_sha256 \
             WHERE r.target_uri = ? AND r.warc_type = 'response'",
            RECORD_COLUMNS
                .split(", ")
                .map(|c| format!("r.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let pick = |row: Option<SqliteRow>| -> Result<Option<Hit>, IndexError> {
            let Some(row) = row else { return Ok(None) };
            let capture_id: String = row.get("capture_id");
            Ok(Some(Hit {
                capture_id: capture_id
                    .parse()
                    .map_err(|_| IndexError::Corrupt(format!("capture id {capture_id:?}")))?,
                warc: WarcRef {
                    key: row.get("w_key"),
                    sha256: digest(row.get("w_sha256"))?,
                    bytes: row.get::<i64, _>("w_bytes") as u64,
                },
                record: record_from_row(&row)?,
            }))
        };
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
}
