//! Start-up recovery: what a crash left behind is finished, adopted or
//! cleared, explicitly, by the commands that write (the daemon and
//! `capture`), never as a side effect of opening the archive.
//!
//! - A spooled WARC that is complete (its manifest record is there) but was
//!   never indexed is stored and indexed under its own capture id
//!   (DESIGN.md, invariant 2), unless its scheduled instant is already
//!   captured (then it is set aside as `*.duplicate`: a run is captured
//!   exactly once). One cut off mid-write is set aside as `*.incomplete`.
//!   What is set aside is kept for [`SET_ASIDE_DAYS`] days, then removed.
//! - An object a dead process uploaded but never indexed (its
//!   `pending_object` note says so) is adopted ([`adopt_pending`]) instead
//!   of being left for nothing to name.
//! - The scratch directories of processes that are gone (their lock is
//!   free) are removed, with whatever temporary files they held.

use std::path::Path;
use std::time::Duration;

use crate::archive::{io_at, Archive, ArchiveError};
use crate::index::IndexError;
use crate::model::{Capture, PendingObject, Sha256};
use crate::store::StoreError;

/// How long spools set aside (`*.incomplete`, `*.duplicate`) are kept for
/// inspection.
pub const SET_ASIDE_DAYS: u64 = 7;

/// Everything recovery does at start-up; problems are logged, never fatal.
pub async fn recover(archive: &Archive) {
    let spool = archive.config().spool_dir();
    remove_dead_scratch(&spool, archive.scratch_dir());
    expire_set_aside(&spool, Duration::from_secs(SET_ASIDE_DAYS * 24 * 3600));
    recover_spools(archive).await;
    adopt_all_pending(archive).await;
}

/// Finishes captures a crash interrupted after their WARC was complete:
/// each unlocked `*.warc.gz.partial` in the spool that holds its whole
/// manifest is stored and indexed under its own capture id. Never fails the
/// caller: problems are logged.
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
        match finish_spool(archive, &path).await {
            Ok(Finished::Indexed) | Ok(Finished::Known) => {
                let _ = std::fs::remove_file(&path);
            }
            Ok(Finished::SetAside(ext, why)) => {
                let kept = path.with_extension(ext);
                let _ = std::fs::rename(&path, &kept);
                tracing::warn!(file = %kept.display(), reason = %why, "an interrupted capture is set aside, not indexed");
            }
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "finishing an interrupted capture failed; will retry at the next start")
            }
        }
        drop(lock);
    }
}

/// What became of a spool.
enum Finished {
    /// Stored and indexed now.
    Indexed,
    /// Its capture was indexed already.
    Known,
    /// Kept aside under this extension, for this reason.
    SetAside(&'static str, String),
}

async fn finish_spool(archive: &Archive, path: &Path) -> Result<Finished, ArchiveError> {
    let p = path.to_path_buf();
    let rebuilt = match tokio::task::spawn_blocking(move || crate::rebuild::rebuild(&p))
        .await
        .map_err(|e| ArchiveError::Internal(e.to_string()))?
    {
        Ok(r) => r,
        Err(e) => return Ok(Finished::SetAside("incomplete", e.to_string())),
    };
    let c = &rebuilt.capture;
    let index = archive.index();
    if index.capture(&c.id).await?.is_some() {
        return Ok(Finished::Known);
    }
    if let (Some(schedule), Some(at)) = (&c.schedule, c.scheduled_for) {
        if let Some(done) = index.capture_of_instant(schedule, &c.seed_url, at).await? {
            let why = format!("its instant is already captured as {done}");
            return Ok(Finished::SetAside("duplicate", why));
        }
    }
    archive
        .store()
        .put_file(path, rebuilt.sha256, rebuilt.bytes)
        .await?;
    archive.replicate(path, rebuilt.sha256, rebuilt.bytes).await;
    match index.put_capture(c, &rebuilt.records, None).await {
        Ok(()) => {}
        Err(IndexError::Fenced(why)) => return Ok(Finished::SetAside("duplicate", why)),
        Err(e) => return Err(e.into()),
    }
    tracing::warn!(capture = %c.id, seed = %c.seed_url, warc = %rebuilt.sha256, "finished a capture interrupted before it was indexed");
    Ok(Finished::Indexed)
}

/// Adopts every object a dead process uploaded but never indexed.
async fn adopt_all_pending(archive: &Archive) {
    let notes = match archive.index().all_pending_objects().await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(error = %e, "listing uploads that were never indexed failed");
            return;
        }
    };
    // A young note may be a live attempt's (another daemon on the same
    // index, uploading now): its run's next attempt adopts it if that
    // attempt dies; what is left is adopted at a later start.
    let young = archive.config().daemon.lease.max(Duration::from_secs(600));
    let cutoff = chrono::Utc::now() - chrono::Duration::from_std(young).unwrap_or_default();
    for note in notes.into_iter().filter(|n| n.created_at < cutoff) {
        if let Err(e) = adopt_pending(archive, &note).await {
            tracing::error!(key = %note.key, capture = %note.capture_id, error = %e, "adopting an upload that was never indexed failed; will retry at the next start");
        }
    }
}

