//! Reading ZIP files other tools wrote (WACZ packages brought in with
//! `custody import`), bounded against hostile ones.
//!
//! [`super::zip::read_strict`] accepts only what custody writes. A package
//! from elsewhere may use deflate, data descriptors or ZIP64 fields, so
//! this reader takes any well-formed ZIP, but refuses, with the reason,
//! what could harm or mislead a reader: names that are not plain relative
//! paths (`..`, absolute, backslashes), a name used twice, entries whose
//! bytes overlap (how the smallest zip bombs are built), encryption,
//! methods other than stored and deflate, too many entries, and an entry
//! that inflates past its declared size or by more than [`MAX_RATIO`].

use std::io::{self, Read, Seek, SeekFrom};

/// Most entries a package may have.
pub const MAX_ENTRIES: usize = 100_000;
/// Most a deflated entry may expand (declared or actual), beyond 1 MiB.
pub const MAX_RATIO: u64 = 200;
const MAX_CENTRAL_DIRECTORY: u64 = 64 << 20;

/// One entry of a foreign ZIP.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// 0 (stored) or 8 (deflate).
    pub method: u16,
    pub crc32: u32,
    pub compressed: u64,
    pub size: u64,
    pub data_offset: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum UnzipError {
    #[error("{0}")]
    Refused(String),
    #[error("cannot read the file: {0}")]
    Io(#[from] io::Error),
}

fn refused<T>(why: impl Into<String>) -> Result<T, UnzipError> {
    Err(UnzipError::Refused(why.into()))
}

struct Le<'a>(&'a [u8]);

impl Le<'_> {
    fn u16(&self, at: usize) -> u16 {
        u16::from_le_bytes([self.0[at], self.0[at + 1]])
    }
    fn u32(&self, at: usize) -> u32 {
        u32::from_le_bytes(self.0[at..at + 4].try_into().expect("4 bytes"))
    }
    fn u64(&self, at: usize) -> u64 {
        u64::from_le_bytes(self.0[at..at + 8].try_into().expect("8 bytes"))
    }
}

/// Whether a member name is a plain relative path: no empty, `.` or `..`
/// segment, no leading `/`, no backslash, drive letter or control byte.
pub fn plain_name(name: &str) -> bool {
    let segments: Vec<&str> = name.split('/').collect();
    let (last, dirs) = segments.split_last().expect("split yields one");
    !name.is_empty()
        && !name.contains('\\')
        && !name.bytes().any(|b| b < 0x20 || b == 0x7f)
        && !name.contains(':')
        && dirs
            .iter()
            .all(|s| !s.is_empty() && *s != "." && *s != "..")
        && *last != "."
        && *last != ".."
        && !(last.is_empty() && dirs.is_empty())
}

/// The entries of a ZIP file, checked as the module says.
pub fn entries<R: Read + Seek>(file: &mut R) -> Result<Vec<Entry>, UnzipError> {
    let len = file.seek(SeekFrom::End(0))?;
    let tail_len = len.min(22 + 65_535 + 20);
    let mut tail = vec![0u8; tail_len as usize];
    file.seek(SeekFrom::Start(len - tail_len))?;
    file.read_exact(&mut tail)?;
    let Some(eocd) = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| tail[i..i + 4] == [0x50, 0x4b, 0x05, 0x06])
    else {
        return refused("no ZIP end record: not a ZIP file, or cut short");
    };
    let e = Le(&tail[eocd..]);
    let (mut count, mut cd_size, mut cd_offset) = (
        u64::from(e.u16(10)),
        u64::from(e.u32(12)),
        u64::from(e.u32(16)),
    );
    let eocd_at = len - tail_len + eocd as u64;
    // ZIP64: the locator sits just before the end record.
    if eocd >= 20 && tail[eocd - 20..eocd - 16] == [0x50, 0x4b, 0x06, 0x07] {
        let record_at = Le(&tail[eocd - 20..]).u64(8);
        let mut z = [0u8; 56];
        file.seek(SeekFrom::Start(record_at))?;
        file.read_exact(&mut z)
            .map_err(|_| UnzipError::Refused("the ZIP64 end record is missing".into()))?;
        if z[..4] != [0x50, 0x4b, 0x06, 0x06] {
            return refused("the ZIP64 end record is not where its locator says");
        }
        let z = Le(&z);
        (count, cd_size, cd_offset) = (z.u64(32), z.u64(40), z.u64(48));
    }
    if count > MAX_ENTRIES as u64 {
        return refused(format!(
            "the ZIP has {count} entries; custody imports packages of at most {MAX_ENTRIES}"
        ));
    }
    if cd_size > MAX_CENTRAL_DIRECTORY || cd_offset.saturating_add(cd_size) > eocd_at {
        return refused("the ZIP's central directory is not where its end record says");
    }
    let mut cd = vec![0u8; cd_size as usize];
    file.seek(SeekFrom::Start(cd_offset))?;
    file.read_exact(&mut cd)?;
    let mut out = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut at = 0usize;
    while out.len() < count as usize {
        if cd.len() < at + 46 || Le(&cd[at..]).u32(0) != 0x0201_4b50 {
            return refused(format!(
                "central directory entry {} is damaged",
                out.len() + 1
            ));
        }
        let c = Le(&cd[at..]);
        let (flags, method, crc32) = (c.u16(8), c.u16(10), c.u32(16));
        let (mut compressed, mut size) = (u64::from(c.u32(20)), u64::from(c.u32(24)));
        let (name_len, extra_len, comment_len) =
            (c.u16(28) as usize, c.u16(30) as usize, c.u16(32) as usize);
        let mut header_at = u64::from(c.u32(42));
        let end = at + 46 + name_len + extra_len + comment_len;
        if cd.len() < end {
            return refused(format!(
                "central directory entry {} is damaged",
                out.len() + 1
            ));
        }
        let name = String::from_utf8_lossy(&cd[at + 46..at + 46 + name_len]).into_owned();
        let mut extra = &cd[at + 46 + name_len..at + 46 + name_len + extra_len];
        while extra.len() >= 4 {
            let (id, n) = (Le(extra).u16(0), Le(extra).u16(2) as usize);
            let body = &extra[4..(4 + n).min(extra.len())];
            if id == 1 {
                let mut fields = body.chunks_exact(8).map(|b| Le(b).u64(0));
                if size == u64::from(u32::MAX) {
                    size = fields.next().unwrap_or(size);
                }
                if compressed == u64::from(u32::MAX) {
                    compressed = fields.next().unwrap_or(compressed);
                }
                if header_at == u64::from(u32::MAX) {
                    header_at = fields.next().unwrap_or(header_at);
                }
            }
            extra = &extra[(4 + n).min(extra.len())..];
        }
        at = end;
        if !plain_name(&name) {
            return refused(format!(
                "the ZIP entry {name:?} is not a plain relative path (it could be written outside the package)"
            ));
        }
        if !names.insert(name.to_lowercase()) {
            return refused(format!(
                "the ZIP entry name {name:?} appears twice (or twice in different case): readers would disagree on which is the package's"
            ));
        }
        if flags & 1 != 0 {
            return refused(format!("the ZIP entry {name:?} is encrypted"));
        }
        match method {
            0 if compressed != size => {
                return refused(format!("the stored ZIP entry {name:?} has two sizes"))
            }
            0 | 8 => {}
            m => return refused(format!("the ZIP entry {name:?} uses compression method {m}; custody reads stored and deflate")),
        }
        if method == 8 && size > compressed.saturating_mul(MAX_RATIO) + (1 << 20) {
            return refused(format!(
                "the ZIP entry {name:?} would inflate {compressed} bytes to {size}: refused as a zip bomb"
            ));
        }
        let data_offset = local_data(file, header_at, &name)?;
        if data_offset.saturating_add(compressed) > cd_offset {
            return refused(format!(
                "the ZIP entry {name:?} runs into the central directory"
            ));
        }
        out.push(Entry {
            name,
            method,
            crc32,
            compressed,
            size,
            data_offset,
        });
    }
    let mut spans: Vec<(u64, u64, &str)> = out
        .iter()
        .map(|e| (e.data_offset, e.data_offset + e.compressed, e.name.as_str()))
        .collect();
    spans.sort();
    for w in spans.windows(2) {
        if w[1].0 < w[0].1 {
            return refused(format!(
                "the ZIP entries {:?} and {:?} share bytes (how zip bombs are built)",
                w[0].2, w[1].2
            ));
        }
    }
    Ok(out)
}

