//! The media step: yt-dlp run on a captured page, every request it makes
//! sent through custody's recording proxy.
//!
//! Platform video reaches a reader as a player and a series of stream URLs,
//! not as a file; yt-dlp knows how to turn those into one. custody runs it
//! with `--proxy` pointed at a [`RecordingProxy`] of the capture, so each
//! request yt-dlp makes is fetched by custody's own fetcher (the capture's
//! network policy and limits, the wire bytes and TLS details recorded) and
//! becomes one of the capture's exchanges. yt-dlp's own certificate check
//! is off toward the proxy only: the proxy's certificates are minted for
//! the capture, and custody's fetcher checks the real origin's.
//!
//! What yt-dlp produced (the media files and its info JSON) is handed back
//! for the pipeline to write into the same WARC. Nothing here can fail a
//! capture: a missing yt-dlp, an error, a limit or the time budget is one
//! line in the outcome.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;
use tokio::sync::mpsc;
use url::Url;

use crate::browser::ca::InterceptCa;
use crate::browser::proxy::{ProxyLimits, RecordingProxy, Refused};
use crate::capture::{CaptureSettings, Exchange, Fetcher};
use crate::model::{MediaInfo, Sha256};

/// Entries of a page taken at most (`--playlist-end`).
pub const MAX_ENTRIES: usize = 20;

/// Largest info JSON kept (yt-dlp's for a platform video can list hundreds
/// of formats and subtitle tracks).
const MAX_INFO_JSON: u64 = 16 << 20;

/// What yt-dlp printed that is kept to explain a failure.
const MAX_STDERR: usize = 64 * 1024;

/// Grace after the time budget for yt-dlp to write what it has.
const KILL_GRACE: Duration = Duration::from_secs(5);

/// One file yt-dlp produced, hashed, waiting to be written.
#[derive(Debug)]
pub struct Produced {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: Sha256,
    pub mime: String,
    pub format_id: String,
    /// yt-dlp's info JSON for the entry, as it wrote it.
    pub info_json: Option<Vec<u8>>,
    pub title: Option<String>,
    pub uploader: Option<String>,
    pub upload_date: Option<String>,
    pub duration_ms: Option<u64>,
    pub extractor: Option<String>,
}

/// The step's outcome. `info.files` is empty until the pipeline has
/// written `produced` (it fills in the record ids).
#[derive(Debug)]
pub struct MediaOutput {
    pub info: MediaInfo,
    pub produced: Vec<Produced>,
    /// What the proxy refused to fetch for yt-dlp.
    pub refused: Vec<Refused>,
    /// yt-dlp's working directory; removed when the output is dropped.
    _dir: Option<tempfile::TempDir>,
}

impl MediaOutput {
    fn without_files(version: Option<String>, format: &str, status: &str, problem: String) -> Self {
        MediaOutput {
            info: MediaInfo {
                tool: "yt-dlp".into(),
                version,
                status: status.into(),
                problem: Some(problem),
                format: format.into(),
                files: Vec::new(),
            },
            produced: Vec::new(),
            refused: Vec::new(),
            _dir: None,
        }
    }
}

/// The yt-dlp to run: the configured one, or the first on `PATH`.
pub fn locate(configured: Option<&Path>) -> Result<PathBuf, String> {
    crate::browser::locate_tool(
        configured,
        "capture.ytdlp_path",
        &["yt-dlp"],
        "install yt-dlp (pip install yt-dlp, or apt install yt-dlp)",
    )
}

/// What `yt-dlp --version` prints.
pub async fn version(ytdlp: &Path) -> Result<String, String> {
    let run = Command::new(ytdlp)
        .arg("--version")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    match tokio::time::timeout(Duration::from_secs(30), run).await {
        Ok(Ok(out)) if out.status.success() => {
            let v = String::from_utf8_lossy(&out.stdout).trim().to_string();
            Ok(v.chars().take(100).collect())
        }
        Ok(Ok(out)) => Err(format!(
            "{} --version failed ({}): {}",
            ytdlp.display(),
            out.status,
            last_line(&String::from_utf8_lossy(&out.stderr))
        )),
        Ok(Err(e)) => Err(format!("{} cannot be run: {e}", ytdlp.display())),
        Err(_) => Err(format!(
            "{} --version did not answer in 30 s",
            ytdlp.display()
        )),
    }
}

