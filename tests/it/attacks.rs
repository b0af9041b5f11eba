//! Attacks on evidence, each written as the forger would, then refused:
//! records appended to an export, an original swapped for another record
//! with its id, a second proof record.

use std::io::BufReader;
use std::path::{Path, PathBuf};

use custody::model::{Capture, Sha256};
use custody::warc::{Deflate, RecordHeader, WarcFileReader, WarcWriter};

use crate::cli::{stderr_text, Workdir};
use crate::site;

/// One gzip member of a WARC: where it is and what record it holds.
#[derive(Clone, Debug)]
pub struct Member {
    pub offset: u64,
    pub length: u64,
    pub warc_type: String,
    pub id: String,
    pub target: Option<String>,
}

/// Every record of a `.warc.gz`, in file order.
pub fn members(path: &Path) -> Vec<Member> {
    let file = std::fs::File::open(path).unwrap();
    let mut reader = WarcFileReader::new(BufReader::new(file));
    let mut out = Vec::new();
    while let Some(r) = reader.next_record(&mut |_| {}).unwrap() {
        out.push(Member {
            offset: r.offset,
            length: r.length,
            warc_type: r.head.warc_type().to_string(),
            id: r.head.record_id().to_string(),
            target: r.head.get("WARC-Target-URI").map(str::to_string),
        });
    }
    out
}

/// A `response` record with correct digests, as a forger would write one.
pub fn forged_response(id: &str, target: &str, date: &str, body: &str) -> Vec<u8> {
    let http = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let date = chrono::DateTime::parse_from_rfc3339(date)
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut header = RecordHeader::new("response", id, &date);
    header
        .push("WARC-Target-URI", target)
        .push("Content-Type", "application/http;msgtype=response")
        .push(
            "WARC-Payload-Digest",
            Sha256::of(body.as_bytes()).labelled(),
        );
    let mut w = WarcWriter::new(Vec::new());
    w.write_bytes(&header, http.as_bytes(), Deflate::Compress)
        .unwrap();
    w.finish().unwrap().0
}

/// The bytes of `path` with `insert` placed at `at`, and `remove` (a range)
/// dropped.
fn spliced(path: &Path, at: u64, insert: &[u8], remove: std::ops::Range<u64>) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let mut out = Vec::new();
    for (i, b) in bytes.iter().enumerate() {
        let i = i as u64;
        if i == at {
            out.extend_from_slice(insert);
        }
        if !remove.contains(&i) {
            out.push(*b);
        }
    }
    if at as usize == bytes.len() {
        out.extend_from_slice(insert);
    }
    out
}

/// Two captures of the fixture article (the second full of revisits), the
/// second exported, and the log's published key.
struct Exported {
    work: Workdir,
    second: Capture,
    export: PathBuf,
    key: String,
    addr: std::net::SocketAddr,
}

async fn exported_revisits() -> Exported {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    work.capture(&url);
    let (second, _) = work.capture(&url);
    let export = work.export_warc(second.id.as_str(), "second.warc.gz");
    let key = String::from_utf8(work.ok(&["log", "key"]))
        .unwrap()
        .trim()
        .to_string();
    Exported {
        work,
        second,
        export,
        key,
        addr,
    }
}

