//! The index: what was captured, where each record lives, what failed.
//!
//! One trait, [`Index`], with one implementation per backend, each with its
//! own migrations; the backend is picked from the index URL once, in
//! [`open`], and nothing else asks which one is in use. The same conformance
//! suite (`tests/index_conformance.rs`) runs against every backend.
//!
//! **Invariant:** the index never points at something that is not durable.
//! [`Index::put_capture`] is called only after the capture's WARC is stored
//! and verified, and writes the capture, its WARC file and every record in
//! one transaction.

mod postgres;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::{
    ApiToken, Capture, CaptureId, Claim, CustodyEvent, EvidenceLink, NewRun, PassageCheck,
    PendingObject, RecordEntry, Run, RunFinish, Sha256, Stats, WarcRef,
};

pub use postgres::PostgresIndex;
pub use sqlite::SqliteIndex;

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index URL {0:?} is not valid: use sqlite://PATH or postgres://USER@HOST/DATABASE")]
    BadUrl(String),
    #[error("index URL scheme {0:?} is not supported; use sqlite://PATH or postgres://USER@HOST/DATABASE")]
    Unsupported(String),
    #[error("capture {0} is already in the index")]
    Duplicate(String),
    #[error("index database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("index holds a value it cannot read ({0}); the database may have been edited by hand")]
    Corrupt(String),
    #[error("cannot create the index directory {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// A response record found by URL, with the file that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub capture_id: CaptureId,
    pub warc: WarcRef,
    pub record: RecordEntry,
}

#[async_trait]
pub trait Index: Send + Sync {
    /// Records a finished capture. For an `ok` capture, `capture.warc` must be
    /// durable in the store already; `records` are its WARC's records.
    /// Appends the capture's leaf to the log in the same transaction.
    async fn put_capture(
        &self,
        capture: &Capture,
        records: &[RecordEntry],
    ) -> Result<(), IndexError> {
        self.put_capture_with(capture, records, true).await
    }

    /// `put_capture`, appending a log leaf only when `log` is set (a
    /// reindex restores captures whose leaves the log already holds).
    async fn put_capture_with(
        &self,
        capture: &Capture,
        records: &[RecordEntry],
        log: bool,
    ) -> Result<(), IndexError>;

    /// Puts back a leaf at its own index (reindex); it must be the next one.
    async fn restore_leaf(&self, leaf: &crate::tlog::LogLeaf) -> Result<(), IndexError>;

    async fn capture(&self, id: &CaptureId) -> Result<Option<Capture>, IndexError>;

    /// Captures, oldest first; only those of a seed URL when given.
    async fn captures(&self, seed_url: Option<&str>) -> Result<Vec<Capture>, IndexError>;

    /// The latest successful capture of `seed_url`.
    async fn latest_ok_capture(&self, seed_url: &str) -> Result<Option<Capture>, IndexError>;

    /// A capture's records in file order.
    async fn records(&self, id: &CaptureId) -> Result<Vec<RecordEntry>, IndexError>;

    /// The response (or revisit) record for `url` nearest in time to `at`
    /// (the latest when `at` is absent). Ties go to the earlier record.
    async fn nearest_response(
        &self,
        url: &str,
        at: Option<DateTime<Utc>>,
    ) -> Result<Option<Hit>, IndexError>;

    /// The earliest full response for `url` whose payload has this digest:
    /// what a new capture's `revisit` record refers to.
    async fn original_response(
        &self,
        url: &str,
        payload_digest: Sha256,
    ) -> Result<Option<Hit>, IndexError>;

    /// A record by its `WARC-Record-ID`, with its capture and WARC file.
    async fn record_hit(&self, record_id: &str) -> Result<Option<Hit>, IndexError>;

    // The transparency log (leaves are appended by `put_capture`,
    // `put_link` and `add_event` in their own transactions).

    /// Leaves in the log.
    async fn log_size(&self) -> Result<u64, IndexError>;

    /// Hashes of the first `size` leaves, in order.
    async fn log_leaf_hashes(&self, size: u64) -> Result<Vec<Sha256>, IndexError>;

    /// The leaves about one object (`capture`, `link` or `event` kind).
    async fn log_leaves_of(
        &self,
        kind: &str,
        object_id: &str,
    ) -> Result<Vec<crate::tlog::LogLeaf>, IndexError>;

    /// Leaves `from..to`.
    async fn log_leaves(&self, from: u64, to: u64)
        -> Result<Vec<crate::tlog::LogLeaf>, IndexError>;

    /// Records a signed checkpoint (once per tree size).
    async fn put_checkpoint(&self, c: &crate::tlog::Checkpoint) -> Result<(), IndexError>;

