//! Fixity audits and verification.
//!
//! `audit` re-reads every stored WARC and compares its SHA-256 with the
//! index; each check is a fixity event (in the index and the log), and a
//! failed one quarantines the object. `verify` goes further for one capture
//! or all of them: the WARC file's digest, every record's block and payload
//! digests against the bytes and the index, the manifest, the capture's
//! leaf against the index, and its inclusion in a signed checkpoint; with
//! `--all`, also every checkpoint's signature, root and consistency, and
//! whether the log holds captures the index has lost. Every failure names
//! the exact item.

use std::io::{BufReader, Seek, SeekFrom};
use std::path::Path;

use chrono::Utc;
use serde::Serialize;

use crate::archive::{Archive, ArchiveError};
use crate::model::{CaptureId, FixityEvent, RecordEntry};
use crate::store::StoreError;
use crate::tlog::{self, LogKey};
use crate::warc::WarcFileReader;

/// One object's audit: a check of every copy, then any repairs.
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

/// An object downloaded as it is into the spool (unlinked when the
/// `TempPath` drops), with the digest and size of what arrived.
struct Downloaded {
    file: std::fs::File,
    path: tempfile::TempPath,
    sha256: crate::model::Sha256,
    bytes: u64,
}

async fn download_to_spool(
    archive: &Archive,
    store: &crate::store::Store,
    key: &str,
    prefix: &str,
) -> Result<Downloaded, ArchiveError> {
    use tokio::io::AsyncWriteExt;
    let spool = archive.config().spool_dir();
    let (file, path) = tempfile::Builder::new()
        .prefix(prefix)
        .tempfile_in(&spool)
        .map_err(|source| ArchiveError::Io {
            path: spool.clone(),
            source,
        })?
        .into_parts();
    let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
    let (sha256, bytes) = store.download(key, &mut out).await?;
    out.flush().await.map_err(|source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Downloaded {
        file: out.into_inner().into_std().await,
        path,
        sha256,
        bytes,
    })
}

/// One verified item.
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
pub struct CaptureVerification {
    pub capture_id: CaptureId,
    pub ok: bool,
    pub checks: Vec<Check>,
}

/// Verifies one capture (see the module documentation).
pub async fn verify_capture(
    archive: &Archive,
    key: &LogKey,
    id: &CaptureId,
) -> Result<CaptureVerification, ArchiveError> {
    let index = archive.index();
    let capture = index.capture(id).await?.ok_or_else(|| {
        ArchiveError::NotFound(format!(
            "no capture {id} in the index; `custody verify --all` compares the index with the log"
        ))
    })?;
    let records = index.records(id).await?;
    let mut checks = Vec::new();

    if let Some(warc) = &capture.warc {
        let item = format!("WARC file {}", warc.key);
        match download_to_spool(archive, archive.store(), &warc.key, "verify-").await {
            Err(ArchiveError::Store(e)) => checks.push(Check::failed(item, e.to_string())),
            Err(e) => return Err(e),
            Ok(Downloaded {
                file,
                path,
                sha256: sha,
                bytes,
            }) => {
                if sha != warc.sha256 || bytes != warc.bytes {
                    checks.push(Check::failed(
                        item,
                        format!(
                            "{bytes} bytes hashing to {sha}; the index says {} bytes, {}",
                            warc.bytes, warc.sha256
                        ),
                    ));
                } else {
                    checks.push(Check::ok(item, Some(format!("sha256 {sha}"))));
                }
                let (capture_id, seed) = (id.clone(), capture.seed_url.clone());
                let recs = records.clone();
                let found = tokio::task::spawn_blocking(move || {
                    check_records(file, &recs, &capture_id, &seed)
                })
                .await
                .map_err(|e| ArchiveError::Internal(e.to_string()))?;
                checks.extend(found);
                drop(path);
            }
        }
    }

    checks.extend(check_log_entry(archive, key, &capture, &records).await?);
    Ok(CaptureVerification {
        capture_id: id.clone(),
        ok: checks.iter().all(|c| c.ok),
        checks,
    })
}

