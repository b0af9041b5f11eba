//! The HTTP surface as investigators and scripts use it: `custody serve`
//! run as a process, spoken to over loopback. Tokens and roles, replay
//! (rewritten and `id_`), Memento, CDX, the OpenAPI document, and WACZ
//! evidence packages with their offline verification.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use custody::model::{Capture, CaptureStatus};
use serde_json::Value;
use sha2::Digest;

use crate::cli::{stderr_text, KillOnDrop, Workdir};
use crate::site;

/// `custody serve` on a free loopback port, its stderr kept.
pub struct Server {
    _child: KillOnDrop,
    pub addr: SocketAddr,
}

pub fn serve(work: &Workdir, extra: &[&str]) -> Server {
    serve_with_env(work, extra, &[])
}

/// `serve`, with variables added to its environment.
pub fn serve_with_env(work: &Workdir, extra: &[&str], env: &[(&str, &str)]) -> Server {
    let mut args = vec!["serve", "--listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let mut child = work
        .command(&args)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("start custody serve");
    let stderr = child.stderr.take().expect("stderr");
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let keep = log.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("serving http://").nth(1) {
                if let Some(t) = tx.take() {
                    let _ = t.send(rest.split('/').next().unwrap_or_default().to_string());
                }
            }
            keep.lock().unwrap().push_str(&format!("{line}\n"));
        }
    });
    let addr = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| panic!("custody serve did not start: {}", log.lock().unwrap()));
    Server {
        _child: KillOnDrop(child),
        addr: addr.parse().expect("address"),
    }
}

/// A response as received, the body de-chunked.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// One HTTP/1.1 request on its own connection.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Resp {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(b) = body {
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req.push_str("Content-Type: application/json\r\n");
        }
        req.push_str(&format!("Content-Length: {}\r\n", b.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    if let Some(b) = body {
        s.write_all(b).unwrap();
    }
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response head")
        + 4;
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap()[9..12].parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let nl = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..nl])
                    .split(';')
                    .next()
                    .unwrap()
                    .trim(),
                16,
            )
            .unwrap();
            rest = &rest[nl + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    Resp {
        status,
        headers,
        body,
    }
}

pub fn get(addr: SocketAddr, path: &str, token: Option<&str>) -> Resp {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    request(addr, "GET", path, &headers, None)
}

/// A request with a bearer token (and a JSON body).
pub fn as_token(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: &str,
    body: Option<&[u8]>,
) -> Resp {
    let auth = format!("Bearer {token}");
    request(addr, method, path, &[("Authorization", &auth)], body)
}

/// `custody token create --role ROLE`: the token is stdout's last line.
pub fn token(work: &Workdir, role: &str) -> String {
    let out = work.ok(&["token", "create", "--role", role]);
    String::from_utf8(out)
        .unwrap()
        .lines()
        .last()
        .expect("a token")
        .trim()
        .to_string()
}

