//! Rebuilding a capture's index entries from its WARC file alone.
//!
//! Every WARC custody writes is self-describing (DESIGN.md, invariant 3):
//! the `warcinfo` record names the capture, each record carries its own
//! digests, and the closing `metadata` record holds the capture manifest
//! (seed, times, schedule, every resource with its digests and errors). This
//! module reads such a file back, checks every digest, and returns the
//! capture and record rows the index would have had. A file that ends before
//! its manifest (a capture cut off mid-write) is refused.
//!
//! The pipeline uses it to finish captures a crash interrupted after their
//! file was complete; `reindex` will use it to rebuild a lost index.

use std::io::{BufReader, Read};
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use sha2::Digest;

use crate::model::{
    self, Capture, CaptureId, CaptureStatus, RecordEntry, Resource, Sha256, WarcRef,
};
use crate::store::warc_key;
use crate::warc::{ScannedRecord, WarcError, WarcFileReader};

#[derive(Debug, thiserror::Error)]
pub enum RebuildError {
    #[error("i/o error on {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Warc(#[from] WarcError),
    #[error("the file ends before its capture manifest (the capture was cut off while writing)")]
    NoManifest,
    #[error("the capture manifest cannot be read: {0}")]
    BadManifest(String),
}

/// A capture as its WARC describes it.
#[derive(Clone, Debug)]
pub struct Rebuilt {
    pub capture: Capture,
    pub records: Vec<RecordEntry>,
    pub sha256: Sha256,
    pub bytes: u64,
}

#[derive(Deserialize)]
struct Manifest {
    custody_manifest: u32,
    capture_id: String,
    seed_url: String,
    #[serde(with = "model::rfc3339")]
    started_at: DateTime<Utc>,
    #[serde(with = "model::rfc3339")]
    finished_at: DateTime<Utc>,
    #[serde(default)]
    schedule: Option<String>,
    #[serde(default, with = "model::opt_rfc3339")]
    scheduled_for: Option<DateTime<Utc>>,
    #[serde(default)]
    previous_capture: Option<CaptureId>,
    #[serde(default)]
    page_changed: Option<bool>,
    exchanges: Vec<ManifestExchange>,
    /// An import's: the file and what checking it found.
    #[serde(default)]
    import: Option<model::ImportInfo>,
    /// The media step's, when it ran.
    #[serde(default)]
    media: Option<model::MediaInfo>,
    /// Browser mode's, when the capture was made in it.
    #[serde(default)]
    browser: Option<model::BrowserInfo>,
}

#[derive(Deserialize)]
struct ManifestExchange {
    url: String,
    status: Option<u16>,
    mime: Option<String>,
    payload_sha256: Option<Sha256>,
    payload_bytes: u64,
    truncated: Option<String>,
    error: Option<String>,
}

const MAX_MANIFEST: usize = 64 * 1024 * 1024;

/// The index entry of a record read at `offset` (`length` bytes) of its
/// file, dated `date` (its `WARC-Date`). A revisit's payload digest is the
/// one it names (when SHA-256; an import resolves the others).
pub fn entry_of(r: &ScannedRecord, offset: u64, length: u64, date: DateTime<Utc>) -> RecordEntry {
    let head = &r.head;
    let target = head.target_uri().map(str::to_string);
    let http = r.http.as_ref().and_then(|h| h.head.as_ref());
    RecordEntry {
        record_id: head.record_id().to_string(),
        warc_type: head.warc_type().to_string(),
        surt: model::surt_of_target(target.as_deref()),
        target_uri: target,
        timestamp: model::timestamp14(&date),
        date,
        mime: http.and_then(|h| h.mime()),
        status: http.map(|h| h.status),
        payload_digest: match head.warc_type() {
            "response" | "resource" => r.payload_sha256(),
            // A revisit's payload is its original's, named in a header.
            "revisit" => head.get("WARC-Payload-Digest").and_then(|d| d.parse().ok()),
            _ => None,
        },
        block_digest: r.block_sha256,
        offset,
        length,
    }
}

