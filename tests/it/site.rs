//! The fixture site: a WordPress-style news article built from the 2016
//! Aleppo report in `tests/fixtures/`, with a header image and its `srcset`
//! variants, a stylesheet importing another with a font and a background,
//! a video with a poster, a redirect, and large media; served over HTTP and
//! over TLS with a test CA. Also raw TCP servers that send exact bytes or
//! misbehave, for what axum would not do.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Query;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

pub const ARTICLE_PATH: &str =
    "/2016/11/29/regime-airstrikes-kill-25-civilians-trying-to-flee-bombing-on-eastern-aleppo/";

pub fn article_text() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/aleppo-2016-11-29.txt"),
    )
    .expect("fixture text")
}

/// The article page: the report's paragraphs inside a WordPress-like theme.
pub fn article_html() -> String {
    let text = article_text();
    let mut lines = text.lines();
    let title = lines.next().unwrap_or_default().trim().to_string();
    let paragraphs: String = text
        .split("\n\n")
        .skip(1)
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| format!("<p>{}</p>\n", p.replace('&', "&amp;").replace('<', "&lt;")))
        .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en-US"><head>
<meta charset="UTF-8">
<title>{title} | Syrian Coalition News</title>
<link rel="stylesheet" id="news-style-css" href="/wp-content/themes/news/style.css?ver=4.6.1" type="text/css" media="all">
<link rel="icon" href="/wp-content/uploads/2016/03/cropped-logo-32x32.png" sizes="32x32">
<script type="text/javascript" src="/wp-includes/js/jquery/jquery.js?ver=1.12.4"></script>
</head>
<body class="post-template-default single single-post">
<header><img class="header-image" src="/wp-content/uploads/2016/11/aleppo-1024x576.jpg"
  srcset="/wp-content/uploads/2016/11/aleppo-300x169.jpg 300w, /wp-content/uploads/2016/11/aleppo-1024x576.jpg 1024w, /wp-content/uploads/2016/11/aleppo.jpg 1600w"
  sizes="(max-width: 1024px) 100vw, 1024px" alt="Bab Alnairab after the airstrikes"></header>
<article><h1 class="entry-title">{title}</h1>
{paragraphs}
<video controls poster="/wp-content/uploads/2016/11/atareb-poster.jpg"><source src="/wp-content/uploads/2016/11/atareb-factories.mp4" type="video/mp4"></video>
</article>
<div id="respond"><h3>Leave a Reply</h3><form action="/wp-comments-post.php" method="post"><textarea name="comment"></textarea></form></div>
</body></html>
"#
    )
}

/// Deterministic bytes that do not compress (an xorshift stream), with a
/// format's magic number in front.
pub fn media_bytes(magic: &[u8], len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    out.extend_from_slice(&magic[..magic.len().min(len)]);
    let mut x = seed | 1;
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        let n = (len - out.len()).min(8);
        out.extend_from_slice(&b[..n]);
    }
    out
}

const JPEG: &[u8] = &[0xff, 0xd8, 0xff, 0xe0, 0, 0x10, b'J', b'F', b'I', b'F', 0];
const PNG: &[u8] = b"\x89PNG\r\n\x1a\n";
const MP4: &[u8] = &[
    0, 0, 0, 0x20, b'f', b't', b'y', b'p', b'i', b's', b'o', b'm',
];

/// Every requisite of the article, with its body.
pub fn requisites() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        (
            "/wp-content/themes/news/style.css?ver=4.6.1",
            "text/css",
            b"@import url(\"fonts.css\");\nbody { font-family: 'Noto Sans', sans-serif; background: #fff url(img/paper.png) repeat; }\n.entry-title { color: #222 }\n".to_vec(),
        ),
        (
            "/wp-content/themes/news/fonts.css",
            "text/css",
            b"@font-face { font-family: 'Noto Sans'; src: url(fonts/noto-sans.woff2) format('woff2'); }\n".to_vec(),
        ),
        ("/wp-content/themes/news/img/paper.png", "image/png", media_bytes(PNG, 3_000, 1)),
        ("/wp-content/themes/news/fonts/noto-sans.woff2", "font/woff2", media_bytes(b"wOF2", 20_000, 2)),
        ("/wp-content/uploads/2016/03/cropped-logo-32x32.png", "image/png", media_bytes(PNG, 900, 3)),
        ("/wp-includes/js/jquery/jquery.js?ver=1.12.4", "application/javascript", b"/*! jQuery v1.12.4 */ window.jQuery = function () {};\n".to_vec()),
        ("/wp-content/uploads/2016/11/aleppo-1024x576.jpg", "image/jpeg", media_bytes(JPEG, 60_000, 4)),
        ("/wp-content/uploads/2016/11/aleppo-300x169.jpg", "image/jpeg", media_bytes(JPEG, 12_000, 5)),
        ("/wp-content/uploads/2016/11/aleppo.jpg", "image/jpeg", media_bytes(JPEG, 110_000, 6)),
        ("/wp-content/uploads/2016/11/atareb-poster.jpg", "image/jpeg", media_bytes(JPEG, 25_000, 7)),
        ("/wp-content/uploads/2016/11/atareb-factories.mp4", "video/mp4", media_bytes(MP4, 300_000, 8)),
    ]
}

