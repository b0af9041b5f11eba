//! The ZIP container of a WACZ, written and read strictly.
//!
//! custody writes one exact form: every member stored (no compression, as
//! WACZ asks for WARCs so they can be read by range), ZIP64 fields always
//! present (a WARC may pass 4 GiB), UTF-8 names, fixed attributes, members
//! back to back, no comments. Because the form is fixed, the reader can
//! check every byte of a package: each header field is compared with the
//! value custody writes or with its twin (local header against central
//! directory), the members must tile the file with no gap, and each
//! member's CRC-32 is recomputed. A changed byte anywhere is found and named.

use std::io::{self, Read, Seek, SeekFrom, Write};

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const ZIP64_EOCD_SIG: u32 = 0x0606_4b50;
const ZIP64_LOCATOR_SIG: u32 = 0x0706_4b50;
const EOCD_SIG: u32 = 0x0605_4b50;
const VERSION_NEEDED: u16 = 45; // ZIP64
const VERSION_MADE_BY: u16 = 0x0300 | 45; // Unix
const FLAGS: u16 = 0x0800; // names are UTF-8
const EXTERNAL_ATTRS: u32 = 0o100644 << 16;
const LOCAL_EXTRA_LEN: u16 = 20;
const CENTRAL_EXTRA_LEN: u16 = 28;

/// Whether `name` is a member name custody writes: `/`-separated
/// components of ASCII letters, digits, `.`, `_` and `-`, none empty, `.`
/// or `..` (so no absolute paths, backslashes, control characters or
/// traversal, and no two spellings of one path).
fn canonical_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

/// A member as written: where it is and what it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// Offset of the member's data in the file.
    pub data_offset: u64,
    pub size: u64,
    pub crc32: u32,
    header_offset: u64,
}

/// Writes members one after another, then the central directory. It writes
/// what it is given; the packager gives it unique canonical names, and
/// [`read_strict`] refuses any other.
pub struct ZipWriter<W: Write> {
    out: W,
    written: u64,
    members: Vec<Member>,
    dos_time: u16,
    dos_date: u16,
}

