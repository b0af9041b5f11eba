//! The recording proxy: for the length of one capture, an HTTP forward
//! proxy on an ephemeral loopback port through which the capture's browser
//! (or yt-dlp) makes every request.
//!
//! Each request is sent by custody's own [`Fetcher`] (`Fetcher::forward`):
//! the same network policy (a private address is refused unless the
//! capture allows it, for every request and redirect), the same limits,
//! the same byte-for-byte recording and TLS details of custody's own
//! connection to the origin. The browser is answered with exactly the bytes
//! the origin sent, read back from the exchange's spool, and the exchange
//! then goes to the capture's WARC writer like any other.
//!
//! `CONNECT` tunnels are intercepted with a certificate from the capture's
//! [`InterceptCa`]. What the proxy cannot record (WebSocket and other
//! upgrades, `CONNECT` to a port it cannot read as TLS, request bodies
//! without a length) is refused and listed in [`RecordingProxy::refused`].

use std::net::SocketAddr;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::body::Bytes;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use url::Url;

use super::ca::InterceptCa;
use crate::capture::fetch::Budget;
use crate::capture::{Exchange, Fetcher, Forward};

/// Bounds on what the browser may ask of the proxy.
#[derive(Clone, Debug)]
pub struct ProxyLimits {
    /// Largest request head (request line and header fields).
    pub max_request_head: usize,
    /// Largest request body (a POST a script makes).
    pub max_request_body: usize,
    /// Exchanges recorded in one capture; later requests are refused.
    pub max_exchanges: usize,
    /// Connections served at once.
    pub max_connections: usize,
    /// Longest wait for the next request on an open connection.
    pub idle: Duration,
    /// `user:password` a client must send (`Proxy-Authorization: Basic`)
    /// on each connection; yt-dlp takes it in its proxy URL. Without one,
    /// any loopback peer is served.
    pub credential: Option<String>,
}

impl Default for ProxyLimits {
    fn default() -> Self {
        ProxyLimits {
            max_request_head: 64 * 1024,
            max_request_body: 16 * 1024 * 1024,
            max_exchanges: 1000,
            max_connections: 64,
            idle: Duration::from_secs(30),
            credential: None,
        }
    }
}

/// Refusals listed per capture; later ones are only logged.
const MAX_REFUSED: usize = 1000;

/// A request the proxy did not make, and why (listed in the manifest).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refused {
    /// What was asked for: a URL, or `CONNECT host:port`.
    pub target: String,
    pub reason: String,
}

/// A running proxy; it stops when dropped.
pub struct RecordingProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Text of documents held for the crawler, at most; past it, the crawler
/// fetches them again.
const MAX_DOCUMENTS: usize = 64 << 20;

struct Shared {
    fetcher: Arc<Fetcher>,
    ca: Arc<InterceptCa>,
    budget: Budget,
    tx: mpsc::Sender<Exchange>,
    limits: ProxyLimits,
    refused: Mutex<Vec<Refused>>,
    exchanges: Mutex<usize>,
    /// Requests being fetched right now (network idle is none for a while).
    in_flight: std::sync::atomic::AtomicUsize,
    /// When the last request being fetched ended (or the proxy started).
    last_done: Mutex<tokio::time::Instant>,
    /// Every URL fetched, in order, with its response's type.
    fetched: Mutex<Vec<(String, Option<String>)>>,
    /// What the crawler would read of the documents among them (GETs that
    /// redirect or name others), their text held up to [`MAX_DOCUMENTS`].
    documents: Mutex<(Vec<crate::capture::Seen>, usize)>,
    connections: Arc<Semaphore>,
}

impl Shared {
    fn refuse(&self, target: &str, reason: &str) {
        tracing::info!(target, reason, "the recording proxy refused a request");
        if let Ok(mut r) = self.refused.lock() {
            // A page that asks forever cannot grow the list without end.
            if r.len() < MAX_REFUSED {
                r.push(Refused {
                    target: target.to_string(),
                    reason: reason.to_string(),
                });
            }
        }
    }

    /// Takes a place for one more exchange, if the capture has room.
    fn take_exchange(&self) -> bool {
        let Ok(mut n) = self.exchanges.lock() else {
            return false;
        };
        if *n >= self.limits.max_exchanges {
            return false;
        }
        *n += 1;
        true
    }
}