pub const RICH_PATH: &str = "/2016/12/01/aleppo-evacuation-live/";

/// A WordPress-like article that uses every way a page loads media: a
/// `srcset` header image, a `picture` with a WebP source, a lazy `data-src`
/// image, a stylesheet that imports another and loads a font and a
/// background, a video with a poster, an audio file, an `og:image`, an
/// iframe embed with its own video and DASH stream, a linked HLS stream, and
/// a photo from another origin (`localhost` at the same port, when the page
/// is asked for by address).
pub fn rich_html(port: u16) -> String {
    let page = r#"<!DOCTYPE html>
<html lang="en-US"><head>
<meta charset="UTF-8">
<title>Evacuation of eastern Aleppo, live | Syrian Coalition News</title>
<meta property="og:image" content="/wp-content/uploads/2016/12/og-evacuation.jpg">
<link rel="stylesheet" href="/wp-content/themes/live/style.css?ver=4.7">
</head>
<body>
<header><img src="/wp-content/uploads/2016/12/buses-1024x576.jpg"
  srcset="/wp-content/uploads/2016/12/buses-300x169.jpg 300w, /wp-content/uploads/2016/12/buses-1024x576.jpg 1024w"
  sizes="(max-width: 1024px) 100vw, 1024px" alt="Buses at Ramouseh"></header>
<article><h1>Evacuation of eastern Aleppo, live</h1>
<picture><source type="image/webp" srcset="/wp-content/uploads/2016/12/crossing.webp"><img src="/wp-content/uploads/2016/12/crossing.jpg" alt="The crossing"></picture>
<p>Thousands waited in the cold for the buses.</p>
<img class="lazyload" src="data:image/gif;base64,R0lGODlhAQABAAAAACw=" data-src="/wp-content/uploads/2016/12/queue.jpg" alt="The queue">
<video controls poster="/wp-content/uploads/2016/12/convoy-poster.jpg"><source src="/wp-content/uploads/2016/12/convoy.mp4" type="video/mp4"></video>
<audio controls src="/wp-content/uploads/2016/12/witness.mp3"></audio>
<iframe src="/embed/player/1207/" width="640" height="360"></iframe>
<p><a href="/live/evacuation/master.m3u8">Watch the live stream</a></p>
<figure><img src="http://localhost:PORT/cdn/2016/12/helmets.jpg" alt="Civil Defence"></figure>
</article>
</body></html>
"#;
    page.replace("PORT", &port.to_string())
}

/// The photo the rich article loads from another origin.
pub const CROSS_ORIGIN_PATH: &str = "/cdn/2016/12/helmets.jpg";

/// A Windows-1256 page (as many Arabic-language news sites still serve)
/// whose image has an Arabic file name: read as UTF-8, the name would come
/// out wrong and the image would not be found.
pub const ARABIC_PATH: &str = "/ar/2016/12/01/evacuation/";

pub fn arabic_page() -> Vec<u8> {
    let html = "<!DOCTYPE html><html lang=\"ar\" dir=\"rtl\"><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=windows-1256\">\
        <title>إجلاء حلب الشرقية</title></head><body><p>قتل نحو 25 مدنيا في باب النيرب.</p>\
        <img src=\"/ar/صور/باب-النيرب.jpg\"></body></html>";
    encoding_rs::WINDOWS_1256.encode(html).0.into_owned()
}

