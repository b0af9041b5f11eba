//! The recording proxy (browser mode's first part), driven by curl: every
//! request a client makes through it is custody's own exchange, recorded
//! byte for byte under the capture's network policy, and the client gets
//! exactly the bytes the origin sent.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use custody::browser::ca::InterceptCa;
use custody::browser::proxy::{ProxyLimits, RecordingProxy};
use custody::capture::{CaptureSettings, Crawler, Exchange, FetchError};
use tokio::sync::mpsc;

use crate::site;

struct Proxied {
    proxy: RecordingProxy,
    ca_pem: tempfile::NamedTempFile,
    rx: mpsc::Receiver<Exchange>,
    _spool: tempfile::TempDir,
}

async fn proxy(
    allow_private: bool,
    roots: Vec<std::path::PathBuf>,
    limits: ProxyLimits,
) -> Proxied {
    let spool = tempfile::tempdir().unwrap();
    let settings = CaptureSettings {
        allow_private,
        extra_root_certificates: roots,
        ..CaptureSettings::default()
    };
    let crawler = Crawler::new(settings, spool.path().to_path_buf()).unwrap();
    let ca = Arc::new(InterceptCa::new().unwrap());
    let ca_pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca_pem.path(), ca.ca_pem()).unwrap();
    let (tx, rx) = mpsc::channel(64);
    let budget = Arc::new(AtomicU64::new(1 << 30));
    let proxy = RecordingProxy::start(crawler.fetcher().clone(), ca, budget, tx, limits)
        .await
        .unwrap();
    Proxied {
        proxy,
        ca_pem,
        rx,
        _spool: spool,
    }
}

/// curl through the proxy: what it received, headers and framing as sent
/// (`--raw`), and its exit status.
async fn curl(proxy: &RecordingProxy, ca: &Path, args: &[&str]) -> (Vec<u8>, bool) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-i", "--raw", "--suppress-connect-headers"])
        .args(["--max-time", "20", "--noproxy", ""])
        .arg("-x")
        .arg(format!("http://{}", proxy.addr()))
        .arg("--cacert")
        .arg(ca)
        .args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("curl runs"))
        .await
        .unwrap();
    (out.stdout, out.status.success())
}

async fn next(rx: &mut mpsc::Receiver<Exchange>) -> Exchange {
    tokio::time::timeout(Duration::from_secs(20), rx.recv())
        .await
        .expect("an exchange within 20 s")
        .expect("the proxy is running")
}