/// Adopts an object a dead attempt uploaded but never indexed: downloads
/// it (checked against its key), rebuilds the capture from its own
/// records, and indexes it. `None` when the upload never completed, or when
/// its scheduled instant is captured already (the note is dropped; the
/// object stays, and `audit` lists it). The capture is returned as indexed.
pub async fn adopt_pending(
    archive: &Archive,
    pending: &PendingObject,
) -> Result<Option<Capture>, ArchiveError> {
    let index = archive.index();
    let drop_note = || index.remove_pending_object(&pending.key, &pending.capture_id);
    if let Some(done) = index.capture(&pending.capture_id).await? {
        drop_note().await?;
        return Ok(Some(done));
    }
    match archive.store().head(&pending.key).await {
        Ok(_) => {}
        Err(StoreError::NotFound(_)) => {
            drop_note().await?;
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
    let scratch = archive.scratch_dir();
    let (file, path) = tempfile::Builder::new()
        .prefix("record-adopt-")
        .tempfile_in(scratch)
        .map_err(io_at(scratch))?
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
    match index
        .put_capture(&rebuilt.capture, &rebuilt.records, None)
        .await
    {
        Ok(()) => {}
        Err(IndexError::Fenced(why)) => {
            tracing::warn!(key = %pending.key, reason = %why, "an upload that was never indexed is not adopted");
            drop_note().await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    }
    tracing::warn!(capture = %rebuilt.capture.id, key = %pending.key, "adopted a capture whose process died before indexing it");
    Ok(Some(rebuilt.capture))
}

/// Removes the scratch directories (`scratch-*`) of processes that are gone:
/// a live process holds the lock on its directory's `lock` file. Also
/// removes the per-exchange scratch files older versions left at the top of
/// the spool.
fn remove_dead_scratch(spool: &Path, own: &Path) {
    let Ok(entries) = std::fs::read_dir(spool) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with("scratch-") && path != own {
            let free = match std::fs::File::open(path.join("lock")) {
                Ok(lock) => lock.try_lock().is_ok(),
                // No lock file: a process died while making the directory
                // (or it is being made now: give it a minute).
                Err(_) => older_than(&path, Duration::from_secs(60)),
            };
            if free {
                match std::fs::remove_dir_all(&path) {
                    Ok(()) => {
                        tracing::info!(dir = %path.display(), "removed the scratch space of a process that is gone")
                    }
                    Err(err) => {
                        tracing::warn!(dir = %path.display(), error = %err, "cannot remove a dead process's scratch space")
                    }
                }
            }
        } else if (name.starts_with("exchange-") || name.starts_with("record-"))
            && older_than(&path, Duration::from_secs(24 * 3600))
        {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Removes spools set aside (`*.incomplete`, `*.duplicate`) longer ago than
/// `keep`.
fn expire_set_aside(spool: &Path, keep: Duration) {
    let Ok(entries) = std::fs::read_dir(spool) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        let aside = matches!(
            path.extension().and_then(|x| x.to_str()),
            Some("incomplete" | "duplicate")
        );
        if aside && older_than(&path, keep) {
            match std::fs::remove_file(&path) {
                Ok(()) => {
                    tracing::info!(file = %path.display(), "removed a spool set aside more than a week ago")
                }
                Err(err) => {
                    tracing::warn!(file = %path.display(), error = %err, "cannot remove an expired spool")
                }
            }
        }
    }
}

fn older_than(path: &Path, age: Duration) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|a| a > age)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_process_scratch_is_removed_and_a_live_one_kept() {
        let spool = tempfile::tempdir().unwrap();
        let dead = spool.path().join("scratch-1-00000001");
        let live = spool.path().join("scratch-2-00000002");
        for d in [&dead, &live] {
            std::fs::create_dir_all(d).unwrap();
            std::fs::write(d.join("lock"), b"").unwrap();
            std::fs::write(d.join("record-abc"), vec![0u8; 4096]).unwrap();
        }
        let held = std::fs::File::open(live.join("lock")).unwrap();
        held.lock().unwrap();
        let own = spool.path().join("scratch-3-00000003");
        std::fs::create_dir_all(&own).unwrap();
        remove_dead_scratch(spool.path(), &own);
        assert!(
            std::fs::metadata(&dead).is_err(),
            "the dead process's files are gone"
        );
        assert!(
            std::fs::metadata(live.join("record-abc")).is_ok(),
            "a live one's stay"
        );
        assert!(std::fs::metadata(&own).is_ok(), "our own stays");
        drop(held);
    }

    #[test]
    fn set_aside_spools_expire() {
        let spool = tempfile::tempdir().unwrap();
        let old = spool.path().join("a.warc.gz.incomplete");
        let partial = spool.path().join("b.warc.gz.partial");
        std::fs::write(&old, b"cut off").unwrap();
        std::fs::write(&partial, b"in progress").unwrap();
        expire_set_aside(spool.path(), Duration::from_secs(3600));
        assert!(std::fs::metadata(&old).is_ok(), "younger than the limit");
        expire_set_aside(spool.path(), Duration::ZERO);
        assert!(std::fs::metadata(&old).is_err(), "expired");
        assert!(std::fs::metadata(&partial).is_ok(), "never a live spool");
    }
}
