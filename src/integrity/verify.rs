//! `verify CAPTURE` and `verify --all`: everything about a capture
//! recomputed from the store and the index, and the index against the log.
//!
//! A capture's WARC is streamed from the store once (no scratch copy, so a
//! full or read-only disk does not make healthy evidence fail): the whole
//! file is hashed while every record is read at its offset, its digests
//! recomputed, and every field the index keeps of it (type, target, time,
//! status, type of payload, digests, place) compared with the bytes. The
//! capture's row, resources and records are then compared with its log
//! leaf field by field, so an edited row is named. `verify --all` does
//! this for every capture and compares every other logged row (links,
//! claims, custody events, fixity checks, passage checks, checkpoints)
//! with the log (see [`super::rows`]).

use std::io::{BufReader, Read};

use serde::Serialize;
use serde_json::Value;

use super::Check;
use crate::archive::{Archive, ArchiveError};
use crate::model::{Capture, CaptureId, RecordEntry, Sha256};
use crate::tlog::{self, LogKey};
use crate::warc::{ScannedRecord, WarcFileReader};

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
        match archive.store().blocking_reader(&warc.key).await {
            Err(e) => checks.push(Check::failed(item, e.to_string())),
            Ok(reader) => {
                let (capture2, records2) = (capture.clone(), records.clone());
                let found = tokio::task::spawn_blocking(move || {
                    stream_records(reader, &capture2, &records2)
                })
                .await
                .map_err(|e| ArchiveError::Internal(e.to_string()))??;
                checks.extend(found);
            }
        }
    }
    if let Some(import) = &capture.import {
        checks.extend(check_import(archive, &capture, import, &records).await?);
    }
    checks.extend(check_leaf(archive, key, &capture, &records).await?);
    checks.extend(check_captured_event(archive, &capture).await?);
    Ok(CaptureVerification {
        capture_id: id.clone(),
        ok: checks.iter().all(|c| c.ok),
        checks,
    })
}

