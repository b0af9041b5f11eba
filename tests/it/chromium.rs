//! Chromium over custody's own DevTools client, its every request sent
//! through a capture's recording proxy (browser mode's parts; the capture
//! mode itself is not built yet).

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use axum::http::header;
use axum::routing::get;
use axum::Router;
use custody::browser::ca::InterceptCa;
use custody::browser::chromium::{Chromium, Loaded};
use custody::browser::proxy::{ProxyLimits, RecordingProxy};
use custody::capture::{CaptureSettings, Crawler, Exchange};
use tokio::sync::mpsc;

use crate::site;

const POST_TEXT: &str = "Nearly 25 civilians were killed in Bab Alnairab";

fn post_site() -> Router {
    let html = |body: &'static str| {
        (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::SET_COOKIE, "seen=1; Path=/"),
            ],
            format!(
                "<!doctype html><html><head><title>Post</title></head><body>{body}</body></html>"
            ),
        )
    };
    Router::new()
        .route(
            "/post",
            get(move || async move {
                // The post from a JSON call with the photo it names; a video
                // element made by script; an image loaded only once scrolled
                // into view.
                html(
                    "<article id=\"post\"></article><script>\
                     fetch('/api/post.json').then(r => r.json()).then(j => {\
                       document.getElementById('post').textContent = j.text;\
                       const img = document.createElement('img'); img.src = j.photo;\
                       document.body.appendChild(img); });\
                     const v = document.createElement('video'); v.src = '/clip.mp4'; document.body.appendChild(v);\
                     </script><div style=\"height: 3000px\"></div><img id=\"lazy\" data-src=\"/lazy.png\" width=\"40\" height=\"30\">\
                     <script>new IntersectionObserver((es, o) => { for (const e of es) if (e.isIntersecting) { \
                       e.target.src = e.target.dataset.src; o.disconnect(); } }).observe(document.getElementById('lazy'));</script>",
                )
            }),
        )
        .route(
            "/api/post.json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    serde_json::json!({"text": POST_TEXT, "photo": "/photo.png"}).to_string(),
                )
            }),
        )
        .route(
            "/lazy.png",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "image/png")],
                    crate::browser::png(40, 30, [30, 30, 200]),
                )
            }),
        )
        .route(
            "/clip.mp4",
            get(|| async { ([(header::CONTENT_TYPE, "video/mp4")], crate::media::clip()) }),
        )
        .route(
            "/photo.png",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "image/png")],
                    crate::browser::png(40, 30, [200, 30, 30]),
                )
            }),
        )
        .route(
            "/never",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(120)).await;
                "late"
            }),
        )
        .route(
            "/dialogs",
            get(move || async move {
                html("<p id=\"p\">before</p><script>alert('a'); confirm('b'); prompt('c'); \
                      window.open('/post'); window.open('/post'); \
                      document.getElementById('p').textContent = 'after the dialogs';</script>")
            }),
        )
        .route(
            "/reload",
            get(move || async move {
                html("<p>again</p><script>setTimeout(() => location.reload(), 20);</script>")
            }),
        )
        .route(
            "/feed",
            get(move || async move {
                html("<div id=\"feed\"></div><script>\
                      function more() { for (let i = 0; i < 5; i++) { const d = document.createElement('div'); \
                      d.style.height = '400px'; d.textContent = 'item'; document.getElementById('feed').appendChild(d); } }\
                      more(); addEventListener('scroll', more);</script>")
            }),
        )
        .route(
            "/many",
            get(move || async move {
                html("<script>for (let i = 0; i < 400; i++) { const im = new Image(); im.src = '/photo.png?i=' + i; }</script>")
            }),
        )
        .route(
            "/download",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "application/zip"),
                        (header::CONTENT_DISPOSITION, "attachment; filename=\"evidence.zip\""),
                    ],
                    vec![b'P', b'K', 3, 4, 0, 0, 0, 0],
                )
            }),
        )
        .route(
            "/huge",
            get(move || async move {
                html("<script>const b = document.body; for (let i = 0; i < 200000; i++) { const s = document.createElement('span'); s.textContent = 'x '; b.appendChild(s); }</script>")
            }),
        )
}

struct Proxied {
    proxy: RecordingProxy,
    credential: String,
    rx: mpsc::Receiver<Exchange>,
    _spool: tempfile::TempDir,
}

async fn proxy(ca: Arc<InterceptCa>) -> Proxied {
    let spool = tempfile::tempdir().unwrap();
    let settings = CaptureSettings {
        allow_private: true,
        ..CaptureSettings::default()
    };
    let crawler = Crawler::new(settings, spool.path().to_path_buf()).unwrap();
    let (tx, rx) = mpsc::channel(256);
    let budget = Arc::new(AtomicU64::new(1 << 30));
    let credential = custody::browser::proxy::new_credential();
    let proxy = RecordingProxy::start(
        crawler.fetcher().clone(),
        ca,
        budget,
        tx,
        ProxyLimits {
            credential: Some(credential.clone()),
            ..ProxyLimits::default()
        },
    )
    .await
    .unwrap();
    Proxied {
        proxy,
        credential,
        rx,
        _spool: spool,
    }
}

