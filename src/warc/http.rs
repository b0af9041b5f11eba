//! A streaming scanner for HTTP/1.x responses as they were received.
//!
//! The WARC payload digest is defined over the entity body with the
//! transfer-encoding removed and the content-encoding kept. The scanner takes
//! the raw bytes of an exchange in whatever pieces they arrive, parses the
//! head, removes chunked framing, and hashes the payload, without holding the
//! body in memory. Capture and verification both use it, so the digest written
//! at capture time is exactly the digest a reader recomputes from the stored
//! bytes.

use sha2::Digest;

use crate::model::Sha256;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HttpParseError {
    #[error("response head is longer than {0} bytes")]
    HeadTooLong(usize),
    #[error("response head has more than {0} header fields")]
    TooManyHeaders(usize),
    #[error("not an HTTP response: {0}")]
    Malformed(String),
    #[error("invalid chunked framing: {0}")]
    BadChunk(&'static str),
}

/// The parsed status line and header fields of a response, in received order
/// and case.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl ResponseHead {
    /// The first value of a header, compared case-insensitively, as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
    }

    /// Every value of a header joined with commas (for list-valued fields).
    fn header_list(&self, name: &str) -> String {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).trim().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The media type without parameters, lowercased: `text/html`.
    pub fn mime(&self) -> Option<String> {
        let ct = self.header("content-type")?;
        let mime = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        (!mime.is_empty()).then_some(mime)
    }

    pub fn content_encoding(&self) -> Option<String> {
        let ce = self.header_list("content-encoding").to_ascii_lowercase();
        let ce = ce.trim();
        (!ce.is_empty() && ce != "identity").then(|| ce.to_string())
    }
}

#[derive(Debug)]
enum Body {
    /// No body (HEAD, 204, 304).
    Empty,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

#[derive(Debug)]
enum Chunk {
    Size {
        value: u64,
        digits: usize,
        in_ext: bool,
    },
    SizeLf {
        value: u64,
        digits: usize,
    },
    Data(u64),
    DataCr,
    DataLf,
    Trailer {
        line_len: usize,
    },
    Done,
}

/// Feeds on raw response bytes; see the module documentation.
pub struct ResponseScanner {
    max_head: usize,
    max_headers: usize,
    head_only: bool,
    head_buf: Vec<u8>,
    head: Option<ResponseHead>,
    body: Body,
    hasher: sha2::Sha256,
    payload_len: u64,
    /// Bytes received after the message ended (ignored for the payload).
    trailing: u64,
    /// Bytes of response heads (interim ones included) before the body.
    head_bytes: u64,
    /// For a chunked body: every byte after the head, framing included
    /// (the other reading of a payload digest, see [`ScanResult`]).
    framed: Option<sha2::Sha256>,
    /// SHA-1 of both readings, when asked for ([`ResponseScanner::with_sha1`]).
    sha1: Option<Sha1Readings>,
}

struct Sha1Readings {
    payload: sha1::Sha1,
    framed: sha1::Sha1,
}

/// SHA-1 of a payload, read both ways: de-chunked (WARC 1.1) and as framed
/// (the same as de-chunked when the body was not chunked).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sha1Pair {
    pub payload: [u8; 20],
    pub framed: [u8; 20],
}

/// What the scanner learnt from a whole (or cut-short) response.
#[derive(Clone, Debug)]
pub struct ScanResult {
    pub head: Option<ResponseHead>,
    pub payload_sha256: Sha256,
    pub payload_len: u64,
    /// The message ended as its framing says (length reached, last chunk
    /// read, or connection closed for a close-delimited body).
    pub complete: bool,
    pub trailing_bytes: u64,
    /// Length of the response head(s) at the start of the raw bytes.
    pub head_len: u64,
    /// For a chunked body, SHA-256 of the bytes after the head as they
    /// were framed. WARC 1.1 (6.3.2) defines the payload digest over the
    /// de-chunked body (`payload_sha256`); some tools (warcio check 1.8)
    /// hash the framing. Both readings are kept so a verifier can say so.
    pub framed_sha256: Option<Sha256>,
    /// Both readings in SHA-1, when asked for: what other tools (wget,
    /// warcio, Heritrix) write.
    pub sha1: Option<Sha1Pair>,
}

