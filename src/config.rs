//! Configuration: `custody.toml` (or `--config FILE`), then the environment,
//! then command-line flags, validated into a [`Config`].
//!
//! Parsing happens in two stages, as in ripgrep: the raw TOML shape (every
//! field optional, unknown keys refused with their name) and the validated
//! `Config` with defaults filled in. This module opens nothing: no store, no
//! database. Secrets (passwords in URLs) are redacted from `Debug`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::capture::{CaptureSettings, FetchLimits};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    data_dir: Option<PathBuf>,
    keys_dir: Option<PathBuf>,
    index_url: Option<String>,
    store_url: Option<String>,
    replica_urls: Option<Vec<String>>,
    #[serde(default)]
    capture: RawCapture,
    #[serde(default)]
    daemon: RawDaemon,
    #[serde(default)]
    timestamps: RawTimestamps,
    #[serde(default)]
    import: RawImport,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawImport {
    max_records: Option<usize>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTimestamps {
    tsa_urls: Option<Vec<String>>,
    roots: Option<Vec<PathBuf>>,
    captures: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDaemon {
    schedules_dir: Option<PathBuf>,
    listen: Option<String>,
    workers: Option<usize>,
    per_host: Option<usize>,
    politeness_secs: Option<f64>,
    lease_secs: Option<f64>,
    leader_lease_secs: Option<f64>,
    replay_listen: Option<String>,
    replay_url: Option<String>,
    public_url: Option<String>,
    header_timeout_secs: Option<f64>,
    max_connections: Option<usize>,
    max_upload_bytes: Option<u64>,
    shutdown_grace_secs: Option<f64>,
    retry_base_secs: Option<f64>,
    max_attempts: Option<u32>,
    reload_secs: Option<f64>,
    checkpoint_secs: Option<f64>,
    scrub_period_hours: Option<f64>,
    scrub_mb_per_sec: Option<f64>,
    public_read: Option<bool>,
    replay_cache: Option<bool>,
}

/// The capture options a config file's `[capture]` table, or a schedule's
/// `[schedule.capture]` table, may set.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCapture {
    allow_private_networks: Option<bool>,
    user_agent: Option<String>,
    connect_timeout_secs: Option<f64>,
    read_timeout_secs: Option<f64>,
    resource_timeout_secs: Option<f64>,
    max_resource_bytes: Option<u64>,
    max_capture_bytes: Option<u64>,
    max_header_bytes: Option<usize>,
    max_headers: Option<usize>,
    max_redirects: Option<usize>,
    max_resources: Option<usize>,
    concurrency: Option<usize>,
    min_bytes_per_sec: Option<u64>,
    throughput_window_secs: Option<f64>,
    max_frame_depth: Option<usize>,
    max_stream_segments: Option<usize>,
    max_stream_bytes: Option<u64>,
    dedup: Option<bool>,
    extra_root_certificates: Option<Vec<PathBuf>>,
    media: Option<bool>,
    media_format: Option<String>,
    max_media_bytes: Option<u64>,
    media_timeout_secs: Option<f64>,
    ytdlp_path: Option<PathBuf>,
    mode: Option<String>,
    browser_path: Option<PathBuf>,
    browser_timeout_secs: Option<f64>,
    max_scroll_steps: Option<usize>,
    max_page_height: Option<u32>,
    browser_window: Option<String>,
    browser_restart_after: Option<usize>,
}

/// `[timestamps]` settings.
#[derive(Clone, Debug, Default)]
pub struct TimestampSettings {
    /// TSA URLs; each subject is timestamped by every one of them.
    pub tsa_urls: Vec<String>,
    /// PEM files of the roots TSA certificates must chain to.
    pub roots: Vec<PathBuf>,
    /// Also timestamp each capture manifest (not only checkpoints).
    pub captures: bool,
}

/// `[import]` settings.
#[derive(Clone, Debug)]
pub struct ImportSettings {
    /// Most records one imported file may hold (every record is committed
    /// to the log with its import): a file with more is refused, and is
    /// imported in parts.
    pub max_records: usize,
}

/// The validated configuration.
#[derive(Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    /// Where the signing keys are (`log-signing.key`, `wacz-signing.key`):
    /// `keys_dir` / `CUSTODY_KEYS_DIR`, else the data directory.
    pub keys_dir: PathBuf,
    /// The keys were provisioned (`keys_dir` set): they are never created
    /// on first use, so every daemon given the same keys signs as one log.
    pub keys_provisioned: bool,
    pub index_url: String,
    pub store_url: String,
    /// Further stores every object is also written to (fixity audits
    /// compare the copies and repair a bad one from a good one).
    pub replica_urls: Vec<String>,
    pub capture: CaptureSettings,
    pub daemon: DaemonSettings,
    pub timestamps: TimestampSettings,
    pub import: ImportSettings,
}