/// Every record the index lists, read at its offset from `file`: digests
/// against the bytes and against the index; then the manifest.
fn check_records(
    mut file: std::fs::File,
    records: &[RecordEntry],
    id: &CaptureId,
    seed: &str,
) -> Vec<Check> {
    let mut checks = Vec::new();
    let mut bad = 0;
    let mut manifest = None;
    for r in records {
        let item = format!(
            "record {} ({} {})",
            r.record_id,
            r.warc_type,
            r.target_uri.as_deref().unwrap_or("-")
        );
        let mut block = Vec::new();
        let want_block = r.warc_type == "metadata";
        let read = file
            .seek(SeekFrom::Start(r.offset))
            .map_err(|e| e.to_string())
            .and_then(|_| {
                let mut reader = WarcFileReader::new(BufReader::new(&mut file));
                reader
                    .next_record(&mut |piece| {
                        if want_block {
                            block.extend_from_slice(piece)
                        }
                    })
                    .map_err(|e| e.to_string())
            });
        let problem = match read {
            Err(e) => Some(format!("unreadable at offset {}: {e}", r.offset)),
            Ok(None) => Some(format!("no record at offset {}", r.offset)),
            Ok(Some(rec)) => {
                if let Err(e) = rec.verify_digests() {
                    Some(e.to_string())
                } else if rec.head.record_id() != r.record_id {
                    Some(format!(
                        "the record at offset {} is {}",
                        r.offset,
                        rec.head.record_id()
                    ))
                } else if rec.block_sha256 != r.block_digest {
                    Some(format!(
                        "block digest {} differs from the index's {}",
                        rec.block_sha256, r.block_digest
                    ))
                } else if let (Some(actual), Some(indexed)) =
                    (rec.payload_sha256(), r.payload_digest)
                {
                    (actual != indexed).then(|| {
                        format!("payload digest {actual} differs from the index's {indexed}")
                    })
                } else {
                    None
                }
            }
        };
        match problem {
            Some(p) => {
                bad += 1;
                checks.push(Check::failed(item, p));
            }
            None if want_block => manifest = Some(block.clone()),
            None => {}
        }
    }
    if bad == 0 {
        checks.push(Check::ok(
            format!("{} records", records.len()),
            Some("block and payload digests match the bytes and the index".into()),
        ));
    }
    match manifest.map(|m| serde_json::from_slice::<serde_json::Value>(&m)) {
        Some(Ok(m)) if m["capture_id"] == id.as_str() && m["seed_url"] == seed => {
            checks.push(Check::ok("manifest", None))
        }
        Some(Ok(m)) => checks.push(Check::failed(
            "manifest",
            format!(
                "names capture {} of {}, not {id} of {seed}",
                m["capture_id"], m["seed_url"]
            ),
        )),
        Some(Err(e)) => checks.push(Check::failed("manifest", format!("not JSON: {e}"))),
        None if bad == 0 => checks.push(Check::failed("manifest", "no manifest record")),
        None => {}
    }
    checks
}

