//! Capturing a page: its exchanges, redirect hops and requisites.
//!
//! The crawler fetches the seed (following redirects, each hop its own
//! exchange), discovers requisites in the final document and in stylesheets,
//! and fetches each URL once, a few at a time. Every [`Exchange`] is sent down
//! a channel as soon as it is complete, so the WARC writer can take it while
//! the next ones are fetched and no more than a handful are spooled at once.
//! This module knows nothing of object keys or SQL.

pub mod discover;
pub mod fetch;
pub mod policy;

use std::collections::HashSet;
use std::io::Read;
use std::path::PathBuf;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, StreamExt};
use tokio::sync::mpsc;
use url::Url;

pub use fetch::{Exchange, FetchError, FetchLimits, Fetcher, Forward, TlsInfo, Truncation};

/// Capture settings, validated by `config`.
#[derive(Clone, Debug)]
pub struct CaptureSettings {
    pub allow_private: bool,
    pub user_agent: String,
    pub limits: FetchLimits,
    pub max_capture_bytes: u64,
    pub max_redirects: usize,
    pub max_resources: usize,
    pub concurrency: usize,
    /// How deep `iframe`/`frame` documents are captured with their own
    /// requisites (1: frames of the page; 2: also frames inside those).
    pub max_frame_depth: usize,
    /// Segments (media, keys, maps) taken from HLS and DASH streams.
    pub max_stream_segments: usize,
    /// Bytes of stream segments per capture; later segments are skipped.
    pub max_stream_bytes: u64,
    /// Write `revisit` records for payloads already stored for the URL.
    pub dedup: bool,
    /// Extra trusted root certificates (PEM files), beside the Mozilla roots.
    pub extra_root_certificates: Vec<PathBuf>,
    /// The media step (yt-dlp through the recording proxy).
    pub media: MediaSettings,
    /// Browser mode (Chromium through the recording proxy).
    pub browser: BrowserSettings,
}

/// How a page is read: as a browser without scripts would (`http`), or
/// rendered by Chromium, every request it makes through custody's
/// recording proxy (`browser`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Http,
    Browser,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Http => "http",
            Mode::Browser => "browser",
        }
    }
}

/// Browser mode's settings (`capture.mode`, `capture.browser_*`, ...).
#[derive(Clone, Debug)]
pub struct BrowserSettings {
    pub mode: Mode,
    /// The Chromium to run; found on `PATH` when absent.
    pub path: Option<PathBuf>,
    /// The whole page's budget in the browser: load, behaviours, pictures.
    pub timeout: Duration,
    /// Scrolls of one window height each, for lazy images and feeds.
    pub max_scroll_steps: usize,
    /// Pixels of page height scrolled and pictured at most.
    pub max_page_height: u32,
    /// The browser window (CSS pixels).
    pub window: (u32, u32),
    /// Captures one browser process serves before it is restarted.
    pub restart_after: usize,
    /// Why the mode is http when it was not chosen (no Chromium found).
    pub mode_note: Option<String>,
}

impl Default for BrowserSettings {
    fn default() -> Self {
        BrowserSettings {
            mode: Mode::Http,
            path: None,
            timeout: Duration::from_secs(90),
            max_scroll_steps: 20,
            max_page_height: 20_000,
            window: (1280, 900),
            restart_after: 50,
            mode_note: None,
        }
    }
}

/// The media step's settings (`capture.media*`, `capture.ytdlp_path`).
#[derive(Clone, Debug)]
pub struct MediaSettings {
    /// Run yt-dlp on the page after it is captured.
    pub enabled: bool,
    /// yt-dlp's `-f` format selector.
    pub format: String,
    /// Bytes yt-dlp may fetch through the proxy, and store, per capture.
    pub max_bytes: u64,
    /// How long the whole step may take; yt-dlp is stopped after it.
    pub timeout: Duration,
    /// The yt-dlp to run; found on `PATH` when absent.
    pub ytdlp_path: Option<PathBuf>,
}

/// Best single file with audio, else the best video and audio merged
/// (which needs ffmpeg).
pub const DEFAULT_MEDIA_FORMAT: &str = "b/bv*+ba";

impl Default for MediaSettings {
    fn default() -> Self {
        MediaSettings {
            enabled: false,
            format: DEFAULT_MEDIA_FORMAT.to_string(),
            max_bytes: 4 << 30,
            timeout: Duration::from_secs(1800),
            ytdlp_path: None,
        }
    }
}

