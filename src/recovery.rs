//! Start-up recovery: what a crash left behind is finished, adopted or
//! cleared, explicitly, by the commands that write (the daemon and
//! `capture`), never as a side effect of opening the archive.
//!
//! - A spooled WARC that is complete (its manifest record is there) but was
//!   never indexed is stored and indexed under its own capture id
//!   (DESIGN.md, invariant 2); one cut off mid-write is set aside as
//!   `*.incomplete` for inspection.
//! - An object a dead attempt uploaded but never indexed (its
//!   `pending_object` note says so) is adopted by the next attempt at the
//!   same run ([`adopt_pending`]) instead of capturing the instant again.
//! - Scratch files of crashed processes are removed.

use std::path::Path;

use crate::archive::{io_at, Archive, ArchiveError};
use crate::model::{Capture, PendingObject, Sha256};
use crate::store::StoreError;

/// Everything recovery does at start-up; problems are logged, never fatal.
pub async fn recover(archive: &Archive) {
    let spool = archive.config().spool_dir();
    remove_stale_scratch_files(&spool);
    recover_spools(archive).await;
}

/// Finishes captures a crash interrupted after their WARC was complete:
/// each unlocked `*.warc.gz.partial` in the spool that holds its whole
/// manifest is stored and indexed under its own capture id. A spool cut off
/// mid-write cannot be finished; it is renamed `*.incomplete` and kept for
/// inspection. Never fails the caller: problems are logged.
async fn recover_spools(archive: &Archive) {
    let dir = archive.config().spool_dir();
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !path.to_string_lossy().ends_with(".warc.gz.partial") {
            continue;
        }
        let Ok(lock) = std::fs::File::open(&path) else {
            continue;
        };
        if lock.try_lock().is_err() {
            continue; // a live capture in another process
        }
        let p = path.clone();
        let rebuilt = match tokio::task::spawn_blocking(move || crate::rebuild::rebuild(&p)).await {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "reading an unfinished spool failed");
                continue;
            }
        };
        let rebuilt = match rebuilt {
            Ok(r) => r,
            Err(e) => {
                let kept = path.with_extension("incomplete");
                let _ = std::fs::rename(&path, &kept);
                tracing::warn!(file = %kept.display(), error = %e, "an interrupted capture cannot be finished; its spool is kept for inspection");
                continue;
            }
        };
        let id = rebuilt.capture.id.clone();
        let result: Result<(), ArchiveError> = async {
            if archive.index().capture(&id).await?.is_none() {
                archive.store().put_file(&path, rebuilt.sha256, rebuilt.bytes).await?;
                archive.replicate(&path, rebuilt.sha256, rebuilt.bytes).await;
                archive.index().put_capture(&rebuilt.capture, &rebuilt.records).await?;
                tracing::warn!(capture = %id, seed = %rebuilt.capture.seed_url, warc = %rebuilt.sha256, "finished a capture interrupted before it was indexed");
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                let _ = std::fs::remove_file(&path);
            }
            Err(e) => {
                tracing::error!(file = %path.display(), capture = %id, error = %e, "finishing an interrupted capture failed; will retry at the next start")
            }
        }
        drop(lock);
    }
}

/// Adopts an object a dead attempt uploaded but never indexed: downloads
/// it (checked against its key), rebuilds the capture from its own
/// records, and indexes it. `None` when the upload never completed (the
/// note is dropped). The capture is returned as indexed.
pub async fn adopt_pending(
    archive: &Archive,
    pending: &PendingObject,
) -> Result<Option<Capture>, ArchiveError> {
    if let Some(done) = archive.index().capture(&pending.capture_id).await? {
        archive
            .index()
            .remove_pending_object(&pending.key, &pending.capture_id)
            .await?;
        return Ok(Some(done));
    }
    match archive.store().head(&pending.key).await {
        Ok(_) => {}
        Err(StoreError::NotFound(_)) => {
            archive
                .index()
                .remove_pending_object(&pending.key, &pending.capture_id)
                .await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    let sha: Sha256 = pending
        .key
        .rsplit('/')
        .next()
        .and_then(|name| name.strip_suffix(".warc.gz"))
        .and_then(|hex| hex.parse().ok())
        .ok_or_else(|| {
            ArchiveError::Invalid(format!("{} is not a WARC object key", pending.key))
        })?;
    let spool = archive.config().spool_dir();
    let (file, path) = tempfile::Builder::new()
        .prefix("record-adopt-")
        .tempfile_in(&spool)
        .map_err(io_at(&spool))?
        .into_parts();
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
    archive.store().copy_to(&pending.key, sha, &mut out).await?;
    drop(out);
    let p = path.to_path_buf();
    let rebuilt = tokio::task::spawn_blocking(move || crate::rebuild::rebuild(&p))
        .await
        .map_err(|e| ArchiveError::Internal(e.to_string()))?
        .map_err(|e| {
            ArchiveError::Invalid(format!("object {} cannot be adopted: {e}", pending.key))
        })?;
    drop(path);
    if rebuilt.capture.id != pending.capture_id {
        return Err(ArchiveError::Invalid(format!(
            "object {} holds capture {}, not {}",
            pending.key, rebuilt.capture.id, pending.capture_id
        )));
    }
    archive
        .index()
        .put_capture(&rebuilt.capture, &rebuilt.records)
        .await?;
    tracing::warn!(capture = %rebuilt.capture.id, key = %pending.key, "adopted a capture whose process died before indexing it");
    Ok(Some(rebuilt.capture))
}

fn remove_stale_scratch_files(dir: &Path) {
    // Another custody process may be capturing into the same spool right
    // now; only files untouched for a day are leftovers of a crash.
    let day = std::time::Duration::from_secs(24 * 3600);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let stale = e
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age > day);
        if !stale {
            continue;
        }
        let name = e.file_name().to_string_lossy().into_owned();
        // Whole spooled captures are finished by `recover_spools`; these
        // are per-exchange scratch files of crashed processes.
        if name.starts_with("exchange-") || name.starts_with("record-") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