/// How the daemon runs its schedules.
#[derive(Clone, Debug)]
pub struct DaemonSettings {
    pub schedules_dir: PathBuf,
    pub listen: std::net::SocketAddr,
    /// Captures running at once, in all.
    pub workers: usize,
    /// Captures running at once against one host.
    pub per_host: usize,
    /// Pause between the end of one capture and the start of the next on
    /// the same host.
    pub politeness: Duration,
    /// How long a claimed run stays claimed without renewal; after a crash,
    /// its run is taken up again once this has passed.
    pub lease: Duration,
    /// How long the scheduler leader leads without renewing (it renews
    /// every tick); a leader that dies or freezes is replaced after this.
    pub leader_lease: Duration,
    /// A request's headers must arrive within this; idle connections are
    /// closed when it passes.
    pub header_timeout: Duration,
    /// HTTP connections served at once.
    pub max_connections: usize,
    /// Largest file `POST /api/v1/imports` takes.
    pub max_upload_bytes: u64,
    /// Where replay is served apart from the API and UI, when it is: a
    /// second listener, its own origin, no credentials.
    pub replay: Option<ReplayOrigin>,
    /// The address investigators reach custody at (links from the replay
    /// origin back to the UI); `http://` and the bound address unless set.
    pub public_url: Option<String>,
    /// How long in-flight captures may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// First retry delay after a transient failure; doubles per attempt.
    pub retry_base: Duration,
    /// Attempts per run, the first included.
    pub max_attempts: u32,
    /// How often the schedules directory is checked for changes.
    pub reload: Duration,
    /// How often the leader signs a checkpoint of the transparency log.
    pub checkpoint: Duration,
    /// One full fixity pass over the store per this period (0: no scrub).
    pub scrub_period: Duration,
    /// The scrub's read-rate cap.
    pub scrub_bytes_per_sec: u64,
    /// Reading over HTTP (API reads, replay, Memento, CDX, UI) needs no
    /// token.
    pub public_read: bool,
    /// Replay keeps lookups and small verified payloads in memory.
    pub replay_cache: bool,
}

/// A separate origin for replay.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayOrigin {
    pub listen: std::net::SocketAddr,
    /// Its address as browsers reach it (scheme, host, port; no path);
    /// `http://` and the bound address unless set.
    pub url: Option<String>,
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("keys_dir", &self.keys_dir)
            .field("index_url", &redact_url(&self.index_url))
            .field("store_url", &redact_url(&self.store_url))
            .field(
                "replica_urls",
                &self
                    .replica_urls
                    .iter()
                    .map(|u| redact_url(u))
                    .collect::<Vec<_>>(),
            )
            .field("capture", &self.capture)
            .field("daemon", &self.daemon)
            .field("timestamps", &self.timestamps)
            .field("import", &self.import)
            .finish()
    }
}

pub use crate::model::redact_url;

/// What the command line sets, above the file and the environment: every
/// flag that overrides a setting is applied here, in [`Config::load_with`],
/// and nowhere else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    /// `--allow-private`: `capture.allow_private_networks = true`.
    pub allow_private: bool,
    /// `--no-dedup`: `capture.dedup = false`.
    pub no_dedup: bool,
    /// `--media`: `capture.media = true`.
    pub media: bool,
    /// `--mode`: `capture.mode`.
    pub mode: Option<crate::capture::Mode>,
    /// `--listen`: `daemon.listen`.
    pub listen: Option<std::net::SocketAddr>,
    /// `--public-read`: `daemon.public_read = true`.
    pub public_read: bool,
    /// `--schedules`: `daemon.schedules_dir`.
    pub schedules_dir: Option<PathBuf>,
}

