//! The SQLite backend: the embedded default (`sqlite://PATH`).
//!
//! This file is the SQLite side of the dialect seam; the queries are in
//! `sql.rs`, compiled here with `DB = Sqlite`. WAL journal,
//! `synchronous = FULL` (a committed capture survives power loss), foreign
//! keys on, and writes in `BEGIN IMMEDIATE` transactions so concurrent
//! writers queue on the busy timeout instead of failing. One node uses a
//! SQLite file, so it always leads and needs no locks beyond the write
//! transaction.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::IndexError;

#[path = "sql.rs"]
mod sql;
super::sql_body!(sqlx::Sqlite, SqliteIndex, "The index on SQLite.");

const MIGRATIONS: &[super::Migration] = super::migrations!("sqlite");

/// Nothing to add: `BEGIN IMMEDIATE` already serialises writers.
const CLAIM_SUFFIX: &str = "";

/// `BEGIN IMMEDIATE` already holds the database for the transaction.
const ROW_LOCK: &str = "";

impl SqliteIndex {
    /// Opens (creating the file and its directory if needed) and migrates.
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
        // Two processes opening a new file at once race to switch it to WAL,
        // and SQLite answers the loser "database is locked" at once, without
        // waiting: try again for a while rather than fail a daemon's start.
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let opened = async {
                let pool = SqlitePoolOptions::new()
                    .max_connections(4)
                    .connect_with(options.clone())
                    .await?;
                Self::with_pool(pool).await
            }
            .await;
            match opened {
                Err(e) if e.is_busy() && started.elapsed() < Duration::from_secs(30) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                other => return other,
            }
        }
    }
}

impl SqliteIndex {
    /// Opens an existing index for reading only. A write-protected copy
    /// (read-only directory, no `-wal` or `-shm` files to open) is opened
    /// as immutable: SQLite then takes no locks and reads the file as it
    /// is.
    pub async fn open_read_only(path: &Path) -> Result<SqliteIndex, IndexError> {
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .read_only(true)
            .create_if_missing(false)
            .busy_timeout(Duration::from_secs(30));
        let pool = |options: SqliteConnectOptions| {
            SqlitePoolOptions::new()
                .max_connections(4)
                .connect_with(options)
        };
        let opened = match pool(options.clone()).await {
            Ok(p) => Self::read_only(p).await,
            Err(e) => Err(e.into()),
        };
        match opened {
            Err(IndexError::Unavailable(_)) | Err(IndexError::Database(_)) => {
                Self::read_only(pool(options.immutable(true)).await?).await
            }
            other => other,
        }
    }
}

/// A write transaction: `BEGIN IMMEDIATE` takes the write lock at once, so
/// a transaction that reads before it writes cannot be overtaken.
async fn begin(pool: &sqlx::Pool<DB>) -> Result<sqlx::Transaction<'static, DB>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// The log-append lock: the write transaction already holds the database.
async fn lock_log(_tx: &mut sqlx::Transaction<'_, DB>) -> Result<(), sqlx::Error> {
    Ok(())
}

/// The migration lock: each migration's write transaction already holds
/// the database.
async fn lock_migrations(_conn: &mut sqlx::pool::PoolConnection<DB>) -> Result<(), sqlx::Error> {
    Ok(())
}

async fn unlock_migrations(_conn: &mut sqlx::pool::PoolConnection<DB>) -> Result<(), sqlx::Error> {
    Ok(())
}

/// A migration's transaction, holding the write lock from its start.
async fn begin_migration(
    conn: &mut sqlx::pool::PoolConnection<DB>,
) -> Result<sqlx::Transaction<'_, DB>, sqlx::Error> {
    sqlx::Connection::begin_with(&mut **conn, "BEGIN IMMEDIATE").await
}

/// A document's text: its row, then its folded words in the FTS5 index
/// under the same rowid.
async fn insert_page_text(
    tx: &mut sqlx::Transaction<'_, DB>,
    capture: &str,
    t: &crate::index::PageText,
) -> Result<(), sqlx::Error> {
    use sqlx::Row as _;
    let row = sqlx::query(
        "INSERT INTO page_text (capture_id, url, host, title, body) VALUES ($1, $2, $3, $4, $5) \
         RETURNING id",
    )
    .bind(capture)
    .bind(&t.url)
    .bind(&t.host)
    .bind(&t.title)
    .bind(&t.body)
    .fetch_one(&mut **tx)
    .await?;
    let id: i64 = row.try_get("id")?;
    sqlx::query("INSERT INTO page_fts (rowid, folded) VALUES ($1, $2)")
        .bind(id)
        .bind(&t.folded)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Documents holding every term: an FTS5 query of quoted phrases (a
/// quoted string is always a phrase of the tokenizer's words, so nothing a
/// user types is read as FTS5 syntax).
/// (`terms` is never empty.)
fn push_text_match(q: &mut sqlx::QueryBuilder<DB>, terms: &[String]) {
    let expression = terms
        .iter()
        .map(|t| format!("\"{}\"", t.replace('"', "\"\"")))
        .collect::<Vec<_>>()
        .join(" AND ");
    q.push("t.id IN (SELECT rowid FROM page_fts WHERE page_fts MATCH ")
        .push_bind(expression)
        .push(")");
}