    /// Every checkpoint, smallest tree first.
    async fn checkpoints(&self) -> Result<Vec<crate::tlog::Checkpoint>, IndexError>;

    // Fixity.

    /// Every stored WARC file, oldest first, with its quarantine state.
    async fn warc_files(&self) -> Result<Vec<crate::model::WarcFile>, IndexError>;

    /// Records a fixity check, sets or clears the object's quarantine, and
    /// appends the check to the log, in one transaction.
    async fn record_fixity(&self, e: &crate::model::FixityEvent) -> Result<(), IndexError>;

    /// The checks of one object, oldest first.
    async fn fixity_events(&self, key: &str) -> Result<Vec<crate::model::FixityEvent>, IndexError>;

    // Trusted timestamps (RFC 3161).

    /// Queues a timestamp of `imprint` from one TSA (once per subject and
    /// TSA).
    async fn request_timestamp(
        &self,
        subject_kind: &str,
        subject_id: &str,
        imprint: Sha256,
        tsa_url: &str,
    ) -> Result<(), IndexError>;

    /// Requests whose next attempt is due.
    async fn due_timestamps(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<crate::model::TimestampRequest>, IndexError>;

    /// Stores a checked token and retires its request.
    async fn timestamp_received(
        &self,
        request_id: i64,
        token: &crate::model::TimestampToken,
    ) -> Result<(), IndexError>;

    /// Records a failed attempt and when to try again.
    async fn timestamp_failed(
        &self,
        request_id: i64,
        error: &str,
        next_at: DateTime<Utc>,
    ) -> Result<(), IndexError>;

    /// The tokens of one subject.
    async fn timestamp_tokens(
        &self,
        subject_kind: &str,
        subject_id: &str,
    ) -> Result<Vec<crate::model::TimestampToken>, IndexError>;

    // Scheduled runs.

    /// How far runs of `schedule` for `url` have been planned.
    async fn planned_until(
        &self,
        schedule: &str,
        url: &str,
    ) -> Result<Option<DateTime<Utc>>, IndexError>;

    /// Records `runs` (ignoring any already recorded for the same instant)
    /// and moves the planning mark to `until`, in one transaction. Returns
    /// how many runs were new.
    async fn plan_runs(
        &self,
        schedule: &str,
        url: &str,
        runs: &[NewRun],
        until: DateTime<Utc>,
    ) -> Result<u64, IndexError>;

    /// Whether a run of `schedule` for `url` is waiting or running.
    async fn has_active_run(&self, schedule: &str, url: &str) -> Result<bool, IndexError>;

    /// Claims the oldest run that may start now (due and past `not_before`,
    /// or running with an expired lease), skipping hosts in `busy_hosts` and
    /// URLs whose previous run still holds a lease. Records the attempt.
    async fn claim_run(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        busy_hosts: &[String],
    ) -> Result<Option<Run>, IndexError>;

    /// Extends a lease; false when `owner` no longer holds it.
    async fn renew_lease(
        &self,
        run_id: i64,
        owner: &str,
        until: DateTime<Utc>,
    ) -> Result<bool, IndexError>;

    /// Ends the current attempt of a run that `owner` holds.
    async fn finish_run(
        &self,
        run_id: i64,
        owner: &str,
        finish: &RunFinish,
        now: DateTime<Utc>,
    ) -> Result<(), IndexError>;

    /// Makes interrupted runs due again (at start-up). Returns how many.
    async fn requeue_interrupted(&self, now: DateTime<Utc>) -> Result<u64, IndexError>;

    /// Runs, oldest instant first; only those of a schedule when given.
    async fn runs(&self, schedule: Option<&str>) -> Result<Vec<Run>, IndexError>;

    /// Counts for metrics.
    async fn stats(&self, now: DateTime<Utc>) -> Result<Stats, IndexError>;

    /// Whether this process leads the planning of runs. Several daemons may
    /// share one index; one plans at a time. Backends that serve a single
    /// node always answer true; PostgreSQL holds a session advisory lock on a
    /// dedicated connection, released when the leader dies.
    async fn try_lead(&self) -> Result<bool, IndexError>;

    /// Notes an object about to be uploaded for a capture not yet indexed.
    /// `put_capture` of that capture removes the note in its transaction.
    async fn add_pending_object(&self, pending: &PendingObject) -> Result<(), IndexError>;

    /// Notes left for a scheduled instant (by attempts that died).
    async fn pending_objects(
        &self,
        schedule: &str,
        seed_url: &str,
        scheduled_for: DateTime<Utc>,
    ) -> Result<Vec<PendingObject>, IndexError>;

    async fn remove_pending_object(
        &self,
        key: &str,
        capture_id: &CaptureId,
    ) -> Result<(), IndexError>;

    // Provenance: claims, evidence links, passage checks, custody events.

    /// Adds a claim version; (id, version) must be new.
    async fn put_claim(&self, claim: &Claim) -> Result<(), IndexError>;

    /// Every version of a claim, oldest first (empty when unknown).
    async fn claim_versions(&self, id: &str) -> Result<Vec<Claim>, IndexError>;

    /// The latest version of every claim, oldest claim first; with `search`,
    /// only claims whose text contains every word of it (any case).
    async fn claims(&self, search: Option<&str>) -> Result<Vec<Claim>, IndexError>;

    /// The latest version of the claim with this origin and text.
    async fn claim_by_origin(&self, origin: &str, text: &str) -> Result<Option<Claim>, IndexError>;

    async fn put_link(&self, link: &EvidenceLink) -> Result<(), IndexError>;

    /// Links, oldest first, filtered by claim, capture or target URI.
    async fn links(&self, filter: &LinkFilter) -> Result<Vec<EvidenceLink>, IndexError>;

    /// Records a passage check (once per link and capture).
    async fn put_passage_check(&self, check: &PassageCheck) -> Result<(), IndexError>;

    /// A link's passage checks, oldest capture first.
    async fn passage_checks(&self, link_id: &str) -> Result<Vec<PassageCheck>, IndexError>;

    /// Appends to an object's custody record.
    async fn add_event(&self, event: &CustodyEvent) -> Result<(), IndexError>;

    /// An object's custody record, in order.
    async fn events(
        &self,
        object_kind: &str,
        object_id: &str,
    ) -> Result<Vec<CustodyEvent>, IndexError>;

    /// Appends several custody events (each with its log leaf) in one
    /// transaction: how the HTTP surface records accesses in batches.
    async fn add_events(&self, events: &[CustodyEvent]) -> Result<(), IndexError>;

    // Reading for investigators: pages of captures and records.

    /// Captures matching `q`, in start order (newest first when
    /// `q.newest_first`).
    async fn capture_page(&self, q: &CaptureQuery) -> Result<Vec<Capture>, IndexError>;

    /// Response and revisit records matching `q`, in (SURT, time) order.
    async fn find_records(&self, q: &RecordQuery) -> Result<Vec<Hit>, IndexError>;

    // API tokens.

    /// Stores a new token (its id must be new).
    async fn put_token(&self, token: &ApiToken) -> Result<(), IndexError>;

    /// The token whose secret hashes to `secret_sha256`, revoked or not.
    async fn token_by_secret(&self, secret_sha256: &Sha256)
        -> Result<Option<ApiToken>, IndexError>;

    /// Every token, oldest first.
    async fn tokens(&self) -> Result<Vec<ApiToken>, IndexError>;

    /// Revokes a token; false when there is no such active token.
    async fn revoke_token(&self, id: &str, at: DateTime<Utc>) -> Result<bool, IndexError>;
}

/// Which captures to list (see [`Index::capture_page`]).
#[derive(Clone, Debug, Default)]
pub struct CaptureQuery {
    /// Seed URLs that start with this.
    pub url_prefix: Option<String>,
    /// Started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Started at or before.
    pub to: Option<DateTime<Utc>>,
    pub newest_first: bool,
    pub limit: u32,
    pub offset: u64,
}

/// Which records to list (see [`Index::find_records`]): the pywb CDX
/// server's query, resolved to SURT keys.
#[derive(Clone, Debug, Default)]
pub struct RecordQuery {
    /// Records whose SURT key equals this.
    pub surt: Option<String>,
    /// Records whose SURT key starts with this.
    pub surt_prefix: Option<String>,
    /// 14-digit timestamps, inclusive.
    pub from: Option<String>,
    pub to: Option<String>,
    pub reverse: bool,
    pub limit: u32,
    pub offset: u64,
}

/// The two multi-row inserts of a batch of custody events, whose leaves
/// take log indices from `first_leaf` on; the same for every backend.
pub(crate) fn event_batch_inserts<DB>(
    events: &[CustodyEvent],
    first_leaf: i64,
) -> (sqlx::QueryBuilder<DB>, sqlx::QueryBuilder<DB>)
where
    DB: sqlx::Database,
    <DB as sqlx::Database>::Arguments: Default,
    String: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    Option<String>: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    i64: for<'t> sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let now = db_time(&Utc::now());
    let mut rows = sqlx::QueryBuilder::new(
        "INSERT INTO custody_event (object_kind, object_id, event, actor, at, outcome, detail) ",
    );
    rows.push_values(events, |mut row, e| {
        row.push_bind(e.object_kind.clone())
            .push_bind(e.object_id.clone())
            .push_bind(e.event.clone())
            .push_bind(e.actor.clone())
            .push_bind(db_time(&e.at))
            .push_bind(e.outcome.clone())
            .push_bind(e.detail.to_string());
    });
    let mut leaves = sqlx::QueryBuilder::new(
        "INSERT INTO log_leaf (idx, kind, object_id, data, leaf_hash, appended_at) ",
    );
    leaves.push_values(events.iter().enumerate(), |mut row, (i, e)| {
        let leaf = crate::tlog::event_leaf(e);
        row.push_bind(first_leaf + i as i64)
            .push_bind(leaf.kind.to_string())
            .push_bind(leaf.object_id.clone())
            .push_bind(leaf.data.clone())
            .push_bind(leaf.hash().hex())
            .push_bind(now.clone());
    });
    (rows, leaves)
}