/// Reads `source` (the stored WARC) once: hashes every byte, and checks
/// every record against the index as it passes. Only failures to *read* the
/// store (not the bytes it returns) are errors.
fn stream_records(
    source: Box<dyn Read + Send>,
    capture: &Capture,
    records: &[RecordEntry],
) -> Result<Vec<Check>, ArchiveError> {
    use sha2::Digest;
    let warc = capture.warc.as_ref().expect("a capture with a WARC");
    let mut hashing = Hashing {
        inner: source,
        hasher: sha2::Sha256::new(),
        bytes: 0,
    };
    let mut checks = Vec::new();
    let mut manifest = None;
    let mut bad = 0usize;
    let mut next = 0usize;
    // An import's records with problems found on arrival: held to their
    // bytes (the digests the index committed to), not to what they say.
    let known_damage: std::collections::HashSet<&str> = capture
        .import
        .iter()
        .flat_map(|i| i.problems.iter().filter_map(|p| p.record.as_deref()))
        .collect();
    {
        let mut reader = WarcFileReader::new(BufReader::with_capacity(1 << 20, &mut hashing));
        if capture.import.is_some() {
            reader = reader.lenient_http();
        }
        loop {
            let want_block = records.get(next).is_some_and(|r| r.warc_type == "metadata");
            let mut block = Vec::new();
            let read = reader.next_record(&mut |piece| {
                if want_block && block.len() < 64 << 20 {
                    block.extend_from_slice(piece);
                }
            });
            let rec = match read {
                Ok(Some(rec)) => rec,
                Ok(None) => break,
                Err(crate::warc::WarcError::Io(e)) if !is_data_error(&e) => {
                    return Err(ArchiveError::Io {
                        path: warc.key.clone().into(),
                        source: e,
                    })
                }
                Err(e) => {
                    bad += 1;
                    let at = records.get(next).map(record_item).unwrap_or_default();
                    checks.push(Check::failed(
                        if at.is_empty() { "records".into() } else { at },
                        format!("unreadable: {e}"),
                    ));
                    // Carry on at the next record the index names: one
                    // damaged record does not hide the state of the rest.
                    next += 1;
                    let resumed = match records.get(next) {
                        Some(r) => reader.skip_to(r.offset).map_err(|e| ArchiveError::Io {
                            path: warc.key.clone().into(),
                            source: e,
                        })?,
                        None => false,
                    };
                    if resumed {
                        continue;
                    }
                    break;
                }
            };
            match records.get(next) {
                None => {
                    bad += 1;
                    checks.push(Check::failed(
                        format!("record {} at offset {}", rec.head.record_id(), rec.offset),
                        "in the WARC but not in the index",
                    ));
                }
                Some(r) => {
                    let known = known_damage.contains(r.record_id.as_str());
                    if let Some(p) = record_problem(&rec, r, known) {
                        bad += 1;
                        checks.push(Check::failed(record_item(r), p));
                    } else {
                        if let Some(note) = rec.chunked_note() {
                            checks.push(Check::ok(record_item(r), Some(note)));
                        }
                        if known {
                            checks.push(Check::ok(
                                record_item(r),
                                Some("as imported: its problems were recorded when the file arrived (see the import), and its bytes are unchanged since".into()),
                            ));
                        }
                        if want_block {
                            manifest = Some(std::mem::take(&mut block));
                        }
                    }
                }
            }
            next += 1;
        }
    }
    // Whatever the records did, the whole object is hashed.
    std::io::copy(&mut hashing, &mut std::io::sink()).map_err(|e| ArchiveError::Io {
        path: warc.key.clone().into(),
        source: e,
    })?;
    let (sha, bytes) = (Sha256::from_hasher(hashing.hasher), hashing.bytes);
    let item = format!("WARC file {}", warc.key);
    if sha != warc.sha256 || bytes != warc.bytes {
        checks.insert(
            0,
            Check::failed(
                item,
                format!(
                    "{bytes} bytes hashing to {sha}; the index says {} bytes, {}",
                    warc.bytes, warc.sha256
                ),
            ),
        );
    } else {
        checks.insert(0, Check::ok(item, Some(format!("sha256 {sha}"))));
    }
    for r in records.iter().skip(next) {
        bad += 1;
        checks.push(Check::failed(
            record_item(r),
            format!("no record at offset {}", r.offset),
        ));
    }
    if bad == 0 {
        checks.push(Check::ok(
            format!("{} records", records.len()),
            Some("every digest and field matches the bytes and the index".into()),
        ));
    }
    checks.push(manifest_check(manifest, capture, bad));
    Ok(checks)
}

