//! The capture job, end to end: capture → WARC → store → index → log.
//!
//! The crawler hands over exchanges as they complete; each is written into a
//! spool WARC in the data directory (on a blocking thread: hashing and
//! deflate must not stall the runtime; `warc::records` builds the records).
//! When the crawl ends, a `metadata` record with the capture manifest closes
//! the file, which is fsync'd; its SHA-256 (computed while writing) names
//! the object; the store writes and verifies it; and only then is the
//! capture committed to the index, in one transaction with its log leaf.
//!
//! **Invariant:** bytes are hashed before they are first written to storage,
//! and the index only names durable objects. A crash before the index commit
//! leaves at most a spool file (`*.warc.gz.partial`) and possibly a stored
//! object the index does not name; neither is ever shown as a capture, and
//! `recovery` finishes or adopts them at the next start.

use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;
use url::Url;

use crate::archive::{io_at, page_resource, Archive, ArchiveError};
use crate::capture::{self, CaptureSettings, CrawlOutcome, Crawler, Exchange, TlsInfo};
use crate::index::{Fence, IndexError};
use crate::model::{Capture, CaptureId, CaptureStatus, PageChange, RecordEntry, Resource, Sha256};
use crate::warc::{self, new_record_id, records, WarcSummary, WarcWriter};

pub const SOFTWARE: &str = concat!("custody/", env!("CARGO_PKG_VERSION"));

/// Receives progress while a capture runs (the CLI draws a bar with it).
pub trait Progress: Send + Sync {
    fn exchange_done(&self, resources: usize, bytes: u64, url: &str);
}

/// A progress sink that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn exchange_done(&self, _: usize, _: u64, _: &str) {}
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
    /// The run attempt that may commit this capture (scheduled captures):
    /// an attempt that lost its lease stores nothing more and indexes
    /// nothing.
    pub fence: Option<Fence>,
}