impl Config {
    /// Loads `--config FILE`, or `custody.toml` in the working directory if
    /// there is one, then applies the environment and `overrides`.
    pub fn load(overrides: &Overrides) -> Result<Config, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self::load_with(overrides, env)
    }

    pub fn load_with(
        overrides: &Overrides,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let raw = match &overrides.config_file {
            Some(path) => read_file(path)?,
            None => {
                let default = PathBuf::from("custody.toml");
                match std::fs::read_to_string(&default) {
                    Ok(text) => parse(&default, &text)?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => RawConfig::default(),
                    Err(source) => {
                        return Err(ConfigError::Read {
                            path: default,
                            source,
                        })
                    }
                }
            }
        };
        let data_dir = overrides
            .data_dir
            .clone()
            .or_else(|| env("CUSTODY_DATA_DIR").map(PathBuf::from))
            .or(raw.data_dir)
            .unwrap_or_else(|| PathBuf::from("custody-data"));
        let keys_given = env("CUSTODY_KEYS_DIR").map(PathBuf::from).or(raw.keys_dir);
        let keys_provisioned = keys_given.is_some();
        let keys_dir = keys_given.unwrap_or_else(|| data_dir.clone());
        let index_url = env("CUSTODY_INDEX_URL")
            .or(raw.index_url)
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("index.db").display()));
        let store_url = env("CUSTODY_STORE_URL")
            .or(raw.store_url)
            .unwrap_or_else(|| format!("file://{}", data_dir.join("objects").display()));
        let replica_urls: Vec<String> = match env("CUSTODY_REPLICA_URLS") {
            Some(list) => list
                .split(',')
                .map(|u| u.trim().to_string())
                .filter(|u| !u.is_empty())
                .collect(),
            None => raw.replica_urls.unwrap_or_default(),
        };
        for url in &replica_urls {
            if !url.contains("://") || *url == store_url {
                return Err(ConfigError::Invalid(format!(
                    "replica_urls: {:?} must be a store URL (file:// or s3://) other than store_url",
                    redact_url(url)
                )));
            }
        }
        for (name, url) in [("index_url", &index_url), ("store_url", &store_url)] {
            if !url.contains("://") {
                return Err(ConfigError::Invalid(format!(
                    "{name} {:?} is not a URL; use e.g. sqlite://custody-data/index.db or file://custody-data/objects",
                    redact_url(url)
                )));
            }
        }
        let mode_given = raw.capture.mode.is_some() || overrides.mode.is_some();
        let mut capture = apply_capture(&CaptureSettings::default(), raw.capture)?;
        if !mode_given {
            // Browser mode when a Chromium is there to run; http otherwise,
            // and the capture says so.
            match crate::browser::chromium::locate(capture.browser.path.as_deref()) {
                Ok(_) => capture.browser.mode = crate::capture::Mode::Browser,
                Err(why) => {
                    capture.browser.mode_note = Some(format!(
                        "capturing in http mode (pages as a browser without scripts reads them): {why}; or set capture.mode = \"http\" to say so"
                    ))
                }
            }
        }
        capture.allow_private |= overrides.allow_private;
        if overrides.no_dedup {
            capture.dedup = false;
        }
        capture.media.enabled |= overrides.media;
        if let Some(m) = overrides.mode {
            capture.browser.mode = m;
        }
        let mut daemon = daemon_settings(raw.daemon)?;
        daemon.public_read |= overrides.public_read;
        if let Some(addr) = overrides.listen {
            daemon.listen = addr;
        }
        if let Some(dir) = &overrides.schedules_dir {
            daemon.schedules_dir = dir.clone();
        }
        let tsa_urls = raw.timestamps.tsa_urls.unwrap_or_default();
        for u in &tsa_urls {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "timestamps.tsa_urls: {u:?} is not an http(s) URL"
                )));
            }
        }
        let roots = raw.timestamps.roots.unwrap_or_default();
        if !tsa_urls.is_empty() && roots.is_empty() {
            return Err(ConfigError::Invalid(
                "timestamps.tsa_urls is set but timestamps.roots is empty: give the PEM file(s) of the roots your TSAs' certificates chain to".into(),
            ));
        }
        let timestamps = TimestampSettings {
            tsa_urls,
            roots,
            captures: raw.timestamps.captures.unwrap_or(false),
        };
        let import = ImportSettings {
            max_records: match raw.import.max_records {
                Some(0) => {
                    return Err(ConfigError::Invalid(
                        "import.max_records must be at least 1".into(),
                    ))
                }
                Some(n) => n,
                None => crate::import::scan::MAX_RECORDS,
            },
        };
        Ok(Config {
            data_dir,
            keys_dir,
            keys_provisioned,
            index_url,
            store_url,
            replica_urls,
            capture,
            daemon,
            timestamps,
            import,
        })
    }

    /// Scratch space for captures in progress.
    pub fn spool_dir(&self) -> PathBuf {
        self.data_dir.join("spool")
    }
}