impl RecordingProxy {
    /// Listens on an ephemeral loopback port. Every exchange made for the
    /// browser is sent to `tx` once the browser has been answered.
    pub async fn start(
        fetcher: Arc<Fetcher>,
        ca: Arc<InterceptCa>,
        budget: Budget,
        tx: mpsc::Sender<Exchange>,
        limits: ProxyLimits,
    ) -> std::io::Result<RecordingProxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            fetcher,
            ca,
            budget,
            tx,
            connections: Arc::new(Semaphore::new(limits.max_connections.max(1))),
            limits,
            refused: Mutex::new(Vec::new()),
            exchanges: Mutex::new(0),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
            last_done: Mutex::new(tokio::time::Instant::now()),
            fetched: Mutex::new(Vec::new()),
            documents: Mutex::new((Vec::new(), 0)),
        });
        let task = tokio::spawn(accept_loop(listener, shared.clone()));
        Ok(RecordingProxy { addr, shared, task })
    }

    /// Where the browser is pointed (`--proxy-server=http://ADDR`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many requests are being fetched now.
    pub fn in_flight(&self) -> usize {
        self.shared
            .in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// How long no request has been fetched (zero while one is).
    pub fn quiet_for(&self) -> std::time::Duration {
        let last = self.shared.last_done.lock().map(|t| *t);
        match last {
            Ok(t) if self.in_flight() == 0 => t.elapsed(),
            _ => std::time::Duration::ZERO,
        }
    }

    /// The documents fetched so far that redirect or name others, as the
    /// crawler reads them (those past [`MAX_DOCUMENTS`] of text left out).
    pub fn documents(&self) -> Vec<crate::capture::Seen> {
        self.shared
            .documents
            .lock()
            .map(|d| d.0.clone())
            .unwrap_or_default()
    }

    /// Every URL fetched so far, in order, with the type of payload its
    /// response declared.
    pub fn fetched(&self) -> Vec<(String, Option<String>)> {
        self.shared
            .fetched
            .lock()
            .map(|f| f.clone())
            .unwrap_or_default()
    }

    /// What was refused so far.
    pub fn refused(&self) -> Vec<Refused> {
        self.shared
            .refused
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((tcp, peer)) = listener.accept().await else {
            // Out of file descriptors, say: wait rather than spin.
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        if !peer.ip().is_loopback() {
            continue; // bound to loopback; never anyone else
        }
        let Ok(permit) = shared.connections.clone().acquire_owned().await else {
            return;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _ = tcp.set_nodelay(true);
            serve_connection(&shared, tcp).await;
            drop(permit);
        });
    }
}

/// A request line and header fields as the browser sent them.
struct Head {
    method: String,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
    }

    fn says_close(&self) -> bool {
        self.header("connection")
            .or_else(|| self.header("proxy-connection"))
            .is_some_and(|v| v.to_ascii_lowercase().contains("close"))
    }
}

/// Reads one request head; `None` at a clean end of the connection, an
/// error for anything malformed, too large or too slow.
async fn read_head<S: AsyncRead + Unpin>(
    io: &mut BufReader<S>,
    limits: &ProxyLimits,
) -> Result<Option<Head>, String> {
    let mut buf = Vec::new();
    loop {
        let before = buf.len();
        // One line can be no longer than what is left of the limit.
        let room = (limits.max_request_head + 1).saturating_sub(buf.len()) as u64;
        let mut line = (&mut *io).take(room);
        let read = tokio::time::timeout(limits.idle, line.read_until(b'\n', &mut buf)).await;
        match read {
            Err(_) if buf.is_empty() => return Ok(None),
            Err(_) => return Err("the request head was not finished in time".into()),
            Ok(Err(e)) => return Err(e.to_string()),
            Ok(Ok(0)) if buf.is_empty() => return Ok(None),
            Ok(Ok(0)) => return Err("the connection ended inside a request head".into()),
            Ok(Ok(_)) => {}
        }
        if buf.len() > limits.max_request_head {
            return Err("the request head is too large".into());
        }
        // Skip empty lines before a request (RFC 9112, section 2.2).
        if before == 0 && (buf == b"\r\n" || buf == b"\n") {
            buf.clear();
            continue;
        }
        if buf.ends_with(b"\r\n\r\n") || buf.ends_with(b"\n\n") {
            break;
        }
    }
    let mut fields = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut fields);
    match req.parse(&buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err("incomplete request head".into()),
        Err(e) => return Err(format!("malformed request head: {e}")),
    }
    Ok(Some(Head {
        method: req.method.unwrap_or_default().to_string(),
        target: req.path.unwrap_or_default().to_string(),
        headers: req
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
    }))
}

