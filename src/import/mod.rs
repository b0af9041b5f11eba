//! `custody import`: WARC and WACZ files made by other tools, brought in
//! under the same custody and proofs as custody's own captures.
//!
//! One import, end to end:
//!
//! 1. **Received**: the file is copied into the archive's scratch
//!    directory and hashed on the way (what is stored is what was hashed,
//!    whatever happens to the file it came from), with the instant its
//!    last byte arrived.
//! 2. **Kept as received**: stored write-once under its own SHA-256
//!    (`import/<h2>/<sha256>.<ext>`), never rewritten; audit checks it.
//! 3. **Read once** ([`scan`]): every record's block and payload digests
//!    (SHA-256 or SHA-1; both readings of a chunked payload), a WACZ's
//!    listing and signature, the file's own `warcinfo`. Each record is
//!    copied byte for byte into custody's **access copy**, a `.warc.gz`
//!    with one gzip member per record, between custody's own `warcinfo`
//!    and manifest, so replay, `get`, CDX and export read it as they read
//!    a capture and never parse the file's own gzip or ZIP structure
//!    again. Problems are recorded against their record, never repaired.
//! 4. **Revisits resolved**: to originals in the file, in other imports
//!    or in custody's captures; the unresolved are listed.
//! 5. **Committed**: the access copy is stored, then the capture (marked
//!    as imported, with everything above) is indexed in one transaction
//!    with its log leaf (version 3: the file's digest, arrival, importer,
//!    stated source and findings) and its `imported` custody event. A
//!    crash before the commit leaves a spool file that recovery finishes.

pub mod scan;

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

use crate::archive::{io_at, Archive, ArchiveError};
use crate::model::{
    Capture, CaptureId, CaptureStatus, ImportInfo, ImportProblem, PendingObject, RecordEntry,
    ResolvedRevisit, Sha256, WarcRef,
};
use crate::warc::{new_record_id, records, ScannedRecord, WarcError, WarcWriter};
use scan::Kind;

/// What the importer says of a file.
#[derive(Clone, Debug, Default)]
pub struct ImportRequest {
    /// Its name as given (a path's last segment is kept).
    pub name: String,
    /// Where it came from (`--source`).
    pub source: Option<String>,
    /// Who imports it (`token:<id>`, or the local user).
    pub actor: Option<String>,
}

/// A file received into the scratch directory, hashed on the way.
pub struct Received {
    path: tempfile::TempPath,
    pub sha256: Sha256,
    pub bytes: u64,
    pub received_at: DateTime<Utc>,
    /// Its first bytes (what kind of file it is).
    first: Vec<u8>,
}

/// A file arriving: written into the archive's scratch directory and
/// hashed as its pieces come (from a file, or an HTTP request's body).
pub struct Receiver {
    path: tempfile::TempPath,
    out: tokio::io::BufWriter<tokio::fs::File>,
    hasher: sha2::Sha256,
    bytes: u64,
    first: Vec<u8>,
}

impl Receiver {
    pub fn new(archive: &Archive) -> Result<Receiver, ArchiveError> {
        let scratch = archive.scratch_dir();
        let (file, path) = tempfile::Builder::new()
            .prefix("import-")
            .tempfile_in(scratch)
            .map_err(io_at(scratch))?
            .into_parts();
        Ok(Receiver {
            path,
            out: tokio::io::BufWriter::with_capacity(1 << 20, tokio::fs::File::from_std(file)),
            hasher: sha2::Sha256::new(),
            bytes: 0,
            first: Vec::new(),
        })
    }

    /// Bytes received so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub async fn write(&mut self, piece: &[u8]) -> Result<(), ArchiveError> {
        if self.first.len() < 16 {
            let n = piece.len().min(16 - self.first.len());
            self.first.extend_from_slice(&piece[..n]);
        }
        self.hasher.update(piece);
        self.bytes += piece.len() as u64;
        self.out.write_all(piece).await.map_err(io_at(&self.path))
    }

    /// The last byte has arrived: the file is flushed and fsync'd.
    pub async fn finish(mut self) -> Result<Received, ArchiveError> {
        self.out.flush().await.map_err(io_at(&self.path))?;
        self.out
            .into_inner()
            .sync_all()
            .await
            .map_err(io_at(&self.path))?;
        Ok(Received {
            path: self.path,
            sha256: Sha256::from_hasher(self.hasher),
            bytes: self.bytes,
            // Whole seconds: the instant is shown, logged and compared as
            // RFC 3339 with second precision.
            received_at: DateTime::from_timestamp(Utc::now().timestamp(), 0)
                .unwrap_or_else(Utc::now),
            first: self.first,
        })
    }
}