/// The image's path as a client sends it (UTF-8, percent-encoded).
pub fn arabic_image_path() -> String {
    url::Url::parse("http://x/ar/صور/باب-النيرب.jpg")
        .unwrap()
        .path()
        .to_string()
}

/// Every resource the rich article loads, directly or through another.
pub fn rich_requisites() -> Vec<(&'static str, &'static str, Vec<u8>)> {
    vec![
        ("/wp-content/themes/live/style.css?ver=4.7", "text/css",
            b"@import url(\"base.css\");\nbody { background: #fafafa url(img/texture.png) }\n".to_vec()),
        ("/wp-content/themes/live/base.css", "text/css",
            b"@font-face { font-family: Amiri; src: url(fonts/amiri.woff2) format('woff2') }\n".to_vec()),
        ("/wp-content/themes/live/img/texture.png", "image/png", media_bytes(PNG, 2_000, 21)),
        ("/wp-content/themes/live/fonts/amiri.woff2", "font/woff2", media_bytes(b"wOF2", 30_000, 22)),
        ("/wp-content/uploads/2016/12/og-evacuation.jpg", "image/jpeg", media_bytes(JPEG, 9_000, 23)),
        ("/wp-content/uploads/2016/12/buses-1024x576.jpg", "image/jpeg", media_bytes(JPEG, 50_000, 24)),
        ("/wp-content/uploads/2016/12/buses-300x169.jpg", "image/jpeg", media_bytes(JPEG, 10_000, 25)),
        ("/wp-content/uploads/2016/12/crossing.webp", "image/webp", media_bytes(b"RIFF", 20_000, 26)),
        ("/wp-content/uploads/2016/12/crossing.jpg", "image/jpeg", media_bytes(JPEG, 30_000, 27)),
        ("/wp-content/uploads/2016/12/queue.jpg", "image/jpeg", media_bytes(JPEG, 15_000, 28)),
        ("/wp-content/uploads/2016/12/convoy-poster.jpg", "image/jpeg", media_bytes(JPEG, 12_000, 29)),
        ("/wp-content/uploads/2016/12/convoy.mp4", "video/mp4", media_bytes(MP4, 200_000, 30)),
        ("/wp-content/uploads/2016/12/witness.mp3", "audio/mpeg", media_bytes(b"ID3", 40_000, 31)),
        ("/embed/player/1207/", "text/html",
            b"<!DOCTYPE html><html><body><video src=\"/embed/media/1207.mp4\" poster=\"/embed/media/1207.jpg\"></video>\
<video><source src=\"/embed/media/1207.mpd\" type=\"application/dash+xml\"></video></body></html>".to_vec()),
        ("/embed/media/1207.mpd", "application/dash+xml",
            b"<?xml version=\"1.0\"?><MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" type=\"static\" mediaPresentationDuration=\"PT8S\">\
<Period><AdaptationSet mimeType=\"video/mp4\"><SegmentTemplate timescale=\"1\" duration=\"4\" startNumber=\"1\" initialization=\"dash/$RepresentationID$-init.mp4\" media=\"dash/$RepresentationID$-$Number$.m4s\"/>\
<Representation id=\"v1\" bandwidth=\"500000\"/></AdaptationSet></Period></MPD>".to_vec()),
        ("/embed/media/dash/v1-init.mp4", "video/mp4", media_bytes(MP4, 900, 38)),
        ("/embed/media/dash/v1-1.m4s", "video/iso.segment", media_bytes(b"styp", 20_000, 39)),
        ("/embed/media/dash/v1-2.m4s", "video/iso.segment", media_bytes(b"styp", 20_000, 40)),
        ("/embed/media/1207.mp4", "video/mp4", media_bytes(MP4, 80_000, 32)),
        ("/embed/media/1207.jpg", "image/jpeg", media_bytes(JPEG, 5_000, 33)),
        ("/live/evacuation/master.m3u8", "application/vnd.apple.mpegurl",
            b"#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000,RESOLUTION=640x360\nlow/index.m3u8\n".to_vec()),
        ("/live/evacuation/low/index.m3u8", "application/vnd.apple.mpegurl",
            b"#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:4\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:4.0,\nseg0.m4s\n#EXTINF:4.0,\nseg1.m4s\n#EXTINF:4.0,\nseg2.m4s\n#EXT-X-ENDLIST\n".to_vec()),
        ("/live/evacuation/low/init.mp4", "video/mp4", media_bytes(MP4, 1_000, 34)),
        ("/live/evacuation/low/seg0.m4s", "video/iso.segment", media_bytes(b"styp", 25_000, 35)),
        ("/live/evacuation/low/seg1.m4s", "video/iso.segment", media_bytes(b"styp", 25_000, 36)),
        ("/live/evacuation/low/seg2.m4s", "video/iso.segment", media_bytes(b"styp", 25_000, 37)),
        (CROSS_ORIGIN_PATH, "image/jpeg", media_bytes(JPEG, 18_000, 41)),
    ]
}