/// Serves one connection from the browser: plain requests in absolute
/// form, or a `CONNECT` tunnel whose TLS is intercepted.
async fn serve_connection(shared: &Shared, tcp: TcpStream) {
    let mut io = BufReader::new(tcp);
    let head = match read_head(&mut io, &shared.limits).await {
        Ok(Some(head)) => head,
        Ok(None) => return,
        Err(reason) => {
            let _ = answer(io.get_mut(), 400, &reason).await;
            return;
        }
    };
    if let Some(credential) = &shared.limits.credential {
        if !authorized(&head, credential) {
            // Nothing it asks is fetched or recorded. A request without
            // credentials is a client's usual first try (Chromium asks
            // before it answers the challenge); a wrong one is another
            // process, and listed.
            if head.header("proxy-authorization").is_some() {
                shared.refuse(&head.target, "a wrong Proxy-Authorization");
            }
            let _ = answer(io.get_mut(), 407, "proxy authentication required").await;
            return;
        }
    }
    if !head.method.eq_ignore_ascii_case("CONNECT") {
        serve_requests(shared, io, None, Some(head)).await;
        return;
    }
    let target = format!("CONNECT {}", head.target);
    let Some((host, port)) = authority(&head.target) else {
        shared.refuse(&target, "not a host:port");
        let _ = answer(io.get_mut(), 400, "CONNECT needs host:port").await;
        return;
    };
    if !io.buffer().is_empty() {
        shared.refuse(&target, "bytes sent before the tunnel was open");
        return;
    }
    let config = match shared.ca.server_config(&host) {
        Ok(c) => c,
        Err(e) => {
            shared.refuse(&target, &e.to_string());
            let _ = answer(io.get_mut(), 502, &e.to_string()).await;
            return;
        }
    };
    let mut tcp = io.into_inner();
    if tcp
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    match tokio::time::timeout(shared.limits.idle, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => {
            serve_requests(shared, BufReader::new(tls), Some((host, port)), None).await;
        }
        Ok(Err(e)) => shared.refuse(
            &target,
            &format!("not TLS the proxy can read (it records HTTP/1.1 over TLS only): {e}"),
        ),
        Err(_) => shared.refuse(&target, "no TLS handshake in time"),
    }
}

/// A fresh credential for one capture's proxy (`custody:<128 random bits>`).
pub fn new_credential() -> String {
    format!("custody:{}", hex::encode(rand::random::<[u8; 16]>()))
}

/// Whether `head` carries `Proxy-Authorization: Basic` for `credential`
/// (compared in time independent of where the first difference is).
fn authorized(head: &Head, credential: &str) -> bool {
    use base64::Engine;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credential)
    );
    let Some(given) = head.header("proxy-authorization") else {
        return false;
    };
    given.len() == expected.len()
        && given
            .bytes()
            .zip(expected.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// `host:port` of a `CONNECT` target (IPv6 in brackets).
fn authority(target: &str) -> Option<(String, u16)> {
    let (host, port) = target.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_ascii_lowercase(), port))
}

/// The URL a request names: absolute form on a plain connection, origin
/// form inside a tunnel to `tunnel`.
fn request_url(head: &Head, tunnel: Option<&(String, u16)>) -> Result<Url, String> {
    match tunnel {
        None => {
            let url = Url::parse(&head.target)
                .map_err(|e| format!("not an absolute URL ({e}); a proxy request names one"))?;
            if url.scheme() != "http" {
                return Err(format!(
                    "scheme {} is not proxied in the clear",
                    url.scheme()
                ));
            }
            Ok(url)
        }
        Some((host, port)) => {
            if !head.target.starts_with('/') {
                return Err("a request in a tunnel names a path".into());
            }
            let host = if host.contains(':') {
                format!("[{host}]")
            } else {
                host.clone()
            };
            let authority = match port {
                443 => host,
                p => format!("{host}:{p}"),
            };
            Url::parse(&format!("https://{authority}{}", head.target)).map_err(|e| e.to_string())
        }
    }
}

