//! The index: what was captured, where each record lives, what failed, and
//! everything custody knows about it since (the log, runs, claims, tokens).
//!
//! One SQL implementation (`sql.rs`), compiled once per backend: SQLite
//! (`sqlite.rs`, the embedded default) and PostgreSQL (`postgres.rs`, for
//! several daemons on one database). Each backend file is a small dialect
//! seam (how to connect, how a write transaction begins, the log-append
//! lock, the run-claim suffix, the leader lock, which migrations) and
//! includes the same `sql.rs` with its own database type, so every query is
//! written once. The backend is picked from the index URL once, in
//! [`open`]; nothing else asks which one is in use. One conformance suite
//! (`tests/it/index_conformance.rs`) runs against both.
//!
//! Callers take the role they use: [`CaptureIndex`] (captures, records,
//! lookups, stored files), [`LogIndex`] (leaves, checkpoints, fixity,
//! timestamps), [`RunIndex`] (scheduled runs, leases, leadership),
//! [`ProvenanceIndex`] (claims, links, passage checks, custody events) and
//! [`TokenIndex`] (API tokens). [`Index`] is all of them; an
//! `Arc<dyn Index>` coerces to any role.
//!
//! **Invariant:** the index never points at something that is not durable.
//! [`CaptureIndex::put_capture`] is called only after the capture's WARC is
//! stored and verified, and writes the capture, its WARC file, every record
//! and its log leaf in one transaction.

/// A schema migration: version, name, SQL.
type Migration = (i64, &'static str, &'static str);

/// Every migration of one backend's directory, in order; each runs once,
/// in its own transaction. The two directories hold the same steps, each
/// in its dialect.
macro_rules! migrations {
    ($backend:literal) => {
        &[
            (
                1,
                "initial",
                include_str!(concat!("migrations/", $backend, "/0001_initial.sql")),
            ),
            (
                2,
                "runs",
                include_str!(concat!("migrations/", $backend, "/0002_runs.sql")),
            ),
            (
                3,
                "provenance",
                include_str!(concat!("migrations/", $backend, "/0003_provenance.sql")),
            ),
            (
                4,
                "pending objects",
                include_str!(concat!(
                    "migrations/",
                    $backend,
                    "/0004_pending_objects.sql"
                )),
            ),
            (
                5,
                "page change",
                include_str!(concat!("migrations/", $backend, "/0005_page_change.sql")),
            ),
            (
                6,
                "transparency log",
                include_str!(concat!(
                    "migrations/",
                    $backend,
                    "/0006_transparency_log.sql"
                )),
            ),
            (
                7,
                "fixity",
                include_str!(concat!("migrations/", $backend, "/0007_fixity.sql")),
            ),
            (
                8,
                "timestamps",
                include_str!(concat!("migrations/", $backend, "/0008_timestamps.sql")),
            ),
            (
                9,
                "api tokens",
                include_str!(concat!("migrations/", $backend, "/0009_api_tokens.sql")),
            ),
            (
                10,
                "exactly once",
                include_str!(concat!("migrations/", $backend, "/0010_exactly_once.sql")),
            ),
            (
                11,
                "imports",
                include_str!(concat!("migrations/", $backend, "/0011_imports.sql")),
            ),
            (
                12,
                "media",
                include_str!(concat!("migrations/", $backend, "/0012_media.sql")),
            ),
            (
                13,
                "browser",
                include_str!(concat!("migrations/", $backend, "/0013_browser.sql")),
            ),
            (
                14,
                "page text",
                include_str!(concat!("migrations/", $backend, "/0014_page_text.sql")),
            ),
        ]
    };
}
use migrations;

/// Names the one SQL body's index type (`sql.rs`, declared as `mod sql` by
/// the backend's seam, which rustfmt then formats) and gives it the
/// backend's database type as `DB`.
macro_rules! sql_body {
    ($db:ty, $name:ident, $doc:literal) => {
        #[doc = $doc]
        pub type $name = sql::SqlIndex;

        type DB = $db;
    };
}
use sql_body;

/// The table of applied migrations (the same in both dialects).
const MIGRATION_TABLE: &str = "CREATE TABLE IF NOT EXISTS custody_migration \
    (version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)";