/// `custody verify FILE --key KEY`: whether it verified, and what it said.
fn verify(work: &Workdir, file: &Path, key: &str) -> (bool, String) {
    let out = work.run(&["verify", file.to_str().unwrap(), "--key", key]);
    (out.status.success(), stderr_text(&out))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_record_appended_to_an_export_is_refused_and_named() {
    let e = exported_revisits().await;
    let (ok, said) = verify(&e.work, &e.export, &e.key);
    assert!(ok, "the genuine export verifies: {said}");

    // A response for another page of the same site, dated the next day,
    // with correct digests, appended after the proof or slipped in before
    // it, among the originals.
    let forged_id = "<urn:uuid:6e1f4a8c-2b9d-4c1e-8f7a-5d3b2a1c0e9f>";
    let later = format!("http://{}/2016/11/30/regime-denies-the-airstrikes/", e.addr);
    let forged = forged_response(
        forged_id,
        &later,
        "2016-11-30T10:04:00Z",
        "<p>No civilians were harmed in Bab Alnairab.</p>",
    );
    let parts = members(&e.export);
    let proof = parts.last().unwrap();
    assert!(proof
        .target
        .as_deref()
        .unwrap()
        .starts_with("urn:custody:proof:"));
    let end = std::fs::metadata(&e.export).unwrap().len();
    for (place, at) in [("after the proof", end), ("before the proof", proof.offset)] {
        let file = e.work.path().join(format!("forged-{}.warc.gz", at));
        std::fs::write(&file, spliced(&e.export, at, &forged, 0..0)).unwrap();
        let (ok, said) = verify(&e.work, &file, &e.key);
        assert!(!ok, "a record appended {place} must not verify: {said}");
        assert!(
            said.contains(forged_id),
            "{place}: names the record: {said}"
        );
        assert!(!said.contains(": verified"), "{said}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_original_replaced_by_another_record_with_its_id_is_refused() {
    let e = exported_revisits().await;
    let parts = members(&e.export);
    let warc_bytes = e.second.warc.as_ref().unwrap().bytes;
    let original = parts
        .iter()
        .find(|m| m.offset >= warc_bytes && m.warc_type == "response")
        .expect("the export carries the originals of its revisits")
        .clone();
    let target = original.target.clone().unwrap();
    // Same record id, same URL: another body (another payload digest).
    let swapped = forged_response(
        &original.id,
        &target,
        "2016-11-29T10:04:00Z",
        "<p>The report was withdrawn.</p>",
    );
    let file = e.work.path().join("swapped.warc.gz");
    let range = original.offset..original.offset + original.length;
    std::fs::write(&file, spliced(&e.export, original.offset, &swapped, range)).unwrap();
    let (ok, said) = verify(&e.work, &file, &e.key);
    assert!(!ok, "a swapped original must not verify: {said}");
    assert!(said.contains(&original.id), "{said}");

    // A second proof record (a forger's own, with the same contents) is
    // refused too: exactly one, last.
    let proof = parts.last().unwrap();
    let bytes = std::fs::read(&e.export).unwrap();
    let proof_bytes = &bytes[proof.offset as usize..(proof.offset + proof.length) as usize];
    let file = e.work.path().join("two-proofs.warc.gz");
    std::fs::write(&file, [&bytes[..], proof_bytes].concat()).unwrap();
    let (ok, said) = verify(&e.work, &file, &e.key);
    assert!(!ok, "two proof records must not verify: {said}");
    assert!(said.contains("proof"), "{said}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wacz_with_a_repeated_member_name_is_refused_with_both_keys_pinned() {
    use custody::wacz::zip::{read_strict, ZipWriter};
    let e = exported_revisits().await;
    let wacz = e.work.path().join("second.wacz");
    let out = e.work.run(&[
        "export",
        e.second.id.as_str(),
        "--format",
        "wacz",
        "-o",
        wacz.to_str().unwrap(),
    ]);
    let said = stderr_text(&out);
    let package_key = said
        .rsplit("signed by public key ")
        .next()
        .unwrap()
        .trim()
        .to_string();
    let verify_pinned = |file: &Path| {
        let out = e.work.run(&[
            "verify",
            file.to_str().unwrap(),
            "--package-key",
            &package_key,
            "--key",
            &e.key,
        ]);
        (out.status.success(), stderr_text(&out))
    };
    let (ok, said) = verify_pinned(&wacz);
    assert!(ok, "the genuine package verifies: {said}");

    // The same package, in custody's exact ZIP form, with a second
    // `pages/pages.jsonl` listing a page the capture never had: one viewer
    // shows the first member, another the last.
    let bytes = std::fs::read(&wacz).unwrap();
    let members = read_strict(&mut std::io::Cursor::new(&bytes)).unwrap();
    let mut forged = ZipWriter::new(Vec::new(), chrono::Utc::now());
    let lie = format!(
        "{{\"format\": \"json-pages-1.0\", \"id\": \"pages\"}}\n{{\"url\": \"http://{}/2016/11/30/regime-denies-the-airstrikes/\", \"ts\": \"2016-11-30T10:04:00Z\"}}\n",
        e.addr
    );
    forged
        .add_bytes("pages/pages.jsonl", lie.as_bytes())
        .unwrap();
    for m in &members {
        let data = &bytes[m.data_offset as usize..(m.data_offset + m.size) as usize];
        forged.add_bytes(&m.name, data).unwrap();
    }
    let file = e.work.path().join("repeated.wacz");
    std::fs::write(&file, forged.finish().unwrap().0).unwrap();
    let (ok, said) = verify_pinned(&file);
    assert!(!ok, "a repeated member name must not verify: {said}");
    assert!(
        said.contains("pages/pages.jsonl") && said.contains("twice"),
        "{said}"
    );
}

/// An installation with everything a reader is shown: two captures of the
/// article (the second with revisits), a claim linked to both, an audit
/// (fixity events), accesses, and a signed checkpoint.
async fn installation() -> (Workdir, Vec<Capture>, String) {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let (first, _) = work.capture(&url);
    let (second, _) = work.capture(&url);
    let claim = work.claim_linked_to(&[&first, &second]);
    work.ok(&["get", &url]);
    work.ok(&["audit"]);
    work.ok(&["log", "checkpoint"]);
    let out = work.run(&["verify", "--all"]);
    assert!(out.status.success(), "untouched: {}", stderr_text(&out));
    (work, vec![first, second], claim)
}

/// Runs `sql` against a copy of `work`'s index and returns what `verify
/// --all` says of the copy (which must fail).
async fn verify_all_after(work: &Workdir, what: &str, sql: &str) -> String {
    let copy = work.copy();
    let pool = copy.index_pool().await;
    let done = sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_string()))
        .execute(&pool)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(done.rows_affected() > 0, "{what}: the edit changed nothing");
    pool.close().await;
    let out = copy.run(&["verify", "--all"]);
    let said = stderr_text(&out);
    assert!(!out.status.success(), "{what} went unnoticed: {said}");
    said
}

#[tokio::test(flavor = "multi_thread")]
async fn every_row_a_reader_is_shown_is_checked_against_the_log() {
    let (work, captures, claim) = installation().await;
    let second = &captures[1];
    let records: Vec<serde_json::Value> = {
        let shown: serde_json::Value =
            serde_json::from_slice(&work.ok(&["show", second.id.as_str(), "--json"])).unwrap();
        shown["records_detail"].as_array().unwrap().clone()
    };
    let page = records
        .iter()
        .find(|r| r["warc_type"] == "revisit" || r["warc_type"] == "response")
        .unwrap();
    let record = page["record_id"].as_str().unwrap();
    let link: String = {
        let shown: serde_json::Value =
            serde_json::from_slice(&work.ok(&["claim", "show", &claim, "--json"])).unwrap();
        shown["evidence"][0]["link_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for (what, sql, named) in [
        (
            "a record's time",
            format!("UPDATE record SET date = '2015-01-01T00:00:00.000000Z', timestamp = '20150101000000' WHERE record_id = '{record}'"),
            record.to_string(),
        ),
        (
            "a record's status",
            format!("UPDATE record SET status = 404 WHERE record_id = '{record}'"),
            record.to_string(),
        ),
        (
            "a record's type",
            format!("UPDATE record SET warc_type = 'resource' WHERE record_id = '{record}'"),
            record.to_string(),
        ),
        (
            "a resource row",
            format!("UPDATE resource SET status = 410 WHERE capture_id = '{}' AND seq = 0", second.id),
            second.id.to_string(),
        ),
        (
            "a resource row deleted",
            format!("DELETE FROM resource WHERE capture_id = '{}' AND seq = 1", second.id),
            second.id.to_string(),
        ),
        (
            "a claim's text",
            format!("UPDATE claim SET text = 'Nearly 30 civilians were killed' WHERE id = '{claim}'"),
            claim.clone(),
        ),
        (
            "a link's relation",
            format!("UPDATE evidence_link SET relation = 'refutes' WHERE id = '{link}'"),
            link.clone(),
        ),
        (
            "a link deleted",
            format!("DELETE FROM evidence_link WHERE id = '{link}'"),
            link.clone(),
        ),
        (
            "a custody event deleted",
            format!("DELETE FROM custody_event WHERE object_kind = 'claim' AND object_id = '{claim}' AND event = 'linked'"),
            claim.clone(),
        ),
        (
            "a fixity event deleted",
            "DELETE FROM fixity_event WHERE id = (SELECT MAX(id) FROM fixity_event)".to_string(),
            "fixity".to_string(),
        ),
        (
            "every checkpoint row deleted",
            "DELETE FROM checkpoint".to_string(),
            "checkpoint".to_string(),
        ),
    ] {
        let said = verify_all_after(&work, what, &sql).await;
        assert!(
            said.lines().any(|l| l.contains("FAIL") && l.contains(&named)),
            "{what}: the failure names {named}: {said}"
        );
    }

    // `log check` consults the store's signed notes, not only the index.
    let copy = work.copy();
    let pool = copy.index_pool().await;
    sqlx::query("DELETE FROM checkpoint")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let out = copy.run(&["log", "check"]);
    assert!(!out.status.success(), "{}", stderr_text(&out));
    assert!(
        stderr_text(&out).contains("not in the index"),
        "{}",
        stderr_text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn claim_show_refuses_a_link_or_claim_whose_row_is_not_its_leaf() {
    let (work, _, claim) = installation().await;
    let link: String = {
        let shown: serde_json::Value =
            serde_json::from_slice(&work.ok(&["claim", "show", &claim, "--json"])).unwrap();
        shown["evidence"][0]["link_id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let copy = work.copy();
    let pool = copy.index_pool().await;
    sqlx::query("UPDATE evidence_link SET relation = 'refutes' WHERE id = $1")
        .bind(&link)
        .execute(&pool)
        .await
        .unwrap();
    let out = copy.run(&["claim", "show", &claim]);
    let said = crate::cli::output_text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(!said.contains("refutes verified"), "{said}");
    assert!(
        said.contains("supports NOT VERIFIED"),
        "the logged relation, flagged: {said}"
    );
    sqlx::query("UPDATE claim SET text = 'Nearly 30 civilians were killed' WHERE id = $1")
        .bind(&claim)
        .execute(&pool)
        .await
        .unwrap();
    let out = copy.run(&["claim", "show", &claim]);
    let said = crate::cli::output_text(&out);
    assert!(!out.status.success(), "{said}");
    assert!(
        !said.contains("Nearly 30 civilians"),
        "the edited text is not shown: {said}"
    );
    assert!(said.contains("log"), "{said}");
}

/// A package padded with a flood of tiny records (each cheap to write,
/// each a failure to list) is refused in bounded memory and output: the
/// verifier keeps nothing per record beyond the first failures it lists.
#[tokio::test(flavor = "multi_thread")]
async fn a_flood_of_tiny_records_is_refused_in_bounded_memory() {
    const FLOOD: usize = 100_000;
    let e = exported_revisits().await;
    let date = chrono::DateTime::parse_from_rfc3339("2016-11-30T10:04:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let mut w = WarcWriter::new(Vec::new());
    for n in 0..FLOOD {
        let id = format!("<urn:uuid:00000000-0000-4000-8000-{n:012}>");
        let mut header = RecordHeader::new("resource", &id, &date);
        header.push("WARC-Target-URI", format!("urn:flood:{n}"));
        w.write_bytes(&header, b"x", Deflate::Store).unwrap();
    }
    let flood = w.finish().unwrap().0;
    let proof = members(&e.export).last().unwrap().offset;
    let file = e.work.path().join("flooded.warc.gz");
    std::fs::write(&file, spliced(&e.export, proof, &flood, 0..0)).unwrap();
    let size = std::fs::metadata(&file).unwrap().len();

    let cmd = e
        .work
        .command(&["verify", file.to_str().unwrap(), "--key", &e.key, "--json"]);
    let (status, peak, stdout) =
        tokio::task::spawn_blocking(move || crate::capture::run_measuring_peak_rss(cmd))
            .await
            .unwrap();
    assert!(!status.success(), "a flooded package must not verify");
    let report: serde_json::Value = serde_json::from_slice(&stdout).unwrap();
    let checks = report["checks"].as_array().unwrap();
    assert!(checks.len() <= 210, "{} checks listed", checks.len());
    let further = checks
        .iter()
        .find(|c| c["item"] == "further failures")
        .expect("the unlisted failures are counted");
    assert!(
        further["detail"]
            .as_str()
            .unwrap()
            .contains(" more, not listed"),
        "{further}"
    );
    println!(
        "verify of {FLOOD} extra records ({} MiB): peak RSS {} MiB",
        size >> 20,
        peak >> 20
    );
    assert!(
        peak < 64 << 20,
        "peak RSS {} MiB for a {} MiB package",
        peak >> 20,
        size >> 20
    );
}