fn captured(work: &Workdir, url: &str) -> Capture {
    let (c, out) = work.capture(url);
    assert_eq!(c.status, CaptureStatus::Ok, "{}", stderr_text(&out));
    c
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_without_a_token_gets_401_and_a_reader_cannot_create_a_schedule() {
    let work = Workdir::new("");
    std::fs::create_dir(work.path().join("schedules")).unwrap();
    let server = serve(&work, &[]);
    let addr = server.addr;

    let r = get(addr, "/api/v1/captures", None);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("custody token create"));
    let page = get(addr, "/", None);
    assert_eq!(page.status, 401);
    assert!(
        page.text()
            .contains("<form method=\"post\" action=\"/login\""),
        "the UI asks for a token"
    );
    for open in ["/healthz", "/metrics", "/api/v1/openapi.json"] {
        assert_eq!(get(addr, open, None).status, 200, "{open} needs no token");
    }
    assert_eq!(
        get(addr, "/api/v1/captures", Some("custody_00000000_nope")).status,
        401
    );

    let reader = token(&work, "reader");
    let archivist = token(&work, "archivist");
    let admin = token(&work, "admin");
    assert_eq!(get(addr, "/api/v1/captures", Some(&reader)).status, 200);

    let schedule = br#"{"name": "aleppo-news", "cron": "0 */6 * * *", "urls": ["https://aleppo-news.example/"]}"#;
    let as_reader = as_token(addr, "POST", "/api/v1/schedules", &reader, Some(schedule));
    assert_eq!(as_reader.status, 403, "{}", as_reader.text());
    assert!(as_reader.json()["error"]
        .as_str()
        .unwrap()
        .contains("archivist"));
    assert!(!work.path().join("schedules/aleppo-news.toml").exists());

    let as_archivist = as_token(
        addr,
        "POST",
        "/api/v1/schedules",
        &archivist,
        Some(schedule),
    );
    assert_eq!(as_archivist.status, 201, "{}", as_archivist.text());
    work.ok(&["schedule", "validate", "schedules"]);
    let listed = get(addr, "/api/v1/schedules", Some(&reader)).json();
    assert_eq!(listed["items"][0]["name"], "aleppo-news");
    let again = as_token(
        addr,
        "POST",
        "/api/v1/schedules",
        &archivist,
        Some(schedule),
    );
    assert_eq!(again.status, 409, "a name is not taken twice");
    let bad = as_token(
        addr,
        "POST",
        "/api/v1/schedules",
        &archivist,
        Some(br#"{"name": "x", "cron": "every tuesday", "urls": ["https://a.example/"]}"#),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());

    // Tokens are the admin's.
    assert_eq!(get(addr, "/api/v1/tokens", Some(&archivist)).status, 403);
    let tokens = get(addr, "/api/v1/tokens", Some(&admin));
    assert_eq!(tokens.status, 200);
    assert_eq!(tokens.json()["items"].as_array().unwrap().len(), 3);
    assert!(!tokens.text().contains(&reader), "secrets are never listed");
    // Only digests are stored.
    let pool = work.index_pool().await;
    let stored: Vec<String> = sqlx::query_scalar("SELECT secret_sha256 FROM api_token")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(stored.contains(&hex::encode(sha2::Sha256::digest(reader.as_bytes()))));

    // A cookie reads but never changes anything.
    let cookie = format!("custody_token={archivist}");
    assert_eq!(
        request(
            addr,
            "GET",
            "/api/v1/captures",
            &[("Cookie", &cookie)],
            None
        )
        .status,
        200
    );
    // ... and only for page navigations: a replayed page's script (fetch,
    // or a frame) cannot read the API with it.
    let navigate = [
        ("Cookie", cookie.as_str()),
        ("Sec-Fetch-Mode", "navigate"),
        ("Sec-Fetch-Dest", "document"),
    ];
    assert_eq!(
        request(addr, "GET", "/api/v1/captures", &navigate, None).status,
        200
    );
    let scripted = [
        ("Cookie", cookie.as_str()),
        ("Sec-Fetch-Mode", "cors"),
        ("Sec-Fetch-Dest", "empty"),
    ];
    let r = request(addr, "GET", "/api/v1/captures", &scripted, None);
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.json()["error"].as_str().unwrap().contains("Bearer"));
    let framed = [
        ("Cookie", cookie.as_str()),
        ("Sec-Fetch-Mode", "navigate"),
        ("Sec-Fetch-Dest", "iframe"),
    ];
    assert_eq!(
        request(addr, "GET", "/ui/fixity", &framed, None).status,
        403
    );
    assert_eq!(
        request(addr, "GET", "/api/v1/captures", &navigate, None).header("x-frame-options"),
        Some("DENY")
    );
    let by_cookie = request(
        addr,
        "POST",
        "/api/v1/schedules",
        &[("Cookie", &cookie)],
        Some(schedule),
    );
    assert_eq!(by_cookie.status, 401);

    // Revoked tokens stop working.
    let id = reader.split('_').nth(1).unwrap().to_string();
    let revoke = as_token(
        addr,
        "DELETE",
        &format!("/api/v1/tokens/{id}"),
        &admin,
        None,
    );
    assert_eq!(revoke.status, 204, "{}", revoke.text());
    assert_eq!(get(addr, "/api/v1/captures", Some(&reader)).status, 401);
}

/// A server that answers once with a gzip-encoded, chunked page.
fn chunked_gzip_response(html: &str) -> (Vec<u8>, Vec<u8>) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(html.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let mut resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    for piece in gz.chunks(100) {
        resp.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        resp.extend_from_slice(piece);
        resp.extend_from_slice(b"\r\n");
    }
    resp.extend_from_slice(b"0\r\n\r\n");
    (resp, gz)
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_serves_the_archived_page_rewritten_and_id_serves_the_payload_as_received() {
    let addr = site::serve_http().await;
    let (raw, gz) =
        chunked_gzip_response("<html><body><p>nearly 25 civilians were killed</p></body></html>");
    let gz_addr = site::serve_raw(raw).await;
    let work = Workdir::new("");
    let article_url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let first = captured(&work, &article_url);
    std::thread::sleep(Duration::from_millis(1100));
    let second = captured(&work, &article_url); // images are revisits now
    let gz_url = format!("http://{gz_addr}/report");
    let gz_capture = captured(&work, &gz_url);
    // A payload too large to be kept in memory is streamed from its spool
    // file, ranges included.
    let big_url = format!("http://{addr}/media/generated.mp4?bytes=3145728");
    let big = captured(&work, &big_url);
    let short_url = format!("http://{addr}/short-link");
    let short = captured(&work, &short_url);
    let server = serve(&work, &["--public-read"]);
    let s = server.addr;

    // id_: the payload exactly as received: gzip kept, chunking removed,
    // its sha256 the record's payload digest.
    let ts = custody::model::timestamp14(&gz_capture.started_at);
    let r = get(s, &format!("/replay/{ts}id_/{gz_url}"), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.body, gz);
    let digest = gz_capture.resources[0].payload_sha256.unwrap();
    assert_eq!(hex::encode(sha2::Sha256::digest(&r.body)), digest.hex());

    // The page opens in custody's frame page: the banner, then the page
    // in a frame; both carry the Memento headers.
    let ts1 = custody::model::timestamp14(&first.started_at);
    let page = get(s, &format!("/replay/{ts1}/{article_url}"), None);
    assert_eq!(page.status, 200, "{}", page.text());
    let frame_page = page.text();
    assert!(frame_page.contains("id=\"custody-banner\""));
    assert!(
        frame_page.contains(&first.warc.as_ref().unwrap().sha256.hex()),
        "the banner names the WARC"
    );
    let inner = format!("/replay/{ts1}mp_/{article_url}");
    assert!(
        frame_page.contains(&format!(
            "<iframe id=\"custody-frame\" title=\"The archived page\" src=\"{inner}\""
        )),
        "{frame_page}"
    );
    assert!(
        !frame_page.contains("nearly 25 civilians"),
        "nothing of the archived page is in the frame page"
    );
    let framed = get(s, &inner, None);
    assert_eq!(framed.status, 200, "{}", framed.text());
    assert!(framed.header("memento-datetime").unwrap().ends_with("GMT"));
    let html = framed.text();
    assert!(html.contains("nearly 25 civilians were killed in airstrikes"));
    assert!(!html.contains("id=\"custody-banner\""));
    assert!(
        html.contains("<script type=\"importmap\">") && html.contains("\"modifier\":\"mp_\""),
        "the client-side rewriter comes first: {html}"
    );
    assert!(
        html.contains(&format!(
            "src=\"/replay/{ts1}if_/http://{addr}/wp-content/uploads/2016/11/aleppo-1024x576.jpg\""
        )),
        "{html}"
    );
    assert!(
        !html.contains(&format!("\"http://{addr}/wp-content")),
        "no live URL is left in an attribute"
    );
    assert!(page.header("memento-datetime").unwrap().ends_with("GMT"));
    let link = page.header("link").unwrap();
    assert!(
        link.contains(&format!("<{article_url}>; rel=\"original\"")),
        "{link}"
    );
    assert!(link.contains("rel=\"timegate\"") && link.contains("rel=\"timemap\""));
    assert!(page
        .header("content-security-policy")
        .unwrap()
        .contains("default-src 'self'"));

    // A near timestamp redirects to the capture's own.
    let near = get(s, &format!("/replay/2016/{article_url}"), None);
    assert_eq!(near.status, 302);
    assert_eq!(
        near.header("location").unwrap(),
        format!("/replay/{ts1}/{article_url}")
    );

    // What a page loads is answered at the page's time, never redirected
    // to the record's own (each resource keeps one URL): a script's fetch
    // of a page URL, and an archived redirect, whose target keeps the time
    // asked for.
    let fetched = request(
        s,
        "GET",
        &format!("/replay/2016/{article_url}"),
        &[("Sec-Fetch-Mode", "cors"), ("Sec-Fetch-Dest", "empty")],
        None,
    );
    assert_eq!(fetched.status, 200, "{}", fetched.text());
    assert!(fetched.text().contains("nearly 25 civilians"));
    assert_eq!(fetched.header("access-control-allow-origin"), Some("*"));
    let moved = get(s, &format!("/replay/2099if_/{short_url}"), None);
    assert_eq!(moved.status, 301, "{}", moved.text());
    assert_eq!(
        moved.header("location").unwrap(),
        format!("/replay/2099if_/http://{addr}{}", site::ARTICLE_PATH)
    );
    // A navigation to an archived redirect is the redirect (no frame page),
    // and a replayed page navigating its own frame gets a frame page of
    // its own, with its banner.
    let ts_short = custody::model::timestamp14(&short.started_at);
    let nav = [("Sec-Fetch-Mode", "navigate"), ("Sec-Fetch-Dest", "iframe")];
    let moved = request(
        s,
        "GET",
        &format!("/replay/{ts_short}/{short_url}"),
        &nav,
        None,
    );
    assert_eq!(moved.status, 301, "{}", moved.text());
    assert_eq!(
        moved.header("location").unwrap(),
        format!("/replay/{ts_short}/http://{addr}{}", site::ARTICLE_PATH)
    );
    let nested = request(
        s,
        "GET",
        &format!("/replay/{ts1}/{article_url}"),
        &nav,
        None,
    );
    assert!(
        nested.text().contains("id=\"custody-frame\""),
        "{}",
        nested.text()
    );
    // CORS: a replayed page (an opaque origin) may read what replay serves,
    // a preflight included; the API stays closed to it.
    let preflight = request(
        s,
        "OPTIONS",
        &format!("/replay/{ts1}if_/{article_url}"),
        &[
            ("Origin", "null"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "x-requested-with"),
        ],
        None,
    );
    assert_eq!(preflight.status, 204, "{}", preflight.text());
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    assert_eq!(
        get(s, "/api/v1/captures", None).header("access-control-allow-origin"),
        None
    );

    // Images of the second capture are revisits: they resolve to the
    // original bytes.
    let ts2 = custody::model::timestamp14(&second.started_at);
    for (path, _, bytes) in site::requisites()
        .into_iter()
        .filter(|(_, m, _)| m.starts_with("image/"))
    {
        let r = get(s, &format!("/replay/{ts2}if_/http://{addr}{path}"), None);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, bytes, "{path}");
    }
    // Range requests on media.
    let (video, _, bytes) = site::requisites()
        .into_iter()
        .find(|(p, _, _)| p.ends_with(".mp4"))
        .unwrap();
    let r = request(
        s,
        "GET",
        &format!("/replay/{ts1}id_/http://{addr}{video}"),
        &[("Range", "bytes=100-199")],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range").unwrap(),
        format!("bytes 100-199/{}", bytes.len())
    );
    assert_eq!(r.body, &bytes[100..200]);

    let big_ts = custody::model::timestamp14(&big.started_at);
    let whole = get(s, &format!("/replay/{big_ts}id_/{big_url}"), None);
    assert_eq!(whole.body.len(), 3_145_728);
    assert_eq!(
        hex::encode(sha2::Sha256::digest(&whole.body)),
        big.resources[0].payload_sha256.unwrap().hex()
    );
    let r = request(
        s,
        "GET",
        &format!("/replay/{big_ts}id_/{big_url}"),
        &[("Range", "bytes=3000000-3000099")],
        None,
    );
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some("bytes 3000000-3000099/3145728")
    );
    assert_eq!(r.body, &whole.body[3_000_000..3_000_100]);

    // Unknown URLs are a 404 that says where to look.
    let r = get(
        s,
        &format!("/replay/{ts1}/http://{addr}/never-captured"),
        None,
    );
    assert_eq!(r.status, 404);
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("/timemap/link/"));

    // Every access to evidence is a custody event.
    drop(server);
    let pool = work.index_pool().await;
    let accesses: Vec<(String, String)> = sqlx::query_as(
        "SELECT actor, detail FROM custody_event WHERE object_id = ? AND event = 'accessed'",
    )
    .bind(gz_capture.id.as_str())
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(accesses.len(), 1, "{accesses:?}");
    assert_eq!(accesses[0].0, "public");
    assert!(accesses[0].1.contains("id_"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_timemap_lists_every_capture_and_the_timegate_picks_the_nearest() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let mut captures = Vec::new();
    for _ in 0..3 {
        captures.push(captured(&work, &url));
        std::thread::sleep(Duration::from_millis(1100));
    }
    let reader_server = serve(&work, &[]);
    let reader = token(&work, "reader");
    let s = reader_server.addr;

    let tm = get(s, &format!("/timemap/link/{url}"), Some(&reader));
    assert_eq!(tm.status, 200, "{}", tm.text());
    assert_eq!(tm.header("content-type"), Some("application/link-format"));
    let text = tm.text();
    for c in &captures {
        let ts = custody::model::timestamp14(&c.started_at);
        assert!(
            text.contains(&format!("/replay/{ts}/{url}>")),
            "{ts} missing:\n{text}"
        );
    }
    assert_eq!(text.matches("memento\"; datetime=").count(), 3, "{text}");
    assert!(text.contains("rel=\"first memento\"") && text.contains("rel=\"last memento\""));
    let json = get(s, &format!("/timemap/json/{url}"), Some(&reader)).json();
    assert_eq!(json["mementos"]["list"].as_array().unwrap().len(), 3);
    assert_eq!(json["original_uri"], url);

    let gate = |accept: &str| {
        let r = request(
            s,
            "GET",
            &format!("/timegate/{url}"),
            &[
                ("Accept-Datetime", accept),
                ("Authorization", &format!("Bearer {reader}")),
            ],
            None,
        );
        assert_eq!(r.status, 302, "{}", r.text());
        assert_eq!(r.header("vary"), Some("accept-datetime"));
        r.header("location").unwrap().to_string()
    };
    let first = custody::model::timestamp14(&captures[0].started_at);
    let last = custody::model::timestamp14(&captures[2].started_at);
    assert!(gate("Tue, 29 Nov 2016 10:04:00 GMT").contains(&format!("/replay/{first}/")));
    assert!(gate("Fri, 01 Jan 2100 00:00:00 GMT").contains(&format!("/replay/{last}/")));
    let bad = request(
        s,
        "GET",
        &format!("/timegate/{url}"),
        &[
            ("Accept-Datetime", "yesterday"),
            ("Authorization", &format!("Bearer {reader}")),
        ],
        None,
    );
    assert_eq!(bad.status, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn cdx_answers_the_pywb_query_parameters() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let first = captured(&work, &url);
    std::thread::sleep(Duration::from_millis(1100));
    let second = captured(&work, &url);
    let server = serve(&work, &["--public-read"]);
    let s = server.addr;
    let lines = |q: &str| -> Vec<String> {
        let r = get(s, &format!("/cdx?{q}"), None);
        assert_eq!(r.status, 200, "{q}: {}", r.text());
        r.text().lines().map(str::to_string).collect()
    };
    let json = |q: &str| -> Vec<Value> {
        lines(q)
            .iter()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let host = addr.to_string();
    let exact = json(&format!("url={url}&output=json"));
    assert_eq!(exact.len(), 2);
    let keys: Vec<&str> = exact[0]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for k in [
        "urlkey",
        "timestamp",
        "url",
        "mime",
        "status",
        "digest",
        "length",
        "offset",
        "filename",
    ] {
        assert!(keys.contains(&k), "{k} missing from {keys:?}");
    }
    assert_eq!(
        exact[0]["timestamp"],
        custody::model::timestamp14(&first.started_at)
    );
    assert_eq!(exact[0]["status"], "200");

    let all = json(&format!("url={host}/&matchType=prefix&output=json"));
    assert!(all.len() > 10, "{}", all.len());
    assert_eq!(
        json(&format!("url={host}/*&output=json")).len(),
        all.len(),
        "url=.../* means prefix"
    );
    assert_eq!(
        json(&format!("url={host}/&matchType=host&output=json")).len(),
        all.len()
    );
    assert_eq!(
        json(&format!("url={host}/&matchType=prefix&output=json&limit=3")).len(),
        3
    );
    let images = json(&format!(
        "url={host}/&matchType=prefix&output=json&filter=~mime:image/.*"
    ));
    assert!(!images.is_empty());
    assert!(images
        .iter()
        .all(|l| l["mime"].as_str().unwrap().starts_with("image/")));
    let revisits = json(&format!(
        "url={host}/&matchType=prefix&output=json&filter==mime:warc/revisit"
    ));
    assert!(
        !revisits.is_empty(),
        "the second capture's images are revisits"
    );
    // No modifier: the field contains the text (pywb's reading).
    assert_eq!(
        json(&format!(
            "url={host}/&matchType=prefix&output=json&filter=mime:image"
        ))
        .len(),
        images.len()
    );
    let not_html = json(&format!(
        "url={host}/&matchType=prefix&output=json&filter=!mime:text/html"
    ));
    assert!(not_html.iter().all(|l| l["mime"] != "text/html"));
    let reverse = json(&format!("url={url}&output=json&sort=reverse"));
    assert_eq!(
        reverse[0]["timestamp"],
        custody::model::timestamp14(&second.started_at)
    );
    let ts2 = custody::model::timestamp14(&second.started_at);
    let closest = json(&format!(
        "url={url}&output=json&sort=closest&closest={ts2}&limit=1"
    ));
    assert_eq!(closest[0]["timestamp"], ts2);
    let from = json(&format!("url={url}&output=json&from={ts2}"));
    assert_eq!(from.len(), 1);
    let to = json(&format!(
        "url={url}&output=json&to={}",
        custody::model::timestamp14(&first.started_at)
    ));
    assert_eq!(to.len(), 1);
    // CDXJ by default: key, timestamp, then the JSON block.
    let cdxj = lines(&format!("url={url}"));
    let parts: Vec<&str> = cdxj[0].splitn(3, ' ').collect();
    assert_eq!(parts[0], exact[0]["urlkey"]);
    assert!(serde_json::from_str::<Value>(parts[2]).is_ok());
    assert_eq!(get(s, "/cdx", None).status, 400);
    assert_eq!(
        get(s, &format!("/cdx?url={url}&matchType=everything"), None).status,
        400
    );
    assert_eq!(
        get(s, &format!("/cdx?url={url}&filter=~mime:("), None).status,
        400
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn every_documented_api_path_answers() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    std::fs::create_dir(work.path().join("schedules")).unwrap();
    let c = captured(&work, &format!("http://{addr}{}", site::ARTICLE_PATH));
    let claim_id = work.claim_linked_to(&[&c]);
    let server = serve(&work, &[]);
    let admin = token(&work, "admin");
    let doc = get(server.addr, "/api/v1/openapi.json", None).json();
    assert_eq!(doc["openapi"], "3.1.0");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let ts = custody::model::timestamp14(&c.started_at);
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 25);
    // Every answer is described (issue 16): a JSON API success has its
    // schema, `verify` documents its 409, and log/consistency is there.
    for (path, ops) in paths.iter().filter(|(p, _)| p.starts_with("/api/v1/")) {
        for (method, op) in ops.as_object().unwrap() {
            let answers = op["responses"].as_object().unwrap();
            let success = answers
                .iter()
                .find(|(status, _)| status.starts_with('2'))
                .unwrap_or_else(|| panic!("{method} {path}: no success documented"));
            if success.0 != "204" {
                assert!(
                    success.1["content"].is_object(),
                    "{method} {path}: success body undocumented"
                );
            }
            assert!(answers.contains_key("400"), "{method} {path}");
        }
    }
    assert!(paths["/api/v1/captures/{id}/verify"]["get"]["responses"]["409"].is_object());
    assert!(paths.contains_key("/api/v1/log/consistency"));
    for (path, ops) in paths {
        if ops.get("get").is_none() {
            continue;
        }
        let concrete = path
            .replace("/api/v1/claims/{id}", &format!("/api/v1/claims/{claim_id}"))
            .replace(
                "/api/v1/captures/{id}",
                &format!("/api/v1/captures/{}", c.id),
            )
            .replace("{timestamp}", &ts)
            .replace("{url}", &url)
            .replace("{n}", "0")
            .replace("{kind}", "screenshot");
        let concrete = match concrete.as_str() {
            "/cdx" | "/api/v1/records" => format!("{concrete}?url={url}"),
            "/api/v1/search" => format!("{concrete}?q=Kirby"),
            "/api/v1/log/consistency" => {
                // The capture's proof (visited before: paths are in order)
                // signed a checkpoint.
                let cps = get(server.addr, "/api/v1/log/checkpoints", Some(&admin)).json();
                let first = cps["items"][0]["tree_size"].as_u64().expect("a checkpoint");
                format!("{concrete}?old={first}")
            }
            _ => concrete,
        };
        let r = get(server.addr, &concrete, Some(&admin));
        if path == "/api/v1/captures/{id}/media/{n}" {
            // This capture ran no media step: the one-line answer says so
            // (media.rs plays a file through this path, with ranges).
            assert_eq!(r.status, 404, "{}", r.text());
            assert!(r.text().contains("0 media file(s)"), "{}", r.text());
            continue;
        }
        if path == "/api/v1/captures/{id}/browser/{kind}" {
            // An http-mode capture (chromium.rs shows a screenshot here).
            assert_eq!(r.status, 404, "{}", r.text());
            assert!(r.text().contains("no browser"), "{}", r.text());
            continue;
        }
        assert!(
            matches!(r.status, 200 | 302),
            "{path} ({concrete}) answered {}: {}",
            r.status,
            r.text()
        );
    }
    let page = get(
        server.addr,
        &format!("/api/v1/captures?url=http://{addr}/&limit=1"),
        Some(&admin),
    )
    .json();
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert_eq!(page["next_offset"], 1);
    let none = get(server.addr, "/api/v1/captures?from=2100", Some(&admin)).json();
    assert!(none["items"].as_array().unwrap().is_empty());
    assert_eq!(
        get(server.addr, "/api/v1/captures?from=yesterday", Some(&admin)).status,
        400
    );
}

/// Flips one byte of a copy of `file` at `at`.
fn flipped(file: &std::path::Path, at: usize, dir: &std::path::Path) -> std::path::PathBuf {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at] ^= 0x20;
    let out = dir.join(format!("flipped-{at}.wacz"));
    std::fs::write(&out, bytes).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wacz_verifies_offline_and_a_flipped_byte_anywhere_fails_naming_the_part() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let first = captured(&work, &url);
    let second = captured(&work, &url);
    let claim_id = work.claim_linked_to(&[&first, &second]);
    let pkg = work.path().join("second.wacz");
    let out = work.run(&[
        "export",
        second.id.as_str(),
        "--format",
        "wacz",
        "-o",
        pkg.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr_text(&out));
    let key = stderr_text(&out)
        .rsplit("public key ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    let v = work.run(&[
        "verify",
        pkg.to_str().unwrap(),
        "--package-key",
        &key,
        "--json",
    ]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stdout));
    let report: Value = serde_json::from_slice(&v.stdout).unwrap();
    let items: Vec<String> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["item"].as_str().unwrap().to_string())
        .collect();
    for want in [
        "zip structure",
        "signature (ECDSA P-384, WACZ anonymous form)",
        "signing key",
    ] {
        assert!(
            items.iter().any(|i| i == want),
            "{want} not checked: {items:?}"
        );
    }
    assert!(
        items.iter().any(|i| i.contains("inclusion in checkpoint")),
        "{items:?}"
    );
    assert!(
        items
            .iter()
            .any(|i| i.starts_with("resource custody/claim-")),
        "the claim travels with the capture: {items:?}"
    );

    // The package stands alone: the revisits' originals are inside.
    let names = zip_names(&pkg);
    for want in [
        "indexes/index.cdx",
        "pages/pages.jsonl",
        "datapackage.json",
        "datapackage-digest.json",
        "custody/log-key.txt",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} missing: {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("custody/proof-")));
    assert!(names.iter().any(|n| n.starts_with("custody/events-")));
    // The main page as the WACZ spec spells it, and verify reports it.
    let package: Value = {
        let mut f = std::fs::File::open(&pkg).unwrap();
        let members = custody::wacz::zip::read_strict(&mut f).unwrap();
        let m = members
            .iter()
            .find(|m| m.name == "datapackage.json")
            .unwrap();
        use std::io::{Read, Seek, SeekFrom};
        f.seek(SeekFrom::Start(m.data_offset)).unwrap();
        let mut bytes = Vec::new();
        (&mut f).take(m.size).read_to_end(&mut bytes).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    };
    assert_eq!(package["mainPageUrl"], url.as_str());
    assert!(package.get("mainPageURL").is_none());
    assert!(package["mainPageDate"].is_string());
    assert!(items.iter().any(|i| i == "main page"), "{items:?}");

    // One flipped byte, anywhere, fails and says where.
    let len = std::fs::metadata(&pkg).unwrap().len() as usize;
    let mut positions: Vec<usize> = (0..48).map(|i| i * len / 48).collect();
    positions.extend([0, 4, 30, len - 1, len - 22, len - 40, len - 60, len - 120]);
    for at in positions {
        let bad = flipped(&pkg, at, work.path());
        let v = work.run(&["verify", bad.to_str().unwrap(), "--json"]);
        assert_eq!(
            v.status.code(),
            Some(1),
            "a flip at byte {at} of {len} passed"
        );
        let report: Value = serde_json::from_slice(&v.stdout).unwrap();
        let failed: Vec<&Value> = report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["ok"] == false)
            .collect();
        assert!(
            !failed.is_empty()
                && failed
                    .iter()
                    .all(|c| !c["item"].as_str().unwrap().is_empty()),
            "{report}"
        );
        std::fs::remove_file(bad).unwrap();
    }
    let wrong_key = work.run(&[
        "verify",
        pkg.to_str().unwrap(),
        "--package-key",
        "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE",
    ]);
    assert_eq!(
        wrong_key.status.code(),
        Some(1),
        "a package signed by another key fails when a key is pinned"
    );

    // A claim's package holds every capture of its evidence.
    let claim_pkg = work.path().join("claim.wacz");
    work.ok(&[
        "claim",
        "export",
        &claim_id,
        "-o",
        claim_pkg.to_str().unwrap(),
    ]);
    let names = zip_names(&claim_pkg);
    assert_eq!(
        names.iter().filter(|n| n.starts_with("archive/")).count(),
        2,
        "{names:?}"
    );
    assert!(names.contains(&format!("custody/claim-{claim_id}.jsonld")));
    let v = work.run(&["verify", claim_pkg.to_str().unwrap()]);
    assert!(v.status.success(), "{}", stderr_text(&v));
    // The export is in the custody record.
    let pool = work.index_pool().await;
    let exports: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM custody_event WHERE event = 'exported' AND detail LIKE '%wacz%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(exports, 3, "one per capture per package");
}

