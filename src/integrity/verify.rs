//! `verify CAPTURE` and `verify --all`: everything about a capture
//! recomputed from the store and the index, and the index against the log.

use std::io::{BufReader, Seek, SeekFrom};

use super::{download_to_spool, Check, Downloaded};
use crate::archive::{Archive, ArchiveError};
use crate::model::{CaptureId, RecordEntry};
use crate::tlog::{self, LogKey};
use crate::warc::WarcFileReader;
use serde::Serialize;

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