impl Default for CaptureSettings {
    fn default() -> Self {
        CaptureSettings {
            allow_private: false,
            user_agent: format!(
                "custody/{} (web evidence preservation)",
                env!("CARGO_PKG_VERSION")
            ),
            limits: FetchLimits {
                connect_timeout: Duration::from_secs(15),
                read_timeout: Duration::from_secs(30),
                resource_deadline: Duration::from_secs(600),
                max_body_bytes: 4 << 30,
                max_header_bytes: 64 * 1024,
                max_headers: 200,
                min_bytes_per_sec: 1024,
                throughput_window: Duration::from_secs(30),
            },
            max_capture_bytes: 16 << 30,
            max_redirects: 10,
            max_resources: 1000,
            concurrency: 4,
            max_frame_depth: 2,
            max_stream_segments: 2000,
            max_stream_bytes: 2 << 30,
            dedup: true,
            extra_root_certificates: Vec::new(),
            media: MediaSettings::default(),
            browser: BrowserSettings::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot read trusted certificates from {path}: {reason}")]
    Certificates { path: PathBuf, reason: String },
    #[error("TLS setup failed: {0}")]
    Tls(String),
    #[error("{0}")]
    Refused(String),
}

/// Checks a seed URL before anything is fetched: syntax, scheme, and (unless
/// private networks are allowed) literal addresses and local names.
pub fn check_seed(raw: &str, allow_private: bool) -> Result<Url, CaptureError> {
    let parsed = Url::parse(raw.trim());
    // No scheme: a parse error, or a host taken for one (`localhost:8080`).
    let schemeless = !raw.contains("://")
        && parsed.as_ref().map_or(true, |u| {
            u.scheme().contains('.') || u.scheme() == "localhost"
        });
    if schemeless {
        // `example.org/x` or `localhost:8080/x`: a URL without its scheme.
        if let Ok(guess) = Url::parse(&format!("http://{}", raw.trim())) {
            if guess
                .host_str()
                .is_some_and(|h| h.contains('.') || h == "localhost")
            {
                return Err(CaptureError::Refused(format!(
                    "{raw:?} has no scheme; did you mean {guess} (or https://{})?",
                    guess.as_str().trim_start_matches("http://")
                )));
            }
        }
    }
    let url = parsed.map_err(|e| {
        CaptureError::Refused(format!(
            "{raw:?} is not a valid URL ({e}); give a full URL such as https://example.org/page"
        ))
    })?;
    if url.scheme() != "http" && url.scheme() != "https" {
        return Err(CaptureError::Refused(format!(
            "{raw:?} uses the unsupported scheme {:?}; only http and https can be captured",
            url.scheme()
        )));
    }
    let Some(host) = url.host() else {
        return Err(CaptureError::Refused(format!("{raw:?} has no host name")));
    };
    if !allow_private {
        let private = match host {
            url::Host::Ipv4(ip) => !policy::is_public(ip.into()),
            url::Host::Ipv6(ip) => !policy::is_public(ip.into()),
            url::Host::Domain(name) => policy::is_local_name(name),
        };
        if private {
            return Err(CaptureError::Refused(format!(
                "{raw} is a private or local address; pass --allow-private to capture it"
            )));
        }
    }
    Ok(url)
}

/// How a crawl ended.
#[derive(Debug)]
pub struct CrawlOutcome {
    /// Set when the seed produced no response at all: the capture failed.
    pub seed_error: Option<FetchError>,
    pub final_url: Url,
}

pub struct Crawler {
    fetcher: Arc<Fetcher>,
    settings: CaptureSettings,
}

/// A discovered URL waiting to be fetched.
struct Pending {
    link: discover::Link,
    referer: Url,
    /// Frame depth of the document that linked it (the page is 0).
    depth: usize,
}

/// What a browser did for a page before the crawler reads it.
#[derive(Debug, Default)]
pub struct Prior {
    /// URLs the browser fetched (through the recording proxy).
    pub fetched: Vec<String>,
    /// The DOM it rendered, with the URL it was at.
    pub rendered: Option<(Url, String)>,
    /// Documents it fetched that name others (the page and its
    /// redirects, frames, stylesheets, stream manifests), read here in
    /// place of fetching them again, so that the page's source is the one
    /// the browser rendered.
    pub documents: Vec<Seen>,
}

impl Seen {
    /// Bytes of text held.
    pub fn text_len(&self) -> usize {
        self.text.as_ref().map_or(0, String::len)
    }

    /// Whether it is a redirect or a document that names others.
    pub fn names_others(&self) -> bool {
        matches!(self.status, Some(301 | 302 | 303 | 307 | 308))
            || discover::names_others(self.mime.as_deref())
    }

    /// Where it redirects to (without a fragment), if it is a redirect.
    fn redirect(&self) -> Option<Url> {
        match (self.status, &self.location) {
            (Some(301 | 302 | 303 | 307 | 308), Some(loc)) => {
                let mut next = self.url.join(loc).ok()?;
                next.set_fragment(None);
                Some(next)
            }
            _ => None,
        }
    }

    pub fn url(&self) -> &Url {
        &self.url
    }
}

/// Stream segments and bytes taken so far in a capture.
struct StreamBudget {
    segments: usize,
    bytes: u64,
}

fn is_markup(mime: &str) -> bool {
    mime == "text/html" || mime == "application/xhtml+xml"
}

/// What the crawler keeps of an exchange after handing it to the writer
/// (and what a browser step hands it of the documents it fetched).
#[derive(Clone, Debug)]
pub struct Seen {
    url: Url,
    /// Bytes received for the exchange.
    bytes: u64,
    status: Option<u16>,
    location: Option<String>,
    mime: Option<String>,
    text: Option<String>,
    error: Option<FetchError>,
}

/// Longest decoded text examined for links (a gzip bomb stops here).
const MAX_DECODED_TEXT: u64 = 32 * 1024 * 1024;
/// Rounds of discovery (page, then stylesheets, then their imports...).
const MAX_DISCOVERY_ROUNDS: usize = 16;

impl Crawler {
    pub fn new(settings: CaptureSettings, spool_dir: PathBuf) -> Result<Self, CaptureError> {
        let tls = Arc::new(tls_config(&settings.extra_root_certificates)?);
        let fetcher = Fetcher::new(
            tls,
            settings.limits.clone(),
            settings.allow_private,
            settings.user_agent.clone(),
            spool_dir,
        );
        Ok(Crawler {
            fetcher: Arc::new(fetcher),
            settings,
        })
    }

    pub fn settings(&self) -> &CaptureSettings {
        &self.settings
    }

    /// The fetcher every exchange of this crawler goes through (also the
    /// recording proxy's).
    pub fn fetcher(&self) -> &Arc<Fetcher> {
        &self.fetcher
    }

    /// Captures `seed` and its requisites, sending each exchange to `tx`.
    pub async fn run(&self, seed: Url, tx: mpsc::Sender<Exchange>) -> CrawlOutcome {
        self.run_after(seed, tx, Prior::default()).await
    }

    /// Captures `seed` and its requisites after a browser loaded it: what
    /// the browser fetched is not fetched again, and the DOM it rendered is
    /// searched for links as well as the page's source (so everything http
    /// mode takes is taken, and what scripts added too).
    pub async fn run_after(
        &self,
        seed: Url,
        tx: mpsc::Sender<Exchange>,
        prior: Prior,
    ) -> CrawlOutcome {
        let budget = Arc::new(AtomicU64::new(self.settings.max_capture_bytes));
        let visited = Arc::new(Mutex::new(HashSet::new()));
        let page = match read_chain(&seed, &prior.documents, self.settings.max_redirects) {
            Some((page, chain)) => {
                visited.lock().expect("visited set").extend(chain);
                Some(page)
            }
            None => {
                self.follow(seed.clone(), None, &budget, &visited, &tx)
                    .await
            }
        };
        // (After the page itself, so that its redirects are followed to
        // the document whose source is read.)
        visited
            .lock()
            .expect("visited set")
            .extend(prior.fetched.iter().cloned());
        let Some(page) = page else {
            return CrawlOutcome {
                seed_error: None,
                final_url: seed,
            };
        };
        if page.status.is_none() {
            return CrawlOutcome {
                seed_error: Some(
                    page.error
                        .unwrap_or(FetchError::Protocol("no response".into())),
                ),
                final_url: page.url,
            };
        }
        let mut streams = StreamBudget {
            segments: 0,
            bytes: 0,
        };
        let mut queue = self.links_of(&page, discover::Hint::Frame, 0, &mut streams);
        // What the browser's other documents name (frames counted one
        // deep: which frame held which is not known here).
        for doc in &prior.documents {
            if doc.url != page.url && matches!(doc.status, Some(200..=299)) {
                queue.extend(self.links_of(doc, discover::Hint::Frame, 1, &mut streams));
            }
        }
        if let Some((base, html)) = &prior.rendered {
            let rendered = Seen {
                url: base.clone(),
                bytes: 0,
                status: Some(200),
                location: None,
                mime: Some("text/html".into()),
                text: Some(html.clone()),
                error: None,
            };
            queue.extend(self.links_of(&rendered, discover::Hint::Frame, 0, &mut streams));
        }
        let mut fetched = 1 + prior.fetched.len();
        for _round in 0..MAX_DISCOVERY_ROUNDS {
            if queue.is_empty() {
                break;
            }
            let room = self.settings.max_resources.saturating_sub(fetched);
            let batch: Vec<Pending> = {
                let seen = visited.lock().expect("visited set");
                let mut unique = HashSet::new();
                let streams_full = streams.bytes >= self.settings.max_stream_bytes;
                queue
                    .drain(..)
                    .filter(|p| {
                        let skipped = streams_full && p.link.hint == discover::Hint::Segment;
                        !skipped
                            && !seen.contains(p.link.url.as_str())
                            && unique.insert(p.link.url.to_string())
                    })
                    .take(room)
                    .collect()
            };
            fetched += batch.len();
            let results: Vec<(Pending, Option<Seen>)> = stream::iter(batch)
                .map(|pending| {
                    let (budget, visited, tx) = (&budget, &visited, &tx);
                    async move {
                        let seen = self
                            .follow(
                                pending.link.url.clone(),
                                Some(pending.referer.clone()),
                                budget,
                                visited,
                                tx,
                            )
                            .await;
                        (pending, seen)
                    }
                })
                .buffer_unordered(self.settings.concurrency.max(1))
                .collect()
                .await;
            for (pending, seen) in results {
                let Some(seen) = seen else { continue };
                if pending.link.hint == discover::Hint::Segment {
                    streams.bytes += seen.bytes;
                }
                // The page is depth 0; a frame it holds is depth 1.
                let depth = match pending.link.hint {
                    discover::Hint::Frame => pending.depth + 1,
                    _ => pending.depth,
                };
                queue.extend(self.links_of(&seen, pending.link.hint, depth, &mut streams));
            }
        }
        CrawlOutcome {
            seed_error: None,
            final_url: page.url,
        }
    }

    /// What a fetched document refers to, by what it turned out to be: a
    /// stylesheet, a frame (or the page) within the depth limit, or a
    /// stream. `depth` is the frame depth of `seen` itself.
    fn links_of(
        &self,
        seen: &Seen,
        hint: discover::Hint,
        depth: usize,
        streams: &mut StreamBudget,
    ) -> Vec<Pending> {
        use discover::Hint;
        let Some(text) = &seen.text else {
            return Vec::new();
        };
        let mime = seen.mime.as_deref().unwrap_or_default();
        let path = seen.url.path().to_ascii_lowercase();
        let is_hls = discover::is_hls_type(mime) || (path.ends_with(".m3u8") && !is_markup(mime));
        let is_dash =
            mime == "application/dash+xml" || (path.ends_with(".mpd") && !is_markup(mime));
        let (links, depth) = if is_hls || is_dash {
            let room = self
                .settings
                .max_stream_segments
                .saturating_sub(streams.segments);
            let links = if is_hls {
                discover::hls_links(text, &seen.url, room)
            } else {
                discover::dash_links(text, &seen.url, room)
            };
            streams.segments += links.iter().filter(|l| l.hint == Hint::Segment).count();
            (links, depth)
        } else if mime == "text/css" || (hint == Hint::Stylesheet && !is_markup(mime)) {
            (discover::css_links(text, &seen.url), depth)
        } else if hint == Hint::Frame && is_markup(mime) {
            let links = discover::html_links(text, &seen.url)
                .into_iter()
                .filter(|l| l.hint != Hint::Frame || depth < self.settings.max_frame_depth)
                .collect();
            (links, depth)
        } else {
            (Vec::new(), depth)
        };
        links
            .into_iter()
            .map(|link| Pending {
                link,
                referer: seen.url.clone(),
                depth,
            })
            .collect()
    }

    /// Fetches `url`, following redirects; every hop is sent to `tx`.
    /// Returns what was learnt of the last hop.
    async fn follow(
        &self,
        mut url: Url,
        referer: Option<Url>,
        budget: &fetch::Budget,
        visited: &Mutex<HashSet<String>>,
        tx: &mpsc::Sender<Exchange>,
    ) -> Option<Seen> {
        let mut last = None;
        for _hop in 0..=self.settings.max_redirects {
            visited.lock().expect("visited set").insert(url.to_string());
            let ex = self.fetcher.fetch(&url, referer.as_ref(), budget).await;
            let seen = observe(&ex);
            // The receiver only goes away when the capture is being abandoned.
            if tx.send(ex).await.is_err() {
                return None;
            }
            let next = seen.redirect();
            last = Some(seen);
            let Some(next) = next else { break };
            if visited.lock().expect("visited set").contains(next.as_str()) {
                break; // a redirect loop, or a URL this capture already has
            }
            url = next;
        }
        last
    }
}

/// The page at `seed` from documents a browser fetched: the last of its
/// redirects (at most `max` of them) and every URL on the way, when the
/// browser reached it with a response.
fn read_chain(seed: &Url, documents: &[Seen], max: usize) -> Option<(Seen, Vec<String>)> {
    let mut url = seed.clone();
    let mut chain = Vec::new();
    for _hop in 0..=max {
        let doc = documents.iter().find(|d| d.url == url)?;
        doc.status?;
        chain.push(url.to_string());
        let Some(next) = doc.redirect() else {
            return Some((doc.clone(), chain));
        };
        if chain.contains(&next.to_string()) {
            return Some((doc.clone(), chain));
        }
        url = next;
    }
    None
}

/// What the crawler learns of `ex`: its status, redirect, type and text.
pub fn observe(ex: &Exchange) -> Seen {
    let head = ex.response.as_ref().and_then(|r| r.scan.head.as_ref());
    let mime = head.and_then(|h| h.mime());
    let text = ex.response.as_ref().and_then(|r| {
        let sample = r.sample.as_ref()?;
        let encoding = head.and_then(|h| h.content_encoding());
        let decoded = decode_for_links(sample, encoding.as_deref())?;
        let content_type = head.and_then(|h| h.header("content-type"));
        let html = mime.as_deref().is_none_or(is_markup);
        Some(crate::charset::decode(
            &decoded,
            content_type.as_deref(),
            html,
        ))
    });
    Seen {
        url: ex.url.clone(),
        bytes: ex.response.as_ref().map_or(0, |r| r.raw_len),
        status: head.map(|h| h.status),
        location: head.and_then(|h| h.header("location")),
        mime,
        text,
        error: ex.error.clone(),
    }
}

/// Undoes content-encoding on a payload sample, capped so that a
/// decompression bomb costs at most [`MAX_DECODED_TEXT`] bytes.
pub fn decode_for_links(sample: &[u8], encoding: Option<&str>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let ok = match encoding {
        None => {
            out.extend_from_slice(&sample[..sample.len().min(MAX_DECODED_TEXT as usize)]);
            true
        }
        Some("gzip") | Some("x-gzip") => flate2::read::MultiGzDecoder::new(sample)
            .take(MAX_DECODED_TEXT)
            .read_to_end(&mut out)
            .is_ok(),
        Some("deflate") => {
            flate2::read::ZlibDecoder::new(sample)
                .take(MAX_DECODED_TEXT)
                .read_to_end(&mut out)
                .is_ok()
                || {
                    out.clear();
                    flate2::read::DeflateDecoder::new(sample)
                        .take(MAX_DECODED_TEXT)
                        .read_to_end(&mut out)
                        .is_ok()
                }
        }
        Some(_) => false,
    };
    // A truncated sample decodes partly; what decoded is still useful.
    (ok || !out.is_empty()).then_some(out)
}

fn tls_config(extra_roots: &[PathBuf]) -> Result<rustls::ClientConfig, CaptureError> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for path in extra_roots {
        let bad = |reason: String| CaptureError::Certificates {
            path: path.clone(),
            reason,
        };
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))?;
        let mut count = 0;
        for cert in certs {
            roots
                .add(cert.map_err(|e| bad(e.to_string()))?)
                .map_err(|e| bad(e.to_string()))?;
            count += 1;
        }
        if count == 0 {
            return Err(bad("no PEM certificates in the file".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| CaptureError::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_are_checked_before_anything_is_fetched() {
        assert!(check_seed("https://aleppo-news.example/2016/11/29/", false).is_ok());
        for (bad, says) in [
            ("not a url", "not a valid URL"),
            ("ftp://aleppo-news.example/file", "unsupported scheme"),
            ("http://127.0.0.1:8080/", "private or local"),
            ("http://[::1]/", "private or local"),
            ("http://localhost/", "private or local"),
            ("http://192.168.0.10/", "private or local"),
        ] {
            let err = check_seed(bad, false).unwrap_err().to_string();
            assert!(err.contains(says), "{bad}: {err}");
            assert!(!err.contains('\n'));
        }
        assert!(check_seed("http://127.0.0.1:8080/", true).is_ok());
    }

    #[test]
    fn decoding_for_links_is_capped() {
        // 1 GiB of zeros compresses to about 1 MiB; decoding stops at the cap.
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..64 {
            std::io::Write::write_all(&mut enc, &zeros).unwrap();
        }
        let bomb = enc.finish().unwrap();
        let text = decode_for_links(&bomb, Some("gzip")).unwrap();
        assert_eq!(text.len() as u64, MAX_DECODED_TEXT);
    }
}