impl ResponseScanner {
    /// `head_only` is true for responses to HEAD requests, which have no body.
    pub fn new(max_head: usize, max_headers: usize, head_only: bool) -> Self {
        ResponseScanner {
            max_head,
            max_headers,
            head_only,
            head_buf: Vec::new(),
            head: None,
            body: Body::Empty,
            hasher: sha2::Sha256::new(),
            payload_len: 0,
            trailing: 0,
            head_bytes: 0,
            framed: None,
            sha1: None,
        }
    }

    /// Also computes the payload's SHA-1, both readings (for records
    /// another tool wrote with SHA-1 digests).
    pub fn with_sha1(mut self) -> Self {
        use sha1::Digest;
        self.sha1 = Some(Sha1Readings {
            payload: sha1::Sha1::new(),
            framed: sha1::Sha1::new(),
        });
        self
    }

    pub fn head(&self) -> Option<&ResponseHead> {
        self.head.as_ref()
    }

    /// Feeds received bytes. `sink` is given each piece of payload (framing
    /// removed) as it is found.
    pub fn feed(
        &mut self,
        mut data: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<(), HttpParseError> {
        while !data.is_empty() && self.head.is_none() {
            data = self.feed_head(data)?;
        }
        if let Some(framed) = self.framed.as_mut() {
            framed.update(data);
        }
        if let Some(s) = self.sha1.as_mut() {
            sha1::Digest::update(&mut s.framed, data);
        }
        while !data.is_empty() {
            data = self.feed_body(data, sink)?;
        }
        Ok(())
    }

    fn feed_head<'a>(&mut self, data: &'a [u8]) -> Result<&'a [u8], HttpParseError> {
        let already = self.head_buf.len();
        let room = (self.max_head + 4).saturating_sub(already);
        let take = data.len().min(room);
        self.head_buf.extend_from_slice(&data[..take]);
        let Some(end) = find_head_end(&self.head_buf) else {
            if self.head_buf.len() > self.max_head {
                return Err(HttpParseError::HeadTooLong(self.max_head));
            }
            let start = &self.head_buf[..self.head_buf.len().min(5)];
            if !b"HTTP/".starts_with(start) {
                return Err(HttpParseError::Malformed(
                    "does not start with HTTP/".into(),
                ));
            }
            return Ok(&data[take..]);
        };
        if end > self.max_head {
            return Err(HttpParseError::HeadTooLong(self.max_head));
        }
        let head = parse_head(&self.head_buf[..end], self.max_headers)?;
        self.head_bytes += end as u64;
        // Bytes of `data` past the head belong to the body.
        let used_from_data = end - already;
        let rest = &data[used_from_data..];
        self.head_buf.clear();
        if (100..200).contains(&head.status) && head.status != 101 {
            // An interim response (100 Continue, 103 Early Hints): the final
            // response follows on the same connection.
            return Ok(rest);
        }
        self.body = body_kind(&head, self.head_only)?;
        if matches!(self.body, Body::Chunked(_)) {
            self.framed = Some(sha2::Sha256::new());
        }
        self.head = Some(head);
        Ok(rest)
    }

    fn feed_body<'a>(
        &mut self,
        data: &'a [u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<&'a [u8], HttpParseError> {
        match &mut self.body {
            Body::Empty => {
                self.trailing += data.len() as u64;
                Ok(&[])
            }
            Body::UntilClose => {
                self.payload(data, sink);
                Ok(&[])
            }
            Body::Length(remaining) => {
                let n = (*remaining).min(data.len() as u64) as usize;
                *remaining -= n as u64;
                if *remaining == 0 {
                    self.body = Body::Empty;
                }
                self.payload(&data[..n], sink);
                Ok(&data[n..])
            }
            Body::Chunked(state) => {
                let mut i = 0;
                while i < data.len() {
                    let b = data[i];
                    match state {
                        Chunk::Size {
                            value,
                            digits,
                            in_ext,
                        } => {
                            i += 1;
                            match b {
                                b'\r' => {
                                    *state = Chunk::SizeLf {
                                        value: *value,
                                        digits: *digits,
                                    }
                                }
                                b'\n' => *state = end_of_size(*value, *digits)?,
                                _ if *in_ext => {}
                                b';' | b' ' | b'\t' => *in_ext = true,
                                _ => {
                                    let d = (b as char)
                                        .to_digit(16)
                                        .ok_or(HttpParseError::BadChunk("chunk size is not hex"))?;
                                    if *digits >= 15 {
                                        return Err(HttpParseError::BadChunk(
                                            "chunk size too large",
                                        ));
                                    }
                                    *value = *value * 16 + d as u64;
                                    *digits += 1;
                                }
                            }
                        }
                        Chunk::SizeLf { value, digits } => {
                            if b != b'\n' {
                                return Err(HttpParseError::BadChunk(
                                    "chunk size line not ended by CRLF",
                                ));
                            }
                            i += 1;
                            *state = end_of_size(*value, *digits)?;
                        }
                        Chunk::Data(remaining) => {
                            let n = (*remaining).min((data.len() - i) as u64) as usize;
                            *remaining -= n as u64;
                            let piece = &data[i..i + n];
                            i += n;
                            if *remaining == 0 {
                                *state = Chunk::DataCr;
                            }
                            self.hasher.update(piece);
                            if let Some(s) = self.sha1.as_mut() {
                                sha1::Digest::update(&mut s.payload, piece);
                            }
                            self.payload_len += piece.len() as u64;
                            sink(piece);
                        }
                        Chunk::DataCr => {
                            i += 1;
                            *state = match b {
                                b'\r' => Chunk::DataLf,
                                b'\n' => Chunk::Size {
                                    value: 0,
                                    digits: 0,
                                    in_ext: false,
                                },
                                _ => {
                                    return Err(HttpParseError::BadChunk(
                                        "chunk data not followed by CRLF",
                                    ))
                                }
                            };
                        }
                        Chunk::DataLf => {
                            i += 1;
                            if b != b'\n' {
                                return Err(HttpParseError::BadChunk(
                                    "chunk data not followed by CRLF",
                                ));
                            }
                            *state = Chunk::Size {
                                value: 0,
                                digits: 0,
                                in_ext: false,
                            };
                        }
                        Chunk::Trailer { line_len } => {
                            i += 1;
                            match b {
                                b'\r' => {}
                                b'\n' if *line_len == 0 => *state = Chunk::Done,
                                b'\n' => *line_len = 0,
                                _ => *line_len += 1,
                            }
                        }
                        Chunk::Done => {
                            self.trailing += (data.len() - i) as u64;
                            return Ok(&[]);
                        }
                    }
                }
                Ok(&[])
            }
        }
    }

    fn payload(&mut self, piece: &[u8], sink: &mut dyn FnMut(&[u8])) {
        self.hasher.update(piece);
        if let Some(s) = self.sha1.as_mut() {
            sha1::Digest::update(&mut s.payload, piece);
        }
        self.payload_len += piece.len() as u64;
        sink(piece);
    }

    /// Ends the scan once the connection has ended (which completes a
    /// close-delimited body).
    pub fn finish(self) -> ScanResult {
        let complete = self.head.is_some()
            && match &self.body {
                Body::Empty => true,
                Body::UntilClose => true,
                Body::Length(r) => *r == 0,
                Body::Chunked(c) => matches!(c, Chunk::Done),
            };
        ScanResult {
            head: self.head,
            payload_sha256: Sha256::from_hasher(self.hasher),
            payload_len: self.payload_len,
            complete,
            trailing_bytes: self.trailing,
            head_len: self.head_bytes,
            framed_sha256: self.framed.map(Sha256::from_hasher),
            sha1: self.sha1.map(|s| Sha1Pair {
                payload: sha1::Digest::finalize(s.payload).into(),
                framed: sha1::Digest::finalize(s.framed).into(),
            }),
        }
    }
}

