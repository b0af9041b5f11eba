//! The media step: yt-dlp (installed by the README's test command) run on
//! in-process pages through custody's recording proxy. Every request it
//! makes is one of the capture's exchanges; what it produced is a
//! `resource` record of the same WARC, with its info JSON beside it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::header;
use axum::routing::get;
use axum::Router;
use custody::model::{Capture, CaptureStatus, MediaInfo, Sha256};
use warc::WarcHeader;

use crate::cli::{output_text, stderr_text, Workdir};
use crate::site;

const MP4: &[u8] = &[
    0, 0, 0, 0x20, b'f', b't', b'y', b'p', b'i', b's', b'o', b'm',
];

pub fn clip() -> Vec<u8> {
    site::media_bytes(MP4, 300_000, 7)
}

fn segment(i: u64) -> Vec<u8> {
    site::media_bytes(b"G", 50_000, 100 + i)
}

fn page(title: &str, body: &str) -> ([(header::HeaderName, &'static str); 1], String) {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        format!("<!doctype html><html><head><title>{title}</title></head><body><h1>{title}</h1>{body}</body></html>"),
    )
}

fn bytes_of(
    mime: &'static str,
    body: Vec<u8>,
) -> ([(header::HeaderName, &'static str); 1], Vec<u8>) {
    ([(header::CONTENT_TYPE, mime)], body)
}

/// A site with a `<video>` page, an HLS page, a page whose player is set
/// up by script with a DASH manifest, a page without media, and pages
/// whose media is at `hostile` (`/drip`, `/endless`).
pub fn media_site(hostile: Option<SocketAddr>) -> Router {
    let hls = "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n\
               #EXTINF:10.0,\nseg0.ts\n#EXTINF:10.0,\nseg1.ts\n#EXTINF:10.0,\nseg2.ts\n#EXT-X-ENDLIST\n";
    let mpd = r#"<?xml version="1.0" encoding="UTF-8"?>
<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="static" mediaPresentationDuration="PT30S" minBufferTime="PT2S" profiles="urn:mpeg:dash:profile:isoff-on-demand:2011">
 <Period>
  <AdaptationSet mimeType="video/mp4" codecs="avc1.42c01e,mp4a.40.2">
   <Representation id="v1" bandwidth="500000" width="640" height="360">
    <SegmentList duration="10" timescale="1">
     <Initialization sourceURL="init.m4s"/>
     <SegmentURL media="seg1.m4s"/>
     <SegmentURL media="seg2.m4s"/>
    </SegmentList>
   </Representation>
  </AdaptationSet>
 </Period>
</MPD>
"#;
    let mut app = Router::new()
        .route(
            "/watch/video",
            get(|| async {
                page(
                    "Footage from the factory",
                    "<p>The clip shows the factory floor.</p><video controls src=\"/media/clip.mp4\"></video>",
                )
            }),
        )
        .route("/media/clip.mp4", get(|| async { bytes_of("video/mp4", clip()) }))
        .route(
            "/watch/hls",
            get(|| async {
                page(
                    "Stream from the square",
                    "<video controls><source src=\"/hls/stream.m3u8\" type=\"application/x-mpegURL\"></video>",
                )
            }),
        )
        .route(
            "/hls/stream.m3u8",
            get(move || async move { bytes_of("application/vnd.apple.mpegurl", hls.as_bytes().to_vec()) }),
        )
        .route(
            "/watch/dash",
            get(|| async {
                page(
                    "Player",
                    "<div id=\"player\"></div><script src=\"/player.js\"></script>\
                     <script>var player = videojs('player'); player.src({src: '/dash/manifest.mpd', type: 'application/dash+xml'});</script>",
                )
            }),
        )
        .route(
            "/player.js",
            get(|| async { bytes_of("application/javascript", b"function videojs(){return {src(){}}}".to_vec()) }),
        )
        .route(
            "/dash/manifest.mpd",
            get(move || async move { bytes_of("application/dash+xml", mpd.as_bytes().to_vec()) }),
        )
        .route("/dash/init.m4s", get(|| async { bytes_of("video/mp4", site::media_bytes(MP4, 20_000, 50)) }))
        .route("/watch/none", get(|| async { page("No media here", "<p>Only words.</p>") }));
    for i in 0..3u64 {
        app = app.route(
            &format!("/hls/seg{i}.ts"),
            get(move || async move { bytes_of("video/mp2t", segment(i)) }),
        );
        app =
            app.route(
                &format!("/dash/seg{i}.m4s"),
                get(move || async move {
                    bytes_of("video/mp4", site::media_bytes(b"", 40_000, 60 + i))
                }),
            );
    }
    if let Some(h) = hostile {
        for (path, target) in [("/watch/drip", "drip"), ("/watch/endless", "endless")] {
            app = app.route(
                path,
                get(move || async move {
                    // Set up by script, so only yt-dlp goes there (the
                    // crawler does not run scripts).
                    page(
                        "Hostile",
                        &format!(
                            "<div id=\"player\"></div>\
                             <script>jwplayer(\"player\").setup({{file: \"http://{h}/{target}.mp4\"}});</script>"
                        ),
                    )
                }),
            );
        }
    }
    app
}

/// Every record of a WARC, read by the independent `warc` crate: its
/// type, its header fields by lower-case name, and its block.
pub fn records(path: &Path) -> Vec<(String, HashMap<String, String>, Vec<u8>)> {
    warc::WarcReader::from_path_gzip(path)
        .expect("open warc")
        .iter_records()
        .map(|r| {
            let r = r.expect("a record");
            let mut fields = HashMap::new();
            for name in [
                "warc-target-uri",
                "warc-ip-address",
                "warc-record-id",
                "warc-refers-to",
                "warc-payload-digest",
                "warc-truncated",
                "content-type",
                "custody-media-tool",
            ] {
                if let Some(v) = r.header(WarcHeader::from(name)) {
                    fields.insert(name.to_string(), v.to_string());
                }
            }
            (r.warc_type().to_string(), fields, r.body().to_vec())
        })
        .collect()
}

/// The payload of an HTTP response block (after its head).
pub fn payload(block: &[u8]) -> &[u8] {
    let at = block
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a head");
    &block[at + 4..]
}

fn media_of(c: &Capture) -> &MediaInfo {
    c.media.as_ref().expect("the capture ran its media step")
}

/// URLs fetched, with the bytes each served.
type Fetched = Vec<(String, Vec<u8>)>;

#[tokio::test(flavor = "multi_thread")]
async fn video_hls_and_dash_pages_are_taken_with_every_exchange_yt_dlp_made_recorded() {
    let addr = site::serve_app(media_site(None)).await;
    let work = Workdir::new("media = true");
    // (page, URLs yt-dlp must have fetched through custody, with their bytes)
    let cases: Vec<(&str, Fetched)> = vec![
        ("/watch/video", vec![("/media/clip.mp4".into(), clip())]),
        (
            "/watch/hls",
            (0..3)
                .map(|i| (format!("/hls/seg{i}.ts"), segment(i)))
                .collect(),
        ),
        (
            "/watch/dash",
            vec![("/dash/init.m4s".into(), site::media_bytes(MP4, 20_000, 50))],
        ),
    ];
    for (path, fetched) in cases {
        let url = format!("http://{addr}{path}");
        let (capture, out) = work.capture(&url);
        assert!(out.status.success(), "{path}: {}", stderr_text(&out));
        assert_eq!(capture.status, CaptureStatus::Ok);
        let media = media_of(&capture);
        assert_eq!(media.status, "ok", "{path}: {media:?}");
        assert_eq!(media.tool, "yt-dlp");
        assert!(
            media
                .version
                .as_deref()
                .is_some_and(|v| v.starts_with("20")),
            "{media:?}"
        );
        assert_eq!(media.files.len(), 1, "{path}: {media:?}");
        let file = &media.files[0];
        assert_eq!(
            file.target_uri,
            format!("urn:media:{}:{url}", file.format_id)
        );
        assert!(file.extractor.is_some(), "{file:?}");

        let warc = work.stored_warc(&capture);
        let recs = records(&warc);
        // A payload fetched twice in one capture (by the crawler and by
        // yt-dlp) is kept once: the later fetch is a revisit of the
        // earlier record, in the same file.
        let mut kept: HashMap<(String, String), String> = HashMap::new();
        for (t, f, _) in &recs {
            if let (true, Some(u), Some(d)) = (
                t == "response",
                f.get("warc-target-uri"),
                f.get("warc-payload-digest"),
            ) {
                let id = f["warc-record-id"].clone();
                assert!(
                    kept.insert((u.clone(), d.clone()), id).is_none(),
                    "{u} kept twice"
                );
            }
        }
        let revisits: Vec<(&String, &String)> = recs
            .iter()
            .filter(|(t, _, _)| t == "revisit")
            .filter_map(|(_, f, _)| Some((f.get("warc-target-uri")?, f.get("warc-refers-to")?)))
            .collect();
        for (u, refers) in &revisits {
            assert!(
                kept.values().any(|id| id == *refers),
                "{u} revisits {refers}, not in the file"
            );
        }
        assert!(
            !revisits.is_empty(),
            "{path}: yt-dlp's second fetches are revisits"
        );
        if path == "/watch/video" {
            let clip_url = format!("http://{addr}/media/clip.mp4");
            assert!(
                revisits.iter().any(|(u, _)| **u == clip_url),
                "{revisits:?}"
            );
        }
        // Each of yt-dlp's fetches is a response record of this WARC, sent
        // by custody (its address recorded), with the bytes served, or a
        // revisit of the crawler's identical one.
        for (p, body) in &fetched {
            let want = format!("http://{addr}{p}");
            let responses: Vec<_> = recs
                .iter()
                .filter(|(t, f, _)| t == "response" && f.get("warc-target-uri") == Some(&want))
                .collect();
            let (_, fields, block) = responses
                .last()
                .unwrap_or_else(|| panic!("{want} recorded"));
            assert_eq!(
                fields.get("warc-ip-address").map(String::as_str),
                Some("127.0.0.1")
            );
            assert_eq!(payload(block), &body[..], "{want}");
            assert_eq!(
                fields.get("warc-payload-digest"),
                Some(&Sha256::of(body).labelled()),
                "{want}"
            );
        }
        let requests = recs
            .iter()
            .filter(|(t, f, _)| t == "request" && f.get("warc-target-uri") == Some(&url))
            .count();
        assert!(requests >= 2, "{path}: the crawler's request and yt-dlp's");

        // The file, whole, in a resource record whose digests are its own.
        let (_, fields, block) = recs
            .iter()
            .find(|(t, f, _)| t == "resource" && f.get("warc-target-uri") == Some(&file.target_uri))
            .expect("the media file's record");
        assert_eq!(Sha256::of(block), file.sha256);
        assert_eq!(block.len() as u64, file.bytes);
        assert_eq!(fields.get("warc-record-id"), Some(&file.record_id));
        assert_eq!(fields.get("content-type"), Some(&file.mime));
        assert!(
            fields["custody-media-tool"].starts_with("yt-dlp 20"),
            "{fields:?}"
        );
        if path == "/watch/video" {
            assert_eq!(block, &clip(), "a progressive file is the bytes served");
        }
        // yt-dlp's info JSON, referring to the file's record.
        let (_, info_fields, info) = recs
            .iter()
            .find(|(t, f, _)| t == "metadata" && f.get("warc-refers-to") == Some(&file.record_id))
            .expect("the info JSON's record");
        assert_eq!(
            info_fields.get("warc-record-id"),
            file.info_record_id.as_ref()
        );
        let info: serde_json::Value = serde_json::from_slice(info).expect("info JSON");
        assert_eq!(info["extractor_key"].as_str(), file.extractor.as_deref());
        assert_eq!(info["format_id"].as_str(), Some(file.format_id.as_str()));
        // The manifest names the step.
        let (_, _, manifest) = recs.last().expect("manifest");
        let manifest: serde_json::Value = serde_json::from_slice(manifest).unwrap();
        assert_eq!(manifest["media"]["files"][0]["sha256"], file.sha256.hex());

        let shown = output_text(&work.run(&["show", capture.id.as_str()]));
        assert!(shown.contains("media file"), "{shown}");
        let verified = work.run(&["verify", capture.id.as_str()]);
        assert!(verified.status.success(), "{}", output_text(&verified));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_claim_links_to_seconds_of_the_video_and_the_export_carries_it() {
    let addr = site::serve_app(media_site(None)).await;
    let work = Workdir::new("media = true");
    let (capture, out) = work.capture(&format!("http://{addr}/watch/hls"));
    assert!(out.status.success(), "{}", stderr_text(&out));
    let file = media_of(&capture).files[0].clone();
    let claim_id = &work.claim("The stream shows the square at noon");
    let link: serde_json::Value = serde_json::from_slice(&work.ok(&[
        "claim",
        "link",
        claim_id,
        capture.id.as_str(),
        "--url",
        &file.target_uri,
        "--fragment",
        "t=10,20",
        "--json",
    ]))
    .unwrap();
    assert_eq!(link["target_uri"], file.target_uri.as_str());
    assert_eq!(link["record_id"], file.record_id.as_str());
    let shown = output_text(&work.run(&["claim", "show", claim_id]));
    assert!(shown.contains("supports verified"), "{shown}");
    // Text is not what a video is linked by.
    let quoted = work.run(&[
        "claim",
        "link",
        claim_id,
        capture.id.as_str(),
        "--url",
        &file.target_uri,
        "--quote",
        "noon",
    ]);
    assert!(!quoted.status.success());

    // The package carries the file, and verifies offline.
    let wacz = work.export_wacz(capture.id.as_str(), "media.wacz");
    let verified = work.run(&["verify", wacz.to_str().unwrap()]);
    assert!(verified.status.success(), "{}", output_text(&verified));
    crate::interop::assert_wacz_valid(&wacz);
    let index = zip_member(&wacz, "indexes/index.cdx");
    assert!(index.contains("urn:media:"), "{index}");

    // The index rebuilt from the store alone holds the same media step.
    std::fs::remove_file(work.path().join("custody-data/index.db")).unwrap();
    let _ = std::fs::remove_file(work.path().join("custody-data/index.db-wal"));
    let _ = std::fs::remove_file(work.path().join("custody-data/index.db-shm"));
    let rebuilt = work.run(&["reindex"]);
    assert!(rebuilt.status.success(), "{}", output_text(&rebuilt));
    let shown: Capture =
        serde_json::from_slice(&work.ok(&["show", capture.id.as_str(), "--json"])).unwrap();
    assert_eq!(shown.media, capture.media);
}

fn zip_member(path: &Path, name: &str) -> String {
    let out = std::process::Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile; sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]).decode())",
        ])
        .arg(path)
        .arg(name)
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_ui_plays_the_file_with_ranges_and_nothing_in_it_runs_on_custody() {
    let addr = site::serve_app(media_site(None)).await;
    // The media step is off in the configuration; the API asks for it.
    let work = Workdir::new("allow_private_networks = true");
    let archivist = crate::web::token(&work, "archivist");
    let server = crate::web::serve(&work, &["--public-read"]);
    let body = serde_json::json!({"url": format!("http://{addr}/watch/video"), "media": true});
    let made = crate::web::as_token(
        server.addr,
        "POST",
        "/api/v1/captures",
        &archivist,
        Some(body.to_string().as_bytes()),
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let capture: Capture = serde_json::from_value(made.json()["items"][0].clone()).unwrap();
    assert_eq!(media_of(&capture).status, "ok", "{:?}", capture.media);
    assert_eq!(
        made.json()["items"][0]["links"]["media"][0],
        format!("/api/v1/captures/{}/media/0", capture.id)
    );
    let page = crate::web::get(server.addr, &format!("/ui/captures/{}", capture.id), None);
    assert_eq!(page.status, 200);
    let src = format!("/api/v1/captures/{}/media/0", capture.id);
    assert!(
        page.text().contains(&format!(
            "<video controls preload=\"metadata\" src=\"{src}\""
        )),
        "{}",
        page.text()
    );
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("media-src 'self'"));

    let whole = crate::web::get(server.addr, &src, None);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, clip());
    assert_eq!(whole.header("content-type"), Some("video/mp4"));
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(whole.header("x-content-type-options"), Some("nosniff"));
    assert!(whole
        .header("content-security-policy")
        .unwrap()
        .starts_with("sandbox"));
    let part = crate::web::request(
        server.addr,
        "GET",
        &src,
        &[("Range", "bytes=1000-1999")],
        None,
    );
    assert_eq!(part.status, 206);
    assert_eq!(part.body, &clip()[1000..2000]);
    assert_eq!(part.header("content-range"), Some("bytes 1000-1999/300000"));
    let missing = crate::web::get(
        server.addr,
        &format!("/api/v1/captures/{}/media/1", capture.id),
        None,
    );
    assert_eq!(missing.status, 404);
}

