//! `reindex`: an empty index rebuilt from the store alone.

use chrono::Utc;
use serde::Serialize;

use super::download_to_spool;
use crate::archive::{Archive, ArchiveError};
use crate::model::CaptureId;
use crate::tlog::{self, LogKey};

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
    /// Claim versions, links, custody events and fixity checks restored
    /// from their leaves.
    pub rows_restored: u64,
    /// Captures whose text was indexed for search.
    pub captures_searchable: u64,
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
    if !index.captures(None).await?.is_empty() || index.log_size().await? > 0 {
        return Err(ArchiveError::Invalid(
            "reindex rebuilds an empty index: move the current index aside (or point index_url at a new database) first".into(),
        ));
    }
    let mut report = ReindexReport::default();
    restore_leaves(archive, &mut report).await?;
    let size = index.log_size().await?;
    restore_checkpoints(archive, key, size, &mut report).await?;
    rebuild_warcs(archive, &mut report).await?;
    restore_failed(archive, size, &mut report).await?;
    compare_with_log(archive, &mut report).await?;
    restore_provenance(archive, size, &mut report).await?;
    match crate::search::backfill(archive).await {
        Ok(n) => report.captures_searchable = n,
        Err(e) => report.problems.push(format!(
            "indexing the text for search stopped ({e}); the daemon's next start goes on"
        )),
    }
    Ok(report)
}

/// Step 1: the log, segment by segment, as the checkpoints wrote it.
async fn restore_leaves(archive: &Archive, report: &mut ReindexReport) -> Result<(), ArchiveError> {
    let index = archive.index();
    let store = archive.store();
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
    Ok(())
}

/// The signed checkpoints in the store, each checked against the key and
/// the restored leaves.
async fn restore_checkpoints(
    archive: &Archive,
    key: Option<&LogKey>,
    size: u64,
    report: &mut ReindexReport,
) -> Result<(), ArchiveError> {
    let index = archive.index();
    let store = archive.store();
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

    Ok(())
}

/// Step 2: every WARC, rebuilt from its own records and manifest.
async fn rebuild_warcs(archive: &Archive, report: &mut ReindexReport) -> Result<(), ArchiveError> {
    let index = archive.index();
    let store = archive.store();
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
    // The logged ones first: a WARC the log never named (an attempt
    // fenced out after uploading) must not take a logged capture's
    // instant.
    let mut logged = Vec::new();
    let mut unlogged = Vec::new();
    for r in rebuilt_captures {
        let in_log = !index
            .log_leaves_of("capture", r.capture.id.as_str())
            .await?
            .is_empty();
        if in_log {
            logged.push(r);
        } else {
            unlogged.push(r);
        }
    }
    logged.sort_by_key(|r| r.capture.started_at);
    unlogged.sort_by_key(|r| r.capture.started_at);
    for r in logged {
        index.restore_capture(&r.capture, &r.records).await?;
        report.captures_rebuilt += 1;
    }
    for r in unlogged {
        match index.put_capture(&r.capture, &r.records, None).await {
            Ok(()) => {
                report.captures_rebuilt += 1;
                report.leaves_appended += 1;
            }
            Err(crate::index::IndexError::Fenced(why)) => report.problems.push(format!(
                "{}: not restored: {why}",
                crate::store::warc_key(&r.sha256)
            )),
            Err(e) => return Err(e.into()),
        }
    }

    Ok(())
}

/// Step 3: failed captures have no WARC; their leaf is all there is.
async fn restore_failed(
    archive: &Archive,
    size: u64,
    report: &mut ReindexReport,
) -> Result<(), ArchiveError> {
    let index = archive.index();
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

    Ok(())
}