/// The capture's leaf: present once, equal to the index's capture, and
/// included in the latest checkpoint that covers it.
async fn check_log_entry(
    archive: &Archive,
    key: &LogKey,
    capture: &crate::model::Capture,
    records: &[RecordEntry],
) -> Result<Vec<Check>, ArchiveError> {
    let index = archive.index();
    let leaves = index.log_leaves_of("capture", capture.id.as_str()).await?;
    let Some(leaf) = leaves.first() else {
        return Ok(vec![Check::failed(
            "log leaf",
            format!("capture {} is not in the transparency log", capture.id),
        )]);
    };
    let mut checks = Vec::new();
    let expected = tlog::capture_leaf(capture, records);
    if expected.data != leaf.data {
        checks.push(Check::failed(
            format!("log leaf {}", leaf.index),
            "the logged manifest differs from the index's capture",
        ));
    } else {
        checks.push(Check::ok(format!("log leaf {}", leaf.index), None));
    }
    let covering = index
        .checkpoints()
        .await?
        .into_iter()
        .rfind(|c| c.tree_size > leaf.index);
    let Some(checkpoint) = covering else {
        checks.push(Check::ok(
            "inclusion",
            Some("not yet in a signed checkpoint; run `custody log checkpoint`".into()),
        ));
        return Ok(checks);
    };
    let item = format!("inclusion in checkpoint {}", checkpoint.tree_size);
    let proved = tlog::inclusion_in(index.as_ref(), key, leaf.clone(), checkpoint.clone())
        .await
        .and_then(|p| tlog::verify_inclusion_proof(&p, &key.verifier_key()));
    match proved {
        Ok(()) => checks.push(Check::ok(item, None)),
        Err(e) => checks.push(Check::failed(item, e.to_string())),
    }
    // Timestamp tokens of that checkpoint and of the capture itself.
    let roots = &archive.config().timestamps.roots;
    let subjects = [
        (
            "checkpoint",
            checkpoint.tree_size.to_string(),
            crate::model::Sha256::of(checkpoint.note.as_bytes()),
        ),
        (
            "capture",
            capture.id.to_string(),
            crate::model::Sha256::of(expected.data.as_bytes()),
        ),
    ];
    for (kind, subject, imprint) in subjects {
        for token in index.timestamp_tokens(kind, &subject).await? {
            let item = format!("timestamp from {} on {kind} {subject}", token.tsa_url);
            if token.imprint != imprint {
                checks.push(Check::failed(item, "the token timestamps other bytes"));
                continue;
            }
            let (t, r) = (token.clone(), roots.clone());
            let checked = tokio::task::spawn_blocking(move || tlog::tsa::verify_token(&t, &r))
                .await
                .map_err(|e| ArchiveError::Internal(e.to_string()))?;
            match checked {
                Ok(()) => checks.push(Check::ok(item, token.gen_time.clone())),
                Err(e) => checks.push(Check::failed(item, e.to_string())),
            }
        }
    }
    Ok(checks)
}

#[derive(Clone, Debug, Serialize)]
pub struct AllVerification {
    pub ok: bool,
    pub captures: Vec<CaptureVerification>,
    /// Checkpoints, and the log against the index.
    pub log: Vec<Check>,
}

impl AllVerification {
    /// Captures with a check that failed.
    pub fn failed_captures(&self) -> usize {
        self.captures.iter().filter(|c| !c.ok).count()
    }

    /// Every check of the log passed.
    pub fn log_ok(&self) -> bool {
        self.log.iter().all(|c| c.ok)
    }
}

/// Verifies every capture, every checkpoint, and the log against the index.
pub async fn verify_all(archive: &Archive, key: &LogKey) -> Result<AllVerification, ArchiveError> {
    let index = archive.index();
    let mut captures = Vec::new();
    for c in index.captures(None).await? {
        captures.push(verify_capture(archive, key, &c.id).await?);
    }
    let mut log = Vec::new();
    let tlog_err = |e: tlog::TlogError| ArchiveError::Internal(e.to_string());
    for c in tlog::check_log(index.as_ref(), key)
        .await
        .map_err(tlog_err)?
    {
        let item = format!("checkpoint {}", c.tree_size);
        log.push(match c.problem {
            None => Check::ok(item, None),
            Some(p) => Check::failed(item, p),
        });
    }
    let size = index.log_size().await?;
    let mut missing = 0;
    for leaf in index.log_leaves(0, size).await? {
        if leaf.kind != "capture" {
            continue;
        }
        let id: Result<CaptureId, _> = leaf.object_id.parse();
        let present = match &id {
            Ok(id) => index.capture(id).await?.is_some(),
            Err(_) => false,
        };
        if !present {
            missing += 1;
            log.push(Check::failed(
                format!("log leaf {}", leaf.index),
                format!(
                    "the log holds capture {} that the index lacks",
                    leaf.object_id
                ),
            ));
        }
    }
    if missing == 0 {
        log.push(Check::ok(
            "log against index",
            Some(format!(
                "every capture in the log ({size} leaves) is in the index"
            )),
        ));
    }
    Ok(AllVerification {
        ok: captures.iter().all(|c| c.ok) && log.iter().all(|c| c.ok),
        captures,
        log,
    })
}

