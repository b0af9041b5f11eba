//! The one SQL implementation of the index, compiled once per backend.
//!
//! `sqlite.rs` and `postgres.rs` each include this file as a module of
//! their own (`#[path = "sql.rs"] mod sql;`), with their `DB` type and
//! their side of the dialect seam in scope as `super::...`: `begin` (how a
//! write transaction starts), `lock_log` (what serialises log appends),
//! `lock_migrations`/`unlock_migrations`/`begin_migration`, `CLAIM_SUFFIX`
//! (how a run is claimed without waiting for another daemon), `ROW_LOCK`
//! (how a run's row is held while its capture commits) and `MIGRATIONS`.
//! Everything else is written once: every statement uses `$N` placeholders,
//! which both drivers bind, and quotes `"offset"`, which both accept.
//!
//! Why this form rather than sqlx's `Any` driver or a body generic over
//! `sqlx::Database`: `Any` cannot decode SQLite booleans (sqlx issues #2657
//! and #2778, open), converts every row into its own value type, and has no
//! `BEGIN IMMEDIATE` or session advisory lock; a generic body needs a
//! higher-ranked `Executor` bound on the connection type at every call, for
//! nothing this form does not give.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, QueryBuilder, Row as _};

use super::{
    begin, begin_migration, insert_page_text, lock_log, lock_migrations, push_text_match,
    unlock_migrations, CLAIM_SUFFIX, DB, MIGRATIONS, ROW_LOCK,
};
use crate::index::{
    db_time, nearer, parse_db_time, CaptureIndex, CaptureQuery, Fence, Hit, Index, IndexError,
    LinkFilter, LogIndex, PageText, ProvenanceIndex, RecordQuery, RowCounts, RunIndex,
    RunListQuery, SearchIndex, TextHit, TextQuery, TokenIndex, WarcFileQuery, MIGRATION_TABLE,
};
use crate::model::{
    ApiToken, Capture, CaptureId, CaptureStatus, Claim, CustodyEvent, EvidenceLink, FixityEvent,
    NewRun, PageChange, PassageCheck, PendingObject, RecordEntry, Relation, Resource, Role, Run,
    RunFinish, RunState, Sha256, Stats, TimestampRequest, TimestampToken, WarcFile, WarcRef,
};
use crate::tlog::leaf::{self, Checkpoint, Leaf, LogLeaf};

type Row = <DB as sqlx::Database>::Row;
type Tx = sqlx::Transaction<'static, DB>;

/// The index over one database.
pub struct SqlIndex {
    pool: sqlx::Pool<DB>,
}

impl SqlIndex {
    /// The index over `pool`, migrated.
    pub(super) async fn with_pool(pool: sqlx::Pool<DB>) -> Result<Self, IndexError> {
        let index = SqlIndex { pool };
        index.migrate().await?;
        Ok(index)
    }

    /// Applies the migrations not yet applied, under the migration lock
    /// (taken first), each in its own transaction.
    /// The index over `pool`, for reading only: its schema must be current
    /// (a read-only index cannot be migrated).
    pub(super) async fn read_only(pool: sqlx::Pool<DB>) -> Result<Self, IndexError> {
        let have: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM custody_migration")
            .fetch_one(&pool)
            .await?;
        let want = MIGRATIONS.last().map(|m| m.0).unwrap_or(0);
        let have = have.unwrap_or(0);
        if have < want {
            return Err(IndexError::Outdated { have, want });
        }
        Ok(SqlIndex { pool })
    }

    async fn migrate(&self) -> Result<(), IndexError> {
        let mut conn = self.pool.acquire().await?;
        lock_migrations(&mut conn).await?;
        let migrated = Self::migrate_on(&mut conn).await;
        if unlock_migrations(&mut conn).await.is_err() {
            // Closed rather than returned to the pool still holding the lock.
            drop(conn.detach());
        }
        migrated
    }

    async fn migrate_on(conn: &mut sqlx::pool::PoolConnection<DB>) -> Result<(), IndexError> {
        sqlx::query(MIGRATION_TABLE).execute(&mut **conn).await?;
        for (version, name, sql) in MIGRATIONS {
            let mut tx = begin_migration(conn).await?;
            let done: Option<i64> =
                sqlx::query_scalar("SELECT version FROM custody_migration WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *tx)
                    .await?;
            if done.is_some() {
                continue;
            }
            sqlx::raw_sql(AssertSqlSafe(*sql)).execute(&mut *tx).await?;
            sqlx::query(
                "INSERT INTO custody_migration (version, name, applied_at) VALUES ($1, $2, $3)",
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
            "SELECT url, status, mime, payload_sha256, bytes, truncated, error FROM resource \
             WHERE capture_id = $1 ORDER BY seq",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Resource {
                    url: r.text("url")?,
                    status: r.opt_status("status")?,
                    mime: r.opt_text("mime")?,
                    payload_sha256: r.opt_digest("payload_sha256")?,
                    bytes: r.count("bytes")?,
                    truncated: r.opt_text("truncated")?,
                    error: r.opt_text("error")?,
                })
            })
            .collect()
    }

    async fn capture_from_row(&self, row: &Row) -> Result<Capture, IndexError> {
        let id = row.text("id")?;
        let status = row.text("status")?;
        let warc = match row.opt_digest("warc_sha256")? {
            Some(sha256) => Some(WarcRef {
                key: row.text("key")?,
                sha256,
                bytes: row.count("bytes")?,
            }),
            None => None,
        };
        let change = match row.opt_capture_id("previous_capture")? {
            Some(previous_capture) => Some(PageChange {
                previous_capture,
                changed: row.opt_text("page_change")?.as_deref() == Some("changed"),
            }),
            None => None,
        };
        Ok(Capture {
            id: capture_id(&id)?,
            seed_url: row.text("seed_url")?,
            status: CaptureStatus::parse(&status)
                .ok_or_else(|| IndexError::Corrupt(format!("status {status:?}")))?,
            error: row.opt_text("error")?,
            started_at: row.time("started_at")?,
            finished_at: row.time("finished_at")?,
            warc,
            records: row.count("record_count")?,
            resources: self.resources(&id).await?,
            schedule: row.opt_text("schedule")?,
            scheduled_for: row.opt_time("scheduled_for")?,
            change,
            import: match row.opt_text("import_json")? {
                Some(json) => Some(serde_json::from_str(&json).map_err(|e| {
                    IndexError::Corrupt(format!("capture {id}: its import cannot be read: {e}"))
                })?),
                None => None,
            },
            media: match row.opt_text("media_json")? {
                Some(json) => Some(serde_json::from_str(&json).map_err(|e| {
                    IndexError::Corrupt(format!("capture {id}: its media step cannot be read: {e}"))
                })?),
                None => None,
            },
            browser: match row.opt_text("browser_json")? {
                Some(json) => Some(serde_json::from_str(&json).map_err(|e| {
                    IndexError::Corrupt(format!(
                        "capture {id}: its browser record cannot be read: {e}"
                    ))
                })?),
                None => None,
            },
        })
    }