/// Step 4: the rebuilt index against the log.
async fn compare_with_log(
    archive: &Archive,
    report: &mut ReindexReport,
) -> Result<(), ArchiveError> {
    let index = archive.index();
    for leaf in index.log_leaves(0, index.log_size().await?).await? {
        if leaf.kind != "capture" {
            continue;
        }
        let Ok(id) = leaf.object_id.parse::<CaptureId>() else {
            continue;
        };
        if let Some(c) = index.capture(&id).await? {
            let records = index.records(&id).await?;
            let version = tlog::leaf::capture_leaf_version(&leaf.data);
            if tlog::leaf::capture_leaf_as(version, &c, &records).data != leaf.data {
                report.problems.push(format!(
                    "log leaf {}: capture {id} as rebuilt from its WARC differs from the logged manifest",
                    leaf.index
                ));
            }
        }
    }
    Ok(())
}

/// Step 5: claims, links, custody events and fixity checks, from their
/// leaves (in log order, so each object's events keep their order); then
/// the passage checks their `rechecked` events record.
async fn restore_provenance(
    archive: &Archive,
    size: u64,
    report: &mut ReindexReport,
) -> Result<(), ArchiveError> {
    let index = archive.index();
    let mut from = 0;
    while from < size {
        let to = (from + 10_000).min(size);
        for leaf in index.log_leaves(from, to).await? {
            match index.restore_rows(&leaf).await {
                Ok(true) => report.rows_restored += 1,
                Ok(false) => {}
                Err(e) => report.problems.push(format!(
                    "log leaf {}: its row cannot be restored: {e}",
                    leaf.index
                )),
            }
            if leaf.kind == "event" && leaf.object_id.starts_with("link:") {
                restore_passage_check(archive, &leaf.data).await?;
            }
        }
        from = to;
    }
    Ok(())
}

/// A `rechecked` event of a link is the passage check it records.
async fn restore_passage_check(archive: &Archive, data: &str) -> Result<(), ArchiveError> {
    let Ok(e) = serde_json::from_str::<serde_json::Value>(data) else {
        return Ok(());
    };
    if e["event"] != "rechecked" {
        return Ok(());
    }
    let (Some(link), Some(capture)) = (
        e["detail"]["link"].as_str(),
        e["detail"]["capture"]
            .as_str()
            .and_then(|c| c.parse::<CaptureId>().ok()),
    ) else {
        return Ok(());
    };
    let Some(c) = archive.index().capture(&capture).await? else {
        return Ok(());
    };
    let check = crate::model::PassageCheck {
        link_id: link.to_string(),
        capture_id: capture,
        captured_at: c.started_at,
        present: e["outcome"] == "present",
    };
    archive.index().put_passage_check(&check).await?;
    Ok(())
}

/// A failed capture as its log leaf describes it (a version 2 leaf holds
/// its resources, schedule and change too).
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
    let text = |val: &serde_json::Value| val.as_str().map(str::to_string);
    let resources = v["resources"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|r| {
            Some(crate::model::Resource {
                url: r["url"].as_str()?.to_string(),
                status: r["status"].as_u64().and_then(|s| u16::try_from(s).ok()),
                mime: text(&r["mime"]),
                payload_sha256: r["payload"].as_str().and_then(|p| p.parse().ok()),
                bytes: r["bytes"].as_u64()?,
                truncated: text(&r["truncated"]),
                error: text(&r["error"]),
            })
        })
        .collect::<Option<Vec<_>>>()?;
    let change = match v["previous_capture"].as_str() {
        Some(p) => Some(crate::model::PageChange {
            previous_capture: p.parse().ok()?,
            changed: v["page_changed"].as_bool()?,
        }),
        None => None,
    };
    Some(crate::model::Capture {
        id: v["capture_id"].as_str()?.parse().ok()?,
        seed_url: v["seed_url"].as_str()?.to_string(),
        status: crate::model::CaptureStatus::Failed,
        error: text(&v["error"]),
        started_at: time("started_at")?,
        finished_at: time("finished_at")?,
        warc: None,
        records: v["record_count"].as_u64().unwrap_or(0),
        resources,
        schedule: text(&v["schedule"]),
        scheduled_for: time("scheduled_for"),
        change,
        import: None,
        media: None,
        browser: None,
    })
}