/// An import: the file as received is still what arrived, the access copy
/// holds exactly the record bytes the log committed to, and reading the
/// file again gives those bytes (the copy is the file's, record for
/// record).
async fn check_import(
    archive: &Archive,
    capture: &Capture,
    import: &crate::model::ImportInfo,
    records: &[RecordEntry],
) -> Result<Vec<Check>, ArchiveError> {
    let mut checks = Vec::new();
    let file = &import.file;
    let item = format!("file as received {}", file.key);
    let original =
        match super::download_to_spool(archive, archive.store(), &file.key, "verify-import-").await
        {
            Err(e) => {
                checks.push(Check::failed(item, e.to_string()));
                None
            }
            Ok(d) if d.sha256 != file.sha256 => {
                checks.push(Check::failed(
                    item,
                    format!(
                        "its content hashes to {}, not {} as logged",
                        d.sha256, file.sha256
                    ),
                ));
                None
            }
            Ok(d) => {
                checks.push(Check::ok(
                    item,
                    Some(format!(
                        "sha256 {}, as received {}",
                        file.sha256,
                        crate::model::rfc3339_utc(&import.received_at)
                    )),
                ));
                Some(d)
            }
        };
    let want = import.content_sha256;
    let warc = capture
        .warc
        .as_ref()
        .expect("an import has its access copy");
    let (from, to) = match (records.get(1), records.last()) {
        (Some(a), Some(b)) if records.len() >= 3 => (a.offset, b.offset),
        _ => (0, 0),
    };
    let copy =
        super::download_to_spool(archive, archive.store(), &warc.key, "verify-access-").await?;
    let kind = crate::import::scan::Kind::from_ext(&import.format);
    let (copy_path, original_path) = (
        copy.path.to_path_buf(),
        original.as_ref().map(|d| d.path.to_path_buf()),
    );
    let (in_copy, in_file) = tokio::task::spawn_blocking(move || {
        let in_copy =
            crate::import::scan::access_content(&copy_path, from, to).map_err(|e| e.to_string());
        let in_file = original_path.map(|p| crate::import::scan::content_of(&p, kind));
        (in_copy, in_file)
    })
    .await
    .map_err(|e| ArchiveError::Internal(e.to_string()))?;
    drop(copy);
    let item = "imported records in the access copy".to_string();
    checks.push(match in_copy {
        Ok(d) if d == want => Check::ok(item, Some(format!("their bytes hash to {d}, as logged"))),
        Ok(d) => Check::failed(
            item,
            format!("their bytes hash to {d}; the log says {want}"),
        ),
        Err(e) => Check::failed(item, format!("unreadable: {e}")),
    });
    let item = "the file as received, read again".to_string();
    match in_file {
        None => {}
        Some(Ok(d)) if d == want => checks.push(Check::ok(
            item,
            Some("gives the same record bytes as the access copy".into()),
        )),
        Some(Ok(d)) => checks.push(Check::failed(
            item,
            format!("gives record bytes hashing to {d}; the access copy's are {want}"),
        )),
        Some(Err(e)) => checks.push(Check::failed(item, e)),
    }
    Ok(checks)
}

/// A read error that is about the bytes (damaged gzip), not the store.
fn is_data_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::InvalidData
            | std::io::ErrorKind::InvalidInput
            | std::io::ErrorKind::UnexpectedEof
    )
}

fn manifest_check(manifest: Option<Vec<u8>>, capture: &Capture, bad: usize) -> Check {
    let (id, seed) = (&capture.id, &capture.seed_url);
    match manifest.map(|m| serde_json::from_slice::<Value>(&m)) {
        Some(Ok(m)) if m["capture_id"] == id.as_str() && m["seed_url"] == seed.as_str() => {
            Check::ok("manifest", None)
        }
        Some(Ok(m)) => Check::failed(
            "manifest",
            format!(
                "names capture {} of {}, not {id} of {seed}",
                m["capture_id"], m["seed_url"]
            ),
        ),
        Some(Err(e)) => Check::failed("manifest", format!("not JSON: {e}")),
        None if bad == 0 => Check::failed("manifest", "no manifest record"),
        None => Check::failed("manifest", "not read: see the records above"),
    }
}

/// `record <id> (<type> <target>)`.
pub(super) fn record_item(r: &RecordEntry) -> String {
    format!(
        "record {} ({} {})",
        r.record_id,
        r.warc_type,
        r.target_uri.as_deref().unwrap_or("-")
    )
}

/// What is wrong with a record read at the index's offset: its place,
/// its own digests, and every field the index keeps of it.
fn record_problem(rec: &ScannedRecord, r: &RecordEntry, known_damage: bool) -> Option<String> {
    if rec.offset != r.offset || rec.length != r.length {
        return Some(format!(
            "the index places it at {}+{}, the WARC has a record at {}+{}",
            r.offset, r.length, rec.offset, rec.length
        ));
    }
    if !known_damage {
        if let Some(e) = &rec.http_error {
            return Some(e.clone());
        }
        if let Err(e) = rec.verify_digests() {
            return Some(e.to_string());
        }
    }
    rec.differs_from_index(r)
}