impl CaptureRequest {
    pub fn new(seed: Url) -> Self {
        CaptureRequest {
            seed,
            settings: None,
            schedule: None,
            cancel: None,
            fence: None,
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

/// Captures pages into the archive.
pub struct Capturer {
    archive: Arc<Archive>,
    crawler: Crawler,
    /// Browser mode's Chromium, started at its first capture and serving
    /// the captures after it (side by side, a context each), replaced
    /// after `browser_restart_after` captures or when it stops answering;
    /// a replaced one ends with the last capture it still serves.
    browser: tokio::sync::Mutex<Option<HeldBrowser>>,
}

struct HeldBrowser {
    chromium: Arc<crate::browser::chromium::Chromium>,
    ca: Arc<crate::browser::ca::InterceptCa>,
    served: usize,
}

/// The spool WARC being written, with what it holds so far.
struct Spool {
    writer: WarcWriter<BufWriter<std::fs::File>>,
    written: Written,
    warcinfo_id: String,
}

impl Capturer {
    /// A capture job over `archive`, with the configuration's capture
    /// settings.
    pub fn new(archive: Arc<Archive>) -> Result<Capturer, ArchiveError> {
        let crawler = Crawler::new(
            archive.config().capture.clone(),
            archive.scratch_dir().to_path_buf(),
        )?;
        Ok(Capturer {
            archive,
            crawler,
            browser: tokio::sync::Mutex::new(None),
        })
    }

    pub fn archive(&self) -> &Arc<Archive> {
        &self.archive
    }

    /// Captures `seed` and its requisites with the configured settings.
    /// A capture whose seed could not be fetched at all is recorded as
    /// failed (with its reason) and returned as `Ok`; `Err` means custody
    /// itself could not do its job (disk, store, index).
    pub async fn capture(
        &self,
        seed: Url,
        progress: &dyn Progress,
    ) -> Result<Capture, ArchiveError> {
        Ok(self
            .capture_with(CaptureRequest::new(seed), progress)
            .await?
            .capture)
    }

    /// Captures as `request` says (the daemon's entry point).
    pub async fn capture_with(
        &self,
        mut request: CaptureRequest,
        progress: &dyn Progress,
    ) -> Result<CaptureReport, ArchiveError> {
        // One URL form everywhere: the fragment is not fetched (a browser
        // never sends it) and not indexed, so `get` and `captures --url`
        // find the capture by the URL as typed; the manifest keeps it.
        let typed = request
            .seed
            .fragment()
            .is_some()
            .then(|| request.seed.to_string());
        request.seed.set_fragment(None);
        let id = CaptureId::new();
        let started_at = Utc::now();
        let spool_path = self
            .archive
            .config()
            .spool_dir()
            .join(format!("{id}.warc.gz.partial"));
        let own_crawler;
        let crawler = match &request.settings {
            Some(settings) => {
                own_crawler =
                    Crawler::new(settings.clone(), self.archive.scratch_dir().to_path_buf())?;
                &own_crawler
            }
            None => &self.crawler,
        };
        let at = Started {
            id: &id,
            at: started_at,
            spool: &spool_path,
            typed: typed.as_deref(),
        };
        let result = self.capture_into(crawler, &at, &request, progress).await;
        // Whatever happened, the spool file is no longer needed: it was
        // stored, or the capture ended before anything was stored.
        let _ = std::fs::remove_file(&spool_path);
        result
    }

    async fn capture_into(
        &self,
        crawler: &Crawler,
        started: &Started<'_>,
        request: &CaptureRequest,
        progress: &dyn Progress,
    ) -> Result<CaptureReport, ArchiveError> {
        let (id, started_at, spool_path) = (started.id, started.at, started.spool);
        let seed = &request.seed;
        // Held until the capture is indexed: start-up recovery in another
        // process leaves a locked spool alone.
        let (spool, _spool_lock) =
            open_spool(id, seed, crawler.settings(), started_at, spool_path)?;
        let (outcome, media, browsed, spool) =
            self.crawl(crawler, request, spool, progress).await?;
        let (spool, browsed) = match browsed {
            Some(out) => {
                let (spool, written) = write_browser(spool, out, seed).await?;
                (spool, Some(written))
            }
            None => (spool, None),
        };
        let (spool, media) = match media {
            Some(out) => {
                let (spool, info) = write_media(spool, out, seed).await?;
                (spool, Some(info))
            }
            None => (spool, None),
        };
        let Spool {
            writer,
            mut written,
            warcinfo_id,
        } = spool;
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
                import: None,
                media: None,
                browser: None,
            };
            self.archive
                .index()
                .put_capture(&capture, &[], request.fence.as_ref())
                .await?;
            return Ok(CaptureReport {
                capture,
                seed_error: Some(err),
                seed_status: None,
            });
        }

        let change = self.page_change(seed, &written.resources).await?;
        let finished_at = Utc::now();
        let manifest = Manifest {
            id,
            seed,
            typed: started.typed,
            final_url: &outcome.final_url,
            settings: crawler.settings(),
            started_at,
            finished_at,
            schedule: request.schedule.as_ref(),
            change: change.as_ref(),
            written: &written,
            media: media.as_ref(),
            browser: browsed.as_ref(),
        };
        let manifest_bytes = manifest.to_json()?;
        let (summary, metadata_entry) = close_spool(
            writer,
            id,
            warcinfo_id,
            finished_at,
            manifest_bytes,
            spool_path,
        )
        .await?;
        written.entries.push(metadata_entry);
        crate::failpoint::hit("after_warc_complete").await;
        let capture = Capture {
            id: id.clone(),
            seed_url: seed.to_string(),
            status: CaptureStatus::Ok,
            error: None,
            started_at,
            finished_at,
            warc: None,
            records: summary.records,
            resources: written.resources,
            schedule,
            scheduled_for,
            change,
            import: None,
            media: media.map(|m| m.info),
            browser: browsed.map(|b| b.info),
        };
        let capture = self
            .store_and_index(capture, &written.entries, &summary, spool_path, request)
            .await?;
        Ok(CaptureReport {
            capture,
            seed_error: None,
            seed_status,
        })
    }

    /// Runs the crawl and writes every exchange into the spool as it
    /// arrives. Cancellation stops the crawl; once the file is complete,
    /// storing and indexing run to the end, so a shutdown never leaves an
    /// object the index does not name.
    async fn crawl(
        &self,
        crawler: &Crawler,
        request: &CaptureRequest,
        spool: Spool,
        progress: &dyn Progress,
    ) -> Result<Crawled, ArchiveError> {
        let (tx, mut rx) = mpsc::channel::<Exchange>(2);
        let scratch = self.archive.scratch_dir();
        // In browser mode the browser first, through the recording proxy;
        // then, once the page is rendered and while the browser takes its
        // pictures, the crawler (what the browser did not fetch, and what
        // its rendered DOM names); then, when asked, yt-dlp on the page
        // through a proxy too. Every exchange arrives on the same channel.
        let crawl = async move {
            let settings = crawler.settings();
            let browsing = settings.browser.mode == crate::capture::Mode::Browser;
            let (rendered_tx, rendered_rx) = tokio::sync::oneshot::channel();
            let browse = async {
                if browsing {
                    let out = self
                        .browse(
                            settings,
                            crawler.fetcher(),
                            &request.seed,
                            tx.clone(),
                            rendered_tx,
                        )
                        .await;
                    Some(out)
                } else {
                    None
                }
            };
            // The crawler starts once the page is rendered, while the
            // browser takes its pictures.
            let after = async {
                let prior = match rendered_rx.await {
                    Ok(r) => prior_of(r, &request.seed),
                    Err(_) => crate::capture::Prior::default(),
                };
                crawler
                    .run_after(request.seed.clone(), tx.clone(), prior)
                    .await
            };
            let (browsed, outcome) = tokio::join!(browse, after);
            let media = if settings.media.enabled && outcome.seed_error.is_none() {
                let fetcher = crawler.fetcher();
                Some(crate::media::run(settings, fetcher, &request.seed, tx, scratch).await)
            } else {
                None
            };
            (outcome, media, browsed)
        };
        let dedup = crawler.settings().dedup;
        let consume = async {
            let mut spool = spool;
            // Responses this capture already holds, by URL and payload: a
            // second fetch of one (the browser's, the crawler's, yt-dlp's)
            // is a revisit of it, not a second copy of a video.
            let mut here: std::collections::HashMap<(String, Sha256), crate::model::RecordEntry> =
                std::collections::HashMap::new();
            while let Some(ex) = rx.recv().await {
                // custody's own disk failed, not the page: nothing of this
                // attempt is recorded as the page's.
                if let Some(capture::FetchError::Spool(reason)) = &ex.error {
                    return Err(ArchiveError::Local(reason.clone()));
                }
                let key = dedup_key(&ex).filter(|_| dedup);
                let original = match &key {
                    Some(k) => match self.archive.index().original_response(&k.0, k.1).await? {
                        Some(hit) => Some(hit.record),
                        None => here.get(k).cloned(),
                    },
                    None => None,
                };
                let first = original.is_none();
                let (back, out) = tokio::task::spawn_blocking(move || {
                    let mut spool = spool;
                    let out = write_exchange(&mut spool.writer, ex, &spool.warcinfo_id, original);
                    (spool, out)
                })
                .await
                .map_err(|e| ArchiveError::Internal(e.to_string()))?;
                spool = back;
                let out = out?;
                if let (Some(k), true) = (key, first) {
                    if let Some(e) = out.entries.iter().find(|e| e.warc_type == "response") {
                        here.insert(k, e.clone());
                    }
                }
                let w = &mut spool.written;
                w.bytes += out.resource.bytes;
                w.resources.push(out.resource);
                w.entries.extend(out.entries);
                w.exchanges.push(out.manifest);
                let url = w.exchanges.last().map(|e| e.url.as_str()).unwrap_or("");
                progress.exchange_done(w.resources.len(), w.bytes, url);
            }
            Ok::<_, ArchiveError>(spool)
        };
        let both = async { tokio::join!(crawl, consume) };
        let ((outcome, media, browsed), consumed) = match request.cancel.clone() {
            None => both.await,
            Some(mut cancel) => tokio::select! {
                done = both => done,
                _ = cancel.wait_for(|c| *c) => return Err(ArchiveError::Interrupted),
            },
        };
        Ok((outcome, media, browsed, consumed?))
    }

    /// Browser mode's step with the capturer's Chromium (started, or
    /// restarted, as needed); without one, says why (and `rendered` is
    /// dropped unsent).
    async fn browse(
        &self,
        settings: &CaptureSettings,
        fetcher: &capture::Fetcher,
        seed: &Url,
        tx: mpsc::Sender<Exchange>,
        rendered: tokio::sync::oneshot::Sender<crate::browser::step::Rendered>,
    ) -> crate::browser::step::BrowserOutput {
        use crate::browser::step::BrowserOutput;
        let b = &settings.browser;
        let mut held = self.browser.lock().await;
        if let Some(h) = held.as_ref() {
            let stale = h.served >= b.restart_after || h.chromium.window != b.window;
            if stale || !h.chromium.alive().await {
                *held = None;
            }
        }
        if held.is_none() {
            let path = match crate::browser::chromium::locate(b.path.as_deref()) {
                Ok(p) => p,
                Err(problem) => {
                    return BrowserOutput::without_browser(b.window, "unavailable", problem)
                }
            };
            let ca = match crate::browser::ca::InterceptCa::new() {
                Ok(ca) => Arc::new(ca),
                Err(e) => {
                    return BrowserOutput::without_browser(
                        b.window,
                        "failed",
                        format!("the browser's certificates: {e}"),
                    )
                }
            };
            let began = std::time::Instant::now();
            let started = crate::browser::chromium::Chromium::launch(
                &path,
                ca.spki_sha256(),
                self.archive.scratch_dir(),
                b.window,
            )
            .await;

            match started {
                Ok(chromium) => {
                    tracing::info!(
                        version = %chromium.version,
                        took_ms = began.elapsed().as_millis() as u64,
                        "browser started"
                    );
                    *held = Some(HeldBrowser {
                        chromium: Arc::new(chromium),
                        ca,
                        served: 0,
                    })
                }
                Err(e) => {
                    return BrowserOutput::without_browser(
                        b.window,
                        "failed",
                        format!("{} could not be started: {e}", path.display()),
                    )
                }
            }
        }
        let Some(h) = held.as_mut() else {
            return BrowserOutput::without_browser(b.window, "failed", "no browser".into());
        };
        h.served += 1;
        let (chromium, ca) = (h.chromium.clone(), h.ca.clone());
        drop(held);
        crate::browser::step::run(&chromium, ca, settings, fetcher, seed, tx, Some(rendered)).await
    }

    /// Stores the finished spool (noted as pending first, so that a death
    /// between upload and index commit leaves something to adopt), copies
    /// it to the replicas, and indexes the capture with its leaf.
    async fn store_and_index(
        &self,
        mut capture: Capture,
        entries: &[RecordEntry],
        summary: &WarcSummary,
        spool_path: &Path,
        request: &CaptureRequest,
    ) -> Result<Capture, ArchiveError> {
        let index = self.archive.index();
        if let (Some((schedule, at)), Some(_)) = (&request.schedule, &request.fence) {
            // Another daemon may have captured the instant while this one
            // was stalled: then there is nothing to store.
            if let Some(done) = index
                .capture_of_instant(schedule, &capture.seed_url, *at)
                .await?
            {
                return Err(ArchiveError::Index(IndexError::Fenced(format!(
                    "the run {schedule} {} at {} is already captured as {done}; capture {} is not stored",
                    capture.seed_url,
                    crate::model::rfc3339_utc(at),
                    capture.id
                ))));
            }
        }
        let pending = crate::model::PendingObject {
            key: crate::store::warc_key(&summary.sha256),
            capture_id: capture.id.clone(),
            seed_url: capture.seed_url.clone(),
            schedule: capture.schedule.clone(),
            scheduled_for: capture.scheduled_for,
            created_at: Utc::now(),
        };
        index.add_pending_object(&pending).await?;
        let stored = self
            .archive
            .store()
            .put_file(spool_path, summary.sha256, summary.bytes)
            .await?;
        self.archive
            .replicate(spool_path, summary.sha256, summary.bytes)
            .await;
        capture.warc = Some(crate::model::WarcRef {
            key: stored.key,
            sha256: summary.sha256,
            bytes: summary.bytes,
        });
        crate::failpoint::hit("after_store").await;
        if let Err(e) = index
            .put_capture(&capture, entries, request.fence.as_ref())
            .await
        {
            if matches!(e, IndexError::Conflict(_))
                && index
                    .capture(&capture.id)
                    .await?
                    .is_some_and(|indexed| indexed.warc == capture.warc)
            {
                // Another daemon adopted this very upload while this one
                // stalled (see `recovery::adopt_pending`): it is indexed.
                tracing::warn!(capture = %capture.id, "the capture was indexed by a daemon that adopted its upload");
                return Ok(capture);
            }
            if matches!(e, IndexError::Fenced(_)) {
                // The object stays (write-once), named by nothing: `audit`
                // lists it. No later attempt should adopt it.
                index
                    .remove_pending_object(&pending.key, &capture.id)
                    .await?;
                tracing::warn!(capture = %capture.id, key = %pending.key, error = %e, "a capture this attempt may no longer commit was stored but not indexed");
            }
            return Err(e.into());
        }
        let timestamps = &self.archive.config().timestamps;
        if timestamps.captures {
            let manifest = crate::tlog::capture_leaf(&capture, entries);
            for url in &timestamps.tsa_urls {
                // Queued: a TSA never holds up a capture.
                let imprint = Sha256::of(manifest.data.as_bytes());
                if let Err(e) = index
                    .request_timestamp("capture", capture.id.as_str(), imprint, url)
                    .await
                {
                    tracing::error!(capture = %capture.id, error = %e, "queueing a timestamp failed");
                }
            }
        }
        // Searchable at once; if this fails, the next start's backfill
        // indexes it (see `search::backfill`).
        if let Err(e) = crate::search::index_capture(&self.archive, &capture).await {
            tracing::warn!(capture = %capture.id, error = %e, "indexing the capture's text for search failed; the next start indexes it");
        }
        tracing::info!(capture = %capture.id, seed = %capture.seed_url, warc = %summary.sha256, bytes = summary.bytes, "capture stored");
        Ok(capture)
    }

    /// How this capture's page compares with the previous successful
    /// capture of the same seed (by the page response's payload digest).
    async fn page_change(
        &self,
        seed: &Url,
        resources: &[Resource],
    ) -> Result<Option<PageChange>, ArchiveError> {
        let previous = self
            .archive
            .index()
            .latest_ok_capture(seed.as_str())
            .await?;
        let digest = |r: &[Resource]| page_resource(r).and_then(|p| p.payload_sha256);
        Ok(previous.map(|p| PageChange {
            changed: digest(&p.resources) != digest(resources),
            previous_capture: p.id,
        }))
    }
}

/// Creates the spool file (locked until the capture is indexed) and writes
/// its `warcinfo` record.
fn open_spool(
    id: &CaptureId,
    seed: &Url,
    settings: &CaptureSettings,
    started_at: DateTime<Utc>,
    path: &Path,
) -> Result<(Spool, std::fs::File), ArchiveError> {
    let (file, lock) = crate::archive::create_locked(path)?;
    let mut writer = WarcWriter::new(BufWriter::with_capacity(1024 * 1024, file));
    let warcinfo_id = new_record_id();
    let info = records::write_warcinfo(
        &mut writer,
        &warcinfo_id,
        &started_at,
        &warcinfo_fields(id, seed, settings),
    )?;
    let written = Written {
        entries: vec![info],
        ..Written::default()
    };
    let spool = Spool {
        writer,
        written,
        warcinfo_id,
    };
    Ok((spool, lock))
}

/// Closes the spool with the manifest record and fsyncs it (on a blocking
/// thread).
async fn close_spool(
    mut writer: WarcWriter<BufWriter<std::fs::File>>,
    id: &CaptureId,
    warcinfo_id: String,
    finished_at: DateTime<Utc>,
    manifest: Vec<u8>,
    path: &Path,
) -> Result<(WarcSummary, RecordEntry), ArchiveError> {
    let target = format!("urn:custody:capture:{id}");
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || -> Result<_, ArchiveError> {
        let entry = records::write_json_metadata(
            &mut writer,
            &target,
            &warcinfo_id,
            &finished_at,
            &manifest,
        )?;
        let (buffered, summary) = writer.finish()?;
        let file = buffered.into_inner().map_err(|e| ArchiveError::Io {
            path: path.clone(),
            source: e.into_error(),
        })?;
        file.sync_all().map_err(io_at(&path))?;
        Ok((summary, entry))
    })
    .await
    .map_err(|e| ArchiveError::Internal(e.to_string()))?
}