/// Runs yt-dlp on `page` through a recording proxy whose exchanges go to
/// `tx`, within the settings' byte and time budgets.
pub async fn run(
    settings: &CaptureSettings,
    fetcher: &Fetcher,
    page: &Url,
    tx: mpsc::Sender<Exchange>,
    scratch: &Path,
) -> MediaOutput {
    let media = &settings.media;
    let ytdlp = match locate(media.ytdlp_path.as_deref()) {
        Ok(p) => p,
        Err(problem) => {
            return MediaOutput::without_files(None, &media.format, "unavailable", problem)
        }
    };
    let version = match version(&ytdlp).await {
        Ok(v) => v,
        Err(problem) => {
            return MediaOutput::without_files(None, &media.format, "unavailable", problem)
        }
    };
    let failed = |problem: String| {
        MediaOutput::without_files(Some(version.clone()), &media.format, "failed", problem)
    };
    let dir = match tempfile::Builder::new()
        .prefix("media-")
        .tempdir_in(scratch)
    {
        Ok(d) => d,
        Err(e) => {
            return failed(format!(
                "no working directory for yt-dlp in {}: {e}",
                scratch.display()
            ))
        }
    };
    let ca = match InterceptCa::new() {
        Ok(ca) => Arc::new(ca),
        Err(e) => return failed(format!("the recording proxy's certificates: {e}")),
    };
    let ends = tokio::time::Instant::now() + media.timeout;
    let fetcher = Arc::new(fetcher.ending_at(ends, "media", "capture.media_timeout_secs"));
    let budget = Arc::new(AtomicU64::new(media.max_bytes));
    let credential = crate::browser::proxy::new_credential();
    let limits = ProxyLimits {
        max_exchanges: settings.max_resources + settings.max_stream_segments,
        idle: settings.limits.read_timeout,
        credential: Some(credential.clone()),
        ..ProxyLimits::default()
    };
    let proxy = match RecordingProxy::start(fetcher, ca, budget.clone(), tx, limits).await {
        Ok(p) => p,
        Err(e) => return failed(format!("the recording proxy could not listen: {e}")),
    };
    let proxy_url = format!("http://{credential}@{}", proxy.addr());
    let ran = run_ytdlp(&ytdlp, media, page, &proxy_url, dir.path(), ends).await;
    let refused = proxy.refused();
    drop(proxy);
    let (mut produced, mut problems) = collect(dir.path(), media.max_bytes);
    match ran {
        Ran::Exited { success: true, .. } => {}
        Ran::Exited { stderr, .. } => problems.insert(0, error_line(&stderr)),
        Ran::TimedOut => problems.insert(
            0,
            format!(
                "yt-dlp did not finish within {} s (capture.media_timeout_secs) and was stopped; what arrived is kept",
                media.timeout.as_secs()
            ),
        ),
        Ran::NotStarted(e) => problems.insert(0, format!("{} cannot be run: {e}", ytdlp.display())),
    }
    if budget.load(Ordering::Relaxed) == 0 {
        problems.push(format!(
            "the media step reached capture.max_media_bytes ({} bytes); later bytes were not fetched",
            media.max_bytes
        ));
    }
    // Larger files first would be arbitrary: keep yt-dlp's order.
    produced.sort_by(|a, b| a.path.cmp(&b.path));
    let status = if !produced.is_empty() {
        "ok"
    } else if problems.iter().any(|p| no_media(p)) {
        "none"
    } else if problems.is_empty() {
        problems.push("yt-dlp ended without producing a file".into());
        "none"
    } else {
        "failed"
    };
    MediaOutput {
        info: MediaInfo {
            tool: "yt-dlp".into(),
            version: Some(version),
            status: status.into(),
            problem: (!problems.is_empty()).then(|| problems.join("; ")),
            format: media.format.clone(),
            files: Vec::new(),
        },
        produced,
        refused,
        _dir: Some(dir),
    }
}

enum Ran {
    Exited { success: bool, stderr: String },
    TimedOut,
    NotStarted(std::io::Error),
}

