//! The PostgreSQL backend (`postgres://...`), for several daemons sharing
//! one database.
//!
//! This file is the PostgreSQL side of the dialect seam; the queries are in
//! `sql.rs`, compiled here with `DB = Postgres`. Writers that need the log's
//! next index take a per-schema advisory lock (so leaf indices stay dense),
//! runs are claimed `FOR UPDATE SKIP LOCKED`, migrations run under an
//! advisory lock so that daemons starting together do not race, and the
//! scheduler leader holds a session advisory lock on a connection of its
//! own.

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
const LEADER_LOCK: i32 = 72_155_402;
const LOG_LOCK: i32 = 72_155_403;

/// What the PostgreSQL backend keeps beside its pool: how to reach the
/// server, and the connection holding the scheduler-leader lock while this
/// process leads.
struct Seam {
    url: String,
    leader: tokio::sync::Mutex<Option<sqlx::PgConnection>>,
}

impl PostgresIndex {
    /// Connects and migrates.
    pub async fn open(url: &str) -> Result<PostgresIndex, IndexError> {
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(30))
            .connect(url)
            .await?;
        let seam = Seam {
            url: url.to_string(),
            leader: tokio::sync::Mutex::new(None),
        };
        Self::with_pool(pool, seam).await
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

/// One migrator at a time across every daemon.
async fn lock_migrations(tx: &mut sqlx::Transaction<'_, DB>) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))")
        .bind(MIGRATION_LOCK)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The leader holds a session advisory lock on a dedicated connection; it
/// leads while that session lives, and the lock goes with it when it dies.
async fn try_lead(seam: &Seam) -> Result<bool, IndexError> {
    use sqlx::Connection;
    let mut held = seam.leader.lock().await;
    if let Some(conn) = held.as_mut() {
        if sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok() {
            return Ok(true);
        }
        *held = None;
        return Ok(false);
    }
    let mut conn = sqlx::PgConnection::connect(&seam.url).await?;
    let got: bool =
        sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))")
            .bind(LEADER_LOCK)
            .fetch_one(&mut conn)
            .await?;
    if got {
        *held = Some(conn);
    }
    Ok(got)
}