// `sql.rs` is compiled once per backend, each with its own `DB`.
#[allow(clippy::duplicate_mod)]
mod postgres;
#[allow(clippy::duplicate_mod)]
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::{
    ApiToken, Capture, CaptureId, CaptureStatus, Claim, CustodyEvent, EvidenceLink, FixityEvent,
    NewRun, PassageCheck, PendingObject, RecordEntry, Run, RunFinish, RunState, Sha256, Stats,
    TimestampRequest, TimestampToken, WarcFile, WarcRef,
};
use crate::tlog::leaf::{Checkpoint, LogLeaf};

pub use postgres::PostgresIndex;
pub use sqlite::SqliteIndex;

/// What went wrong, in kinds a caller can act on (see [`IndexError::kind`]).
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index URL {0:?} is not valid: use sqlite://PATH or postgres://USER@HOST/DATABASE")]
    BadUrl(String),
    #[error("index URL scheme {0:?} is not supported; use sqlite://PATH or postgres://USER@HOST/DATABASE")]
    Unsupported(String),
    /// What was asked for is not there.
    #[error("{0}")]
    NotFound(String),
    /// The write would repeat something the index already holds.
    #[error("{0}")]
    Conflict(String),
    /// A scheduled capture whose attempt no longer holds its run's lease,
    /// or whose instant is already captured: it is not indexed.
    #[error("{0}")]
    Fenced(String),
    /// A row cannot be read back.
    #[error("index holds a value it cannot read ({0}); the database may have been edited by hand")]
    Corrupt(String),
    /// The database cannot be reached or cannot write now (down, busy,
    /// full, read-only); trying again later may work.
    #[error("the index database is unavailable: {0}")]
    Unavailable(sqlx::Error),
    /// Any other database error (a bug, or a schema edited by hand).
    #[error("index database error: {0}")]
    Database(sqlx::Error),
    /// A read-only index whose schema is older than this custody's.
    #[error("the index has schema version {have}, this custody needs {want}: run a command that writes (`custody daemon` or `custody capture`) on it once to migrate it")]
    Outdated { have: i64, want: i64 },
    #[error("cannot create the index directory {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// The kinds of [`IndexError`] (the HTTP layer maps them to 404, 409, 503,
/// and 500 for the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The index URL is wrong (a usage error).
    Config,
    NotFound,
    Conflict,
    Corrupt,
    Unavailable,
    Internal,
}

impl IndexError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            IndexError::BadUrl(_) | IndexError::Unsupported(_) | IndexError::Outdated { .. } => {
                ErrorKind::Config
            }
            IndexError::NotFound(_) => ErrorKind::NotFound,
            IndexError::Conflict(_) | IndexError::Fenced(_) => ErrorKind::Conflict,
            IndexError::Corrupt(_) => ErrorKind::Corrupt,
            IndexError::Unavailable(_) | IndexError::Io { .. } => ErrorKind::Unavailable,
            IndexError::Database(_) => ErrorKind::Internal,
        }
    }
}

impl IndexError {
    /// SQLite's "busy" or "locked": another connection holds the lock now.
    pub fn is_busy(&self) -> bool {
        match self {
            IndexError::Unavailable(sqlx::Error::Database(db)) => db
                .code()
                .and_then(|c| c.parse::<i64>().ok())
                .is_some_and(|n| matches!(n & 0xff, 5 | 6)),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for IndexError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        match &e {
            E::RowNotFound => IndexError::NotFound("no such row in the index".into()),
            E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) => {
                IndexError::Corrupt(e.to_string())
            }
            E::Io(_) | E::Tls(_) | E::PoolTimedOut | E::PoolClosed | E::WorkerCrashed => {
                IndexError::Unavailable(e)
            }
            E::Database(db) if db.is_unique_violation() => {
                IndexError::Conflict(format!("the index already holds this ({})", db.message()))
            }
            E::Database(db) if unavailable_code(db.code().as_deref()) => IndexError::Unavailable(e),
            _ => IndexError::Database(e),
        }
    }
}

/// Database error codes that mean "not now" rather than "never": SQLite's
/// busy, locked, I/O, full, read-only and cannot-open results (primary
/// codes, extended ones included), and PostgreSQL's connection (08),
/// resource (53), operator-intervention (57) and system (58) classes.
fn unavailable_code(code: Option<&str>) -> bool {
    let Some(code) = code else { return false };
    // SQLSTATEs are five characters; SQLite's codes, extended ones
    // included, have at most four digits.
    if code.len() == 5 {
        return ["08", "53", "57", "58"].iter().any(|c| code.starts_with(c));
    }
    code.parse::<i64>()
        .is_ok_and(|n| matches!(n & 0xff, 5 | 6 | 8 | 10 | 13 | 14))
}