fn read_file(path: &Path) -> Result<RawConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<RawConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        // toml's message spans several lines with a snippet; keep one line.
        message: e.message().to_string()
            + &e.span()
                .map(|s| format!(" (at byte {})", s.start))
                .unwrap_or_default(),
    })
}

fn secs(
    table: &str,
    name: &str,
    value: Option<f64>,
    default: Duration,
) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if v.is_finite() && v > 0.0 && v <= 86_400.0 => Ok(Duration::from_secs_f64(v)),
        Some(v) => Err(ConfigError::Invalid(format!(
            "{table}.{name} = {v} must be between 0 and 86400 seconds"
        ))),
    }
}

fn positive<T: PartialOrd + Default + Copy + std::fmt::Display>(
    table: &str,
    name: &str,
    v: Option<T>,
    default: T,
) -> Result<T, ConfigError> {
    match v {
        None => Ok(default),
        Some(v) if v > T::default() => Ok(v),
        Some(v) => Err(ConfigError::Invalid(format!(
            "{table}.{name} = {v} must be greater than 0"
        ))),
    }
}

/// `base` with the options `raw` sets replaced.
pub fn apply_capture(
    base: &CaptureSettings,
    raw: RawCapture,
) -> Result<CaptureSettings, ConfigError> {
    let d = base;
    let t = "capture";
    let limits = FetchLimits {
        connect_timeout: secs(
            t,
            "connect_timeout_secs",
            raw.connect_timeout_secs,
            d.limits.connect_timeout,
        )?,
        read_timeout: secs(
            t,
            "read_timeout_secs",
            raw.read_timeout_secs,
            d.limits.read_timeout,
        )?,
        resource_deadline: secs(
            t,
            "resource_timeout_secs",
            raw.resource_timeout_secs,
            d.limits.resource_deadline,
        )?,
        max_body_bytes: positive(
            t,
            "max_resource_bytes",
            raw.max_resource_bytes,
            d.limits.max_body_bytes,
        )?,
        max_header_bytes: positive(
            t,
            "max_header_bytes",
            raw.max_header_bytes,
            d.limits.max_header_bytes,
        )?,
        max_headers: positive(t, "max_headers", raw.max_headers, d.limits.max_headers)?,
        // 0 turns the rule off.
        min_bytes_per_sec: raw.min_bytes_per_sec.unwrap_or(d.limits.min_bytes_per_sec),
        throughput_window: secs(
            t,
            "throughput_window_secs",
            raw.throughput_window_secs,
            d.limits.throughput_window,
        )?,
    };
    let browser = browser_settings(&d.browser, &raw)?;
    Ok(CaptureSettings {
        allow_private: raw.allow_private_networks.unwrap_or(d.allow_private),
        user_agent: raw.user_agent.unwrap_or_else(|| d.user_agent.clone()),
        limits,
        max_capture_bytes: positive(
            t,
            "max_capture_bytes",
            raw.max_capture_bytes,
            d.max_capture_bytes,
        )?,
        max_redirects: raw.max_redirects.unwrap_or(d.max_redirects),
        max_resources: positive(t, "max_resources", raw.max_resources, d.max_resources)?,
        concurrency: positive(t, "concurrency", raw.concurrency, d.concurrency)?,
        max_frame_depth: raw.max_frame_depth.unwrap_or(d.max_frame_depth),
        max_stream_segments: raw.max_stream_segments.unwrap_or(d.max_stream_segments),
        max_stream_bytes: raw.max_stream_bytes.unwrap_or(d.max_stream_bytes),
        dedup: raw.dedup.unwrap_or(d.dedup),
        extra_root_certificates: raw
            .extra_root_certificates
            .unwrap_or_else(|| d.extra_root_certificates.clone()),
        media: crate::capture::MediaSettings {
            enabled: raw.media.unwrap_or(d.media.enabled),
            format: match raw.media_format {
                Some(f) if f.trim().is_empty() || f.starts_with('-') => {
                    return Err(ConfigError::Invalid(format!(
                        "capture.media_format {f:?} is not a yt-dlp format; use e.g. \"b/bv*+ba\""
                    )))
                }
                Some(f) => f,
                None => d.media.format.clone(),
            },
            max_bytes: positive(t, "max_media_bytes", raw.max_media_bytes, d.media.max_bytes)?,
            timeout: secs(
                t,
                "media_timeout_secs",
                raw.media_timeout_secs,
                d.media.timeout,
            )?,
            ytdlp_path: raw.ytdlp_path.or_else(|| d.media.ytdlp_path.clone()),
        },
        browser,
    })
}