/// The media step as written: its outcome with each file's records, and
/// what the proxy refused to fetch for yt-dlp.
struct MediaWritten {
    info: crate::model::MediaInfo,
    refused: Vec<crate::browser::proxy::Refused>,
}

/// Writes what the media step produced into the spool: each file a
/// `resource` record (streamed from yt-dlp's directory, hashed again), then
/// yt-dlp's info JSON for it in a `metadata` record referring to it.
async fn write_media(
    spool: Spool,
    out: crate::media::MediaOutput,
    page: &Url,
) -> Result<(Spool, MediaWritten), ArchiveError> {
    let page = page.clone();
    tokio::task::spawn_blocking(move || -> Result<_, ArchiveError> {
        let mut spool = spool;
        let mut info = out.info.clone();
        let version = info.version.clone().unwrap_or_default();
        for p in &out.produced {
            let target = crate::media::target_uri(&p.format_id, &page);
            let date = Utc::now();
            let mut file = std::fs::File::open(&p.path).map_err(io_at(&p.path))?;
            let fields = [
                ("Custody-Media-Tool", format!("yt-dlp {version}")),
                ("Custody-Media-Format", p.format_id.clone()),
                ("Custody-Media-Page", page.to_string()),
            ];
            let entry = records::write_produced_file(
                &mut spool.writer,
                records::ProducedFile {
                    target: &target,
                    warcinfo_id: &spool.warcinfo_id,
                    date: &date,
                    mime: &p.mime,
                    file: &mut file,
                    len: p.bytes,
                    sha256: p.sha256,
                    fields: &fields,
                },
            )?;
            let record_id = entry.record_id.clone();
            spool.written.entries.push(entry);
            let info_record_id = match &p.info_json {
                Some(body) => {
                    let e = records::write_describing_metadata(
                        &mut spool.writer,
                        &format!("urn:media-info:{}:{page}", p.format_id),
                        &spool.warcinfo_id,
                        &date,
                        &record_id,
                        body,
                    )?;
                    let id = e.record_id.clone();
                    spool.written.entries.push(e);
                    Some(id)
                }
                None => None,
            };
            info.files.push(crate::model::MediaFile {
                record_id,
                target_uri: target,
                mime: p.mime.clone(),
                bytes: p.bytes,
                sha256: p.sha256,
                format_id: p.format_id.clone(),
                info_record_id,
                title: p.title.clone(),
                uploader: p.uploader.clone(),
                upload_date: p.upload_date.clone(),
                duration_ms: p.duration_ms,
                extractor: p.extractor.clone(),
            });
        }
        let refused = out.refused.clone();
        Ok((spool, MediaWritten { info, refused }))
    })
    .await
    .map_err(|e| ArchiveError::Internal(e.to_string()))?
}