/// Receives all of `input` (see [`Receiver`]).
pub async fn receive(
    archive: &Archive,
    mut input: impl AsyncRead + Unpin,
) -> Result<Received, ArchiveError> {
    let mut rx = Receiver::new(archive)?;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut buf).await.map_err(|e| ArchiveError::Io {
            path: "the file being imported".into(),
            source: e,
        })?;
        if n == 0 {
            break;
        }
        rx.write(&buf[..n]).await?;
    }
    rx.finish().await
}

/// Imports a file already received (see the module documentation).
pub async fn import(
    archive: &Archive,
    received: Received,
    request: &ImportRequest,
) -> Result<Capture, ArchiveError> {
    let name = Path::new(&request.name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| request.name.clone());
    let refuse = |why: String| ArchiveError::Invalid(format!("{name} {why}"));
    let kind = Kind::sniff(&received.first).map_err(refuse)?;
    let key = crate::store::import_key(&received.sha256, kind.ext());
    if let Some(done) = already_imported(archive, &key, received.sha256).await? {
        return Err(ArchiveError::Index(crate::index::IndexError::Conflict(
            format!(
                "{name} (sha256 {}) is already imported as capture {done}",
                received.sha256
            ),
        )));
    }
    let id = CaptureId::new();
    let spool = archive
        .config()
        .spool_dir()
        .join(format!("import-{id}.warc.gz.partial"));
    let path = received.path.to_path_buf();
    let (copy, scanned) = {
        let (spool, id) = (spool.clone(), id.clone());
        let head = AccessHead {
            id: id.clone(),
            file_sha256: received.sha256,
            name: name.clone(),
            at: received.received_at,
        };
        let max_records = archive.config().import.max_records;
        tokio::task::spawn_blocking(move || -> Result<_, ArchiveError> {
            let mut copy = AccessCopy::create(&spool, &head)?;
            let scanned = scan::scan(&path, kind, max_records, &mut copy);
            Ok((copy, scanned))
        })
        .await
        .map_err(|e| ArchiveError::Internal(e.to_string()))??
    };
    let mut scanned = match scanned {
        Ok(s) => s,
        Err(why) => {
            copy.discard();
            return Err(refuse(why));
        }
    };
    if let Err(e) = refuse_known_records(archive, &scanned.entries).await {
        copy.discard();
        return Err(e);
    }
    // The file as received, before anything that names it.
    let stored = archive
        .store()
        .put_file_at(key, &received.path, received.sha256, received.bytes)
        .await?;
    archive
        .replicate_at(&stored.key, &received.path, received.sha256, received.bytes)
        .await;
    crate::failpoint::hit("import_file_stored").await;
    let revisits = resolve_revisits(archive, &mut scanned).await?;
    let info = ImportInfo {
        file: WarcRef {
            key: stored.key,
            sha256: received.sha256,
            bytes: received.bytes,
        },
        name,
        format: kind.ext().into(),
        source: request.source.clone(),
        imported_by: request.actor.clone(),
        received_at: received.received_at,
        content_sha256: scanned.content_sha256.expect("set by scan"),
        software: std::mem::take(&mut scanned.software),
        operator: std::mem::take(&mut scanned.operator),
        signer: scanned.signer.take(),
        verified: std::mem::take(&mut scanned.verified),
        problems: std::mem::take(&mut scanned.problems),
        revisits,
    };
    let capture = capture_of(id, &scanned, info);
    commit(archive, copy, capture, scanned.entries, &spool).await
}

/// The capture an import already made of the same file, if one did.
async fn already_imported(
    archive: &Archive,
    key: &str,
    sha256: Sha256,
) -> Result<Option<CaptureId>, ArchiveError> {
    match archive.store().head(key).await {
        Err(crate::store::StoreError::NotFound(_)) => return Ok(None),
        Err(e) => return Err(e.into()),
        Ok(_) => {}
    }
    // Stored before: by an import that finished, or by one a crash cut
    // short (then it is imported again).
    Ok(archive
        .index()
        .captures(None)
        .await?
        .into_iter()
        .find(|c| c.import.as_ref().is_some_and(|i| i.file.sha256 == sha256))
        .map(|c| c.id))
}