fn browser_settings(
    d: &crate::capture::BrowserSettings,
    raw: &RawCapture,
) -> Result<crate::capture::BrowserSettings, ConfigError> {
    use crate::capture::Mode;
    let t = "capture";
    let mode = match raw.mode.as_deref() {
        None => d.mode,
        Some("http") => Mode::Http,
        Some("browser") => Mode::Browser,
        Some(m) => {
            return Err(ConfigError::Invalid(format!(
                "capture.mode {m:?} is not a mode; use \"http\" or \"browser\""
            )))
        }
    };
    let window = match raw.browser_window.as_deref() {
        None => d.window,
        Some(w) => w
            .split_once('x')
            .and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)))
            .filter(|(a, b): &(u32, u32)| (200..=8000).contains(a) && (200..=8000).contains(b))
            .ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "capture.browser_window {w:?} is not WIDTHxHEIGHT between 200 and 8000; use e.g. \"1280x900\""
                ))
            })?,
    };
    Ok(crate::capture::BrowserSettings {
        mode,
        path: raw.browser_path.clone().or_else(|| d.path.clone()),
        timeout: secs(
            t,
            "browser_timeout_secs",
            raw.browser_timeout_secs,
            d.timeout,
        )?,
        max_scroll_steps: raw.max_scroll_steps.unwrap_or(d.max_scroll_steps),
        max_page_height: positive(t, "max_page_height", raw.max_page_height, d.max_page_height)?,
        window,
        mode_note: d.mode_note.clone(),
        restart_after: positive(
            t,
            "browser_restart_after",
            raw.browser_restart_after,
            d.restart_after,
        )?,
    })
}