#[derive(serde::Deserialize)]
struct SizeQuery {
    bytes: u64,
}

pub fn router() -> Router {
    let mut app = Router::new()
        .route(
            ARTICLE_PATH,
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                    article_html(),
                )
            }),
        )
        .route(
            "/short-link",
            get(|| async {
                (
                    StatusCode::MOVED_PERMANENTLY,
                    [(header::LOCATION, ARTICLE_PATH)],
                    "Moved",
                )
            }),
        )
        .route("/media/generated.mp4", get(generated_media))
        .route(
            RICH_PATH,
            get(|headers: axum::http::HeaderMap| async move {
                let port = headers
                    .get(header::HOST)
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| h.rsplit(':').next()?.parse().ok())
                    .unwrap_or(80);
                (
                    [(header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                    rich_html(port),
                )
            }),
        )
        .route(
            ARABIC_PATH,
            get(|| async { ([(header::CONTENT_TYPE, "text/html")], arabic_page()) }),
        )
        .route(
            &arabic_image_path(),
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "image/jpeg")],
                    media_bytes(JPEG, 7_000, 42),
                )
            }),
        );
    // One route per path; the query string (?ver=...) is not routed on.
    let mut routed = std::collections::HashSet::new();
    for (path_query, mime, body) in requisites().into_iter().chain(rich_requisites()) {
        let path = path_query.split('?').next().unwrap_or(path_query);
        if !routed.insert(path) {
            continue;
        }
        if mime == "application/javascript" {
            // Scripts come chunked (no Content-Length), as many servers
            // send them: WARC payload digests and warcio differ on these.
            app = app.route(path, get(move || async move { chunked(mime, body) }));
        } else {
            app = app.route(
                path,
                get(move || async move { ([(header::CONTENT_TYPE, mime)], body) }),
            );
        }
    }
    app
}

/// `body` with `Transfer-Encoding: chunked`, in two chunks.
fn chunked(mime: &'static str, body: Vec<u8>) -> Response {
    let half = body.len() / 2;
    let parts = vec![
        Ok::<_, std::io::Error>(axum::body::Bytes::from(body[..half].to_vec())),
        Ok(axum::body::Bytes::from(body[half..].to_vec())),
    ];
    Response::builder()
        .header(header::CONTENT_TYPE, mime)
        .body(Body::from_stream(futures_util::stream::iter(parts)))
        .expect("response")
}

/// A stream of `bytes` incompressible bytes, generated as it is sent.
async fn generated_media(Query(q): Query<SizeQuery>) -> Response {
    let total = q.bytes;
    let chunk = 256 * 1024u64;
    let stream = futures_util::stream::unfold(
        (0u64, 0x9e3779b97f4a7c15u64),
        move |(sent, seed)| async move {
            if sent >= total {
                return None;
            }
            let n = chunk.min(total - sent) as usize;
            let bytes = media_bytes(MP4, n, seed);
            Some((
                Ok::<_, std::io::Error>(axum::body::Bytes::from(bytes)),
                (sent + n as u64, seed.wrapping_add(1)),
            ))
        },
    );
    Response::builder()
        .header(header::CONTENT_TYPE, "video/mp4")
        .header(header::CONTENT_LENGTH, total)
        .body(Body::from_stream(stream))
        .expect("response")
        .into_response()
}

/// Serves the site over plain HTTP on a loopback port.
pub async fn serve_http() -> SocketAddr {
    serve_app(router()).await
}

/// `app`, counting every request it answers.
#[cfg_attr(not(feature = "interop"), allow(dead_code))]
pub fn counting(app: Router) -> (Router, Arc<std::sync::atomic::AtomicUsize>) {
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    let app = app.layer(axum::middleware::from_fn(
        move |req: axum::extract::Request, next: axum::middleware::Next| {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                next.run(req).await
            }
        },
    ));
    (app, hits)
}

