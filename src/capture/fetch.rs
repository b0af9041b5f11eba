//! One HTTP/1.1 exchange, recorded byte for byte.
//!
//! hyper drives the protocol over a [`Recorder`] that wraps the (TLS) stream
//! and keeps a copy of every byte sent and received. Received bytes go to a
//! spool file as they arrive, through a SHA-256 hasher (the WARC block
//! digest) and the [`ResponseScanner`] (the payload digest, framing removed),
//! so a body of any size passes through bounded memory. What is stored is
//! what arrived: hyper's decoded view is only used to pace the reads.

use std::io::{Seek, SeekFrom};
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use base64::Engine;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde::Serialize;
use sha2::Digest;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use url::Url;

use super::policy;
use crate::model::Sha256;
use crate::warc::{ResponseScanner, ScanResult};

/// Limits on one exchange.
#[derive(Clone, Debug)]
pub struct FetchLimits {
    /// DNS, TCP connect and TLS handshake together.
    pub connect_timeout: Duration,
    /// Longest silence while waiting for response bytes.
    pub read_timeout: Duration,
    /// Whole exchange, from lookup to last body byte.
    pub resource_deadline: Duration,
    /// Largest body kept per resource; longer bodies are truncated.
    pub max_body_bytes: u64,
    /// Largest response head (status line and header fields).
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// Slowest acceptable body rate, averaged over `throughput_window`: a
    /// body that drips slower is cut (`WARC-Truncated: time`).
    pub min_bytes_per_sec: u64,
    pub throughput_window: Duration,
}

/// Why an exchange failed or ended early.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("DNS lookup of {host} failed: {reason}")]
    Dns { host: String, reason: String },
    #[error("{host} resolves to non-public address {ip}; pass --allow-private to capture private networks")]
    PrivateAddress { host: String, ip: IpAddr },
    #[error("connection to {addr} failed: {reason}")]
    Connect { addr: String, reason: String },
    #[error("TLS handshake with {host} failed: {reason}")]
    Tls { host: String, reason: String },
    #[error("timed out after {secs}s while {stage}")]
    Timeout { stage: &'static str, secs: u64 },
    /// The capture step that asked (the browser's or the media step's) ran
    /// out of time: what arrived is kept.
    #[error("cut off when the {step} step's time ran out ({setting})")]
    StepOver {
        step: &'static str,
        setting: &'static str,
    },
    #[error("invalid HTTP response: {0}")]
    Protocol(String),
    #[error("body slower than {min} bytes/s over {secs}s; cut off")]
    TooSlow { min: u64, secs: u64 },
    #[error("connection lost during the body: {0}")]
    Disconnected(String),
    #[error("spool i/o failed: {0}")]
    Spool(String),
    #[error("unsupported URL: {0}")]
    Url(String),
}

impl FetchError {
    /// A short machine-readable kind, recorded with failures.
    pub fn kind(&self) -> &'static str {
        match self {
            FetchError::Dns { .. } => "dns",
            FetchError::PrivateAddress { .. } => "private_address",
            FetchError::Connect { .. } => "connect",
            FetchError::Tls { .. } => "tls",
            FetchError::Timeout { .. } | FetchError::StepOver { .. } => "timeout",
            FetchError::TooSlow { .. } => "too_slow",
            FetchError::Protocol(_) => "protocol",
            FetchError::Disconnected(_) => "disconnected",
            FetchError::Spool(_) => "spool",
            FetchError::Url(_) => "url",
        }
    }
}

/// Why a body was cut short (`WARC-Truncated`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Truncation {
    Length,
    Time,
    Disconnect,
}