/// Refuses records whose ids the archive holds already: the same records
/// were imported (in this file or another) or captured before.
async fn refuse_known_records(
    archive: &Archive,
    entries: &[RecordEntry],
) -> Result<(), ArchiveError> {
    for e in entries {
        if let Some(hit) = archive.index().record_hit(&e.record_id).await? {
            return Err(ArchiveError::Index(crate::index::IndexError::Conflict(format!(
                "record {} of this file is already in the archive (capture {}): the file, or one holding the same records, was imported or captured before",
                e.record_id, hit.capture_id
            ))));
        }
    }
    Ok(())
}

/// Each revisit to its original: in the file (by the record it names, or
/// by URL and payload digest), then in the archive (imports and
/// captures). The unresolved become problems.
async fn resolve_revisits(
    archive: &Archive,
    s: &mut scan::Scan,
) -> Result<Vec<ResolvedRevisit>, ArchiveError> {
    let mut out = Vec::new();
    for r in std::mem::take(&mut s.revisits) {
        let mut found = r
            .refers_to
            .as_ref()
            .and_then(|id| s.by_id.get(id).map(|p| (id.clone(), *p)));
        if found.is_none() {
            if let (Some(t), Some(d)) = (&r.target, &r.declared) {
                found = s
                    .by_target
                    .get(t)
                    .and_then(|os| {
                        os.iter().find(|o| {
                            crate::warc::reader::names_payload(d, o.payload_sha256, o.sha1)
                        })
                    })
                    .map(|o| (o.record.clone(), o.payload_sha256));
            }
        }
        if found.is_none() {
            if let Some(id) = &r.refers_to {
                found = archive
                    .index()
                    .record_hit(id)
                    .await?
                    .and_then(|h| h.record.payload_digest.map(|p| (id.clone(), p)));
            }
        }
        if found.is_none() {
            if let (Some(t), Some(d)) = (
                &r.target,
                r.declared.as_deref().and_then(|d| d.parse::<Sha256>().ok()),
            ) {
                found = archive
                    .index()
                    .original_response(t, d)
                    .await?
                    .map(|h| (h.record.record_id, d));
            }
        }
        match found {
            Some((original, payload_sha256)) => {
                if let Some(e) = s.entries.iter_mut().find(|e| e.record_id == r.record) {
                    e.payload_digest = Some(payload_sha256);
                }
                if let Some(res) = s.resources.iter_mut().find(|x| {
                    x.payload_sha256.is_none() && Some(&x.url) == r.target.as_ref()
                }) {
                    res.payload_sha256 = Some(payload_sha256);
                }
                out.push(ResolvedRevisit {
                    record: r.record,
                    original,
                    payload_sha256,
                })
            }
            None => s.problems.push(ImportProblem {
                record: Some(r.record.clone()),
                at: Some(r.at.clone()),
                problem: format!(
                    "a revisit of {} whose original is in neither this file, another import nor custody's captures: it cannot be replayed",
                    r.target.as_deref().unwrap_or("an unnamed URL")
                ),
            }),
        }
    }
    Ok(out)
}

/// The capture an import is: its times are the records' (when the other
/// tool captured them), its page the package's main page or the first
/// HTML page.
fn capture_of(id: CaptureId, s: &scan::Scan, info: ImportInfo) -> Capture {
    let dates = s.entries.iter().map(|e| e.date);
    let started_at = dates.clone().min().unwrap_or(info.received_at);
    let finished_at = dates.max().unwrap_or(info.received_at);
    let page = s
        .main_page
        .clone()
        .filter(|m| s.resources.iter().any(|r| &r.url == m))
        .or_else(|| {
            s.resources
                .iter()
                .find(|r| {
                    r.status.is_some_and(|st| (200..300).contains(&st))
                        && r.mime.as_deref().is_some_and(|m| m.contains("html"))
                })
                .map(|r| r.url.clone())
        })
        .or_else(|| s.resources.first().map(|r| r.url.clone()))
        .unwrap_or_else(|| format!("urn:custody:import:{}", info.file.sha256));
    // The page first: what lists, replay and claim links take as the
    // capture's page is its first resource that is not a redirect.
    let mut resources = s.resources.clone();
    if let Some(at) = resources.iter().position(|r| r.url == page) {
        let seed = resources.remove(at);
        resources.insert(0, seed);
    }
    Capture {
        id,
        seed_url: page,
        status: CaptureStatus::Ok,
        error: None,
        started_at,
        finished_at,
        warc: None,
        records: 0,
        resources,
        schedule: None,
        scheduled_for: None,
        change: None,
        import: Some(info),
        media: None,
        browser: None,
    }
}