/// A response record found by URL, with the file that holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hit {
    pub capture_id: CaptureId,
    pub warc: WarcRef,
    pub record: RecordEntry,
}

/// The attempt that may commit a scheduled capture: the one that still
/// holds its run's lease (the lease's owner and the attempt number it
/// claimed).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub run_id: i64,
    pub attempt: u32,
    pub owner: String,
}

/// Captures, their WARC files and records, and the lookups that find them.
#[async_trait]
pub trait CaptureIndex: Send + Sync {
    /// Records a finished capture. For an `ok` capture, `capture.warc` must
    /// be durable in the store already; `records` are its WARC's records.
    /// Appends the capture's leaf to the log in the same transaction.
    ///
    /// A scheduled capture is committed exactly once per instant: with the
    /// run's row locked, it is refused ([`IndexError::Fenced`]) when its
    /// `fence` no longer holds the run's lease (another daemon took the run
    /// over), or when an `ok` capture of the same schedule, URL and instant
    /// is already indexed.
    async fn put_capture(
        &self,
        capture: &Capture,
        records: &[RecordEntry],
        fence: Option<&Fence>,
    ) -> Result<(), IndexError>;

    /// The successful capture of a schedule's URL at an instant, if one is
    /// indexed (what a run's later attempt finishes with instead of
    /// capturing the instant again).
    async fn capture_of_instant(
        &self,
        schedule: &str,
        seed_url: &str,
        scheduled_for: DateTime<Utc>,
    ) -> Result<Option<CaptureId>, IndexError>;

    /// Puts back a capture whose leaf the log already holds (reindex).
    async fn restore_capture(
        &self,
        capture: &Capture,
        records: &[RecordEntry],
    ) -> Result<(), IndexError>;

    async fn capture(&self, id: &CaptureId) -> Result<Option<Capture>, IndexError>;

    /// Captures, oldest first; only those of a seed URL when given.
    async fn captures(&self, seed_url: Option<&str>) -> Result<Vec<Capture>, IndexError>;

    /// Up to `limit` capture ids that begin with `prefix` (lowercase hex and
    /// hyphens), in order: how a unique prefix names a capture.
    async fn capture_ids_with_prefix(
        &self,
        prefix: &str,
        limit: u64,
    ) -> Result<Vec<CaptureId>, IndexError>;

    /// The latest successful capture of `seed_url`.
    async fn latest_ok_capture(&self, seed_url: &str) -> Result<Option<Capture>, IndexError>;

    /// A capture's records in file order.
    async fn records(&self, id: &CaptureId) -> Result<Vec<RecordEntry>, IndexError>;

    /// The response (or revisit) record a URL and a time mean, as replay,
    /// `get`, CDX and the UI all resolve it: the record of exactly `url`
    /// nearest in time to `at` (the latest when `at` is absent); if the
    /// archive holds none, the nearest record under the URL's SURT key (the
    /// same resource under http and https, with or without `www.`). Ties
    /// go to the earlier record.
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

    /// Captures matching `q`, in start order (newest first when
    /// `q.newest_first`).
    async fn capture_page(&self, q: &CaptureQuery) -> Result<Vec<Capture>, IndexError>;

    /// Response and revisit records matching `q`, in (SURT, time) order.
    async fn find_records(&self, q: &RecordQuery) -> Result<Vec<Hit>, IndexError>;

    /// Every stored WARC file, oldest first, with its quarantine state.
    async fn warc_files(&self) -> Result<Vec<WarcFile>, IndexError>;

    /// A page of stored WARC files, by when each was stored (then digest),
    /// with that instant; only quarantined ones when asked.
    async fn warc_file_page(
        &self,
        q: &WarcFileQuery,
    ) -> Result<Vec<(WarcFile, DateTime<Utc>)>, IndexError>;

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

    /// Every note left, oldest first (start-up recovery adopts them).
    async fn all_pending_objects(&self) -> Result<Vec<PendingObject>, IndexError>;
}

