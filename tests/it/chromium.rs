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
                html(
                    "<article id=\"post\"></article><script>\
                     fetch('/api/post.json').then(r => r.json()).then(j => {\
                       document.getElementById('post').textContent = j.text;\
                       const img = document.createElement('img'); img.src = j.photo;\
                       document.body.appendChild(img); });</script>",
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
}

struct Proxied {
    proxy: RecordingProxy,
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
    let proxy = RecordingProxy::start(
        crawler.fetcher().clone(),
        ca,
        budget,
        tx,
        ProxyLimits::default(),
    )
    .await
    .unwrap();
    Proxied {
        proxy,
        rx,
        _spool: spool,
    }
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
    let tab = browser.tab(first.proxy.addr()).await.unwrap();
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
    let tab = browser.tab(second.proxy.addr()).await.unwrap();
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
    let mut browser = launch(&ca, scratch.path()).await;
    let p = proxy(ca.clone()).await;
    let tab = browser.tab(p.proxy.addr()).await.unwrap();
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
    let tab = browser.tab(p.proxy.addr()).await.unwrap();
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
    let made = |kind: &str| {
        let target = format!("urn:{kind}:{url}");
        let (_, _, block) = recs
            .iter()
            .find(|(t, f, _)| t == "resource" && f.get("warc-target-uri") == Some(&target))
            .unwrap_or_else(|| panic!("{target} recorded"));
        block.clone()
    };
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
    let claim: serde_json::Value =
        serde_json::from_slice(&work.ok(&["claim", "add", POST_TEXT, "--json"])).unwrap();
    let claim_id = claim["id"].as_str().unwrap();
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

    // In http mode the same page holds no such passage.
    let plain = Workdir::new("");
    let (http, _) = plain.capture(&url);
    assert!(http.browser.is_none());
    let claim: serde_json::Value =
        serde_json::from_slice(&plain.ok(&["claim", "add", POST_TEXT, "--json"])).unwrap();
    let refused = plain.run(&[
        "claim",
        "link",
        claim["id"].as_str().unwrap(),
        http.id.as_str(),
        "--quote",
        POST_TEXT,
    ]);
    assert!(!refused.status.success());
}