/// Closes the access copy with the manifest, stores it and indexes the
/// capture with its leaf (noted as pending first, so that a death between
/// upload and commit leaves something recovery adopts).
async fn commit(
    archive: &Archive,
    copy: AccessCopy,
    mut capture: Capture,
    imported: Vec<RecordEntry>,
    spool: &Path,
) -> Result<Capture, ArchiveError> {
    let manifest = manifest_json(&capture);
    let c = capture.clone();
    let (entries, sha256, bytes) =
        tokio::task::spawn_blocking(move || copy.finish(&c, imported, &manifest))
            .await
            .map_err(|e| ArchiveError::Internal(e.to_string()))??;
    capture.records = entries.len() as u64;
    crate::failpoint::hit("import_copy_complete").await;
    let index = archive.index();
    let pending = PendingObject {
        key: crate::store::warc_key(&sha256),
        capture_id: capture.id.clone(),
        seed_url: capture.seed_url.clone(),
        schedule: None,
        scheduled_for: None,
        created_at: Utc::now(),
    };
    index.add_pending_object(&pending).await?;
    let stored = archive.store().put_file(spool, sha256, bytes).await?;
    archive.replicate(spool, sha256, bytes).await;
    capture.warc = Some(WarcRef {
        key: stored.key,
        sha256,
        bytes,
    });
    crate::failpoint::hit("import_stored").await;
    index.put_capture(&capture, &entries, None).await?;
    let _ = std::fs::remove_file(spool);
    if let Err(e) = crate::search::index_capture(archive, &capture).await {
        tracing::warn!(capture = %capture.id, error = %e, "indexing the imported text for search failed; the daemon's next start indexes it");
    }
    tracing::info!(capture = %capture.id, file = %capture.import.as_ref().map(|i| i.file.sha256.hex()).unwrap_or_default(), records = entries.len(), "file imported");
    Ok(capture)
}

/// The manifest that closes the access copy: what `rebuild` reads back
/// (the capture's rows and the import).
fn manifest_json(c: &Capture) -> Vec<u8> {
    let exchanges: Vec<serde_json::Value> = c
        .resources
        .iter()
        .map(|r| {
            serde_json::json!({
                "url": r.url,
                "status": r.status,
                "mime": r.mime,
                "payload_sha256": r.payload_sha256,
                "payload_bytes": r.bytes,
                "truncated": r.truncated,
                "error": r.error,
            })
        })
        .collect();
    let m = serde_json::json!({
        "custody_manifest": 1,
        "capture_id": c.id,
        "seed_url": c.seed_url,
        "started_at": crate::warc::warc_date(&c.started_at),
        "finished_at": crate::warc::warc_date(&c.finished_at),
        "software": crate::pipeline::SOFTWARE,
        "exchanges": exchanges,
        "import": c.import,
    });
    serde_json::to_vec_pretty(&m).expect("a manifest serialises")
}

/// What custody's `warcinfo` of an access copy names.
struct AccessHead {
    id: CaptureId,
    file_sha256: Sha256,
    name: String,
    at: DateTime<Utc>,
}

/// The access copy being written: a spool file (locked while this
/// process lives), custody's `warcinfo`, then each imported record as one
/// gzip member. A record that fails half-way is cut off again, so the
/// copy always ends with a whole member.
struct AccessCopy {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    at: u64,
    /// The SHA-256 of every byte written so far (its key, once finished).
    hasher: sha2::Sha256,
    warcinfo: RecordEntry,
    _lock: std::fs::File,
}

impl AccessCopy {
    fn create(path: &Path, head: &AccessHead) -> Result<AccessCopy, ArchiveError> {
        let (file, lock) = crate::archive::create_locked(path)?;
        let mut copy = AccessCopy {
            file: std::io::BufWriter::with_capacity(1 << 20, file),
            path: path.to_path_buf(),
            at: 0,
            hasher: sha2::Sha256::new(),
            warcinfo: placeholder(),
            _lock: lock,
        };
        let fields = [
            ("software", crate::pipeline::SOFTWARE.to_string()),
            ("format", "WARC File Format 1.1".to_string()),
            (
                "description",
                "custody's access copy of an imported file: its records byte for byte, one gzip member each".to_string(),
            ),
            ("custody-capture-id", head.id.to_string()),
            ("custody-import", head.file_sha256.labelled()),
            ("custody-import-name", head.name.clone()),
        ];
        let id = new_record_id();
        let at = head.at;
        copy.warcinfo = copy.custody(|w| records::write_warcinfo(w, &id, &at, &fields))?;
        Ok(copy)
    }

