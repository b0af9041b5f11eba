//! A small client of the Chrome DevTools protocol over its WebSocket.
//!
//! Custody needs a handful of commands (contexts, targets, navigation,
//! evaluation, screenshots, printing) and their events, so it speaks the
//! protocol itself: JSON messages with an `id` (answered once) or a
//! `method` (events), over a minimal RFC 6455 client (masked frames out,
//! unmasked frames in, fragments joined, pings answered, every message
//! bounded). ARCHITECTURE.md says why not `chromiumoxide`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};

/// Largest message accepted (a full-page screenshot of a long page,
/// base64, is tens of MiB).
pub const MAX_MESSAGE: usize = 256 << 20;

/// Events kept for a slow reader before the oldest are dropped.
const EVENT_BUFFER: usize = 4096;

#[derive(Debug, Clone, thiserror::Error)]
pub enum CdpError {
    #[error("the DevTools connection failed: {0}")]
    Connection(String),
    #[error("the browser did not answer {method} within {secs} s")]
    Timeout { method: String, secs: u64 },
    #[error("{method} failed: {message}")]
    Command { method: String, message: String },
    #[error("the browser closed the DevTools connection")]
    Closed,
}

/// An event: its method, parameters and the session it came from.
#[derive(Clone, Debug)]
pub struct Event {
    pub method: String,
    pub params: Value,
    pub session: Option<String>,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, CdpError>>>>>;

/// Sessions whose every event is also delivered to a queue of their own,
/// never dropped (what a page's requests wait on must not be lost to a
/// slow reader of the shared events).
type Routes = Arc<Mutex<HashMap<String, mpsc::UnboundedSender<Event>>>>;

/// One DevTools connection (to the browser; pages are flattened sessions
/// of it).
pub struct Cdp {
    out: mpsc::Sender<Vec<u8>>,
    pending: Pending,
    events: broadcast::Sender<Event>,
    routes: Routes,
    next: AtomicU64,
    reader: tokio::task::JoinHandle<()>,
    writer: tokio::task::JoinHandle<()>,
}

impl Drop for Cdp {
    fn drop(&mut self) {
        self.reader.abort();
        self.writer.abort();
    }
}

impl Cdp {
    /// Opens `ws://127.0.0.1:PORT/devtools/browser/...`.
    pub async fn connect(ws_url: &str) -> Result<Cdp, CdpError> {
        let bad = |m: &str| CdpError::Connection(format!("{ws_url}: {m}"));
        let rest = ws_url
            .strip_prefix("ws://")
            .ok_or_else(|| bad("not a ws:// URL"))?;
        let (authority, path) = rest.split_once('/').ok_or_else(|| bad("no path"))?;
        let tcp = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(authority))
            .await
            .map_err(|_| bad("no connection in 10 s"))?
            .map_err(|e| bad(&e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let (read, mut write) = tcp.into_split();
        let mut read = BufReader::new(read);
        let key = base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 16]>());
        let request = format!(
            "GET /{path} HTTP/1.1\r\nHost: {authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        write
            .write_all(request.as_bytes())
            .await
            .map_err(|e| bad(&e.to_string()))?;
        let head = tokio::time::timeout(Duration::from_secs(10), read_head(&mut read))
            .await
            .map_err(|_| bad("no handshake answer in 10 s"))??;
        if !head.starts_with("HTTP/1.1 101") {
            return Err(bad(&format!(
                "not upgraded: {}",
                head.lines().next().unwrap_or("")
            )));
        }
        let accept = {
            use sha1::Digest;
            let mut h = sha1::Sha1::new();
            h.update(key.as_bytes());
            h.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
            base64::engine::general_purpose::STANDARD.encode(h.finalize())
        };
        let accepted = head.lines().any(|l| {
            l.split_once(':').is_some_and(|(n, v)| {
                n.trim().eq_ignore_ascii_case("sec-websocket-accept") && v.trim() == accept
            })
        });
        if !accepted {
            return Err(bad("the handshake's Sec-WebSocket-Accept does not match"));
        }
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let routes: Routes = Arc::default();
        let (out, out_rx) = mpsc::channel::<Vec<u8>>(64);
        let writer = tokio::spawn(write_loop(write, out_rx));
        let reader = tokio::spawn(read_loop(
            read,
            pending.clone(),
            (events.clone(), routes.clone()),
            out.clone(),
        ));
        Ok(Cdp {
            out,
            pending,
            events,
            routes,
            next: AtomicU64::new(1),
            reader,
            writer,
        })
    }