/// What the crawler is told of the browser's visit: what it need not
/// fetch again, the documents it reads as the browser got them (the page
/// and its redirects, frames, stylesheets, stream manifests: what they
/// name is found as in http mode) and the DOM to read. A document that
/// names others but is not among them (past the proxy's cap) is fetched
/// again.
fn prior_of(r: crate::browser::step::Rendered, seed: &Url) -> crate::capture::Prior {
    let at = r
        .final_url
        .as_deref()
        .and_then(|u| Url::parse(u).ok())
        .unwrap_or_else(|| seed.clone());
    let held: std::collections::HashSet<String> =
        r.documents.iter().map(|d| d.url().to_string()).collect();
    crate::capture::Prior {
        fetched: r
            .fetched
            .into_iter()
            .filter(|(url, mime)| {
                !crate::capture::discover::names_others(mime.as_deref()) || held.contains(url)
            })
            .map(|(url, _)| url)
            .collect(),
        rendered: r.dom.map(|dom| (at, dom)),
        documents: r.documents,
    }
}

/// Browser mode's step as written: what the browser did, with each kept
/// record, and what the proxy refused to fetch for it.
struct BrowserWritten {
    info: crate::model::BrowserInfo,
    refused: Vec<crate::browser::proxy::Refused>,
}