/// Member names of a ZIP (from its central directory, by the library's
/// strict reader).
pub fn zip_names(path: &std::path::Path) -> Vec<String> {
    let mut f = std::fs::File::open(path).unwrap();
    custody::wacz::zip::read_strict(&mut f)
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect()
}

/// Waits until the peer closes `s`; how long that took, or `None` if it
/// stayed open for `limit`.
fn closed_within(s: &mut TcpStream, limit: Duration) -> Option<Duration> {
    let started = std::time::Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some(started.elapsed()),
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(started.elapsed()),
        }
    }
    None
}

/// Slow and idle sockets cannot hold the server: headers that trickle in,
/// or a kept-alive connection that says nothing more, are closed after
/// `header_timeout_secs`; past `max_connections`, a new connection waits
/// for a free slot rather than exhausting the process.
#[test]
fn slow_and_idle_connections_are_closed_and_capped() {
    let work = Workdir::new("");
    let config = std::fs::read_to_string(work.path().join("custody.toml")).unwrap()
        + "[daemon]\nheader_timeout_secs = 1\nmax_connections = 2\n";
    std::fs::write(work.path().join("custody.toml"), config).unwrap();
    let server = serve(&work, &["--public-read"]);

    // Headers sent a byte at a time, never finished.
    let mut slow = TcpStream::connect(server.addr).unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let took = closed_within(&mut slow, Duration::from_secs(10)).expect("slow headers closed");
    assert!(took < Duration::from_secs(4), "{took:?}");

    // A kept-alive connection after one response, then silence.
    let mut idle = TcpStream::connect(server.addr).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let took = closed_within(&mut idle, Duration::from_secs(10)).expect("idle connection closed");
    assert!(took < Duration::from_secs(4), "{took:?}");

    // Two silent connections fill the slots; a third is served once the
    // timeout frees one.
    let hold: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(server.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let started = std::time::Instant::now();
    let resp = request(server.addr, "GET", "/healthz", &[], None);
    assert_eq!(resp.status, 200);
    assert!(
        started.elapsed() > Duration::from_millis(500),
        "the third waited for a slot: {:?}",
        started.elapsed()
    );
    drop(hold);
}

/// The grant in a replay URL: `/g/{grant}/replay/...`.
fn grant_of(location: &str) -> String {
    location
        .split("/g/")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("no grant in {location}"))
        .to_string()
}

