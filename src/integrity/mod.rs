//! Fixity audits and verification.
//!
//! - [`audit`] re-reads every stored WARC (every copy: primary and
//!   replicas) and compares its SHA-256 with the index; each check is a
//!   fixity event (in the index and the log), a failed one quarantines the
//!   object, and a bad copy is repaired from a good one. [`scrub`] is the
//!   daemon's paced version of the same.
//! - [`verify`] goes further for one capture or all of them: the WARC
//!   file's digest, every record's block and payload digests against the
//!   bytes and the index, the manifest, every row against its log leaf, and
//!   the leaves' inclusion in signed checkpoints (checked against the
//!   store's signed notes); with `--all`, every checkpoint's signature, root
//!   and consistency too.
//! - [`package`] checks an exported WARC offline, with nothing but the
//!   file, and accepts only what it can account for.
//! - [`reindex()`] rebuilds a lost index from the store.
//!
//! Every failure names the exact item.

mod package;
mod reindex;
mod rows;
mod verify;

use chrono::Utc;
use serde::Serialize;

use crate::archive::{Archive, ArchiveError};
use crate::model::FixityEvent;
use crate::store::StoreError;

pub use package::{verify_package, PackageError, PackageVerification};
pub use reindex::{reindex, ReindexReport};
pub use verify::{verify_all, verify_capture, AllVerification, CaptureVerification};