/// Serves an axum app on a loopback port.
pub async fn serve_app(app: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Accepts connections on a loopback port and hands each to `answer`, in
/// its own task.
async fn serve_each<F, Fut>(answer: F) -> SocketAddr
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(answer(sock));
        }
    });
    addr
}

/// A test certificate authority and a server certificate it signed for
/// `localhost` and 127.0.0.1.
pub struct TestCa {
    pub ca_pem_path: PathBuf,
    server: Arc<rustls::ServerConfig>,
    _dir: tempfile::TempDir,
}

pub fn test_ca() -> TestCa {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "custody test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key).expect("ca cert");
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let leaf_key = KeyPair::generate().expect("leaf key");
    let mut leaf_params =
        CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("leaf params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "aleppo-news.test");
    let leaf = leaf_params
        .signed_by(&leaf_key, &issuer)
        .expect("leaf cert");

    let dir = tempfile::tempdir().expect("tempdir");
    let ca_pem_path = dir.path().join("test-ca.pem");
    std::fs::write(&ca_pem_path, ca_cert.pem()).expect("write ca");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone(), ca_cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server config");
    server.alpn_protocols = vec![b"http/1.1".to_vec()];
    TestCa {
        ca_pem_path,
        server: Arc::new(server),
        _dir: dir,
    }
}

/// Serves the site over TLS with the test CA's certificate.
pub async fn serve_https(ca: &TestCa) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let acceptor = tokio_rustls::TlsAcceptor::from(ca.server.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router());
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    addr
}

/// Answers every connection by reading the request head and then writing
/// `response` exactly, then closing.
pub async fn serve_raw(response: Vec<u8>) -> SocketAddr {
    let response = Arc::new(response);
    serve_each(move |mut sock| {
        let response = response.clone();
        async move {
            read_request_head(&mut sock).await;
            let _ = sock.write_all(&response).await;
            let _ = sock.shutdown().await;
        }
    })
    .await
}

/// Accepts connections and never answers.
pub async fn serve_silent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            held.push(sock);
        }
    });
    addr
}

async fn read_request_head(sock: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match sock.read(&mut b).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
}

/// Sends a response head, then one body byte per second, forever.
pub async fn serve_drip() -> SocketAddr {
    serve_each(|mut sock| async move {
        read_request_head(&mut sock).await;
        let head =
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n<html>";
        if sock.write_all(head).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            if sock.write_all(b" ").await.is_err() {
                return;
            }
        }
    })
    .await
}