/// The arguments yt-dlp runs with: the proxy for every request, native
/// downloaders only (an external one such as ffmpeg would fetch past the
/// proxy), no configuration or cache of the machine's, files named by
/// custody into `dir`.
fn arguments(media: &crate::capture::MediaSettings, page: &Url, proxy: &str) -> Vec<String> {
    let mut args: Vec<String> = [
        "--ignore-config",
        "--no-cache-dir",
        "--no-check-certificates",
        "--downloader",
        "native",
        "--no-progress",
        "--no-colors",
        "--no-mtime",
        "--write-info-json",
        "--no-write-playlist-metafiles",
        "--no-write-comments",
        "--no-overwrites",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Values joined to their options, so none can be taken for an option.
    args.extend([
        format!("--proxy={proxy}"),
        format!("--format={}", media.format),
        format!("--max-filesize={}", media.max_bytes),
        format!("--socket-timeout={}", media.timeout.as_secs().max(1)),
        "--retries=2".into(),
        "--fragment-retries=2".into(),
        format!("--playlist-end={MAX_ENTRIES}"),
        "--output=media-%(autonumber)03d.%(ext)s".into(),
        "--".into(),
        page.to_string(),
    ]);
    args
}

async fn run_ytdlp(
    ytdlp: &Path,
    media: &crate::capture::MediaSettings,
    page: &Url,
    proxy: &str,
    dir: &Path,
    ends: tokio::time::Instant,
) -> Ran {
    let mut cmd = Command::new(ytdlp);
    cmd.args(arguments(media, page, proxy))
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        // Its own group, so that what it starts is stopped with it.
        .process_group(0)
        // No configuration, cache or proxy setting of the machine's.
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir)
        .env("XDG_CACHE_HOME", dir);
    for var in [
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
    ] {
        cmd.env(var, proxy);
    }
    cmd.env_remove("no_proxy").env_remove("NO_PROXY");
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return Ran::NotStarted(e),
    };
    let stderr = child.stderr.take();
    let reading = tokio::spawn(async move {
        match stderr {
            Some(s) => read_tail(s, MAX_STDERR).await,
            None => String::new(),
        }
    });
    let waited = tokio::time::timeout_at(ends + KILL_GRACE, child.wait()).await;
    let ran = match waited {
        Ok(Ok(status)) => Ran::Exited {
            success: status.success(),
            stderr: String::new(),
        },
        Ok(Err(e)) => Ran::Exited {
            success: false,
            stderr: format!("ERROR: waiting for yt-dlp failed: {e}"),
        },
        Err(_) => {
            if let Some(pid) = child.id() {
                // The whole group: yt-dlp and anything it started.
                let _ = Command::new("kill")
                    .args(["-KILL", &format!("-{pid}")])
                    .status()
                    .await;
            }
            let _ = child.kill().await;
            Ran::TimedOut
        }
    };
    let tail = tokio::time::timeout(Duration::from_secs(5), reading)
        .await
        .ok()
        .and_then(|r| r.ok())
        .unwrap_or_default();
    if !tail.is_empty() {
        tracing::debug!(page = %page, stderr = %tail, "yt-dlp's messages");
    }
    match ran {
        Ran::Exited { success, stderr } if stderr.is_empty() => Ran::Exited {
            success,
            stderr: tail,
        },
        other => other,
    }
}

/// The last `max` bytes of a stream, read to its end.
async fn read_tail<R: AsyncRead + Unpin>(mut r: R, max: usize) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * max {
                    kept.drain(..kept.len() - max);
                }
            }
        }
    }
    if kept.len() > max {
        kept.drain(..kept.len() - max);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

fn last_line(text: &str) -> String {
    one_line(
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(""),
    )
}

/// One line (control characters made spaces), cut to a readable length.
fn one_line(s: &str) -> String {
    let s: String = s
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s.to_string()
    }
}

/// yt-dlp's first `ERROR:` line (its last line when there is none).
fn error_line(stderr: &str) -> String {
    match stderr.lines().find(|l| l.starts_with("ERROR:")) {
        Some(l) => format!("yt-dlp: {}", one_line(l.trim_start_matches("ERROR:"))),
        None if stderr.trim().is_empty() => "yt-dlp failed without a message".into(),
        None => format!("yt-dlp failed: {}", last_line(stderr)),
    }
}

/// Whether yt-dlp's message means the page has no media it can take.
fn no_media(problem: &str) -> bool {
    problem.contains("Unsupported URL") || problem.contains("No video formats found")
}