/// Replay on its own origin (`daemon.replay_listen`): a signed-in
/// navigation is sent there with a grant; the page is sandboxed, keeps the
/// grant on its URLs and links back to the main origin's UI; the replay
/// origin honours no cookie and no token and serves nothing but replay; a
/// forged, foreign or revoked grant opens nothing.
#[tokio::test(flavor = "multi_thread")]
async fn replay_is_served_apart_sandboxed_and_opened_only_by_grants() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let replay_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = std::fs::read_to_string(work.path().join("custody.toml")).unwrap()
        + &format!("[daemon]\nreplay_listen = \"127.0.0.1:{replay_port}\"\n");
    std::fs::write(work.path().join("custody.toml"), config).unwrap();
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let capture = captured(&work, &url);
    let server = serve(&work, &[]);
    let replay_origin: SocketAddr = format!("127.0.0.1:{replay_port}").parse().unwrap();
    let reader = token(&work, "reader");
    let cookie = format!("custody_token={reader}");
    let ts = custody::model::timestamp14(&capture.started_at);
    let page = format!("/replay/{ts}/{url}");
    let navigate = [("Cookie", cookie.as_str()), ("Sec-Fetch-Mode", "navigate")];

    // Signed in on the main origin: sent to the replay origin, granted.
    let sent = request(server.addr, "GET", &page, &navigate, None);
    assert_eq!(sent.status, 303, "{}", sent.text());
    let location = sent.header("location").unwrap().to_string();
    let origin = format!("http://{replay_origin}/g/");
    assert!(location.starts_with(&origin), "{location}");
    let grant = grant_of(&location);
    let path = location
        .strip_prefix(&format!("http://{replay_origin}"))
        .unwrap();
    let shown = request(replay_origin, "GET", path, &[], None);
    assert_eq!(shown.status, 200, "{}", shown.text());
    let csp = shown.header("content-security-policy").unwrap();
    assert!(csp.contains("sandbox allow-scripts allow-forms"), "{csp}");
    assert!(
        !csp.contains("allow-same-origin") && !csp.contains("allow-popups"),
        "{csp}"
    );
    assert_eq!(shown.header("referrer-policy"), Some("no-referrer"));
    assert_eq!(shown.header("x-content-type-options"), Some("nosniff"));
    let html = shown.text();
    let inner = format!("/g/{grant}/replay/{ts}mp_/{url}");
    assert!(html.contains(&format!("src=\"{inner}\"")), "{html}");
    let framed = request(replay_origin, "GET", &inner, &[], None);
    assert_eq!(framed.status, 200, "{}", framed.text());
    assert!(
        framed
            .text()
            .contains(&format!("\"/g/{grant}/replay/{ts}if_/")),
        "URLs keep the grant"
    );
    assert!(
        html.contains(&format!(
            "href=\"http://{}/ui/captures/{}\"",
            server.addr, capture.id
        )),
        "the banner links to the main origin's UI"
    );

    // The replay origin: no cookie, no token, nothing but replay.
    let embedded = [("Cookie", cookie.as_str()), ("Sec-Fetch-Mode", "no-cors")];
    assert_eq!(
        request(replay_origin, "GET", &page, &embedded, None).status,
        401
    );
    let bearer = format!("Bearer {reader}");
    let with_token = [("Authorization", bearer.as_str())];
    let sent_back = request(replay_origin, "GET", &page, &with_token, None);
    assert_eq!(sent_back.status, 303, "a token is not honoured here");
    assert_eq!(
        sent_back.header("location"),
        Some(format!("http://{}{page}", server.addr).as_str()),
        "opened without a grant, the page goes back to the main origin"
    );
    for other in ["/api/v1/captures", "/ui/fixity", "/", "/login"] {
        let r = request(replay_origin, "GET", other, &with_token, None);
        assert_eq!(r.status, 404, "{other}: {}", r.text());
    }
    let api = request(
        replay_origin,
        "GET",
        &format!("/g/{grant}/api/v1/captures"),
        &[],
        None,
    );
    assert_eq!(api.status, 404, "a grant opens replay only");

    // A grant with another MAC, or for another expiry, opens nothing.
    let (head, mac) = grant.rsplit_once('.').unwrap();
    let flipped = format!(
        "{head}.{}",
        if mac.starts_with('0') { "1" } else { "0" }.to_string() + &mac[1..]
    );
    let (id, expiry) = head.rsplit_once('.').unwrap();
    let later: i64 = expiry.parse::<i64>().unwrap() - 10;
    for forged in [
        flipped,
        format!("{id}.{later}.{mac}"),
        format!("ct_other.{expiry}.{mac}"),
    ] {
        let r = request(
            replay_origin,
            "GET",
            &path.replace(&grant, &forged),
            &[],
            None,
        );
        assert_eq!(r.status, 403, "{forged}: {}", r.text());
    }
    // Revoking the token ends its grants.
    work.ok(&["token", "revoke", id]);
    let r = request(replay_origin, "GET", path, &[], None);
    assert_eq!(r.status, 403, "{}", r.text());
}