fn end_of_size(value: u64, digits: usize) -> Result<Chunk, HttpParseError> {
    if digits == 0 {
        return Err(HttpParseError::BadChunk("missing chunk size"));
    }
    Ok(if value == 0 {
        Chunk::Trailer { line_len: 0 }
    } else {
        Chunk::Data(value)
    })
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    // The head ends at the first empty line; accept bare LF as servers in the
    // wild send it.
    let mut i = 0;
    while i < buf.len() {
        if buf[i] == b'\n' {
            if buf.get(i + 1) == Some(&b'\n') {
                return Some(i + 2);
            }
            if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') {
                return Some(i + 3);
            }
        }
        i += 1;
    }
    None
}

fn parse_head(buf: &[u8], max_headers: usize) -> Result<ResponseHead, HttpParseError> {
    let mut headers = vec![httparse::EMPTY_HEADER; max_headers];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => {
            return Err(HttpParseError::Malformed("incomplete response head".into()))
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpParseError::TooManyHeaders(max_headers))
        }
        Err(e) => return Err(HttpParseError::Malformed(e.to_string())),
    }
    Ok(ResponseHead {
        status: response.code.unwrap_or(0),
        reason: response.reason.unwrap_or("").to_string(),
        headers: response
            .headers
            .iter()
            .map(|h| (h.name.to_string(), h.value.to_vec()))
            .collect(),
    })
}