/// The type of a file yt-dlp wrote, by the extension it chose.
pub fn media_type(ext: &str) -> &'static str {
    match ext.to_ascii_lowercase().as_str() {
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mkv" => "video/x-matroska",
        "mov" => "video/quicktime",
        "ts" => "video/mp2t",
        "flv" => "video/x-flv",
        "3gp" => "video/3gpp",
        "ogv" => "video/ogg",
        "m4a" => "audio/mp4",
        "mp3" => "audio/mpeg",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "wav" => "audio/wav",
        "flac" => "audio/flac",
        "aac" => "audio/aac",
        "weba" => "audio/webm",
        _ => "application/octet-stream",
    }
}

/// Whether a type may be shown to a reader as media (anything else is
/// served as bytes to download).
pub fn is_media_type(mime: &str) -> bool {
    mime.starts_with("video/") || mime.starts_with("audio/")
}

/// The finished files in `dir` (parts of unfinished downloads left out),
/// hashed, with what their info JSON says; files past `max_bytes` in all
/// are left out with a problem each.
fn collect(dir: &Path, max_bytes: u64) -> (Vec<Produced>, Vec<String>) {
    let mut produced = Vec::new();
    let mut problems = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (
            produced,
            vec![format!(
                "yt-dlp's directory {} cannot be read",
                dir.display()
            )],
        );
    };
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut total = 0u64;
    for name in &names {
        let Some(stem) = entry_stem(name) else {
            continue;
        };
        if name.ends_with(".info.json") || unfinished(name) {
            continue;
        }
        let path = dir.join(name);
        let (sha256, bytes) = match crate::store::hash_file(&path) {
            Ok(h) => h,
            Err(e) => {
                problems.push(format!("{name} cannot be read: {e}"));
                continue;
            }
        };
        if bytes == 0 {
            continue;
        }
        if total + bytes > max_bytes {
            problems.push(format!(
                "{name} ({bytes} bytes) is not kept: it would pass capture.max_media_bytes ({max_bytes})"
            ));
            continue;
        }
        total += bytes;
        let info_json = read_info(&dir.join(format!("{stem}.info.json")), &mut problems);
        let info: serde_json::Value = info_json
            .as_deref()
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or_default();
        let text = |k: &str| info[k].as_str().map(one_line);
        let ext = name.rsplit('.').next().unwrap_or_default();
        // `media-001.f137.mp4`: one of several formats left unmerged.
        let part_format = name
            .strip_prefix(stem)
            .and_then(|rest| rest.strip_prefix(".f"))
            .and_then(|rest| rest.rsplit_once('.'))
            .map(|(f, _)| f.to_string());
        let format_id = part_format
            .or_else(|| text("format_id"))
            .unwrap_or_else(|| "unknown".into());
        produced.push(Produced {
            path,
            bytes,
            sha256,
            mime: media_type(ext).to_string(),
            format_id: safe_format(&format_id),
            info_json,
            title: text("title"),
            uploader: text("uploader"),
            upload_date: text("upload_date"),
            duration_ms: info["duration"]
                .as_f64()
                .filter(|d| d.is_finite() && *d >= 0.0)
                .map(|d| (d * 1000.0).round() as u64),
            extractor: text("extractor_key").or_else(|| text("extractor")),
        });
    }
    (produced, problems)
}

/// `media-001` of `media-001.mp4`, `media-001.f137.mp4` or
/// `media-001.info.json`; `None` for a name custody did not give.
fn entry_stem(name: &str) -> Option<&str> {
    let rest = name.strip_prefix("media-")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    (digits > 0 && rest[digits..].starts_with('.')).then(|| &name[..6 + digits])
}

/// A part of a download yt-dlp did not finish.
fn unfinished(name: &str) -> bool {
    name.ends_with(".part")
        || name.ends_with(".ytdl")
        || name.ends_with(".temp")
        || name.contains(".part-Frag")
}

/// A format id as it may appear in a URN: what yt-dlp prints, other
/// characters replaced.
fn safe_format(id: &str) -> String {
    let s: String = id
        .chars()
        .take(80)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() {
        "unknown".into()
    } else {
        s
    }
}

fn read_info(path: &Path, problems: &mut Vec<String>) -> Option<Vec<u8>> {
    let meta = std::fs::metadata(path).ok()?;
    if meta.len() > MAX_INFO_JSON {
        problems.push(format!(
            "{} ({} bytes) is larger than {MAX_INFO_JSON} bytes and is not kept",
            path.file_name().unwrap_or_default().to_string_lossy(),
            meta.len()
        ));
        return None;
    }
    std::fs::read(path).ok()
}