/// What `reindex` did and found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ReindexReport {
    pub leaves_restored: u64,
    pub checkpoints_restored: u64,
    pub captures_rebuilt: u64,
    /// Failed captures (no WARC) restored from their log leaves.
    pub failed_captures_restored: u64,
    /// Captures newer than the last checkpoint, appended to the log again.
    pub leaves_appended: u64,
    /// Everything that does not agree; empty when the rebuilt index matches
    /// the log.
    pub problems: Vec<String>,
}

/// Rebuilds an empty index from the object store alone: the log's leaves
/// and signed checkpoints (checked against each other and the key), then
/// every WARC (each rebuilt from its own records and manifest), then failed
/// captures from their leaves; finally every capture leaf is compared with
/// the rebuilt capture.
pub async fn reindex(
    archive: &Archive,
    key: Option<&LogKey>,
) -> Result<ReindexReport, ArchiveError> {
    let index = archive.index();
    let store = archive.store();
    if !index.captures(None).await?.is_empty() || index.log_size().await? > 0 {
        return Err(ArchiveError::Invalid(
            "reindex rebuilds an empty index: move the current index aside (or point index_url at a new database) first".into(),
        ));
    }
    let mut report = ReindexReport::default();

    // 1. The log, segment by segment, as the checkpoints wrote it.
    let mut segments = store.list("log/leaves/").await?;
    segments.sort();
    'segments: for seg in &segments {
        let bytes = store.get_bytes_opt(seg).await?.unwrap_or_default();
        for line in String::from_utf8_lossy(&bytes).lines() {
            let leaf: tlog::LogLeaf = match serde_json::from_str(line) {
                Ok(l) => l,
                Err(e) => {
                    report.problems.push(format!(
                        "{seg}: a leaf cannot be read ({e}); later leaves are not restored"
                    ));
                    break 'segments;
                }
            };
            let hash =
                crate::model::Sha256::from_bytes(tlog::merkle::leaf_hash(leaf.data.as_bytes()));
            if hash != leaf.leaf_hash {
                report.problems.push(format!(
                    "{seg}: leaf {} does not hash to its recorded hash; later leaves are not restored",
                    leaf.index
                ));
                break 'segments;
            }
            if let Err(e) = index.restore_leaf(&leaf).await {
                report
                    .problems
                    .push(format!("{seg}: {e}; later leaves are not restored"));
                break 'segments;
            }
            report.leaves_restored += 1;
        }
    }
    let size = index.log_size().await?;
    let hashes = index.log_leaf_hashes(size).await?;
    let mut notes = store.list("log/checkpoints/").await?;
    notes.sort();
    for note_key in &notes {
        let note =
            String::from_utf8_lossy(&store.get_bytes_opt(note_key).await?.unwrap_or_default())
                .into_owned();
        let checked = match key {
            Some(k) => tlog::verify_checkpoint(&note, &k.verifier_key()),
            None => Err(tlog::TlogError::BadNote(
                "no log key to check it with".into(),
            )),
        };
        match checked {
            Err(e) => report.problems.push(format!("{note_key}: {e}")),
            Ok(c) if c.tree_size > size => report.problems.push(format!(
                "{note_key}: signs {} leaves; only {size} could be restored",
                c.tree_size
            )),
            Ok(c) if tlog::root_of(&hashes[..c.tree_size as usize]) != c.root => {
                report.problems.push(format!(
                    "{note_key}: the restored leaves do not give its signed root"
                ))
            }
            Ok(c) => {
                index
                    .put_checkpoint(&tlog::Checkpoint {
                        tree_size: c.tree_size,
                        root: c.root,
                        note,
                        created_at: Utc::now(),
                    })
                    .await?;
                report.checkpoints_restored += 1;
            }
        }
    }

    // 2. Every WARC, rebuilt from its own records and manifest.
    let mut keys = store.list("warc/").await?;
    keys.sort();
    let mut rebuilt_captures = Vec::new();
    for warc_key in keys {
        let path = download_to_spool(archive, store, &warc_key, "reindex-")
            .await?
            .path;
        let p = path.to_path_buf();
        let rebuilt = tokio::task::spawn_blocking(move || crate::rebuild::rebuild(&p))
            .await
            .map_err(|e| ArchiveError::Internal(e.to_string()))?;
        drop(path);
        match rebuilt {
            Err(e) => report.problems.push(format!("{warc_key}: {e}")),
            Ok(r) if crate::store::warc_key(&r.sha256) != warc_key => {
                report.problems.push(format!(
                    "{warc_key}: its content hashes to {}, not its name",
                    r.sha256
                ))
            }
            Ok(r) => rebuilt_captures.push(r),
        }
    }
    rebuilt_captures.sort_by_key(|r| r.capture.started_at);
    for r in rebuilt_captures {
        let logged = !index
            .log_leaves_of("capture", r.capture.id.as_str())
            .await?
            .is_empty();
        if logged {
            index.restore_capture(&r.capture, &r.records).await?;
        } else {
            index.put_capture(&r.capture, &r.records).await?;
        }
        report.captures_rebuilt += 1;
        if !logged {
            report.leaves_appended += 1;
        }
    }

    // 3. Failed captures have no WARC: their leaf is all there is.
    for leaf in index.log_leaves(0, size).await? {
        if leaf.kind != "capture" {
            continue;
        }
        let Ok(id) = leaf.object_id.parse::<CaptureId>() else {
            report
                .problems
                .push(format!("log leaf {}: bad capture id", leaf.index));
            continue;
        };
        if index.capture(&id).await?.is_some() {
            continue;
        }
        match failed_capture_from_leaf(&leaf.data) {
            Some(c) => {
                index.restore_capture(&c, &[]).await?;
                report.failed_captures_restored += 1;
            }
            None => report.problems.push(format!(
                "log leaf {}: capture {} is in the log but its WARC is not in the store",
                leaf.index, leaf.object_id
            )),
        }
    }

    // 4. The rebuilt index against the log.
    for leaf in index.log_leaves(0, index.log_size().await?).await? {
        if leaf.kind != "capture" {
            continue;
        }
        let Ok(id) = leaf.object_id.parse::<CaptureId>() else {
            continue;
        };
        if let Some(c) = index.capture(&id).await? {
            let records = index.records(&id).await?;
            if tlog::capture_leaf(&c, &records).data != leaf.data {
                report.problems.push(format!(
                    "log leaf {}: capture {id} as rebuilt from its WARC differs from the logged manifest",
                    leaf.index
                ));
            }
        }
    }
    Ok(report)
}