/// The block of the `resource` record `urn:KIND:URL` among `recs`.
fn made_record(
    recs: &[(String, std::collections::HashMap<String, String>, Vec<u8>)],
    kind: &str,
    url: &str,
) -> Vec<u8> {
    let target = format!("urn:{kind}:{url}");
    recs.iter()
        .find(|(t, f, _)| t == "resource" && f.get("warc-target-uri") == Some(&target))
        .map(|(_, _, block)| block.clone())
        .unwrap_or_else(|| panic!("{target} recorded"))
}

fn drain(rx: &mut mpsc::Receiver<Exchange>) -> Vec<Exchange> {
    let mut all = Vec::new();
    while let Ok(ex) = rx.try_recv() {
        all.push(ex);
    }
    all
}

async fn launch(ca: &InterceptCa, scratch: &std::path::Path) -> Chromium {
    let path = custody::browser::chromium::locate(None).expect("chromium on PATH");
    Chromium::launch(&path, ca.spki_sha256(), scratch, (1280, 800))
        .await
        .expect("chromium starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_post_built_by_script_loads_through_the_proxy_in_a_fresh_context_each_time() {
    let addr: SocketAddr = site::serve_app(post_site()).await;
    let scratch = tempfile::tempdir().unwrap();
    let ca = Arc::new(InterceptCa::new().unwrap());
    let browser = launch(&ca, scratch.path()).await;
    assert!(browser.version.contains("Chrome"), "{}", browser.version);

    let mut first = proxy(ca.clone()).await;
    let tab = browser
        .tab(first.proxy.addr(), &first.credential)
        .await
        .unwrap();
    let url = format!("http://{addr}/post");
    assert_eq!(
        tab.navigate(&url, Duration::from_secs(30)).await.unwrap(),
        Loaded::Load
    );
    // The script's JSON call and the image it inserted are custody's
    // exchanges, with custody's connection to the origin.
    let mut text = serde_json::Value::Null;
    for _ in 0..100 {
        text = tab
            .evaluate("document.getElementById('post').textContent")
            .await
            .unwrap();
        let loaded = tab
            .evaluate("[...document.images].every(i => i.complete && i.naturalWidth > 0) && document.images.length > 0")
            .await
            .unwrap();
        if text == POST_TEXT && loaded == true {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(text, POST_TEXT, "the post is in the rendered page");
    let png = tab.screenshot(20_000).await.unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let pdf = tab.pdf().await.unwrap();
    assert!(pdf.starts_with(b"%PDF-"), "a PDF");
    tab.close().await;
    let exchanges = drain(&mut first.rx);
    for path in ["/post", "/api/post.json", "/photo.png"] {
        let want = format!("http://{addr}{path}");
        let ex = exchanges
            .iter()
            .find(|e| e.url.as_str() == want)
            .unwrap_or_else(|| {
                panic!(
                    "{want} went through the proxy: {:?}",
                    exchanges.iter().map(|e| e.url.as_str()).collect::<Vec<_>>()
                )
            });
        assert_eq!(ex.remote, Some(addr), "{want}");
        assert!(ex.response.is_some(), "{want}");
    }

    // A second capture's context carries no cookie of the first.
    let mut second = proxy(ca.clone()).await;
    let tab = browser
        .tab(second.proxy.addr(), &second.credential)
        .await
        .unwrap();
    tab.navigate(&url, Duration::from_secs(30)).await.unwrap();
    tab.close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exchanges = drain(&mut second.rx);
    let page = exchanges
        .iter()
        .find(|e| e.url.as_str() == url)
        .expect("the page, again");
    let request = String::from_utf8_lossy(&page.request).to_ascii_lowercase();
    assert!(!request.contains("\r\ncookie:"), "{request}");
    assert!(
        drain(&mut first.rx).is_empty(),
        "nothing reached the first capture's proxy"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_that_never_loads_ends_at_its_budget_and_the_browser_serves_the_next() {
    let addr: SocketAddr = site::serve_app(post_site()).await;
    let scratch = tempfile::tempdir().unwrap();
    let ca = Arc::new(InterceptCa::new().unwrap());
    let browser = launch(&ca, scratch.path()).await;
    let p = proxy(ca.clone()).await;
    let tab = browser.tab(p.proxy.addr(), &p.credential).await.unwrap();
    let started = std::time::Instant::now();
    let loaded = tab
        .navigate(&format!("http://{addr}/never"), Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(loaded, Loaded::TimedOut);
    assert!(started.elapsed() < Duration::from_secs(10));
    tab.close().await;
    assert!(browser.alive().await);
    let p = proxy(ca.clone()).await;
    let tab = browser.tab(p.proxy.addr(), &p.credential).await.unwrap();
    let loaded = tab
        .navigate(&format!("http://{addr}/post"), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(loaded, Loaded::Load);
    tab.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn in_browser_mode_the_capture_holds_what_scripts_fetched_a_screenshot_and_the_rendered_text()
{
    use crate::cli::{output_text, stderr_text, Workdir};
    let addr: SocketAddr = site::serve_app(post_site()).await;
    let url = format!("http://{addr}/post");
    let work = Workdir::new("mode = \"browser\"");
    let (capture, out) = work.capture(&url);
    assert!(out.status.success(), "{}", stderr_text(&out));
    let browser = capture.browser.clone().expect("a browser-mode capture");
    assert_eq!(browser.status, "ok", "{browser:?}");
    assert!(browser.version.as_deref().unwrap().contains("Chrome"));
    assert_eq!(browser.window, "1280x900");
    assert!(
        browser.behaviours.iter().any(|b| b == "load"),
        "{browser:?}"
    );
    let kinds: Vec<&str> = browser.records.iter().map(|r| r.kind.as_str()).collect();
    assert_eq!(kinds, ["screenshot", "thumbnail", "pdf", "view", "text"]);

    let warc = work.stored_warc(&capture);
    let recs = crate::media::records(&warc);
    // What the script fetched, and the image it inserted, are response
    // records of custody's own connection, with the bytes served.
    let json = serde_json::json!({"text": POST_TEXT, "photo": "/photo.png"}).to_string();
    for (path, body) in [
        ("/api/post.json", json.into_bytes()),
        ("/photo.png", crate::browser::png(40, 30, [200, 30, 30])),
        ("/lazy.png", crate::browser::png(40, 30, [30, 30, 200])),
        ("/clip.mp4", crate::media::clip()),
    ] {
        let want = format!("http://{addr}{path}");
        let (_, fields, block) = recs
            .iter()
            .find(|(t, f, _)| t == "response" && f.get("warc-target-uri") == Some(&want))
            .unwrap_or_else(|| panic!("{want} recorded"));
        assert_eq!(
            fields.get("warc-ip-address").map(String::as_str),
            Some("127.0.0.1")
        );
        assert_eq!(crate::media::payload(block), &body[..], "{want}");
        assert_eq!(
            fields.get("warc-payload-digest"),
            Some(&custody::model::Sha256::of(&body).labelled())
        );
    }
    let made = |kind: &str| made_record(&recs, kind, &url);
    // A PNG as wide as the window.
    let png = made("screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
    assert_eq!(u32::from_be_bytes(png[16..20].try_into().unwrap()), 1280);
    assert!(made("pdf").starts_with(b"%PDF-"));
    assert!(String::from_utf8(made("text")).unwrap().contains(POST_TEXT));
    assert!(String::from_utf8(made("view")).unwrap().contains(POST_TEXT));
    let verified = work.run(&["verify", capture.id.as_str()]);
    assert!(verified.status.success(), "{}", output_text(&verified));

    // The passage exists only after the script ran: a claim links to it in
    // the rendered text, and the link names that record.
    let claim_id = &work.claim(POST_TEXT);
    let link: serde_json::Value = serde_json::from_slice(&work.ok(&[
        "claim",
        "link",
        claim_id,
        capture.id.as_str(),
        "--quote",
        POST_TEXT,
        "--json",
    ]))
    .unwrap();
    assert_eq!(link["target_uri"], format!("urn:text:{url}"));
    let shown = output_text(&work.run(&["claim", "show", claim_id]));
    assert!(shown.contains("supports verified"), "{shown}");

    // Investigators see it: the capture page shows the screenshot, the
    // timeline a thumbnail; the rendered DOM is served as text only.
    let server = crate::web::serve(&work, &["--public-read"]);
    let id = capture.id.as_str();
    let page = crate::web::get(server.addr, &format!("/ui/captures/{id}"), None);
    let shot = format!("/api/v1/captures/{id}/browser/screenshot");
    assert!(
        page.text().contains(&format!("<img src=\"{shot}\"")),
        "{}",
        page.text()
    );
    let got = crate::web::get(server.addr, &shot, None);
    assert_eq!(got.status, 200);
    assert_eq!(got.body, png);
    assert_eq!(got.header("content-type"), Some("image/png"));
    let view = crate::web::get(
        server.addr,
        &format!("/api/v1/captures/{id}/browser/view"),
        None,
    );
    assert_eq!(
        view.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert!(view
        .header("content-security-policy")
        .unwrap()
        .starts_with("sandbox"));
    let timeline = crate::web::get(server.addr, &format!("/ui/timeline?url={url}"), None);
    assert!(
        timeline
            .text()
            .contains(&format!("/api/v1/captures/{id}/browser/thumbnail")),
        "{}",
        timeline.text()
    );

    // custody's replay serves what the script fetched, as received.
    let replayed = crate::web::get(
        server.addr,
        &format!("/replay/2030id_/http://{addr}/api/post.json"),
        None,
    );
    assert_eq!(replayed.status, 200, "{}", replayed.text());
    assert!(replayed.text().contains(POST_TEXT));

    // The export carries the screenshot, PDF and text, and the field's
    // tools accept it.
    let wacz = work.export_wacz(id, "browser.wacz");
    crate::interop::assert_wacz_valid(&wacz);
    let exported = work.export_warc(id, "browser.warc.gz");
    let out = crate::interop::tool("warcio")
        .arg("check")
        .arg(&exported)
        .output()
        .expect("warcio");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let (_pywb, port) = crate::interop::pywb_serving(&work.path().join("pywb"), &exported);
    let (status, body) = crate::interop::http_get(
        port,
        &format!("/evidence/2030id_/http://{addr}/api/post.json"),
    );
    assert_eq!(status, 200, "pywb replays what the script fetched");
    assert!(String::from_utf8_lossy(&body).contains(POST_TEXT));

    // Search finds the words the script wrote, in the rendered text.
    let found = String::from_utf8(work.ok(&["search", "\"Bab Alnairab\"", "--json"])).unwrap();
    let hit: serde_json::Value =
        serde_json::from_str(found.lines().next().expect("a result")).unwrap();
    assert_eq!(hit["document"], format!("urn:text:{url}"), "{hit}");
    assert_eq!(hit["url"], url.as_str());

    // In http mode the same page holds no such passage.
    let plain = Workdir::new("");
    let (http, _) = plain.capture(&url);
    assert!(http.browser.is_none());
    let found = plain.ok(&["search", "\"Bab Alnairab\"", "--json"]);
    assert!(found.is_empty(), "the HTML alone does not say it");
    let claim_id = plain.claim(POST_TEXT);
    let refused = plain.run(&[
        "claim",
        "link",
        &claim_id,
        http.id.as_str(),
        "--quote",
        POST_TEXT,
    ]);
    assert!(!refused.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_pages_end_within_their_budget_with_what_arrived_and_the_next_capture_works() {
    use crate::cli::{stderr_text, Workdir};
    let addr: SocketAddr = site::serve_app(post_site()).await;
    let work = Workdir::new(
        "mode = \"browser\"\nbrowser_timeout_secs = 5\nmax_scroll_steps = 5\nmax_resources = 100\nmax_stream_segments = 0\nresource_timeout_secs = 5",
    );
    for path in [
        "/dialogs",
        "/reload",
        "/feed",
        "/many",
        "/download",
        "/huge",
        "/never",
    ] {
        let started = std::time::Instant::now();
        let (capture, out) = work.capture(&format!("http://{addr}{path}"));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(60), "{path} took {took:?}");
        if path == "/never" {
            // Nothing ever came: neither the browser nor custody's own
            // fetch of the page got a response, so the capture failed, in
            // its time.
            assert_eq!(capture.status, custody::model::CaptureStatus::Failed);
            continue;
        }
        let browser = capture
            .browser
            .clone()
            .unwrap_or_else(|| panic!("{path}: browser mode: {capture:?}"));
        match path {
            "/dialogs" => {
                assert_eq!(browser.status, "ok", "{browser:?}");
                let text = browser.records.iter().find(|r| r.kind == "text");
                assert!(text.is_some(), "{browser:?}");
            }
            "/feed" => {
                let scrolled = browser
                    .behaviours
                    .iter()
                    .find(|b| b.starts_with("scrolled"));
                assert_eq!(
                    scrolled.map(|s| s.starts_with("scrolled 5 step(s)")),
                    Some(true),
                    "{browser:?}"
                );
            }
            "/many" => {
                assert!(
                    capture.resources.len() <= 100 + 2,
                    "{}",
                    capture.resources.len()
                );
            }
            _ => {}
        }
        assert!(out.status.success(), "{path}: {}", stderr_text(&out));
    }
    // The browser serves the next capture as before.
    let (capture, out) = work.capture(&format!("http://{addr}/post"));
    assert!(out.status.success(), "{}", stderr_text(&out));
    let browser = capture.browser.expect("browser mode");
    assert_eq!(browser.status, "ok", "{browser:?}");
    assert!(browser.records.iter().any(|r| r.kind == "screenshot"));
}

/// The resident memory of `pid` and every process under it, summed (pages
/// shared between Chromium's processes are counted in each).
fn tree_rss_kib(pid: u32) -> u64 {
    let mut parents: Vec<(u32, u32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let stat = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap_or_default();
        // The parent is the second field after the command's closing paren.
        if let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) {
            if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parents.push((p, ppid));
            }
        }
    }
    let mut tree = vec![pid];
    let mut i = 0;
    while i < tree.len() {
        let parent = tree[i];
        tree.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    tree.iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/status")).ok())
        .filter_map(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .sum()
}

/// Runs `cmd` to its end: how long it took and the peak of its process
/// tree's memory, sampled every 20 ms.
fn timed_tree(mut cmd: std::process::Command) -> (Duration, u64) {
    let started = std::time::Instant::now();
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("runs");
    let mut peak = 0;
    loop {
        peak = peak.max(tree_rss_kib(child.id()));
        if let Ok(Some(status)) = child.try_wait() {
            assert!(status.success(), "{status}");
            return (started.elapsed(), peak);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Browser mode's capture of the suite's rich article (custody's CLI,
/// Chromium started for it, every request through the recording proxy,
/// the screenshot, PDF, DOM and text written, the crawl of what the
/// browser did not fetch, the WARC stored and indexed) against Chromium
/// alone loading the same page (`--headless --dump-dom`), in one run.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --ignored bench_browser --nocapture"]
async fn bench_browser_capture_against_plain_headless_chromium() {
    let addr = site::serve_http().await;
    let url = format!("http://{addr}{}", site::RICH_PATH);
    let work = crate::cli::Workdir::new("mode = \"browser\"\nbrowser_timeout_secs = 60");
    let chromium = custody::browser::chromium::locate(None).expect("chromium");
    let best = |runs: Vec<(Duration, u64)>| {
        let took = runs.iter().map(|r| r.0).min().expect("runs");
        let peak = runs.iter().map(|r| r.1).max().expect("runs");
        (took, peak)
    };
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let cmd = work.command(&["capture", "--allow-private", "--no-dedup", &url]);
        ours.push(
            tokio::task::spawn_blocking(move || timed_tree(cmd))
                .await
                .unwrap(),
        );
        let profile = tempfile::tempdir().unwrap();
        let mut cmd = std::process::Command::new(&chromium);
        cmd.args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--dump-dom", &url]);
        theirs.push(
            tokio::task::spawn_blocking(move || timed_tree(cmd))
                .await
                .unwrap(),
        );
    }
    let ((ours, our_peak), (theirs, their_peak)) = (best(ours), best(theirs));
    println!(
        "rich article: custody browser-mode capture {:.2} s (custody and its browser, peak {:.0} MiB), plain headless Chromium load {:.2} s (peak {:.0} MiB); the capture takes {:.2}x the plain load's time (target 1.3x)",
        ours.as_secs_f64(),
        our_peak as f64 / 1024.0,
        theirs.as_secs_f64(),
        their_peak as f64 / 1024.0,
        ours.as_secs_f64() / theirs.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_passage_linked_in_the_rendered_text_is_rechecked_in_the_next_capture_s_rendered_text() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let edited = Arc::new(AtomicBool::new(false));
    let flag = edited.clone();
    let app = post_site()
        .route(
            "/api/edited.json",
            get(move || {
                let edited = flag.load(Ordering::SeqCst);
                async move {
                    let text = if edited {
                        "This post was removed."
                    } else {
                        POST_TEXT
                    };
                    (
                        [(header::CONTENT_TYPE, "application/json")],
                        serde_json::json!({"text": text, "photo": "/photo.png"}).to_string(),
                    )
                }
            }),
        )
        .route(
            "/edited",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    "<!doctype html><html><body><article id=\"post\"></article><script>\
                 fetch('/api/edited.json').then(r => r.json()).then(j => {\
                 document.getElementById('post').textContent = j.text; });</script></body></html>",
                )
            }),
        );
    let addr: SocketAddr = site::serve_app(app).await;
    let url = format!("http://{addr}/edited");
    let work = crate::cli::Workdir::new("mode = \"browser\"");
    let (first, _) = work.capture(&url);
    let claim_id = work.claim(POST_TEXT);
    work.ok(&[
        "claim",
        "link",
        &claim_id,
        first.id.as_str(),
        "--quote",
        POST_TEXT,
    ]);
    edited.store(true, Ordering::SeqCst);
    let (second, _) = work.capture(&url);
    let shown: serde_json::Value =
        serde_json::from_slice(&work.ok(&["claim", "show", &claim_id, "--json"])).unwrap();
    let ev = &shown["evidence"][0];
    assert_eq!(ev["verified"], true, "{shown}");
    assert_eq!(
        ev["passage_absent_since"]["capture_id"],
        second.id.as_str(),
        "{shown}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_mode_takes_everything_http_mode_takes_of_the_rich_article() {
    let addr = site::serve_http().await;
    let url = format!("http://{addr}{}", site::RICH_PATH);
    let taken = |mode: &str| {
        let work = crate::cli::Workdir::new(&format!("mode = \"{mode}\""));
        let out = work.run(&["capture", &url, "--json", "--allow-private"]);
        assert!(out.status.success(), "{}", crate::cli::stderr_text(&out));
        // The mode is in the capture's JSON, show's and the manifest.
        let line = String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap()
            .to_string();
        let json: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(json["mode"], mode, "{json}");
        let capture: custody::model::Capture = serde_json::from_value(json).unwrap();
        let shown: serde_json::Value =
            serde_json::from_slice(&work.ok(&["show", capture.id.as_str(), "--json"])).unwrap();
        assert_eq!(shown["mode"], mode);
        let recs = crate::media::records(&work.stored_warc(&capture));
        let manifest: serde_json::Value = serde_json::from_slice(&recs.last().unwrap().2).unwrap();
        assert_eq!(manifest["mode"], mode);
        capture
            .resources
            .iter()
            .filter(|r| r.status == Some(200))
            .map(|r| r.url.clone())
            .collect::<std::collections::BTreeSet<_>>()
    };
    let http = taken("http");
    let browser = taken("browser");
    assert!(http.len() > 10, "{http:?}");
    let missing: Vec<_> = http.difference(&browser).collect();
    assert!(missing.is_empty(), "browser mode missed {missing:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn without_allow_private_the_browser_reaches_no_private_address() {
    use std::sync::atomic::Ordering;
    let (app, hits) = site::counting(post_site());
    let addr: SocketAddr = site::serve_app(app).await;
    let scratch = tempfile::tempdir().unwrap();
    let ca = Arc::new(InterceptCa::new().unwrap());
    let browser = launch(&ca, scratch.path()).await;
    let settings = CaptureSettings {
        allow_private: false,
        browser: custody::capture::BrowserSettings {
            timeout: Duration::from_secs(10),
            ..Default::default()
        },
        ..CaptureSettings::default()
    };
    let crawler = Crawler::new(settings.clone(), scratch.path().to_path_buf()).unwrap();
    let (tx, mut rx) = mpsc::channel(256);
    let page = url::Url::parse(&format!("http://{addr}/post")).unwrap();
    let out =
        custody::browser::step::run(&browser, ca, &settings, crawler.fetcher(), &page, tx, None)
            .await;
    let exchanges = drain(&mut rx);
    crate::media::all_refused_as_private(&exchanges);
    assert_eq!(hits.load(Ordering::SeqCst), 0, "nothing reached the site");
    assert!(out.text.is_none_or(|t| !t.contains(POST_TEXT)));
}

#[tokio::test(flavor = "multi_thread")]
async fn several_captures_in_one_process_are_each_whole_with_a_restart_between_each() {
    let addr: SocketAddr = site::serve_app(post_site()).await;
    let url = format!("http://{addr}/post");
    // Restarted after each capture, or one browser for all three.
    for (config, started) in [("browser_restart_after = 1", 3), ("", 1)] {
        let work = crate::cli::Workdir::new(&format!("mode = \"browser\"\n{config}"));
        let out = work
            .command(&["capture", &url, &url, &url, "--json", "--allow-private"])
            .env("CUSTODY_LOG", "warn,custody::pipeline=info")
            .output()
            .unwrap();
        let logs = crate::cli::stderr_text(&out);
        assert!(out.status.success(), "{logs}");
        assert_eq!(logs.matches("browser started").count(), started, "{logs}");
        let captures: Vec<custody::model::Capture> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(captures.len(), 3);
        for c in &captures {
            let b = c.browser.as_ref().expect("browser mode");
            assert_eq!(b.status, "ok", "{b:?}");
            assert_eq!(b.records.len(), 5, "{b:?}");
        }
    }
}

/// The loopback ports process `pid` listens on (its sockets in LISTEN
/// state, read from `/proc`, as any local process could).
fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|l| {
                    let l = l.to_string_lossy().into_owned();
                    l.strip_prefix("socket:[")
                        .and_then(|r| r.strip_suffix(']'))
                        .map(str::to_string)
                })
                .collect()
        })
        .unwrap_or_default();
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (local, state, inode) = (f.get(1)?, f.get(3)?, f.get(9)?);
            let (ip, port) = local.split_once(':')?;
            (*state == "0A" && ip == "0100007F" && inodes.contains(*inode))
                .then(|| u16::from_str_radix(port, 16).ok())
                .flatten()
        })
        .collect()
}

/// What a proxy at `port` answers `head` with: its status line.
async fn ask(port: u16, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut answer))
        .await
        .map(|r| r.unwrap_or(0))
        .unwrap_or(0);
    String::from_utf8_lossy(&answer[..n])
        .lines()
        .next()
        .unwrap_or("")
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn another_local_process_cannot_put_exchanges_into_a_browser_capture() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    // The page's image is held until the attack is over, so the capture's
    // recording proxy is listening meanwhile.
    let (release, held) = tokio::sync::watch::channel(false);
    let asked = Arc::new(AtomicBool::new(false));
    let injected = Arc::new(AtomicUsize::new(0));
    let (a, i) = (asked.clone(), injected.clone());
    let app = Router::new()
        .route(
            "/held",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html")],
                    "<!doctype html><p>held</p><img src=\"/hold.png\">",
                )
            }),
        )
        .route(
            "/hold.png",
            get(move || {
                a.store(true, Ordering::SeqCst);
                let mut held = held.clone();
                async move {
                    let _ = held.wait_for(|r| *r).await;
                    (
                        [(header::CONTENT_TYPE, "image/png")],
                        crate::browser::png(4, 4, [0, 0, 0]),
                    )
                }
            }),
        )
        .route(
            "/injected",
            get(move || {
                i.fetch_add(1, Ordering::SeqCst);
                async { "planted" }
            }),
        );
    let addr: SocketAddr = site::serve_app(app).await;
    let url = format!("http://{addr}/held");
    let work = crate::cli::Workdir::new("mode = \"browser\"");
    let child = work
        .command(&["capture", &url, "--json", "--allow-private"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    for _ in 0..600 {
        if asked.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        asked.load(Ordering::SeqCst),
        "the browser asked for the image"
    );
    let ports = listening_ports(child.id());
    assert!(!ports.is_empty(), "custody's recording proxy listens");
    let planted = format!("http://{addr}/injected");
    for port in ports {
        let plain = format!("GET {planted} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        assert!(ask(port, &plain).await.contains(" 407 "), "port {port}");
        let connect = format!("CONNECT {addr} HTTP/1.1\r\nHost: {addr}\r\n\r\n");
        assert!(ask(port, &connect).await.contains(" 407 "), "port {port}");
        let guessed = format!(
            "GET {planted} HTTP/1.1\r\nHost: {addr}\r\nProxy-Authorization: Basic Y3VzdG9keTpjdXN0b2R5\r\n\r\n"
        );
        assert!(ask(port, &guessed).await.contains(" 407 "), "port {port}");
    }
    release.send(true).unwrap();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{}", crate::cli::stderr_text(&out));
    let capture: custody::model::Capture =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(
        injected.load(Ordering::SeqCst),
        0,
        "nothing planted was fetched"
    );
    assert!(capture.resources.iter().all(|r| r.url != planted));
    assert!(
        capture
            .resources
            .iter()
            .any(|r| r.url.ends_with("/hold.png")),
        "the browser's own requests were recorded: {:?}",
        capture.resources
    );
    let recs = crate::media::records(&work.stored_warc(&capture));
    let (_, _, manifest) = recs.last().expect("manifest");
    let manifest: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    let refused = manifest["browser_refused"].to_string();
    assert!(
        refused.contains("a wrong Proxy-Authorization"),
        "the guess is listed: {refused}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn what_a_page_asks_for_on_a_timer_after_the_load_or_after_a_scroll_is_kept() {
    // The page's clock runs on while nothing is pending, so these timers
    // fire without the capture waiting them out in real time.
    let app = Router::new()
        .route(
            "/timers",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    "<!doctype html><html><body><p id=\"late\"></p><div style=\"height: 4000px\"></div>\
                     <script>addEventListener('load', () => setTimeout(() => fetch('/api/late.json')\
                       .then(r => r.json()).then(j => { document.getElementById('late').textContent = j.text; }), 1500));\
                     let t; addEventListener('scroll', () => { clearTimeout(t); t = setTimeout(() => {\
                       const i = new Image(); i.src = '/debounced.png'; document.body.appendChild(i); }, 150); });\
                     </script></body></html>",
                )
            }),
        )
        .route(
            "/api/late.json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    serde_json::json!({"text": POST_TEXT}).to_string(),
                )
            }),
        )
        .route(
            "/debounced.png",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "image/png")],
                    crate::browser::png(4, 4, [9, 9, 9]),
                )
            }),
        );
    let addr: SocketAddr = site::serve_app(app).await;
    let work = crate::cli::Workdir::new("mode = \"browser\"");
    let (capture, out) = work.capture(&format!("http://{addr}/timers"));
    assert!(out.status.success(), "{}", crate::cli::stderr_text(&out));
    let got = |path: &str| {
        capture
            .resources
            .iter()
            .any(|r| r.url == format!("http://{addr}{path}") && r.status == Some(200))
    };
    assert!(got("/api/late.json"), "{:?}", capture.resources);
    assert!(got("/debounced.png"), "{:?}", capture.resources);
    let recs = crate::media::records(&work.stored_warc(&capture));
    let text = made_record(&recs, "text", &format!("http://{addr}/timers"));
    let text = String::from_utf8_lossy(&text);
    assert!(text.contains(POST_TEXT), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn captures_side_by_side_share_one_browser_and_keep_their_own_exchanges() {
    // The first page is held until the second capture is done: the second
    // does not wait for the first.
    let (release, held) = tokio::sync::watch::channel(false);
    let app = post_site().route(
        "/held",
        get(move || {
            let mut held = held.clone();
            async move {
                let _ = held.wait_for(|r| *r).await;
                (
                    [(header::CONTENT_TYPE, "text/html")],
                    "<!doctype html><p>held</p>",
                )
            }
        }),
    );
    let addr: SocketAddr = site::serve_app(app).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("custody.toml"), "").unwrap();
    let overrides = custody::config::Overrides {
        config_file: Some(dir.path().join("custody.toml")),
        data_dir: Some(dir.path().join("data")),
        allow_private: true,
        mode: Some(custody::capture::Mode::Browser),
        ..Default::default()
    };
    let config = custody::config::Config::load(&overrides).unwrap();
    let archive = Arc::new(custody::archive::Archive::open(config).await.unwrap());
    let capturer = Arc::new(custody::pipeline::Capturer::new(archive).unwrap());
    let seed = |p: &str| url::Url::parse(&format!("http://{addr}{p}")).unwrap();
    let first = {
        let (c, u) = (capturer.clone(), seed("/held"));
        tokio::spawn(async move { c.capture(u, &custody::pipeline::NoProgress).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let second = tokio::time::timeout(
        Duration::from_secs(60),
        capturer.capture(seed("/post"), &custody::pipeline::NoProgress),
    )
    .await
    .expect("the second capture did not wait for the first")
    .unwrap();
    release.send(true).unwrap();
    let first = first.await.unwrap().unwrap();
    for (c, page, other) in [(&first, "/held", "/post"), (&second, "/post", "/held")] {
        let b = c.browser.as_ref().expect("browser mode");
        assert_eq!(b.status, "ok", "{b:?}");
        let urls: Vec<&str> = c.resources.iter().map(|r| r.url.as_str()).collect();
        assert!(urls.contains(&seed(page).as_str()), "{urls:?}");
        assert!(!urls.contains(&seed(other).as_str()), "{urls:?}");
    }
    assert!(
        second.finished_at <= first.finished_at,
        "the second ended while the first was held"
    );
    assert_eq!(
        first.browser.unwrap().version,
        second.browser.unwrap().version
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_cannot_reach_the_network_past_the_proxy_over_webrtc() {
    // WebRTC gathers candidates over UDP straight to a STUN server, which
    // no HTTP proxy sees: a page could use it to reach a private address
    // or tell a server the capture is happening. Nothing may arrive.
    let stun = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let port = stun.local_addr().unwrap().port();
    let page = format!(
        "<!doctype html><p>rtc</p><script>\
         const pc = new RTCPeerConnection({{iceServers: [{{urls: 'stun:127.0.0.1:{port}'}}]}});\
         pc.createDataChannel('x'); pc.createOffer().then(o => pc.setLocalDescription(o));\
         </script>"
    );
    let app = Router::new().route(
        "/rtc",
        get(move || {
            let page = page.clone();
            async move { ([(header::CONTENT_TYPE, "text/html")], page) }
        }),
    );
    let addr: SocketAddr = site::serve_app(app).await;
    let work = crate::cli::Workdir::new("mode = \"browser\"");
    let url = format!("http://{addr}/rtc");
    let capture = tokio::task::spawn_blocking(move || work.capture(&url).0)
        .await
        .unwrap();
    assert_eq!(capture.browser.unwrap().status, "ok");
    let mut buf = [0u8; 1500];
    let got = tokio::time::timeout(Duration::from_millis(500), stun.recv_from(&mut buf)).await;
    assert!(got.is_err(), "a STUN packet reached {port}: {got:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_s_source_is_the_response_the_browser_rendered_fetched_once() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    // A page that differs at each request (a nonce, an ad, an edit): the
    // source kept must be the one the screenshot and the rendered text
    // show, and the site asked once for it and once for its stylesheet.
    let (page_hits, css_hits) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (p, c) = (page_hits.clone(), css_hits.clone());
    let app = Router::new()
        .route(
            "/nonce",
            get(move || {
                let n = p.fetch_add(1, Ordering::SeqCst) + 1;
                async move {
                    (
                        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                        format!(
                            "<!doctype html><html><head><link rel=stylesheet href=/nonce.css></head>\
                             <body><p>served as request {n}</p></body></html>"
                        ),
                    )
                }
            }),
        )
        .route(
            "/nonce.css",
            get(move || {
                c.fetch_add(1, Ordering::SeqCst);
                async {
                    (
                        [(header::CONTENT_TYPE, "text/css")],
                        "body { background: url(/paper.png) }",
                    )
                }
            }),
        )
        .route(
            "/paper.png",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "image/png")],
                    crate::browser::png(4, 4, [240, 240, 240]),
                )
            }),
        );
    let addr: SocketAddr = site::serve_app(app).await;
    let url = format!("http://{addr}/nonce");
    let work = crate::cli::Workdir::new("mode = \"browser\"");
    let (capture, out) = work.capture(&url);
    assert!(out.status.success(), "{}", crate::cli::stderr_text(&out));
    assert_eq!(
        page_hits.load(Ordering::SeqCst),
        1,
        "the page was asked for once"
    );
    assert_eq!(css_hits.load(Ordering::SeqCst), 1, "the stylesheet once");
    let recs = crate::media::records(&work.stored_warc(&capture));
    let pages: Vec<_> = recs
        .iter()
        .filter(|(t, f, _)| t == "response" && f.get("warc-target-uri") == Some(&url))
        .collect();
    assert_eq!(pages.len(), 1);
    let source = String::from_utf8_lossy(crate::media::payload(&pages[0].2)).into_owned();
    assert!(source.contains("served as request 1"), "{source}");
    let text = made_record(&recs, "text", &url);
    assert!(String::from_utf8_lossy(&text).contains("served as request 1"));
    // What the stylesheet names is still taken, as in http mode.
    assert!(capture
        .resources
        .iter()
        .any(|r| r.url.ends_with("/paper.png") && r.status == Some(200)));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_page_named_by_host_name_is_resolved_by_custody_not_the_browser() {
    // The browser resolves no name (`--host-resolver-rules` maps every one
    // to nothing); the proxy's fetcher resolves it, as for every capture.
    let addr: SocketAddr = site::serve_app(post_site()).await;
    let url = format!("http://localhost:{}/post", addr.port());
    let work = crate::cli::Workdir::new("mode = \"browser\"");
    let (capture, out) = work.capture(&url);
    assert!(out.status.success(), "{}", crate::cli::stderr_text(&out));
    let browser = capture.browser.clone().expect("browser mode");
    assert_eq!(browser.status, "ok", "{browser:?}");
    let json = format!("http://localhost:{}/api/post.json", addr.port());
    assert!(
        capture
            .resources
            .iter()
            .any(|r| r.url == json && r.status == Some(200)),
        "the script's call went through the proxy: {:?}",
        capture.resources
    );
    let recs = crate::media::records(&work.stored_warc(&capture));
    let text = made_record(&recs, "text", &url);
    assert!(String::from_utf8_lossy(&text).contains(POST_TEXT));
}