/// Capture settings with the media step on.
fn media_settings(allow_private: bool) -> custody::capture::CaptureSettings {
    custody::capture::CaptureSettings {
        allow_private,
        media: custody::capture::MediaSettings {
            enabled: true,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Every exchange was recorded, and refused by the network policy
/// (nothing connected to a private address).
pub fn all_refused_as_private(exchanges: &[custody::capture::Exchange]) {
    assert!(!exchanges.is_empty(), "the requests are recorded, refused");
    for ex in exchanges {
        assert!(
            matches!(
                ex.error,
                Some(custody::capture::FetchError::PrivateAddress { .. })
            ),
            "{}: {:?}",
            ex.url,
            ex.error
        );
    }
}

/// Runs the media step alone with `settings`, on `page`.
async fn media_step(
    settings: custody::capture::CaptureSettings,
    page: &str,
) -> (custody::media::MediaOutput, Vec<custody::capture::Exchange>) {
    let scratch = tempfile::tempdir().unwrap();
    let crawler =
        custody::capture::Crawler::new(settings.clone(), scratch.path().to_path_buf()).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let collect = tokio::spawn(async move {
        let mut all = Vec::new();
        while let Some(ex) = rx.recv().await {
            all.push(ex);
        }
        all
    });
    let url = url::Url::parse(page).unwrap();
    let out = custody::media::run(&settings, crawler.fetcher(), &url, tx, scratch.path()).await;
    (out, collect.await.unwrap())
}

#[tokio::test(flavor = "multi_thread")]
async fn without_allow_private_yt_dlp_reaches_no_private_address() {
    let (app, hits) = site::counting(media_site(None));
    let addr = site::serve_app(app).await;
    let settings = media_settings(false);
    let (out, exchanges) = media_step(settings, &format!("http://{addr}/watch/video")).await;
    assert_eq!(out.info.status, "failed", "{:?}", out.info);
    assert!(out.produced.is_empty());
    all_refused_as_private(&exchanges);
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the site");
}

#[tokio::test(flavor = "multi_thread")]
async fn media_that_never_ends_or_drips_is_cut_at_its_limit_and_the_page_capture_stands() {
    let hostile = site::serve_hostile(Arc::new(Vec::new())).await;
    let addr = site::serve_app(media_site(Some(hostile))).await;

    // Never ends: cut at the media byte budget.
    let work = Workdir::new("media = true\nmax_media_bytes = 3000000");
    let (capture, out) = work.capture(&format!("http://{addr}/watch/endless"));
    assert!(out.status.success(), "{}", stderr_text(&out));
    let media = media_of(&capture);
    assert!(
        media
            .problem
            .as_deref()
            .is_some_and(|p| p.contains("max_media_bytes")),
        "{media:?}"
    );
    // (yt-dlp may try again after the cut: the first answer is the one.)
    let endless = capture
        .resources
        .iter()
        .find(|r| r.url.ends_with("/endless.mp4") && r.status.is_some())
        .expect("the endless response is recorded");
    assert_eq!(endless.truncated.as_deref(), Some("length"), "{endless:?}");
    // (Cut within one read of the limit: the bytes kept are those read
    // off the wire.)
    assert!(endless.bytes <= 3_000_000 + 256 * 1024, "{endless:?}");

    // Drips: cut when the step's time is up; the capture is stored.
    let work = Workdir::new("media = true\nmedia_timeout_secs = 3");
    let started = Instant::now();
    let (capture, out) = work.capture(&format!("http://{addr}/watch/drip"));
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert!(
        started.elapsed() < Duration::from_secs(40),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(capture.status, CaptureStatus::Ok);
    let media = media_of(&capture);
    assert_ne!(media.status, "ok", "{media:?}");
    let drip = capture
        .resources
        .iter()
        .find(|r| r.url.ends_with("/drip.mp4") && r.status.is_some())
        .expect("the dripping response is recorded");
    assert_eq!(drip.truncated.as_deref(), Some("time"), "{drip:?}");

    // The next capture works.
    let (next, out) = work.capture(&format!("http://{addr}/watch/video"));
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert_eq!(media_of(&next).status, "ok");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_yt_dlp_or_no_media_is_a_line_and_never_a_failed_capture() {
    let addr = site::serve_app(media_site(None)).await;
    let work = Workdir::new("media = true\nytdlp_path = \"/nonexistent/yt-dlp\"");
    let (capture, out) = work.capture(&format!("http://{addr}/watch/video"));
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert_eq!(capture.status, CaptureStatus::Ok);
    let media = media_of(&capture);
    assert_eq!(media.status, "unavailable");
    assert!(
        media
            .problem
            .as_deref()
            .unwrap()
            .contains("capture.ytdlp_path"),
        "{media:?}"
    );
    assert!(
        stderr_text(&out).contains("media  unavailable"),
        "{}",
        stderr_text(&out)
    );

    let work = Workdir::new("media = true");
    let (capture, out) = work.capture(&format!("http://{addr}/watch/none"));
    assert!(out.status.success(), "{}", stderr_text(&out));
    let media = media_of(&capture);
    assert_eq!(media.status, "none", "{media:?}");
    assert!(media.files.is_empty());

    // Without --media (or capture.media), the step does not run.
    let work = Workdir::new("");
    let (capture, _) = work.capture(&format!("http://{addr}/watch/video"));
    assert!(capture.media.is_none());
}

/// A page with a 128 MiB progressive video and one with a 64-segment
/// HLS stream (1 MiB each), every MiB the same incompressible block.
async fn serve_large() -> SocketAddr {
    let block = axum::body::Bytes::from(site::media_bytes(MP4, 1 << 20, 9));
    let big = block.clone();
    let mut playlist = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:4\n");
    for i in 0..64 {
        playlist.push_str(&format!("#EXTINF:4.0,\nseg{i}.ts\n"));
    }
    playlist.push_str("#EXT-X-ENDLIST\n");
    let mut app = Router::new()
        .route(
            "/bench/video",
            get(|| async { page("Long video", "<video controls src=\"/bench/big.mp4\"></video>") }),
        )
        .route(
            "/bench/big.mp4",
            get(move || {
                let block = big.clone();
                async move {
                    let chunks = (0..128).map(move |_| Ok::<_, std::io::Error>(block.clone()));
                    axum::response::Response::builder()
                        .header(header::CONTENT_TYPE, "video/mp4")
                        .header(header::CONTENT_LENGTH, 128u64 << 20)
                        .body(axum::body::Body::from_stream(futures_util::stream::iter(chunks)))
                        .expect("response")
                }
            }),
        )
        .route(
            "/bench/hls",
            get(|| async {
                page(
                    "Long stream",
                    "<video controls><source src=\"/bench/stream.m3u8\" type=\"application/x-mpegURL\"></video>",
                )
            }),
        )
        .route(
            "/bench/stream.m3u8",
            get(move || {
                let p = playlist.clone();
                async move { bytes_of("application/vnd.apple.mpegurl", p.into_bytes()) }
            }),
        );
    for i in 0..64 {
        let block = block.clone();
        app = app.route(
            &format!("/bench/seg{i}.ts"),
            get(move || {
                let block = block.clone();
                async move { ([(header::CONTENT_TYPE, "video/mp2t")], block) }
            }),
        );
    }
    site::serve_app(app).await
}

/// The media step (yt-dlp through custody's recording proxy, every byte
/// recorded and hashed) against yt-dlp alone fetching the same stream
/// straight from the server, in the same run. The step's time includes
/// hashing yt-dlp's file; writing it into the WARC is the pipeline's.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --ignored bench_media --nocapture"]
async fn bench_media_step_against_yt_dlp_alone() {
    let addr = serve_large().await;
    for (what, path) in [
        ("128 MiB progressive video", "/bench/video"),
        ("64-segment HLS stream (64 MiB)", "/bench/hls"),
    ] {
        let url = format!("http://{addr}{path}");
        let settings = media_settings(true);
        let best = |runs: Vec<Duration>| runs.into_iter().min().expect("runs");
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..3 {
            let started = Instant::now();
            let (out, exchanges) = media_step(settings.clone(), &url).await;
            ours.push(started.elapsed());
            assert_eq!(out.info.status, "ok", "{:?}", out.info);
            assert!(exchanges.len() >= 2);

            let dir = tempfile::tempdir().unwrap();
            let started = Instant::now();
            let status = std::process::Command::new("yt-dlp")
                .args([
                    "--ignore-config",
                    "--no-cache-dir",
                    "--quiet",
                    "--downloader",
                    "native",
                ])
                .args([
                    "-f",
                    custody::capture::DEFAULT_MEDIA_FORMAT,
                    "-o",
                    "media.%(ext)s",
                ])
                .arg(&url)
                .current_dir(dir.path())
                .status()
                .expect("yt-dlp on PATH");
            theirs.push(started.elapsed());
            assert!(status.success());
        }
        let (ours, theirs) = (best(ours), best(theirs));
        println!(
            "{what}: custody's media step {:.2} s, yt-dlp alone {:.2} s; the step takes {:.2}x yt-dlp's time",
            ours.as_secs_f64(),
            theirs.as_secs_f64(),
            ours.as_secs_f64() / theirs.as_secs_f64()
        );
    }
}
