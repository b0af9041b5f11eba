//! The archive handle: the store, its replicas, the index and the
//! configuration, and everything that reads evidence back out of them.
//!
//! Reading never trusts a byte it has not checked: a record is fetched by
//! its offset, its gzip member decoded, and its block and payload digests
//! recomputed against the bytes and against the index before anything is
//! returned (`read_resolved`, `read_resolved_small`); a `revisit` record is
//! resolved to its original's payload. `get`, `read_document` and the
//! export ([`export`]) build on that. The HTTP surface, provenance,
//! integrity checks and WACZ packages take an [`Archive`]; the capture job
//! (`pipeline`) writes through one; start-up recovery (`recovery`) is
//! called on one by the daemon and `capture`, never implicitly.

pub mod export;

use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use url::Url;

use crate::capture::CaptureError;
use crate::config::Config;
use crate::index::{self, Hit, Index, IndexError};
use crate::model::{self, Capture, CaptureId, RecordEntry, Resource, Sha256, WarcRef};
use crate::store::{Store, StoreError};
use crate::warc::{self, WarcError, WarcFileReader};

pub use export::{temp_beside, Exported};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("WARC error: {0}")]
    Warc(#[from] WarcError),
    #[error("i/o error on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The data directory cannot be written (a write-protected copy, the
    /// wrong user).
    #[error("cannot write in {path}: {source}; run custody as the user that owns the data directory (commands that only read, such as verify, captures and show, work on a write-protected copy)")]
    Unwritable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("capture interrupted by shutdown before anything was stored")]
    Interrupted,
    /// custody's own disk failed (full, read-only, gone) while capturing:
    /// not the page's fault.
    #[error("custody's own disk failed while capturing ({0}); free space in (or repair) the data directory's spool and capture again")]
    Local(String),
}

/// Creates a spool file that must not exist yet, and a second handle
/// holding an exclusive lock on it while this process lives (recovery
/// leaves a locked spool alone: a live capture or import is writing it).
pub(crate) fn create_locked(path: &Path) -> Result<(std::fs::File, std::fs::File), ArchiveError> {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_at(path))?;
    let lock = std::fs::File::open(path).map_err(io_at(path))?;
    lock.lock().map_err(io_at(path))?;
    Ok((file, lock))
}

pub(crate) fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> ArchiveError + '_ {
    move |source| ArchiveError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The store, replicas, index and configuration of one installation.
pub struct Archive {
    config: Config,
    store: Store,
    replicas: Vec<Store>,
    index: Arc<dyn Index>,
    scratch: Scratch,
    read_only: bool,
}

/// This process's own scratch directory (`spool/scratch-PID-N/`), holding
/// a locked `lock` file while the process lives: every temporary file goes
/// here, and start-up recovery removes the directories of processes that
/// are gone (their lock is free). A read-only archive's is in the system's
/// temporary directory.
struct Scratch {
    dir: PathBuf,
    _lock: Option<std::fs::File>,
}