/// SQL shared by both backends (written with `?` placeholders; the
/// PostgreSQL backend numbers them).
pub(crate) mod shared_sql {
    use super::{db_time, CaptureQuery, RecordQuery};

    pub const TOKEN_COLUMNS: &str =
        "SELECT id, secret_sha256, role, label, created_at, revoked_at FROM api_token";
    pub const TOKEN_INSERT: &str = "INSERT INTO api_token \
        (id, secret_sha256, role, label, created_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?)";
    pub const TOKEN_REVOKE: &str =
        "UPDATE api_token SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL";

    /// The WHERE/ORDER/LIMIT tail of a capture page query and its text
    /// binds, in order.
    pub fn capture_page(q: &CaptureQuery) -> (String, Vec<String>) {
        let mut conds = Vec::new();
        let mut binds = Vec::new();
        if let Some(p) = &q.url_prefix {
            conds.push("substr(c.seed_url, 1, length(?)) = ?");
            binds.push(p.clone());
            binds.push(p.clone());
        }
        if let Some(t) = &q.from {
            conds.push("c.started_at >= ?");
            binds.push(db_time(t));
        }
        if let Some(t) = &q.to {
            conds.push("c.started_at <= ?");
            binds.push(db_time(t));
        }
        let order = if q.newest_first { "DESC" } else { "ASC" };
        (
            format!(
                "{} ORDER BY c.started_at {order}, c.id {order} LIMIT {} OFFSET {}",
                where_clause(&conds),
                q.limit,
                q.offset
            ),
            binds,
        )
    }