/// Writes what the browser made of the page into the spool, a `resource`
/// record each, named as Browsertrix names them (`urn:screenshot:<URL>`).
async fn write_browser(
    spool: Spool,
    out: crate::browser::step::BrowserOutput,
    page: &Url,
) -> Result<(Spool, BrowserWritten), ArchiveError> {
    let page = page.clone();
    tokio::task::spawn_blocking(move || -> Result<_, ArchiveError> {
        let mut spool = spool;
        let mut info = out.info.clone();
        let version = info.version.clone().unwrap_or_default();
        let kept: [(&str, &str, Option<Vec<u8>>); 5] = [
            ("screenshot", "image/png", out.screenshot),
            ("thumbnail", "image/png", out.thumbnail),
            ("pdf", "application/pdf", out.pdf),
            (
                "view",
                "text/html; charset=utf-8",
                out.dom.map(String::into_bytes),
            ),
            (
                "text",
                "text/plain; charset=utf-8",
                out.text.map(String::into_bytes),
            ),
        ];
        for (kind, mime, body) in kept {
            let Some(body) = body else { continue };
            let target = format!("urn:{kind}:{page}");
            let fields = [("Custody-Browser", version.clone())];
            let entry = records::write_produced_bytes(
                &mut spool.writer,
                &target,
                &spool.warcinfo_id,
                &Utc::now(),
                mime,
                &body,
                &fields,
            )?;
            info.records.push(crate::model::BrowserRecord {
                kind: kind.into(),
                record_id: entry.record_id.clone(),
                target_uri: target,
                mime: mime.into(),
                bytes: body.len() as u64,
                sha256: Sha256::of(&body),
            });
            spool.written.entries.push(entry);
        }
        let refused = out.refused.clone();
        Ok((spool, BrowserWritten { info, refused }))
    })
    .await
    .map_err(|e| ArchiveError::Internal(e.to_string()))?
}

