//! One capture job end to end: capture → WARC → store → index.
//!
//! The crawler hands over exchanges as they complete; each is written into a
//! spool WARC in the data directory (on a blocking thread: hashing and
//! deflate must not stall the runtime). When the crawl ends, a `metadata`
//! record with the capture manifest closes the file, which is fsync'd; its
//! SHA-256 (computed while writing) names the object; the store writes and
//! verifies it; and only then is the capture committed to the index, in one
//! transaction.
//!
//! **Invariant:** bytes are hashed before they are first written to storage,
//! and the index only names durable objects. A crash before the index commit
//! leaves at most a spool file (`*.warc.gz.partial`) and possibly a stored
//! object the index does not name; neither is ever shown as a capture.

use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use url::Url;

use crate::capture::{
    self, CaptureError, CaptureSettings, CrawlOutcome, Crawler, Exchange, TlsInfo,
};
use crate::config::Config;
use crate::index::{self, Hit, Index, IndexError};
use crate::model::{
    self, Capture, CaptureId, CaptureStatus, RecordEntry, Resource, Sha256, WarcRef,
};
use crate::store::{Store, StoreError};
use crate::warc::{
    self, new_record_id, Deflate, RecordHeader, WarcError, WarcFileReader, WarcWriter,
};

pub const SOFTWARE: &str = concat!("custody/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
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
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("internal error: {0}")]
    Internal(String),
    #[error("capture interrupted by shutdown before anything was stored")]
    Interrupted,
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> PipelineError + '_ {
    move |source| PipelineError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Receives progress while a capture runs (the CLI draws a bar with it).
pub trait Progress: Send + Sync {
    fn exchange_done(&self, resources: usize, bytes: u64, url: &str);
}

/// A progress sink that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn exchange_done(&self, _: usize, _: u64, _: &str) {}
}

pub struct Pipeline {
    config: Config,
    store: Store,
    replicas: Vec<Store>,
    index: Arc<dyn Index>,
    crawler: Crawler,
}

impl Pipeline {
    /// Opens the store and the index the configuration names.
    pub async fn open(config: Config) -> Result<Pipeline, PipelineError> {
        let spool = config.spool_dir();
        std::fs::create_dir_all(&spool).map_err(io_at(&spool))?;
        remove_stale_scratch_files(&spool);
        let store = Store::open(&config.store_url)?;
        let replicas = config
            .replica_urls
            .iter()
            .map(|u| Store::open_replica(u))
            .collect::<Result<Vec<_>, _>>()?;
        let index = index::open(&config.index_url).await?;
        let crawler = Crawler::new(config.capture.clone(), spool)?;
        let pipeline = Pipeline {
            config,
            store,
            replicas,
            index,
            crawler,
        };
        pipeline.recover_spools().await;
        Ok(pipeline)
    }