/// Without a replay origin, the grant works on the main origin the same
/// way; scripts with a bearer token are served directly, sandboxed; a
/// service worker's script fetch is refused under replay.
#[tokio::test(flavor = "multi_thread")]
async fn replay_on_the_main_origin_is_sandboxed_and_refuses_service_workers() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let capture = captured(&work, &url);
    let server = serve(&work, &[]);
    let reader = token(&work, "reader");
    let cookie = format!("custody_token={reader}");
    let ts = custody::model::timestamp14(&capture.started_at);
    let page = format!("/replay/{ts}/{url}");
    let sent = request(
        server.addr,
        "GET",
        &page,
        &[("Cookie", &cookie), ("Sec-Fetch-Mode", "navigate")],
        None,
    );
    assert_eq!(sent.status, 303);
    let location = sent.header("location").unwrap();
    assert!(location.starts_with("/g/"), "{location}");
    let shown = request(server.addr, "GET", location, &[], None);
    assert_eq!(shown.status, 200, "{}", shown.text());
    assert!(shown
        .header("content-security-policy")
        .unwrap()
        .contains("sandbox allow-scripts allow-forms"));
    assert!(shown
        .text()
        .contains(&format!("href=\"/ui/captures/{}\"", capture.id)));

    let bearer = format!("Bearer {reader}");
    let direct = request(
        server.addr,
        "GET",
        &page,
        &[("Authorization", &bearer)],
        None,
    );
    assert_eq!(direct.status, 200, "scripts are served directly");
    assert!(direct
        .header("content-security-policy")
        .unwrap()
        .contains("sandbox"));
    for path in [page.clone(), location.to_string()] {
        let worker = request(
            server.addr,
            "GET",
            &path,
            &[("Authorization", &bearer), ("Service-Worker", "script")],
            None,
        );
        assert_eq!(worker.status, 403, "{path}: {}", worker.text());
    }
}