/// What the spool holds so far.
#[derive(Default)]
struct Written {
    resources: Vec<Resource>,
    entries: Vec<RecordEntry>,
    exchanges: Vec<ExchangeManifest>,
    bytes: u64,
}

/// The capture manifest: who, what, when, how, with which software and
/// options. It closes the WARC (so the store alone can rebuild the index)
/// and its JSON is what `rebuild` reads back.
/// What a capture started with.
struct Started<'a> {
    id: &'a CaptureId,
    at: DateTime<Utc>,
    spool: &'a Path,
    /// The seed as typed, when it had a fragment.
    typed: Option<&'a str>,
}

/// What the crawl gathered besides the spool's exchanges.
type Crawled = (
    CrawlOutcome,
    Option<crate::media::MediaOutput>,
    Option<crate::browser::step::BrowserOutput>,
    Spool,
);

struct Manifest<'a> {
    media: Option<&'a MediaWritten>,
    browser: Option<&'a BrowserWritten>,
    id: &'a CaptureId,
    seed: &'a Url,
    typed: Option<&'a str>,
    final_url: &'a Url,
    settings: &'a CaptureSettings,
    started_at: DateTime<Utc>,
    finished_at: DateTime<Utc>,
    schedule: Option<&'a (String, DateTime<Utc>)>,
    change: Option<&'a PageChange>,
    written: &'a Written,
}

