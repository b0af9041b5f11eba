//! `custody import`: files made elsewhere come in under custody's proofs.
//! A custody export imported into another archive is kept as received,
//! replays, is found by `get` and CDX, takes a claim link, exports to a
//! package that verifies, survives `reindex`, and a flipped byte in the
//! stored file is caught by `audit`. Hostile files are refused or imported
//! partially, with the reason, in bounded time. (warcio's, wget's and
//! py-wacz's files: `interop.rs`.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use custody::model::{Capture, ImportInfo};
use sha2::Digest;

use crate::cli::{Workdir, QUOTE};
use crate::site;
use crate::web;

/// `import FILE --json` in `work`, which must succeed: the capture.
pub fn imported(work: &Workdir, file: &Path, extra: &[&str]) -> Capture {
    let mut args = vec!["import", file.to_str().unwrap(), "--json"];
    args.extend_from_slice(extra);
    let out = work.ok(&args);
    serde_json::from_slice(out.split(|b| *b == b'\n').next().unwrap()).expect("import JSON")
}

/// `import FILE`, which must be refused: its one-line error.
fn refused(work: &Workdir, file: &Path) -> String {
    let out = work.run(&["import", file.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "refused: {err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    err
}

/// One of `lines` contains `what`.
fn assert_says(lines: &[String], what: &str) {
    assert!(
        lines.iter().any(|l| l.contains(what)),
        "{what:?} in {lines:?}"
    );
}

fn info(c: &Capture) -> &ImportInfo {
    c.import.as_ref().expect("an import")
}

/// Flips a byte in the middle of a stored (write-protected) object, as a
/// disk fault or a forger would.
fn flip_middle_byte(stored: &Path) {
    let mut bytes = std::fs::read(stored).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0x20;
    let mut perms = std::fs::metadata(stored).unwrap().permissions();
    #[allow(clippy::permissions_set_readonly_false)]
    perms.set_readonly(false);
    std::fs::set_permissions(stored, perms).unwrap();
    std::fs::write(stored, bytes).unwrap();
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A custody capture of the fixture article, exported as a WARC from one
/// archive (the file another archive receives).
async fn exported_article() -> (Workdir, Capture, PathBuf, String) {
    let addr = site::serve_http().await;
    let origin = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let (capture, _) = origin.capture(&url);
    let warc = origin.export_warc(capture.id.as_str(), "article.warc.gz");
    (origin, capture, warc, url)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_import_is_kept_as_received_and_replays_links_exports_audits_and_reindexes_like_a_capture(
) {
    let (_origin, original, file, url) = exported_article().await;
    let work = Workdir::new("");
    let c = imported(
        &work,
        &file,
        &["--source", "sent by the newsroom's archivist"],
    );
    let i = info(&c);
    let bytes = std::fs::read(&file).unwrap();
    assert_eq!(i.file.sha256.hex(), sha256_hex(&bytes));
    assert_eq!(i.format, "warc.gz");
    assert_eq!(i.name, "article.warc.gz");
    assert_eq!(
        i.source.as_deref(),
        Some("sent by the newsroom's archivist")
    );
    assert!(i.problems.is_empty(), "{:?}", i.problems);
    assert!(
        i.software.iter().any(|s| s.starts_with("custody/")),
        "{:?}",
        i.software
    );
    assert_eq!(c.seed_url, url, "the page is the export's page");
    assert_eq!(
        c.started_at, original.started_at,
        "when the other tool captured it"
    );
    // Kept exactly as received, under its own digest.
    let stored = work.path().join("custody-data/objects").join(&i.file.key);
    assert_eq!(std::fs::read(&stored).unwrap(), bytes);
    assert!(i.file.key.starts_with("import/"));

    // Shown as imported everywhere.
    let listed = String::from_utf8(work.ok(&["captures"])).unwrap();
    assert!(listed.contains("imported (HTTP 200)"), "{listed}");
    let shown = String::from_utf8(work.ok(&["show", c.id.as_str()])).unwrap();
    assert!(
        shown.contains("not captured by custody") && shown.contains(&i.file.sha256.hex()),
        "{shown}"
    );
    assert!(
        shown.contains("source  sent by the newsroom's archivist"),
        "{shown}"
    );
    let events = String::from_utf8(work.ok(&["show", c.id.as_str()])).unwrap();
    assert!(events.contains("imported ok"), "{events}");

    // Found and read back like a capture.
    let got = work.ok(&["get", &url]);
    assert!(String::from_utf8_lossy(&got).contains(QUOTE));
    let claim = work.claim_linked_to(&[&c]);
    let claim_shown = String::from_utf8(work.ok(&["claim", "show", &claim])).unwrap();
    assert!(claim_shown.contains("supports verified"), "{claim_shown}");
    // The export says who captured it and that custody imported it.
    let jsonld: serde_json::Value =
        serde_json::from_slice(&work.ok(&["claim", "show", &claim, "--jsonld"])).unwrap();
    let graph = jsonld["@graph"].as_array().expect("a graph");
    let node = |id: &str| graph.iter().find(|n| n["id"] == id).cloned();
    let import = node(&format!("urn:custody:capture:{}#import", c.id)).expect("the import");
    assert_eq!(
        import["prov:used"]["id"],
        format!("urn:sha256:{}", i.file.sha256.hex())
    );
    let captured = node(&format!("urn:custody:capture:{}", c.id)).expect("the capture");
    assert!(
        captured["prov:wasAssociatedWith"]["id"]
            .as_str()
            .unwrap()
            .starts_with("urn:custody:software:custody/"),
        "captured by the other tool (here another custody): {captured}"
    );
    let verified = work.run(&["verify", c.id.as_str()]);
    let said = String::from_utf8_lossy(&verified.stderr).into_owned();
    assert!(verified.status.success(), "{said}");
    for check in [
        "file as received import/",
        "imported records in the access copy",
        "the file as received, read again: gives the same record bytes",
        "custody event 'imported'",
    ] {
        assert!(said.contains(check), "verify checks {check}:\n{said}");
    }
    work.ok(&["log", "checkpoint"]);
    let pkg = work.export_wacz(c.id.as_str(), "imported.wacz");
    let offline = work.run(&["verify", pkg.to_str().unwrap()]);
    assert!(
        offline.status.success(),
        "{}",
        String::from_utf8_lossy(&offline.stderr)
    );

    // Replay, CDX and the UI say what it is.
    {
        let server = web::serve(&work, &["--public-read"]);
        let ts = custody::model::timestamp14(&c.started_at);
        let page = web::get(server.addr, &format!("/replay/{ts}/{url}"), None);
        assert_eq!(page.status, 200);
        assert!(
            page.text()
                .contains("imported</strong> from article.warc.gz"),
            "{}",
            page.text()
        );
        let framed = web::get(server.addr, &format!("/replay/{ts}mp_/{url}"), None);
        assert!(framed.text().contains(QUOTE));
        let cdx = web::get(server.addr, &format!("/cdx?url={url}&output=json"), None);
        assert!(cdx.text().contains(&ts), "{}", cdx.text());
        let ui = web::get(server.addr, &format!("/ui/captures/{}", c.id), None);
        assert!(
            ui.text().contains("not captured by custody"),
            "{}",
            ui.text()
        );
    }

    // The store alone rebuilds it: the import, its file and its claim.
    let rebuilt = work.copy();
    for f in ["index.db", "index.db-wal", "index.db-shm"] {
        let _ = std::fs::remove_file(rebuilt.path().join("custody-data").join(f));
    }
    rebuilt.ok(&["reindex"]);
    let again: Capture =
        serde_json::from_slice(&rebuilt.ok(&["show", c.id.as_str(), "--json"])).unwrap();
    assert_eq!(again.import, c.import);
    let all = rebuilt.run(&["verify", "--all"]);
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );

    // The same file again is refused, naming the import.
    let again = refused(&work, &file);
    assert!(
        again.contains(&format!("already imported as capture {}", c.id)),
        "{again}"
    );

    // A flipped byte in the stored file is caught by audit.
    flip_middle_byte(&stored);
    let audit = work.run(&["audit"]);
    let text = String::from_utf8_lossy(&audit.stdout).into_owned()
        + &String::from_utf8_lossy(&audit.stderr);
    assert!(!audit.status.success(), "{text}");
    let line = text
        .lines()
        .find(|l| l.contains(&i.file.key) && !l.contains("ERROR"))
        .unwrap_or_else(|| panic!("audit names the file:\n{text}"));
    assert!(line.starts_with("CORRUPT"), "{line}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wacz_is_checked_against_its_listing_and_signature_on_the_way_in() {
    let (origin, capture, _, url) = exported_article().await;
    let pkg = origin.export_wacz(capture.id.as_str(), "article.wacz");
    let key = String::from_utf8(origin.ok(&["keys", "show", "--json"])).unwrap();
    let key: serde_json::Value = serde_json::from_str(&key).unwrap();
    let work = Workdir::new("");
    let c = imported(&work, &pkg, &[]);
    let i = info(&c);
    assert_eq!(i.format, "wacz");
    assert!(i.problems.is_empty(), "{:?}", i.problems);
    assert_eq!(
        i.signer.as_deref(),
        key["package_key"].as_str(),
        "{:?}",
        i.verified
    );
    assert_says(&i.verified, "signature valid (WACZ anonymous form)");
    assert_says(&i.verified, "datapackage.json:");
    assert_eq!(c.seed_url, url);
    assert!(String::from_utf8_lossy(&work.ok(&["get", &url])).contains(QUOTE));
    let verified = work.run(&["verify", c.id.as_str()]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );

    // A package whose member no longer matches its listing is imported
    // with that problem named, not silently.
    let mut bytes = std::fs::read(&pkg).unwrap();
    let at = find(&bytes, b"archive/").expect("the WARC member") + 4000;
    bytes[at] ^= 0x20;
    let edited = work.path().join("edited.wacz");
    std::fs::write(&edited, &bytes).unwrap();
    let other = Workdir::new("");
    let e = imported(&other, &edited, &[]);
    let problems: Vec<&str> = info(&e)
        .problems
        .iter()
        .map(|p| p.problem.as_str())
        .collect();
    assert!(
        problems.iter().any(|p| p.contains("CRC-32")),
        "{problems:?}"
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A record's bytes: `WARC/1.1`, `fields` (each ending in CRLF), its
/// `Content-Length`, the block and the terminator.
fn raw_record(fields: &str, block: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "WARC/1.1\r\n{fields}Content-Length: {}\r\n\r\n",
        block.len()
    )
    .into_bytes();
    r.extend_from_slice(block);
    r.extend_from_slice(b"\r\n\r\n");
    r
}

/// A record of `kind` with a block of `block`.
fn record(kind: &str, id: &str, target: &str, block: &[u8]) -> Vec<u8> {
    raw_record(
        &format!("WARC-Type: {kind}\r\nWARC-Record-ID: <urn:uuid:{id}>\r\nWARC-Date: 2016-11-29T10:04:00Z\r\nWARC-Target-URI: {target}\r\nContent-Type: text/plain\r\n"),
        block,
    )
}

/// A ZIP of `(name, data, deflate, declared size)` entries, as a hostile
/// tool could write it.
fn zip(entries: &[(&str, Vec<u8>, bool, Option<u32>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data, deflate, declared) in entries {
        let crc = crc32fast::hash(data);
        let body = if *deflate {
            let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::new(9));
            e.write_all(data).unwrap();
            e.finish().unwrap()
        } else {
            data.clone()
        };
        let size = declared.unwrap_or(data.len() as u32);
        let offset = out.len() as u32;
        let method: u16 = if *deflate { 8 } else { 0 };
        let fixed = |sig: u32| {
            let mut h = sig.to_le_bytes().to_vec();
            h.extend_from_slice(&20u16.to_le_bytes());
            h
        };
        let mut local = fixed(0x0403_4b50);
        for v in [0u16, method, 0, 0] {
            local.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, body.len() as u32, size] {
            local.extend_from_slice(&v.to_le_bytes());
        }
        local.extend_from_slice(&(name.len() as u16).to_le_bytes());
        local.extend_from_slice(&0u16.to_le_bytes());
        local.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&local);
        out.extend_from_slice(&body);
        let mut c = 0x0201_4b50u32.to_le_bytes().to_vec();
        for v in [20u16, 20, 0, method, 0, 0] {
            c.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, body.len() as u32, size] {
            c.extend_from_slice(&v.to_le_bytes());
        }
        for v in [name.len() as u16, 0, 0, 0, 0] {
            c.extend_from_slice(&v.to_le_bytes());
        }
        c.extend_from_slice(&0u32.to_le_bytes());
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        central.extend_from_slice(&c);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, entries.len() as u16, entries.len() as u16] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_files_are_refused_or_imported_partially_with_the_reason_in_bounded_time() {
    let work = Workdir::new("");
    std::fs::write(
        work.path().join("custody.toml"),
        std::fs::read_to_string(work.path().join("custody.toml")).unwrap()
            + "\n[import]\nmax_records = 1000\n",
    )
    .unwrap();
    let dir = work.path().join("files");
    std::fs::create_dir_all(&dir).unwrap();
    let put = |name: &str, bytes: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let good = record(
        "resource",
        "00000000-0000-4000-8000-000000000001",
        "http://a.example/",
        b"nearly 25 civilians",
    );
    let started = Instant::now();

    // Not a WARC at all.
    let err = refused(&work, &put("notes.txt", b"these are my notes"));
    assert!(err.contains("is not a WARC or WACZ file"), "{err}");

    // A truncated gzip: the records before the cut are imported, the cut
    // is named.
    let mut stream = good.clone();
    let noise: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    stream.extend(record(
        "resource",
        "00000000-0000-4000-8000-000000000002",
        "http://a.example/b",
        &noise,
    ));
    let whole = gz(&stream);
    let c = imported(
        &work,
        &put("cut.warc.gz", &whole[..whole.len() - 2000]),
        &[],
    );
    assert_eq!(c.resources.len(), 1, "{:?}", c.resources);
    let problems = &info(&c).problems;
    assert!(
        problems
            .iter()
            .any(|p| p.problem.contains("not imported") && p.problem.contains("gzip")),
        "{problems:?}"
    );

    // A gzip bomb after a good record: cut off at the ratio, the good one
    // kept.
    let mut bomb = gz(&record(
        "resource",
        "00000000-0000-4000-8000-000000000003",
        "http://b.example/",
        b"fine",
    ));
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(9));
    e.write_all(b"WARC/1.1\r\nWARC-Type: resource\r\nWARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-000000000004>\r\nWARC-Date: 2016-11-29T10:04:00Z\r\nWARC-Target-URI: http://b.example/zeros\r\nContent-Length: 4294967296\r\n\r\n").unwrap();
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..512 {
        e.write_all(&zeros).unwrap();
    }
    bomb.extend(e.finish().unwrap());
    let c = imported(&work, &put("bomb.warc.gz", &bomb), &[]);
    assert_eq!(c.resources.len(), 1);
    assert!(
        info(&c)
            .problems
            .iter()
            .any(|p| p.problem.contains("gzip bomb")),
        "{:?}",
        info(&c).problems
    );

    // A header that never ends.
    let mut endless = b"WARC/1.1\r\nWARC-Type: resource\r\n".to_vec();
    endless.extend(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n".repeat(40_000));
    let err = refused(&work, &put("endless.warc", &endless));
    assert!(err.contains("record header longer than 1 MiB"), "{err}");

    // Far more records than an import takes: refused once past the limit,
    // without reading the rest.
    let mut many = Vec::new();
    for n in 0..1_000_000u32 {
        many.extend(record(
            "resource",
            &format!("00000000-0000-4000-8000-{n:012}"),
            "http://c.example/",
            b".",
        ));
    }
    let err = refused(&work, &put("many.warc.gz", &gz(&many)));
    assert!(err.contains("more than 1000 records"), "{err}");

    // ZIP entries that climb out, overlap, or inflate past their size.
    let err = refused(
        &work,
        &put(
            "climb.wacz",
            &zip(&[("../../etc/cron.d/x", good.clone(), false, None)]),
        ),
    );
    assert!(err.contains("not a plain relative path"), "{err}");
    let zeros = vec![0u8; 64 << 20];
    let err = refused(
        &work,
        &put(
            "zipbomb.wacz",
            &zip(&[("archive/a.warc", zeros, true, None)]),
        ),
    );
    assert!(err.contains("zip bomb"), "{err}");
    let mut overlapping = zip(&[
        ("archive/a.warc", good.clone(), false, None),
        ("archive/b.warc", good.clone(), false, None),
    ]);
    // Point the second central entry's local header at the first's.
    let second = overlapping
        .windows(4)
        .rposition(|w| w == [0x50, 0x4b, 0x01, 0x02])
        .unwrap();
    overlapping[second + 42..second + 46].copy_from_slice(&0u32.to_le_bytes());
    let err = refused(&work, &put("overlap.wacz", &overlapping));
    assert!(
        err.contains("names another entry") || err.contains("share bytes"),
        "{err}"
    );
    let liar = zip(&[
        (
            "archive/a.warc",
            [good.clone(), vec![b'\n'; 100_000]].concat(),
            true,
            Some(good.len() as u32),
        ),
        ("datapackage.json", b"{}".to_vec(), false, None),
    ]);
    let err = refused(&work, &put("liar.wacz", &liar));
    assert!(err.contains("inflates past its declared size"), "{err}");

    // After all that, a good file still imports, and every refused one
    // left nothing behind.
    let fresh = record(
        "resource",
        "00000000-0000-4000-8000-00000000000f",
        "http://a.example/",
        b"ok",
    );
    let c = imported(&work, &put("good.warc", &fresh), &[]);
    assert!(info(&c).problems.is_empty());
    let spool = work.path().join("custody-data/spool");
    let left: Vec<_> = std::fs::read_dir(&spool)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    assert!(
        started.elapsed() < Duration::from_secs(240),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_imports_for_archivists_only_and_names_the_token() {
    let (_origin, _, file, url) = exported_article().await;
    let work = Workdir::new("");
    let archivist = web::token(&work, "archivist");
    let reader = web::token(&work, "reader");
    let server = web::serve(&work, &[]);
    let bytes = std::fs::read(&file).unwrap();
    let post = |token: &str, path: &str, body: &[u8]| {
        let auth = format!("Bearer {token}");
        web::request(
            server.addr,
            "POST",
            path,
            &[("Authorization", &auth)],
            Some(body),
        )
    };
    // (A small body: the refusal comes before the body is read.)
    let denied = post(&reader, "/api/v1/imports?name=article.warc.gz", b"WARC/1.1");
    assert_eq!(denied.status, 403, "{}", denied.text());
    let bad = post(&archivist, "/api/v1/imports?name=notes.txt", b"just notes");
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(
        bad.text().contains("is not a WARC or WACZ file"),
        "{}",
        bad.text()
    );
    let made = post(
        &archivist,
        "/api/v1/imports?name=article.warc.gz&source=upload",
        &bytes,
    );
    assert_eq!(made.status, 201, "{}", made.text());
    let v: serde_json::Value = serde_json::from_slice(&made.body).unwrap();
    assert_eq!(v["seed_url"], url);
    assert_eq!(v["import"]["source"], "upload");
    assert!(
        v["import"]["imported_by"]
            .as_str()
            .unwrap_or_default()
            .starts_with("token:"),
        "{v}"
    );
    let again = post(&archivist, "/api/v1/imports?name=article.warc.gz", &bytes);
    assert_eq!(again.status, 409, "{}", again.text());
}

/// Files the field's own tools wrote: warcio (per-record gzip, whole-file
/// gzip, uncompressed; SHA-1 digests; a chunked response whose payload
/// digest covers the chunk framing; a revisit that names its original by
/// URL and date only), `wget --warc-file` and py-wacz.
#[cfg(feature = "interop")]
mod peers {
    use super::*;
    use crate::interop::tool;

    const WARCIO_SCRIPT: &str = r#"
import sys
from io import BytesIO
from warcio.warcwriter import WARCWriter
from warcio.statusandheaders import StatusAndHeaders
out, gz = sys.argv[1], sys.argv[2] == "gz"
page = b'<html><head><title>Aleppo</title></head><body><p>' + sys.argv[3].encode() + b'</p><img src="/a.png"></body></html>'
with open(out, 'wb') as f:
    w = WARCWriter(f, gzip=gz)
    w.write_record(w.create_warcinfo_record('peer.warc', {'software': 'warcio peer test', 'operator': 'a newsroom'}))
    chunked = b'%x\r\n' % len(page) + page + b'\r\n0\r\n\r\n'
    h = StatusAndHeaders('200 OK', [('Content-Type', 'text/html; charset=utf-8'), ('Transfer-Encoding', 'chunked')], protocol='HTTP/1.1')
    w.write_record(w.create_warc_record('http://aleppo.example/report', 'response', payload=BytesIO(chunked), http_headers=h))
    png = b'\x89PNG\r\n\x1a\n' + bytes(range(256)) * 4
    h = StatusAndHeaders('200 OK', [('Content-Type', 'image/png'), ('Content-Length', str(len(png)))], protocol='HTTP/1.1')
    img = w.create_warc_record('http://aleppo.example/a.png', 'response', payload=BytesIO(png), http_headers=h)
    w.write_record(img)
    h = StatusAndHeaders('200 OK', [('Content-Type', 'image/png'), ('Content-Length', str(len(png)))], protocol='HTTP/1.1')
    w.write_record(w.create_revisit_record('http://aleppo.example/a.png', digest=img.rec_headers.get_header('WARC-Payload-Digest'), refers_to_uri='http://aleppo.example/a.png', refers_to_date=img.rec_headers.get_header('WARC-Date'), http_headers=h))
"#;

    fn warcio_file(dir: &Path, name: &str, gz: bool, text: &str) -> PathBuf {
        let path = dir.join(name);
        let out = tool("python3")
            .args(["-c", WARCIO_SCRIPT])
            .arg(&path)
            .arg(if gz { "gz" } else { "plain" })
            .arg(text)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        path
    }

    fn assert_verifies(work: &Workdir, c: &Capture) {
        let v = work.run(&["verify", c.id.as_str()]);
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    }

    /// Used as a capture is: the page replays and is in CDX, a passage of
    /// it takes a claim link that verifies, and a flipped byte in the
    /// stored file is caught by `audit`.
    fn assert_used_like_a_capture(work: &Workdir, c: &Capture, url: &str, quote: &str) {
        {
            let server = web::serve(work, &["--public-read"]);
            let ts = custody::model::timestamp14(&c.started_at);
            let page = web::get(server.addr, &format!("/replay/{ts}mp_/{url}"), None);
            assert_eq!(page.status, 200, "{}", page.text());
            assert!(page.text().contains(quote), "{}", page.text());
            let cdx = web::get(server.addr, &format!("/cdx?url={url}&output=json"), None);
            assert!(cdx.text().contains(&ts), "{}", cdx.text());
        }
        let claim: serde_json::Value = serde_json::from_slice(&work.ok(&[
            "claim",
            "add",
            "A claim on an imported page",
            "--json",
        ]))
        .unwrap();
        let claim = claim["id"].as_str().unwrap();
        work.ok(&["claim", "link", claim, c.id.as_str(), "--quote", quote]);
        let shown = String::from_utf8(work.ok(&["claim", "show", claim])).unwrap();
        assert!(shown.contains("supports verified"), "{shown}");
        let i = info(c);
        let stored = work.path().join("custody-data/objects").join(&i.file.key);
        flip_middle_byte(&stored);
        let audit = work.run(&["audit"]);
        let text = String::from_utf8_lossy(&audit.stderr).into_owned();
        assert!(!audit.status.success(), "{text}");
        assert!(
            text.lines()
                .any(|l| l.starts_with("CORRUPT") && l.contains(&i.file.key)),
            "{text}"
        );
    }

    /// Exported as a WACZ, the import passes `wacz validate` and
    /// `custody verify`.
    fn assert_exports(work: &Workdir, c: &Capture) {
        work.ok(&["log", "checkpoint"]);
        let pkg = work.export_wacz(c.id.as_str(), &format!("{}.wacz", c.id));
        crate::interop::assert_wacz_valid(&pkg);
        let v = work.run(&["verify", pkg.to_str().unwrap()]);
        assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
    }

    #[test]
    fn warcio_files_in_every_compression_import_with_both_readings_and_revisits_resolved() {
        let work = Workdir::new("");
        let dir = work.path().to_path_buf();
        let per_record = warcio_file(
            &dir,
            "per-record.warc.gz",
            true,
            "nearly 25 civilians were killed, one",
        );
        let plain = warcio_file(
            &dir,
            "plain.warc",
            false,
            "nearly 25 civilians were killed, two",
        );
        let whole = warcio_file(
            &dir,
            "whole.warc",
            false,
            "nearly 25 civilians were killed, three",
        );
        let gz = tool("gzip").arg("-k").arg(&whole).status().unwrap();
        assert!(gz.success());
        let whole = dir.join("whole.warc.gz");
        for (file, text) in [(&per_record, "one"), (&plain, "two"), (&whole, "three")] {
            let c = imported(&work, file, &["--source", "warcio"]);
            let i = info(&c);
            assert!(
                i.problems.is_empty(),
                "{}: {:?}",
                file.display(),
                i.problems
            );
            assert_eq!(i.software, vec!["warcio peer test".to_string()]);
            assert_eq!(i.operator, vec!["a newsroom".to_string()]);
            assert!(i.verified[0].contains("SHA-1"), "{:?}", i.verified);
            assert!(
                i.verified.iter().any(|v| v.contains("chunk framing")),
                "warcio's chunked payload digest is the framed reading: {:?}",
                i.verified
            );
            assert_eq!(i.revisits.len(), 1, "the revisit resolves to the image");
            assert_eq!(c.seed_url, "http://aleppo.example/report");
            assert_verifies(&work, &c);
            // The page, de-chunked; the revisit's image, from its original.
            let page = work.ok(&[
                "get",
                "http://aleppo.example/report",
                "--at",
                &custody::model::timestamp14(&c.started_at),
            ]);
            assert!(
                String::from_utf8_lossy(&page).contains(text),
                "{}",
                String::from_utf8_lossy(&page)
            );
        }
        let last: Capture = serde_json::from_slice(
            work.ok(&["captures", "--json"])
                .split(|b| *b == b'\n')
                .nth(2)
                .unwrap(),
        )
        .unwrap();
        assert_exports(&work, &last);
        assert_used_like_a_capture(
            &work,
            &last,
            "http://aleppo.example/report",
            "nearly 25 civilians were killed, three",
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_wget_warc_imports_with_its_sha1_digests_checked_and_exports_a_valid_package() {
        let addr = site::serve_http().await;
        let work = Workdir::new("");
        let url = format!("http://{addr}{}", site::ARTICLE_PATH);
        let base = work.path().join("wget");
        let wget = tool("wget")
            .args(["-q", "-p", "-e", "robots=off", "--no-verbose"])
            .arg(format!("--warc-file={}", base.display()))
            .arg(&url)
            .current_dir(work.path())
            .status()
            .unwrap();
        // wget exits 8 when one requisite answered an error: the WARC is whole.
        assert!(matches!(wget.code(), Some(0 | 8)), "{wget:?}");
        let file = work.path().join("wget.warc.gz");
        let c = imported(&work, &file, &["--source", "wget --warc-file"]);
        let i = info(&c);
        assert!(i.problems.is_empty(), "{:?}", i.problems);
        assert!(
            i.software.iter().any(|s| s.contains("Wget")),
            "{:?}",
            i.software
        );
        assert!(i.verified[0].contains("SHA-1"), "{:?}", i.verified);
        assert_eq!(c.seed_url, url);
        assert!(String::from_utf8_lossy(&work.ok(&["get", &url])).contains(QUOTE));
        assert_verifies(&work, &c);
        let claim = work.claim_linked_to(&[&c]);
        let shown = String::from_utf8(work.ok(&["claim", "show", &claim])).unwrap();
        assert!(shown.contains("supports verified"), "{shown}");
        assert_exports(&work, &c);
        assert_used_like_a_capture(&work, &c, &url, QUOTE);
    }

    #[test]
    fn a_py_wacz_package_imports_with_its_listing_checked_and_its_main_page() {
        let work = Workdir::new("");
        let warc = warcio_file(
            work.path(),
            "for-wacz.warc.gz",
            true,
            "nearly 25 civilians were killed, packaged",
        );
        let pkg = work.path().join("peer.wacz");
        let out = tool("wacz")
            .args(["create", "-d", "-o"])
            .arg(&pkg)
            .arg(&warc)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = imported(&work, &pkg, &[]);
        let i = info(&c);
        assert!(i.problems.is_empty(), "{:?}", i.problems);
        assert!(
            i.verified
                .iter()
                .any(|v| v.contains("datapackage.json:") && !v.contains(" 0 of")),
            "{:?}",
            i.verified
        );
        assert_eq!(c.seed_url, "http://aleppo.example/report");
        assert!(
            String::from_utf8_lossy(&work.ok(&["get", "http://aleppo.example/report"]))
                .contains("packaged")
        );
        assert_verifies(&work, &c);
        assert_exports(&work, &c);
        assert_used_like_a_capture(
            &work,
            &c,
            "http://aleppo.example/report",
            "nearly 25 civilians were killed, packaged",
        );
    }
}

/// An HTTP response record of `url` with body `body` (SHA-256 digests).
fn response(id: &str, url: &str, date: &str, body: &[u8]) -> Vec<u8> {
    let mut block = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    block.extend_from_slice(body);
    let fields = format!(
        "WARC-Type: response\r\nWARC-Record-ID: <urn:uuid:{id}>\r\nWARC-Date: {date}\r\nWARC-Target-URI: {url}\r\nContent-Type: application/http; msgtype=response\r\nWARC-Payload-Digest: sha256:{}\r\nWARC-Block-Digest: sha256:{}\r\n",
        sha256_hex(body),
        sha256_hex(&block),
    );
    raw_record(&fields, &block)
}

/// A revisit of `url` naming the payload `body` (and its original, when
/// given).
fn revisit(id: &str, url: &str, body: &[u8], refers_to: Option<&str>) -> Vec<u8> {
    let block = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";
    let refers = refers_to
        .map(|r| format!("WARC-Refers-To: <urn:uuid:{r}>\r\n"))
        .unwrap_or_default();
    let fields = format!(
        "WARC-Type: revisit\r\nWARC-Record-ID: <urn:uuid:{id}>\r\nWARC-Date: 2016-12-05T00:00:00Z\r\nWARC-Target-URI: {url}\r\n{refers}WARC-Profile: http://netpreserve.org/warc/1.1/revisit/identical-payload-digest\r\nWARC-Payload-Digest: sha256:{}\r\nContent-Type: application/http; msgtype=response\r\n",
        sha256_hex(body),
    );
    raw_record(&fields, block)
}

#[test]
fn revisits_resolve_across_imported_files_and_the_unresolved_are_listed() {
    let work = Workdir::new("");
    let body = b"nearly 25 civilians were killed in Bab Alnairab";
    let a = work.path().join("a.warc");
    std::fs::write(
        &a,
        response(
            "00000000-0000-4000-8000-0000000000a1",
            "http://news.example/report",
            "2016-11-29T10:04:00Z",
            body,
        ),
    )
    .unwrap();
    let b = work.path().join("b.warc.gz");
    std::fs::write(
        &b,
        gz(&[
            revisit(
                "00000000-0000-4000-8000-0000000000b1",
                "http://news.example/report",
                body,
                Some("00000000-0000-4000-8000-0000000000a1"),
            ),
            revisit(
                "00000000-0000-4000-8000-0000000000b2",
                "http://news.example/report",
                body,
                None,
            ),
            revisit(
                "00000000-0000-4000-8000-0000000000b3",
                "http://news.example/gone",
                b"never archived",
                None,
            ),
        ]
        .concat()),
    )
    .unwrap();
    let first = imported(&work, &a, &[]);
    let second = imported(&work, &b, &[]);
    let i = info(&second);
    let originals: Vec<&str> = i.revisits.iter().map(|r| r.original.as_str()).collect();
    assert_eq!(
        originals, ["<urn:uuid:00000000-0000-4000-8000-0000000000a1>"; 2],
        "by the record named, and by URL and payload, in the other import"
    );
    assert_eq!(i.problems.len(), 1, "{:?}", i.problems);
    assert_eq!(
        i.problems[0].record.as_deref(),
        Some("<urn:uuid:00000000-0000-4000-8000-0000000000b3>")
    );
    assert!(
        i.problems[0].problem.contains("cannot be replayed"),
        "{:?}",
        i.problems
    );
    // The revisit replays with its original's payload, from the other file.
    let got = work.ok(&[
        "get",
        "http://news.example/report",
        "--at",
        "20161205000000",
    ]);
    assert_eq!(got, body);
    assert_ne!(first.id, second.id);
    let v = work.run(&["verify", "--all"]);
    assert!(v.status.success(), "{}", String::from_utf8_lossy(&v.stderr));
}

/// A stored-entry ZIP of `(name, bytes)` with `datapackage.json` listing
/// them and `datapackage-digest.json` holding `signed` (a WACZ as another
/// tool would sign it).
fn signed_wacz(
    members: &[(&str, Vec<u8>)],
    signed: impl FnOnce(&str) -> serde_json::Value,
) -> Vec<u8> {
    let resources: Vec<serde_json::Value> = members
        .iter()
        .map(|(n, b)| serde_json::json!({"name": n, "path": n, "hash": format!("sha256:{}", sha256_hex(b)), "bytes": b.len()}))
        .collect();
    let package = serde_json::to_vec(&serde_json::json!({
        "profile": "data-package", "wacz_version": "1.1.1", "created": "2024-03-02T10:00:00Z",
        "mainPageUrl": "http://news.example/report", "resources": resources,
    }))
    .unwrap();
    let hash = format!("sha256:{}", sha256_hex(&package));
    let digest =
        serde_json::json!({"path": "datapackage.json", "hash": hash, "signedData": signed(&hash)});
    let mut all: Vec<(&str, Vec<u8>, bool, Option<u32>)> = members
        .iter()
        .map(|(n, b)| (*n, b.clone(), false, None))
        .collect();
    all.push(("datapackage.json", package, false, None));
    all.push((
        "datapackage-digest.json",
        serde_json::to_vec(&digest).unwrap(),
        false,
        None,
    ));
    zip(&all)
}

/// The WACZ signing spec's domain form (a certificate for the domain, the
/// signature DER-encoded, as authsign writes it): the signature is checked
/// with the certificate's key, the domain and key recorded, and a forged
/// signature named as a problem.
#[test]
fn a_domain_signed_wacz_names_its_domain_and_a_forged_signature_is_a_problem() {
    let work = Workdir::new("");
    let dir = work.path();
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    openssl(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "key.pem",
    ]);
    openssl(&[
        "req",
        "-new",
        "-x509",
        "-key",
        "key.pem",
        "-subj",
        "/CN=news.example",
        "-days",
        "30",
        "-out",
        "cert.pem",
    ]);
    let cert = std::fs::read_to_string(dir.join("cert.pem")).unwrap();
    let body = b"nearly 25 civilians were killed in Bab Alnairab";
    let warc = response(
        "00000000-0000-4000-8000-0000000000d1",
        "http://news.example/report",
        "2024-03-02T09:00:00Z",
        body,
    );
    let sign = |hash: &str| {
        std::fs::write(dir.join("hash.txt"), hash).unwrap();
        openssl(&["dgst", "-sha256", "-sign", "key.pem", "hash.txt"])
    };
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    let pkg = signed_wacz(&[("archive/data.warc", warc.clone())], |hash| {
        serde_json::json!({"hash": hash, "signature": b64.encode(sign(hash)), "domain": "news.example",
            "domainCert": cert, "created": "2024-03-02T10:00:00Z", "software": "authsign 0.5"})
    });
    let file = dir.join("domain.wacz");
    std::fs::write(&file, pkg).unwrap();
    let c = imported(&work, &file, &["--source", "a newsroom's signed crawl"]);
    let i = info(&c);
    assert!(i.problems.is_empty(), "{:?}", i.problems);
    assert!(
        i.signer
            .as_deref()
            .unwrap_or_default()
            .starts_with("news.example ("),
        "{:?}",
        i.signer
    );
    assert_says(&i.verified, "WACZ domain form");
    assert_eq!(c.seed_url, "http://news.example/report");

    // Signed over another hash: the package imports, the signature is a
    // problem, and no signer is recorded.
    let other = Workdir::new("");
    let forged = signed_wacz(&[("archive/data.warc", warc)], |hash| {
        serde_json::json!({"hash": hash, "signature": b64.encode(sign("sha256:0000")), "domain": "news.example",
            "domainCert": cert, "created": "2024-03-02T10:00:00Z"})
    });
    let file = dir.join("forged.wacz");
    std::fs::write(&file, forged).unwrap();
    let c = imported(&other, &file, &[]);
    let i = info(&c);
    assert_eq!(i.signer, None);
    assert!(
        i.problems.iter().any(|p| p
            .problem
            .contains("domain signature for news.example does not hold")),
        "{:?}",
        i.problems
    );
}

/// A `.warc.gz` of one response whose payload is `size` bytes of noise
/// (media-like: it does not compress), written in pieces.
pub fn large_warc(path: &Path, size: u64) {
    let head =
        format!("HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\nContent-Length: {size}\r\n\r\n");
    let noise = |i: u64, buf: &mut [u8]| {
        let mut x = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    };
    const PIECE: u64 = 1 << 20;
    let (mut block, mut payload) = (sha2::Sha256::new(), sha2::Sha256::new());
    block.update(head.as_bytes());
    let mut buf = vec![0u8; PIECE as usize];
    for i in 0..size.div_ceil(PIECE) {
        let n = PIECE.min(size - i * PIECE) as usize;
        noise(i, &mut buf[..n]);
        block.update(&buf[..n]);
        payload.update(&buf[..n]);
    }
    let len = head.len() as u64 + size;
    let fields = format!(
        "WARC/1.1\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:00000000-0000-4000-8000-00000000e001>\r\nWARC-Date: 2016-11-29T10:04:00Z\r\nWARC-Target-URI: http://media.example/strike.mp4\r\nContent-Type: application/http; msgtype=response\r\nWARC-Payload-Digest: sha256:{}\r\nWARC-Block-Digest: sha256:{}\r\nContent-Length: {len}\r\n\r\n",
        hex::encode(payload.finalize()),
        hex::encode(block.finalize())
    );
    let file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::new(0));
    gz.write_all(fields.as_bytes()).unwrap();
    gz.write_all(head.as_bytes()).unwrap();
    for i in 0..size.div_ceil(PIECE) {
        let n = PIECE.min(size - i * PIECE) as usize;
        noise(i, &mut buf[..n]);
        gz.write_all(&buf[..n]).unwrap();
    }
    gz.write_all(b"\r\n\r\n").unwrap();
    gz.finish().unwrap().flush().unwrap();
}

/// A large file streams from the file to the access copy: memory stays
/// far below its size (no timing here; `bench_import` measures speed).
#[test]
fn a_large_file_imports_in_bounded_memory() {
    let work = Workdir::new("");
    let file = work.path().join("large.warc.gz");
    large_warc(&file, 256 << 20);
    let cmd = work.command(&["import", file.to_str().unwrap(), "--json"]);
    let (status, peak, stdout) = crate::capture::run_measuring_peak_rss(cmd);
    assert!(status.success());
    let c: Capture = serde_json::from_slice(&stdout).unwrap();
    assert!(info(&c).problems.is_empty(), "{:?}", info(&c).problems);
    assert_eq!(c.resources[0].bytes, 256 << 20);
    assert!(
        peak < 64 << 20,
        "peak RSS {} MiB for a 256 MiB file",
        peak >> 20
    );
    let got = work.path().join("strike.mp4");
    work.ok(&[
        "get",
        "http://media.example/strike.mp4",
        "-o",
        got.to_str().unwrap(),
    ]);
    assert_eq!(std::fs::metadata(&got).unwrap().len(), 256 << 20);

    // Nor do a package's members other than its WARCs and listing, however
    // many and however large: they are hashed as they pass, not kept.
    let filler = vec![7u8; 8 << 20];
    let mut members: Vec<(String, Vec<u8>, bool, Option<u32>)> = (0..24)
        .map(|i| (format!("extra/{i}.bin"), filler.clone(), false, None))
        .collect();
    members.push((
        "archive/data.warc".into(),
        record(
            "resource",
            "00000000-0000-4000-8000-0000000000e2",
            "http://a.example/",
            b"x",
        ),
        false,
        None,
    ));
    let members: Vec<(&str, Vec<u8>, bool, Option<u32>)> = members
        .iter()
        .map(|(n, b, d, s)| (n.as_str(), b.clone(), *d, *s))
        .collect();
    let pkg = work.path().join("padded.wacz");
    std::fs::write(&pkg, zip(&members)).unwrap();
    drop(members);
    let cmd = work.command(&["import", pkg.to_str().unwrap(), "--json"]);
    let (status, peak, _) = crate::capture::run_measuring_peak_rss(cmd);
    assert!(status.success());
    assert!(
        peak < 64 << 20,
        "peak RSS {} MiB for a 192 MiB package",
        peak >> 20
    );
}

/// Killed at any point of its commit, an import is finished by the next
/// start (exactly once: the same file again is then refused as imported),
/// and the archive verifies. Killed before its access copy was complete,
/// it left only the file as received, which `audit` names and importing
/// the file again adopts.
#[tokio::test(flavor = "multi_thread")]
async fn an_import_killed_before_its_commit_is_finished_once_by_the_next_start() {
    use std::io::BufRead;
    let (_origin, _, file, url) = exported_article().await;
    for point in [
        "import_file_stored",
        "import_copy_complete",
        "import_stored",
    ] {
        let work = Workdir::new("");
        let mut child = work
            .command(&["import", file.to_str().unwrap()])
            .env("CUSTODY_FAILPOINTS", format!("{point}=pause"))
            .env("CUSTODY_LOG", "warn")
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let reached = std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .any(|l| l.contains("failpoint reached"));
        assert!(reached, "{point} reached");
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            work.ok(&["captures", "--json"]).len(),
            0,
            "{point}: nothing indexed yet"
        );
        if point == "import_file_stored" {
            let audit = work.run(&["audit"]);
            let text = String::from_utf8_lossy(&audit.stderr).into_owned();
            assert!(text.contains("UNINDEXED import/"), "{text}");
            imported(&work, &file, &[]);
            let audit = work.run(&["audit"]);
            let text = String::from_utf8_lossy(&audit.stderr).into_owned();
            assert!(
                audit.status.success() && !text.contains("UNINDEXED"),
                "{text}"
            );
            continue;
        }
        // The next start finishes it (and says so); the file is then known.
        let out = work.run(&["import", file.to_str().unwrap()]);
        let said = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(1), "{point}: {said}");
        assert!(
            said.contains("finished a capture interrupted before it was indexed"),
            "{point}: {said}"
        );
        assert!(
            said.contains("is already imported as capture"),
            "{point}: {said}"
        );
        let listed = String::from_utf8(work.ok(&["captures"])).unwrap();
        assert_eq!(listed.lines().count(), 1, "{point}: {listed}");
        assert!(String::from_utf8_lossy(&work.ok(&["get", &url])).contains(QUOTE));
        let v = work.run(&["verify", "--all"]);
        assert!(
            v.status.success(),
            "{point}: {}",
            String::from_utf8_lossy(&v.stderr)
        );
    }
}

/// A record whose digest never matched is imported with that problem, and
/// its export verifies offline saying so: the logged import accounts for
/// it (its bytes are still held to the digests in the leaf).
#[test]
fn a_record_damaged_before_it_arrived_is_accounted_for_by_the_logged_import() {
    let work = Workdir::new("");
    let good = response(
        "00000000-0000-4000-8000-0000000000c1",
        "http://news.example/report",
        "2016-11-29T10:04:00Z",
        b"nearly 25 civilians were killed in Bab Alnairab",
    );
    let mut damaged = response(
        "00000000-0000-4000-8000-0000000000c2",
        "http://news.example/photo",
        "2016-11-29T10:04:01Z",
        b"a photo's bytes",
    );
    let at = find(&damaged, b"photo's").unwrap();
    damaged[at] = b'P';
    let file = work.path().join("damaged.warc");
    std::fs::write(&file, [good, damaged].concat()).unwrap();
    let c = imported(&work, &file, &[]);
    let problems = &info(&c).problems;
    assert_eq!(problems.len(), 2, "block and payload: {problems:?}");
    assert!(problems
        .iter()
        .all(|p| p.record.as_deref() == Some("<urn:uuid:00000000-0000-4000-8000-0000000000c2>")));
    let v = work.run(&["verify", c.id.as_str()]);
    let said = String::from_utf8_lossy(&v.stderr).into_owned();
    assert!(v.status.success() && said.contains("as imported"), "{said}");
    work.ok(&["log", "checkpoint"]);
    let pkg = work.export_wacz(c.id.as_str(), "damaged.wacz");
    let offline = work.run(&["verify", pkg.to_str().unwrap()]);
    let said = String::from_utf8_lossy(&offline.stderr).into_owned();
    assert!(offline.status.success(), "{said}");
    assert!(said.contains("as imported: record"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_past_the_cap_is_refused_and_leaves_nothing_behind() {
    use std::io::{Read, Write};
    let work = Workdir::new("");
    let config = work.path().join("custody.toml");
    let mut text = std::fs::read_to_string(&config).unwrap_or_default();
    text.push_str("\n[daemon]\nmax_upload_bytes = 4096\n");
    std::fs::write(&config, text).unwrap();
    let archivist = web::token(&work, "archivist");
    let server = web::serve(&work, &[]);
    let auth = format!("Bearer {archivist}");
    let big = vec![b'W'; 20_000];
    // Declared: refused before a byte is read.
    let declared = web::request(
        server.addr,
        "POST",
        "/api/v1/imports?name=big.warc",
        &[("Authorization", &auth)],
        Some(&big),
    );
    assert_eq!(declared.status, 413, "{}", declared.text());
    assert!(
        declared
            .text()
            .contains("daemon.max_upload_bytes (4096 bytes)"),
        "{}",
        declared.text()
    );
    // Undeclared (chunked): refused once the cap is passed.
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let head = format!(
        "POST /api/v1/imports?name=big.warc HTTP/1.1\r\nHost: {}\r\nAuthorization: {auth}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        server.addr
    );
    s.write_all(head.as_bytes()).unwrap();
    for _ in 0..10 {
        if s.write_all(format!("{:x}\r\n", 2000).as_bytes()).is_err()
            || s.write_all(&big[..2000]).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    // Nothing kept: no capture, no partial file in the scratch directory.
    let listed = work.ok(&["captures", "--json"]);
    assert!(listed.is_empty(), "{}", String::from_utf8_lossy(&listed));
    let scratch = work.path().join("custody-data");
    let left: Vec<_> = crate::daemon::walk(&scratch)
        .into_iter()
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("import-"))
        })
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