/// A reader that hashes and counts what passes through.
struct Hashing {
    inner: Box<dyn Read + Send>,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl Read for Hashing {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        sha2::Digest::update(&mut self.hasher, &buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// The first place two JSON values differ, as a path (`records[3].date`)
/// with both values; `None` when they are equal.
pub(super) fn first_difference(a: &Value, b: &Value, path: &str) -> Option<(String, Value, Value)> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                let vb = y.get(k).unwrap_or(&Value::Null);
                let sub = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if let Some(d) = first_difference(va, vb, &sub) {
                    return Some(d);
                }
            }
            y.iter()
                .find(|(k, _)| !x.contains_key(*k))
                .map(|(k, v)| (format!("{path}.{k}"), Value::Null, v.clone()))
        }
        (Value::Array(x), Value::Array(y)) => {
            for (i, va) in x.iter().enumerate() {
                let vb = y.get(i).unwrap_or(&Value::Null);
                if let Some(d) = first_difference(va, vb, &format!("{path}[{i}]")) {
                    return Some(d);
                }
            }
            (y.len() > x.len()).then(|| {
                (
                    format!("{path}[{}]", x.len()),
                    Value::Null,
                    y[x.len()].clone(),
                )
            })
        }
        _ => (a != b).then(|| (path.to_string(), a.clone(), b.clone())),
    }
}

/// What differs between the index's rows (encoded as a leaf would be) and
/// the log's leaf, named: the record or resource, the field, both values.
fn describe_capture_difference(
    index: &str,
    logged: &str,
    capture: &Capture,
    records: &[RecordEntry],
) -> Option<String> {
    let (a, b): (Value, Value) = (
        serde_json::from_str(index).ok()?,
        serde_json::from_str(logged).ok()?,
    );
    let (path, ours, theirs) = first_difference(&a, &b, "")?;
    let what = if let Some(rest) = path.strip_prefix("records[") {
        let n: usize = rest.split(']').next()?.parse().ok()?;
        let field = rest.split_once("].").map(|(_, f)| f).unwrap_or("");
        let id = records
            .get(n)
            .map(|r| r.record_id.clone())
            .or_else(|| b["records"][n]["id"].as_str().map(str::to_string))
            .unwrap_or_default();
        format!("record {id}: its {field}")
    } else if let Some(rest) = path.strip_prefix("resources[") {
        let n: usize = rest.split(']').next()?.parse().ok()?;
        let field = rest.split_once("].").map(|(_, f)| f).unwrap_or("row");
        let url = capture
            .resources
            .get(n)
            .map(|r| r.url.clone())
            .or_else(|| b["resources"][n]["url"].as_str().map(str::to_string))
            .unwrap_or_default();
        format!(
            "resource {n} ({url}) of capture {}: its {field}",
            capture.id
        )
    } else {
        format!("capture {}: its {path}", capture.id)
    };
    Some(format!(
        "{what} is {ours} in the index, {theirs} in the log"
    ))
}