/// The transparency log (leaves are appended by the writes that record
/// their objects, in the same transaction), its checkpoints, fixity checks
/// and trusted timestamps.
#[async_trait]
pub trait LogIndex: Send + Sync {
    /// Puts back a leaf at its own index (reindex); it must be the next one.
    async fn restore_leaf(&self, leaf: &LogLeaf) -> Result<(), IndexError>;

    /// Leaves in the log.
    async fn log_size(&self) -> Result<u64, IndexError>;

    /// Hashes of the first `size` leaves, in order.
    async fn log_leaf_hashes(&self, size: u64) -> Result<Vec<Sha256>, IndexError>;

    /// The leaves about one object (`capture`, `link`, `event` or `fixity`
    /// kind).
    async fn log_leaves_of(&self, kind: &str, object_id: &str) -> Result<Vec<LogLeaf>, IndexError>;

    /// Leaves `from..to`.
    async fn log_leaves(&self, from: u64, to: u64) -> Result<Vec<LogLeaf>, IndexError>;

    /// Records a signed checkpoint (once per tree size).
    async fn put_checkpoint(&self, c: &Checkpoint) -> Result<(), IndexError>;

    /// Every checkpoint, smallest tree first.
    async fn checkpoints(&self) -> Result<Vec<Checkpoint>, IndexError>;

    /// Records a fixity check, sets or clears the object's quarantine, and
    /// appends the check to the log, in one transaction.
    async fn record_fixity(&self, e: &FixityEvent) -> Result<(), IndexError>;

    /// The checks of one object, oldest first.
    async fn fixity_events(&self, key: &str) -> Result<Vec<FixityEvent>, IndexError>;

    /// The last check of every object checked at least once.
    async fn latest_fixity_events(&self) -> Result<Vec<FixityEvent>, IndexError>;

    /// Puts back the row a restored leaf describes (reindex): a claim
    /// version, an evidence link, a custody event or a fixity check (with
    /// the quarantine it sets), without appending a leaf. False for a leaf
    /// whose rows are restored otherwise (captures, from their WARCs).
    async fn restore_rows(&self, leaf: &LogLeaf) -> Result<bool, IndexError>;

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
    ) -> Result<Vec<TimestampRequest>, IndexError>;

    /// Stores a checked token and retires its request.
    async fn timestamp_received(
        &self,
        request_id: i64,
        token: &TimestampToken,
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
    ) -> Result<Vec<TimestampToken>, IndexError>;
}

/// Scheduled runs: planning marks, runs, attempts, leases, leadership.
#[async_trait]
pub trait RunIndex: Send + Sync {
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