    /// The WHERE/ORDER/LIMIT tail of a record query and its text binds.
    pub fn find_records(q: &RecordQuery) -> (String, Vec<String>) {
        let mut conds = vec!["r.warc_type IN ('response', 'revisit')"];
        let mut binds = Vec::new();
        if let Some(s) = &q.surt {
            conds.push("r.surt = ?");
            binds.push(s.clone());
        }
        if let Some(p) = &q.surt_prefix {
            conds.push("substr(r.surt, 1, length(?)) = ?");
            binds.push(p.clone());
            binds.push(p.clone());
        }
        if let Some(t) = &q.from {
            conds.push("r.timestamp >= ?");
            binds.push(t.clone());
        }
        if let Some(t) = &q.to {
            conds.push("r.timestamp <= ?");
            binds.push(t.clone());
        }
        let order = if q.reverse { "DESC" } else { "ASC" };
        (
            format!(
                "{} ORDER BY r.surt {order}, r.timestamp {order}, r.record_id {order} \
                 LIMIT {} OFFSET {}",
                where_clause(&conds),
                q.limit,
                q.offset
            ),
            binds,
        )
    }

    fn where_clause(conds: &[&str]) -> String {
        if conds.is_empty() {
            String::new()
        } else {
            format!("WHERE {}", conds.join(" AND "))
        }
    }
}

/// Which links to list.
#[derive(Clone, Debug, Default)]
pub struct LinkFilter {
    pub claim_id: Option<String>,
    pub capture_id: Option<CaptureId>,
    pub target_uri: Option<String>,
}

/// Opens (creating and migrating if needed) the index a URL names.
pub async fn open(url: &str) -> Result<Arc<dyn Index>, IndexError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(IndexError::BadUrl(url.to_string()));
    };
    match scheme {
        "sqlite" => {
            if rest.is_empty() {
                return Err(IndexError::BadUrl(url.to_string()));
            }
            Ok(Arc::new(
                SqliteIndex::open(std::path::Path::new(rest)).await?,
            ))
        }
        "postgres" | "postgresql" => Ok(Arc::new(PostgresIndex::open(url).await?)),
        other => Err(IndexError::Unsupported(other.to_string())),
    }
}

/// Instants as stored: fixed-width RFC 3339 UTC with microseconds.
pub(crate) fn db_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(crate) fn parse_db_time(s: &str) -> Result<DateTime<Utc>, IndexError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| IndexError::Corrupt(format!("instant {s:?}")))
}