impl Scratch {
    fn in_spool(spool: &Path) -> std::io::Result<Scratch> {
        let suffix: u32 = rand::random();
        let dir = spool.join(format!("scratch-{}-{suffix:08x}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let lock = std::fs::File::create(dir.join("lock"))?;
        lock.lock()?;
        Ok(Scratch {
            dir,
            _lock: Some(lock),
        })
    }

    fn temporary() -> std::io::Result<Scratch> {
        let dir = tempfile::Builder::new()
            .prefix("custody-scratch-")
            .tempdir()?
            .keep();
        Ok(Scratch { dir, _lock: None })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Archive {
    /// Opens the store, the replicas and the index the configuration names,
    /// for reading and writing (creating the spool and this process's
    /// scratch directory). Recovers nothing: see `recovery`.
    pub async fn open(config: Config) -> Result<Archive, ArchiveError> {
        let spool = config.spool_dir();
        let unwritable = |source| ArchiveError::Unwritable {
            path: spool.clone(),
            source,
        };
        std::fs::create_dir_all(&spool).map_err(unwritable)?;
        let scratch = Scratch::in_spool(&spool).map_err(unwritable)?;
        let (store, replicas) = Self::stores(&config)?;
        let index = index::open(&config.index_url).await?;
        Ok(Archive {
            config,
            store,
            replicas,
            index,
            scratch,
            read_only: false,
        })
    }

    /// Opens an archive for reading only: the index read-only (a
    /// write-protected copy works), nothing created in the data directory,
    /// scratch files in the system's temporary directory. Writes (custody
    /// events included) fail; `read_only()` says so.
    pub async fn open_read_only(config: Config) -> Result<Archive, ArchiveError> {
        let (store, replicas) = Self::stores(&config)?;
        let index = index::open_read_only(&config.index_url).await?;
        let scratch = Scratch::temporary().map_err(io_at(&std::env::temp_dir()))?;
        Ok(Archive {
            config,
            store,
            replicas,
            index,
            scratch,
            read_only: true,
        })
    }

    fn stores(config: &Config) -> Result<(Store, Vec<Store>), ArchiveError> {
        let store = Store::open(&config.store_url)?;
        let replicas = config
            .replica_urls
            .iter()
            .map(|u| Store::open_replica(u))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((store, replicas))
    }

    /// Opened with [`Archive::open_read_only`].
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// Where this process keeps its temporary files.
    pub fn scratch_dir(&self) -> &Path {
        &self.scratch.dir
    }

    pub fn index(&self) -> &Arc<dyn Index> {
        &self.index
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The replica stores, in `replica_urls` order.
    pub fn replicas(&self) -> &[Store] {
        &self.replicas
    }

    /// Writes a stored file to every replica. A replica that fails is
    /// logged; the next audit finds the missing copy and repairs it.
    pub async fn replicate(&self, path: &Path, sha256: Sha256, bytes: u64) {
        self.replicate_at(&crate::store::warc_key(&sha256), path, sha256, bytes)
            .await
    }

    /// [`Archive::replicate`] under another content key.
    pub async fn replicate_at(&self, key: &str, path: &Path, sha256: Sha256, bytes: u64) {
        for (i, replica) in self.replicas.iter().enumerate() {
            if let Err(e) = replica
                .put_file_at(key.to_string(), path, sha256, bytes)
                .await
            {
                tracing::error!(replica = i + 1, url = %replica.redacted_url(), error = %e, "writing to a replica failed; the next audit repairs it");
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The capture a command-line id names: the whole id, or a unique
    /// beginning of it (at least 4 characters, as git takes commits).
    pub async fn resolve_capture_id(&self, given: &str) -> Result<CaptureId, ArchiveError> {
        if let Ok(id) = given.parse::<CaptureId>() {
            return Ok(id);
        }
        let prefix = given.trim().to_ascii_lowercase();
        let hexish = prefix.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        if prefix.len() < 4 || !hexish {
            return Err(ArchiveError::Invalid(format!(
                "{given:?} is not a capture id or the beginning of one (at least 4 of its characters, e.g. 0193f1e2)"
            )));
        }
        let found = self.index.capture_ids_with_prefix(&prefix, 3).await?;
        match found.as_slice() {
            [one] => Ok(one.clone()),
            [] => Err(ArchiveError::NotFound(format!(
                "no capture id begins with {prefix}; list them with `custody captures`"
            ))),
            many => Err(ArchiveError::Invalid(format!(
                "{prefix} begins more than one capture id ({}{}); give more of it",
                many.iter()
                    .take(2)
                    .map(|c| c.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                if many.len() > 2 { ", ..." } else { "" }
            ))),
        }
    }

    /// Captured URLs near `url`, for a lookup that missed: the same URL
    /// with or without a trailing slash, with the other scheme, with or
    /// without `www.` (seed URLs, at most five).
    pub async fn near_captured(&self, url: &str) -> Result<Vec<String>, ArchiveError> {
        let mut found = Vec::new();
        for variant in near_variants(url) {
            if let Some(c) = self.index.captures(Some(&variant)).await?.first() {
                if !found.contains(&c.seed_url) && found.len() < 5 {
                    found.push(c.seed_url.clone());
                }
            }
        }
        Ok(found)
    }

    /// Finds the response for `url` nearest to `at`, following archived
    /// redirects, and writes its body (content-encoding undone) to `out`.
    pub async fn get(
        &self,
        url: &str,
        at: Option<DateTime<Utc>>,
        out: &mut dyn Write,
    ) -> Result<Retrieved, ArchiveError> {
        let mut url = normalize_url(url)?;
        let mut at = at;
        for _hop in 0..=10 {
            let hit = self.index.nearest_response(&url, at).await?;
            let Some(hit) = hit else {
                let near = self.near_captured(&url).await?;
                return Err(ArchiveError::NotFound(if near.is_empty() {
                    format!(
                        "no archived response for {url}; capture it with `custody capture {url}`"
                    )
                } else {
                    format!(
                        "no archived response for {url}; captured nearby: {} (a trailing slash, scheme or www. differs)",
                        near.join(", ")
                    )
                }));
            };
            let (head, payload) = self.read_resolved(&hit).await?;
            let location = head.as_ref().and_then(|h| h.header("location"));
            let status = head.as_ref().map(|h| h.status).unwrap_or(0);
            if (300..400).contains(&status) {
                if let Some(next) = location.and_then(|l| Url::parse(&url).ok()?.join(&l).ok()) {
                    url = next.to_string();
                    at = Some(hit.record.date);
                    continue;
                }
            }
            let encoding = head.as_ref().and_then(|h| h.content_encoding());
            let mut payload = payload;
            payload
                .seek(SeekFrom::Start(0))
                .map_err(|e| ArchiveError::Io {
                    path: PathBuf::from("payload"),
                    source: e,
                })?;
            let bytes = decode_body(BufReader::new(payload), encoding.as_deref(), out)?;
            let detail = serde_json::json!({"url": url, "record": hit.record.record_id});
            self.event(&hit.capture_id, "accessed", detail).await;
            return Ok(Retrieved {
                url,
                capture_id: hit.capture_id,
                date: hit.record.date,
                status,
                bytes,
                warc_sha256: hit.warc.sha256,
            });
        }
        Err(ArchiveError::NotFound(format!(
            "more than 10 archived redirects from {url}"
        )))
    }

    /// The document a capture holds at `target` (a URL it fetched), or its
    /// page when `target` is absent: the first response of the seed's
    /// redirect chain that is not a redirect. The record's digests are
    /// checked on the way; the body comes back with content-encoding undone
    /// (at most 64 MiB).
    pub async fn read_document(
        &self,
        capture_id: &CaptureId,
        target: Option<&str>,
    ) -> Result<Document, ArchiveError> {
        let capture = self.index.capture(capture_id).await?.ok_or_else(|| {
            ArchiveError::NotFound(format!(
                "no capture {capture_id}; list them with `custody captures`"
            ))
        })?;
        let Some(warc) = capture.warc.clone() else {
            return Err(ArchiveError::NotFound(format!(
                "capture {capture_id} failed ({}) and holds no document",
                capture.error.clone().unwrap_or_default()
            )));
        };
        // What a capture step made (a media file, the rendered text or
        // DOM) is named by its URN, in a `resource` record.
        let made = target.is_some_and(|t| t.starts_with("urn:"));
        let media = target.is_some_and(|t| t.starts_with("urn:media:"));
        let url = match target {
            Some(t) if made => t.to_string(),
            Some(t) => normalize_url(t)?,
            None => capture
                .resources
                .iter()
                .find(|r| r.status.is_some_and(|s| !(300..400).contains(&s)))
                .map(|r| r.url.clone())
                .ok_or_else(|| {
                    ArchiveError::NotFound(format!("capture {capture_id} has no page response"))
                })?,
        };
        let record = self
            .index
            .records(capture_id)
            .await?
            .into_iter()
            .find(|r| {
                let kind = if made {
                    r.warc_type == "resource"
                } else {
                    matches!(r.warc_type.as_str(), "response" | "revisit")
                };
                kind && r.target_uri.as_deref() == Some(url.as_str())
            })
            .ok_or_else(|| match made {
                true => ArchiveError::NotFound(format!(
                    "capture {capture_id} has no record {url}; `custody show {capture_id}` lists what it holds"
                )),
                false => {
                    ArchiveError::NotFound(format!("capture {capture_id} has no response for {url}"))
                }
            })?;
        let hit = Hit {
            capture_id: capture_id.clone(),
            warc: warc.clone(),
            record: record.clone(),
        };
        // Read whole (every digest checked) before anything is resolved.
        let (head, mut payload) = self.read_resolved(&hit).await?;
        if media {
            // Audio or video: linked by a media fragment, never by its text.
            let mime = capture
                .media
                .as_ref()
                .and_then(|m| m.files.iter().find(|f| f.target_uri == url))
                .map(|f| f.mime.clone());
            return Ok(Document {
                content_type: mime.clone(),
                mime,
                url,
                capture,
                warc,
                record,
                body: Vec::new(),
            });
        }
        payload
            .seek(SeekFrom::Start(0))
            .map_err(io_at(Path::new("payload")))?;
        let encoding = head.as_ref().and_then(|h| h.content_encoding());
        let mut body = Vec::new();
        {
            let mut limited = LimitedWriter {
                inner: &mut body,
                left: MAX_DOCUMENT,
            };
            decode_body(BufReader::new(payload), encoding.as_deref(), &mut limited)?;
        }
        // The rendered text or DOM: typed as the browser step recorded it.
        let made_type = capture
            .browser
            .as_ref()
            .and_then(|b| b.records.iter().find(|r| r.target_uri == url))
            .map(|r| r.mime.clone());
        let bare = |t: &str| t.split(';').next().unwrap_or("").trim().to_string();
        Ok(Document {
            content_type: made_type
                .clone()
                .or_else(|| head.as_ref().and_then(|h| h.header("content-type"))),
            mime: made_type
                .as_deref()
                .map(bare)
                .or_else(|| head.as_ref().and_then(|h| h.mime())),
            url,
            capture,
            warc,
            record,
            body,
        })
    }

    /// Appends a custody event for a capture; a failure to record it is
    /// logged (the evidence itself is unaffected). Opened read-only, nothing is recorded (the CLI has said so).
    pub async fn event(&self, capture: &CaptureId, event: &str, detail: serde_json::Value) {
        if self.read_only {
            return;
        }
        let e = crate::model::CustodyEvent {
            object_kind: "capture".into(),
            object_id: capture.to_string(),
            event: event.into(),
            actor: std::env::var("USER").ok(),
            at: Utc::now(),
            outcome: "ok".into(),
            detail,
        };
        if let Err(err) = self.index.add_event(&e).await {
            tracing::error!(capture = %capture, event, error = %err, "recording a custody event failed");
        }
    }

    /// Reads a response record, or a revisit record's head with its
    /// original's payload; digests are checked on the way. The payload
    /// (transfer-encoding removed, content-encoding kept) comes back in an
    /// unlinked temporary file, positioned at its start.
    pub async fn read_resolved(
        &self,
        hit: &Hit,
    ) -> Result<(Option<warc::ResponseHead>, std::fs::File), ArchiveError> {
        let (head, payload) = self.read_response(hit).await?;
        if hit.record.warc_type != "revisit" {
            return Ok((head, payload));
        }
        let original = self.original_in(&hit.capture_id, &hit.record).await?;
        let (_, payload) = self.read_response(&original).await?;
        Ok((head, payload))
    }

    /// [`Archive::read_resolved`] for small records, in memory: no spool
    /// files. `None` when the stored record is larger than `max` bytes or
    /// its payload grows past `max` (read it with `read_resolved`).
    pub async fn read_resolved_small(
        &self,
        hit: &Hit,
        max: u64,
    ) -> Result<Option<SmallRecord>, ArchiveError> {
        let Some((head, payload)) = self.read_small(hit, max).await? else {
            return Ok(None);
        };
        if hit.record.warc_type != "revisit" {
            return Ok(Some((head, payload)));
        }
        let original = self.original_in(&hit.capture_id, &hit.record).await?;
        Ok(self
            .read_small(&original, max)
            .await?
            .map(|(_, payload)| (head, payload)))
    }

    /// One record fetched into memory and checked as `read_record` checks.
    async fn read_small(&self, hit: &Hit, max: u64) -> Result<Option<SmallRecord>, ArchiveError> {
        if hit.record.length > max {
            return Ok(None);
        }
        let mut raw = Vec::with_capacity(hit.record.length as usize);
        let range = hit.record.offset..hit.record.offset + hit.record.length;
        self.store
            .copy_range_to(&hit.warc.key, range, &mut raw)
            .await?;
        let indexed = hit.record.clone();
        let parse = move || -> Result<Option<SmallRecord>, ArchiveError> {
            let mut reader = WarcFileReader::new(std::io::Cursor::new(raw));
            let mut payload = Vec::new();
            let mut too_large = false;
            let record = reader
                .next_record(&mut |piece| {
                    if payload.len() as u64 + piece.len() as u64 > max {
                        too_large = true;
                    } else {
                        payload.extend_from_slice(piece);
                    }
                })?
                .ok_or_else(|| {
                    ArchiveError::Warc(WarcError::Malformed(
                        "no record at the indexed offset".into(),
                    ))
                })?;
            check_read(&record, &indexed)?;
            if too_large {
                return Ok(None);
            }
            Ok(Some((record.http.and_then(|h| h.head), payload)))
        };
        // Small records are checked in place; larger ones off the runtime.
        if hit.record.length <= 64 * 1024 {
            parse()
        } else {
            tokio::task::spawn_blocking(parse)
                .await
                .map_err(|e| ArchiveError::Internal(e.to_string()))?
        }
    }

    /// The full response a revisit record of `capture` refers to: for an
    /// import, the original its log leaf names (resolved when the file
    /// arrived: its revisits may name their original by URL and date
    /// only, or a URL other than their own); else as [`Archive::original_of`].
    pub async fn original_in(
        &self,
        capture: &CaptureId,
        revisit: &RecordEntry,
    ) -> Result<Hit, ArchiveError> {
        if let Some(c) = self.index.capture(capture).await? {
            let logged = c
                .import
                .as_ref()
                .and_then(|i| i.revisits.iter().find(|r| r.record == revisit.record_id));
            if let Some(r) = logged {
                if let Some(hit) = self.index.record_hit(&r.original).await? {
                    return Ok(hit);
                }
            }
        }
        self.original_of(revisit).await
    }

    /// The full response a revisit record refers to.
    pub async fn original_of(&self, revisit: &RecordEntry) -> Result<Hit, ArchiveError> {
        let missing = || {
            ArchiveError::NotFound(format!(
                "the original of revisit record {} ({}) is not in the index",
                revisit.record_id,
                revisit.target_uri.as_deref().unwrap_or("?")
            ))
        };
        let (Some(url), Some(digest)) = (&revisit.target_uri, revisit.payload_digest) else {
            return Err(missing());
        };
        self.index
            .original_response(url, digest)
            .await?
            .ok_or_else(missing)
    }

    /// Reads one response record by its offset and checks its digests.
    async fn read_response(
        &self,
        hit: &Hit,
    ) -> Result<(Option<warc::ResponseHead>, std::fs::File), ArchiveError> {
        let (head, payload, _) = self.read_record(hit, true).await?;
        Ok((head, payload.expect("payload kept")))
    }

    /// Fetches one record by its offset and checks its digests; returns its
    /// response head, its payload (when `keep_payload`), and the record's
    /// bytes as stored (gzip member), positioned at the start.
    async fn read_record(
        &self,
        hit: &Hit,
        keep_payload: bool,
    ) -> Result<
        (
            Option<warc::ResponseHead>,
            Option<std::fs::File>,
            std::fs::File,
        ),
        ArchiveError,
    > {
        let scratch = self.scratch_dir();
        let (file, path) = tempfile::Builder::new()
            .prefix("record-")
            .tempfile_in(scratch)
            .map_err(io_at(scratch))?
            .into_parts();
        let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
        let range = hit.record.offset..hit.record.offset + hit.record.length;
        self.store
            .copy_range_to(&hit.warc.key, range, &mut out)
            .await?;
        let record_file = out.into_inner().into_std().await;
        drop(path); // unlinked; the handle keeps the bytes
        let indexed = hit.record.clone();
        let scratch = scratch.to_path_buf();
        tokio::task::spawn_blocking(move || -> Result<_, ArchiveError> {
            let mut record_file = record_file;
            record_file
                .seek(SeekFrom::Start(0))
                .map_err(io_at(Path::new("record")))?;
            let mut payload = match keep_payload {
                true => Some(tempfile::tempfile_in(&scratch).map_err(io_at(&scratch))?),
                false => None,
            };
            let mut reader = WarcFileReader::new(BufReader::new(&mut record_file));
            let mut write_err = None;
            let mut sink_writer = payload.as_mut().map(BufWriter::new);
            let record = reader
                .next_record(&mut |piece| {
                    if let (None, Some(w)) = (&write_err, sink_writer.as_mut()) {
                        if let Err(e) = w.write_all(piece) {
                            write_err = Some(e);
                        }
                    }
                })?
                .ok_or_else(|| {
                    ArchiveError::Warc(WarcError::Malformed(
                        "no record at the indexed offset".into(),
                    ))
                })?;
            if let Some(e) = write_err {
                return Err(io_at(Path::new("payload"))(e));
            }
            if let Some(w) = sink_writer.as_mut() {
                w.flush().map_err(io_at(Path::new("payload")))?;
            }
            drop(sink_writer);
            drop(reader);
            check_read(&record, &indexed)?;
            record_file
                .seek(SeekFrom::Start(0))
                .map_err(io_at(Path::new("record")))?;
            Ok((record.http.and_then(|h| h.head), payload, record_file))
        })
        .await
        .map_err(|e| ArchiveError::Internal(e.to_string()))?
    }
}

/// A record read in memory: its response head and payload (content-encoding
/// kept).
pub type SmallRecord = (Option<warc::ResponseHead>, Vec<u8>);

/// A record read back must match its own digests and the payload digest
/// the index holds for it.
fn check_read(
    record: &crate::warc::ScannedRecord,
    indexed: &RecordEntry,
) -> Result<(), ArchiveError> {
    record.verify_digests()?;
    if let Some(detail) = record.differs_from_index(indexed) {
        return Err(ArchiveError::Warc(WarcError::NotAsIndexed {
            record_id: record.head.record_id().to_string(),
            detail,
        }));
    }
    Ok(())
}

/// The payload digest of a capture's page: the first response of the
/// seed's redirect chain that is not a redirect.
pub fn page_resource(resources: &[Resource]) -> Option<&Resource> {
    resources
        .iter()
        .find(|r| r.status.is_some_and(|s| !(300..400).contains(&s)))
}

/// The near forms of a URL a reader may have meant (see
/// [`Archive::near_captured`]).
pub fn near_variants(url: &str) -> Vec<String> {
    let Ok(u) = Url::parse(url) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut slash = u.clone();
    let path = u.path().to_string();
    if path.len() > 1 && path.ends_with('/') {
        slash.set_path(path.trim_end_matches('/'));
    } else if !path.ends_with('/') {
        slash.set_path(&format!("{path}/"));
    }
    out.push(slash);
    let mut scheme = u.clone();
    let other = if u.scheme() == "https" {
        "http"
    } else {
        "https"
    };
    if scheme.set_scheme(other).is_ok() {
        out.push(scheme);
    }
    if let Some(host) = u.host_str() {
        let mut www = u.clone();
        let toggled = match host.strip_prefix("www.") {
            Some(bare) => bare.to_string(),
            None => format!("www.{host}"),
        };
        if www.set_host(Some(&toggled)).is_ok() {
            out.push(www);
        }
    }
    out.into_iter()
        .map(|v| v.to_string())
        .filter(|v| v != url)
        .collect()
}

/// What the seed's page answered: its HTTP status, or `None` when no
/// response came or its redirects never reached a page (a loop, or more
/// hops than `max_redirects`).
pub fn page_status(c: &Capture) -> Option<u16> {
    page_resource(&c.resources).and_then(|r| r.status)
}

/// A capture's outcome in words, as every list shows it: `ok (HTTP 200)`,
/// `ok (HTTP 404)` (a page that answered "not found" is captured, and says
/// so), `ok (no final page: ...)`, or `failed: REASON`; an import says
/// `imported (HTTP 200)`: another tool captured it.
pub fn outcome(c: &Capture) -> String {
    if c.import.is_some() {
        return match page_status(c) {
            Some(s) => format!("imported (HTTP {s})"),
            None => "imported".into(),
        };
    }
    match (&c.status, page_status(c)) {
        (model::CaptureStatus::Ok, Some(s)) => format!("ok (HTTP {s})"),
        (model::CaptureStatus::Ok, None) => {
            "ok (no final page: the redirects never reached one)".to_string()
        }
        (model::CaptureStatus::Failed, _) => match &c.error {
            Some(e) => format!("failed: {e}"),
            None => "failed".to_string(),
        },
    }
}

/// Largest document body read for text (quotes, diffs).
const MAX_DOCUMENT: usize = 64 * 1024 * 1024;

/// An archived document, read back and checked.
#[derive(Clone, Debug)]
pub struct Document {
    pub capture: Capture,
    pub warc: WarcRef,
    pub record: RecordEntry,
    pub url: String,
    pub content_type: Option<String>,
    pub mime: Option<String>,
    /// The payload with content-encoding undone.
    pub body: Vec<u8>,
}

/// Takes at most `left` bytes and then says the rest is too large.
struct LimitedWriter<'a> {
    inner: &'a mut Vec<u8>,
    left: usize,
}

impl Write for LimitedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.left {
            return Err(std::io::Error::other("document larger than 64 MiB"));
        }
        self.left -= buf.len();
        self.inner.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One capture with everything the index holds about it, as `show`
/// presents it.
#[derive(Clone, Debug, Serialize)]
pub struct CaptureDetail {
    #[serde(flatten)]
    pub capture: Capture,
    #[serde(rename = "records_detail")]
    pub records: Vec<RecordEntry>,
    pub events: Vec<model::CustodyEvent>,
    /// The evidence links into this capture.
    #[serde(rename = "claims")]
    pub links: Vec<model::EvidenceLink>,
    /// RFC 3161 tokens on the capture's manifest and on the first signed
    /// checkpoint that holds its leaf.
    pub timestamps: Vec<model::TimestampToken>,
}

impl Archive {
    /// A capture with its records, custody events and links.
    pub async fn capture_detail(&self, id: &CaptureId) -> Result<CaptureDetail, ArchiveError> {
        let capture = self.index.capture(id).await?.ok_or_else(|| {
            ArchiveError::NotFound(format!(
                "no capture {id}; list them with `custody captures`"
            ))
        })?;
        let filter = index::LinkFilter {
            capture_id: Some(id.clone()),
            ..Default::default()
        };
        Ok(CaptureDetail {
            records: self.index.records(id).await?,
            events: self.index.events("capture", id.as_str()).await?,
            links: self.index.links(&filter).await?,
            timestamps: self.capture_timestamps(id).await?,
            capture,
        })
    }

    /// The RFC 3161 tokens that date a capture: on its manifest, and on the
    /// first signed checkpoint that holds its leaf.
    pub async fn capture_timestamps(
        &self,
        id: &CaptureId,
    ) -> Result<Vec<model::TimestampToken>, ArchiveError> {
        let mut tokens = self.index.timestamp_tokens("capture", id.as_str()).await?;
        let leaves = self.index.log_leaves_of("capture", id.as_str()).await?;
        if let Some(l) = leaves.first() {
            let checkpoints = self.index.checkpoints().await?;
            if let Some(cp) = checkpoints.iter().find(|cp| cp.tree_size > l.index) {
                tokens.extend(
                    self.index
                        .timestamp_tokens("checkpoint", &cp.tree_size.to_string())
                        .await?,
                );
            }
        }
        Ok(tokens)
    }

    /// How a capture's time is vouched for, in words: its tokens, or that
    /// none came yet, or that no TSA is configured (so the time rests on
    /// custody's own signature).
    pub fn timestamp_status(&self, tokens: &[model::TimestampToken]) -> Vec<String> {
        if tokens.is_empty() {
            let why = if self.config.timestamps.tsa_urls.is_empty() {
                "not configured (no TSA in [timestamps] tsa_urls): the time rests on custody's own signature"
            } else {
                "none yet"
            };
            return vec![why.to_string()];
        }
        tokens
            .iter()
            .map(|t| {
                format!(
                    "{} {} from {} ({})",
                    t.subject_kind,
                    t.subject_id,
                    t.tsa_url,
                    t.gen_time.as_deref().unwrap_or("-")
                )
            })
            .collect()
    }
}

/// What `get` found.
#[derive(Clone, Debug, Serialize)]
pub struct Retrieved {
    pub url: String,
    pub capture_id: CaptureId,
    #[serde(with = "model::rfc3339")]
    pub date: DateTime<Utc>,
    pub status: u16,
    pub bytes: u64,
    pub warc_sha256: Sha256,
}

/// The URL as the index stores it (parsed and re-serialised, no fragment).
pub fn normalize_url(raw: &str) -> Result<String, ArchiveError> {
    if let Some(hint) = schemeless_hint(raw) {
        return Err(ArchiveError::Invalid(hint));
    }
    let mut url = Url::parse(raw.trim())
        .map_err(|e| ArchiveError::Invalid(format!("{raw:?} is not a valid URL ({e})")))?;
    url.set_fragment(None);
    Ok(url.to_string())
}

/// For a URL typed without its scheme (`example.org/x`, `localhost:8080/x`:
/// a parse error, or a host read as the scheme), "did you mean http://...".
pub fn schemeless_hint(raw: &str) -> Option<String> {
    let raw = raw.trim();
    if raw.contains("://") {
        return None;
    }
    let host_as_scheme = Url::parse(raw).map_or(true, |u| {
        u.scheme().contains('.') || u.scheme() == "localhost"
    });
    let guess = Url::parse(&format!("http://{raw}")).ok()?;
    let host_like = guess
        .host_str()
        .is_some_and(|h| h.contains('.') || h == "localhost");
    (host_as_scheme && host_like).then(|| {
        format!(
            "{raw:?} has no scheme; did you mean {guess} (or https://{})?",
            guess.as_str().trim_start_matches("http://")
        )
    })
}

/// Parses `--at`: 4 to 14 digits of `YYYYMMDDhhmmss`, missing parts taken as
/// the start of the period (as Wayback timestamps are read).
pub fn parse_at(s: &str) -> Result<DateTime<Utc>, ArchiveError> {
    let bad = || {
        ArchiveError::Invalid(format!(
            "--at {s:?} is not a timestamp; use YYYYMMDDhhmmss, e.g. 20161129100400"
        ))
    };
    if !(4..=14).contains(&s.len()) || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let full = format!("{s}{}", &"00000101000000"[s.len()..]);
    chrono::NaiveDateTime::parse_from_str(&full, "%Y%m%d%H%M%S")
        .map(|t| t.and_utc())
        .map_err(|_| bad())
}

/// Writes `body` to `out` with its content-encoding undone; returns the
/// bytes written.
pub fn decode_body(
    mut body: impl Read,
    encoding: Option<&str>,
    out: &mut dyn Write,
) -> Result<u64, ArchiveError> {
    let io = |e: std::io::Error| ArchiveError::Io {
        path: PathBuf::from("archived body"),
        source: e,
    };
    let mut out = CountingWriter {
        inner: out,
        count: 0,
    };
    match encoding {
        Some("gzip") | Some("x-gzip") => {
            std::io::copy(&mut flate2::read::MultiGzDecoder::new(body), &mut out).map_err(io)?;
        }
        Some("deflate") => {
            let mut raw = Vec::new();
            body.read_to_end(&mut raw).map_err(io)?;
            if std::io::copy(&mut flate2::read::ZlibDecoder::new(&raw[..]), &mut out).is_err() {
                out.count = 0;
                std::io::copy(&mut flate2::read::DeflateDecoder::new(&raw[..]), &mut out)
                    .map_err(io)?;
            }
        }
        _ => {
            std::io::copy(&mut body, &mut out).map_err(io)?;
        }
    }
    out.flush().map_err(io)?;
    Ok(out.count)
}

struct CountingWriter<'a> {
    inner: &'a mut dyn Write,
    count: u64,
}

impl Write for CountingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        #[allow(
            clippy::disallowed_methods,
            reason = "a Write that forwards: it counts what the inner writer took"
        )]
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_accepts_wayback_prefixes() {
        assert_eq!(
            model::timestamp14(&parse_at("20161129100400").unwrap()),
            "20161129100400"
        );
        assert_eq!(
            model::timestamp14(&parse_at("2016").unwrap()),
            "20160101000000"
        );
        assert_eq!(
            model::timestamp14(&parse_at("201611").unwrap()),
            "20161101000000"
        );
        assert!(parse_at("2016-11-29").is_err());
        assert!(parse_at("20161399").is_err());
    }
}
