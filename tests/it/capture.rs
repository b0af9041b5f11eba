//! End-to-end captures through the CLI against the fixture site.

use std::io::{BufReader, Read};
use std::path::Path;

use custody::model::{CaptureStatus, Sha256};
use custody::warc::{ScannedRecord, WarcFileReader};

use crate::cli::{output_text, stderr_text, Workdir};
use crate::site;

/// Every record of a WARC file, with its block bytes (small files only).
fn records_with_blocks(path: &Path) -> Vec<(ScannedRecord, Vec<u8>)> {
    // Our reader gives offsets and computed digests; the block bytes come
    // from the independent `warc` crate below, so compare both.
    let mut reader = WarcFileReader::new(BufReader::new(
        std::fs::File::open(path).expect("open warc"),
    ));
    let mut scanned = Vec::new();
    while let Some(r) = reader.next_record(&mut |_| {}).expect("read record") {
        scanned.push(r);
    }
    let blocks: Vec<Vec<u8>> = warc::WarcReader::from_path_gzip(path)
        .expect("warc crate opens the file")
        .iter_records()
        .map(|r| r.expect("warc crate reads every record").body().to_vec())
        .collect();
    assert_eq!(
        scanned.len(),
        blocks.len(),
        "both readers see the same records"
    );
    scanned.into_iter().zip(blocks).collect()
}

fn sha256_file(path: &Path) -> Sha256 {
    let mut f = std::fs::File::open(path).expect("open");
    let mut data = Vec::new();
    f.read_to_end(&mut data).expect("read");
    Sha256::of(&data)
}