    /// Appends records custody writes (its `warcinfo` and manifest).
    fn custody(
        &mut self,
        write: impl FnOnce(&mut WarcWriter<&mut Vec<u8>>) -> Result<RecordEntry, WarcError>,
    ) -> Result<RecordEntry, ArchiveError> {
        use std::io::Write;
        let mut buf = Vec::new();
        let mut w = WarcWriter::new(&mut buf);
        let mut e = write(&mut w)?;
        w.finish()?;
        e.offset += self.at;
        self.file.write_all(&buf).map_err(io_at(&self.path))?;
        self.hasher.update(&buf);
        self.at += buf.len() as u64;
        Ok(e)
    }

    /// Writes the manifest, fsyncs, and hashes the finished file; the
    /// entries are custody's `warcinfo`, the imported records and the
    /// manifest, in file order.
    fn finish(
        mut self,
        c: &Capture,
        imported: Vec<RecordEntry>,
        manifest: &[u8],
    ) -> Result<(Vec<RecordEntry>, Sha256, u64), ArchiveError> {
        use std::io::Write;
        let target = format!("urn:custody:capture:{}", c.id);
        let info_id = self.warcinfo.record_id.clone();
        let at = c
            .import
            .as_ref()
            .map(|i| i.received_at)
            .unwrap_or(c.finished_at);
        let meta =
            self.custody(|w| records::write_json_metadata(w, &target, &info_id, &at, manifest))?;
        self.file.flush().map_err(io_at(&self.path))?;
        self.file.get_ref().sync_all().map_err(io_at(&self.path))?;
        let bytes = self.at;
        let mut entries = Vec::with_capacity(imported.len() + 2);
        entries.push(self.warcinfo.clone());
        entries.extend(imported);
        entries.push(meta);
        Ok((entries, Sha256::from_hasher(self.hasher), bytes))
    }

    /// Removes the spool (the import was refused).
    fn discard(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn placeholder() -> RecordEntry {
    RecordEntry {
        record_id: String::new(),
        warc_type: String::new(),
        target_uri: None,
        surt: None,
        date: Utc::now(),
        timestamp: String::new(),
        mime: None,
        status: None,
        payload_digest: None,
        block_digest: Sha256::of(b""),
        offset: 0,
        length: 0,
    }
}

/// A writer that counts and hashes what it passes (a member's compressed
/// length, and the file's digest).
struct Counted<'a, W> {
    inner: &'a mut W,
    n: u64,
    hasher: sha2::Sha256,
}

impl<W: std::io::Write> std::io::Write for Counted<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        #[allow(
            clippy::disallowed_methods,
            reason = "a Write that forwards: it counts what the inner writer took"
        )]
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl scan::Copy for AccessCopy {
    fn record(
        &mut self,
        deflate: crate::warc::Deflate,
        fill: &mut dyn FnMut(&mut dyn std::io::Write) -> Result<ScannedRecord, WarcError>,
    ) -> Result<(u64, u64, ScannedRecord), WarcError> {
        use std::io::{Seek, SeekFrom, Write};
        let offset = self.at;
        let mut counted = Counted {
            inner: &mut self.file,
            n: 0,
            // A record that fails leaves the digest as it was.
            hasher: self.hasher.clone(),
        };
        let result = (|| {
            let level = match deflate {
                crate::warc::Deflate::Store => 0,
                crate::warc::Deflate::Compress => 6,
            };
            let mut gz =
                flate2::write::GzEncoder::new(&mut counted, flate2::Compression::new(level));
            let r = fill(&mut gz)?;
            gz.finish()?;
            Ok::<_, WarcError>(r)
        })();
        let (written, hasher) = (counted.n, counted.hasher);
        match result {
            Ok(r) => {
                self.at += written;
                self.hasher = hasher;
                Ok((offset, written, r))
            }
            Err(e) => {
                // Cut the half-written member off again.
                self.file.flush()?;
                self.file.get_ref().set_len(offset)?;
                self.file.seek(SeekFrom::Start(offset))?;
                Err(e)
            }
        }
    }
}