impl<W: Write> ZipWriter<W> {
    pub fn new(out: W, time: chrono::DateTime<chrono::Utc>) -> Self {
        use chrono::{Datelike, Timelike};
        let year = (time.year().clamp(1980, 2107) - 1980) as u16;
        ZipWriter {
            out,
            written: 0,
            members: Vec::new(),
            dos_time: ((time.hour() as u16) << 11)
                | ((time.minute() as u16) << 5)
                | (time.second() as u16 / 2),
            dos_date: (year << 9) | ((time.month() as u16) << 5) | time.day() as u16,
        }
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Adds a member whose `size` bytes and CRC-32 are known; `data` must
    /// yield exactly them.
    pub fn add(
        &mut self,
        name: &str,
        size: u64,
        crc32: u32,
        data: &mut dyn Read,
    ) -> io::Result<()> {
        let header_offset = self.written;
        let mut h = Vec::with_capacity(30 + name.len() + LOCAL_EXTRA_LEN as usize);
        h.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        h.extend_from_slice(&VERSION_NEEDED.to_le_bytes());
        h.extend_from_slice(&FLAGS.to_le_bytes());
        h.extend_from_slice(&0u16.to_le_bytes()); // stored
        h.extend_from_slice(&self.dos_time.to_le_bytes());
        h.extend_from_slice(&self.dos_date.to_le_bytes());
        h.extend_from_slice(&crc32.to_le_bytes());
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&u32::MAX.to_le_bytes());
        h.extend_from_slice(&(name.len() as u16).to_le_bytes());
        h.extend_from_slice(&LOCAL_EXTRA_LEN.to_le_bytes());
        h.extend_from_slice(name.as_bytes());
        h.extend_from_slice(&1u16.to_le_bytes());
        h.extend_from_slice(&16u16.to_le_bytes());
        h.extend_from_slice(&size.to_le_bytes());
        h.extend_from_slice(&size.to_le_bytes());
        self.put(&h)?;
        let data_offset = self.written;
        let copied = io::copy(&mut data.take(size), &mut self.out)?;
        if copied != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("{name}: {copied} bytes where {size} were expected"),
            ));
        }
        self.written += size;
        self.members.push(Member {
            name: name.to_string(),
            data_offset,
            size,
            crc32,
            header_offset,
        });
        Ok(())
    }

    /// Adds a member held in memory.
    pub fn add_bytes(&mut self, name: &str, bytes: &[u8]) -> io::Result<()> {
        let crc = crc32fast::hash(bytes);
        self.add(name, bytes.len() as u64, crc, &mut &bytes[..])
    }

    /// Writes the central directory and the end records; returns the
    /// writer and the members.
    pub fn finish(mut self) -> io::Result<(W, Vec<Member>)> {
        let cd_offset = self.written;
        let members = std::mem::take(&mut self.members);
        for m in &members {
            let mut c = Vec::with_capacity(46 + m.name.len() + CENTRAL_EXTRA_LEN as usize);
            c.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
            c.extend_from_slice(&VERSION_MADE_BY.to_le_bytes());
            c.extend_from_slice(&VERSION_NEEDED.to_le_bytes());
            c.extend_from_slice(&FLAGS.to_le_bytes());
            c.extend_from_slice(&0u16.to_le_bytes());
            c.extend_from_slice(&self.dos_time.to_le_bytes());
            c.extend_from_slice(&self.dos_date.to_le_bytes());
            c.extend_from_slice(&m.crc32.to_le_bytes());
            c.extend_from_slice(&u32::MAX.to_le_bytes());
            c.extend_from_slice(&u32::MAX.to_le_bytes());
            c.extend_from_slice(&(m.name.len() as u16).to_le_bytes());
            c.extend_from_slice(&CENTRAL_EXTRA_LEN.to_le_bytes());
            c.extend_from_slice(&0u16.to_le_bytes()); // comment
            c.extend_from_slice(&0u16.to_le_bytes()); // disk
            c.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
            c.extend_from_slice(&EXTERNAL_ATTRS.to_le_bytes());
            c.extend_from_slice(&u32::MAX.to_le_bytes());
            c.extend_from_slice(m.name.as_bytes());
            c.extend_from_slice(&1u16.to_le_bytes());
            c.extend_from_slice(&24u16.to_le_bytes());
            c.extend_from_slice(&m.size.to_le_bytes());
            c.extend_from_slice(&m.size.to_le_bytes());
            c.extend_from_slice(&m.header_offset.to_le_bytes());
            self.put(&c)?;
        }
        let cd_size = self.written - cd_offset;
        let eocd64_offset = self.written;
        let n = members.len() as u64;
        let mut e = Vec::with_capacity(56 + 20 + 22);
        e.extend_from_slice(&ZIP64_EOCD_SIG.to_le_bytes());
        e.extend_from_slice(&44u64.to_le_bytes());
        e.extend_from_slice(&VERSION_MADE_BY.to_le_bytes());
        e.extend_from_slice(&VERSION_NEEDED.to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e.extend_from_slice(&n.to_le_bytes());
        e.extend_from_slice(&n.to_le_bytes());
        e.extend_from_slice(&cd_size.to_le_bytes());
        e.extend_from_slice(&cd_offset.to_le_bytes());
        e.extend_from_slice(&ZIP64_LOCATOR_SIG.to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e.extend_from_slice(&eocd64_offset.to_le_bytes());
        e.extend_from_slice(&1u32.to_le_bytes());
        e.extend_from_slice(&EOCD_SIG.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        e.extend_from_slice(&u16::MAX.to_le_bytes());
        e.extend_from_slice(&u16::MAX.to_le_bytes());
        e.extend_from_slice(&u32::MAX.to_le_bytes());
        e.extend_from_slice(&u32::MAX.to_le_bytes());
        e.extend_from_slice(&0u16.to_le_bytes());
        self.put(&e)?;
        self.out.flush()?;
        Ok((self.out, members))
    }
}

/// Reads a little-endian field at a position of a buffer.
struct Fields<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Fields<'_> {
    fn u16(&mut self) -> u16 {
        let v = u16::from_le_bytes([self.buf[self.at], self.buf[self.at + 1]]);
        self.at += 2;
        v
    }
    fn u32(&mut self) -> u32 {
        let v = u32::from_le_bytes(self.buf[self.at..self.at + 4].try_into().expect("4 bytes"));
        self.at += 4;
        v
    }
    fn u64(&mut self) -> u64 {
        let v = u64::from_le_bytes(self.buf[self.at..self.at + 8].try_into().expect("8 bytes"));
        self.at += 8;
        v
    }
}

/// Why a package's ZIP structure was refused.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    /// A byte of the structure is not what custody writes.
    #[error("zip structure: {0}")]
    Malformed(String),
    #[error("cannot read the package: {0}")]
    Io(#[from] io::Error),
}

/// Reads a package written by [`ZipWriter`], checking every byte of its
/// structure; the error names the part that is wrong. Member data is not
/// read here (see [`check_crc`]).
pub fn read_strict<R: Read + Seek>(file: &mut R) -> Result<Vec<Member>, ZipError> {
    let (n_total, cd_size, cd_offset) = end_records(file)?;
    let bad = |what: &str| {
        Err(ZipError::Malformed(format!(
            "{what} is not what custody writes"
        )))
    };
    let mut cd = vec![0u8; cd_size as usize];
    file.seek(SeekFrom::Start(cd_offset))?;
    file.read_exact(&mut cd)?;
    let mut members = Vec::new();
    let mut names = std::collections::HashSet::new();
    let mut at = 0usize;
    let mut expected_header = 0u64;
    while at < cd.len() {
        let i = members.len() + 1;
        if cd.len() - at < 46 {
            return bad(&format!("central directory entry {i}"));
        }
        let mut f = Fields { buf: &cd, at };
        let sig = f.u32();
        let made = f.u16();
        let need = f.u16();
        let flags = f.u16();
        let method = f.u16();
        let time = f.u16();
        let date = f.u16();
        let crc = f.u32();
        let (cs, us) = (f.u32(), f.u32());
        let name_len = f.u16() as usize;
        let extra_len = f.u16();
        let (comment, disk, internal, external, off32) =
            (f.u16(), f.u16(), f.u16(), f.u32(), f.u32());
        if sig != CENTRAL_SIG
            || made != VERSION_MADE_BY
            || need != VERSION_NEEDED
            || flags != FLAGS
            || method != 0
            || cs != u32::MAX
            || us != u32::MAX
            || extra_len != CENTRAL_EXTRA_LEN
            || comment != 0
            || disk != 0
            || internal != 0
            || external != EXTERNAL_ATTRS
            || off32 != u32::MAX
            || cd.len() - f.at < name_len + CENTRAL_EXTRA_LEN as usize
        {
            return bad(&format!("central directory entry {i}"));
        }
        let name = String::from_utf8(cd[f.at..f.at + name_len].to_vec()).map_err(|_| {
            ZipError::Malformed(format!(
                "central directory entry {i} has a name that is not UTF-8"
            ))
        })?;
        f.at += name_len;
        // One name, one member: readers disagree on which of two members
        // with one name they show (Python's zipfile the last, this reader
        // the first, unzip both), so evidence could differ by viewer. And
        // case-insensitive file systems merge names that differ in case.
        if !canonical_name(&name) {
            return Err(ZipError::Malformed(format!(
                "central directory entry {i} has the name {name:?}, which is not a plain relative path"
            )));
        }
        if !names.insert(name.to_ascii_lowercase()) {
            return Err(ZipError::Malformed(format!(
                "the member name {name:?} appears twice (or twice in different case)"
            )));
        }
        if f.u16() != 1 || f.u16() != 24 {
            return bad(&format!("central directory entry {i} ({name})"));
        }
        let (size, csize, header_offset) = (f.u64(), f.u64(), f.u64());
        if size != csize || header_offset != expected_header {
            return bad(&format!(
                "central directory entry {i} ({name}): its sizes or offset"
            ));
        }
        // The local header must be the central entry's twin.
        let data_offset = local_header(file, &name, header_offset, (time, date, crc), size)?;
        expected_header = data_offset + size;
        members.push(Member {
            name,
            data_offset,
            size,
            crc32: crc,
            header_offset,
        });
        at = f.at;
    }
    if members.len() as u64 != n_total {
        return bad("the entry count");
    }
    if expected_header != cd_offset {
        return bad("the space between the last member and the central directory");
    }
    Ok(members)
}

/// The ZIP64 end record, its locator and the end of central directory
/// record, exactly as custody writes them: the entry count and the central
/// directory's size and offset.
fn end_records<R: Read + Seek>(file: &mut R) -> Result<(u64, u64, u64), ZipError> {
    let len = file.seek(SeekFrom::End(0))?;
    const TAIL: u64 = 56 + 20 + 22;
    if len < TAIL {
        return Err(ZipError::Malformed(
            "the file is too short to be a package".into(),
        ));
    }
    let mut tail = vec![0u8; TAIL as usize];
    file.seek(SeekFrom::Start(len - TAIL))?;
    file.read_exact(&mut tail)?;
    let mut f = Fields { buf: &tail, at: 0 };
    let bad = |what: &str| {
        Err(ZipError::Malformed(format!(
            "{what} is not what custody writes"
        )))
    };
    if f.u32() != ZIP64_EOCD_SIG
        || f.u64() != 44
        || f.u16() != VERSION_MADE_BY
        || f.u16() != VERSION_NEEDED
        || f.u32() != 0
        || f.u32() != 0
    {
        return bad("the ZIP64 end record");
    }
    let (n_disk, n_total, cd_size, cd_offset) = (f.u64(), f.u64(), f.u64(), f.u64());
    if n_disk != n_total {
        return bad("the ZIP64 end record's entry count");
    }
    if f.u32() != ZIP64_LOCATOR_SIG || f.u32() != 0 || f.u64() != len - TAIL || f.u32() != 1 {
        return bad("the ZIP64 end locator");
    }
    if f.u32() != EOCD_SIG
        || f.u16() != 0
        || f.u16() != 0
        || f.u16() != u16::MAX
        || f.u16() != u16::MAX
        || f.u32() != u32::MAX
        || f.u32() != u32::MAX
        || f.u16() != 0
    {
        return bad("the end of central directory record");
    }
    if cd_offset.checked_add(cd_size) != Some(len - TAIL) || cd_size > 64 << 20 {
        return bad("the central directory's size or offset");
    }
    Ok((n_total, cd_size, cd_offset))
}

/// Checks a member's local header against its central entry (time, date,
/// CRC-32, name and size); returns where its data begins.
fn local_header<R: Read + Seek>(
    file: &mut R,
    name: &str,
    header_offset: u64,
    (time, date, crc): (u16, u16, u32),
    size: u64,
) -> Result<u64, ZipError> {
    let name_len = name.len();
    let bad = |what: &str| {
        Err(ZipError::Malformed(format!(
            "{what} is not what custody writes"
        )))
    };
    let mut local = vec![0u8; 30 + name_len + LOCAL_EXTRA_LEN as usize];
    file.seek(SeekFrom::Start(header_offset))?;
    file.read_exact(&mut local)
        .map_err(|_| ZipError::Malformed(format!("the local header of {name} is cut short")))?;
    let mut l = Fields { buf: &local, at: 0 };
    if l.u32() != LOCAL_SIG
        || l.u16() != VERSION_NEEDED
        || l.u16() != FLAGS
        || l.u16() != 0
        || l.u16() != time
        || l.u16() != date
        || l.u32() != crc
        || l.u32() != u32::MAX
        || l.u32() != u32::MAX
        || l.u16() as usize != name_len
        || l.u16() != LOCAL_EXTRA_LEN
        || local[30..30 + name_len] != *name.as_bytes()
    {
        return bad(&format!("the local header of {name}"));
    }
    l.at = 30 + name_len;
    if l.u16() != 1 || l.u16() != 16 || l.u64() != size || l.u64() != size {
        return bad(&format!("the local header of {name}"));
    }
    Ok(header_offset + local.len() as u64)
}

/// Recomputes a member's CRC-32 while passing its bytes to `sink`.
pub fn check_crc<R: Read + Seek>(
    file: &mut R,
    m: &Member,
    sink: &mut dyn FnMut(&[u8]),
) -> Result<bool, ZipError> {
    file.seek(SeekFrom::Start(m.data_offset))?;
    let mut hasher = crc32fast::Hasher::new();
    let mut left = m.size;
    let mut buf = vec![0u8; 1 << 20];
    while left > 0 {
        let n = buf.len().min(left as usize);
        file.read_exact(&mut buf[..n])?;
        hasher.update(&buf[..n]);
        sink(&buf[..n]);
        left -= n as u64;
    }
    Ok(hasher.finalize() == m.crc32)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package() -> Vec<u8> {
        let t = chrono::DateTime::parse_from_rfc3339("2016-11-29T10:04:00Z")
            .unwrap()
            .to_utc();
        let mut w = ZipWriter::new(Vec::new(), t);
        w.add_bytes("archive/a.warc.gz", b"WARC/1.1 bytes").unwrap();
        w.add_bytes("datapackage.json", b"{}").unwrap();
        w.finish().unwrap().0
    }

    #[test]
    fn what_is_written_reads_back() {
        let bytes = package();
        let members = read_strict(&mut io::Cursor::new(&bytes)).unwrap();
        let names: Vec<_> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["archive/a.warc.gz", "datapackage.json"]);
        let m = &members[0];
        assert_eq!(
            &bytes[m.data_offset as usize..][..m.size as usize],
            b"WARC/1.1 bytes"
        );
    }

    fn with_names(names: &[&str]) -> Vec<u8> {
        let mut w = ZipWriter::new(Vec::new(), chrono::Utc::now());
        for n in names {
            w.add_bytes(n, b"{}").unwrap();
        }
        w.finish().unwrap().0
    }

    #[test]
    fn repeated_and_non_canonical_names_are_refused() {
        for names in [
            &["pages/pages.jsonl", "datapackage.json", "pages/pages.jsonl"][..],
            &["custody/claim-1.jsonld", "CUSTODY/claim-1.jsonld"],
            &["../datapackage.json"],
            &["archive/../datapackage.json"],
            &["/etc/passwd"],
            &["archive\\a.warc.gz"],
            &["archive/a\u{1}.warc.gz"],
            &["archive//a.warc.gz"],
            &["archive/"],
            &["./datapackage.json"],
            &["archive/caf\u{e9}.warc.gz"],
        ] {
            let bytes = with_names(names);
            let err = read_strict(&mut io::Cursor::new(&bytes)).unwrap_err();
            assert!(matches!(err, ZipError::Malformed(_)), "{names:?}: {err}");
        }
        let fine = with_names(&["archive/0193f1e2-7c4a.warc.gz", "datapackage-digest.json"]);
        assert_eq!(read_strict(&mut io::Cursor::new(&fine)).unwrap().len(), 2);
    }

    #[test]
    fn a_changed_byte_anywhere_is_found() {
        let bytes = package();
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x01;
            let mut c = io::Cursor::new(&b);
            let found = match read_strict(&mut c) {
                Err(_) => true,
                Ok(members) => members
                    .iter()
                    .any(|m| !check_crc(&mut c, m, &mut |_| {}).unwrap()),
            };
            assert!(found, "a flip at byte {i} went unnoticed");
        }
    }
}