    /// Records every run of `schedule` that is due and was never attempted
    /// as skipped, with `reason` (a paused schedule's runs). A run that has
    /// started, or is waiting for its retry, is left to finish: an attempt
    /// may have stored what the next one adopts. Returns how many.
    async fn skip_waiting_runs(
        &self,
        schedule: &str,
        reason: &str,
        now: DateTime<Utc>,
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

    /// A page of runs, by instant (then id), filtered.
    async fn run_page(&self, q: &RunListQuery) -> Result<Vec<Run>, IndexError>;

    /// Takes or renews the scheduler-leader lease for `owner` until
    /// `until`; true when `owner` leads. Several daemons may share one
    /// index; one plans (and signs checkpoints, scrubs, timestamps) at a
    /// time. The lease expires unless renewed, so a leader that dies or
    /// freezes (a VM pause, a storage stall) is replaced once `now` passes
    /// its expiry; a frozen leader that wakes finds it lost the lease.
    async fn try_lead(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<bool, IndexError>;

    /// Gives up the leader lease if `owner` holds it (a clean shutdown, so
    /// another daemon leads at once).
    async fn resign(&self, owner: &str) -> Result<(), IndexError>;
}

/// Claims, evidence links, passage checks and custody events: all
/// append-only.
#[async_trait]
pub trait ProvenanceIndex: Send + Sync {
    /// Adds a claim version, with its leaf; (id, version) must be new.
    async fn put_claim(&self, claim: &Claim) -> Result<(), IndexError>;

    /// Every version of a claim, oldest first (empty when unknown).
    async fn claim_versions(&self, id: &str) -> Result<Vec<Claim>, IndexError>;

    /// The latest version of every claim, oldest claim first; with `search`,
    /// only claims whose text contains every word of it (any case).
    async fn claims(&self, search: Option<&str>) -> Result<Vec<Claim>, IndexError>;

    /// A page of [`ProvenanceIndex::claims`]' list, by claim id (ids are
    /// made in time order): after the claim `after` when given.
    async fn claim_page(
        &self,
        search: Option<&str>,
        after: Option<&str>,
        newest_first: bool,
        limit: u32,
    ) -> Result<Vec<Claim>, IndexError>;

    /// The latest version of the claim with this origin and text.
    async fn claim_by_origin(&self, origin: &str, text: &str) -> Result<Option<Claim>, IndexError>;

    /// Records a link and appends its leaf, in one transaction.
    async fn put_link(&self, link: &EvidenceLink) -> Result<(), IndexError>;

    /// Links, oldest first, filtered by claim, capture or target URI.
    async fn links(&self, filter: &LinkFilter) -> Result<Vec<EvidenceLink>, IndexError>;

    /// Records a passage check (once per link and capture).
    async fn put_passage_check(&self, check: &PassageCheck) -> Result<(), IndexError>;

    /// A link's passage checks, oldest capture first.
    async fn passage_checks(&self, link_id: &str) -> Result<Vec<PassageCheck>, IndexError>;

    /// Appends to an object's custody record (with its leaf).
    async fn add_event(&self, event: &CustodyEvent) -> Result<(), IndexError>;

    /// Appends several custody events (each with its log leaf) in one
    /// transaction: how the HTTP surface records accesses in batches.
    async fn add_events(&self, events: &[CustodyEvent]) -> Result<(), IndexError>;

    /// An object's custody record, in order.
    async fn events(
        &self,
        object_kind: &str,
        object_id: &str,
    ) -> Result<Vec<CustodyEvent>, IndexError>;
}

/// API tokens (only the SHA-256 of a secret is kept).
#[async_trait]
pub trait TokenIndex: Send + Sync {
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

/// The readable text of captured documents, and full-text search over it
/// (see `search.rs` for what is indexed and how words are folded).
#[async_trait]
pub trait SearchIndex: Send + Sync {
    /// Records the documents of a capture (already folded), once: false
    /// when the capture's text was indexed already, which leaves it as it
    /// was.
    async fn put_page_texts(
        &self,
        capture: &CaptureId,
        texts: &[PageText],
        at: DateTime<Utc>,
    ) -> Result<bool, IndexError>;

    /// Successful captures whose text is not indexed yet, oldest first.
    async fn captures_without_text(&self, limit: u32) -> Result<Vec<CaptureId>, IndexError>;

    /// Documents holding every term (each a word or a phrase, folded), in
    /// capture order, with their whole text (the caller cuts the passage).
    async fn search_texts(&self, q: &TextQuery) -> Result<Vec<TextHit>, IndexError>;
}

/// One document's text, as [`SearchIndex::put_page_texts`] takes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageText {
    /// The document's URL (a page or frame), or the `urn:text:` record of
    /// the page's rendered text.
    pub url: String,
    /// The host of the page it is the text of (what the site filter
    /// matches).
    pub host: String,
    pub title: Option<String>,
    pub body: String,
    /// The title and body folded for matching.
    pub folded: String,
}

/// What to search for (see [`SearchIndex::search_texts`]).
#[derive(Clone, Debug, Default)]
pub struct TextQuery {
    /// Folded words and phrases; a document matches when it holds them all.
    pub terms: Vec<String>,
    /// Documents of this host (or its subdomains).
    pub host: Option<String>,
    /// Captures started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Captures started at or before.
    pub to: Option<DateTime<Utc>>,
    /// Captures of this schedule.
    pub schedule: Option<String>,
    /// Captures a version of this claim is linked to.
    pub claim: Option<String>,
    pub newest_first: bool,
    /// Only documents after this one in the list's order.
    pub after: Option<TextCursor>,
    pub limit: u32,
}

/// A place in a list of search results: the capture's start and the
/// document's row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextCursor {
    pub started_at: DateTime<Utc>,
    pub row: i64,
}

impl TextCursor {
    /// The cursor for the page after `page` when it is full.
    pub fn next_page(page: &[TextHit], limit: u32) -> Option<Self> {
        page.last()
            .filter(|_| page.len() as u32 == limit)
            .map(|h| TextCursor {
                started_at: h.started_at,
                row: h.row,
            })
    }