impl Manifest<'_> {
    fn to_json(&self) -> Result<Vec<u8>, ArchiveError> {
        let w = self.written;
        let mut manifest = json!({
            "custody_manifest": 1,
            "software": SOFTWARE,
            "capture_id": self.id,
            "seed_url": self.seed.as_str(),
            "final_url": self.final_url.as_str(),
            "started_at": warc::warc_date(&self.started_at),
            "finished_at": warc::warc_date(&self.finished_at),
            "user_agent": self.settings.user_agent,
            "options": options_json(self.settings),
            "schedule": self.schedule.map(|s| &s.0),
            "scheduled_for": self.schedule.map(|s| warc::warc_date(&s.1)),
            "egress_ips": egress_ips(&w.exchanges),
            "previous_capture": self.change.map(|c| &c.previous_capture),
            "page_changed": self.change.map(|c| c.changed),
            "exchanges": w.exchanges,
            "errors": w.resources.iter().filter_map(|r| r.error.as_ref().map(|e| json!({"url": r.url, "error": e}))).collect::<Vec<_>>(),
        });
        if let Some(typed) = self.typed {
            manifest["seed_as_typed"] = json!(typed);
        }
        if let Some(m) = self.media {
            manifest["media"] = json!(m.info);
            manifest["media_refused"] = json!(m.refused);
        }
        manifest["mode"] = json!("http");
        if let Some(b) = self.browser {
            manifest["mode"] = json!("browser");
            manifest["browser"] = json!(b.info);
            manifest["browser_refused"] = json!(b.refused);
        }
        serde_json::to_vec_pretty(&manifest).map_err(|e| ArchiveError::Internal(e.to_string()))
    }
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

/// What one exchange added: its resource, its records, its manifest entry.
struct ExchangeOut {
    resource: Resource,
    entries: Vec<RecordEntry>,
    manifest: ExchangeManifest,
}

/// The URL and payload digest under which an exchange's response may be a
/// revisit: a complete, non-empty HTTP response.
fn dedup_key(ex: &Exchange) -> Option<(String, Sha256)> {
    let r = ex.response.as_ref()?;
    (r.scan.head.is_some() && r.truncated.is_none() && r.scan.payload_len > 0)
        .then(|| (ex.url.to_string(), r.scan.payload_sha256))
}

/// Writes one exchange (response, then request) into the WARC; with
/// `original` (an earlier record of the same URL and payload), the response
/// is written as a `revisit` record.
fn write_exchange<W: std::io::Write>(
    writer: &mut WarcWriter<W>,
    mut ex: Exchange,
    warcinfo_id: &str,
    original: Option<RecordEntry>,
) -> Result<ExchangeOut, ArchiveError> {
    let url = ex.url.to_string();
    let mut protocols = vec!["http/1.1".to_string()];
    if let Some(tls) = &ex.tls {
        protocols.push(tls.protocol.clone());
    }
    let response = ex.response.as_mut().map(|r| records::Response {
        raw: &mut r.raw,
        raw_len: r.raw_len,
        raw_sha256: r.raw_sha256,
        scan: &r.scan,
        truncated: r.truncated.map(|t| t.as_str()),
    });
    let out = records::write_exchange(
        writer,
        records::Exchange {
            url: &url,
            date: ex.started_at,
            warcinfo_id,
            remote_ip: ex.remote.map(|a| a.ip().to_string()),
            protocols,
            cipher_suite: ex.tls.as_ref().map(|t| t.cipher_suite.as_str()),
            request: &ex.request,
            response,
            revisit_of: original.as_ref(),
        },
    )?;
    let error = ex.error.as_ref().map(|e| e.to_string());
    let mut manifest = ExchangeManifest {
        url: url.clone(),
        started_at: warc::warc_date(&ex.started_at),
        remote_ip: ex.remote.map(|a| a.ip().to_string()),
        local_ip: ex.local.map(|a| a.ip().to_string()),
        dns: ex.dns.iter().map(|a| a.to_string()).collect(),
        tls: ex.tls.clone(),
        timings: ex.timings.clone(),
        request_record_id: out.request_id.clone(),
        response_record_id: out.response_id.clone(),
        status: None,
        mime: None,
        block_sha256: None,
        payload_sha256: None,
        payload_bytes: 0,
        truncated: None,
        error: error.clone(),
        revisit_of: None,
    };
    let mut resource = Resource {
        url,
        status: None,
        mime: None,
        payload_sha256: None,
        bytes: 0,
        truncated: None,
        error,
    };
    match &ex.response {
        Some(r) if r.scan.head.is_none() => {
            // Not HTTP: kept whole in a `resource` record.
            manifest.block_sha256 = Some(r.raw_sha256);
            manifest.payload_bytes = r.raw_len;
            resource.bytes = r.raw_len;
        }
        Some(r) => {
            let mime = r.scan.head.as_ref().and_then(|h| h.mime());
            manifest.status = r.status();
            manifest.mime = mime.clone();
            manifest.block_sha256 = out.block_digest;
            manifest.payload_sha256 = Some(r.scan.payload_sha256);
            manifest.payload_bytes = r.scan.payload_len;
            manifest.truncated = r.truncated.map(|t| t.as_str().to_string());
            manifest.revisit_of = out.revisit_of.clone();
            resource.status = r.status();
            resource.mime = mime;
            resource.payload_sha256 = Some(r.scan.payload_sha256);
            resource.bytes = r.scan.payload_len;
            resource.truncated = manifest.truncated.clone();
        }
        None => {}
    }
    Ok(ExchangeOut {
        resource,
        entries: out.entries,
        manifest,
    })
}