impl Truncation {
    pub fn as_str(self) -> &'static str {
        match self {
            Truncation::Length => "length",
            Truncation::Time => "time",
            Truncation::Disconnect => "disconnect",
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct TlsInfo {
    /// `tls/1.3` style, as used in `WARC-Protocol`.
    pub protocol: String,
    /// IANA name, e.g. `TLS_AES_128_GCM_SHA256`.
    pub cipher_suite: String,
    pub alpn: Option<String>,
    /// The peer's certificate chain, leaf first, in PEM.
    pub peer_certificates: Vec<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Timings {
    pub dns_ms: Option<u64>,
    pub connect_ms: Option<u64>,
    pub tls_ms: Option<u64>,
    pub first_byte_ms: Option<u64>,
    pub total_ms: u64,
}

/// A received response: raw bytes spooled, digests computed.
pub struct ResponseData {
    /// The exact bytes received, positioned at the start.
    pub raw: std::fs::File,
    pub raw_len: u64,
    pub raw_sha256: Sha256,
    pub scan: ScanResult,
    pub truncated: Option<Truncation>,
    /// Why the bytes did not parse as an HTTP response (`scan.head` is then
    /// absent).
    pub parse_error: Option<String>,
    /// The first bytes of the payload (content-encoding still applied), kept
    /// for link discovery when the response may hold links.
    pub sample: Option<Vec<u8>>,
}

impl ResponseData {
    pub fn status(&self) -> Option<u16> {
        self.scan.head.as_ref().map(|h| h.status)
    }
}

/// One request and what came of it.
pub struct Exchange {
    pub url: Url,
    pub started_at: DateTime<Utc>,
    /// The exact request bytes sent.
    pub request: Vec<u8>,
    pub response: Option<ResponseData>,
    pub remote: Option<SocketAddr>,
    /// Our end of the connection (the egress address).
    pub local: Option<SocketAddr>,
    pub dns: Vec<IpAddr>,
    pub tls: Option<TlsInfo>,
    pub timings: Timings,
    /// Set when the exchange failed, or when a body was cut short.
    pub error: Option<FetchError>,
}

/// A request a browser made, forwarded by the recording proxy
/// (`crate::browser::proxy`): its method, header fields (in order, as sent)
/// and body. Hop-by-hop fields are not forwarded; `Host` is set from the URL.
#[derive(Clone, Debug, Default)]
pub struct Forward {
    pub method: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Bytes,
}

/// Header fields that belong to one connection (RFC 9110, section 7.6.1),
/// never forwarded.
const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "proxy-connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-authenticate",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// What an exchange sends: custody's own GET, or a browser's request.
#[derive(Clone, Copy)]
enum Ask<'a> {
    Get { referer: Option<&'a Url> },
    Forward(&'a Forward),
}

/// Fetches single exchanges with shared TLS settings and limits.
pub struct Fetcher {
    tls: Arc<rustls::ClientConfig>,
    limits: FetchLimits,
    allow_private: bool,
    user_agent: String,
    spool_dir: std::path::PathBuf,
    sample_limit: usize,
    /// Every exchange ends by this instant at the latest (a step's whole
    /// time budget), what arrived by then kept.
    not_after: Option<tokio::time::Instant>,
    /// That step's name and the setting of its budget, for the error.
    step: (&'static str, &'static str),
}

/// Shared byte budget for a whole capture.
pub type Budget = Arc<AtomicU64>;

impl Fetcher {
    pub fn new(
        tls: Arc<rustls::ClientConfig>,
        limits: FetchLimits,
        allow_private: bool,
        user_agent: String,
        spool_dir: std::path::PathBuf,
    ) -> Self {
        Fetcher {
            tls,
            limits,
            allow_private,
            user_agent,
            spool_dir,
            sample_limit: 16 * 1024 * 1024,
            not_after: None,
            step: ("capture", "capture.resource_timeout_secs"),
        }
    }

    /// The same fetcher, with every exchange cut off at `at` at the latest
    /// (as the resource deadline cuts it: what arrived is kept, marked
    /// truncated), when the time of `step` (budgeted by `setting`) ends.
    pub fn ending_at(
        &self,
        at: tokio::time::Instant,
        step: &'static str,
        setting: &'static str,
    ) -> Fetcher {
        Fetcher {
            tls: self.tls.clone(),
            limits: self.limits.clone(),
            allow_private: self.allow_private,
            user_agent: self.user_agent.clone(),
            spool_dir: self.spool_dir.clone(),
            sample_limit: self.sample_limit,
            not_after: Some(at),
            step: (step, setting),
        }
    }

    fn step_over(&self) -> FetchError {
        FetchError::StepOver {
            step: self.step.0,
            setting: self.step.1,
        }
    }

    /// Fetches `url` with GET. Never panics on hostile input; every failure
    /// is described in the returned exchange.
    pub async fn fetch(&self, url: &Url, referer: Option<&Url>, budget: &Budget) -> Exchange {
        self.fetch_as(url, Ask::Get { referer }, budget).await
    }

    /// Sends a browser's request to `url`, under the same network policy,
    /// limits and recording as [`Fetcher::fetch`].
    pub async fn forward(&self, url: &Url, request: &Forward, budget: &Budget) -> Exchange {
        self.fetch_as(url, Ask::Forward(request), budget).await
    }

    async fn fetch_as(&self, url: &Url, ask: Ask<'_>, budget: &Budget) -> Exchange {
        let started = Instant::now();
        let mut ex = Exchange {
            url: url.clone(),
            started_at: Utc::now(),
            request: Vec::new(),
            response: None,
            remote: None,
            local: None,
            dns: Vec::new(),
            tls: None,
            timings: Timings::default(),
            error: None,
        };
        let now = tokio::time::Instant::now();
        let mut deadline = now + self.limits.resource_deadline;
        if let Some(at) = self.not_after {
            if at <= now {
                // The step's time is up: nothing more is asked of anyone.
                ex.error = Some(self.step_over());
                return ex;
            }
            deadline = deadline.min(at);
        }
        let secs = (deadline - now).as_secs();
        // The body loop watches the deadline itself so that a cut-off body is
        // kept; this outer limit only bounds the phases before it, with a
        // grace period for spooling.
        let outer = deadline + Duration::from_secs(5);
        let outcome = tokio::time::timeout_at(
            outer,
            self.exchange(&mut ex, ask, budget, started, deadline),
        )
        .await;
        if outcome.is_err() {
            ex.error.get_or_insert(FetchError::Timeout {
                stage: "fetching the resource",
                secs,
            });
        }
        ex.timings.total_ms = started.elapsed().as_millis() as u64;
        ex
    }

    async fn exchange(
        &self,
        ex: &mut Exchange,
        ask: Ask<'_>,
        budget: &Budget,
        started: Instant,
        deadline: tokio::time::Instant,
    ) {
        let url = ex.url.clone();
        let Some(host) = url
            .host_str()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_string())
        else {
            ex.error = Some(FetchError::Url(format!("{url} has no host")));
            return;
        };
        let https = match url.scheme() {
            "http" => false,
            "https" => true,
            other => {
                ex.error = Some(FetchError::Url(format!(
                    "scheme {other:?} is not http or https"
                )));
                return;
            }
        };
        let port = url
            .port_or_known_default()
            .unwrap_or(if https { 443 } else { 80 });

        let Some(allowed) = self.resolve(ex, &host, port).await else {
            return;
        };
        let t = Instant::now();
        let Some((tcp, addr)) = self.connect(ex, &allowed).await else {
            return;
        };
        let _ = tcp.set_nodelay(true);
        ex.remote = Some(addr);
        ex.local = tcp.local_addr().ok();
        ex.timings.connect_ms = Some(t.elapsed().as_millis() as u64);

        let tape = Arc::new(Mutex::new(Tape::default()));
        if https {
            let t = Instant::now();
            let name = match rustls_pki_types::ServerName::try_from(host.clone()) {
                Ok(n) => n,
                Err(e) => {
                    ex.error = Some(FetchError::Tls {
                        host,
                        reason: e.to_string(),
                    });
                    return;
                }
            };
            let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
            let handshake = connector.connect(name, tcp);
            let tls = match within(
                self.limits.connect_timeout,
                "in the TLS handshake",
                handshake,
                |reason| FetchError::Tls {
                    host: host.clone(),
                    reason,
                },
            )
            .await
            {
                Ok(s) => s,
                Err(e) => {
                    ex.error = Some(e);
                    return;
                }
            };
            ex.tls = Some(tls_info(tls.get_ref().1));
            ex.timings.tls_ms = Some(t.elapsed().as_millis() as u64);
            self.http_exchange(
                ex,
                Recorder {
                    inner: tls,
                    tape: tape.clone(),
                },
                &tape,
                &host,
                ask,
                budget,
                started,
                deadline,
            )
            .await;
        } else {
            self.http_exchange(
                ex,
                Recorder {
                    inner: tcp,
                    tape: tape.clone(),
                },
                &tape,
                &host,
                ask,
                budget,
                started,
                deadline,
            )
            .await;
        }
    }

    /// The host's addresses the network policy allows (every one is
    /// checked); `None`, with the exchange's error set, when there are none.
    async fn resolve(&self, ex: &mut Exchange, host: &str, port: u16) -> Option<Vec<SocketAddr>> {
        // Resolve and check every address against the network policy.
        let t = Instant::now();
        let addrs: Vec<SocketAddr> = if let Ok(ip) = host.parse::<IpAddr>() {
            vec![SocketAddr::new(ip, port)]
        } else {
            let lookup = tokio::net::lookup_host((host, port));
            let found = within(
                self.limits.connect_timeout,
                "resolving the host name",
                lookup,
                |reason| FetchError::Dns {
                    host: host.to_string(),
                    reason,
                },
            );
            match found.await {
                Ok(found) => found.collect(),
                Err(e) => {
                    ex.error = Some(e);
                    return None;
                }
            }
        };
        ex.timings.dns_ms = Some(t.elapsed().as_millis() as u64);
        ex.dns = addrs.iter().map(|a| a.ip()).collect();
        let allowed: Vec<SocketAddr> = addrs
            .iter()
            .copied()
            .filter(|a| self.allow_private || policy::is_public(a.ip()))
            .collect();
        if allowed.is_empty() {
            ex.error = Some(match addrs.first() {
                Some(a) => FetchError::PrivateAddress {
                    host: host.to_string(),
                    ip: a.ip(),
                },
                None => FetchError::Dns {
                    host: host.to_string(),
                    reason: "no addresses".into(),
                },
            });
            return None;
        }
        Some(allowed)
    }

    /// A connection to the first allowed address that answers.
    async fn connect(
        &self,
        ex: &mut Exchange,
        allowed: &[SocketAddr],
    ) -> Option<(TcpStream, SocketAddr)> {
        let connect_secs = self.limits.connect_timeout.as_secs();
        // Connect to the first address that answers.
        let mut last_err = None;
        let mut tcp = None;
        for addr in allowed {
            match tokio::time::timeout(self.limits.connect_timeout, TcpStream::connect(addr)).await
            {
                Ok(Ok(s)) => {
                    tcp = Some((s, *addr));
                    break;
                }
                Ok(Err(e)) => {
                    last_err = Some(FetchError::Connect {
                        addr: addr.to_string(),
                        reason: e.to_string(),
                    })
                }
                Err(_) => {
                    last_err = Some(FetchError::Timeout {
                        stage: "connecting",
                        secs: connect_secs,
                    })
                }
            }
        }
        if tcp.is_none() {
            ex.error = last_err;
        }
        tcp
    }

    #[allow(clippy::too_many_arguments)]
    async fn http_exchange<S>(
        &self,
        ex: &mut Exchange,
        io: Recorder<S>,
        tape: &Arc<Mutex<Tape>>,
        host: &str,
        ask: Ask<'_>,
        budget: &Budget,
        started: Instant,
        deadline: tokio::time::Instant,
    ) where
        S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let read_secs = self.limits.read_timeout.as_secs();
        let mut builder = hyper::client::conn::http1::Builder::new();
        builder
            .title_case_headers(true)
            .max_headers(self.limits.max_headers)
            .max_buf_size(self.limits.max_header_bytes.max(8192) + 64 * 1024);
        let (mut sender, conn) = match builder
            .handshake::<_, Full<Bytes>>(hyper_util::rt::TokioIo::new(io))
            .await
        {
            Ok(pair) => pair,
            Err(e) => {
                ex.error = Some(FetchError::Protocol(e.to_string()));
                return;
            }
        };
        let conn_task = AbortOnDrop(tokio::spawn(async move {
            let _ = conn.await;
        }));

        let req = match ask {
            Ask::Get { referer } => self.request_for(&ex.url, host, referer),
            Ask::Forward(f) => forwarded(&ex.url, host, f),
        };
        let req = match req {
            Ok(r) => r,
            Err(e) => {
                ex.error = Some(e);
                return;
            }
        };

        let head_only = matches!(ask, Ask::Forward(f) if f.method.eq_ignore_ascii_case("HEAD"));
        let mut spool = match Spool::create(
            &self.spool_dir,
            self.limits.max_header_bytes,
            self.limits.max_headers,
            head_only,
        ) {
            Ok(s) => s,
            Err(e) => {
                ex.error = Some(FetchError::Spool(e.to_string()));
                return;
            }
        };

        let first_wait = self
            .limits
            .read_timeout
            .min(deadline.saturating_duration_since(tokio::time::Instant::now()));
        let head = tokio::time::timeout(first_wait, sender.send_request(req)).await;
        ex.request = tape.lock().map(|t| t.sent.clone()).unwrap_or_default();
        let (truncated, mut error) = match head {
            Err(_) => (
                None,
                Some(FetchError::Timeout {
                    stage: "waiting for the response",
                    secs: read_secs,
                }),
            ),
            Ok(Err(e)) => (None, Some(FetchError::Protocol(e.to_string()))),
            Ok(Ok(response)) => {
                ex.timings.first_byte_ms = Some(started.elapsed().as_millis() as u64);
                self.read_body(response.into_body(), &mut spool, tape, budget, deadline)
                    .await
            }
        };
        drop(sender);
        drop(conn_task);
        if let Err(e) = spool.drain(tape).await {
            error.get_or_insert(e);
        }
        budget.fetch_sub(
            spool.raw_len.min(budget.load(Ordering::Relaxed)),
            Ordering::Relaxed,
        );
        match spool.finish(truncated, self.sample_limit).await {
            Ok(Some(data)) => {
                if data.scan.head.is_none() {
                    // The scanner's reason names the fault in the bytes;
                    // hyper's is vaguer, but better than none.
                    match &data.parse_error {
                        Some(reason) => error = Some(FetchError::Protocol(reason.clone())),
                        None => {
                            error.get_or_insert(FetchError::Protocol(
                                "no complete response head received".into(),
                            ));
                        }
                    }
                }
                if let (Some(_), Some(reason)) = (&data.scan.head, &data.parse_error) {
                    error.get_or_insert(FetchError::Protocol(reason.clone()));
                }
                ex.response = Some(data);
            }
            Ok(None) => {}
            Err(e) => {
                error.get_or_insert(e);
            }
        }
        if error.is_some() {
            ex.error = error;
        }
    }

    /// Reads the body into the spool until it ends, a limit is reached, it
    /// is too slow, or the deadline passes: how it was cut short, and why.
    async fn read_body(
        &self,
        mut body: hyper::body::Incoming,
        spool: &mut Spool,
        tape: &Arc<Mutex<Tape>>,
        budget: &Budget,
        deadline: tokio::time::Instant,
    ) -> (Option<Truncation>, Option<FetchError>) {
        let read_secs = self.limits.read_timeout.as_secs();
        let (mut truncated, mut error) = (None, None);
        let limit = self.limits.max_body_bytes;
        let mut pace =
            Throughput::new(self.limits.min_bytes_per_sec, self.limits.throughput_window);
        loop {
            if let Err(e) = spool.drain(tape).await {
                error = Some(e);
                break;
            }
            let payload = spool.payload_len;
            let remaining_budget = budget.load(Ordering::Relaxed);
            if payload >= limit || spool.raw_len >= remaining_budget {
                truncated = Some(Truncation::Length);
                break;
            }
            if pace.too_slow(spool.raw_len) {
                truncated = Some(Truncation::Time);
                error = Some(FetchError::TooSlow {
                    min: self.limits.min_bytes_per_sec,
                    secs: self.limits.throughput_window.as_secs(),
                });
                break;
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let wait = self.limits.read_timeout.min(left).min(pace.next_check());
            match tokio::time::timeout(wait, body.frame()).await {
                Err(_) if wait < self.limits.read_timeout.min(left) => {
                    // Time to look at the pace again, not a timeout.
                }
                Err(_) => {
                    truncated = Some(Truncation::Time);
                    error = Some(if wait == left && self.not_after == Some(deadline) {
                        self.step_over()
                    } else if wait == left {
                        FetchError::Timeout {
                            stage: "fetching the resource (deadline)",
                            secs: self.limits.resource_deadline.as_secs(),
                        }
                    } else {
                        FetchError::Timeout {
                            stage: "reading the body",
                            secs: read_secs,
                        }
                    });
                    break;
                }
                Ok(None) => break,
                Ok(Some(Ok(_frame))) => {}
                Ok(Some(Err(e))) => {
                    truncated = Some(Truncation::Disconnect);
                    error = Some(FetchError::Disconnected(e.to_string()));
                    break;
                }
            }
        }
        (truncated, error)
    }

    /// The GET request for `url`, as custody sends every one.
    fn request_for(
        &self,
        url: &Url,
        host: &str,
        referer: Option<&Url>,
    ) -> Result<hyper::Request<Full<Bytes>>, FetchError> {
        let mut req = hyper::Request::builder()
            .method("GET")
            .uri(origin_form(url))
            .header("Host", host_header(url, host))
            .header("User-Agent", &self.user_agent)
            .header(
                "Accept",
                "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
            )
            .header("Accept-Language", "en;q=0.9,*;q=0.5")
            .header("Accept-Encoding", "gzip, deflate");
        if let Some(r) = referer {
            req = req.header("Referer", r.as_str());
        }
        req.body(Full::new(Bytes::new()))
            .map_err(|e| FetchError::Url(e.to_string()))
    }
}

/// The request target in origin form: path and query.
fn origin_form(url: &Url) -> String {
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_string(),
    }
}

/// The `Host` field value for `url`.
fn host_header(url: &Url, host: &str) -> String {
    match url.port() {
        Some(p) => format!("{}:{p}", host_for_header(host)),
        None => host_for_header(host),
    }
}

/// A browser's request as it goes to the origin: its method, fields and
/// body, without hop-by-hop fields, in origin form.
fn forwarded(
    url: &Url,
    host: &str,
    f: &Forward,
) -> Result<hyper::Request<Full<Bytes>>, FetchError> {
    let method = hyper::Method::from_bytes(f.method.as_bytes())
        .map_err(|e| FetchError::Url(format!("method {:?}: {e}", f.method)))?;
    let mut req = hyper::Request::builder()
        .method(method)
        .uri(origin_form(url))
        .header("Host", host_header(url, host));
    for (name, value) in &f.headers {
        let lower = name.to_ascii_lowercase();
        if lower == "host" || HOP_BY_HOP.contains(&lower.as_str()) {
            continue;
        }
        req = req.header(name.as_str(), value.as_slice());
    }
    req.body(Full::new(f.body.clone()))
        .map_err(|e| FetchError::Url(e.to_string()))
}

/// The minimum-throughput rule: after each full window, the bytes received
/// in it must reach `min_bytes_per_sec` times its length.
struct Throughput {
    min: u64,
    window: Duration,
    started: tokio::time::Instant,
    at_window_start: u64,
}

impl Throughput {
    fn new(min: u64, window: Duration) -> Self {
        Throughput {
            min,
            window,
            started: tokio::time::Instant::now(),
            at_window_start: 0,
        }
    }

    fn next_check(&self) -> Duration {
        if self.min == 0 {
            return Duration::MAX;
        }
        (self.started + self.window).saturating_duration_since(tokio::time::Instant::now())
            + Duration::from_millis(1)
    }

    /// Whether the window that just ended was too slow; starts the next.
    fn too_slow(&mut self, received: u64) -> bool {
        if self.min == 0 || self.started.elapsed() < self.window {
            return false;
        }
        let needed = (self.min as f64 * self.window.as_secs_f64()) as u64;
        let slow = received - self.at_window_start < needed;
        self.started = tokio::time::Instant::now();
        self.at_window_start = received;
        slow
    }
}

/// Runs `fut` with a time limit: a timeout names `stage`, a failure goes
/// through `on_error`.
async fn within<T, E: std::fmt::Display>(
    limit: Duration,
    stage: &'static str,
    fut: impl std::future::Future<Output = Result<T, E>>,
    on_error: impl FnOnce(String) -> FetchError,
) -> Result<T, FetchError> {
    match tokio::time::timeout(limit, fut).await {
        Err(_) => Err(FetchError::Timeout {
            stage,
            secs: limit.as_secs(),
        }),
        Ok(Err(e)) => Err(on_error(e.to_string())),
        Ok(Ok(v)) => Ok(v),
    }
}

fn host_for_header(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// Received bytes on their way to disk.
struct Spool {
    file: tokio::io::BufWriter<tokio::fs::File>,
    path: tempfile::TempPath,
    hasher: sha2::Sha256,
    raw_len: u64,
    scanner: ResponseScanner,
    payload_len: u64,
    parse_error: Option<String>,
}

impl Spool {
    /// `head_only`: the response answers a HEAD request (no body).
    fn create(
        dir: &std::path::Path,
        max_head: usize,
        max_headers: usize,
        head_only: bool,
    ) -> std::io::Result<Spool> {
        let (file, path) = tempfile::Builder::new()
            .prefix("exchange-")
            .tempfile_in(dir)?
            .into_parts();
        Ok(Spool {
            file: tokio::io::BufWriter::with_capacity(256 * 1024, tokio::fs::File::from_std(file)),
            path,
            hasher: sha2::Sha256::new(),
            raw_len: 0,
            scanner: ResponseScanner::new(max_head, max_headers, head_only),
            payload_len: 0,
            parse_error: None,
        })
    }

    /// Moves bytes the recorder captured into the spool file and scanner.
    async fn drain(&mut self, tape: &Arc<Mutex<Tape>>) -> Result<(), FetchError> {
        let received = match tape.lock() {
            Ok(mut t) => std::mem::take(&mut t.received),
            Err(_) => return Err(FetchError::Spool("recorder lock poisoned".into())),
        };
        if received.is_empty() {
            return Ok(());
        }
        self.hasher.update(&received);
        self.raw_len += received.len() as u64;
        self.file
            .write_all(&received)
            .await
            .map_err(|e| FetchError::Spool(e.to_string()))?;
        if self.parse_error.is_none() {
            let payload = &mut self.payload_len;
            if let Err(e) = self
                .scanner
                .feed(&received, &mut |piece| *payload += piece.len() as u64)
            {
                self.parse_error = Some(e.to_string());
            }
        }
        Ok(())
    }

    async fn finish(
        mut self,
        truncated: Option<Truncation>,
        sample_limit: usize,
    ) -> Result<Option<ResponseData>, FetchError> {
        let spool_err = |e: std::io::Error| FetchError::Spool(e.to_string());
        self.file.flush().await.map_err(spool_err)?;
        if self.raw_len == 0 {
            return Ok(None);
        }
        // Bytes that are not HTTP are kept too (as a `resource` record):
        // what a server sent is evidence even when it is not a response.
        let mut raw = self.file.into_inner().into_std().await;
        let scan = self.scanner.finish();
        let wants_sample = scan
            .head
            .as_ref()
            .is_some_and(|h| may_hold_links(h.mime().as_deref()));
        let path = self.path;
        let sample = if wants_sample {
            let p = path.to_path_buf();
            let read = tokio::task::spawn_blocking(move || payload_prefix(&p, sample_limit));
            Some(
                read.await
                    .map_err(|e| FetchError::Spool(e.to_string()))?
                    .map_err(spool_err)?,
            )
        } else {
            None
        };
        // Unlink the name now; the open handle keeps the bytes until the
        // record is written and the handle dropped.
        drop(path);
        raw.seek(SeekFrom::Start(0)).map_err(spool_err)?;
        let truncated = truncated.or(if scan.complete {
            None
        } else {
            Some(Truncation::Disconnect)
        });
        Ok(Some(ResponseData {
            raw,
            raw_len: self.raw_len,
            raw_sha256: Sha256::from_hasher(self.hasher),
            scan,
            truncated,
            parse_error: self.parse_error,
            sample,
        }))
    }
}

fn payload_prefix(path: &std::path::Path, limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let mut scanner = ResponseScanner::new(1024 * 1024, 10_000, false);
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 || out.len() >= limit {
            break;
        }
        let _ = scanner.feed(&buf[..n], &mut |p| {
            let room = limit.saturating_sub(out.len());
            out.extend_from_slice(&p[..p.len().min(room)]);
        });
    }
    Ok(out)
}

/// Types worth scanning for links: HTML, CSS, stream playlists and
/// manifests, XML, and unknowns.
fn may_hold_links(mime: Option<&str>) -> bool {
    match mime {
        None => true,
        Some(m) => {
            matches!(
                m,
                "text/html"
                    | "application/xhtml+xml"
                    | "text/css"
                    | "text/plain"
                    | "application/octet-stream"
                    | "application/xml"
                    | "text/xml"
            ) || super::discover::is_stream_type(m)
        }
    }
}

fn tls_info(conn: &rustls::ClientConnection) -> TlsInfo {
    let protocol = match conn.protocol_version() {
        Some(rustls::ProtocolVersion::TLSv1_3) => "tls/1.3".to_string(),
        Some(rustls::ProtocolVersion::TLSv1_2) => "tls/1.2".to_string(),
        Some(other) => format!("{other:?}").to_ascii_lowercase(),
        None => "tls".to_string(),
    };
    let cipher_suite = conn
        .negotiated_cipher_suite()
        .map(|s| {
            let name = s
                .suite()
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("{:?}", s.suite()));
            // rustls names TLS 1.3 suites TLS13_*; IANA calls them TLS_*.
            name.strip_prefix("TLS13_")
                .map(|rest| format!("TLS_{rest}"))
                .unwrap_or(name)
        })
        .unwrap_or_default();
    let alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let peer_certificates = conn
        .peer_certificates()
        .unwrap_or(&[])
        .iter()
        .map(|c| pem("CERTIFICATE", c.as_ref()))
        .collect();
    TlsInfo {
        protocol,
        cipher_suite,
        alpn,
        peer_certificates,
    }
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The bytes a connection carried, waiting to be moved to the spool.
#[derive(Default)]
struct Tape {
    sent: Vec<u8>,
    received: Vec<u8>,
}

/// Largest request recorded (hyper writes the whole request head at once).
const MAX_RECORDED_REQUEST: usize = 1024 * 1024;

/// A stream wrapper that records everything read and written.
struct Recorder<S> {
    inner: S,
    tape: Arc<Mutex<Tape>>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Recorder<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll {
            let new = &buf.filled()[before..];
            if !new.is_empty() {
                if let Ok(mut t) = self.tape.lock() {
                    t.received.extend_from_slice(new);
                }
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Recorder<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let poll = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &poll {
            if let Ok(mut t) = self.tape.lock() {
                let room = MAX_RECORDED_REQUEST.saturating_sub(t.sent.len());
                let n = (*n).min(room);
                t.sent.extend_from_slice(&buf[..n]);
            }
        }
        poll
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