#[tokio::test(flavor = "multi_thread")]
async fn article_capture_is_complete_content_addressed_and_readable_by_an_independent_reader() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let (capture, out) = work.capture(&url);
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert_eq!(capture.status, CaptureStatus::Ok);
    assert_eq!(capture.seed_url, url);
    assert!(capture.finished_at >= capture.started_at);

    // Every requisite was fetched once, with the digest of what was served.
    let article = site::article_html();
    let seed = capture
        .resources
        .iter()
        .find(|r| r.url == url)
        .expect("seed resource");
    assert_eq!(seed.status, Some(200));
    assert_eq!(seed.payload_sha256, Some(Sha256::of(article.as_bytes())));
    for (path, mime, body) in site::requisites() {
        let want = format!("http://{addr}{path}");
        let found: Vec<_> = capture.resources.iter().filter(|r| r.url == want).collect();
        assert_eq!(found.len(), 1, "{want} fetched exactly once");
        assert_eq!(found[0].status, Some(200), "{want}");
        assert_eq!(found[0].mime.as_deref(), Some(mime), "{want}");
        assert_eq!(found[0].payload_sha256, Some(Sha256::of(&body)), "{want}");
        assert_eq!(found[0].bytes, body.len() as u64);
    }
    assert_eq!(capture.resources.len(), site::requisites().len() + 1);

    // The object key is the WARC's own sha256, and the export is identical.
    let warc = capture.warc.clone().expect("warc");
    assert_eq!(
        warc.key,
        format!(
            "warc/{}/{}.warc.gz",
            &warc.sha256.hex()[..2],
            warc.sha256.hex()
        )
    );
    let stored = work.path().join("custody-data/objects").join(&warc.key);
    assert_eq!(sha256_file(&stored), warc.sha256);
    // The export is the stored WARC, byte for byte, then custody's proof
    // record (a first capture has no revisits to resolve).
    let exported = work.export_warc(capture.id.as_str(), "article.warc.gz");
    let exported_bytes = std::fs::read(&exported).unwrap();
    assert_eq!(
        Sha256::of(&exported_bytes[..warc.bytes as usize]),
        warc.sha256
    );
    let tail = records_with_blocks(&exported);
    let (proof, _) = tail.last().unwrap();
    assert_eq!(proof.head.warc_type(), "metadata");
    assert!(proof
        .head
        .get("WARC-Target-URI")
        .unwrap()
        .starts_with("urn:custody:proof:"));

    // Structure: warcinfo first, every record WARC/1.1, digests hold, and
    // each response is paired with its request.
    let records = records_with_blocks(&stored);
    assert_eq!(records.len() as u64, capture.records);
    assert_eq!(records[0].0.head.warc_type(), "warcinfo");
    assert_eq!(records.last().unwrap().0.head.warc_type(), "metadata");
    for (r, block) in &records {
        assert_eq!(r.head.version, "WARC/1.1");
        r.verify_digests().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            Sha256::of(block),
            r.block_sha256,
            "the warc crate reads the same block"
        );
        assert_eq!(
            r.head.get("WARC-Block-Digest"),
            Some(Sha256::of(block).labelled().as_str())
        );
    }
    let responses: Vec<_> = records
        .iter()
        .filter(|(r, _)| r.head.warc_type() == "response")
        .collect();
    let requests: Vec<_> = records
        .iter()
        .filter(|(r, _)| r.head.warc_type() == "request")
        .collect();
    assert_eq!(responses.len(), capture.resources.len());
    assert_eq!(requests.len(), responses.len());
    for (resp, _) in &responses {
        let req_id = resp
            .head
            .get("WARC-Concurrent-To")
            .expect("response names its request");
        let (req, req_block) = requests
            .iter()
            .find(|(q, _)| q.head.record_id() == req_id)
            .expect("request exists");
        assert_eq!(
            req.head.get("WARC-Concurrent-To"),
            Some(resp.head.record_id())
        );
        assert_eq!(
            req.head.get("WARC-Target-URI"),
            resp.head.get("WARC-Target-URI")
        );
        assert_eq!(resp.head.get("WARC-IP-Address"), Some("127.0.0.1"));
        assert_eq!(resp.head.get("WARC-Protocol"), Some("http/1.1"));
        assert!(
            req_block.starts_with(b"GET /"),
            "request block is the raw request"
        );
    }

    // The manifest names everything an investigator would ask about.
    let (_, manifest_block) = records.last().unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(manifest_block).expect("manifest is JSON");
    assert_eq!(manifest["capture_id"], capture.id.as_str());
    assert_eq!(
        records.last().unwrap().0.head.get("WARC-Target-URI"),
        Some(format!("urn:custody:capture:{}", capture.id).as_str()),
        "the manifest must not claim the page's URL"
    );
    assert_eq!(
        manifest["software"],
        format!("custody/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(
        manifest["exchanges"].as_array().unwrap().len(),
        capture.resources.len()
    );
    assert!(manifest["options"]["max_resource_bytes"].is_u64());
    assert_eq!(manifest["egress_ips"][0], "127.0.0.1");

    // `get` prints the archived article, from the store.
    let body = work.ok(&["get", &url]);
    assert_eq!(String::from_utf8(body).unwrap(), article);
    let text = site::article_text();
    assert!(text.contains("nearly 25 civilians were killed in airstrikes"));

    // `captures` and `show` agree with `capture`.
    let listed = work.ok(&["captures", "--json"]);
    let listed: custody::model::Capture =
        serde_json::from_slice(listed.split(|b| *b == b'\n').next().unwrap()).unwrap();
    assert_eq!(listed, capture);
    let shown: serde_json::Value =
        serde_json::from_slice(&work.ok(&["show", capture.id.as_str(), "--json"])).unwrap();
    assert_eq!(shown["id"], capture.id.as_str());
    assert_eq!(
        shown["records_detail"].as_array().unwrap().len() as u64,
        capture.records
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn redirect_hops_are_their_own_exchanges_and_get_follows_them() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let short = format!("http://{addr}/short-link");
    let (capture, out) = work.capture(&short);
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert_eq!(capture.resources[0].url, short);
    assert_eq!(capture.resources[0].status, Some(301));
    assert_eq!(
        capture.resources[1].url,
        format!("http://{addr}{}", site::ARTICLE_PATH)
    );
    assert_eq!(capture.resources[1].status, Some(200));
    let body = work.ok(&["get", &short]);
    assert_eq!(String::from_utf8(body).unwrap(), site::article_html());
}

#[tokio::test(flavor = "multi_thread")]
async fn https_capture_records_protocol_cipher_suite_and_certificate_chain() {
    let ca = site::test_ca();
    let addr = site::serve_https(&ca).await;
    let work = Workdir::new(&format!("extra_root_certificates = [{:?}]", ca.ca_pem_path));
    let url = format!("https://localhost:{}{}", addr.port(), site::ARTICLE_PATH);
    let (capture, out) = work.capture(&url);
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert_eq!(capture.status, CaptureStatus::Ok);
    assert!(
        capture.resources.iter().all(|r| r.status == Some(200)),
        "{:?}",
        capture.resources
    );

    let exported = work.stored_warc(&capture);
    let records = records_with_blocks(&exported);
    let (resp, _) = records
        .iter()
        .find(|(r, _)| r.head.warc_type() == "response")
        .unwrap();
    let protocols: Vec<&str> = resp.head.get_all("WARC-Protocol").collect();
    assert_eq!(protocols, vec!["http/1.1", "tls/1.3"]);
    let suite = resp.head.get("WARC-Cipher-Suite").expect("cipher suite");
    assert!(
        suite.starts_with("TLS_") && !suite.starts_with("TLS13_"),
        "{suite}"
    );
    let (_, manifest) = records.last().unwrap();
    let manifest: serde_json::Value = serde_json::from_slice(manifest).unwrap();
    let tls = &manifest["exchanges"][0]["tls"];
    assert_eq!(tls["protocol"], "tls/1.3");
    assert_eq!(tls["alpn"], "http/1.1");
    let chain = tls["peer_certificates"].as_array().unwrap();
    assert_eq!(chain.len(), 2, "leaf and CA");
    assert!(chain[0]
        .as_str()
        .unwrap()
        .starts_with("-----BEGIN CERTIFICATE-----\n"));

    // Without the test CA the same capture fails on the certificate.
    let untrusting = Workdir::new("");
    let (failed, out) = untrusting.capture(&url);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(failed.status, CaptureStatus::Failed);
    assert!(
        failed.error.as_deref().unwrap().contains("TLS handshake"),
        "{:?}",
        failed.error
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn chunked_gzip_response_is_stored_byte_for_byte_with_payload_digest_of_the_dechunked_body() {
    let text = site::article_text();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    let compressed = gz.finish().unwrap();
    // Uneven chunks with an extension and a trailer, header case as sent.
    let mut wire = b"HTTP/1.1 200 OK\r\nServer: nginx/1.10.3\r\ncontent-type: text/plain; charset=utf-8\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\nX-Cache: MISS\r\n\r\n".to_vec();
    let (a, rest) = compressed.split_at(100);
    let (b, c) = rest.split_at(rest.len() / 2);
    for (i, part) in [a, b, c].iter().enumerate() {
        if i == 1 {
            wire.extend_from_slice(format!("{:x};name=value\r\n", part.len()).as_bytes());
        } else {
            wire.extend_from_slice(format!("{:X}\r\n", part.len()).as_bytes());
        }
        wire.extend_from_slice(part);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\nX-Checksum: done\r\n\r\n");
    let addr = site::serve_raw(wire.clone()).await;

    let work = Workdir::new("");
    let url = format!("http://{addr}/2016/11/29/report.txt");
    let (capture, out) = work.capture(&url);
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert_eq!(
        capture.resources[0].payload_sha256,
        Some(Sha256::of(&compressed))
    );
    assert_eq!(capture.resources[0].bytes, compressed.len() as u64);

    let exported = work.stored_warc(&capture);
    let records = records_with_blocks(&exported);
    let (resp, block) = records
        .iter()
        .find(|(r, _)| r.head.warc_type() == "response")
        .unwrap();
    assert_eq!(
        block, &wire,
        "the response block is exactly what was received"
    );
    assert_eq!(
        resp.head.get("WARC-Payload-Digest"),
        Some(Sha256::of(&compressed).labelled().as_str())
    );
    assert!(resp.head.get("WARC-Truncated").is_none());

    // `get` undoes the content-encoding for the reader.
    assert_eq!(String::from_utf8(work.ok(&["get", &url])).unwrap(), text);
}

#[test]
fn bad_input_is_refused_before_anything_is_fetched() {
    let work = Workdir::new("");
    for (args, says) in [
        (vec!["capture", "aleppo news"], "not a valid URL"),
        (
            vec!["capture", "ftp://aleppo-news.example/report.txt"],
            "unsupported scheme",
        ),
        (
            vec!["capture", "http://127.0.0.1:9/"],
            "pass --allow-private",
        ),
        (vec!["capture", "http://[::1]/"], "pass --allow-private"),
        (
            vec!["capture", "http://192.168.1.20/admin"],
            "pass --allow-private",
        ),
        (
            vec!["capture", "http://localhost:8080/"],
            "pass --allow-private",
        ),
        (
            vec!["get", "http://aleppo-news.example/", "--at", "29-11-2016"],
            "--at",
        ),
        (vec!["show", "not-an-id"], "not a capture id"),
    ] {
        let out = work.run(&args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr_text(&out)
        );
        let err = stderr_text(&out);
        assert_eq!(err.lines().count(), 1, "{args:?}: one line, got {err:?}");
        assert!(
            err.starts_with("error: ") && err.contains(says),
            "{args:?}: {err}"
        );
    }
    assert!(
        !work.path().join("custody-data").exists(),
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_sources_become_failed_captures_with_their_reason_and_no_object() {
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    }; // dropped: nothing listens there now
    let silent = site::serve_silent().await;
    let work = Workdir::new("read_timeout_secs = 1\nconnect_timeout_secs = 2");
    let cases = [
        (format!("http://{refused}/"), "connection to"),
        (
            "http://custody-fixture.invalid/".to_string(),
            "DNS lookup of custody-fixture.invalid failed",
        ),
        (format!("http://{silent}/slow"), "timed out"),
    ];
    for (url, says) in &cases {
        let started = std::time::Instant::now();
        let (capture, out) = work.capture(url);
        assert_eq!(out.status.code(), Some(1), "{url}");
        assert!(
            started.elapsed().as_secs() < 20,
            "{url} took {:?}",
            started.elapsed()
        );
        assert_eq!(capture.status, CaptureStatus::Failed);
        let error = capture.error.clone().unwrap();
        assert!(error.contains(says), "{url}: {error}");
        assert!(capture.warc.is_none());
        let err = stderr_text(&out);
        assert!(
            err.lines()
                .any(|l| l.starts_with("error: ") && l.contains(says)),
            "{err}"
        );
    }
    let listed = String::from_utf8(work.ok(&["captures", "--json"])).unwrap();
    let failed: Vec<custody::model::Capture> = listed
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(failed.len(), cases.len());
    assert!(failed
        .iter()
        .all(|c| c.status == CaptureStatus::Failed && c.error.is_some()));
    assert!(
        work.objects().is_empty(),
        "no object in the store: {:?}",
        work.objects()
    );
    let spool: Vec<_> = std::fs::read_dir(work.path().join("custody-data/spool"))
        .unwrap()
        .collect();
    assert!(spool.is_empty(), "spool is clean");
}

/// Runs a command and measures its peak resident memory: a Python wrapper
/// waits for it and reports `getrusage(RUSAGE_CHILDREN).ru_maxrss`, exact
/// for a process with one child.
pub fn run_measuring_peak_rss(
    cmd: std::process::Command,
) -> (std::process::ExitStatus, u64, Vec<u8>) {
    const WRAPPER: &str = "import resource, subprocess, sys\n\
        p = subprocess.run(sys.argv[2:])\n\
        open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))\n\
        sys.exit(p.returncode if p.returncode >= 0 else 128 - p.returncode)\n";
    let report = tempfile::NamedTempFile::new().unwrap();
    let mut wrapped = std::process::Command::new("python3");
    wrapped
        .arg("-c")
        .arg(WRAPPER)
        .arg(report.path())
        .arg(cmd.get_program())
        .args(cmd.get_args());
    for (k, v) in cmd.get_envs() {
        match v {
            Some(v) => wrapped.env(k, v),
            None => wrapped.env_remove(k),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    let out = wrapped
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("python3 runs the command");
    let kib: u64 = std::fs::read_to_string(report.path())
        .unwrap()
        .trim()
        .parse()
        .expect("the wrapper's report");
    (out.status, kib * 1024, out.stdout)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_one_gib_media_file_is_captured_in_bounded_memory() {
    const GIB: u64 = 1 << 30;
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}/media/generated.mp4?bytes={GIB}");
    let cmd = work.command(&["capture", &url, "--json", "--allow-private"]);
    let (status, peak, stdout) = tokio::task::spawn_blocking(move || run_measuring_peak_rss(cmd))
        .await
        .unwrap();
    assert!(status.success());
    let capture: custody::model::Capture = serde_json::from_slice(&stdout).expect("capture JSON");
    assert_eq!(capture.resources[0].bytes, GIB);
    assert!(capture.resources[0].truncated.is_none());
    assert!(
        capture.warc.as_ref().unwrap().bytes > GIB,
        "stored at deflate level 0, not dropped"
    );
    eprintln!(
        "peak RSS capturing 1 GiB: {:.1} MiB",
        peak as f64 / 1048576.0
    );
    assert!(
        peak < 100 * 1024 * 1024,
        "peak RSS {peak} bytes is over 100 MiB"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_capture_interrupted_before_indexing_is_finished_at_the_next_start() {
    // A complete WARC left in the spool, as a crash between writing the file
    // and indexing it would leave it.
    let addr = site::serve_http().await;
    let first = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let (original, _) = first.capture(&url);
    let exported = first.stored_warc(&original);
    let bytes = std::fs::read(&exported).unwrap();

    let crashed = Workdir::new("");
    let spool = crashed.path().join("custody-data/spool");
    std::fs::create_dir_all(&spool).unwrap();
    let whole = spool.join(format!("{}.warc.gz.partial", original.id));
    std::fs::write(&whole, &bytes).unwrap();
    // One cut off mid-write, and one still being written (locked).
    let cut = spool.join(format!(
        "{}.warc.gz.partial",
        custody::model::CaptureId::new()
    ));
    std::fs::write(&cut, &bytes[..bytes.len() - 300]).unwrap();
    let live = spool.join(format!(
        "{}.warc.gz.partial",
        custody::model::CaptureId::new()
    ));
    std::fs::write(&live, &bytes).unwrap();
    let lock = std::fs::File::open(&live).unwrap();
    lock.lock().unwrap();

    // Reading commands leave the spool alone; the next command that writes
    // (here a capture, which may then revisit the recovered records)
    // finishes what it can first.
    assert!(String::from_utf8(crashed.ok(&["captures", "--json"]))
        .unwrap()
        .is_empty());
    assert!(whole.exists(), "`captures` recovers nothing");
    let out = crashed.run(&["capture", &url, "--json", "--allow-private"]);
    assert!(out.status.success(), "{}", stderr_text(&out));
    let next: custody::model::Capture = serde_json::from_slice(&out.stdout).unwrap();
    let listed: Vec<custody::model::Capture> =
        String::from_utf8(crashed.ok(&["captures", "--json"]))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
    assert_eq!(
        listed,
        vec![original.clone(), next.clone()],
        "the capture is back, exactly as it was indexed, before the new one"
    );
    assert_eq!(
        next.change.as_ref().map(|c| &c.previous_capture),
        Some(&original.id),
        "recovered before the new capture began"
    );
    assert!(!whole.exists(), "the finished spool is gone");
    assert!(
        stderr_text(&out).contains("finished a capture interrupted before it was indexed"),
        "{}",
        stderr_text(&out)
    );
    assert!(
        !cut.exists() && cut.with_extension("incomplete").exists(),
        "the cut-off spool is kept aside"
    );
    assert!(
        stderr_text(&out).contains("an interrupted capture is set aside, not indexed"),
        "{}",
        stderr_text(&out)
    );
    assert!(
        live.exists(),
        "a locked spool belongs to a live capture and is left alone"
    );
    let records = crashed.ok(&["show", original.id.as_str(), "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&records).unwrap();
    assert_eq!(
        shown["records_detail"].as_array().unwrap().len() as u64,
        original.records
    );
    assert_eq!(
        String::from_utf8(crashed.ok(&["get", &url])).unwrap(),
        site::article_html()
    );

    // Once its process is gone, the last one is finished too (once).
    drop(lock);
    crashed.ok(&["capture", &url, "--allow-private"]);
    let again: Vec<String> = String::from_utf8(crashed.ok(&["captures", "--json"]))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        again.len(),
        3,
        "same capture id: indexed once, beside the two new ones"
    );
    assert!(!live.exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_uploaded_by_a_dead_attempt_is_adopted_not_captured_again() {
    // What a worker killed between upload and index commit leaves behind:
    // the object in the store and the pending note, no capture row.
    let addr = site::serve_http().await;
    let first = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let (original, _) = first.capture(&url);
    let exported = first.stored_warc(&original);

    let second = Workdir::new("");
    let overrides = custody::config::Overrides {
        config_file: Some(second.path().join("custody.toml")),
        data_dir: Some(second.path().join("custody-data")),
        allow_private: true,
        ..Default::default()
    };
    let archive =
        custody::archive::Archive::open(custody::config::Config::load(&overrides).unwrap())
            .await
            .unwrap();
    let warc = original.warc.clone().unwrap();
    archive
        .store()
        .put_file(&exported, warc.sha256, warc.bytes)
        .await
        .unwrap();
    let pending = custody::model::PendingObject {
        key: warc.key.clone(),
        capture_id: original.id.clone(),
        seed_url: url.clone(),
        schedule: None,
        scheduled_for: None,
        created_at: chrono::Utc::now(),
    };
    archive.index().add_pending_object(&pending).await.unwrap();

    let adopted = custody::recovery::adopt_pending(&archive, &pending)
        .await
        .unwrap()
        .expect("adopted");

    // (Compared as the CLI prints them: instants to the second.)
    let json = |c: &custody::model::Capture| serde_json::to_value(c).unwrap();
    assert_eq!(
        json(&adopted),
        json(&original),
        "the capture is indexed exactly as it would have been"
    );
    let indexed = archive.index().captures(None).await.unwrap();
    assert_eq!(indexed.len(), 1);
    assert_eq!(json(&indexed[0]), json(&original));
    // Adopting again changes nothing; an upload that never completed is dropped.
    assert_eq!(
        custody::recovery::adopt_pending(&archive, &pending)
            .await
            .unwrap(),
        Some(indexed[0].clone())
    );
    let never = custody::model::PendingObject {
        key: custody::store::warc_key(&Sha256::of(b"never uploaded")),
        ..pending.clone()
    };
    let never = custody::model::PendingObject {
        capture_id: custody::model::CaptureId::new(),
        ..never
    };
    archive.index().add_pending_object(&never).await.unwrap();
    assert_eq!(
        custody::recovery::adopt_pending(&archive, &never)
            .await
            .unwrap(),
        None
    );
    assert_eq!(archive.index().captures(None).await.unwrap().len(), 1);
}

/// Discovery without scripts (issue 21): lazy-loading attributes on any
/// element, SVG images and sprites, `data-srcset` on `<source>`,
/// `<link rel=prefetch>` and media named in inline JSON are captured; a
/// JSON value in `data-src` is read for its URLs, never fetched as one;
/// flags (`data-lazy="true"`) are not URLs.
#[tokio::test(flavor = "multi_thread")]
async fn lazy_loading_svg_prefetch_and_inline_json_media_are_captured() {
    use axum::routing::get;
    let media = [
        "/prefetch.jpg",
        "/ld.jpg",
        "/svg-image.png",
        "/sprite.svg",
        "/s-1.webp",
        "/s-2.webp",
        "/bg.jpg",
        "/orig.png",
        "/m.jpg",
        "/d.jpg",
        "/datasrc.gif",
        "/l-1.jpg",
        "/l-2.jpg",
    ];
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let addr = std::sync::Arc::new(std::sync::OnceLock::<std::net::SocketAddr>::new());
    let (log, a) = (seen.clone(), addr.clone());
    let app = axum::Router::new()
        .route(
            "/page/",
            get(move || {
                let live = *a.get().unwrap();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "text/html; charset=UTF-8")],
                        format!(
                            r##"<!DOCTYPE html><html><head><link rel="prefetch" href="/prefetch.jpg">
                            <script type="application/ld+json">{{"@type": "NewsArticle", "image": "http://{live}/ld.jpg"}}</script>
                            </head><body><svg><image href="/svg-image.png"/><use xlink:href="/sprite.svg#icon"/></svg>
                            <picture><source data-srcset="/s-1.webp 1x, /s-2.webp 2x"><img src="data:image/gif;base64,R0lGODlhAQABAAAAACw="></picture>
                            <div data-bg="/bg.jpg" data-original="/orig.png" data-src='{{"mobile": "/m.jpg", "desktop": "/d.jpg"}}'></div>
                            <span datasrc="/datasrc.gif" data-lazy="true"></span>
                            <img data-lazy-srcset="/l-1.jpg 1x, /l-2.jpg 2x"></body></html>"##
                        ),
                    )
                }
            }),
        )
        .fallback(move |uri: axum::http::Uri| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(uri.to_string());
                ([(axum::http::header::CONTENT_TYPE, "image/png")], vec![0u8; 16])
            }
        });
    let live = site::serve_app(app).await;
    addr.set(live).unwrap();
    let work = Workdir::new("");
    let (capture, out) = work.capture(&format!("http://{live}/page/"));
    assert_eq!(capture.status, CaptureStatus::Ok, "{}", stderr_text(&out));
    let urls: Vec<&str> = capture.resources.iter().map(|r| r.url.as_str()).collect();
    for path in media {
        let want = format!("http://{live}{path}");
        assert!(
            urls.contains(&want.as_str()),
            "{want} not captured: {urls:?}"
        );
    }
    let fetched = seen.lock().unwrap().clone();
    assert_eq!(
        fetched.len(),
        media.len(),
        "only the media were fetched (no JSON value, no flag): {fetched:?}"
    );
}

/// What the page answered (issue 15): a page that answered 404 is captured
/// and says so, and a redirect loop that never reached a page says that,
/// in the capture line, `captures`, `show`, the API and the UI's lists; a
/// schedule watching a page for removal sees it.
#[tokio::test(flavor = "multi_thread")]
async fn what_the_page_answered_is_shown_in_every_list() {
    let hostile = site::serve_hostile(std::sync::Arc::new(Vec::new())).await;
    let work = Workdir::new("");
    let (removed, out) = work.capture(&format!("http://{hostile}/404"));
    assert_eq!(removed.status, CaptureStatus::Ok);
    assert!(
        stderr_text(&out).contains(" ok (HTTP 404) "),
        "{}",
        stderr_text(&out)
    );
    let (looped, out) = work.capture(&format!("http://{hostile}/loop-a"));
    assert_eq!(looped.status, CaptureStatus::Ok);
    assert!(
        stderr_text(&out).contains(" ok (no final page: the redirects never reached one) "),
        "{}",
        stderr_text(&out)
    );
    let (broken, _) = work.capture(&format!("http://{hostile}/garbage"));
    assert_eq!(broken.status, CaptureStatus::Failed);
    let listed = output_text(&work.run(&["captures"]));
    assert!(listed.contains("ok (HTTP 404)"), "{listed}");
    assert!(listed.contains("ok (no final page"), "{listed}");
    let shown = output_text(&work.run(&["show", removed.id.as_str()]));
    assert!(shown.contains("ok (HTTP 404)"), "{shown}");

    let server = crate::web::serve(&work, &["--public-read"]);
    let api = crate::web::get(
        server.addr,
        &format!("/api/v1/captures/{}", removed.id),
        None,
    );
    let json: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(json["page_status"], 404, "{json}");
    assert_eq!(json["final_page"], true, "{json}");
    assert_eq!(json["outcome"], "ok (HTTP 404)", "{json}");
    let api = crate::web::get(
        server.addr,
        &format!("/api/v1/captures/{}", looped.id),
        None,
    );
    let json: serde_json::Value = serde_json::from_slice(&api.body).unwrap();
    assert_eq!(json["page_status"], serde_json::Value::Null, "{json}");
    assert_eq!(json["final_page"], false, "{json}");
    let home = crate::web::get(server.addr, "/", None).text();
    assert!(home.contains("ok (HTTP 404)"), "{home}");
    assert!(home.contains("ok (no final page"), "{home}");
    assert!(
        home.contains("failed: invalid HTTP response: not an HTTP response"),
        "a failed capture's reason is in the list: {home}"
    );
}

/// One URL form everywhere (issue 15): a seed typed with a fragment is
/// fetched and indexed without it (the manifest keeps it as typed), so
/// `get` and `captures --url` find it by the very same URL; a lookup that
/// misses names the near URL that was captured; a URL without its scheme
/// is answered with "did you mean".
#[tokio::test(flavor = "multi_thread")]
async fn a_url_is_found_as_typed_and_a_near_miss_names_what_was_captured() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let page = format!("http://{addr}{}", site::ARTICLE_PATH);
    let typed = format!("{page}#comments");
    let (capture, out) = work.capture(&typed);
    assert_eq!(capture.status, CaptureStatus::Ok, "{}", stderr_text(&out));
    assert_eq!(capture.seed_url, page);
    let listed = output_text(&work.run(&["captures", "--url", &typed]));
    assert!(listed.contains(capture.id.as_str()), "{listed}");
    let got = work.run(&["get", &typed, "-o", "page.html"]);
    assert!(got.status.success(), "{}", stderr_text(&got));
    let export = work.export_warc(capture.id.as_str(), "c.warc.gz");
    let warc = std::fs::read(&export).unwrap();
    let mut bytes = Vec::new();
    flate2::read::MultiGzDecoder::new(&warc[..])
        .read_to_end(&mut bytes)
        .unwrap();
    let want = format!("\"seed_as_typed\": \"{typed}\"");
    assert!(
        bytes.windows(want.len()).any(|w| w == want.as_bytes()),
        "the manifest keeps the URL as typed"
    );

    let without_slash = page.trim_end_matches('/').to_string();
    let missed = work.run(&["get", &without_slash, "-o", "x.html"]);
    assert!(!missed.status.success());
    assert!(
        stderr_text(&missed).contains(&format!("captured nearby: {page}")),
        "{}",
        stderr_text(&missed)
    );
    let port = addr.port();
    for (raw, meant) in [
        (
            format!("localhost:{port}/x"),
            format!("did you mean http://localhost:{port}/x"),
        ),
        (
            "example.org/x".to_string(),
            "did you mean http://example.org/x".to_string(),
        ),
    ] {
        for args in [
            vec!["capture", raw.as_str(), "--allow-private"],
            vec!["get", raw.as_str()],
            vec!["captures", "--url", raw.as_str()],
        ] {
            let out = work.run(&args);
            assert_eq!(out.status.code(), Some(2), "{args:?}");
            assert!(
                stderr_text(&out).contains(&meant),
                "{args:?}: {}",
                stderr_text(&out)
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exchange_cut_by_its_step_s_time_says_which_step_and_setting() {
    let drip = site::serve_drip().await;
    let settings = custody::capture::CaptureSettings {
        allow_private: true,
        limits: custody::capture::FetchLimits {
            min_bytes_per_sec: 0,
            ..custody::capture::CaptureSettings::default().limits
        },
        ..custody::capture::CaptureSettings::default()
    };
    let scratch = tempfile::tempdir().unwrap();
    let crawler = custody::capture::Crawler::new(settings, scratch.path().to_path_buf()).unwrap();
    let url = url::Url::parse(&format!("http://{drip}/")).unwrap();
    let budget = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(1 << 30));
    let at = tokio::time::Instant::now() + std::time::Duration::from_millis(1500);
    let fetcher = crawler
        .fetcher()
        .ending_at(at, "browser", "capture.browser_timeout_secs");
    // Cut mid-body: what arrived is kept, and the error names the step.
    let ex = fetcher.fetch(&url, None, &budget).await;
    let error = ex.error.as_ref().expect("cut off").to_string();
    assert_eq!(
        error,
        "cut off when the browser step's time ran out (capture.browser_timeout_secs)"
    );
    let response = ex.response.as_ref().expect("the head arrived");
    assert!(response.truncated.is_some());
    // Past it: nothing is asked of anyone.
    let ex = fetcher.fetch(&url, None, &budget).await;
    assert!(ex.request.is_empty() && ex.response.is_none());
    assert_eq!(ex.error.unwrap().to_string(), error);
}