/// Serves requests on one connection until it closes, idles, or a
/// response cannot be followed by another.
async fn serve_requests<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    mut io: BufReader<S>,
    tunnel: Option<(String, u16)>,
    mut first: Option<Head>,
) {
    loop {
        let head = match first.take() {
            Some(head) => head,
            None => match read_head(&mut io, &shared.limits).await {
                Ok(Some(head)) => head,
                Ok(None) => return,
                Err(reason) => {
                    let _ = answer(io.get_mut(), 400, &reason).await;
                    return;
                }
            },
        };
        match serve_one(shared, &mut io, &head, tunnel.as_ref()).await {
            Ok(true) if !head.says_close() => continue,
            _ => {
                let _ = io.get_mut().shutdown().await;
                return;
            }
        }
    }
}

/// One request: refused, or fetched by custody and answered with the
/// origin's bytes. `Ok(true)` when the connection can carry another.
async fn serve_one<S: AsyncRead + AsyncWrite + Unpin>(
    shared: &Shared,
    io: &mut BufReader<S>,
    head: &Head,
    tunnel: Option<&(String, u16)>,
) -> std::io::Result<bool> {
    let url = match request_url(head, tunnel) {
        Ok(url) => url,
        Err(reason) => {
            shared.refuse(&head.target, &reason);
            answer(io.get_mut(), 400, &reason).await?;
            return Ok(false);
        }
    };
    if let Some(upgrade) = head.header("upgrade") {
        let reason = format!("{upgrade} is not recorded (only HTTP/1.1 exchanges are)");
        shared.refuse(url.as_str(), &reason);
        answer(io.get_mut(), 501, &reason).await?;
        return Ok(false);
    }
    let body = match read_body(io, head, &shared.limits).await {
        Ok(body) => body,
        Err(reason) => {
            shared.refuse(url.as_str(), &reason);
            answer(io.get_mut(), 413, &reason).await?;
            return Ok(false);
        }
    };
    if !shared.take_exchange() {
        let reason = format!(
            "the capture already holds {} exchanges (max_resources)",
            shared.limits.max_exchanges
        );
        shared.refuse(url.as_str(), &reason);
        answer(io.get_mut(), 503, &reason).await?;
        return Ok(false);
    }
    let forward = Forward {
        method: head.method.clone(),
        headers: head.headers.clone(),
        body,
    };
    use std::sync::atomic::Ordering;
    shared.in_flight.fetch_add(1, Ordering::SeqCst);
    let ex = shared.fetcher.forward(&url, &forward, &shared.budget).await;
    if let Ok(mut t) = shared.last_done.lock() {
        *t = tokio::time::Instant::now();
    }
    shared.in_flight.fetch_sub(1, Ordering::SeqCst);
    if head.method == "GET" {
        let seen = crate::capture::observe(&ex);
        if let (true, Ok(mut d)) = (seen.names_others(), shared.documents.lock()) {
            if d.1 + seen.text_len() <= MAX_DOCUMENTS {
                d.1 += seen.text_len();
                d.0.push(seen);
            }
        }
    }
    if let Ok(mut f) = shared.fetched.lock() {
        let mime = ex
            .response
            .as_ref()
            .and_then(|r| r.scan.head.as_ref())
            .and_then(|h| h.mime());
        f.push((url.to_string(), mime));
    }
    let reusable = relay(io.get_mut(), &ex).await;
    // The writer records the exchange whatever the browser made of it.
    let _ = shared.tx.send(ex).await;
    reusable
}

/// A request body of `Content-Length` bytes (browsers send no other kind
/// to a proxy); a chunked body is refused.
async fn read_body<S: AsyncRead + Unpin>(
    io: &mut BufReader<S>,
    head: &Head,
    limits: &ProxyLimits,
) -> Result<Bytes, String> {
    if head.header("transfer-encoding").is_some() {
        return Err("a request body without Content-Length is not recorded".into());
    }
    let len = match head.header("content-length") {
        None => return Ok(Bytes::new()),
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| format!("Content-Length {v:?} is not a number"))?,
    };
    if len > limits.max_request_body {
        return Err(format!(
            "a request body of {len} bytes is over the limit of {}",
            limits.max_request_body
        ));
    }
    let mut body = vec![0u8; len];
    match tokio::time::timeout(limits.idle, io.read_exact(&mut body)).await {
        Ok(Ok(_)) => Ok(Bytes::from(body)),
        Ok(Err(e)) => Err(format!("the request body ended early: {e}")),
        Err(_) => Err("the request body was not sent in time".into()),
    }
}