/// The first connection gets half a response head and then silence; every
/// later one gets `response` in full.
pub async fn serve_hang_once(response: Vec<u8>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let response = Arc::new(response);
    tokio::spawn(async move {
        let mut first = true;
        let mut held = Vec::new();
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            if std::mem::take(&mut first) {
                read_request_head(&mut sock).await;
                let _ = sock
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/ht")
                    .await;
                held.push(sock);
                continue;
            }
            let response = response.clone();
            tokio::spawn(async move {
                read_request_head(&mut sock).await;
                let _ = sock.write_all(&response).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    addr
}

/// The article at `/article/`, until `edited` is set: then the Bab Alnairab
/// passage is silently rewritten, as news sites do.
pub async fn serve_editable() -> (SocketAddr, Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::{AtomicBool, Ordering};
    let edited = Arc::new(AtomicBool::new(false));
    let flag = edited.clone();
    let app = Router::new().route(
        "/article/",
        get(move || {
            let flag = flag.clone();
            async move {
                let mut html = article_html();
                if flag.load(Ordering::SeqCst) {
                    html = html.replace(
                        "nearly 25 civilians were killed in airstrikes",
                        "several people died in an incident",
                    );
                }
                ([(header::CONTENT_TYPE, "text/html; charset=UTF-8")], html)
            }
        }),
    );
    (serve_app(app).await, edited)
}

/// One misbehaving server, by request path: `/endless` (a body that never
/// ends), `/drip` (a byte a second), `/bomb` (a gzip bomb declared as
/// HTML), `/loop?n=N` (redirects to N+1 forever), `/loop-a` and `/loop-b`
/// (redirect to each other), `/headers` (5,000 header fields), `/reset`
/// (connection reset mid-body), `/garbage` (not HTTP), `/badstatus` (an
/// invalid status line), `/404` and `/500`.
pub async fn serve_hostile(bomb: Arc<Vec<u8>>) -> SocketAddr {
    serve_each(move |mut sock| {
        let bomb = bomb.clone();
        async move {
            let path = read_request_path(&mut sock).await;
            let _ = hostile_answer(&mut sock, &path, &bomb).await;
        }
    })
    .await
}

async fn read_request_path(sock: &mut tokio::net::TcpStream) -> String {
    let mut buf = Vec::new();
    let mut b = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match sock.read(&mut b).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&b[..n]),
        }
    }
    let line = String::from_utf8_lossy(&buf)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    line.split(' ').nth(1).unwrap_or("/").to_string()
}

async fn hostile_answer(
    sock: &mut tokio::net::TcpStream,
    path: &str,
    bomb: &[u8],
) -> std::io::Result<()> {
    use std::time::Duration;
    let (route, query) = path.split_once('?').unwrap_or((path, ""));
    match route {
        "/endless" | "/endless.mp4" => {
            sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nConnection: close\r\n\r\n")
                .await?;
            let chunk = media_bytes(b"", 64 * 1024, 99);
            loop {
                sock.write_all(&chunk).await?;
            }
        }
        "/drip" | "/drip.mp4" => {
            sock.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 1000000\r\n\r\n",
            )
            .await?;
            loop {
                sock.write_all(b"x").await?;
                tokio::time::sleep(Duration::from_millis(700)).await;
            }
        }
        "/bomb" => {
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n",
                bomb.len()
            );
            sock.write_all(head.as_bytes()).await?;
            sock.write_all(bomb).await?;
        }
        "/loop" => {
            let n: u64 = query.trim_start_matches("n=").parse().unwrap_or(0);
            let head = format!(
                "HTTP/1.1 302 Found\r\nLocation: /loop?n={}\r\nContent-Length: 0\r\n\r\n",
                n + 1
            );
            sock.write_all(head.as_bytes()).await?;
        }
        "/loop-a" | "/loop-b" => {
            let other = if route == "/loop-a" {
                "/loop-b"
            } else {
                "/loop-a"
            };
            let head = format!(
                "HTTP/1.1 301 Moved Permanently\r\nLocation: {other}\r\nContent-Length: 0\r\n\r\n"
            );
            sock.write_all(head.as_bytes()).await?;
        }
        "/headers" => {
            let mut head = String::from("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n");
            for i in 0..5000 {
                head.push_str(&format!("X-Tracking-{i}: {i}\r\n"));
            }
            head.push_str("Content-Length: 2\r\n\r\nok");
            sock.write_all(head.as_bytes()).await?;
        }
        "/reset" => {
            sock.write_all(
                b"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: 1048576\r\n\r\n",
            )
            .await?;
            sock.write_all(&media_bytes(MP4, 65_536, 98)).await?;
            sock.flush().await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            // SO_LINGER 0: closing sends a reset, not a FIN (and cannot
            // block, so the deprecation's concern does not apply).
            #[allow(deprecated)]
            sock.set_linger(Some(Duration::ZERO))?;
            return Ok(());
        }
        "/page" => {
            let body = "<!DOCTYPE html><p>Requisites that misbehave</p><img src=\"/garbage\"><img src=\"/reset\"><img src=\"/404\"><img src=\"/headers\">";
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            sock.write_all(head.as_bytes()).await?;
            sock.write_all(body.as_bytes()).await?;
        }
        "/garbage" => {
            sock.write_all(b"SSH-2.0-OpenSSH_9.6p1 Debian-4\r\n\x00\x01\x02 not a web server\r\n")
                .await?;
        }
        "/badstatus" => {
            sock.write_all(
                b"HTTP/1.1 2OO OK\r\nContent-Type: text/html\r\nContent-Length: 2\r\n\r\nok",
            )
            .await?;
        }
        "/404" => {
            sock.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: 26\r\n\r\n<h1>Article removed</h1>\r\n")
                .await?;
        }
        _ => {
            sock.write_all(b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/html\r\nContent-Length: 21\r\n\r\n<h1>Server error</h1>")
                .await?;
        }
    }
    sock.shutdown().await
}