fn raw_of(ex: &Exchange) -> String {
    use std::io::Read;
    let response = ex.response.as_ref().expect("a response");
    let mut raw = Vec::new();
    response
        .raw
        .try_clone()
        .unwrap()
        .read_to_end(&mut raw)
        .unwrap();
    String::from_utf8_lossy(&raw).into_owned()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn plain_and_tls_requests_are_custodys_exchanges_and_the_client_gets_the_wire_bytes() {
    let ca = site::test_ca();
    let http = site::serve_http().await;
    let https = site::serve_https(&ca).await;
    let mut p = proxy(true, vec![ca.ca_pem_path.clone()], ProxyLimits::default()).await;

    // In the clear: an absolute-form request.
    let url = format!("http://{http}{}", site::ARTICLE_PATH);
    let (got, ok) = curl(&p.proxy, p.ca_pem.path(), &[&url]).await;
    assert!(ok, "{}", String::from_utf8_lossy(&got));
    let ex = next(&mut p.rx).await;
    assert_eq!(ex.url.as_str(), url);
    assert_eq!(
        ex.remote,
        Some(http),
        "custody connected to the origin itself"
    );
    assert_eq!(
        raw_of(&ex),
        text(&got),
        "the client got exactly the recorded bytes"
    );
    let request = String::from_utf8_lossy(&ex.request).into_owned();
    assert!(
        request.starts_with(&format!("GET {} HTTP/1.1\r\n", site::ARTICLE_PATH)),
        "origin form to the origin: {request}"
    );
    assert!(
        !request.to_ascii_lowercase().contains("proxy-connection"),
        "{request}"
    );
    assert!(String::from_utf8_lossy(&got).contains("Bab Alnairab"));

    // Through a tunnel: TLS to the client with the capture's certificate
    // (curl checks it against the capture's CA), TLS to the origin checked
    // and recorded by custody.
    let url = format!("https://localhost:{}{}", https.port(), site::ARTICLE_PATH);
    let (got, ok) = curl(&p.proxy, p.ca_pem.path(), &[&url]).await;
    assert!(
        ok,
        "curl trusted the capture's CA: {}",
        String::from_utf8_lossy(&got)
    );
    let ex = next(&mut p.rx).await;
    assert_eq!(ex.url.as_str(), url);
    assert_eq!(raw_of(&ex), text(&got));
    let tls = ex.tls.as_ref().expect("the origin's TLS is recorded");
    assert!(tls.protocol.starts_with("tls/"), "{tls:?}");
    let pem = |s: &str| s.split_whitespace().collect::<String>();
    assert_eq!(
        pem(tls.peer_certificates.last().unwrap()),
        pem(&std::fs::read_to_string(&ca.ca_pem_path).unwrap()),
        "the recorded chain is the origin's, not the proxy's"
    );

    // A script's POST: method, fields and body reach the origin as sent.
    let (_, ok) = curl(
        &p.proxy,
        p.ca_pem.path(),
        &[
            "-d",
            "q=aleppo",
            "-H",
            "X-Requested-With: XMLHttpRequest",
            &url,
        ],
    )
    .await;
    assert!(ok);
    let ex = next(&mut p.rx).await;
    let request = String::from_utf8_lossy(&ex.request).into_owned();
    assert!(request.starts_with("POST "), "{request}");
    assert!(
        request.contains("X-Requested-With: XMLHttpRequest\r\n"),
        "{request}"
    );
    assert!(request.ends_with("\r\n\r\nq=aleppo"), "{request}");
    assert!(p.proxy.refused().is_empty(), "{:?}", p.proxy.refused());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_network_policy_holds_for_every_request_and_what_cannot_be_recorded_is_refused() {
    let http = site::serve_http().await;
    let limits = ProxyLimits {
        max_exchanges: 2,
        ..ProxyLimits::default()
    };
    let mut p = proxy(false, Vec::new(), limits).await;

    // A private address, without --allow-private: custody does not connect.
    let url = format!("http://{http}{}", site::ARTICLE_PATH);
    let (got, _) = curl(&p.proxy, p.ca_pem.path(), &[&url]).await;
    let text = String::from_utf8_lossy(&got).into_owned();
    assert!(text.starts_with("HTTP/1.1 502 "), "{text}");
    assert!(text.contains("--allow-private"), "{text}");
    let ex = next(&mut p.rx).await;
    assert!(
        matches!(ex.error, Some(FetchError::PrivateAddress { .. })),
        "{:?}",
        ex.error
    );
    assert!(ex.response.is_none() && ex.remote.is_none());

    // A WebSocket is not recorded: refused and listed.
    let ws = "http://public.example/socket";
    let (got, _) = curl(
        &p.proxy,
        p.ca_pem.path(),
        &["-H", "Connection: Upgrade", "-H", "Upgrade: websocket", ws],
    )
    .await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 501 "));
    let refused = p.proxy.refused();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].target, ws);
    assert!(refused[0].reason.contains("websocket"), "{refused:?}");

    // Garbage instead of TLS in a tunnel is refused, and the proxy goes on.
    let mut raw = tokio::net::TcpStream::connect(p.proxy.addr())
        .await
        .unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    raw.write_all(b"CONNECT public.example:443 HTTP/1.1\r\nHost: public.example:443\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 39];
    raw.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer[..], b"HTTP/1.1 200 Connection Established\r\n\r\n");
    raw.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut rest)).await;
    let refused = p.proxy.refused();
    assert!(
        refused
            .iter()
            .any(|r| r.target == "CONNECT public.example:443" && r.reason.contains("TLS")),
        "{refused:?}"
    );

    // The capture's limit on exchanges holds: the second request is the
    // last one made.
    let (_, _) = curl(&p.proxy, p.ca_pem.path(), &[&url]).await;
    let _ = next(&mut p.rx).await;
    let (got, _) = curl(&p.proxy, p.ca_pem.path(), &[&url]).await;
    assert!(String::from_utf8_lossy(&got).starts_with("HTTP/1.1 503 "));
    assert!(p
        .proxy
        .refused()
        .iter()
        .any(|r| r.reason.contains("max_resources")));
    assert!(p.rx.try_recv().is_err(), "nothing fetched past the limit");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_credential_another_local_process_gets_nothing_fetched_or_recorded() {
    let ca = site::test_ca();
    let http = site::serve_http().await;
    let https = site::serve_https(&ca).await;
    let limits = ProxyLimits {
        credential: Some("custody:s3cret".into()),
        ..ProxyLimits::default()
    };
    let mut p = proxy(true, vec![ca.ca_pem_path.clone()], limits).await;
    let url = format!("http://{http}{}", site::ARTICLE_PATH);
    let tls_url = format!("https://localhost:{}{}", https.port(), site::ARTICLE_PATH);

    // No credential, or a wrong one, in the clear or for a tunnel: 407.
    for args in [
        vec![url.as_str()],
        vec!["--proxy-user", "custody:guess", url.as_str()],
    ] {
        let (got, _) = curl(&p.proxy, p.ca_pem.path(), &args).await;
        let text = String::from_utf8_lossy(&got).into_owned();
        assert!(text.starts_with("HTTP/1.1 407 "), "{text}");
    }
    let (_, ok) = curl(&p.proxy, p.ca_pem.path(), &[tls_url.as_str()]).await;
    assert!(!ok, "no tunnel without the credential");
    assert!(
        tokio::time::timeout(Duration::from_millis(500), p.rx.recv())
            .await
            .is_err(),
        "nothing was fetched"
    );
    // A client's first try without credentials is the usual challenge;
    // a wrong credential is listed.
    let refused = p.proxy.refused();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert_eq!(refused[0].reason, "a wrong Proxy-Authorization");

    // With it, both are custody's exchanges.
    for target in [&url, &tls_url] {
        let (got, ok) = curl(
            &p.proxy,
            p.ca_pem.path(),
            &["--proxy-user", "custody:s3cret", target],
        )
        .await;
        assert!(ok, "{}", String::from_utf8_lossy(&got));
        assert_eq!(next(&mut p.rx).await.url.as_str(), target.as_str());
    }
}