/// Sends the browser what the origin sent, read back from the exchange's
/// spool; a custody answer (502) when nothing came. `Ok(true)` when the
/// response was complete and framed, so the connection can carry another.
async fn relay<W: AsyncWrite + Unpin>(out: &mut W, ex: &Exchange) -> std::io::Result<bool> {
    let Some(response) = ex.response.as_ref().filter(|r| r.scan.head.is_some()) else {
        let reason = ex
            .error
            .as_ref()
            .map_or_else(|| "no response".to_string(), |e| e.to_string());
        answer(
            out,
            502,
            &format!("custody did not fetch {}: {reason}", ex.url),
        )
        .await?;
        return Ok(false);
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut at = 0u64;
    while at < response.raw_len {
        let want = buf.len().min((response.raw_len - at) as usize);
        // Positioned reads leave the file where the writer expects it.
        let n = response.raw.read_at(&mut buf[..want], at)?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n]).await?;
        at += n as u64;
    }
    out.flush().await?;
    let framed = response.scan.head.as_ref().is_some_and(|h| {
        h.header("content-length").is_some()
            || h.header("transfer-encoding")
                .is_some_and(|t| t.to_ascii_lowercase().contains("chunked"))
            || matches!(h.status, 204 | 304)
    });
    let closes = response.scan.head.as_ref().is_some_and(|h| {
        h.header("connection")
            .is_some_and(|c| c.to_ascii_lowercase().contains("close"))
    });
    Ok(framed
        && !closes
        && response.scan.complete
        && response.truncated.is_none()
        && ex.error.is_none()
        && response.scan.trailing_bytes == 0)
}

/// A response made by the proxy itself (never recorded as the origin's).
async fn answer<W: AsyncWrite + Unpin>(
    out: &mut W,
    status: u16,
    text: &str,
) -> std::io::Result<()> {
    let reason = match status {
        400 => "Bad Request",
        407 => "Proxy Authentication Required",
        413 => "Content Too Large",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        _ => "Service Unavailable",
    };
    let body = format!("{text}\n");
    let challenge = if status == 407 {
        "Proxy-Authenticate: Basic realm=\"custody capture\"\r\n"
    } else {
        ""
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\nX-Custody-Proxy: refused\r\n{challenge}\r\n",
        body.len()
    );
    out.write_all(head.as_bytes()).await?;
    out.write_all(body.as_bytes()).await?;
    out.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(target: &str) -> Head {
        Head {
            method: "GET".into(),
            target: target.into(),
            headers: Vec::new(),
        }
    }

    #[tokio::test]
    async fn a_request_head_without_end_is_refused_at_its_limit() {
        let limits = ProxyLimits {
            max_request_head: 1024,
            ..ProxyLimits::default()
        };
        let endless = vec![b'a'; 1 << 20];
        let mut io = BufReader::new(&endless[..]);
        let err = read_head(&mut io, &limits).await.err().unwrap();
        assert!(err.contains("too large"), "{err}");
        let many_lines = b"GET http://a.test/ HTTP/1.1\r\n".repeat(100);
        let mut io = BufReader::new(&many_lines[..]);
        assert!(read_head(&mut io, &limits).await.is_err());
        let good = b"\r\nGET http://a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n";
        let mut io = BufReader::new(&good[..]);
        let head = read_head(&mut io, &limits).await.unwrap().unwrap();
        assert_eq!(
            (head.method.as_str(), head.target.as_str()),
            ("GET", "http://a.test/")
        );
        assert_eq!(head.header("HOST").as_deref(), Some("a.test"));
    }

    #[test]
    fn request_urls_come_from_the_tunnel_or_the_absolute_form() {
        assert_eq!(
            authority("example.org:443"),
            Some(("example.org".into(), 443))
        );
        assert_eq!(authority("[::1]:8443"), Some(("::1".into(), 8443)));
        assert_eq!(authority("example.org"), None);
        let t = ("aleppo-news.test".to_string(), 443);
        assert_eq!(
            request_url(&head("/2016/?a=1"), Some(&t)).unwrap().as_str(),
            "https://aleppo-news.test/2016/?a=1"
        );
        let t6 = ("::1".to_string(), 8443);
        assert_eq!(
            request_url(&head("/x"), Some(&t6)).unwrap().as_str(),
            "https://[::1]:8443/x"
        );
        assert!(request_url(&head("http://a.test/"), Some(&t)).is_err());
        assert_eq!(
            request_url(&head("http://a.test/p"), None)
                .unwrap()
                .as_str(),
            "http://a.test/p"
        );
        assert!(request_url(&head("/p"), None).is_err());
        assert!(request_url(&head("ftp://a.test/"), None).is_err());
    }
}