/// A failed capture as its log leaf describes it.
fn failed_capture_from_leaf(data: &str) -> Option<crate::model::Capture> {
    let v: serde_json::Value = serde_json::from_str(data).ok()?;
    if v["status"] != "failed" {
        return None;
    }
    let time = |k: &str| {
        chrono::DateTime::parse_from_rfc3339(v[k].as_str()?)
            .ok()
            .map(|t| t.with_timezone(&Utc))
    };
    Some(crate::model::Capture {
        id: v["capture_id"].as_str()?.parse().ok()?,
        seed_url: v["seed_url"].as_str()?.to_string(),
        status: crate::model::CaptureStatus::Failed,
        error: v["error"].as_str().map(str::to_string),
        started_at: time("started_at")?,
        finished_at: time("finished_at")?,
        warc: None,
        records: 0,
        resources: Vec::new(),
        schedule: None,
        scheduled_for: None,
        change: None,
    })
}

/// Why a package could not be checked at all (as opposed to a check that
/// failed, which [`PackageVerification`] reports).
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    #[error("cannot open {path}: {source}")]
    Open {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the scratch files to check {path}: {source}")]
    Scratch {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// What `verify PACKAGE` found.
#[derive(Clone, Debug, Serialize)]
pub struct PackageVerification {
    pub package: String,
    pub capture_id: Option<String>,
    pub ok: bool,
    pub checks: Vec<Check>,
}

/// Verifies an exported WARC offline, with nothing but the file: every
/// record's digests; the stored WARC (the file's first `warc_bytes` bytes)
/// against the digest the log holds; the logged manifest against the
/// records; the inclusion proof and its signed checkpoint, against
/// `pinned_key` when given (else the key the package carries); every
/// revisit's original; and the timestamp tokens against `tsa_roots`.
pub fn verify_package(
    path: &Path,
    pinned_key: Option<&str>,
    tsa_roots: &[std::path::PathBuf],
) -> Result<PackageVerification, PackageError> {
    use sha2::Digest;
    let open = || {
        std::fs::File::open(path).map_err(|source| PackageError::Open {
            path: path.to_path_buf(),
            source,
        })
    };
    let read_err = |source| PackageError::Read {
        path: path.to_path_buf(),
        source,
    };
    let file = open()?;
    let mut reader = WarcFileReader::new(BufReader::new(file));
    let mut checks = Vec::new();
    struct Seen {
        offset: u64,
        id: String,
        block: crate::model::Sha256,
        warc_type: String,
        refers_to: Option<String>,
    }
    let mut seen = Vec::new();
    let mut proof_block = None;
    let mut bad_records = 0;
    loop {
        let mut block = Vec::new();
        let next = reader.next_record(&mut |piece| {
            if block.len() < 64 << 20 {
                block.extend_from_slice(piece)
            }
        });
        let rec = match next {
            Ok(Some(r)) => r,
            Ok(None) => break,
            Err(e) => {
                bad_records += 1;
                checks.push(Check::failed(
                    format!(
                        "record after {}",
                        seen.last()
                            .map(|s: &Seen| s.id.as_str())
                            .unwrap_or("the start")
                    ),
                    format!("unreadable: {e}"),
                ));
                break;
            }
        };
        let target = rec.head.get("WARC-Target-URI").unwrap_or("-").to_string();
        let item = format!(
            "record {} ({} {target})",
            rec.head.record_id(),
            rec.head.warc_type()
        );
        if let Err(e) = rec.verify_digests() {
            bad_records += 1;
            checks.push(Check::failed(item, e.to_string()));
        }
        if rec.head.warc_type() == "metadata" && target.starts_with("urn:custody:proof:") {
            proof_block = Some(block);
        }
        seen.push(Seen {
            offset: rec.offset,
            id: rec.head.record_id().to_string(),
            block: rec.block_sha256,
            warc_type: rec.head.warc_type().to_string(),
            refers_to: rec.head.get("WARC-Refers-To").map(str::to_string),
        });
    }
    if bad_records == 0 {
        checks.push(Check::ok(
            format!("{} records", seen.len()),
            Some("every block and payload digest matches".into()),
        ));
    }
    let done = |checks: Vec<Check>, capture_id| PackageVerification {
        package: path.display().to_string(),
        capture_id,
        ok: checks.iter().all(|c| c.ok),
        checks,
    };
    let Some(proof) =
        proof_block.and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
    else {
        checks.push(Check::failed(
            "custody proof",
            "no readable custody proof record (packages come from `custody export`)",
        ));
        return Ok(done(checks, None));
    };
    let capture_id = proof["capture_id"].as_str().unwrap_or_default().to_string();
    let warc_sha = proof["warc_sha256"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let warc_bytes = proof["warc_bytes"].as_u64().unwrap_or(0);

    // The stored WARC is the file's beginning.
    let item = format!("capture WARC (the first {warc_bytes} bytes)");
    let mut hasher = sha2::Sha256::new();
    let mut f = open()?;
    let copied = std::io::copy(
        &mut std::io::Read::take(&mut f, warc_bytes),
        &mut HashWrite(&mut hasher),
    )
    .map_err(read_err)?;
    let actual = hex::encode(hasher.finalize());
    if copied == warc_bytes && actual == warc_sha {
        checks.push(Check::ok(item, Some(format!("sha256 {actual}"))));
    } else {
        checks.push(Check::failed(
            item,
            format!("hashes to {actual}, the log says {warc_sha}"),
        ));
    }

    // The logged manifest names these records.
    let inclusion: Option<tlog::InclusionProof> =
        serde_json::from_value(proof["inclusion"].clone()).ok();
    let Some(inclusion) = inclusion else {
        checks.push(Check::failed("inclusion proof", "missing or malformed"));
        return Ok(done(checks, Some(capture_id)));
    };
    let leaf: serde_json::Value = serde_json::from_str(&inclusion.leaf_data).unwrap_or_default();
    let mut problems = Vec::new();
    if leaf["capture_id"] != capture_id.as_str() || leaf["warc_sha256"] != warc_sha.as_str() {
        problems.push("it names another capture or WARC".to_string());
    }
    for r in leaf["records"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let found = seen.iter().find(|s| Some(s.offset) == r["offset"].as_u64());
        match found {
            Some(s) if r["id"] == s.id.as_str() && r["block"] == s.block.hex().as_str() => {}
            _ => problems.push(format!("record {} is not in the file as logged", r["id"])),
        }
    }
    match problems.first() {
        None => checks.push(Check::ok("logged manifest", None)),
        Some(p) => checks.push(Check::failed("logged manifest", p.clone())),
    }

    // The proof and its checkpoint.
    let (key, pinned) = match pinned_key {
        Some(k) => (k.to_string(), true),
        None => (inclusion.verifier_key.clone(), false),
    };
    let item = format!("inclusion in checkpoint {}", inclusion.tree_size);
    match tlog::verify_inclusion_proof(&inclusion, &key) {
        Ok(()) => checks.push(Check::ok(
            item,
            (!pinned).then(|| {
                "checked with the key the package carries; pin the published key with --key"
                    .to_string()
            }),
        )),
        Err(e) => checks.push(Check::failed(item, e.to_string())),
    }

    // Every revisit's original travels with it.
    let revisits: Vec<&Seen> = seen.iter().filter(|s| s.warc_type == "revisit").collect();
    let missing: Vec<&str> = revisits
        .iter()
        .filter(|r| {
            !seen
                .iter()
                .any(|s| s.warc_type == "response" && Some(&s.id) == r.refers_to.as_ref())
        })
        .map(|r| r.id.as_str())
        .collect();
    match missing.first() {
        None => checks.push(Check::ok(
            format!("originals of {} revisits", revisits.len()),
            None,
        )),
        Some(m) => checks.push(Check::failed(
            format!("revisit {m}"),
            "the record it refers to is not in the package",
        )),
    }

    // Timestamps.
    let tokens: Vec<crate::model::TimestampToken> =
        serde_json::from_value(proof["timestamps"].clone()).unwrap_or_default();
    for t in tokens {
        let item = format!(
            "timestamp from {} on {} {}",
            t.tsa_url, t.subject_kind, t.subject_id
        );
        let imprint = match t.subject_kind.as_str() {
            "checkpoint" => crate::model::Sha256::of(inclusion.checkpoint.as_bytes()),
            _ => crate::model::Sha256::of(inclusion.leaf_data.as_bytes()),
        };
        if t.imprint != imprint {
            checks.push(Check::failed(item, "the token timestamps other bytes"));
        } else if tsa_roots.is_empty() {
            checks.push(Check::ok(
                item,
                Some("not checked: pass --tsa-roots with the TSA's root certificates".into()),
            ));
        } else {
            match tlog::tsa::verify_token(&t, tsa_roots) {
                Ok(()) => checks.push(Check::ok(item, t.gen_time.clone())),
                Err(e) => checks.push(Check::failed(item, e.to_string())),
            }
        }
    }
    Ok(done(checks, Some(capture_id)))
}

struct HashWrite<'a>(&'a mut sha2::Sha256);

impl std::io::Write for HashWrite<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        sha2::Digest::update(self.0, buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
