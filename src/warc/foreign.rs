//! Reading WARC files other tools wrote, for import.
//!
//! custody's own reader ([`super::WarcFileReader`]) insists on one gzip
//! member per record, because it is also how custody finds a record by its
//! offset. Files made elsewhere may be compressed as a whole (`gzip
//! file.warc`), not compressed at all, or split into members anywhere.
//! This reader takes the uncompressed byte stream (the caller decodes it,
//! bounded) and yields one record at a time with its header bytes exactly
//! as they were, handing every byte of the record to a writer as it is
//! read: the import copies each record into an access copy (one gzip
//! member per record) without holding a block in memory.

use std::io::{self, BufRead, Read, Write};

use super::reader::{content_length, read_head, scan_block, BlockScan};
use super::{RecordHead, ScannedRecord, WarcError};

/// One record of a foreign file.
pub struct ForeignRecord {
    /// The record, with `offset` and `length` in the uncompressed stream.
    pub record: ScannedRecord,
    /// Whether the block was followed by `CRLF CRLF`, as WARC requires.
    /// When it was not, the copy handed to the writer ends with one
    /// anyway, and the caller records the problem.
    pub terminated: bool,
}

/// A record's header as read, before its block.
pub struct ForeignHead {
    pub head: RecordHead,
    /// The header's bytes exactly as they were (up to the blank line).
    pub raw: Vec<u8>,
    /// Where the record begins in the uncompressed stream.
    pub offset: u64,
}

/// Records from an uncompressed WARC stream.
pub struct ForeignReader<R> {
    inner: R,
    position: u64,
}

/// A `BufRead` that keeps what is consumed through it (the header bytes,
/// bounded by [`read_head`]'s limit) and counts it.
struct Tee<'a, R> {
    inner: &'a mut R,
    seen: Vec<u8>,
}

impl<R: BufRead> Read for Tee<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.seen.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl<R: BufRead> BufRead for Tee<'_, R> {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        self.inner.fill_buf()
    }

    fn consume(&mut self, amt: usize) {
        if let Ok(buf) = self.inner.fill_buf() {
            let n = amt.min(buf.len());
            self.seen.extend_from_slice(&buf[..n]);
        }
        self.inner.consume(amt);
    }
}

impl<R: BufRead> ForeignReader<R> {
    pub fn new(inner: R) -> Self {
        ForeignReader { inner, position: 0 }
    }

    /// How far into the uncompressed stream the reader is.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Reads the next record's header: parsed, and its bytes exactly as
    /// they were. `Ok(None)` at the end of the stream. An error means the
    /// stream cannot be followed past this point.
    pub fn next_head(&mut self) -> Result<Option<ForeignHead>, WarcError> {
        // Blank lines between records are tolerated (some writers add them).
        loop {
            let buf = self.inner.fill_buf()?;
            match buf.first() {
                None => return Ok(None),
                Some(b'\r' | b'\n') => {
                    self.inner.consume(1);
                    self.position += 1;
                }
                Some(_) => break,
            }
        }
        let offset = self.position;
        let at = |e: WarcError| WarcError::AtOffset {
            offset,
            source: Box::new(e),
        };
        let mut tee = Tee {
            inner: &mut self.inner,
            seen: Vec::new(),
        };
        let head = read_head(&mut tee).map_err(at)?;
        let raw = std::mem::take(&mut tee.seen);
        content_length(&head).map_err(at)?;
        self.position += raw.len() as u64;
        Ok(Some(ForeignHead { head, raw, offset }))
    }

    /// Up to `n` bytes of what follows (the start of the block after
    /// [`ForeignReader::next_head`]), as far as they are buffered already:
    /// a look at the payload's type before it is copied.
    pub fn peek(&mut self, n: usize) -> io::Result<&[u8]> {
        let buf = self.inner.fill_buf()?;
        Ok(&buf[..buf.len().min(n)])
    }

    /// Copies the block of the record `head` began (its header bytes
    /// first, then the block as it is read, then `CRLF CRLF`) to `out`,
    /// and its payload to `payload_sink`. An error means the stream ended
    /// or broke inside the block.
    pub fn copy_block(
        &mut self,
        head: ForeignHead,
        payload_sink: &mut dyn FnMut(&[u8]),
        out: &mut dyn Write,
    ) -> Result<ForeignRecord, WarcError> {
        let offset = head.offset;
        let at = |e: WarcError| WarcError::AtOffset {
            offset,
            source: Box::new(e),
        };
        out.write_all(&head.raw)?;
        let block = scan_block(&mut self.inner, &head.head, payload_sink, &mut |b| {
            out.write_all(b)
        })
        .map_err(at)?;
        self.position += block.len;
        let terminated = self.trailer()?;
        out.write_all(b"\r\n\r\n")?;
        let length = head.raw.len() as u64 + block.len + 4;
        Ok(ForeignRecord {
            record: scanned(head.head, offset, length, block),
            terminated,
        })
    }

    /// Consumes `CRLF CRLF` after a block; false (consuming nothing)
    /// when the bytes there are something else.
    fn trailer(&mut self) -> io::Result<bool> {
        let mut want: &[u8] = b"\r\n\r\n";
        while !want.is_empty() {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                return Ok(false);
            }
            let n = buf.len().min(want.len());
            if buf[..n] != want[..n] {
                return Ok(false);
            }
            if n < want.len() {
                // The terminator spans two buffers: take what matched (a
                // partial match that then fails leaves the stream past the
                // bytes that matched; the next header read says so).
                self.inner.consume(n);
                self.position += n as u64;
                want = &want[n..];
                continue;
            }
            self.inner.consume(n);
            self.position += n as u64;
            return Ok(true);
        }
        Ok(true)
    }
}

fn scanned(head: RecordHead, offset: u64, length: u64, block: BlockScan) -> ScannedRecord {
    ScannedRecord {
        head,
        offset,
        length,
        block_len: block.len,
        block_sha256: block.sha256,
        block_sha1: block.sha1,
        http: block.http,
        http_error: block.http_error.map(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &[u8] = b"WARC/1.0\r\nWARC-Type: resource\r\nWARC-Record-ID: <urn:uuid:a>\r\nWARC-Date: 2016-11-29T10:04:00Z\r\nWARC-Target-URI: http://a.example/\r\nContent-Length: 5\r\n\r\nhello\r\n\r\n";

    #[test]
    fn records_are_copied_byte_for_byte_and_blank_lines_between_them_skipped() {
        let mut stream = RECORD.to_vec();
        stream.extend_from_slice(b"\r\n");
        stream.extend_from_slice(RECORD);
        let mut reader = ForeignReader::new(&stream[..]);
        let mut out = Vec::new();
        let mut n = 0;
        while let Some(h) = reader.next_head().unwrap() {
            let r = reader.copy_block(h, &mut |_| {}, &mut out).unwrap();
            assert!(r.terminated);
            assert_eq!(r.record.head.warc_type(), "resource");
            n += 1;
        }
        assert_eq!(n, 2);
        assert_eq!(out, [RECORD, RECORD].concat());
    }

    #[test]
    fn a_missing_terminator_is_reported_and_ended_in_the_copy() {
        let stream = &RECORD[..RECORD.len() - 4];
        let mut reader = ForeignReader::new(stream);
        let mut out = Vec::new();
        let h = reader.next_head().unwrap().unwrap();
        let r = reader.copy_block(h, &mut |_| {}, &mut out).unwrap();
        assert!(!r.terminated);
        assert_eq!(out, RECORD);
        assert!(reader.next_head().unwrap().is_none());
    }
}