#[derive(Clone, Debug, Serialize)]
pub struct Check {
    pub item: String,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Check {
    pub(crate) fn ok(item: impl Into<String>, detail: Option<String>) -> Check {
        Check {
            item: item.into(),
            ok: true,
            detail,
        }
    }

    pub(crate) fn failed(item: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            item: item.into(),
            ok: false,
            detail: Some(detail.into()),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct ObjectCheck {
    pub key: String,
    pub events: Vec<FixityEvent>,
    /// Every copy is good now (as found, or repaired).
    pub healthy: bool,
}

/// What an audit found, in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct AuditSummary {
    pub checked: usize,
    /// Objects with a copy that is still bad.
    pub failed: usize,
    /// Objects with a copy rewritten from a good one.
    pub repaired: usize,
}

impl AuditSummary {
    pub fn of(checks: &[ObjectCheck]) -> AuditSummary {
        AuditSummary {
            checked: checks.len(),
            failed: checks.iter().filter(|c| !c.healthy).count(),
            repaired: checks
                .iter()
                .filter(|c| c.events.iter().any(|e| e.outcome == "repaired"))
                .count(),
        }
    }
}

/// Checks every stored WARC file once.
pub async fn audit(archive: &Archive) -> Result<Vec<ObjectCheck>, ArchiveError> {
    let mut checks = Vec::new();
    for file in archive.index().warc_files().await? {
        checks.push(check_object(archive, &file).await?);
    }
    Ok(checks)
}

/// WARC objects (and imported files) in the primary store that no capture
/// names and no upload in progress claims: what an attempt that was fenced out after uploading
/// (another daemon had taken its run over, see `index::Fence`), or an
/// upload whose note was dropped, left behind. The store is write-once, so
/// they are reported, never removed.
pub async fn unindexed_objects(archive: &Archive) -> Result<Vec<String>, ArchiveError> {
    let index = archive.index();
    let mut known: std::collections::HashSet<String> = index
        .warc_files()
        .await?
        .into_iter()
        .map(|f| f.key)
        .collect();
    known.extend(
        index
            .all_pending_objects()
            .await?
            .into_iter()
            .map(|p| p.key),
    );
    let mut stored = archive.store().list("warc/").await?;
    // Files imported as received: one a crash left before its import was
    // committed is named by nothing either.
    stored.extend(archive.store().list("import/").await?);
    Ok(stored.into_iter().filter(|k| !known.contains(k)).collect())
}

/// Re-reads one stored WARC in the primary store and every replica and
/// records each outcome (event, quarantine, log leaf). A bad or missing
/// copy is rewritten from a good one, and the repair is recorded too.
pub async fn check_object(
    archive: &Archive,
    file: &crate::model::WarcFile,
) -> Result<ObjectCheck, ArchiveError> {
    let index = archive.index();
    let mut copies: Vec<(String, &crate::store::Store)> = vec![("primary".into(), archive.store())];
    for (i, r) in archive.replicas().iter().enumerate() {
        copies.push((format!("replica {}", i + 1), r));
    }
    let event = |location: &str, outcome: &str, observed, detail: Option<String>| FixityEvent {
        object_key: file.key.clone(),
        location: location.to_string(),
        algorithm: "sha256".into(),
        expected: file.sha256,
        observed,
        outcome: outcome.into(),
        detail,
        at: Utc::now(),
    };
    let mut events = Vec::new();
    let mut bad = Vec::new();
    let mut good = None;
    for (location, store) in &copies {
        let checked = store.verify(&file.key, file.sha256, file.bytes).await;
        let (outcome, observed, detail) = match checked {
            Ok(()) => ("ok", Some(file.sha256), None),
            Err(StoreError::Corrupt { actual, .. }) => (
                "corrupt",
                Some(actual),
                Some(format!("content hashes to {actual}")),
            ),
            Err(StoreError::SizeMismatch {
                expected, actual, ..
            }) => (
                "corrupt",
                None,
                Some(format!("{actual} bytes, expected {expected}")),
            ),
            Err(StoreError::NotFound(_)) => ("missing", None, Some("not in the store".to_string())),
            Err(e) => ("error", None, Some(e.to_string())),
        };
        match outcome {
            "ok" => {
                tracing::debug!(object = %file.key, location, "fixity ok");
                good.get_or_insert((location.clone(), *store));
            }
            "error" => {
                tracing::error!(object = %file.key, location, detail = ?detail, "fixity check could not read the object")
            }
            _ => {
                tracing::error!(object = %file.key, location, outcome, detail = ?detail, "fixity check failed");
                bad.push((location.clone(), *store));
            }
        }
        let e = event(location, outcome, observed, detail);
        index.record_fixity(&e).await?;
        events.push(e);
    }
    let mut healthy = events.iter().all(|e| e.outcome == "ok");
    if let (Some((source, from)), false) = (&good, bad.is_empty()) {
        // `repair` puts (and so syncs and verifies) from this copy.
        let good_copy = download_to_spool(archive, from, &file.key, "repair-").await?;
        if good_copy.sha256 != file.sha256 {
            return Err(StoreError::Corrupt {
                key: file.key.clone(),
                expected: file.sha256,
                actual: good_copy.sha256,
            }
            .into());
        }
        let path = good_copy.path;
        let mut all_repaired = true;
        for (location, store) in &bad {
            let e = match store
                .repair(&file.key, &path, file.sha256, file.bytes)
                .await
            {
                Ok(()) => {
                    tracing::warn!(object = %file.key, location, source, "repaired from a good copy");
                    event(
                        location,
                        "repaired",
                        Some(file.sha256),
                        Some(format!("rewritten from {source}")),
                    )
                }
                Err(err) => {
                    all_repaired = false;
                    tracing::error!(object = %file.key, location, error = %err, "repair failed");
                    event(
                        location,
                        "error",
                        None,
                        Some(format!("repair from {source} failed: {err}")),
                    )
                }
            };
            index.record_fixity(&e).await?;
            events.push(e);
        }
        healthy = all_repaired && events.iter().all(|e| e.outcome != "error");
        drop(path);
    }
    Ok(ObjectCheck {
        key: file.key.clone(),
        events,
        healthy,
    })
}

/// The daemon's continuous audit: one pass over every object per
/// `period`, spread evenly by size and never faster than `max_bytes_per_sec`;
/// then the next pass. Runs until `stop` is set, doing nothing while
/// `active` (leadership) is false.
pub async fn scrub(
    archive: &Archive,
    period: std::time::Duration,
    max_bytes_per_sec: u64,
    active: &std::sync::atomic::AtomicBool,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    use std::sync::atomic::Ordering;
    let pause = |d: std::time::Duration| {
        let mut stop = stop.clone();
        async move {
            tokio::select! {
                _ = tokio::time::sleep(d) => false,
                _ = stop.wait_for(|s| *s) => true,
            }
        }
    };
    loop {
        if !active.load(Ordering::Relaxed) {
            if pause(std::time::Duration::from_secs(2)).await {
                return;
            }
            continue;
        }
        let files = match archive.index().warc_files().await {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "scrub: listing objects failed; retrying");
                if pause(std::time::Duration::from_secs(30)).await {
                    return;
                }
                continue;
            }
        };
        let total: u64 = files.iter().map(|f| f.bytes).sum::<u64>().max(1);
        let started = tokio::time::Instant::now();
        let mut done = 0u64;
        for file in &files {
            if *stop.borrow() || !active.load(Ordering::Relaxed) {
                break;
            }
            let t = tokio::time::Instant::now();
            if let Err(e) = check_object(archive, file).await {
                tracing::error!(object = %file.key, error = %e, "scrub: recording a check failed");
            }
            done += file.bytes;
            // Where the pass should be by now, and the rate cap.
            let due = started + period.mul_f64(done as f64 / total as f64);
            let capped = t + std::time::Duration::from_secs_f64(
                file.bytes as f64 / max_bytes_per_sec.max(1) as f64,
            );
            let until = due.max(capped);
            let now = tokio::time::Instant::now();
            if until > now && pause(until - now).await {
                return;
            }
        }
        if files.is_empty() && pause(std::time::Duration::from_secs(60)).await {
            return;
        }
        if *stop.borrow() {
            return;
        }
    }
}

/// An object downloaded as it is into scratch space (unlinked when the
/// `TempPath` drops), with the digest and size of what arrived.
struct Downloaded {
    path: tempfile::TempPath,
    sha256: crate::model::Sha256,
}

async fn download_to_spool(
    archive: &Archive,
    store: &crate::store::Store,
    key: &str,
    prefix: &str,
) -> Result<Downloaded, ArchiveError> {
    use tokio::io::AsyncWriteExt;
    let scratch = archive.scratch_dir();
    let (file, path) = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(scratch)
        .map_err(|source| ArchiveError::Io {
            path: scratch.to_path_buf(),
            source,
        })?
        .into_parts();
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
    let (sha256, _) = store.download(key, &mut out).await?;
    out.flush().await.map_err(|source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Downloaded { path, sha256 })
}