/// The login form returns only to a plain local path (`/\host` and the
/// like go to `/`), and a sign-in posted from another origin is refused.
#[test]
fn login_redirects_locally_only_and_refuses_other_origins() {
    let work = Workdir::new("");
    let server = serve(&work, &[]);
    let reader = token(&work, "reader");
    let host = server.addr.to_string();
    let own = format!("http://{host}");
    let post = |next: &str, origin: &str| {
        let body = format!(
            "token={reader}&next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        );
        let mut s = TcpStream::connect(server.addr).unwrap();
        write!(
            s,
            "POST /login HTTP/1.1\r\nHost: {host}\r\nOrigin: {origin}\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut raw = String::new();
        s.read_to_string(&mut raw).unwrap();
        raw
    };
    let ok = post("/ui/fixity", &own);
    assert!(ok.starts_with("HTTP/1.1 303"), "{ok}");
    assert!(
        ok.to_ascii_lowercase()
            .contains("\r\nlocation: /ui/fixity\r\n"),
        "{ok}"
    );
    for bad in [
        "/\\evil.example/",
        "//evil.example/",
        "https://evil.example/",
        "/\t/evil.example",
    ] {
        let r = post(bad, &own);
        assert!(
            r.to_ascii_lowercase().contains("\r\nlocation: /\r\n"),
            "{bad:?}: {r}"
        );
    }
    let cross = post("/", "http://evil.example");
    assert!(cross.starts_with("HTTP/1.1 403"), "{cross}");
    assert!(
        !cross.to_ascii_lowercase().contains("set-cookie"),
        "{cross}"
    );
}

/// Lists page by a stable cursor: the next page starts after the last
/// capture shown, however many captures are made meanwhile, on the API and
/// on the home page (newest first).
#[tokio::test(flavor = "multi_thread")]
async fn captures_page_by_a_stable_cursor_on_the_api_and_the_home_page() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let first = captured(&work, &url);
    let second = captured(&work, &url);
    let server = serve(&work, &[]);
    let admin = token(&work, "admin");
    let api = |q: &str| get(server.addr, &format!("/api/v1/captures?{q}"), Some(&admin));
    let page = api("limit=1").json();
    assert_eq!(page["items"][0]["id"], first.id.as_str());
    let cursor = page["next_cursor"]
        .as_str()
        .expect("a full page has a cursor");
    // A capture made now, oldest-first, lands at the end: the page after
    // the cursor is still the second capture.
    let third = captured(&work, &url);
    let next = api(&format!("limit=1&cursor={cursor}")).json();
    assert_eq!(next["items"][0]["id"], second.id.as_str());
    assert_eq!(
        next["next_offset"],
        Value::Null,
        "an offset does not count from a cursor"
    );
    let rest = api(&format!("cursor={}", next["next_cursor"].as_str().unwrap())).json();
    assert_eq!(rest["items"].as_array().unwrap().len(), 1);
    assert_eq!(rest["items"][0]["id"], third.id.as_str());
    assert_eq!(rest["next_cursor"], Value::Null, "the last page");
    let bad = api("cursor=yesterday");
    assert_eq!(bad.status, 400);
    assert!(
        bad.text().contains("next_cursor of the page before"),
        "{}",
        bad.text()
    );

    let newest = api("order=desc&limit=1").json();
    assert_eq!(newest["items"][0]["id"], third.id.as_str());
    let home = get(server.addr, "/", Some(&admin)).text();
    assert!(home.contains("<h2>Latest captures</h2>") && home.contains(third.id.as_str()));
    let older = get(
        server.addr,
        &format!("/?before={}", newest["next_cursor"].as_str().unwrap()),
        Some(&admin),
    )
    .text();
    assert!(older.contains("<h2>Older captures</h2>"), "{older}");
    assert!(
        !older.contains(third.id.as_str()),
        "the page before is not repeated"
    );
    assert!(older.contains(second.id.as_str()) && older.contains(first.id.as_str()));
    assert!(older.contains("href=\"/\">Latest captures</a>"), "{older}");
    let refused = get(server.addr, "/?before=x", Some(&admin));
    assert_eq!(refused.status, 400);
    assert!(
        refused.text().contains("not a cursor"),
        "{}",
        refused.text()
    );

    // Filters: by outcome, the page's HTTP status, host; on the API and
    // the home page, where "Older captures" keeps them.
    let gone = captured(&work, &format!("http://{addr}/404"));
    let ids = |q: &str| -> Vec<String> {
        api(q).json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(ids("http_status=404"), vec![gone.id.to_string()]);
    assert_eq!(ids("http_status=4xx&status=ok"), vec![gone.id.to_string()]);
    assert_eq!(ids("http_status=2xx").len(), 3);
    assert!(ids("status=failed").is_empty());
    assert_eq!(ids("host=127.0.0.1").len(), 4);
    assert!(ids("host=other.example").is_empty());
    for (q, says) in [
        ("http_status=abc", "404"),
        ("status=maybe", "ok or failed"),
        ("host=a%20b", "host name"),
    ] {
        let r = api(q);
        assert_eq!(r.status, 400, "{q}");
        assert!(r.text().contains(says), "{q}: {}", r.text());
    }
    // Fixity and claims page by cursors too.
    let files = get(server.addr, "/api/v1/fixity?limit=2", Some(&admin)).json();
    let cursor = files["next_cursor"]
        .as_str()
        .expect("a second page")
        .to_string();
    let rest = get(
        server.addr,
        &format!("/api/v1/fixity?limit=2&cursor={cursor}"),
        Some(&admin),
    )
    .json();
    let keys = |v: &Value| -> Vec<String> {
        v["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["key"].as_str().unwrap().to_string())
            .collect()
    };
    let mut both = keys(&files);
    both.extend(keys(&rest));
    both.sort();
    both.dedup();
    assert_eq!(both.len(), 4, "four captures, four files: {files} {rest}");
    assert_eq!(
        get(server.addr, "/api/v1/fixity?cursor=x", Some(&admin)).status,
        400
    );
    for text in ["one claim", "another claim"] {
        work.claim(text);
    }
    let claims = get(
        server.addr,
        "/api/v1/claims?limit=1&order=desc",
        Some(&admin),
    )
    .json();
    assert_eq!(claims["items"][0]["text"], "another claim", "{claims}");
    let next = claims["next_cursor"].as_str().unwrap();
    let older = get(
        server.addr,
        &format!("/api/v1/claims?limit=1&order=desc&cursor={next}"),
        Some(&admin),
    )
    .json();
    assert_eq!(older["items"][0]["text"], "one claim", "{older}");
    // A URL's timeline pages too, newest captures first.
    let timeline = |path: &str| get(server.addr, path, Some(&admin)).text();
    let first_page = timeline(&format!(
        "/ui/timeline?url={}&limit=2",
        url::form_urlencoded::byte_serialize(url.as_bytes()).collect::<String>()
    ));
    // (The records table spans the page's seconds, which the captures
    // here share; the list of captures is the page.)
    let listed = |html: &str| {
        let from = html.find("<ol class=\"captures\">").expect("the captures");
        html[from..].split("</ol>").next().unwrap().to_string()
    };
    let page_one = listed(&first_page);
    assert!(page_one.contains(third.id.as_str()) && page_one.contains(second.id.as_str()));
    assert!(!page_one.contains(first.id.as_str()), "{page_one}");
    let at = first_page
        .find("rel=\"next\" href=\"")
        .expect("older captures")
        + 17;
    let next = first_page[at..]
        .split('"')
        .next()
        .unwrap()
        .replace("&amp;", "&");
    let second_page = timeline(&next);
    let page_two = listed(&second_page);
    assert!(
        page_two.contains(first.id.as_str()) && !page_two.contains(third.id.as_str()),
        "{page_two}"
    );
    assert!(second_page.contains(">Latest captures</a>"));
    let filtered = get(server.addr, "/?http_status=2xx", Some(&admin)).text();
    assert!(!filtered.contains(gone.id.as_str()) && filtered.contains(third.id.as_str()));
}

/// Issue 18: a word of the article body, and an Arabic word of a
/// Windows-1256 page, are found by the API, the UI and the CLI, with the
/// passage highlighted and escaped, filters and a cursor; bad input is one
/// line.
#[tokio::test(flavor = "multi_thread")]
async fn full_text_search_finds_body_words_and_arabic_on_the_api_the_ui_and_the_cli() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let article = format!("http://{addr}{}", site::ARTICLE_PATH);
    let first = captured(&work, &article);
    let second = captured(&work, &article);
    let arabic = captured(&work, &format!("http://{addr}{}", site::ARABIC_PATH));
    let server = serve(&work, &[]);
    let admin = token(&work, "admin");
    let api = |q: &str| get(server.addr, &format!("/api/v1/search?{q}"), Some(&admin));

    let page = api("q=kirby+ALEPPO").json();
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{page}");
    assert_eq!(items[0]["capture_id"], second.id.as_str(), "newest first");
    assert_eq!(items[0]["url"], article.as_str());
    assert!(
        items[0]["title"].as_str().unwrap().contains("Aleppo"),
        "{page}"
    );
    let marked: Vec<&str> = items[0]["highlights"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["match"] == true)
        .map(|s| s["text"].as_str().unwrap())
        .collect();
    assert!(marked.contains(&"Kirby"), "{page}");
    // The passage shows both words where they stand together.
    let passage = items[0]["passage"].as_str().unwrap();
    assert!(passage.contains("Aleppo,” Kirby added"), "{passage}");
    let replay = items[0]["replay"].as_str().unwrap();
    assert!(
        replay.starts_with(&format!(
            "/replay/{}/{article}#:~:text=",
            custody::model::timestamp14(&second.started_at)
        )),
        "{replay}"
    );
    // It replays (or redirects to the capture of that second it serves:
    // both captures may share their 14-digit timestamp).
    let replayed = get(server.addr, replay.split('#').next().unwrap(), Some(&admin));
    assert!(
        replayed.status == 200 || replayed.status == 302,
        "{}",
        replayed.status
    );

    // Arabic, decoded from Windows-1256: a word and a phrase.
    let q = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let page = api(&format!("q={}", q("\"باب النيرب\""))).json();
    assert_eq!(page["items"][0]["capture_id"], arabic.id.as_str(), "{page}");
    assert_eq!(page["items"][0]["title"], "إجلاء حلب الشرقية");
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(api(&format!("q={}", q("\"النيرب باب\""))).json()["items"]
        .as_array()
        .unwrap()
        .is_empty());

    // Filters and the cursor.
    assert_eq!(
        api("q=kirby&site=elsewhere.example").json()["items"]
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        api("q=kirby&site=127.0.0.1").json()["items"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let one = api("q=kirby&limit=1&order=asc").json();
    assert_eq!(one["items"][0]["capture_id"], first.id.as_str());
    let cursor = one["next_cursor"].as_str().unwrap().to_string();
    let two = api(&format!("q=kirby&limit=1&order=asc&cursor={}", q(&cursor))).json();
    assert_eq!(two["items"][0]["capture_id"], second.id.as_str());
    // Bad input: one line that says what to do.
    for (query, says) in [
        ("q=", "no word"),
        ("q=kirby&cursor=nonsense", "next_cursor"),
        ("q=kirby&site=a%25b", "host name"),
        ("q=kirby&from=yesterday", "RFC 3339"),
    ] {
        let r = api(query);
        assert_eq!(r.status, 400, "{query}: {}", r.text());
        assert!(r.text().contains(says), "{query}: {}", r.text());
    }

    // The UI: the passage with its words marked, the query escaped.
    let ui = get(server.addr, "/ui/search?q=Kirby", Some(&admin));
    assert_eq!(ui.status, 200);
    assert!(ui.text().contains("<mark>Kirby</mark>"), "{}", ui.text());
    assert!(ui.text().contains(&format!("/ui/captures/{}", second.id)));
    let hostile = get(
        server.addr,
        &format!("/ui/search?q={}", q("kirby \"><script>alert(1)</script>")),
        Some(&admin),
    );
    assert_eq!(hostile.status, 200);
    assert!(
        !hostile.text().contains("<script>alert"),
        "{}",
        hostile.text()
    );
    let ui = get(
        server.addr,
        &format!("/ui/search?q={}", q("النيرب")),
        Some(&admin),
    );
    assert!(ui.text().contains("<mark>النيرب</mark>"), "{}", ui.text());
    let paged = get(server.addr, "/ui/search?q=kirby&limit=1", Some(&admin)).text();
    assert!(
        paged.contains("rel=\"next\"") && paged.contains("cursor="),
        "{paged}"
    );

    // The CLI: the same results, and one line for bad input.
    let out = String::from_utf8(work.ok(&["search", "Kirby", "--json"])).unwrap();
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["capture_id"], second.id.as_str());
    let out = work.ok(&[
        "search",
        "\"Bab Alnairab\"",
        "--oldest-first",
        "--limit",
        "1",
    ]);
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains(first.id.as_str()) && text.contains("[Bab Alnairab]"),
        "{text}"
    );
    let bad = work.run(&["search", "--site", "a b", "kirby"]);
    assert_eq!(bad.status.code(), Some(2), "{}", stderr_text(&bad));
    assert!(
        stderr_text(&bad).contains("host name"),
        "{}",
        stderr_text(&bad)
    );
}

/// Issue 18: the UI's pages are templates that escape whatever they show.
/// A hostile page (markup in its URL, title and text) and a hostile claim
/// are shown on every page as text, never as markup.
#[tokio::test(flavor = "multi_thread")]
async fn every_ui_page_shows_hostile_archived_text_as_text() {
    use axum::http::header;
    const ATTACK: &str = "\"'><script>alert(1)</script><img src=x onerror=alert(2)>";
    let app = axum::Router::new().route(
        "/hostile",
        axum::routing::get(|| async {
            let attack = ATTACK
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;");
            (
                [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                format!(
                    "<!doctype html><html><head><title>{attack} evidence</title></head>\
                     <body><p>The hostile witness said {attack} today.</p></body></html>"
                ),
            )
        }),
    );
    let addr = site::serve_app(app).await;
    let work = Workdir::new("");
    let url = format!(
        "http://{addr}/hostile?x={}",
        url::form_urlencoded::byte_serialize(ATTACK.as_bytes()).collect::<String>()
    );
    let c = captured(&work, &url);
    let claim = work.claim(&format!("The witness said {ATTACK}"));
    work.ok(&[
        "claim",
        "link",
        &claim,
        c.id.as_str(),
        "--quote",
        "hostile witness",
    ]);
    let server = serve(&work, &[]);
    let admin = token(&work, "admin");
    let q = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pages = [
        "/".to_string(),
        format!("/ui/search?q={}", q("hostile witness")),
        format!("/ui/search?q={}", q(&format!("http://{addr}/hostile"))),
        format!("/ui/search?q={}", q(ATTACK)),
        format!("/ui/captures/{}", c.id),
        format!("/ui/claims/{claim}"),
        format!("/ui/timeline?url={}", q(&c.seed_url)),
    ];
    for p in &pages {
        let r = get(server.addr, p, Some(&admin));
        assert_eq!(r.status, 200, "{p}: {}", r.text());
        let html = r.text();
        assert!(
            !html.contains("<script") && !html.contains("<img src=x"),
            "{p} shows the attack as markup: {html}"
        );
    }
    let shown = get(server.addr, &format!("/ui/captures/{}", c.id), Some(&admin)).text();
    assert!(
        shown.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{shown}"
    );
    let found = get(server.addr, &pages[1], Some(&admin)).text();
    assert!(
        found.contains("<mark>hostile</mark> <mark>witness</mark>"),
        "{found}"
    );
    assert!(
        found.contains("&lt;img src=x onerror=alert(2)&gt;"),
        "{found}"
    );
}

/// Issue 18: an archivist acts from the browser, signed in by the cookie:
/// a capture, a claim, a passage linked from the text view (checked as
/// `claim link` checks it, and verified by `claim show`), a schedule. A
/// form from elsewhere (another origin, no form token, another session's
/// token, a reader's session) is refused and changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn an_archivist_acts_from_the_ui_and_cross_site_forms_are_refused() {
    let addr = site::serve_http().await;
    let work = Workdir::new("allow_private_networks = true");
    std::fs::create_dir(work.path().join("schedules")).unwrap();
    let server = serve(&work, &[]);
    let archivist = token(&work, "archivist");
    let other = token(&work, "archivist");
    let reader = token(&work, "reader");
    let origin = format!("http://{}", server.addr);
    // Signing in sets the cookie with an expiry (and Secure over TLS).
    let signed_in = |token: &str, proxy_tls: bool| {
        let body = format!("token={token}&next=%2F");
        let mut headers = vec![
            ("Origin", origin.as_str()),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ];
        if proxy_tls {
            headers.push(("X-Forwarded-Proto", "https"));
        }
        let r = request(
            server.addr,
            "POST",
            "/login",
            &headers,
            Some(body.as_bytes()),
        );
        assert_eq!(r.status, 303, "{}", r.text());
        r.header("set-cookie").unwrap().to_string()
    };
    let set = signed_in(&archivist, false);
    assert!(
        set.contains("Max-Age=43200")
            && set.contains("HttpOnly")
            && set.contains("SameSite=Strict"),
        "{set}"
    );
    assert!(!set.contains("Secure"), "{set}");
    assert!(signed_in(&archivist, true).contains("; Secure"));
    let cookie = |t: &str| format!("custody_token={t}");
    let page =
        |t: &str, path: &str| request(server.addr, "GET", path, &[("Cookie", &cookie(t))], None);
    let csrf_of = |html: &str| {
        let at = html.find("name=\"csrf\" value=\"").expect("a form token") + 19;
        html[at..at + 64].to_string()
    };
    let post = |t: &str, from: &str, path: &str, form: &str| {
        request(
            server.addr,
            "POST",
            path,
            &[
                ("Cookie", &cookie(t)),
                ("Origin", from),
                ("Content-Type", "application/x-www-form-urlencoded"),
            ],
            Some(form.as_bytes()),
        )
    };
    let home = page(&archivist, "/").text();
    assert!(home.contains("Capture a page now") && home.contains("Add a claim"));
    let csrf = csrf_of(&home);
    // A reader sees no forms.
    assert!(!page(&reader, "/").text().contains("name=\"csrf\""));

    let article = format!("http://{addr}{}", site::ARTICLE_PATH);
    let q = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let capture_form = |csrf: &str| format!("csrf={csrf}&url={}", q(&article));
    // Refused: another origin, no Origin, no token, another session's
    // token, a reader. Nothing is captured.
    let other_csrf = csrf_of(&page(&other, "/").text());
    for (who, from, form, status) in [
        (&archivist, "http://evil.example", capture_form(&csrf), 403),
        (&archivist, "null", capture_form(&csrf), 403),
        (
            &archivist,
            origin.as_str(),
            format!("url={}", q(&article)),
            422,
        ),
        (&archivist, origin.as_str(), capture_form("00"), 403),
        (&archivist, origin.as_str(), capture_form(&other_csrf), 403),
        (&reader, origin.as_str(), capture_form(&csrf), 403),
    ] {
        let r = post(who, from, "/ui/capture", &form);
        assert_eq!(r.status, status, "{from} {form}: {}", r.text());
    }
    let no_origin = request(
        server.addr,
        "POST",
        "/ui/capture",
        &[
            ("Cookie", &cookie(&archivist)),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        Some(capture_form(&csrf).as_bytes()),
    );
    assert_eq!(no_origin.status, 403, "{}", no_origin.text());
    assert!(
        work.ok(&["captures", "--json"]).is_empty(),
        "nothing was captured"
    );
    // The API never takes the cookie for a change.
    let api = request(
        server.addr,
        "POST",
        "/api/v1/captures",
        &[("Cookie", &cookie(&archivist)), ("Origin", &origin)],
        Some(format!("{{\"url\": \"{article}\"}}").as_bytes()),
    );
    assert_eq!(api.status, 401, "{}", api.text());

    // Capture now: the capture appears in the list.
    let made = post(&archivist, &origin, "/ui/capture", &capture_form(&csrf));
    assert_eq!(made.status, 303, "{}", made.text());
    let at = made.header("location").unwrap().to_string();
    let capture_id = at.strip_prefix("/ui/captures/").unwrap().to_string();
    assert!(page(&archivist, "/").text().contains(&capture_id));
    let events = get(
        server.addr,
        &format!("/api/v1/captures/{capture_id}/events"),
        Some(&archivist),
    )
    .json();
    assert!(
        events["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["event"] == "requested" && e["detail"]["via"] == "ui"),
        "{events}"
    );

    // A passage linked from the text view, to a new claim: `claim show`
    // verifies it.
    let text_view = page(&archivist, &format!("/ui/captures/{capture_id}/text")).text();
    assert!(text_view.contains("John Kirby") && text_view.contains("src=\"/ui/select.js\""));
    let link = format!(
        "csrf={csrf}&capture_id={capture_id}&new_claim={}&quote={}&prefix=&suffix=&relation=supports&claim=",
        q("Regime airstrikes killed civilians in Bab Alnairab"),
        q("nearly 25 civilians were killed in airstrikes")
    );
    let linked = post(&archivist, &origin, "/ui/links", &link);
    assert_eq!(linked.status, 303, "{}", linked.text());
    let claim_id = linked
        .header("location")
        .unwrap()
        .strip_prefix("/ui/claims/")
        .unwrap()
        .to_string();
    let shown = work.run(&["claim", "show", &claim_id]);
    assert!(shown.status.success(), "{}", stderr_text(&shown));
    assert!(String::from_utf8_lossy(&shown.stdout).contains(&capture_id));
    // A quote the archived text does not hold is refused as `claim link` refuses it.
    let bad = link.replace(&q("nearly 25 civilians"), &q("nearly 90 civilians"));
    let refused = post(&archivist, &origin, "/ui/links", &bad);
    assert_eq!(refused.status, 400, "{}", refused.text());

    // A claim, and a schedule the daemon would run.
    let claim = post(
        &archivist,
        &origin,
        "/ui/claims",
        &format!("csrf={csrf}&text={}&place=Aleppo", q("A casualty count")),
    );
    assert_eq!(claim.status, 303, "{}", claim.text());
    let sched = format!(
        "csrf={csrf}&name=aleppo-daily&cron={}&timezone=UTC&urls={}",
        q("0 6 * * *"),
        q(&article)
    );
    let added = post(&archivist, &origin, "/ui/schedules", &sched);
    assert_eq!(added.status, 303, "{}", added.text());
    assert!(work.path().join("schedules/aleppo-daily.toml").is_file());
    let listed = page(&archivist, "/ui/schedules").text();
    assert!(
        listed.contains("aleppo-daily") && listed.contains("0 6 * * *"),
        "{listed}"
    );
    let invalid = post(
        &archivist,
        &origin,
        "/ui/schedules",
        &sched
            .replace("aleppo-daily", "bad-cron")
            .replace(&q("0 6 * * *"), "nonsense"),
    );
    assert_eq!(invalid.status, 400, "{}", invalid.text());
    let again = post(&archivist, &origin, "/ui/schedules", &sched);
    assert_eq!(again.status, 409, "{}", again.text());

    // Edited from its row: the values given change in the file, checked as
    // `schedule validate` checks it; a form from elsewhere, or made on an
    // older version of the file, changes nothing.
    let file = work.path().join("schedules/aleppo-daily.toml");
    let version_of = |html: &str| {
        let at = html
            .find("name=\"version\" value=\"")
            .expect("a row of changes")
            + 22;
        html[at..at + 64].to_string()
    };
    let version = version_of(&listed);
    let edit = |version: &str, cron: &str| {
        format!(
            "csrf={csrf}&name=aleppo-daily&version={version}&action=save&cron={}&timezone={}&urls={}",
            q(cron),
            q("Asia/Damascus"),
            q(&format!("{article}\n{article}?page=2"))
        )
    };
    let before = std::fs::read_to_string(&file).unwrap();
    for (from, form, status) in [
        ("http://evil.example", edit(&version, "0 7 * * *"), 403),
        (origin.as_str(), edit(&version, "0 7 * *"), 400),
        (origin.as_str(), edit(&"0".repeat(64), "0 7 * * *"), 409),
        (
            origin.as_str(),
            edit(&version, "0 7 * * *").replace(&csrf, &other_csrf),
            403,
        ),
    ] {
        let r = post(&archivist, from, "/ui/schedules/edit", &form);
        assert_eq!(r.status, status, "{from} {form}: {}", r.text());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), before);
    }
    let saved = post(
        &archivist,
        &origin,
        "/ui/schedules/edit",
        &edit(&version, "0 7 * * *"),
    );
    assert_eq!(saved.status, 303, "{}", saved.text());
    let after = std::fs::read_to_string(&file).unwrap();
    assert!(
        after.contains("cron = \"0 7 * * *\"")
            && after.contains("timezone = \"Asia/Damascus\"")
            && after.contains("?page=2")
            && after.starts_with("# Created through the HTTP API."),
        "{after}"
    );
    // The page it was made on is out of date now.
    let stale = post(
        &archivist,
        &origin,
        "/ui/schedules/edit",
        &edit(&version, "0 8 * * *"),
    );
    assert_eq!(stale.status, 409, "{}", stale.text());
    assert!(stale.text().contains("changed since it was read"));
    let listed = page(&archivist, "/ui/schedules").text();
    assert!(
        listed.contains("0 7 * * *") && listed.contains("Asia/Damascus"),
        "{listed}"
    );
    let validated = work.run(&["schedule", "validate", "schedules"]);
    assert!(validated.status.success(), "{}", stderr_text(&validated));
}

/// Issue 18: a schedule is edited, paused and resumed through the API, in
/// the file the archivist wrote: only the values given change (comments,
/// the other schedule, capture limits and claims stay, byte for byte), what
/// `schedule validate` would refuse is refused, and a change made on an
/// older version of the file, by a reader, or with the sign-in cookie
/// changes nothing.
#[tokio::test(flavor = "multi_thread")]
async fn a_schedule_is_edited_paused_and_resumed_in_its_own_file() {
    let work = Workdir::new("");
    let dir = work.path().join("schedules");
    std::fs::create_dir(&dir).unwrap();
    let text = include_str!("../fixtures/schedules-by-hand.toml");
    let file = dir.join("reports.toml");
    std::fs::write(&file, text).unwrap();
    let server = serve(&work, &[]);
    let archivist = token(&work, "archivist");
    let reader = token(&work, "reader");
    let listed = |name: &str| {
        let page = get(server.addr, "/api/v1/schedules", Some(&reader)).json();
        page["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("{name} not listed: {page}"))
    };
    let change = |who: &str, name: &str, body: &str| {
        let auth = format!("Bearer {who}");
        request(
            server.addr,
            "PATCH",
            &format!("/api/v1/schedules/{name}"),
            &[("Authorization", &auth)],
            Some(body.as_bytes()),
        )
    };
    let v0 = listed("aleppo")["version"].as_str().unwrap().to_string();
    assert_eq!(
        v0,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(text))
    );

    // Paused: one line added, nothing else changed.
    let paused = change(
        &archivist,
        "aleppo",
        &format!(r#"{{"enabled": false, "version": "{v0}"}}"#),
    );
    assert_eq!(paused.status, 200, "{}", paused.text());
    let now = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        now,
        text.replace("# the news blog\n", "# the news blog\nenabled = false\n")
    );
    let shown = listed("aleppo");
    assert_eq!(shown["enabled"], false);
    assert_eq!(shown["version"], paused.json()["version"]);
    assert_eq!(listed("reliefweb")["enabled"], true);
    let out = String::from_utf8(work.ok(&["schedule", "list", "schedules"])).unwrap();
    assert!(
        out.contains("aleppo") && out.contains("(paused: enabled = false)"),
        "{out}"
    );

    // Refused, and the file is left as it was.
    let v1 = shown["version"].as_str().unwrap().to_string();
    for (who, name, body, status, says) in [
        (
            &archivist,
            "aleppo",
            format!(r#"{{"enabled": true, "version": "{v0}"}}"#),
            409,
            "changed since it was read",
        ),
        (
            &archivist,
            "aleppo",
            r#"{"cron": "61 * * * *"}"#.to_string(),
            400,
            "invalid cron expression",
        ),
        (
            &archivist,
            "aleppo",
            r#"{"timezone": "Mars/Olympus"}"#.to_string(),
            400,
            "unknown time zone",
        ),
        (
            &archivist,
            "aleppo",
            r#"{"urls": ["file:///etc/passwd"]}"#.to_string(),
            400,
            "only http and https",
        ),
        (
            &archivist,
            "aleppo",
            r#"{"on_missed": "sometimes"}"#.to_string(),
            400,
            "on_missed",
        ),
        (
            &archivist,
            "aleppo",
            "{}".to_string(),
            400,
            "nothing to change",
        ),
        (
            &archivist,
            "aleppo",
            r#"{"enable": true}"#.to_string(),
            422,
            "enable",
        ),
        (
            &archivist,
            "nobody",
            r#"{"enabled": true}"#.to_string(),
            404,
            "no schedule named",
        ),
        (
            &reader,
            "aleppo",
            r#"{"enabled": true}"#.to_string(),
            403,
            "",
        ),
    ] {
        let r = change(who, name, &body);
        assert_eq!(r.status, status, "{body}: {}", r.text());
        assert!(r.text().contains(says), "{body}: {}", r.text());
        assert_eq!(std::fs::read_to_string(&file).unwrap(), now, "{body}");
    }
    let cookie = format!("custody_token={archivist}");
    let by_cookie = request(
        server.addr,
        "PATCH",
        "/api/v1/schedules/aleppo",
        &[
            ("Cookie", &cookie),
            ("Origin", &format!("http://{}", server.addr)),
        ],
        Some(br#"{"enabled": true}"#),
    );
    assert_eq!(by_cookie.status, 401, "{}", by_cookie.text());

    // Edited and resumed in one change, on the version just read.
    let body = format!(
        r#"{{"cron": "*/30 * * * *", "urls": ["https://aleppo-news.example/", "https://aleppo-news.example/feed/"], "overlap": "queue", "enabled": true, "version": "{v1}"}}"#
    );
    let edited = change(&archivist, "aleppo", &body);
    assert_eq!(edited.status, 200, "{}", edited.text());
    let after = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        after,
        now.replace("\"0 6,18 * * *\"", "\"*/30 * * * *\"")
            .replace(
                "[\"https://aleppo-news.example/2016/11/\"]",
                "[\"https://aleppo-news.example/\", \"https://aleppo-news.example/feed/\"]"
            )
            .replace("enabled = false\n", "overlap = \"queue\"\nenabled = true\n")
    );
    let shown = listed("aleppo");
    assert_eq!(
        (shown["enabled"].as_bool(), shown["cron"].as_str()),
        (Some(true), Some("*/30 * * * *"))
    );
    let validated = work.run(&["schedule", "validate", "schedules"]);
    assert!(validated.status.success(), "{}", stderr_text(&validated));
}