/// Reads `path` (a whole `.warc.gz` written by custody) back into index rows.
pub fn rebuild(path: &Path) -> Result<Rebuilt, RebuildError> {
    let io = |source| RebuildError::Io {
        path: path.display().to_string(),
        source,
    };
    let (sha256, bytes) = {
        let mut f = std::fs::File::open(path).map_err(io)?;
        let mut hasher = sha2::Sha256::new();
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = f.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            total += n as u64;
        }
        (Sha256::from_hasher(hasher), total)
    };

    let file = std::fs::File::open(path).map_err(io)?;
    // Lenient about HTTP bytes only so that an import's records (whose
    // problems its manifest lists) can be read; custody's own records are
    // held to every check below.
    let mut reader = WarcFileReader::new(BufReader::with_capacity(256 * 1024, file)).lenient_http();
    let mut records = Vec::new();
    let mut manifest: Option<(usize, Vec<u8>)> = None;
    let mut checks: Vec<Result<(), WarcError>> = Vec::new();
    loop {
        let mut content = Vec::new();
        let scanned = reader.next_record(&mut |piece| {
            if content.len() + piece.len() <= MAX_MANIFEST {
                content.extend_from_slice(piece);
            }
        })?;
        let Some(r) = scanned else { break };
        checks.push(match &r.http_error {
            Some(e) => Err(WarcError::Malformed(e.clone())),
            None => r.verify_digests(),
        });
        let head = &r.head;
        // The manifest is custody's: a JSON metadata record that names the
        // file's first record (custody's warcinfo, whose id is random) as
        // its warcinfo. An imported record cannot pass for it.
        let first_id = records.first().map(|e: &RecordEntry| e.record_id.as_str());
        if head.warc_type() == "metadata"
            && head.get("Content-Type") == Some("application/json")
            && first_id.is_some()
            && head.get("WARC-Warcinfo-ID") == first_id
        {
            manifest = Some((records.len(), content));
        }
        let date = head
            .get("WARC-Date")
            .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
            .map(|d| d.with_timezone(&Utc))
            .ok_or_else(|| {
                WarcError::Malformed(format!(
                    "record {} has no valid WARC-Date",
                    head.record_id()
                ))
            })?;
        records.push(entry_of(&r, r.offset, r.length, date));
    }
    let manifest = match manifest {
        Some((at, m)) if at + 1 == records.len() => m,
        _ => return Err(RebuildError::NoManifest),
    };
    let m: Manifest =
        serde_json::from_slice(&manifest).map_err(|e| RebuildError::BadManifest(e.to_string()))?;
    if m.custody_manifest != 1 {
        return Err(RebuildError::BadManifest(format!(
            "unknown manifest version {}",
            m.custody_manifest
        )));
    }
    // Every record's digests hold; of an import, custody's own records'
    // (the imported ones' problems were recorded when the file arrived).
    let last = checks.len().saturating_sub(1);
    for (i, check) in checks.into_iter().enumerate() {
        if m.import.is_none() || i == 0 || i == last {
            check?;
        }
    }
    if let Some(import) = &m.import {
        for r in &import.revisits {
            if let Some(e) = records.iter_mut().find(|e| e.record_id == r.record) {
                e.payload_digest = Some(r.payload_sha256);
            }
        }
    }
    let id: CaptureId = m
        .capture_id
        .parse()
        .map_err(|e: model::ParseCaptureIdError| RebuildError::BadManifest(e.to_string()))?;
    let resources = m
        .exchanges
        .into_iter()
        .map(|e| Resource {
            url: e.url,
            status: e.status,
            mime: e.mime,
            payload_sha256: e.payload_sha256,
            bytes: e.payload_bytes,
            truncated: e.truncated,
            error: e.error,
        })
        .collect();
    let capture = Capture {
        id,
        seed_url: m.seed_url,
        status: CaptureStatus::Ok,
        error: None,
        started_at: m.started_at,
        finished_at: m.finished_at,
        warc: Some(WarcRef {
            key: warc_key(&sha256),
            sha256,
            bytes,
        }),
        records: records.len() as u64,
        resources,
        schedule: m.schedule,
        scheduled_for: m.scheduled_for,
        change: m
            .previous_capture
            .map(|previous_capture| model::PageChange {
                previous_capture,
                changed: m.page_changed.unwrap_or(true),
            }),
        import: m.import,
        media: m.media,
        browser: m.browser,
    };
    Ok(Rebuilt {
        capture,
        records,
        sha256,
        bytes,
    })
}