    /// Events from now on.
    pub fn events(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Every event of `session` from now on, none dropped, until the
    /// receiver is dropped.
    pub fn session_events(&self, session: &str) -> mpsc::UnboundedReceiver<Event> {
        let (tx, rx) = mpsc::unbounded_channel();
        if let Ok(mut r) = self.routes.lock() {
            r.insert(session.to_string(), tx);
        }
        rx
    }

    /// Stops queueing `session`'s events.
    pub fn forget_session(&self, session: &str) {
        if let Ok(mut r) = self.routes.lock() {
            r.remove(session);
        }
    }

    /// Sends `method` to `session` without waiting for its answer (which
    /// is read and dropped).
    pub async fn send(&self, session: &str, method: &str, params: Value) -> Result<(), CdpError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let msg = json!({"id": id, "method": method, "params": params, "sessionId": session});
        self.out
            .send(frame(0x1, msg.to_string().as_bytes()))
            .await
            .map_err(|_| CdpError::Closed)
    }

    /// Sends `method` (to `session`, or the browser) and waits up to
    /// `wait` for its answer.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        wait: Duration,
    ) -> Result<Value, CdpError> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let mut msg = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            msg["sessionId"] = json!(s);
        }
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id, tx);
        }
        let frame = frame(0x1, msg.to_string().as_bytes());
        if self.out.send(frame).await.is_err() {
            self.forget(id);
            return Err(CdpError::Closed);
        }
        let answer = tokio::time::timeout(wait, rx).await;
        self.forget(id);
        match answer {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(CdpError::Command { message, .. }))) => Err(CdpError::Command {
                method: method.to_string(),
                message,
            }),
            Ok(Ok(Err(e))) => Err(e),
            Ok(Err(_)) => Err(CdpError::Closed),
            Err(_) => Err(CdpError::Timeout {
                method: method.to_string(),
                secs: wait.as_secs(),
            }),
        }
    }

    fn forget(&self, id: u64) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(&id);
        }
    }

    /// Whether the connection is still open.
    pub fn is_open(&self) -> bool {
        !self.reader.is_finished()
    }
}

/// The HTTP head of the handshake answer (at most 16 KiB).
async fn read_head(read: &mut BufReader<OwnedReadHalf>) -> Result<String, CdpError> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let room = 16 * 1024 - head.len().min(16 * 1024);
        if room == 0 {
            return Err(CdpError::Connection("handshake answer too long".into()));
        }
        let n = (&mut *read)
            .take(room as u64)
            .read_until(b'\n', &mut head)
            .await
            .map_err(|e| CdpError::Connection(e.to_string()))?;
        if n == 0 {
            return Err(CdpError::Closed);
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}

