//! The PostgreSQL backend (`postgres://...`), for several daemons sharing
//! one database.
//!
//! This file is the PostgreSQL side of the dialect seam; the queries are in
//! `sql.rs`, compiled here with `DB = Postgres`. Writers that need the log's
//! next index take a per-schema advisory lock (so leaf indices stay dense),
//! runs are claimed `FOR UPDATE SKIP LOCKED`, a run's row is locked while
//! its capture is committed, and migrations run under a session advisory
//! lock taken before anything else (even the migrations table), so that
//! daemons starting together do not race.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;

use super::IndexError;

#[path = "sql.rs"]
mod sql;
super::sql_body!(sqlx::Postgres, PostgresIndex, "The index on PostgreSQL.");

const MIGRATIONS: &[super::Migration] = super::migrations!("postgres");

/// Another daemon's claim of a run is skipped, not waited for.
const CLAIM_SUFFIX: &str = " FOR UPDATE OF r SKIP LOCKED";

/// Advisory lock classes; the second key is the schema's hash, so
/// installations in different schemas of one database do not block each
/// other.
const MIGRATION_LOCK: i32 = 72_155_401;
const LOG_LOCK: i32 = 72_155_403;

/// A run's row is locked while the capture of its instant is committed, so
/// two attempts (or an attempt and start-up recovery) commit one at a time.
const ROW_LOCK: &str = " FOR UPDATE";

impl PostgresIndex {
    /// Connects and migrates.
    pub async fn open(url: &str) -> Result<PostgresIndex, IndexError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        Self::with_pool(pool).await
    }
}

impl PostgresIndex {
    /// Connects for reading only: every transaction is read-only and
    /// nothing is migrated.
    pub async fn open_read_only(url: &str) -> Result<PostgresIndex, IndexError> {
        use std::str::FromStr;
        let options = sqlx::postgres::PgConnectOptions::from_str(url)?
            .options([("default_transaction_read_only", "on")]);
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect_with(options)
            .await?;
        Self::read_only(pool).await
    }
}

async fn begin(pool: &sqlx::Pool<DB>) -> Result<sqlx::Transaction<'static, DB>, sqlx::Error> {
    pool.begin().await
}

/// One appender at a time per schema: the next index is max + 1.
async fn lock_log(tx: &mut sqlx::Transaction<'_, DB>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
        .bind(LOG_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// One migrator at a time across every daemon: a session lock, taken
/// before the migrations table is created (two daemons creating it at once
/// would otherwise collide in the catalogue).
async fn lock_migrations(conn: &mut sqlx::pool::PoolConnection<DB>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_lock($1, hashtext(current_schema()))")
        .bind(MIGRATION_LOCK)
        .execute(&mut **conn)
        .await?;
    Ok(())
}

async fn unlock_migrations(conn: &mut sqlx::pool::PoolConnection<DB>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_unlock($1, hashtext(current_schema()))")
        .bind(MIGRATION_LOCK)
        .execute(&mut **conn)
        .await?;
    Ok(())
}

/// A migration's transaction.
async fn begin_migration(
    conn: &mut sqlx::pool::PoolConnection<DB>,
) -> Result<sqlx::Transaction<'_, DB>, sqlx::Error> {
    sqlx::Connection::begin(&mut **conn).await
}

/// A document's text, its folded words as a `simple` tsvector.
async fn insert_page_text(
    tx: &mut sqlx::Transaction<'_, DB>,
    capture: &str,
    t: &crate::index::PageText,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO page_text (capture_id, url, host, title, body, folded) \
         VALUES ($1, $2, $3, $4, $5, to_tsvector('simple', $6))",
    )
    .bind(capture)
    .bind(&t.url)
    .bind(&t.host)
    .bind(&t.title)
    .bind(&t.body)
    .bind(&t.folded)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Documents holding every term: each term a phrase query (its words in
/// order, as the parser splits them), all of them required.
/// (`terms` is never empty.)
fn push_text_match(q: &mut sqlx::QueryBuilder<DB>, terms: &[String]) {
    q.push("t.folded @@ (");
    for (i, t) in terms.iter().enumerate() {
        if i > 0 {
            q.push(" && ");
        }
        q.push("phraseto_tsquery('simple', ")
            .push_bind(t.clone())
            .push(")");
    }
    q.push(")");
}
