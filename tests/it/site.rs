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
        .route("/media/generated.mp4", get(generated_media));
    // One route per path; the query string (?ver=...) is not routed on.
    let mut routed = std::collections::HashSet::new();
    for (path_query, mime, body) in requisites() {
        let path = path_query.split('?').next().unwrap_or(path_query);
        if routed.insert(path) {
            app = app.route(
                path,
                get(move || async move { ([(header::CONTENT_TYPE, mime)], body) }),
            );
        }
    }
    app
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
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router()).await;
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
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let response = Arc::new(response);
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
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
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                read_request_head(&mut sock).await;
                let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 100000\r\n\r\n<html>";
                if sock.write_all(head).await.is_err() {
                    return;
                }
                loop {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    if sock.write_all(b" ").await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
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
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, edited)
}