/// The `WARC-Target-URI` of a media file: the page and the format.
pub fn target_uri(format_id: &str, page: &Url) -> String {
    format!("urn:media:{format_id}:{page}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_custody_named_and_yt_dlp_finished_are_taken() {
        let dir = tempfile::tempdir().unwrap();
        let write = |n: &str, b: &[u8]| std::fs::write(dir.path().join(n), b).unwrap();
        write("media-001.mp4", b"the video");
        write(
            "media-001.info.json",
            br#"{"format_id": "hls-1", "title": "Bab\nAlnairab", "duration": 29.9996, "extractor_key": "Generic"}"#,
        );
        write("media-002.f137.mp4", b"video only");
        write("media-002.f140.m4a", b"audio only");
        write("media-003.mp4.part", b"unfinished");
        write("media-003.mp4.part-Frag3", b"unfinished");
        write("media-004.mp4.ytdl", b"state");
        write("notes.txt", b"not custody's name");
        write("media-.mp4", b"no number");
        let (produced, problems) = collect(dir.path(), 1 << 20);
        assert!(problems.is_empty(), "{problems:?}");
        let names: Vec<_> = produced
            .iter()
            .map(|p| p.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["media-001.mp4", "media-002.f137.mp4", "media-002.f140.m4a"]
        );
        let first = &produced[0];
        assert_eq!(first.format_id, "hls-1");
        assert_eq!(first.mime, "video/mp4");
        assert_eq!(first.sha256, Sha256::of(b"the video"));
        assert_eq!(first.title.as_deref(), Some("Bab Alnairab"));
        assert_eq!(first.duration_ms, Some(30_000));
        assert_eq!(first.extractor.as_deref(), Some("Generic"));
        assert!(first.info_json.is_some());
        assert_eq!(produced[1].format_id, "137");
        assert_eq!(produced[2].format_id, "140");
        assert_eq!(produced[2].mime, "audio/mp4");
    }

    #[test]
    fn files_past_the_byte_budget_are_left_out_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("media-001.mp4"), vec![1u8; 600]).unwrap();
        std::fs::write(dir.path().join("media-002.mp4"), vec![2u8; 600]).unwrap();
        let (produced, problems) = collect(dir.path(), 1000);
        assert_eq!(produced.len(), 1);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].contains("max_media_bytes"), "{problems:?}");
    }

    #[test]
    fn a_hostile_format_id_cannot_break_out_of_its_urn() {
        assert_eq!(safe_format("137+140"), "137+140");
        assert_eq!(
            safe_format("x:y\r\nWARC-Type: response"),
            "x_y__WARC-Type__response"
        );
        assert_eq!(safe_format(""), "unknown");
        let page = Url::parse("https://example.org/v?id=1").unwrap();
        assert_eq!(
            target_uri("hls-1", &page),
            "urn:media:hls-1:https://example.org/v?id=1"
        );
    }

    #[test]
    fn yt_dlp_goes_through_the_proxy_with_native_downloaders_and_the_page_last() {
        let media = crate::capture::MediaSettings {
            format: "b[height<=720]".into(),
            ..Default::default()
        };
        let page = Url::parse("https://example.org/-v").unwrap();
        let args = arguments(&media, &page, "http://custody:t@127.0.0.1:9");
        assert!(args.contains(&"--proxy=http://custody:t@127.0.0.1:9".to_string()));
        assert!(args.contains(&"--format=b[height<=720]".to_string()));
        let native = args.iter().position(|a| a == "--downloader").unwrap();
        assert_eq!(args[native + 1], "native");
        assert!(args.contains(&"--ignore-config".to_string()));
        assert_eq!(&args[args.len() - 2..], ["--", "https://example.org/-v"]);
    }

    #[test]
    fn only_audio_and_video_types_are_media() {
        assert_eq!(media_type("MP4"), "video/mp4");
        assert_eq!(media_type("html"), "application/octet-stream");
        assert!(is_media_type("audio/mp4"));
        assert!(!is_media_type("text/html"));
        assert!(!is_media_type("application/octet-stream"));
    }

    #[test]
    fn yt_dlp_errors_become_one_line() {
        let stderr =
            "WARNING: [generic] Falling back\nERROR: Unsupported URL: http://127.0.0.1/x\n";
        let line = error_line(stderr);
        assert_eq!(line, "yt-dlp: Unsupported URL: http://127.0.0.1/x");
        assert!(no_media(&line));
        assert_eq!(error_line(""), "yt-dlp failed without a message");
    }
}