    /// Finishes captures a crash interrupted after their WARC was complete:
    /// each unlocked `*.warc.gz.partial` in the spool that holds its whole
    /// manifest is stored and indexed under its own capture id (DESIGN.md,
    /// invariant 2). A spool cut off mid-write cannot be finished; it is
    /// renamed `*.incomplete` and kept for inspection. Never fails the caller:
    /// problems are logged.
    async fn recover_spools(&self) {
        let dir = self.config.spool_dir();
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
            let rebuilt = match tokio::task::spawn_blocking(move || crate::rebuild::rebuild(&p))
                .await
            {
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
            let result: Result<(), PipelineError> = async {
                if self.index.capture(&id).await?.is_none() {
                    self.store.put_file(&path, rebuilt.sha256, rebuilt.bytes).await?;
                    self.replicate(&path, rebuilt.sha256, rebuilt.bytes).await;
                    self.index.put_capture(&rebuilt.capture, &rebuilt.records).await?;
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
        &self,
        pending: &crate::model::PendingObject,
    ) -> Result<Option<Capture>, PipelineError> {
        if let Some(done) = self.index.capture(&pending.capture_id).await? {
            self.index
                .remove_pending_object(&pending.key, &pending.capture_id)
                .await?;
            return Ok(Some(done));
        }
        match self.store.head(&pending.key).await {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) => {
                self.index
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
                PipelineError::Invalid(format!("{} is not a WARC object key", pending.key))
            })?;
        let spool = self.config.spool_dir();
        let (file, path) = tempfile::Builder::new()
            .prefix("record-adopt-")
            .tempfile_in(&spool)
            .map_err(io_at(&spool))?
            .into_parts();
        let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
        self.store.copy_to(&pending.key, sha, &mut out).await?;
        drop(out);
        let p = path.to_path_buf();
        let rebuilt = tokio::task::spawn_blocking(move || crate::rebuild::rebuild(&p))
            .await
            .map_err(|e| PipelineError::Internal(e.to_string()))?
            .map_err(|e| {
                PipelineError::Invalid(format!("object {} cannot be adopted: {e}", pending.key))
            })?;
        drop(path);
        if rebuilt.capture.id != pending.capture_id {
            return Err(PipelineError::Invalid(format!(
                "object {} holds capture {}, not {}",
                pending.key, rebuilt.capture.id, pending.capture_id
            )));
        }
        self.index
            .put_capture(&rebuilt.capture, &rebuilt.records)
            .await?;
        tracing::warn!(capture = %rebuilt.capture.id, key = %pending.key, "adopted a capture whose process died before indexing it");
        Ok(Some(rebuilt.capture))
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
    async fn replicate(&self, path: &Path, sha256: Sha256, bytes: u64) {
        for (i, replica) in self.replicas.iter().enumerate() {
            if let Err(e) = replica.put_file(path, sha256, bytes).await {
                tracing::error!(replica = i + 1, url = %replica.redacted_url(), error = %e, "writing to a replica failed; the next audit repairs it");
            }
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Captures `seed` and its requisites with the configured settings.
    /// A capture whose seed could not be fetched at all is recorded as
    /// failed (with its reason) and returned as `Ok`; `Err` means custody
    /// itself could not do its job (disk, store, index).
    pub async fn capture(
        &self,
        seed: Url,
        progress: &dyn Progress,
    ) -> Result<Capture, PipelineError> {
        Ok(self
            .capture_with(CaptureRequest::new(seed), progress)
            .await?
            .capture)
    }

    /// Captures as `request` says (the daemon's entry point).
    pub async fn capture_with(
        &self,
        request: CaptureRequest,
        progress: &dyn Progress,
    ) -> Result<CaptureReport, PipelineError> {
        let id = CaptureId::new();
        let started_at = Utc::now();
        let spool_path = self
            .config
            .spool_dir()
            .join(format!("{id}.warc.gz.partial"));
        let result = self
            .capture_into(&id, &request, started_at, &spool_path, progress)
            .await;
        // Whatever happened, the spool file is no longer needed: it was
        // stored, or the capture ended before anything was stored.
        let _ = std::fs::remove_file(&spool_path);
        result
    }

    async fn capture_into(
        &self,
        id: &CaptureId,
        request: &CaptureRequest,
        started_at: DateTime<Utc>,
        spool_path: &Path,
        progress: &dyn Progress,
    ) -> Result<CaptureReport, PipelineError> {
        let seed = &request.seed;
        let own_crawler;
        let crawler = match &request.settings {
            Some(settings) => {
                own_crawler = Crawler::new(settings.clone(), self.config.spool_dir())?;
                &own_crawler
            }
            None => &self.crawler,
        };
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(spool_path)
            .map_err(io_at(spool_path))?;
        // Held until the capture is indexed: start-up recovery in another
        // process leaves a locked spool alone.
        let _spool_lock = std::fs::File::open(spool_path).map_err(io_at(spool_path))?;
        _spool_lock.lock().map_err(io_at(spool_path))?;
        let mut writer = WarcWriter::new(BufWriter::with_capacity(1024 * 1024, file));
        let warcinfo_id = new_record_id();
        let info = warcinfo_block(id, seed, crawler.settings());
        let mut header = RecordHeader::new("warcinfo", &warcinfo_id, &started_at);
        header.push("Content-Type", "application/warc-fields");
        let span = writer.write_bytes(&header, info.as_bytes(), Deflate::Compress)?;
        let mut written = Written::default();
        written.entries.push(entry(&header, None, None, span));

        let (tx, mut rx) = mpsc::channel::<Exchange>(2);
        let crawl = crawler.run(seed.clone(), tx);
        let consume = async {
            let mut writer = writer;
            let mut written = written;
            while let Some(ex) = rx.recv().await {
                let warcinfo_id = warcinfo_id.clone();
                let original = match dedup_key(&ex).filter(|_| crawler.settings().dedup) {
                    Some((url, digest)) => self
                        .index
                        .original_response(&url, digest)
                        .await?
                        .map(|hit| hit.record),
                    None => None,
                };
                let (w, out) = tokio::task::spawn_blocking(move || {
                    let mut w = writer;
                    let out = write_exchange(&mut w, ex, &warcinfo_id, original);
                    (w, out)
                })
                .await
                .map_err(|e| PipelineError::Internal(e.to_string()))?;
                writer = w;
                let out = out?;
                written.bytes += out.resource.bytes;
                written.resources.push(out.resource);
                written.entries.extend(out.entries);
                written.exchanges.push(out.manifest);
                progress.exchange_done(
                    written.resources.len(),
                    written.bytes,
                    &written
                        .exchanges
                        .last()
                        .map(|e| e.url.clone())
                        .unwrap_or_default(),
                );
            }
            Ok::<_, PipelineError>((writer, written))
        };
        // Cancellation stops the crawl; once the file is complete, storing
        // and indexing run to the end, so a shutdown never leaves an object
        // the index does not name.
        let both = async { tokio::join!(crawl, consume) };
        let (outcome, consumed): (CrawlOutcome, _) = match request.cancel.clone() {
            None => both.await,
            Some(mut cancel) => tokio::select! {
                done = both => done,
                _ = cancel.wait_for(|c| *c) => return Err(PipelineError::Interrupted),
            },
        };
        let (mut writer, mut written) = consumed?;
        let seed_status = written.resources.first().and_then(|r| r.status);

        let (schedule, scheduled_for) = match &request.schedule {
            Some((name, at)) => (Some(name.clone()), Some(*at)),
            None => (None, None),
        };
        if let Some(err) = outcome.seed_error {
            let capture = Capture {
                id: id.clone(),
                seed_url: seed.to_string(),
                status: CaptureStatus::Failed,
                error: Some(err.to_string()),
                started_at,
                finished_at: Utc::now(),
                warc: None,
                records: 0,
                resources: written.resources,
                schedule,
                scheduled_for,
                change: None,
            };
            self.index.put_capture(&capture, &[]).await?;
            return Ok(CaptureReport {
                capture,
                seed_error: Some(err),
                seed_status: None,
            });
        }

        let change = self.page_change(seed, &written.resources).await?;
        // Close the file with the capture manifest.
        let finished_at = Utc::now();
        let manifest = json!({
            "custody_manifest": 1,
            "software": SOFTWARE,
            "capture_id": id,
            "seed_url": seed.as_str(),
            "final_url": outcome.final_url.as_str(),
            "started_at": warc::warc_date(&started_at),
            "finished_at": warc::warc_date(&finished_at),
            "user_agent": crawler.settings().user_agent,
            "options": options_json(crawler.settings()),
            "schedule": schedule,
            "scheduled_for": scheduled_for.as_ref().map(warc::warc_date),
            "egress_ips": egress_ips(&written.exchanges),
            "previous_capture": change.as_ref().map(|c| &c.previous_capture),
            "page_changed": change.as_ref().map(|c| c.changed),
            "exchanges": written.exchanges,
            "errors": written.resources.iter().filter_map(|r| r.error.as_ref().map(|e| json!({"url": r.url, "error": e}))).collect::<Vec<_>>(),
        });
        let manifest_bytes = serde_json::to_vec_pretty(&manifest)
            .map_err(|e| PipelineError::Internal(e.to_string()))?;
        let mut header = RecordHeader::new("metadata", &new_record_id(), &finished_at);
        header
            // Not the seed URL: replay tools index metadata records by their
            // target, and would serve the manifest in place of the page.
            .push("WARC-Target-URI", format!("urn:custody:capture:{id}"))
            .push("WARC-Warcinfo-ID", warcinfo_id.as_str())
            .push("Content-Type", "application/json");
        let spool = spool_path.to_path_buf();
        let (summary, metadata_entry) =
            tokio::task::spawn_blocking(move || -> Result<_, PipelineError> {
                let span = writer.write_bytes(&header, &manifest_bytes, Deflate::Compress)?;
                let (buffered, summary) = writer.finish()?;
                let file = buffered.into_inner().map_err(|e| PipelineError::Io {
                    path: spool.clone(),
                    source: e.into_error(),
                })?;
                file.sync_all().map_err(io_at(&spool))?;
                Ok((summary, entry(&header, Some(seed_str(&header)), None, span)))
            })
            .await
            .map_err(|e| PipelineError::Internal(e.to_string()))??;
        written.entries.push(metadata_entry);

        // Note the upload before it starts: if this process dies between the
        // upload and the index commit, the next attempt adopts the object.
        let pending = crate::model::PendingObject {
            key: crate::store::warc_key(&summary.sha256),
            capture_id: id.clone(),
            seed_url: seed.to_string(),
            schedule: schedule.clone(),
            scheduled_for,
            created_at: Utc::now(),
        };
        self.index.add_pending_object(&pending).await?;
        let stored = self
            .store
            .put_file(spool_path, summary.sha256, summary.bytes)
            .await?;
        self.replicate(spool_path, summary.sha256, summary.bytes)
            .await;
        let capture = Capture {
            id: id.clone(),
            seed_url: seed.to_string(),
            status: CaptureStatus::Ok,
            error: None,
            started_at,
            finished_at,
            warc: Some(WarcRef {
                key: stored.key,
                sha256: summary.sha256,
                bytes: summary.bytes,
            }),
            records: summary.records,
            resources: written.resources,
            schedule,
            scheduled_for,
            change,
        };
        self.index.put_capture(&capture, &written.entries).await?;
        if self.config.timestamps.captures {
            let manifest = crate::tlog::capture_leaf(&capture, &written.entries);
            for url in &self.config.timestamps.tsa_urls {
                // Queued: a TSA never holds up a capture.
                if let Err(e) = self
                    .index
                    .request_timestamp(
                        "capture",
                        id.as_str(),
                        Sha256::of(manifest.data.as_bytes()),
                        url,
                    )
                    .await
                {
                    tracing::error!(capture = %id, error = %e, "queueing a timestamp failed");
                }
            }
        }
        tracing::info!(capture = %id, seed = %seed, warc = %summary.sha256, bytes = summary.bytes, "capture stored");
        Ok(CaptureReport {
            capture,
            seed_error: None,
            seed_status,
        })
    }

    /// How this capture's page compares with the previous successful
    /// capture of the same seed (by the page response's payload digest).
    async fn page_change(
        &self,
        seed: &Url,
        resources: &[Resource],
    ) -> Result<Option<crate::model::PageChange>, PipelineError> {
        let previous = self.index.latest_ok_capture(seed.as_str()).await?;
        Ok(previous.map(|p| crate::model::PageChange {
            changed: page_digest(&p.resources) != page_digest(resources),
            previous_capture: p.id,
        }))
    }

    /// Writes a capture's WARC to `dest`: the stored file, checked against
    /// its digest, followed by the original response record of every
    /// revisit in it (each checked against its digests), so the export
    /// stands alone. `dest` appears only when complete. Recorded as an
    /// `exported` custody event.
    pub async fn export_warc(
        &self,
        id: &CaptureId,
        dest: &Path,
    ) -> Result<Exported, PipelineError> {
        let exported = self.write_export(id, dest).await?;
        let detail = serde_json::json!({
            "format": "warc",
            "path": dest.display().to_string(),
            "sha256": exported.sha256,
            "stored_warc_sha256": exported.stored.sha256,
            "originals_included": exported.originals.len(),
        });
        self.event(id, "exported", detail).await;
        Ok(exported)
    }

    /// [`Pipeline::export_warc`] without the custody event (a WACZ export
    /// records its own).
    pub async fn write_export(
        &self,
        id: &CaptureId,
        dest: &Path,
    ) -> Result<Exported, PipelineError> {
        let capture = self.index.capture(id).await?.ok_or_else(|| {
            PipelineError::NotFound(format!(
                "no capture {id}; list them with `custody captures`"
            ))
        })?;
        let Some(warc) = capture.warc else {
            return Err(PipelineError::NotFound(format!(
                "capture {id} failed and has no WARC ({})",
                capture.error.unwrap_or_default()
            )));
        };
        let mut originals: Vec<Hit> = Vec::new();
        for record in self.index.records(id).await? {
            if record.warc_type != "revisit" {
                continue;
            }
            let original = self.original_of(&record).await?;
            if originals
                .iter()
                .all(|o| o.record.record_id != original.record.record_id)
            {
                originals.push(original);
            }
        }
        let (file, tmp_path) = temp_beside(dest)?;
        let mut out =
            HashingWriter::new(tokio::io::BufWriter::new(tokio::fs::File::from_std(file)));
        self.store.copy_to(&warc.key, warc.sha256, &mut out).await?;
        for o in &originals {
            // Fetched once, its digests checked, then appended as fetched.
            let (_, _, raw) = self.read_record(o, false).await?;
            let mut raw = tokio::fs::File::from_std(raw);
            tokio::io::copy(&mut raw, &mut out)
                .await
                .map_err(io_at(dest))?;
        }
        // Last, custody's proofs: the capture's inclusion in a signed
        // checkpoint and the timestamps, so the file can be verified
        // offline (`custody verify FILE`).
        let proof = self.proof_record(id, &warc).await?;
        {
            use tokio::io::AsyncWriteExt;
            out.write_all(&proof).await.map_err(io_at(dest))?;
            out.flush().await.map_err(io_at(dest))?;
        }
        let (out, sha256, bytes) = out.finish();
        let file = out.into_inner().into_std().await;
        file.sync_all().map_err(io_at(dest))?;
        tmp_path.persist(dest).map_err(|e| PipelineError::Io {
            path: dest.to_path_buf(),
            source: e.error,
        })?;
        Ok(Exported {
            sha256,
            bytes,
            stored: warc,
            originals,
        })
    }

    /// The `metadata` record that ends an export: the stored WARC's digest
    /// and size, the capture's inclusion proof with its signed checkpoint
    /// and the log's public key, and the timestamp tokens (DER, base64) of
    /// that checkpoint and of the capture.
    async fn proof_record(&self, id: &CaptureId, warc: &WarcRef) -> Result<Vec<u8>, PipelineError> {
        let body = serde_json::to_vec_pretty(&self.proof(id, warc).await?)
            .map_err(|e| PipelineError::Internal(e.to_string()))?;
        let mut header = RecordHeader::new("metadata", &new_record_id(), &Utc::now());
        header
            .push("WARC-Target-URI", format!("urn:custody:proof:{id}"))
            .push("Content-Type", "application/json");
        let mut writer = WarcWriter::new(Vec::new());
        writer.write_bytes(&header, &body, Deflate::Compress)?;
        Ok(writer.finish()?.0)
    }

    /// custody's proof for a capture: the stored WARC's digest and size,
    /// its inclusion proof with the signed checkpoint and the log's public
    /// key, and the timestamp tokens (DER, base64) of that checkpoint and
    /// of the capture.
    pub async fn proof(
        &self,
        id: &CaptureId,
        warc: &WarcRef,
    ) -> Result<serde_json::Value, PipelineError> {
        let tlog_err = |e: crate::tlog::TlogError| PipelineError::Internal(e.to_string());
        let key = crate::tlog::LogKey::load_or_create(&self.config.data_dir).map_err(tlog_err)?;
        let inclusion = crate::tlog::capture_inclusion(
            self.index.as_ref(),
            &self.store,
            &key,
            &self.config.timestamps.tsa_urls,
            id,
        )
        .await
        .map_err(tlog_err)?;
        let mut timestamps = self
            .index
            .timestamp_tokens("checkpoint", &inclusion.tree_size.to_string())
            .await?;
        timestamps.extend(self.index.timestamp_tokens("capture", id.as_str()).await?);
        Ok(json!({
            "custody_proof": 1,
            "capture_id": id,
            "warc_sha256": warc.sha256.hex(),
            "warc_bytes": warc.bytes,
            "inclusion": inclusion,
            "timestamps": timestamps,
        }))
    }

    /// Finds the response for `url` nearest to `at`, following archived
    /// redirects, and writes its body (content-encoding undone) to `out`.
    pub async fn get(
        &self,
        url: &str,
        at: Option<DateTime<Utc>>,
        out: &mut dyn Write,
    ) -> Result<Retrieved, PipelineError> {
        let mut url = normalize_url(url)?;
        let mut at = at;
        for _hop in 0..=10 {
            let hit = self
                .index
                .nearest_response(&url, at)
                .await?
                .ok_or_else(|| {
                    PipelineError::NotFound(format!(
                        "no archived response for {url}; capture it with `custody capture {url}`"
                    ))
                })?;
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
                .map_err(|e| PipelineError::Io {
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
        Err(PipelineError::NotFound(format!(
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
    ) -> Result<Document, PipelineError> {
        let capture = self.index.capture(capture_id).await?.ok_or_else(|| {
            PipelineError::NotFound(format!(
                "no capture {capture_id}; list them with `custody captures`"
            ))
        })?;
        let Some(warc) = capture.warc.clone() else {
            return Err(PipelineError::NotFound(format!(
                "capture {capture_id} failed ({}) and holds no document",
                capture.error.clone().unwrap_or_default()
            )));
        };
        let url = match target {
            Some(t) => normalize_url(t)?,
            None => capture
                .resources
                .iter()
                .find(|r| r.status.is_some_and(|s| !(300..400).contains(&s)))
                .map(|r| r.url.clone())
                .ok_or_else(|| {
                    PipelineError::NotFound(format!("capture {capture_id} has no page response"))
                })?,
        };
        let record = self
            .index
            .records(capture_id)
            .await?
            .into_iter()
            .find(|r| {
                matches!(r.warc_type.as_str(), "response" | "revisit")
                    && r.target_uri.as_deref() == Some(url.as_str())
            })
            .ok_or_else(|| {
                PipelineError::NotFound(format!("capture {capture_id} has no response for {url}"))
            })?;
        let hit = Hit {
            capture_id: capture_id.clone(),
            warc: warc.clone(),
            record: record.clone(),
        };
        let (head, mut payload) = self.read_resolved(&hit).await?;
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
        Ok(Document {
            content_type: head.as_ref().and_then(|h| h.header("content-type")),
            mime: head.as_ref().and_then(|h| h.mime()),
            url,
            capture,
            warc,
            record,
            body,
        })
    }

    /// Appends a custody event for a capture; a failure to record it is
    /// logged (the evidence itself is unaffected).
    pub async fn event(&self, capture: &CaptureId, event: &str, detail: serde_json::Value) {
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
    ) -> Result<(Option<warc::ResponseHead>, std::fs::File), PipelineError> {
        let (head, payload) = self.read_response(hit).await?;
        if hit.record.warc_type != "revisit" {
            return Ok((head, payload));
        }
        let original = self.original_of(&hit.record).await?;
        let (_, payload) = self.read_response(&original).await?;
        Ok((head, payload))
    }

    /// [`Pipeline::read_resolved`] for small records, in memory: no spool
    /// files. `None` when the stored record is larger than `max` bytes or
    /// its payload grows past `max` (read it with `read_resolved`).
    pub async fn read_resolved_small(
        &self,
        hit: &Hit,
        max: u64,
    ) -> Result<Option<SmallRecord>, PipelineError> {
        let Some((head, payload)) = self.read_small(hit, max).await? else {
            return Ok(None);
        };
        if hit.record.warc_type != "revisit" {
            return Ok(Some((head, payload)));
        }
        let original = self.original_of(&hit.record).await?;
        Ok(self
            .read_small(&original, max)
            .await?
            .map(|(_, payload)| (head, payload)))
    }

    /// One record fetched into memory and checked as `read_record` checks.
    async fn read_small(&self, hit: &Hit, max: u64) -> Result<Option<SmallRecord>, PipelineError> {
        if hit.record.length > max {
            return Ok(None);
        }
        let mut raw = Vec::with_capacity(hit.record.length as usize);
        let range = hit.record.offset..hit.record.offset + hit.record.length;
        self.store
            .copy_range_to(&hit.warc.key, range, &mut raw)
            .await?;
        let expected_payload = hit.record.payload_digest;
        let parse = move || -> Result<Option<SmallRecord>, PipelineError> {
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
                    PipelineError::Warc(WarcError::Malformed(
                        "no record at the indexed offset".into(),
                    ))
                })?;
            check_read(&record, expected_payload)?;
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
                .map_err(|e| PipelineError::Internal(e.to_string()))?
        }
    }

    /// The full response a revisit record refers to.
    pub async fn original_of(&self, revisit: &RecordEntry) -> Result<Hit, PipelineError> {
        let missing = || {
            PipelineError::NotFound(format!(
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
    ) -> Result<(Option<warc::ResponseHead>, std::fs::File), PipelineError> {
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
        PipelineError,
    > {
        let spool = self.config.spool_dir();
        let (file, path) = tempfile::Builder::new()
            .prefix("record-")
            .tempfile_in(&spool)
            .map_err(io_at(&spool))?
            .into_parts();
        let mut out = tokio::io::BufWriter::new(tokio::fs::File::from_std(file));
        let range = hit.record.offset..hit.record.offset + hit.record.length;
        self.store
            .copy_range_to(&hit.warc.key, range, &mut out)
            .await?;
        let record_file = out.into_inner().into_std().await;
        drop(path); // unlinked; the handle keeps the bytes
        let expected_payload = hit.record.payload_digest;
        tokio::task::spawn_blocking(move || -> Result<_, PipelineError> {
            let mut record_file = record_file;
            record_file
                .seek(SeekFrom::Start(0))
                .map_err(io_at(Path::new("record")))?;
            let mut payload = match keep_payload {
                true => Some(tempfile::tempfile().map_err(io_at(Path::new("payload")))?),
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
                    PipelineError::Warc(WarcError::Malformed(
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
            check_read(&record, expected_payload)?;
            record_file
                .seek(SeekFrom::Start(0))
                .map_err(io_at(Path::new("record")))?;
            Ok((record.http.and_then(|h| h.head), payload, record_file))
        })
        .await
        .map_err(|e| PipelineError::Internal(e.to_string()))?
    }
}

/// A record read in memory: its response head and payload (content-encoding
/// kept).
pub type SmallRecord = (Option<warc::ResponseHead>, Vec<u8>);

/// A record read back must match its own digests and the payload digest
/// the index holds for it.
fn check_read(
    record: &crate::warc::ScannedRecord,
    expected_payload: Option<Sha256>,
) -> Result<(), PipelineError> {
    record.verify_digests()?;
    if let (Some(expected), Some(actual)) = (expected_payload, record.payload_sha256()) {
        if expected != actual {
            return Err(PipelineError::Warc(WarcError::DigestMismatch {
                record_id: record.head.record_id().to_string(),
                which: "payload (index)",
                expected,
                actual,
            }));
        }
    }
    Ok(())
}

/// A temporary file in `dest`'s directory, to be persisted as `dest` once
/// complete (so `dest` never holds a partial export).
pub fn temp_beside(dest: &Path) -> Result<(std::fs::File, tempfile::TempPath), PipelineError> {
    let dir = dest
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let tmp = tempfile::Builder::new()
        .prefix(".custody-export-")
        .tempfile_in(dir)
        .map_err(io_at(dir))?;
    Ok(tmp.into_parts())
}

/// The payload digest of a capture's page: the first response of the
/// seed's redirect chain that is not a redirect.
pub fn page_resource(resources: &[Resource]) -> Option<&Resource> {
    resources
        .iter()
        .find(|r| r.status.is_some_and(|s| !(300..400).contains(&s)))
}

fn page_digest(resources: &[Resource]) -> Option<Sha256> {
    page_resource(resources).and_then(|r| r.payload_sha256)
}

/// What `export_warc` wrote.
#[derive(Clone, Debug)]
pub struct Exported {
    pub sha256: Sha256,
    pub bytes: u64,
    /// The capture's stored WARC, which the export begins with.
    pub stored: WarcRef,
    /// Original records of revisits appended after it, in order.
    pub originals: Vec<Hit>,
}

/// An async writer that hashes and counts what passes through.
struct HashingWriter<W> {
    inner: W,
    hasher: sha2::Sha256,
    bytes: u64,
}

impl<W> HashingWriter<W> {
    fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: <sha2::Sha256 as sha2::Digest>::new(),
            bytes: 0,
        }
    }

    fn finish(self) -> (W, Sha256, u64) {
        (self.inner, Sha256::from_hasher(self.hasher), self.bytes)
    }
}

impl<W: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for HashingWriter<W> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let poll = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &poll {
            let n = *n;
            sha2::Digest::update(&mut self.hasher, &buf[..n]);
            self.bytes += n as u64;
        }
        poll
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// What to capture and how.
#[derive(Clone, Debug)]
pub struct CaptureRequest {
    pub seed: Url,
    /// Settings for this capture; the configuration's when absent.
    pub settings: Option<CaptureSettings>,
    /// The schedule and instant this capture is for.
    pub schedule: Option<(String, DateTime<Utc>)>,
    /// Set to true to stop the capture before anything is stored.
    pub cancel: Option<tokio::sync::watch::Receiver<bool>>,
}

impl CaptureRequest {
    pub fn new(seed: Url) -> Self {
        CaptureRequest {
            seed,
            settings: None,
            schedule: None,
            cancel: None,
        }
    }
}

/// A finished capture and what the daemon needs to decide on a retry.
#[derive(Debug)]
pub struct CaptureReport {
    pub capture: Capture,
    /// Why the seed could not be fetched, when it could not.
    pub seed_error: Option<capture::FetchError>,
    /// The HTTP status of the seed's first response.
    pub seed_status: Option<u16>,
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
pub fn normalize_url(raw: &str) -> Result<String, PipelineError> {
    let mut url = Url::parse(raw.trim())
        .map_err(|e| PipelineError::Invalid(format!("{raw:?} is not a valid URL ({e})")))?;
    url.set_fragment(None);
    Ok(url.to_string())
}

/// Parses `--at`: 4 to 14 digits of `YYYYMMDDhhmmss`, missing parts taken as
/// the start of the period (as Wayback timestamps are read).
pub fn parse_at(s: &str) -> Result<DateTime<Utc>, PipelineError> {
    let bad = || {
        PipelineError::Invalid(format!(
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

#[derive(Default)]
struct Written {
    resources: Vec<Resource>,
    entries: Vec<RecordEntry>,
    exchanges: Vec<ExchangeManifest>,
    bytes: u64,
}

/// An exchange as the capture manifest describes it.
#[derive(Clone, Debug, Serialize)]
struct ExchangeManifest {
    url: String,
    started_at: String,
    remote_ip: Option<String>,
    local_ip: Option<String>,
    dns: Vec<String>,
    tls: Option<TlsInfo>,
    timings: capture::fetch::Timings,
    request_record_id: Option<String>,
    response_record_id: Option<String>,
    status: Option<u16>,
    mime: Option<String>,
    block_sha256: Option<Sha256>,
    payload_sha256: Option<Sha256>,
    payload_bytes: u64,
    truncated: Option<String>,
    error: Option<String>,
    /// The record this exchange's `revisit` record refers to.
    #[serde(skip_serializing_if = "Option::is_none")]
    revisit_of: Option<String>,
}

struct ExchangeOut {
    resource: Resource,
    entries: Vec<RecordEntry>,
    manifest: ExchangeManifest,
}

fn seed_str(header: &RecordHeader) -> String {
    header
        .get("WARC-Target-URI")
        .unwrap_or_default()
        .to_string()
}

fn entry(
    header: &RecordHeader,
    target: Option<String>,
    response: Option<&warc::ScanResult>,
    span: warc::RecordSpan,
) -> RecordEntry {
    let date = header
        .get("WARC-Date")
        .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
        .map(|d| d.with_timezone(&Utc))
        .unwrap_or_else(Utc::now);
    let head = response.and_then(|r| r.head.as_ref());
    RecordEntry {
        record_id: header.get("WARC-Record-ID").unwrap_or_default().to_string(),
        warc_type: header.get("WARC-Type").unwrap_or_default().to_string(),
        surt: model::surt_of_target(target.as_deref()),
        target_uri: target,
        timestamp: model::timestamp14(&date),
        date,
        mime: head.and_then(|h| h.mime()),
        status: head.map(|h| h.status),
        payload_digest: response.map(|r| r.payload_sha256),
        block_digest: span.block_digest,
        offset: span.offset,
        length: span.length,
    }
}

/// Writes one exchange (response, then request) into the WARC.
/// The URL and payload digest under which an exchange's response may be a
/// revisit: a complete, non-empty HTTP response.
fn dedup_key(ex: &Exchange) -> Option<(String, Sha256)> {
    let r = ex.response.as_ref()?;
    (r.scan.head.is_some() && r.truncated.is_none() && r.scan.payload_len > 0)
        .then(|| (ex.url.to_string(), r.scan.payload_sha256))
}

/// With `original` (an earlier record of the same URL and payload), the
/// response is written as a `revisit` record.
fn write_exchange<W: Write>(
    writer: &mut WarcWriter<W>,
    ex: Exchange,
    warcinfo_id: &str,
    original: Option<RecordEntry>,
) -> Result<ExchangeOut, PipelineError> {
    let url = ex.url.to_string();
    let response_id = ex.response.as_ref().map(|_| new_record_id());
    let request_id = (!ex.request.is_empty()).then(new_record_id);
    let mut entries = Vec::new();
    let ip = ex.remote.map(|a| a.ip().to_string());

    let mut protocols = vec!["http/1.1".to_string()];
    if let Some(tls) = &ex.tls {
        protocols.push(tls.protocol.clone());
    }
    let common = |h: &mut RecordHeader| {
        h.push("WARC-Target-URI", url.as_str());
        h.push("WARC-Warcinfo-ID", warcinfo_id);
        if let Some(ip) = &ip {
            h.push("WARC-IP-Address", ip.as_str());
        }
        for p in &protocols {
            h.push("WARC-Protocol", p.as_str());
        }
        if let Some(tls) = &ex.tls {
            if !tls.cipher_suite.is_empty() {
                h.push("WARC-Cipher-Suite", tls.cipher_suite.as_str());
            }
        }
    };

    let mut manifest = ExchangeManifest {
        url: url.clone(),
        started_at: warc::warc_date(&ex.started_at),
        remote_ip: ip.clone(),
        local_ip: ex.local.map(|a| a.ip().to_string()),
        dns: ex.dns.iter().map(|a| a.to_string()).collect(),
        tls: ex.tls.clone(),
        timings: ex.timings.clone(),
        request_record_id: request_id.clone(),
        response_record_id: response_id.clone(),
        status: None,
        mime: None,
        block_sha256: None,
        payload_sha256: None,
        payload_bytes: 0,
        truncated: None,
        error: ex.error.as_ref().map(|e| e.to_string()),
        revisit_of: None,
    };
    let mut resource = Resource {
        url: url.clone(),
        status: None,
        mime: None,
        payload_sha256: None,
        bytes: 0,
        truncated: None,
        error: manifest.error.clone(),
    };

    if let (Some(mut response), Some(rid)) = (ex.response, response_id.as_ref()) {
        if response.scan.head.is_none() {
            // Not HTTP: the bytes as received, in a `resource` record.
            let mut h = RecordHeader::new("resource", rid, &ex.started_at);
            common(&mut h);
            h.push("Content-Type", "application/octet-stream");
            h.push("WARC-Payload-Digest", response.raw_sha256.labelled());
            if let Some(t) = response.truncated {
                h.push("WARC-Truncated", t.as_str());
            }
            let span = writer.write_stream(
                &h,
                response.raw_len,
                response.raw_sha256,
                &mut response.raw,
                Deflate::Compress,
            )?;
            let mut e = entry(&h, Some(url.clone()), None, span);
            e.payload_digest = Some(response.raw_sha256);
            entries.push(e);
            manifest.block_sha256 = Some(response.raw_sha256);
            manifest.payload_bytes = response.raw_len;
            resource.bytes = response.raw_len;
        } else {
            write_response(
                writer,
                &mut response,
                rid,
                &ex.started_at,
                request_id.as_deref(),
                &common,
                &mut entries,
                &mut manifest,
                &mut resource,
                original.as_ref(),
            )?;
        }
    }
    if let Some(req_id) = &request_id {
        let mut h = RecordHeader::new("request", req_id, &ex.started_at);
        common(&mut h);
        if let Some(rid) = &response_id {
            h.push("WARC-Concurrent-To", rid.as_str());
        }
        h.push("Content-Type", "application/http;msgtype=request");
        let span = writer.write_bytes(&h, &ex.request, Deflate::Compress)?;
        entries.push(entry(&h, Some(url.clone()), None, span));
    }
    Ok(ExchangeOut {
        resource,
        entries,
        manifest,
    })
}

/// The WARC 1.1 revisit profile custody writes.
pub const REVISIT_PROFILE: &str =
    "http://netpreserve.org/warc/1.1/revisit/identical-payload-digest";

/// Writes a parsed response as a `response` record, or as a `revisit`
/// record (the response head only) when `original` holds its payload.
#[allow(clippy::too_many_arguments)]
fn write_response<W: Write>(
    writer: &mut WarcWriter<W>,
    response: &mut capture::fetch::ResponseData,
    rid: &str,
    date: &DateTime<Utc>,
    request_id: Option<&str>,
    common: &dyn Fn(&mut RecordHeader),
    entries: &mut Vec<RecordEntry>,
    manifest: &mut ExchangeManifest,
    resource: &mut Resource,
    original: Option<&RecordEntry>,
) -> Result<(), PipelineError> {
    let head = response.scan.head.as_ref();
    let mime = head.and_then(|h| h.mime());
    let encoded = head.and_then(|h| h.content_encoding()).is_some();
    let revisit = original.filter(|_| response.truncated.is_none());
    let kind = if revisit.is_some() {
        "revisit"
    } else {
        "response"
    };
    let mut h = RecordHeader::new(kind, rid, date);
    common(&mut h);
    if let Some(req) = request_id {
        h.push("WARC-Concurrent-To", req);
    }
    h.push("Content-Type", "application/http;msgtype=response");
    if let Some(o) = revisit {
        h.push("WARC-Profile", REVISIT_PROFILE);
        h.push("WARC-Refers-To", o.record_id.as_str());
        if let Some(uri) = &o.target_uri {
            h.push("WARC-Refers-To-Target-URI", uri.as_str());
        }
        h.push("WARC-Refers-To-Date", warc::warc_date(&o.date));
    }
    h.push(
        "WARC-Payload-Digest",
        response.scan.payload_sha256.labelled(),
    );
    if let Some(m) = &mime {
        h.push("WARC-Identified-Payload-Type", m.as_str());
    }
    if let Some(t) = response.truncated {
        h.push("WARC-Truncated", t.as_str());
    }
    let span = if revisit.is_some() {
        // The block is the response head as received; the payload is the
        // original's.
        let mut head_bytes = vec![0u8; response.scan.head_len as usize];
        response
            .raw
            .read_exact(&mut head_bytes)
            .map_err(io_at(Path::new("spooled response")))?;
        writer.write_bytes(&h, &head_bytes, Deflate::Compress)?
    } else {
        let deflate = choose_deflate(mime.as_deref(), encoded, &mut response.raw);
        writer.write_stream(
            &h,
            response.raw_len,
            response.raw_sha256,
            &mut response.raw,
            deflate,
        )?
    };
    let url = resource.url.clone();
    entries.push(entry(&h, Some(url), Some(&response.scan), span));

    manifest.status = response.status();
    manifest.mime = mime.clone();
    manifest.block_sha256 = Some(span.block_digest);
    manifest.payload_sha256 = Some(response.scan.payload_sha256);
    manifest.payload_bytes = response.scan.payload_len;
    manifest.truncated = response.truncated.map(|t| t.as_str().to_string());
    manifest.revisit_of = revisit.map(|o| o.record_id.clone());
    resource.status = response.status();
    resource.mime = mime;
    resource.payload_sha256 = Some(response.scan.payload_sha256);
    resource.bytes = response.scan.payload_len;
    resource.truncated = manifest.truncated.clone();
    Ok(())
}

/// Already-compressed payloads are stored at deflate level 0 (DESIGN.md,
/// Compression): media types known to be compressed, any content-encoded
/// body, and anything whose first 64 KiB do not shrink.
fn choose_deflate(mime: Option<&str>, content_encoded: bool, raw: &mut std::fs::File) -> Deflate {
    if content_encoded {
        return Deflate::Store;
    }
    let m = mime.unwrap_or("");
    let text_like = m.starts_with("text/")
        || m.contains("json")
        || m.contains("xml")
        || m.contains("javascript")
        || m == "image/svg+xml"
        || m.contains("mpegurl")
        || m.contains("dash");
    if text_like {
        return Deflate::Compress;
    }
    let compressed_media = (m.starts_with("image/") && m != "image/bmp")
        || m.starts_with("video/")
        || m.starts_with("audio/")
        || m.starts_with("font/woff")
        || matches!(
            m,
            "application/zip"
                | "application/gzip"
                | "application/x-gzip"
                | "application/pdf"
                | "application/x-7z-compressed"
                | "application/x-xz"
                | "application/zstd"
                | "application/font-woff"
        );
    if compressed_media {
        return Deflate::Store;
    }
    // Unknown: try a sample.
    let mut sample = vec![0u8; 64 * 1024];
    let n = raw.read(&mut sample).unwrap_or(0);
    let _ = raw.seek(SeekFrom::Start(0));
    if n < 1024 {
        return Deflate::Compress;
    }
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = enc.write_all(&sample[..n]);
    let size = enc.finish().map(|v| v.len()).unwrap_or(n);
    if size * 10 > n * 9 {
        Deflate::Store
    } else {
        Deflate::Compress
    }
}

/// Writes `body` to `out` with its content-encoding undone; returns the
/// bytes written.
pub fn decode_body(
    mut body: impl Read,
    encoding: Option<&str>,
    out: &mut dyn Write,
) -> Result<u64, PipelineError> {
    let io = |e: std::io::Error| PipelineError::Io {
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
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn warcinfo_block(id: &CaptureId, seed: &Url, settings: &CaptureSettings) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let mut fields = vec![
        ("software", SOFTWARE.to_string()),
        ("format", "WARC File Format 1.1".to_string()),
        (
            "conformsTo",
            "http://iipc.github.io/warc-specifications/specifications/warc-format/warc-1.1/"
                .to_string(),
        ),
        ("hostname", host),
        ("http-header-user-agent", settings.user_agent.clone()),
        ("robots", "ignore".to_string()),
        ("custody-capture-id", id.to_string()),
        ("custody-seed", seed.to_string()),
    ];
    fields.retain(|(_, v)| !v.is_empty());
    fields
        .iter()
        .map(|(k, v)| format!("{k}: {}\r\n", v.replace(['\r', '\n'], " ")))
        .collect()
}

fn options_json(c: &CaptureSettings) -> serde_json::Value {
    json!({
        "allow_private_networks": c.allow_private,
        "connect_timeout_secs": c.limits.connect_timeout.as_secs_f64(),
        "read_timeout_secs": c.limits.read_timeout.as_secs_f64(),
        "resource_timeout_secs": c.limits.resource_deadline.as_secs_f64(),
        "max_resource_bytes": c.limits.max_body_bytes,
        "max_capture_bytes": c.max_capture_bytes,
        "max_header_bytes": c.limits.max_header_bytes,
        "max_headers": c.limits.max_headers,
        "max_redirects": c.max_redirects,
        "max_resources": c.max_resources,
        "concurrency": c.concurrency,
    })
}

fn egress_ips(exchanges: &[ExchangeManifest]) -> Vec<String> {
    let mut ips: Vec<String> = exchanges
        .iter()
        .filter_map(|e| e.local_ip.clone())
        .collect();
    ips.sort();
    ips.dedup();
    ips
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