/// The capture's leaf: present once, equal to the index's rows (every
/// field of a version 2 leaf; what a version 1 leaf holds otherwise), and
/// included in the latest checkpoint that covers it; the timestamps of
/// that checkpoint and of the capture.
async fn check_leaf(
    archive: &Archive,
    key: &LogKey,
    capture: &Capture,
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
    if leaves.len() > 1 {
        checks.push(Check::failed(
            format!("log leaf {}", leaves[1].index),
            format!("capture {} is in the log more than once", capture.id),
        ));
    }
    let version = tlog::leaf::capture_leaf_version(&leaf.data);
    let expected = tlog::leaf::capture_leaf_as(version, capture, records);
    let item = format!("log leaf {}", leaf.index);
    if expected.data != leaf.data {
        let detail = describe_capture_difference(&expected.data, &leaf.data, capture, records)
            .unwrap_or_else(|| "the logged capture differs from the index's".into());
        checks.push(Check::failed(item, detail));
    } else if version < 2 {
        checks.push(Check::ok(
            item,
            Some("a version 1 leaf: record times, statuses, types of payload, resources and the schedule are not in the log; they are checked against the WARC's bytes".into()),
        ));
    } else {
        checks.push(Check::ok(item, None));
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
    let subjects = [
        (
            "checkpoint",
            checkpoint.tree_size.to_string(),
            Sha256::of(checkpoint.note.as_bytes()),
        ),
        (
            "capture",
            capture.id.to_string(),
            Sha256::of(leaf.data.as_bytes()),
        ),
    ];
    for (kind, subject, imprint) in subjects {
        checks.extend(check_timestamps(archive, kind, &subject, imprint).await?);
    }
    Ok(checks)
}

/// The timestamp tokens of one subject: each timestamps `imprint` and
/// chains to the configured roots. A check that custody itself could not
/// run (no openssl, no scratch space) is an error, not a failed token.
async fn check_timestamps(
    archive: &Archive,
    kind: &str,
    subject: &str,
    imprint: Sha256,
) -> Result<Vec<Check>, ArchiveError> {
    let roots = archive.config().timestamps.roots.clone();
    let mut checks = Vec::new();
    for token in archive.index().timestamp_tokens(kind, subject).await? {
        let item = format!("timestamp from {} on {kind} {subject}", token.tsa_url);
        if token.imprint != imprint {
            checks.push(Check::failed(item, "the token timestamps other bytes"));
            continue;
        }
        let (t, r) = (token.clone(), roots.clone());
        let scratch = archive.scratch_dir().to_path_buf();
        let checked =
            tokio::task::spawn_blocking(move || tlog::tsa::verify_token(&t, &r, &scratch))
                .await
                .map_err(|e| ArchiveError::Internal(e.to_string()))?;
        match checked {
            Ok(()) => checks.push(Check::ok(item, token.gen_time.clone())),
            Err(e) if e.is_local() => return Err(ArchiveError::Internal(e.to_string())),
            Err(e) => checks.push(Check::failed(item, e.to_string())),
        }
    }
    Ok(checks)
}

/// The capture's first custody event (written with its row, so not a leaf
/// of its own) must say what the logged capture says.
async fn check_captured_event(
    archive: &Archive,
    capture: &Capture,
) -> Result<Vec<Check>, ArchiveError> {
    let events = archive
        .index()
        .events("capture", capture.id.as_str())
        .await?;
    let expected = super::rows::captured_event(capture);
    let item = format!(
        "custody event '{}' of capture {}",
        expected.event, capture.id
    );
    Ok(vec![match events.first() {
        Some(e) if *e == expected => Check::ok(item, None),
        Some(e) if e.event == expected.event => Check::failed(
            item,
            "it does not say what the logged capture says (actor, time, outcome or detail)",
        ),
        _ => Check::failed(item, "missing: the index does not hold it first"),
    }])
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

/// Verifies every capture, every checkpoint (in the index and in the
/// store), and every logged row against its leaf.
pub async fn verify_all(archive: &Archive, key: &LogKey) -> Result<AllVerification, ArchiveError> {
    let index = archive.index();
    let mut captures = Vec::new();
    for c in index.captures(None).await? {
        captures.push(verify_capture(archive, key, &c.id).await?);
    }
    let mut log = Vec::new();
    let tlog_err = |e: tlog::TlogError| ArchiveError::Internal(e.to_string());
    for c in tlog::check_log(index.as_ref(), archive.store(), key)
        .await
        .map_err(tlog_err)?
    {
        let item = format!("checkpoint {}", c.tree_size);
        log.push(match c.problem {
            None => Check::ok(item, None),
            Some(p) => Check::failed(item, p),
        });
    }
    log.extend(super::rows::check_rows(archive).await?);
    Ok(AllVerification {
        ok: captures.iter().all(|c| c.ok) && log.iter().all(|c| c.ok),
        captures,
        log,
    })
}