    pub fn encode(&self) -> String {
        encode_cursor(&self.started_at, self.row)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (started_at, row) = decode_cursor(s)?;
        Some(TextCursor { started_at, row })
    }
}

/// A document that matched, with its capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextHit {
    pub row: i64,
    pub capture_id: CaptureId,
    pub started_at: DateTime<Utc>,
    pub seed_url: String,
    pub schedule: Option<String>,
    pub url: String,
    pub title: Option<String>,
    pub body: String,
}

/// Every role, implemented by one type per backend.
#[async_trait]
pub trait Index:
    CaptureIndex + LogIndex + RunIndex + ProvenanceIndex + TokenIndex + SearchIndex
{
    /// Counts for metrics (and the health check: it answers while the
    /// database does).
    async fn stats(&self, now: DateTime<Utc>) -> Result<Stats, IndexError>;

    /// How many rows of each logged kind the index holds: what `verify
    /// --all` compares with the log, so that a row added by hand, with no
    /// leaf, cannot hide among the others.
    async fn row_counts(&self) -> Result<RowCounts, IndexError>;
}

/// Rows of each kind the log has leaves for (see [`Index::row_counts`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowCounts {
    pub captures: u64,
    pub claim_versions: u64,
    pub links: u64,
    pub events: u64,
    pub fixity_events: u64,
    pub passage_checks: u64,
}

/// Which captures to list (see [`CaptureIndex::capture_page`]).
#[derive(Clone, Debug, Default)]
pub struct CaptureQuery {
    /// Seed URLs that start with this.
    pub url_prefix: Option<String>,
    /// Captures of exactly this seed URL.
    pub seed_url: Option<String>,
    /// Started at or after.
    pub from: Option<DateTime<Utc>>,
    /// Started at or before.
    pub to: Option<DateTime<Utc>>,
    /// Captures that succeeded, or failed.
    pub status: Option<CaptureStatus>,
    /// Captures whose page (the first answer of the seed's chain that is
    /// not a redirect) had an HTTP status in this range, inclusive.
    pub page_status: Option<(u16, u16)>,
    /// Captures of this schedule.
    pub schedule: Option<String>,
    /// Captures whose seed URL is on this host (letters, digits, dots and
    /// hyphens only).
    pub host: Option<String>,
    pub newest_first: bool,
    /// Only captures after this one in the list's order (a stable cursor:
    /// captures made meanwhile do not shift the pages, as an offset would).
    pub after: Option<CaptureCursor>,
    pub limit: u32,
    pub offset: u64,
}

/// A place in a list of captures: the last capture of the page before,
/// by start and id (see [`CaptureQuery::after`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureCursor {
    pub started_at: DateTime<Utc>,
    pub id: CaptureId,
}

impl CaptureCursor {
    /// The cursor for the page after the one ending with `c`.
    pub fn after(c: &Capture) -> Self {
        CaptureCursor {
            started_at: c.started_at,
            id: c.id.clone(),
        }
    }

    /// The cursor for the page after `page` when it is full (`limit`
    /// items); `None` on the last page.
    pub fn next_page(page: &[Capture], limit: u32) -> Option<Self> {
        page.last()
            .filter(|_| page.len() as u32 == limit)
            .map(Self::after)
    }

    /// As text: the start (RFC 3339, microseconds) and the id.
    pub fn encode(&self) -> String {
        encode_cursor(&self.started_at, &self.id)
    }

    /// Reads [`CaptureCursor::encode`]'s text.
    pub fn decode(s: &str) -> Option<Self> {
        let (started_at, id) = decode_cursor(s)?;
        Some(CaptureCursor { started_at, id })
    }
}

/// Which stored files to list (see [`CaptureIndex::warc_file_page`]).
#[derive(Clone, Debug, Default)]
pub struct WarcFileQuery {
    pub quarantined_only: bool,
    pub newest_first: bool,
    /// After this (stored at, sha256) in the list's order.
    pub after: Option<(DateTime<Utc>, Sha256)>,
    pub limit: u32,
}