/// Where an entry's data begins, from its local header (which must name
/// the same entry).
fn local_data<R: Read + Seek>(file: &mut R, at: u64, name: &str) -> Result<u64, UnzipError> {
    let mut h = [0u8; 30];
    file.seek(SeekFrom::Start(at))?;
    if file.read_exact(&mut h).is_err() || Le(&h).u32(0) != 0x0403_4b50 {
        return refused(format!("the local header of ZIP entry {name:?} is missing"));
    }
    let (n, x) = (Le(&h).u16(26) as u64, Le(&h).u16(28) as u64);
    let mut local_name = vec![0u8; n as usize];
    file.read_exact(&mut local_name)?;
    if local_name != name.as_bytes() {
        return refused(format!(
            "the local header of ZIP entry {name:?} names another entry"
        ));
    }
    Ok(at + 30 + n + x)
}

/// An entry's bytes, inflated when deflated: never more than its declared
/// size, and its CRC-32 checked at the end (an error if it differs).
pub fn open<'a, R: Read + Seek>(
    file: &'a mut R,
    entry: &Entry,
) -> Result<EntryReader<'a>, UnzipError> {
    file.seek(SeekFrom::Start(entry.data_offset))?;
    let raw = file.take(entry.compressed);
    let inner: Box<dyn Read + 'a> = match entry.method {
        8 => Box::new(flate2::read::DeflateDecoder::new(raw)),
        _ => Box::new(raw),
    };
    Ok(EntryReader {
        inner,
        crc: crc32fast::Hasher::new(),
        left: entry.size,
        expected_crc: entry.crc32,
        name: entry.name.clone(),
    })
}

/// The bytes of one entry (see [`open`]).
pub struct EntryReader<'a> {
    inner: Box<dyn Read + 'a>,
    crc: crc32fast::Hasher,
    left: u64,
    expected_crc: u32,
    name: String,
}

impl Read for EntryReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = buf
            .len()
            .min(self.left.saturating_add(1).min(usize::MAX as u64) as usize);
        let n = self.inner.read(&mut buf[..want])?;
        if n as u64 > self.left {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the ZIP entry {:?} inflates past its declared size",
                    self.name
                ),
            ));
        }
        self.left -= n as u64;
        self.crc.update(&buf[..n]);
        if n == 0 && want > 0 {
            if self.left > 0 {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "the ZIP entry {:?} ends before its declared size",
                        self.name
                    ),
                ));
            }
            if self.crc.clone().finalize() != self.expected_crc {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("the ZIP entry {:?} does not match its CRC-32", self.name),
                ));
            }
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_that_climb_out_or_are_absolute_are_not_plain() {
        for bad in [
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\\b",
            "C:/x",
            "",
            "a//b",
            "./a",
        ] {
            assert!(!super::plain_name(bad), "{bad:?}");
        }
        for good in ["archive/data.warc.gz", "datapackage.json", "a/b/c"] {
            assert!(super::plain_name(good), "{good:?}");
        }
    }
}