    async fn captures_from_rows(&self, rows: &[Row]) -> Result<Vec<Capture>, IndexError> {
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            out.push(self.capture_from_row(row).await?);
        }
        Ok(out)
    }

    /// With the run's row locked (`ROW_LOCK`), refuses a scheduled capture
    /// that its fence no longer allows, or whose instant is already
    /// captured.
    async fn exactly_once(
        tx: &mut Tx,
        capture: &Capture,
        fence: Option<&Fence>,
    ) -> Result<(), IndexError> {
        let (Some(schedule), Some(at)) = (&capture.schedule, capture.scheduled_for) else {
            return Ok(());
        };
        let instant = format!("{schedule} {} at {}", capture.seed_url, db_time(&at));
        let run = sqlx::query(AssertSqlSafe(format!(
            "SELECT id, state, lease_owner, attempts FROM run \
             WHERE schedule = $1 AND url = $2 AND scheduled_for = $3{ROW_LOCK}"
        )))
        .bind(schedule)
        .bind(&capture.seed_url)
        .bind(db_time(&at))
        .fetch_optional(&mut **tx)
        .await?;
        if let Some(f) = fence {
            let holds = match &run {
                Some(r) => {
                    r.int("id")? == f.run_id
                        && r.text("state")? == "running"
                        && r.opt_text("lease_owner")?.as_deref() == Some(f.owner.as_str())
                        && r.count("attempts")? == u64::from(f.attempt)
                }
                None => false,
            };
            if !holds {
                return Err(IndexError::Fenced(format!(
                    "attempt {} of the run {instant} no longer holds its lease (another daemon took it over); its capture {} is not indexed",
                    f.attempt, capture.id
                )));
            }
        }
        if capture.status == CaptureStatus::Ok {
            let existing: Option<String> = sqlx::query_scalar(
                "SELECT id FROM capture WHERE schedule = $1 AND seed_url = $2 \
                 AND scheduled_for = $3 AND status = 'ok' LIMIT 1",
            )
            .bind(schedule)
            .bind(&capture.seed_url)
            .bind(db_time(&at))
            .fetch_optional(&mut **tx)
            .await?;
            if let Some(existing) = existing.filter(|e| e != capture.id.as_str()) {
                return Err(IndexError::Fenced(format!(
                    "the run {instant} is already captured as {existing}; capture {} is not indexed",
                    capture.id
                )));
            }
        }
        Ok(())
    }

    /// The capture's rows (capture, WARC file, resources, records, its
    /// first custody event), inside `tx`.
    async fn insert_capture(
        tx: &mut Tx,
        capture: &Capture,
        records: &[RecordEntry],
    ) -> Result<(), IndexError> {
        let exists: Option<String> = sqlx::query_scalar("SELECT id FROM capture WHERE id = $1")
            .bind(capture.id.as_str())
            .fetch_optional(&mut **tx)
            .await?;
        if exists.is_some() {
            return Err(IndexError::Conflict(format!(
                "capture {} is already in the index",
                capture.id
            )));
        }
        // The file as received of an import is a stored object too.
        let original = capture.import.as_ref().map(|i| &i.file);
        for warc in capture.warc.iter().chain(original) {
            // The same bytes may already be known (content addressing).
            sqlx::query(
                "INSERT INTO warc_file (sha256, key, bytes, stored_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (sha256) DO NOTHING",
            )
            .bind(warc.sha256.hex())
            .bind(&warc.key)
            .bind(warc.bytes as i64)
            .bind(db_time(&Utc::now()))
            .execute(&mut **tx)
            .await?;
        }
        let import_json = capture
            .import
            .as_ref()
            .map(|i| serde_json::to_string(i).expect("an import serialises"));
        let media_json = capture
            .media
            .as_ref()
            .map(|m| serde_json::to_string(m).expect("a media step serialises"));
        let browser_json = capture
            .browser
            .as_ref()
            .map(|b| serde_json::to_string(b).expect("a browser record serialises"));
        sqlx::query(
            "INSERT INTO capture (id, seed_url, status, error, started_at, finished_at, \
             warc_sha256, record_count, schedule, scheduled_for, previous_capture, page_change, \
             import_json, media_json, browser_json) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
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
        .bind(
            capture
                .change
                .as_ref()
                .map(|c| c.previous_capture.to_string()),
        )
        .bind(
            capture
                .change
                .as_ref()
                .map(|c| if c.changed { "changed" } else { "unchanged" }),
        )
        .bind(import_json)
        .bind(media_json)
        .bind(browser_json)
        .execute(&mut **tx)
        .await?;
        for (seq, r) in capture.resources.iter().enumerate() {
            sqlx::query(
                "INSERT INTO resource (capture_id, seq, url, status, mime, payload_sha256, bytes, \
                 truncated, error) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
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
            .execute(&mut **tx)
            .await?;
        }
        if let Some(warc) = &capture.warc {
            for r in records {
                sqlx::query(
                    "INSERT INTO record (record_id, capture_id, warc_sha256, warc_type, \
                     target_uri, surt, date, timestamp, mime, status, payload_digest, \
                     block_digest, \"offset\", length) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
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
                .execute(&mut **tx)
                .await?;
            }
        }
        // The capture is indexed: its upload is no longer pending.
        sqlx::query("DELETE FROM pending_object WHERE capture_id = $1")
            .bind(capture.id.as_str())
            .execute(&mut **tx)
            .await?;
        // The capture's first custody event, in the same transaction.
        let first = crate::model::first_event(capture);
        sqlx::query(
            "INSERT INTO custody_event (object_kind, object_id, event, actor, at, outcome, detail) \
             VALUES ('capture', $1, $2, $3, $4, $5, $6)",
        )
        .bind(capture.id.as_str())
        .bind(&first.event)
        .bind(&first.actor)
        .bind(db_time(&first.at))
        .bind(&first.outcome)
        .bind(first.detail.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn insert_claim(tx: &mut Tx, c: &Claim) -> Result<(), IndexError> {
        let tags = serde_json::to_string(&c.tags).unwrap_or_else(|_| "[]".into());
        let exists: Option<i64> =
            sqlx::query_scalar("SELECT version FROM claim WHERE id = $1 AND version = $2")
                .bind(&c.id)
                .bind(c.version as i64)
                .fetch_optional(&mut **tx)
                .await?;
        if exists.is_some() {
            return Err(IndexError::Conflict(format!(
                "claim {} already has a version {}",
                c.id, c.version
            )));
        }
        sqlx::query(
            "INSERT INTO claim (id, version, text, event_start, event_end, place, latitude, \
             longitude, tags, language, author, origin, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn insert_link(tx: &mut Tx, l: &EvidenceLink) -> Result<(), IndexError> {
        let selectors =
            serde_json::to_string(&l.selectors).map_err(|e| IndexError::Corrupt(e.to_string()))?;
        sqlx::query(
            "INSERT INTO evidence_link (id, claim_id, claim_version, capture_id, record_id, \
             target_uri, payload_digest, relation, selectors, quote_given, rationale, author, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
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
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn insert_fixity(tx: &mut Tx, e: &FixityEvent) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO fixity_event (object_key, location, algorithm, expected, observed, \
             outcome, detail, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&e.object_key)
        .bind(&e.location)
        .bind(&e.algorithm)
        .bind(e.expected.hex())
        .bind(e.observed.map(|o| o.hex()))
        .bind(&e.outcome)
        .bind(&e.detail)
        .bind(db_time(&e.at))
        .execute(&mut **tx)
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
            sqlx::query("UPDATE warc_file SET quarantined = $1 WHERE key = $2")
                .bind(reason)
                .bind(&e.object_key)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    async fn insert_event(tx: &mut Tx, e: &CustodyEvent) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO custody_event (object_kind, object_id, event, actor, at, outcome, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&e.object_kind)
        .bind(&e.object_id)
        .bind(&e.event)
        .bind(&e.actor)
        .bind(db_time(&e.at))
        .bind(&e.outcome)
        .bind(e.detail.to_string())
        .execute(&mut **tx)
        .await?;
        Ok(())
    }
}

/// Typed, checked reads of a row's columns: a value that does not decode
/// (or a NULL where none belongs) is [`IndexError::Corrupt`], never a panic.
trait Get {
    fn opt_text(&self, col: &str) -> Result<Option<String>, IndexError>;
    fn opt_int(&self, col: &str) -> Result<Option<i64>, IndexError>;
    fn flag(&self, col: &str) -> Result<bool, IndexError>;
    fn opt_real(&self, col: &str) -> Result<Option<f64>, IndexError>;

    fn text(&self, col: &str) -> Result<String, IndexError> {
        self.opt_text(col)?.ok_or_else(|| null(col))
    }

    fn int(&self, col: &str) -> Result<i64, IndexError> {
        self.opt_int(col)?.ok_or_else(|| null(col))
    }

    /// A count, size or offset: never negative.
    fn count(&self, col: &str) -> Result<u64, IndexError> {
        let n = self.int(col)?;
        u64::try_from(n).map_err(|_| IndexError::Corrupt(format!("{col} = {n}")))
    }

    fn opt_status(&self, col: &str) -> Result<Option<u16>, IndexError> {
        self.opt_int(col)?
            .map(|n| u16::try_from(n).map_err(|_| IndexError::Corrupt(format!("{col} = {n}"))))
            .transpose()
    }

    fn time(&self, col: &str) -> Result<DateTime<Utc>, IndexError> {
        parse_db_time(&self.text(col)?)
    }

    fn opt_time(&self, col: &str) -> Result<Option<DateTime<Utc>>, IndexError> {
        self.opt_text(col)?
            .as_deref()
            .map(parse_db_time)
            .transpose()
    }

    fn digest(&self, col: &str) -> Result<Sha256, IndexError> {
        digest(&self.text(col)?)
    }

    fn opt_digest(&self, col: &str) -> Result<Option<Sha256>, IndexError> {
        self.opt_text(col)?.as_deref().map(digest).transpose()
    }

    fn capture_id(&self, col: &str) -> Result<CaptureId, IndexError> {
        capture_id(&self.text(col)?)
    }

    fn opt_capture_id(&self, col: &str) -> Result<Option<CaptureId>, IndexError> {
        self.opt_text(col)?.as_deref().map(capture_id).transpose()
    }
}

impl Get for Row {
    fn opt_text(&self, col: &str) -> Result<Option<String>, IndexError> {
        self.try_get(col).map_err(|e| undecodable(col, e))
    }

    fn opt_int(&self, col: &str) -> Result<Option<i64>, IndexError> {
        self.try_get(col).map_err(|e| undecodable(col, e))
    }

    fn flag(&self, col: &str) -> Result<bool, IndexError> {
        self.try_get::<Option<bool>, _>(col)
            .map_err(|e| undecodable(col, e))?
            .ok_or_else(|| null(col))
    }

    fn opt_real(&self, col: &str) -> Result<Option<f64>, IndexError> {
        self.try_get(col).map_err(|e| undecodable(col, e))
    }
}

fn null(col: &str) -> IndexError {
    IndexError::Corrupt(format!("{col} is NULL"))
}

fn undecodable(col: &str, e: sqlx::Error) -> IndexError {
    IndexError::Corrupt(format!("{col}: {e}"))
}

fn digest(s: &str) -> Result<Sha256, IndexError> {
    s.parse()
        .map_err(|_| IndexError::Corrupt(format!("digest {s:?}")))
}

fn capture_id(s: &str) -> Result<CaptureId, IndexError> {
    s.parse()
        .map_err(|_| IndexError::Corrupt(format!("capture id {s:?}")))
}

const CAPTURE_COLUMNS: &str = "SELECT c.id, c.seed_url, c.status, c.error, c.started_at, \
     c.finished_at, c.warc_sha256, c.record_count, c.schedule, c.scheduled_for, \
     c.previous_capture, c.page_change, c.import_json, c.media_json, c.browser_json, w.key, w.bytes \
     FROM capture c LEFT JOIN warc_file w ON w.sha256 = c.warc_sha256";

const RECORD_COLUMNS: &str = "record_id, warc_type, target_uri, surt, date, timestamp, mime, \
     status, payload_digest, block_digest, \"offset\", length";

/// The columns of a [`Hit`]: a record with its capture and WARC file.
const HIT_SELECT: &str = "SELECT r.capture_id, w.sha256 AS w_sha256, w.key AS w_key, \
     w.bytes AS w_bytes, r.record_id, r.warc_type, r.target_uri, r.surt, r.date, r.timestamp, \
     r.mime, r.status, r.payload_digest, r.block_digest, r.\"offset\", r.length \
     FROM record r JOIN warc_file w ON w.sha256 = r.warc_sha256";

fn record_from_row(r: &Row) -> Result<RecordEntry, IndexError> {
    Ok(RecordEntry {
        record_id: r.text("record_id")?,
        warc_type: r.text("warc_type")?,
        target_uri: r.opt_text("target_uri")?,
        surt: r.opt_text("surt")?,
        date: r.time("date")?,
        timestamp: r.text("timestamp")?,
        mime: r.opt_text("mime")?,
        status: r.opt_status("status")?,
        payload_digest: r.opt_digest("payload_digest")?,
        block_digest: r.digest("block_digest")?,
        offset: r.count("offset")?,
        length: r.count("length")?,
    })
}

fn hit_from_row(row: &Row) -> Result<Hit, IndexError> {
    Ok(Hit {
        capture_id: row.capture_id("capture_id")?,
        warc: WarcRef {
            key: row.text("w_key")?,
            sha256: row.digest("w_sha256")?,
            bytes: row.count("w_bytes")?,
        },
        record: record_from_row(row)?,
    })
}

fn pending_from_row(r: &Row) -> Result<PendingObject, IndexError> {
    Ok(PendingObject {
        key: r.text("key")?,
        capture_id: r.capture_id("capture_id")?,
        seed_url: r.text("seed_url")?,
        schedule: r.opt_text("schedule")?,
        scheduled_for: r.opt_time("scheduled_for")?,
        created_at: r.time("created_at")?,
    })
}

const RUN_COLUMNS: &str = "id, schedule, url, scheduled_for, state, not_before, attempts, \
     catch_up, lease_owner, capture_id, error";

fn run_from_row(r: &Row) -> Result<Run, IndexError> {
    let state = r.text("state")?;
    let attempts = r.count("attempts")?;
    Ok(Run {
        id: r.int("id")?,
        schedule: r.text("schedule")?,
        url: r.text("url")?,
        scheduled_for: r.time("scheduled_for")?,
        state: RunState::parse(&state)
            .ok_or_else(|| IndexError::Corrupt(format!("run state {state:?}")))?,
        not_before: r.time("not_before")?,
        attempts: u32::try_from(attempts)
            .map_err(|_| IndexError::Corrupt(format!("attempts = {attempts}")))?,
        catch_up: r.flag("catch_up")?,
        lease_owner: r.opt_text("lease_owner")?,
        capture_id: r.opt_capture_id("capture_id")?,
        error: r.opt_text("error")?,
    })
}

const CLAIM_COLUMNS: &str = "id, version, text, event_start, event_end, place, latitude, \
     longitude, tags, language, author, origin, created_at";

fn claim_from_row(r: &Row) -> Result<Claim, IndexError> {
    let tags = r.text("tags")?;
    let version = r.count("version")?;
    Ok(Claim {
        id: r.text("id")?,
        version: u32::try_from(version)
            .map_err(|_| IndexError::Corrupt(format!("claim version {version}")))?,
        text: r.text("text")?,
        event_start: r.opt_text("event_start")?,
        event_end: r.opt_text("event_end")?,
        place: r.opt_text("place")?,
        latitude: r.opt_real("latitude")?,
        longitude: r.opt_real("longitude")?,
        tags: serde_json::from_str(&tags)
            .map_err(|_| IndexError::Corrupt(format!("claim tags {tags:?}")))?,
        language: r.opt_text("language")?,
        author: r.opt_text("author")?,
        origin: r.opt_text("origin")?,
        created_at: r.time("created_at")?,
    })
}

const LINK_COLUMNS: &str = "id, claim_id, claim_version, capture_id, record_id, target_uri, \
     payload_digest, relation, selectors, quote_given, rationale, author, created_at";

fn link_from_row(r: &Row) -> Result<EvidenceLink, IndexError> {
    let relation = r.text("relation")?;
    let selectors = r.text("selectors")?;
    let version = r.count("claim_version")?;
    Ok(EvidenceLink {
        id: r.text("id")?,
        claim_id: r.text("claim_id")?,
        claim_version: u32::try_from(version)
            .map_err(|_| IndexError::Corrupt(format!("claim version {version}")))?,
        capture_id: r.capture_id("capture_id")?,
        record_id: r.text("record_id")?,
        target_uri: r.text("target_uri")?,
        payload_digest: r.digest("payload_digest")?,
        relation: Relation::parse(&relation)
            .ok_or_else(|| IndexError::Corrupt(format!("relation {relation:?}")))?,
        selectors: serde_json::from_str(&selectors)
            .map_err(|_| IndexError::Corrupt("link selectors".into()))?,
        quote_given: r.opt_text("quote_given")?,
        rationale: r.opt_text("rationale")?,
        author: r.opt_text("author")?,
        created_at: r.time("created_at")?,
    })
}

const FIXITY_COLUMNS: &str =
    "object_key, location, algorithm, expected, observed, outcome, detail, at";

fn fixity_from_row(r: &Row) -> Result<FixityEvent, IndexError> {
    Ok(FixityEvent {
        object_key: r.text("object_key")?,
        location: r.text("location")?,
        algorithm: r.text("algorithm")?,
        expected: r.digest("expected")?,
        observed: r.opt_digest("observed")?,
        outcome: r.text("outcome")?,
        detail: r.opt_text("detail")?,
        at: r.time("at")?,
    })
}

const LEAF_COLUMNS: &str =
    "SELECT idx, kind, object_id, data, leaf_hash, appended_at FROM log_leaf";

fn leaf_from_row(r: &Row) -> Result<LogLeaf, IndexError> {
    Ok(LogLeaf {
        index: r.count("idx")?,
        kind: r.text("kind")?,
        object_id: r.text("object_id")?,
        data: r.text("data")?,
        leaf_hash: r.digest("leaf_hash")?,
        appended_at: r.time("appended_at")?,
    })
}

const TOKEN_COLUMNS: &str =
    "SELECT id, secret_sha256, role, label, created_at, revoked_at FROM api_token";

fn token_from_row(row: &Row) -> Result<ApiToken, IndexError> {
    let role = row.text("role")?;
    Ok(ApiToken {
        id: row.text("id")?,
        secret_sha256: Some(row.digest("secret_sha256")?),
        role: Role::parse(&role).ok_or_else(|| IndexError::Corrupt(format!("role {role:?}")))?,
        label: row.opt_text("label")?,
        created_at: row.time("created_at")?,
        revoked_at: row.opt_time("revoked_at")?,
    })
}

/// The next free leaf index, inside `tx` (which holds the log lock).
async fn next_leaf(tx: &mut Tx) -> Result<i64, IndexError> {
    lock_log(tx).await?;
    Ok(
        sqlx::query_scalar("SELECT COALESCE(MAX(idx) + 1, 0) FROM log_leaf")
            .fetch_one(&mut **tx)
            .await?,
    )
}

/// Appends a leaf to the transparency log inside `tx` (the transaction
/// that records its object), at the next index.
async fn append_leaf(tx: &mut Tx, leaf: &Leaf) -> Result<u64, IndexError> {
    let next = next_leaf(tx).await?;
    sqlx::query(
        "INSERT INTO log_leaf (idx, kind, object_id, data, leaf_hash, appended_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
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

/// `WHERE a AND b ...` over conditions pushed with their binds.
struct Conditions {
    query: QueryBuilder<DB>,
    any: bool,
}

impl Conditions {
    fn new(select: &str) -> Self {
        Conditions {
            query: QueryBuilder::new(select),
            any: false,
        }
    }

    /// Starts the next condition; the caller pushes its text and binds.
    fn and(&mut self) -> &mut QueryBuilder<DB> {
        self.query.push(if self.any { " AND " } else { " WHERE " });
        self.any = true;
        &mut self.query
    }

    /// Rows whose instant `column` is within the bounds given, inclusive.
    fn between(&mut self, column: &str, from: Option<&DateTime<Utc>>, to: Option<&DateTime<Utc>>) {
        if let Some(t) = from {
            self.and()
                .push(format_args!("{column} >= "))
                .push_bind(db_time(t));
        }
        if let Some(t) = to {
            self.and()
                .push(format_args!("{column} <= "))
                .push_bind(db_time(t));
        }
    }

    /// The query, its rows in (`time_column`, `key_column`) order, `limit`
    /// of them from `offset`.
    fn ordered(
        self,
        (time_column, key_column): (&str, &str),
        newest_first: bool,
        limit: u32,
        offset: u64,
    ) -> QueryBuilder<DB> {
        let order = if newest_first { "DESC" } else { "ASC" };
        let mut query = self.query;
        query.push(format_args!(
            " ORDER BY {time_column} {order}, {key_column} {order} LIMIT {limit} OFFSET {offset}"
        ));
        query
    }

    /// A keyset cursor: rows after (`at`, key) in a list ordered by
    /// `time_column`, then `key_column`; `bind` pushes the key.
    fn after(
        &mut self,
        (time_column, at): (&str, &DateTime<Utc>),
        key_column: &str,
        newest_first: bool,
        bind: impl FnOnce(&mut QueryBuilder<DB>),
    ) {
        let beyond = if newest_first { "<" } else { ">" };
        let at = db_time(at);
        let q = self.and();
        q.push(format_args!("({time_column} {beyond} "))
            .push_bind(at.clone())
            .push(format_args!(" OR ({time_column} = "))
            .push_bind(at)
            .push(format_args!(" AND {key_column} {beyond} "));
        bind(q);
        q.push("))");
    }

    /// `substr(column, 1, length(p)) = p`: a prefix test that treats every
    /// character literally (no LIKE wildcards).
    fn prefix(&mut self, column: &str, prefix: &str) {
        let q = self.and();
        q.push(format_args!("substr({column}, 1, length("))
            .push_bind(prefix.to_string())
            .push(")) = ")
            .push_bind(prefix.to_string());
    }
}

/// The latest version of each claim; with `search`, of those whose text
/// contains every word of it (any case; LIKE's wildcards escaped).
fn claim_conditions(search: Option<&str>) -> Conditions {
    let mut c = Conditions::new(&format!("SELECT {CLAIM_COLUMNS} FROM claim c"));
    c.and()
        .push("version = (SELECT MAX(version) FROM claim v WHERE v.id = c.id)");
    for word in search.unwrap_or("").split_whitespace() {
        let pattern = format!(
            "%{}%",
            word.to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_")
        );
        c.and()
            .push("lower(text) LIKE ")
            .push_bind(pattern)
            .push(" ESCAPE '\\'");
    }
    c
}

#[async_trait]
impl CaptureIndex for SqlIndex {
    async fn put_capture(
        &self,
        capture: &Capture,
        records: &[RecordEntry],
        fence: Option<&Fence>,
    ) -> Result<(), IndexError> {
        let mut tx = begin(&self.pool).await?;
        Self::exactly_once(&mut tx, capture, fence).await?;
        Self::insert_capture(&mut tx, capture, records).await?;
        append_leaf(&mut tx, &leaf::capture_leaf(capture, records)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn restore_capture(
        &self,
        capture: &Capture,
        records: &[RecordEntry],
    ) -> Result<(), IndexError> {
        let mut tx = begin(&self.pool).await?;
        Self::insert_capture(&mut tx, capture, records).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn capture_of_instant(
        &self,
        schedule: &str,
        seed_url: &str,
        scheduled_for: DateTime<Utc>,
    ) -> Result<Option<CaptureId>, IndexError> {
        let id: Option<String> = sqlx::query_scalar(
            "SELECT id FROM capture WHERE schedule = $1 AND seed_url = $2 AND scheduled_for = $3 \
             AND status = 'ok' ORDER BY started_at, id LIMIT 1",
        )
        .bind(schedule)
        .bind(seed_url)
        .bind(db_time(&scheduled_for))
        .fetch_optional(&self.pool)
        .await?;
        id.as_deref().map(capture_id).transpose()
    }

    async fn capture(&self, id: &CaptureId) -> Result<Option<Capture>, IndexError> {
        let sql = format!("{CAPTURE_COLUMNS} WHERE c.id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
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
                    format!("{CAPTURE_COLUMNS} WHERE c.seed_url = $1 ORDER BY c.started_at, c.id");
                sqlx::query(AssertSqlSafe(sql))
                    .bind(url)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                let sql = format!("{CAPTURE_COLUMNS} ORDER BY c.started_at, c.id");
                sqlx::query(AssertSqlSafe(sql))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        self.captures_from_rows(&rows).await
    }

    async fn capture_ids_with_prefix(
        &self,
        prefix: &str,
        limit: u64,
    ) -> Result<Vec<CaptureId>, IndexError> {
        // Only hex digits and hyphens reach LIKE: no wildcard of the
        // caller's can widen it.
        if !prefix.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            return Ok(Vec::new());
        }
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT id FROM capture WHERE id LIKE $1 ORDER BY id LIMIT $2")
                .bind(format!("{}%", prefix.to_ascii_lowercase()))
                .bind(limit.min(i64::MAX as u64) as i64)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .filter_map(|(id,)| id.parse().ok())
            .collect())
    }

    async fn latest_ok_capture(&self, seed_url: &str) -> Result<Option<Capture>, IndexError> {
        let sql = format!(
            "{CAPTURE_COLUMNS} WHERE c.seed_url = $1 AND c.status = 'ok' \
             ORDER BY c.started_at DESC, c.id DESC LIMIT 1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(seed_url)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(row) => Ok(Some(self.capture_from_row(&row).await?)),
            None => Ok(None),
        }
    }

    async fn records(&self, id: &CaptureId) -> Result<Vec<RecordEntry>, IndexError> {
        let sql = format!(
            "SELECT {RECORD_COLUMNS} FROM record WHERE capture_id = $1 ORDER BY \"offset\""
        );
        let rows = sqlx::query(AssertSqlSafe(sql))
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
        if let Some(hit) = self.nearest_by("r.target_uri", url, at).await? {
            return Ok(Some(hit));
        }
        let Some(key) = crate::model::surt_of_target(Some(url)) else {
            return Ok(None);
        };
        self.nearest_by("r.surt", &key, at).await
    }

    async fn original_response(
        &self,
        url: &str,
        payload_digest: Sha256,
    ) -> Result<Option<Hit>, IndexError> {
        let sql = format!(
            "{HIT_SELECT} WHERE r.target_uri = $1 AND r.warc_type = 'response' \
             AND r.payload_digest = $2 ORDER BY r.date ASC LIMIT 1"
        );
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(url)
            .bind(payload_digest.hex())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(hit_from_row).transpose()
    }

    async fn record_hit(&self, record_id: &str) -> Result<Option<Hit>, IndexError> {
        let sql = format!("{HIT_SELECT} WHERE r.record_id = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(record_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(hit_from_row).transpose()
    }

    async fn capture_page(&self, q: &CaptureQuery) -> Result<Vec<Capture>, IndexError> {
        let mut c = Conditions::new(CAPTURE_COLUMNS);
        if let Some(p) = &q.url_prefix {
            c.prefix("c.seed_url", p);
        }
        if let Some(u) = &q.seed_url {
            c.and().push("c.seed_url = ").push_bind(u.clone());
        }
        c.between("c.started_at", q.from.as_ref(), q.to.as_ref());
        if let Some(status) = q.status {
            c.and().push("c.status = ").push_bind(status.as_str());
        }
        if let Some((lo, hi)) = q.page_status {
            // The page: as `archive::page_resource` finds it.
            c.and()
                .push(
                    "(SELECT r.status FROM resource r WHERE r.capture_id = c.id \
                     AND r.status IS NOT NULL AND (r.status < 300 OR r.status >= 400) \
                     ORDER BY r.seq LIMIT 1) BETWEEN ",
                )
                .push_bind(lo as i64)
                .push(" AND ")
                .push_bind(hi as i64);
        }
        if let Some(s) = &q.schedule {
            c.and().push("c.schedule = ").push_bind(s.clone());
        }
        if let Some(host) = &q.host {
            // The seed's host, then its path or its port.
            let q = c.and();
            q.push("(");
            for (i, scheme) in ["http", "https"].iter().enumerate() {
                for (j, after) in ["/", ":"].iter().enumerate() {
                    if i + j > 0 {
                        q.push(" OR ");
                    }
                    let p = format!("{scheme}://{host}{after}");
                    q.push("substr(c.seed_url, 1, length(")
                        .push_bind(p.clone())
                        .push(")) = ")
                        .push_bind(p);
                }
            }
            q.push(")");
        }
        if let Some(after) = &q.after {
            let id = after.id.as_str().to_string();
            c.after(
                ("c.started_at", &after.started_at),
                "c.id",
                q.newest_first,
                |b| {
                    b.push_bind(id);
                },
            );
        }
        let mut query = c.ordered(("c.started_at", "c.id"), q.newest_first, q.limit, q.offset);
        let rows = query.build().fetch_all(&self.pool).await?;
        self.captures_from_rows(&rows).await
    }

    async fn find_records(&self, q: &RecordQuery) -> Result<Vec<Hit>, IndexError> {
        let mut c = Conditions::new(HIT_SELECT);
        c.and().push("r.warc_type IN ('response', 'revisit')");
        if let Some(s) = &q.surt {
            c.and().push("r.surt = ").push_bind(s.clone());
        }
        if let Some(p) = &q.surt_prefix {
            c.prefix("r.surt", p);
        }
        if let Some(t) = &q.from {
            c.and().push("r.timestamp >= ").push_bind(t.clone());
        }
        if let Some(t) = &q.to {
            c.and().push("r.timestamp <= ").push_bind(t.clone());
        }
        let order = if q.reverse { "DESC" } else { "ASC" };
        let mut query = c.query;
        query.push(format_args!(
            " ORDER BY r.surt {order}, r.timestamp {order}, r.record_id {order} \
             LIMIT {} OFFSET {}",
            q.limit, q.offset
        ));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(hit_from_row).collect()
    }

    async fn warc_files(&self) -> Result<Vec<WarcFile>, IndexError> {
        let rows = sqlx::query(
            "SELECT sha256, key, bytes, quarantined FROM warc_file ORDER BY stored_at, sha256",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(WarcFile {
                    sha256: r.digest("sha256")?,
                    key: r.text("key")?,
                    bytes: r.count("bytes")?,
                    quarantined: r.opt_text("quarantined")?,
                })
            })
            .collect()
    }

    async fn warc_file_page(
        &self,
        q: &WarcFileQuery,
    ) -> Result<Vec<(WarcFile, DateTime<Utc>)>, IndexError> {
        let mut c =
            Conditions::new("SELECT sha256, key, bytes, quarantined, stored_at FROM warc_file");
        if q.quarantined_only {
            c.and().push("quarantined IS NOT NULL");
        }
        if let Some((at, sha)) = &q.after {
            let sha = sha.hex();
            c.after(("stored_at", at), "sha256", q.newest_first, |b| {
                b.push_bind(sha);
            });
        }
        let mut query = c.ordered(("stored_at", "sha256"), q.newest_first, q.limit, 0);
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                let file = WarcFile {
                    sha256: r.digest("sha256")?,
                    key: r.text("key")?,
                    bytes: r.count("bytes")?,
                    quarantined: r.opt_text("quarantined")?,
                };
                Ok((file, r.time("stored_at")?))
            })
            .collect()
    }

    async fn add_pending_object(&self, p: &PendingObject) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO pending_object (key, capture_id, seed_url, schedule, scheduled_for, \
             created_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (key, capture_id) DO NOTHING",
        )
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
        let rows = sqlx::query(
            "SELECT key, capture_id, seed_url, schedule, scheduled_for, created_at \
             FROM pending_object WHERE schedule = $1 AND seed_url = $2 AND scheduled_for = $3 \
             ORDER BY created_at",
        )
        .bind(schedule)
        .bind(seed_url)
        .bind(db_time(&scheduled_for))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pending_from_row).collect()
    }

    async fn remove_pending_object(
        &self,
        key: &str,
        capture_id: &CaptureId,
    ) -> Result<(), IndexError> {
        sqlx::query("DELETE FROM pending_object WHERE key = $1 AND capture_id = $2")
            .bind(key)
            .bind(capture_id.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn all_pending_objects(&self) -> Result<Vec<PendingObject>, IndexError> {
        let rows = sqlx::query(
            "SELECT key, capture_id, seed_url, schedule, scheduled_for, created_at \
             FROM pending_object ORDER BY created_at, key",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pending_from_row).collect()
    }
}

impl SqlIndex {
    /// The response or revisit record whose `column` is `value`, nearest in
    /// time to `at` (the latest without `at`; the earlier on a tie).
    async fn nearest_by(
        &self,
        column: &str,
        value: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Option<Hit>, IndexError> {
        let base =
            format!("{HIT_SELECT} WHERE {column} = $1 AND r.warc_type IN ('response', 'revisit')");
        let Some(at) = at else {
            let sql = format!("{base} ORDER BY r.date DESC LIMIT 1");
            let row = sqlx::query(AssertSqlSafe(sql))
                .bind(value)
                .fetch_optional(&self.pool)
                .await?;
            return row.as_ref().map(hit_from_row).transpose();
        };
        let t = db_time(&at);
        let side = |cmp: &str, order: &str| {
            format!("{base} AND r.date {cmp} $2 ORDER BY r.date {order} LIMIT 1")
        };
        let before = sqlx::query(AssertSqlSafe(side("<=", "DESC")))
            .bind(value)
            .bind(&t)
            .fetch_optional(&self.pool)
            .await?;
        let after = sqlx::query(AssertSqlSafe(side(">", "ASC")))
            .bind(value)
            .bind(&t)
            .fetch_optional(&self.pool)
            .await?;
        Ok(nearer(
            before.as_ref().map(hit_from_row).transpose()?,
            after.as_ref().map(hit_from_row).transpose()?,
            at,
        ))
    }
}

#[async_trait]
impl LogIndex for SqlIndex {
    async fn restore_leaf(&self, leaf: &LogLeaf) -> Result<(), IndexError> {
        let mut tx = begin(&self.pool).await?;
        let next = next_leaf(&mut tx).await?;
        if leaf.index != next as u64 {
            return Err(IndexError::Conflict(format!(
                "log leaf {} cannot follow leaf {}",
                leaf.index,
                next - 1
            )));
        }
        sqlx::query(
            "INSERT INTO log_leaf (idx, kind, object_id, data, leaf_hash, appended_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(leaf.index as i64)
        .bind(&leaf.kind)
        .bind(&leaf.object_id)
        .bind(&leaf.data)
        .bind(leaf.leaf_hash.hex())
        .bind(db_time(&leaf.appended_at))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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
            sqlx::query_scalar("SELECT leaf_hash FROM log_leaf WHERE idx < $1 ORDER BY idx")
                .bind(size as i64)
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(|h| digest(h)).collect()
    }

    async fn log_leaves_of(&self, kind: &str, object_id: &str) -> Result<Vec<LogLeaf>, IndexError> {
        let sql = format!("{LEAF_COLUMNS} WHERE kind = $1 AND object_id = $2 ORDER BY idx");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(kind)
            .bind(object_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(leaf_from_row).collect()
    }

    async fn log_leaves(&self, from: u64, to: u64) -> Result<Vec<LogLeaf>, IndexError> {
        let sql = format!("{LEAF_COLUMNS} WHERE idx >= $1 AND idx < $2 ORDER BY idx");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .bind(from as i64)
            .bind(to as i64)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(leaf_from_row).collect()
    }

    async fn put_checkpoint(&self, c: &Checkpoint) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO checkpoint (tree_size, root, note, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (tree_size) DO NOTHING",
        )
        .bind(c.tree_size as i64)
        .bind(c.root.hex())
        .bind(&c.note)
        .bind(db_time(&c.created_at))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, IndexError> {
        let rows = sqlx::query(
            "SELECT tree_size, root, note, created_at FROM checkpoint ORDER BY tree_size",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(Checkpoint {
                    tree_size: r.count("tree_size")?,
                    root: r.digest("root")?,
                    note: r.text("note")?,
                    created_at: r.time("created_at")?,
                })
            })
            .collect()
    }

    async fn record_fixity(&self, e: &FixityEvent) -> Result<(), IndexError> {
        let mut tx = begin(&self.pool).await?;
        Self::insert_fixity(&mut tx, e).await?;
        append_leaf(&mut tx, &leaf::fixity_leaf(e)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn restore_rows(&self, l: &LogLeaf) -> Result<bool, IndexError> {
        let bad = |what: &str| IndexError::Corrupt(format!("log leaf {}: not a {what}", l.index));
        let mut tx = begin(&self.pool).await?;
        match l.kind.as_str() {
            "claim" => {
                let c: Claim = serde_json::from_str(&l.data).map_err(|_| bad("claim"))?;
                Self::insert_claim(&mut tx, &c).await?;
            }
            "link" => {
                let link: EvidenceLink = serde_json::from_str(&l.data).map_err(|_| bad("link"))?;
                Self::insert_link(&mut tx, &link).await?;
            }
            "event" => {
                let e: CustodyEvent =
                    serde_json::from_str(&l.data).map_err(|_| bad("custody event"))?;
                Self::insert_event(&mut tx, &e).await?;
            }
            "fixity" => {
                let e: FixityEvent =
                    serde_json::from_str(&l.data).map_err(|_| bad("fixity check"))?;
                Self::insert_fixity(&mut tx, &e).await?;
            }
            _ => return Ok(false),
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn fixity_events(&self, key: &str) -> Result<Vec<FixityEvent>, IndexError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {FIXITY_COLUMNS} FROM fixity_event WHERE object_key = $1 ORDER BY id"
        )))
        .bind(key)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(fixity_from_row).collect()
    }

    async fn latest_fixity_events(&self) -> Result<Vec<FixityEvent>, IndexError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {FIXITY_COLUMNS} FROM fixity_event WHERE id IN \
             (SELECT MAX(id) FROM fixity_event GROUP BY object_key) ORDER BY id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(fixity_from_row).collect()
    }

    async fn request_timestamp(
        &self,
        subject_kind: &str,
        subject_id: &str,
        imprint: Sha256,
        tsa_url: &str,
    ) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO timestamp_request (subject_kind, subject_id, imprint, tsa_url, next_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subject_kind, subject_id, tsa_url) DO NOTHING",
        )
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
    ) -> Result<Vec<TimestampRequest>, IndexError> {
        let rows = sqlx::query(
            "SELECT id, subject_kind, subject_id, imprint, tsa_url, \
             CAST(attempts AS BIGINT) AS attempts, last_error FROM timestamp_request \
             WHERE next_at <= $1 ORDER BY next_at, id LIMIT $2",
        )
        .bind(db_time(&now))
        .bind(limit as i64)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TimestampRequest {
                    id: r.int("id")?,
                    subject_kind: r.text("subject_kind")?,
                    subject_id: r.text("subject_id")?,
                    imprint: r.digest("imprint")?,
                    tsa_url: r.text("tsa_url")?,
                    attempts: r.count("attempts")?.min(u64::from(u32::MAX)) as u32,
                    last_error: r.opt_text("last_error")?,
                })
            })
            .collect()
    }

    async fn timestamp_received(
        &self,
        request_id: i64,
        token: &TimestampToken,
    ) -> Result<(), IndexError> {
        let mut tx = begin(&self.pool).await?;
        sqlx::query(
            "INSERT INTO timestamp_token (subject_kind, subject_id, imprint, tsa_url, token_der, \
             gen_time, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&token.subject_kind)
        .bind(&token.subject_id)
        .bind(token.imprint.hex())
        .bind(&token.tsa_url)
        .bind(&token.token_der)
        .bind(&token.gen_time)
        .bind(db_time(&token.received_at))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM timestamp_request WHERE id = $1")
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
        sqlx::query(
            "UPDATE timestamp_request SET attempts = attempts + 1, last_error = $1, next_at = $2 \
             WHERE id = $3",
        )
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
    ) -> Result<Vec<TimestampToken>, IndexError> {
        let rows = sqlx::query(
            "SELECT subject_kind, subject_id, imprint, tsa_url, token_der, gen_time, received_at \
             FROM timestamp_token WHERE subject_kind = $1 AND subject_id = $2 ORDER BY id",
        )
        .bind(subject_kind)
        .bind(subject_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(TimestampToken {
                    subject_kind: r.text("subject_kind")?,
                    subject_id: r.text("subject_id")?,
                    imprint: r.digest("imprint")?,
                    tsa_url: r.text("tsa_url")?,
                    token_der: r.text("token_der")?,
                    // Tokens stored before gen_time was RFC 3339 are read
                    // in that form too.
                    gen_time: r
                        .opt_text("gen_time")?
                        .map(|t| crate::tlog::tsa::rfc3339_gen_time(&t)),
                    received_at: r.time("received_at")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl RunIndex for SqlIndex {
    async fn planned_until(
        &self,
        schedule: &str,
        url: &str,
    ) -> Result<Option<DateTime<Utc>>, IndexError> {
        let t: Option<String> = sqlx::query_scalar(
            "SELECT planned_until FROM schedule_state WHERE schedule = $1 AND url = $2",
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
        let mut tx = begin(&self.pool).await?;
        let mut added = 0;
        for r in runs {
            let done = sqlx::query(
                "INSERT INTO run (schedule, url, host, scheduled_for, state, not_before, \
                 catch_up, error, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9) \
                 ON CONFLICT (schedule, url, scheduled_for) DO NOTHING",
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
            .execute(&mut *tx)
            .await?;
            added += done.rows_affected();
        }
        sqlx::query(
            "INSERT INTO schedule_state (schedule, url, planned_until) VALUES ($1, $2, $3) \
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

    async fn skip_waiting_runs(
        &self,
        schedule: &str,
        reason: &str,
        now: DateTime<Utc>,
    ) -> Result<u64, IndexError> {
        let done = sqlx::query(
            "UPDATE run SET state = 'skipped', error = $1, updated_at = $2 \
             WHERE schedule = $3 AND state = 'due' AND attempts = 0",
        )
        .bind(reason)
        .bind(db_time(&now))
        .bind(schedule)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn has_active_run(&self, schedule: &str, url: &str) -> Result<bool, IndexError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM run WHERE schedule = $1 AND url = $2 \
             AND state IN ('due', 'running')",
        )
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
        let mut pick = QueryBuilder::<DB>::new(
            "SELECT r.id FROM run r WHERE ((r.state = 'due' AND r.not_before <= ",
        );
        pick.push_bind(now_s.clone())
            .push(") OR (r.state = 'running' AND r.lease_expires < ")
            .push_bind(now_s.clone())
            .push("))");
        if !busy_hosts.is_empty() {
            pick.push(" AND r.host NOT IN (");
            let mut hosts = pick.separated(", ");
            for h in busy_hosts {
                hosts.push_bind(h.clone());
            }
            pick.push(")");
        }
        pick.push(
            " AND NOT EXISTS (SELECT 1 FROM run o WHERE o.schedule = r.schedule AND o.url = r.url \
             AND o.id <> r.id AND o.state = 'running' AND o.lease_expires >= ",
        )
        .push_bind(now_s.clone())
        .push(") ORDER BY r.scheduled_for, r.id LIMIT 1")
        .push(CLAIM_SUFFIX);
        let mut tx = begin(&self.pool).await?;
        let Some(id) = pick
            .build_query_scalar::<i64>()
            .fetch_optional(&mut *tx)
            .await?
        else {
            return Ok(None);
        };
        // An attempt whose lease ran out without an ending was lost (its
        // worker died); say so before starting the next one.
        sqlx::query(
            "UPDATE run_attempt SET outcome = 'lease_expired', finished_at = $1 \
             WHERE run_id = $2 AND outcome = 'running'",
        )
        .bind(&now_s)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE run SET state = 'running', lease_owner = $1, lease_expires = $2, \
             attempts = attempts + 1, updated_at = $3 WHERE id = $4",
        )
        .bind(owner)
        .bind(db_time(&lease_until))
        .bind(&now_s)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {RUN_COLUMNS} FROM run WHERE id = $1"
        )))
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        let run = run_from_row(&row)?;
        sqlx::query(
            "INSERT INTO run_attempt (run_id, attempt, owner, started_at, outcome) \
             VALUES ($1, $2, $3, $4, 'running')",
        )
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
        let done = sqlx::query(
            "UPDATE run SET lease_expires = $1 WHERE id = $2 AND lease_owner = $3 \
             AND state = 'running'",
        )
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
        let mut tx = begin(&self.pool).await?;
        let done = sqlx::query(
            "UPDATE run SET state = $1, capture_id = COALESCE($2, capture_id), error = $3, \
             not_before = COALESCE($4, not_before), lease_owner = NULL, lease_expires = NULL, \
             updated_at = $5 WHERE id = $6 AND lease_owner = $7 AND state = 'running'",
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
                "UPDATE run_attempt SET outcome = $1, finished_at = $2, capture_id = $3, \
                 error = $4 WHERE run_id = $5 AND owner = $6 AND outcome = 'running'",
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
        let done = sqlx::query(
            "UPDATE run SET state = 'due', not_before = $1, updated_at = $1 \
             WHERE state = 'interrupted'",
        )
        .bind(db_time(&now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn runs(&self, schedule: Option<&str>) -> Result<Vec<Run>, IndexError> {
        let rows = match schedule {
            Some(s) => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM run WHERE schedule = $1 ORDER BY scheduled_for, id"
                )))
                .bind(s)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(AssertSqlSafe(format!(
                    "SELECT {RUN_COLUMNS} FROM run ORDER BY scheduled_for, id"
                )))
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.iter().map(run_from_row).collect()
    }

    async fn run_page(&self, q: &RunListQuery) -> Result<Vec<Run>, IndexError> {
        let mut c = Conditions::new(&format!("SELECT {RUN_COLUMNS} FROM run"));
        if let Some(s) = &q.schedule {
            c.and().push("schedule = ").push_bind(s.clone());
        }
        if let Some(state) = q.state {
            c.and().push("state = ").push_bind(state.as_str());
        }
        if let Some(h) = &q.host {
            c.and()
                .push("(host = ")
                .push_bind(h.clone())
                .push(" OR host = ")
                .push_bind(format!("www.{h}"))
                .push(")");
        }
        c.between("scheduled_for", q.from.as_ref(), q.to.as_ref());
        if let Some(after) = &q.after {
            let id = after.id;
            c.after(
                ("scheduled_for", &after.scheduled_for),
                "id",
                q.newest_first,
                |b| {
                    b.push_bind(id);
                },
            );
        }
        let mut query = c.ordered(("scheduled_for", "id"), q.newest_first, q.limit, 0);
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn try_lead(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, IndexError> {
        let done = sqlx::query(
            "INSERT INTO leader_lease (name, owner, expires_at) VALUES ('scheduler', $1, $2) \
             ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at \
             WHERE leader_lease.owner = excluded.owner OR leader_lease.expires_at < $3",
        )
        .bind(owner)
        .bind(db_time(&until))
        .bind(db_time(&now))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn resign(&self, owner: &str) -> Result<(), IndexError> {
        sqlx::query("DELETE FROM leader_lease WHERE name = 'scheduler' AND owner = $1")
            .bind(owner)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

#[async_trait]
impl ProvenanceIndex for SqlIndex {
    async fn put_claim(&self, c: &Claim) -> Result<(), IndexError> {
        let mut tx = begin(&self.pool).await?;
        Self::insert_claim(&mut tx, c).await?;
        append_leaf(&mut tx, &leaf::claim_leaf(c)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn claim_versions(&self, id: &str) -> Result<Vec<Claim>, IndexError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CLAIM_COLUMNS} FROM claim WHERE id = $1 ORDER BY version"
        )))
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(claim_from_row).collect()
    }

    async fn claims(&self, search: Option<&str>) -> Result<Vec<Claim>, IndexError> {
        let c = claim_conditions(search);
        let mut query = c.query;
        query.push(" ORDER BY (SELECT MIN(created_at) FROM claim f WHERE f.id = c.id), id");
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(claim_from_row).collect()
    }

    async fn claim_page(
        &self,
        search: Option<&str>,
        after: Option<&str>,
        newest_first: bool,
        limit: u32,
    ) -> Result<Vec<Claim>, IndexError> {
        let mut c = claim_conditions(search);
        if let Some(after) = after {
            let beyond = if newest_first { "<" } else { ">" };
            c.and()
                .push(format_args!("c.id {beyond} "))
                .push_bind(after.to_string());
        }
        let order = if newest_first { "DESC" } else { "ASC" };
        let mut query = c.query;
        query.push(format_args!(" ORDER BY c.id {order} LIMIT {limit}"));
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(claim_from_row).collect()
    }

    async fn claim_by_origin(&self, origin: &str, text: &str) -> Result<Option<Claim>, IndexError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "SELECT {CLAIM_COLUMNS} FROM claim WHERE origin = $1 AND text = $2 \
             ORDER BY version DESC LIMIT 1"
        )))
        .bind(origin)
        .bind(text)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(claim_from_row).transpose()
    }

    async fn put_link(&self, l: &EvidenceLink) -> Result<(), IndexError> {
        let mut tx = begin(&self.pool).await?;
        Self::insert_link(&mut tx, l).await?;
        append_leaf(&mut tx, &leaf::link_leaf(l)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn links(&self, filter: &LinkFilter) -> Result<Vec<EvidenceLink>, IndexError> {
        let mut c = Conditions::new(&format!("SELECT {LINK_COLUMNS} FROM evidence_link"));
        if let Some(id) = &filter.claim_id {
            c.and().push("claim_id = ").push_bind(id.clone());
        }
        if let Some(id) = &filter.capture_id {
            c.and().push("capture_id = ").push_bind(id.to_string());
        }
        if let Some(t) = &filter.target_uri {
            c.and().push("target_uri = ").push_bind(t.clone());
        }
        let mut query = c.query;
        query.push(" ORDER BY created_at, id");
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(link_from_row).collect()
    }

    async fn put_passage_check(&self, c: &PassageCheck) -> Result<(), IndexError> {
        sqlx::query(
            "INSERT INTO passage_check (link_id, capture_id, captured_at, present) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (link_id, capture_id) DO NOTHING",
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
            "SELECT link_id, capture_id, captured_at, present FROM passage_check \
             WHERE link_id = $1 ORDER BY captured_at, capture_id",
        )
        .bind(link_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PassageCheck {
                    link_id: r.text("link_id")?,
                    capture_id: r.capture_id("capture_id")?,
                    captured_at: r.time("captured_at")?,
                    present: r.flag("present")?,
                })
            })
            .collect()
    }

    async fn add_event(&self, e: &CustodyEvent) -> Result<(), IndexError> {
        let mut tx = begin(&self.pool).await?;
        Self::insert_event(&mut tx, e).await?;
        append_leaf(&mut tx, &leaf::event_leaf(e)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn add_events(&self, events: &[CustodyEvent]) -> Result<(), IndexError> {
        if events.is_empty() {
            return Ok(());
        }
        // Multi-row inserts: a batch of accesses is two statements per
        // 500 events, not three per event.
        let mut tx = begin(&self.pool).await?;
        let mut next = next_leaf(&mut tx).await?;
        let now = db_time(&Utc::now());
        for chunk in events.chunks(500) {
            let mut rows = QueryBuilder::<DB>::new(
                "INSERT INTO custody_event (object_kind, object_id, event, actor, at, outcome, \
                 detail) ",
            );
            rows.push_values(chunk, |mut row, e| {
                row.push_bind(e.object_kind.clone())
                    .push_bind(e.object_id.clone())
                    .push_bind(e.event.clone())
                    .push_bind(e.actor.clone())
                    .push_bind(db_time(&e.at))
                    .push_bind(e.outcome.clone())
                    .push_bind(e.detail.to_string());
            });
            rows.build().execute(&mut *tx).await?;
            let mut leaves = QueryBuilder::<DB>::new(
                "INSERT INTO log_leaf (idx, kind, object_id, data, leaf_hash, appended_at) ",
            );
            leaves.push_values(chunk.iter().enumerate(), |mut row, (i, e)| {
                let leaf = leaf::event_leaf(e);
                let hash = leaf.hash().hex();
                row.push_bind(next + i as i64)
                    .push_bind(leaf.kind.to_string())
                    .push_bind(leaf.object_id)
                    .push_bind(leaf.data)
                    .push_bind(hash)
                    .push_bind(now.clone());
            });
            leaves.build().execute(&mut *tx).await?;
            next += chunk.len() as i64;
        }
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
             WHERE object_kind = $1 AND object_id = $2 ORDER BY seq",
        )
        .bind(object_kind)
        .bind(object_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(CustodyEvent {
                    object_kind: r.text("object_kind")?,
                    object_id: r.text("object_id")?,
                    event: r.text("event")?,
                    actor: r.opt_text("actor")?,
                    at: r.time("at")?,
                    outcome: r.text("outcome")?,
                    detail: serde_json::from_str(&r.text("detail")?)
                        .unwrap_or(serde_json::Value::Null),
                })
            })
            .collect()
    }
}

#[async_trait]
impl TokenIndex for SqlIndex {
    async fn put_token(&self, t: &ApiToken) -> Result<(), IndexError> {
        let secret = t
            .secret_sha256
            .ok_or_else(|| IndexError::Corrupt("a token without its secret's digest".into()))?;
        sqlx::query(
            "INSERT INTO api_token (id, secret_sha256, role, label, created_at, revoked_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
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
        secret_sha256: &Sha256,
    ) -> Result<Option<ApiToken>, IndexError> {
        let sql = format!("{TOKEN_COLUMNS} WHERE secret_sha256 = $1");
        let row = sqlx::query(AssertSqlSafe(sql))
            .bind(secret_sha256.hex())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(token_from_row).transpose()
    }

    async fn tokens(&self) -> Result<Vec<ApiToken>, IndexError> {
        let sql = format!("{TOKEN_COLUMNS} ORDER BY created_at, id");
        let rows = sqlx::query(AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool, IndexError> {
        let done = sqlx::query(
            "UPDATE api_token SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
        )
        .bind(db_time(&at))
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait]
impl SearchIndex for SqlIndex {
    async fn put_page_texts(
        &self,
        capture: &CaptureId,
        texts: &[PageText],
        at: DateTime<Utc>,
    ) -> Result<bool, IndexError> {
        let mut tx = begin(&self.pool).await?;
        let done = sqlx::query(
            "INSERT INTO page_text_done (capture_id, documents, indexed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (capture_id) DO NOTHING",
        )
        .bind(capture.as_str())
        .bind(texts.len() as i64)
        .bind(db_time(&at))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        for t in texts {
            insert_page_text(&mut tx, capture.as_str(), t).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn captures_without_text(&self, limit: u32) -> Result<Vec<CaptureId>, IndexError> {
        let rows = sqlx::query(AssertSqlSafe(format!(
            "SELECT c.id FROM capture c WHERE c.status = 'ok' AND NOT EXISTS \
             (SELECT 1 FROM page_text_done d WHERE d.capture_id = c.id) \
             ORDER BY c.started_at, c.id LIMIT {limit}"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.capture_id("id")).collect()
    }

    async fn search_texts(&self, q: &TextQuery) -> Result<Vec<TextHit>, IndexError> {
        if q.terms.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = Conditions::new(
            "SELECT t.id AS row_id, t.capture_id, c.started_at, c.seed_url, c.schedule, t.url, \
             t.title, t.body FROM page_text t JOIN capture c ON c.id = t.capture_id",
        );
        push_text_match(c.and(), &q.terms);
        if let Some(h) = &q.host {
            // Hosts are checked to hold no LIKE wildcard (see `search.rs`).
            c.and()
                .push("(t.host = ")
                .push_bind(h.clone())
                .push(" OR t.host LIKE ")
                .push_bind(format!("%.{h}"))
                .push(")");
        }
        c.between("c.started_at", q.from.as_ref(), q.to.as_ref());
        if let Some(s) = &q.schedule {
            c.and().push("c.schedule = ").push_bind(s.clone());
        }
        if let Some(claim) = &q.claim {
            c.and()
                .push("t.capture_id IN (SELECT capture_id FROM evidence_link WHERE claim_id = ")
                .push_bind(claim.clone())
                .push(")");
        }
        if let Some(after) = &q.after {
            c.after(
                ("c.started_at", &after.started_at),
                "t.id",
                q.newest_first,
                |b| {
                    b.push_bind(after.row);
                },
            );
        }
        let mut query = c.ordered(("c.started_at", "t.id"), q.newest_first, q.limit, 0);
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(TextHit {
                    row: r.int("row_id")?,
                    capture_id: r.capture_id("capture_id")?,
                    started_at: r.time("started_at")?,
                    seed_url: r.text("seed_url")?,
                    schedule: r.opt_text("schedule")?,
                    url: r.text("url")?,
                    title: r.opt_text("title")?,
                    body: r.text("body")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl Index for SqlIndex {
    async fn stats(&self, now: DateTime<Utc>) -> Result<Stats, IndexError> {
        let counts = sqlx::query("SELECT status, COUNT(*) AS n FROM capture GROUP BY status")
            .fetch_all(&self.pool)
            .await?;
        let mut stats = Stats::default();
        for row in &counts {
            let n = row.count("n")?;
            match row.text("status")?.as_str() {
                "ok" => stats.captures_ok = n,
                _ => stats.captures_failed += n,
            }
        }
        stats.stored_bytes = sqlx::query_scalar::<_, Option<i64>>(
            "SELECT CAST(SUM(bytes) AS BIGINT) FROM warc_file",
        )
        .fetch_one(&self.pool)
        .await?
        .unwrap_or(0) as u64;
        let by_state = sqlx::query("SELECT state, COUNT(*) AS n FROM run GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        let mut counted = Vec::new();
        for row in &by_state {
            counted.push((row.text("state")?, row.count("n")?));
        }
        for state in RunState::ALL {
            let n = counted
                .iter()
                .find(|(s, _)| s == state.as_str())
                .map(|(_, n)| *n)
                .unwrap_or(0);
            stats.runs.push((state, n));
        }
        let waiting = sqlx::query(
            "SELECT COUNT(*) AS n, MIN(scheduled_for) AS oldest FROM run \
             WHERE state = 'due' AND not_before <= $1",
        )
        .bind(db_time(&now))
        .fetch_one(&self.pool)
        .await?;
        stats.queue_depth = waiting.count("n")?;
        stats.oldest_waiting = waiting.opt_time("oldest")?;
        let backlog: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM timestamp_request")
            .fetch_one(&self.pool)
            .await?;
        stats.timestamp_backlog = backlog as u64;
        let quarantined: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM warc_file WHERE quarantined IS NOT NULL")
                .fetch_one(&self.pool)
                .await?;
        stats.quarantined = quarantined as u64;
        Ok(stats)
    }

    async fn row_counts(&self) -> Result<RowCounts, IndexError> {
        let row = sqlx::query(
            "SELECT (SELECT COUNT(*) FROM capture) AS captures, \
             (SELECT COUNT(*) FROM claim) AS claims, \
             (SELECT COUNT(*) FROM evidence_link) AS links, \
             (SELECT COUNT(*) FROM custody_event) AS events, \
             (SELECT COUNT(*) FROM fixity_event) AS fixity, \
             (SELECT COUNT(*) FROM passage_check) AS checks",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(RowCounts {
            captures: row.count("captures")?,
            claim_versions: row.count("claims")?,
            links: row.count("links")?,
            events: row.count("events")?,
            fixity_events: row.count("fixity")?,
            passage_checks: row.count("checks")?,
        })
    }
}