/// Which runs to list (see [`RunIndex::run_page`]).
#[derive(Clone, Debug, Default)]
pub struct RunListQuery {
    pub schedule: Option<String>,
    pub state: Option<RunState>,
    /// Runs of URLs on this host.
    pub host: Option<String>,
    /// Scheduled for at or after.
    pub from: Option<DateTime<Utc>>,
    /// Scheduled for at or before.
    pub to: Option<DateTime<Utc>>,
    pub newest_first: bool,
    /// Only runs after this one in the list's order.
    pub after: Option<RunCursor>,
    pub limit: u32,
}

/// A place in a list of runs: the last run of the page before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunCursor {
    pub scheduled_for: DateTime<Utc>,
    pub id: i64,
}

impl RunCursor {
    /// The cursor for the page after `page` when it is full.
    pub fn next_page(page: &[Run], limit: u32) -> Option<Self> {
        page.last()
            .filter(|_| page.len() as u32 == limit)
            .map(|r| RunCursor {
                scheduled_for: r.scheduled_for,
                id: r.id,
            })
    }

    pub fn encode(&self) -> String {
        encode_cursor(&self.scheduled_for, self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (scheduled_for, id) = decode_cursor(s)?;
        Some(RunCursor { scheduled_for, id })
    }
}

/// Which records to list (see [`CaptureIndex::find_records`]): the pywb CDX
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

/// Opens the index a URL names for reading only: nothing is created or
/// migrated, and a write-protected copy of a SQLite index works.
pub async fn open_read_only(url: &str) -> Result<Arc<dyn Index>, IndexError> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(IndexError::BadUrl(url.to_string()));
    };
    match scheme {
        "sqlite" if !rest.is_empty() => Ok(Arc::new(
            SqliteIndex::open_read_only(std::path::Path::new(rest)).await?,
        )),
        "sqlite" => Err(IndexError::BadUrl(url.to_string())),
        "postgres" | "postgresql" => Ok(Arc::new(PostgresIndex::open_read_only(url).await?)),
        other => Err(IndexError::Unsupported(other.to_string())),
    }
}

/// Of two candidates either side of `at`, the nearer; the earlier on a tie.
/// The one rule every lookup by time follows.
pub fn nearer(before: Option<Hit>, after: Option<Hit>, at: DateTime<Utc>) -> Option<Hit> {
    match (before, after) {
        (Some(b), Some(a)) => {
            if (a.record.date - at) < (at - b.record.date) {
                Some(a)
            } else {
                Some(b)
            }
        }
        (b, a) => b.or(a),
    }
}

/// Instants as stored: fixed-width RFC 3339 UTC with microseconds.
/// A list's cursor as text: the instant (RFC 3339, microseconds), `_`, and
/// the key that orders rows of one instant.
pub fn encode_cursor(at: &DateTime<Utc>, key: impl std::fmt::Display) -> String {
    format!("{}_{key}", db_time(at))
}

/// Reads [`encode_cursor`]'s text.
pub fn decode_cursor<K: std::str::FromStr>(s: &str) -> Option<(DateTime<Utc>, K)> {
    let (t, key) = s.split_once('_')?;
    let at = DateTime::parse_from_rfc3339(t).ok()?.with_timezone(&Utc);
    Some((at, key.parse().ok()?))
}

pub fn db_time(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

pub(crate) fn parse_db_time(s: &str) -> Result<DateTime<Utc>, IndexError> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| IndexError::Corrupt(format!("instant {s:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_full_and_unreachable_databases_are_unavailable_not_internal() {
        // SQLite: busy, locked, read-only, I/O error (an extended code),
        // full, cannot open.
        for code in ["5", "6", "8", "10", "266", "13", "14"] {
            assert!(unavailable_code(Some(code)), "{code}");
        }
        // A constraint failure or a syntax error is not "try later".
        for code in ["19", "1", "2067"] {
            assert!(!unavailable_code(Some(code)), "{code}");
        }
        // PostgreSQL: connection failure, disk full, admin shutdown.
        for code in ["08006", "53100", "57P01"] {
            assert!(unavailable_code(Some(code)), "{code}");
        }
        assert!(!unavailable_code(Some("23505")));
        assert!(!unavailable_code(Some("42601")));
        assert!(!unavailable_code(None));
        assert_eq!(
            IndexError::from(sqlx::Error::PoolTimedOut).kind(),
            ErrorKind::Unavailable
        );
        assert_eq!(
            IndexError::from(sqlx::Error::RowNotFound).kind(),
            ErrorKind::NotFound
        );
    }
}