fn daemon_settings(raw: RawDaemon) -> Result<DaemonSettings, ConfigError> {
    let t = "daemon";
    let listen = match raw.listen {
        None => std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
        Some(l) => l.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "daemon.listen {l:?} is not an address; use e.g. 127.0.0.1:8080"
            ))
        })?,
    };
    let address = |name: &str, v: &str| -> Result<std::net::SocketAddr, ConfigError> {
        v.parse().map_err(|_| {
            ConfigError::Invalid(format!(
                "daemon.{name} {v:?} is not an address; use e.g. 127.0.0.1:8081"
            ))
        })
    };
    let base_url = |name: &str, v: String| -> Result<String, ConfigError> {
        let bad = || {
            ConfigError::Invalid(format!(
                "daemon.{name} {v:?} must be an http(s) origin such as https://replay.example.org"
            ))
        };
        let u = url::Url::parse(&v).map_err(|_| bad())?;
        if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() || u.path() != "/" {
            return Err(bad());
        }
        Ok(v.trim_end_matches('/').to_string())
    };
    let replay = match (raw.replay_listen, raw.replay_url) {
        (None, None) => None,
        (None, Some(_)) => {
            return Err(ConfigError::Invalid(
                "daemon.replay_url needs daemon.replay_listen, the address the replay origin listens on".into(),
            ))
        }
        (Some(l), url) => {
            let listen = address("replay_listen", &l)?;
            let url = url.map(|u| base_url("replay_url", u)).transpose()?;
            Some(ReplayOrigin { listen, url })
        }
    };
    let public_url = raw
        .public_url
        .map(|u| base_url("public_url", u))
        .transpose()?;
    Ok(DaemonSettings {
        replay,
        public_url,
        schedules_dir: raw
            .schedules_dir
            .unwrap_or_else(|| PathBuf::from("schedules")),
        listen,
        public_read: raw.public_read.unwrap_or(false),
        replay_cache: raw.replay_cache.unwrap_or(true),
        workers: positive(t, "workers", raw.workers, 4)?,
        per_host: positive(t, "per_host", raw.per_host, 1)?,
        politeness: match raw.politeness_secs {
            Some(0.0) => Duration::ZERO,
            v => secs(t, "politeness_secs", v, Duration::from_secs(2))?,
        },
        lease: secs(t, "lease_secs", raw.lease_secs, Duration::from_secs(120))?,
        leader_lease: secs(
            t,
            "leader_lease_secs",
            raw.leader_lease_secs,
            Duration::from_secs(15),
        )?,
        header_timeout: secs(
            t,
            "header_timeout_secs",
            raw.header_timeout_secs,
            Duration::from_secs(20),
        )?,
        max_connections: positive(t, "max_connections", raw.max_connections, 1024)?,
        max_upload_bytes: positive(
            t,
            "max_upload_bytes",
            raw.max_upload_bytes,
            crate::http::DEFAULT_MAX_UPLOAD,
        )?,
        shutdown_grace: secs(
            t,
            "shutdown_grace_secs",
            raw.shutdown_grace_secs,
            Duration::from_secs(30),
        )?,
        retry_base: secs(
            t,
            "retry_base_secs",
            raw.retry_base_secs,
            Duration::from_secs(30),
        )?,
        max_attempts: positive(t, "max_attempts", raw.max_attempts, 4)?,
        reload: secs(t, "reload_secs", raw.reload_secs, Duration::from_secs(2))?,
        checkpoint: secs(
            t,
            "checkpoint_secs",
            raw.checkpoint_secs,
            Duration::from_secs(300),
        )?,
        scrub_period: match raw.scrub_period_hours {
            None => Duration::from_secs(7 * 24 * 3600),
            Some(h) if h.is_finite() && (0.0..=24.0 * 366.0).contains(&h) => {
                Duration::from_secs_f64(h * 3600.0)
            }
            Some(h) => {
                return Err(ConfigError::Invalid(format!(
                    "daemon.scrub_period_hours = {h} must be between 0 (off) and 8784"
                )))
            }
        },
        scrub_bytes_per_sec: match raw.scrub_mb_per_sec {
            None => 50_000_000,
            Some(m) if m.is_finite() && m > 0.0 => (m * 1e6) as u64,
            Some(m) => {
                return Err(ConfigError::Invalid(format!(
                    "daemon.scrub_mb_per_sec = {m} must be greater than 0"
                )))
            }
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml_text: &str, env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("custody.toml");
        std::fs::write(&path, toml_text).unwrap();
        let overrides = Overrides {
            config_file: Some(path),
            ..Default::default()
        };
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with(&overrides, |name| {
            env.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn defaults_live_under_the_data_dir() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.index_url, "sqlite://custody-data/index.db");
        assert_eq!(c.store_url, "file://custody-data/objects");
        assert!(!c.capture.allow_private);
    }

    #[test]
    fn environment_beats_file() {
        let c = load(
            "data_dir = \"/srv/custody\"\nindex_url = \"sqlite:///srv/custody/i.db\"\n[capture]\nread_timeout_secs = 5\n",
            &[("CUSTODY_INDEX_URL", "sqlite:///tmp/other.db"), ("CUSTODY_DATA_DIR", "/var/lib/custody")],
        )
        .unwrap();
        assert_eq!(c.index_url, "sqlite:///tmp/other.db");
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/custody"));
        assert_eq!(c.capture.limits.read_timeout, Duration::from_secs(5));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_one_line_errors() {
        let err = load("[capture]\nread_timeout = 5\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `read_timeout`"), "{err}");
        assert!(!err.contains('\n'), "{err}");
        let err = load("[capture]\nconcurrency = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("capture.concurrency"), "{err}");
    }

    #[test]
    fn browser_mode_settings_are_checked_one_line_each() {
        // Browser mode when a Chromium is found, http (with the reason)
        // otherwise.
        let c = load("", &[]).unwrap();
        let found = crate::browser::chromium::locate(None).is_ok();
        let want = if found {
            crate::capture::Mode::Browser
        } else {
            crate::capture::Mode::Http
        };
        assert_eq!(c.capture.browser.mode, want);
        assert_eq!(c.capture.browser.mode_note.is_some(), !found);
        let c = load("[capture]\nmode = \"http\"\n", &[]).unwrap();
        assert_eq!(c.capture.browser.mode, crate::capture::Mode::Http);
        assert!(c.capture.browser.mode_note.is_none());
        let c = load(
            "[capture]\nmode = \"browser\"\nbrowser_window = \"1024x768\"\nmax_scroll_steps = 3\n",
            &[],
        )
        .unwrap();
        assert_eq!(c.capture.browser.mode, crate::capture::Mode::Browser);
        assert_eq!(c.capture.browser.window, (1024, 768));
        assert_eq!(c.capture.browser.max_scroll_steps, 3);
        for (bad, key) in [
            ("mode = \"chrome\"", "capture.mode"),
            ("browser_window = \"big\"", "capture.browser_window"),
            ("browser_window = \"100000x10\"", "capture.browser_window"),
            ("max_page_height = 0", "capture.max_page_height"),
        ] {
            let err = load(&format!("[capture]\n{bad}\n"), &[])
                .unwrap_err()
                .to_string();
            assert!(err.contains(key) && !err.contains('\n'), "{err}");
        }
    }

    #[test]
    fn the_media_step_is_off_unless_asked_for_and_its_format_cannot_be_an_option() {
        let c = load("", &[]).unwrap();
        assert!(!c.capture.media.enabled);
        assert_eq!(c.capture.media.format, "b/bv*+ba");
        let c = load(
            "[capture]\nmedia = true\nmax_media_bytes = 1000\nmedia_timeout_secs = 9\nytdlp_path = \"/opt/yt-dlp/bin/yt-dlp\"\n",
            &[],
        )
        .unwrap();
        assert!(c.capture.media.enabled);
        assert_eq!(c.capture.media.max_bytes, 1000);
        assert_eq!(c.capture.media.timeout, std::time::Duration::from_secs(9));
        assert_eq!(
            c.capture.media.ytdlp_path.as_deref(),
            Some(Path::new("/opt/yt-dlp/bin/yt-dlp"))
        );
        // yt-dlp's argument list must not be extended through the format.
        let err = load("[capture]\nmedia_format = \"--exec=rm\"\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("capture.media_format"), "{err}");
        let err = load("[capture]\nmax_media_bytes = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(err.contains("capture.max_media_bytes"), "{err}");
    }

    #[test]
    fn passwords_are_redacted_from_debug() {
        let c = load(
            "index_url = \"postgres://custody:hunter2@db.internal/custody\"\n",
            &[],
        )
        .unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("postgres://custody:***@db.internal/custody"));
    }
}