fn warcinfo_fields(
    id: &CaptureId,
    seed: &Url,
    settings: &CaptureSettings,
) -> Vec<(&'static str, String)> {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    vec![
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
    ]
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

#[cfg(test)]
mod tests {
    //! The capture manifest closes every WARC and is what `rebuild` and
    //! `reindex` read back: its bytes are pinned, so that a change to a type
    //! or to serde cannot alter them silently. (`custody/VERSION` stands for
    //! the software string, which changes with each release.)

    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn a_capture_manifest_is_the_pinned_bytes() {
        let id: CaptureId = "0193f1e2-7c4a-7d2e-9b1a-3c5d7e9f1a2b".parse().unwrap();
        let seed = Url::parse("https://aleppo-news.example/2016/11/29/regime-airstrikes/").unwrap();
        let settings = CaptureSettings {
            user_agent: "custody (web evidence preservation)".into(),
            ..CaptureSettings::default()
        };
        let payload = Sha256::of(b"nearly 25 civilians were killed");
        let exchange = ExchangeManifest {
            url: seed.to_string(),
            started_at: "2016-11-29T10:04:00.123456Z".into(),
            remote_ip: Some("203.0.113.7".into()),
            local_ip: Some("198.51.100.2".into()),
            dns: vec!["203.0.113.7".into()],
            tls: Some(TlsInfo {
                protocol: "tls/1.3".into(),
                cipher_suite: "TLS_AES_128_GCM_SHA256".into(),
                alpn: Some("http/1.1".into()),
                peer_certificates: vec![
                    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".into(),
                ],
            }),
            timings: capture::fetch::Timings {
                dns_ms: Some(3),
                connect_ms: Some(20),
                tls_ms: Some(41),
                first_byte_ms: Some(90),
                total_ms: 120,
            },
            request_record_id: Some("<urn:uuid:00000000-0000-4000-8000-000000000800>".into()),
            response_record_id: Some("<urn:uuid:00000000-0000-4000-8000-000000000400>".into()),
            status: Some(200),
            mime: Some("text/html".into()),
            block_sha256: Some(Sha256::of(b"response")),
            payload_sha256: Some(payload),
            payload_bytes: 31,
            truncated: None,
            error: None,
            revisit_of: None,
        };
        let written = Written {
            resources: vec![Resource {
                url: "https://aleppo-news.example/wp-content/uploads/2016/11/aleppo.jpg".into(),
                status: None,
                mime: None,
                payload_sha256: None,
                bytes: 0,
                truncated: None,
                error: Some("connection refused".into()),
            }],
            entries: Vec::new(),
            exchanges: vec![exchange],
            bytes: 31,
        };
        let previous: CaptureId = "0193f1e2-7c4a-7d2e-9b1a-000000000001".parse().unwrap();
        let change = PageChange {
            previous_capture: previous,
            changed: true,
        };
        let schedule = ("aleppo-reports".to_string(), at("2016-11-29T10:04:00Z"));
        let manifest = Manifest {
            media: None,
            browser: None,
            typed: None,
            id: &id,
            seed: &seed,
            final_url: &seed,
            settings: &settings,
            started_at: at("2016-11-29T10:04:00.123456Z"),
            finished_at: at("2016-11-29T10:04:03.5Z"),
            schedule: Some(&schedule),
            change: Some(&change),
            written: &written,
        };
        let bytes = String::from_utf8(manifest.to_json().unwrap()).unwrap();
        let golden = include_str!("../tests/fixtures/golden/capture-manifest.json")
            .trim_end_matches('\n')
            .replace("custody/VERSION", SOFTWARE);
        assert_eq!(bytes, golden);
    }
}