fn body_kind(head: &ResponseHead, head_only: bool) -> Result<Body, HttpParseError> {
    if head_only || head.status == 204 || head.status == 304 || head.status < 200 {
        return Ok(Body::Empty);
    }
    let te = head.header_list("transfer-encoding").to_ascii_lowercase();
    if !te.trim().is_empty() {
        let last = te.rsplit(',').next().unwrap_or("").trim();
        return Ok(if last == "chunked" {
            Body::Chunked(Chunk::Size {
                value: 0,
                digits: 0,
                in_ext: false,
            })
        } else {
            Body::UntilClose
        });
    }
    if let Some(cl) = head.header("content-length") {
        // Repeated identical values ("10, 10") are allowed; differing ones are not.
        let mut values = cl.split(',').map(|v| v.trim().parse::<u64>());
        let first = values
            .next()
            .and_then(|v| v.ok())
            .ok_or_else(|| HttpParseError::Malformed(format!("bad Content-Length {cl:?}")))?;
        if values.any(|v| v.ok() != Some(first)) {
            return Err(HttpParseError::Malformed(format!(
                "conflicting Content-Length {cl:?}"
            )));
        }
        return Ok(if first == 0 {
            Body::Empty
        } else {
            Body::Length(first)
        });
    }
    Ok(Body::UntilClose)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_in_pieces(raw: &[u8], piece: usize) -> (ScanResult, Vec<u8>) {
        let mut scanner = ResponseScanner::new(64 * 1024, 100, false);
        let mut payload = Vec::new();
        for part in raw.chunks(piece) {
            scanner
                .feed(part, &mut |p| payload.extend_from_slice(p))
                .unwrap();
        }
        (scanner.finish(), payload)
    }

    #[test]
    fn chunked_framing_is_removed_whatever_the_read_sizes() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nTransfer-Encoding: chunked\r\n\r\n\
            1a;ext=1\r\nnearly 25 civilians were k\r\n7\r\nilled.\n\r\n0\r\nX-Trailer: 1\r\n\r\n";
        for piece in [1, 2, 3, 7, 64, 4096] {
            let (result, payload) = scan_in_pieces(raw, piece);
            assert_eq!(payload, b"nearly 25 civilians were killed.\n");
            assert!(result.complete, "piece size {piece}");
            assert_eq!(result.payload_sha256, Sha256::of(&payload));
            assert_eq!(
                result.head.as_ref().unwrap().mime().as_deref(),
                Some("text/html")
            );
        }
    }

    #[test]
    fn content_length_body_stops_at_length_and_counts_trailing_bytes() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA";
        let (result, payload) = scan_in_pieces(raw, 3);
        assert_eq!(payload, b"hello");
        assert!(result.complete);
        assert_eq!(result.trailing_bytes, 5);
    }

    #[test]
    fn interim_100_continue_is_skipped() {
        let raw =
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno";
        let (result, payload) = scan_in_pieces(raw, 5);
        assert_eq!(result.head.unwrap().status, 404);
        assert_eq!(payload, b"no");
    }

    #[test]
    fn truncated_length_body_is_incomplete() {
        let (result, _) = scan_in_pieces(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\nshort", 4);
        assert!(!result.complete);
        assert_eq!(result.payload_len, 5);
    }

    #[test]
    fn garbage_is_refused() {
        let mut scanner = ResponseScanner::new(1024, 100, false);
        assert!(matches!(
            scanner.feed(b"SSH-2.0-OpenSSH_9.2\r\n", &mut |_| {}),
            Err(HttpParseError::Malformed(_))
        ));
        let mut scanner = ResponseScanner::new(1024, 100, false);
        let err = scanner
            .feed(
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                &mut |_| {},
            )
            .unwrap_err();
        assert_eq!(err, HttpParseError::BadChunk("chunk size is not hex"));
        let mut scanner = ResponseScanner::new(64, 100, false);
        let long = format!("HTTP/1.1 200 OK\r\nX: {}\r\n\r\n", "a".repeat(200));
        assert_eq!(
            scanner.feed(long.as_bytes(), &mut |_| {}),
            Err(HttpParseError::HeadTooLong(64))
        );
    }
}