/// A client frame: FIN, `opcode`, masked with a fresh key (RFC 6455 5.3).
fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 14);
    f.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n if n <= u16::MAX as usize => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(0x80 | 127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    let mask: [u8; 4] = rand::random();
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

async fn write_loop(mut write: OwnedWriteHalf, mut rx: mpsc::Receiver<Vec<u8>>) {
    while let Some(f) = rx.recv().await {
        if write.write_all(&f).await.is_err() {
            return;
        }
    }
}

/// One whole message from the browser: `Ok(None)` at the end.
async fn read_message(
    read: &mut BufReader<OwnedReadHalf>,
    out: &mpsc::Sender<Vec<u8>>,
) -> Result<Option<Vec<u8>>, CdpError> {
    let io = |e: std::io::Error| CdpError::Connection(e.to_string());
    let mut message = Vec::new();
    loop {
        let mut h = [0u8; 2];
        if read.read_exact(&mut h).await.is_err() {
            return Ok(None);
        }
        let (fin, opcode) = (h[0] & 0x80 != 0, h[0] & 0x0f);
        let masked = h[1] & 0x80 != 0;
        let len = match h[1] & 0x7f {
            126 => read.read_u16().await.map_err(io)? as u64,
            127 => read.read_u64().await.map_err(io)?,
            n => n as u64,
        };
        if message.len() as u64 + len > MAX_MESSAGE as u64 {
            return Err(CdpError::Connection(format!(
                "a message over {MAX_MESSAGE} bytes"
            )));
        }
        let mut mask = [0u8; 4];
        if masked {
            read.read_exact(&mut mask).await.map_err(io)?;
        }
        let mut payload = vec![0u8; len as usize];
        read.read_exact(&mut payload).await.map_err(io)?;
        if masked {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        match opcode {
            0x8 => return Ok(None),
            0x9 => {
                let _ = out.send(frame(0xA, &payload)).await;
            }
            0xA => {}
            0x0..=0x2 => {
                message.extend_from_slice(&payload);
                if fin {
                    return Ok(Some(message));
                }
            }
            other => {
                return Err(CdpError::Connection(format!("unknown opcode {other}")));
            }
        }
    }
}

async fn read_loop(
    mut read: BufReader<OwnedReadHalf>,
    pending: Pending,
    (events, routes): (broadcast::Sender<Event>, Routes),
    out: mpsc::Sender<Vec<u8>>,
) {
    loop {
        let message = match read_message(&mut read, &out).await {
            Ok(Some(m)) => m,
            Ok(None) | Err(_) => break,
        };
        let Ok(v) = serde_json::from_slice::<Value>(&message) else {
            continue;
        };
        if let Some(id) = v["id"].as_u64() {
            let answer = match v.get("error") {
                Some(e) => Err(CdpError::Command {
                    method: String::new(),
                    message: e["message"].as_str().unwrap_or("error").to_string(),
                }),
                None => Ok(v.get("result").cloned().unwrap_or(Value::Null)),
            };
            let waiting = pending.lock().ok().and_then(|mut p| p.remove(&id));
            if let Some(tx) = waiting {
                let _ = tx.send(answer);
            }
        } else if let Some(method) = v["method"].as_str() {
            let event = Event {
                method: method.to_string(),
                params: v.get("params").cloned().unwrap_or(Value::Null),
                session: v["sessionId"].as_str().map(str::to_string),
            };
            if let (Some(session), Ok(mut r)) = (&event.session, routes.lock()) {
                if let Some(tx) = r.get(session) {
                    if tx.send(event.clone()).is_err() {
                        r.remove(session);
                    }
                }
            }
            let _ = events.send(event);
        }
    }
    // Whoever still waits learns the connection is gone.
    if let Ok(mut p) = pending.lock() {
        for (_, tx) in p.drain() {
            let _ = tx.send(Err(CdpError::Closed));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_are_masked_and_sized_as_rfc_6455_says() {
        for len in [0usize, 125, 126, 65_535, 65_536] {
            let payload = vec![b'x'; len];
            let f = frame(0x1, &payload);
            assert_eq!(f[0], 0x81);
            assert!(f[1] & 0x80 != 0, "masked");
            let (header, mask_at) = match len {
                n if n < 126 => (n, 2),
                n if n <= 65_535 => {
                    assert_eq!(f[1] & 0x7f, 126);
                    (u16::from_be_bytes([f[2], f[3]]) as usize, 4)
                }
                _ => {
                    assert_eq!(f[1] & 0x7f, 127);
                    (
                        u64::from_be_bytes(f[2..10].try_into().unwrap()) as usize,
                        10,
                    )
                }
            };
            assert_eq!(header, len);
            let mask = &f[mask_at..mask_at + 4];
            let unmasked: Vec<u8> = f[mask_at + 4..]
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ mask[i % 4])
                .collect();
            assert_eq!(unmasked, payload);
        }
    }
}
