//! Full-fidelity capture: every requisite and stream, revisits across
//! captures with self-contained exports, change detection and `diff`, and
//! servers that misbehave.

use std::collections::HashMap;
use std::io::BufReader;
use std::sync::Arc;
use std::time::Duration;

use custody::model::{Capture, CaptureStatus, Sha256};
use custody::warc::WarcFileReader;

use crate::cli::{stderr_text, Workdir};
use crate::site;

fn show(work: &Workdir, capture: &Capture) -> serde_json::Value {
    serde_json::from_slice(&work.ok(&["show", capture.id.as_str(), "--json"])).unwrap()
}

fn record_types(work: &Workdir, capture: &Capture) -> HashMap<String, String> {
    show(work, capture)["records_detail"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["warc_type"] == "response" || r["warc_type"] == "revisit")
        .map(|r| {
            (
                r["target_uri"].as_str().unwrap().to_string(),
                r["warc_type"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_rich_article_is_captured_with_every_requisite_frame_and_stream() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let (capture, out) = work.capture(&format!("http://{addr}{}", site::RICH_PATH));
    assert_eq!(capture.status, CaptureStatus::Ok, "{}", stderr_text(&out));
    let by_url: HashMap<&str, &custody::model::Resource> = capture
        .resources
        .iter()
        .map(|r| (r.url.as_str(), r))
        .collect();
    for (path, _, body) in site::rich_requisites() {
        let url = if path == site::CROSS_ORIGIN_PATH {
            format!("http://localhost:{}{path}", addr.port())
        } else {
            format!("http://{addr}{path}")
        };
        let r = by_url
            .get(url.as_str())
            .unwrap_or_else(|| panic!("{path} is missing from the capture"));
        assert_eq!(r.status, Some(200), "{path}");
        assert_eq!(r.payload_sha256, Some(Sha256::of(&body)), "{path}");
    }
    // The page, and nothing fetched twice or by mistake.
    assert_eq!(capture.resources.len(), site::rich_requisites().len() + 1);
    assert!(capture.resources.iter().all(|r| r.error.is_none()));
}

#[tokio::test(flavor = "multi_thread")]
async fn frame_depth_and_stream_limits_are_kept() {
    let addr = site::serve_http().await;
    let work = Workdir::new(
        "max_frame_depth = 0
max_stream_segments = 2",
    );
    let (capture, _) = work.capture(&format!("http://{addr}{}", site::RICH_PATH));
    assert_eq!(capture.status, CaptureStatus::Ok);
    let urls: Vec<&str> = capture.resources.iter().map(|r| r.url.as_str()).collect();
    let has = |path: &str| urls.iter().any(|u| u.ends_with(path));
    // No frames at depth 0: neither the player nor its media.
    assert!(!has("/embed/player/1207/"), "{urls:?}");
    assert!(!has("/embed/media/1207.mp4"), "{urls:?}");
    // Two stream segments in all: the HLS map and the first segment.
    assert!(has("/live/evacuation/low/index.m3u8"));
    let segments = urls
        .iter()
        .filter(|u| u.contains("/live/evacuation/low/") && !u.ends_with(".m3u8"))
        .count();
    assert_eq!(segments, 2, "{urls:?}");
    // The rest of the page is whole.
    assert!(has("/wp-content/uploads/2016/12/convoy.mp4"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_windows_1256_page_is_decoded_by_its_declared_charset() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let (capture, _) = work.capture(&format!("http://{addr}{}", site::ARABIC_PATH));
    assert_eq!(capture.status, CaptureStatus::Ok);
    let image = format!("http://{addr}{}", site::arabic_image_path());
    let found = capture
        .resources
        .iter()
        .find(|r| r.url == image)
        .unwrap_or_else(|| panic!("{image} not captured: {:?}", capture.resources));
    assert_eq!(found.status, Some(200));
    // And quotes are read in the same charset.
    let claim: serde_json::Value = serde_json::from_slice(&work.ok(&[
        "claim",
        "add",
        "25 civilians killed in Bab Alnairab",
        "--json",
    ]))
    .unwrap();
    work.ok(&[
        "claim",
        "link",
        claim["id"].as_str().unwrap(),
        capture.id.as_str(),
        "--quote",
        "قتل نحو 25 مدنيا في باب النيرب",
    ]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_capture_writes_revisits_and_its_export_stands_alone() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let (first, _) = work.capture(&url);
    let (second, out) = work.capture(&url);
    assert_eq!(second.status, CaptureStatus::Ok);
    assert!(
        first.change.is_none(),
        "a first capture has nothing to compare"
    );
    let change = second.change.clone().expect("compared with the first");
    assert_eq!(change.previous_capture, first.id);
    assert!(!change.changed);
    assert!(
        stderr_text(&out).contains(&format!("page unchanged since capture {}", first.id)),
        "{}",
        stderr_text(&out)
    );

    let types = record_types(&work, &second);
    assert_eq!(types.len(), site::requisites().len() + 1);
    assert!(
        types.values().all(|t| t == "revisit"),
        "every unchanged payload is a revisit: {types:?}"
    );
    // The stored WARC holds no media payloads the first one already has.
    let first_bytes = first.warc.as_ref().unwrap().bytes;
    let second_bytes = second.warc.as_ref().unwrap().bytes;
    assert!(
        second_bytes * 5 < first_bytes,
        "{second_bytes} vs {first_bytes}"
    );

    // The export resolves every revisit: each one's original is in the file.
    let export = work.export_warc(second.id.as_str(), "second.warc.gz");
    let mut reader = WarcFileReader::new(BufReader::new(std::fs::File::open(&export).unwrap()));
    let mut responses = HashMap::new();
    let mut revisits = Vec::new();
    while let Some(r) = reader.next_record(&mut |_| {}).unwrap() {
        r.verify_digests().unwrap();
        let field = |n: &str| r.head.get(n).map(str::to_string);
        match r.head.warc_type() {
            "response" => {
                responses.insert(field("WARC-Record-ID").unwrap(), r.clone());
            }
            "revisit" => {
                assert_eq!(
                    field("WARC-Profile").as_deref(),
                    Some("http://netpreserve.org/warc/1.1/revisit/identical-payload-digest")
                );
                assert!(field("WARC-Refers-To-Date").is_some());
                revisits.push(r.clone());
            }
            _ => {}
        }
    }
    assert_eq!(revisits.len(), site::requisites().len() + 1);
    for v in &revisits {
        let refers_to = v.head.get("WARC-Refers-To").unwrap();
        let original = responses
            .get(refers_to)
            .unwrap_or_else(|| panic!("original {refers_to} is in the export"));
        assert_eq!(
            original.head.get("WARC-Target-URI"),
            v.head.get("WARC-Refers-To-Target-URI")
        );
        assert_eq!(
            original.payload_sha256().unwrap().labelled(),
            v.head.get("WARC-Payload-Digest").unwrap()
        );
    }
    // The independent reader reads the whole export too.
    let n = warc::WarcReader::from_path_gzip(&export)
        .unwrap()
        .iter_records()
        .inspect(|r| assert!(r.is_ok(), "warc crate reads every record"))
        .count();
    assert!(n > revisits.len() * 2);

    // `get` resolves a revisit to its original's payload.
    let (path, _, bytes) = site::requisites()
        .into_iter()
        .find(|(_, m, _)| *m == "video/mp4")
        .unwrap();
    let got = work.ok(&["get", &format!("http://{addr}{path}")]);
    assert_eq!(got, bytes);

    // --no-dedup writes full records.
    let out = work.run(&["capture", &url, "--json", "--allow-private", "--no-dedup"]);
    assert!(out.status.success());
    let third: Capture =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert!(record_types(&work, &third)
        .values()
        .all(|t| t == "response"));
}

#[tokio::test(flavor = "multi_thread")]
async fn diff_shows_a_silent_edit_to_the_article() {
    let (addr, edited) = site::serve_editable().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}/article/");
    let (before, _) = work.capture(&url);
    edited.store(true, std::sync::atomic::Ordering::SeqCst);
    let (after, _) = work.capture(&url);
    assert!(after.change.as_ref().unwrap().changed);

    let d: serde_json::Value = serde_json::from_slice(&work.ok(&[
        "diff",
        before.id.as_str(),
        after.id.as_str(),
        "--json",
    ]))
    .unwrap();
    assert_eq!(d["page_changed"], true);
    let text = d["text"].as_array().unwrap();
    assert_eq!(text.len(), 1, "{text:?}");
    assert_eq!(text[0]["change"], "edited");
    assert!(text[0]["before"]
        .as_str()
        .unwrap()
        .contains("nearly 25 civilians were killed in airstrikes"));
    assert!(text[0]["after"]
        .as_str()
        .unwrap()
        .contains("several people died in an incident"));
    let changed: Vec<&str> = d["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["url"].as_str().unwrap())
        .collect();
    assert_eq!(changed, vec![url.as_str()], "only the page changed");

    let human =
        String::from_utf8(work.ok(&["diff", before.id.as_str(), after.id.as_str()])).unwrap();
    assert!(human.contains("page: changed"), "{human}");
    assert!(
        human.contains("text: 1 edited, 0 added, 0 removed"),
        "{human}"
    );
    assert!(human.contains("    + "), "{human}");

    let same =
        String::from_utf8(work.ok(&["diff", before.id.as_str(), before.id.as_str()])).unwrap();
    assert!(same.contains("page: unchanged"), "{same}");
    let bad = work.run(&["diff", before.id.as_str(), "not-an-id"]);
    assert_eq!(bad.status.code(), Some(2));
}

/// A gzip stream of `mib` MiB of zeros (about 1 KiB per MiB).
fn gzip_bomb(mib: usize) -> Vec<u8> {
    use std::io::Write;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..mib {
        enc.write_all(&zeros).unwrap();
    }
    enc.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_servers_end_in_bounded_time_and_memory_and_the_next_capture_works() {
    let bomb = Arc::new(gzip_bomb(1024));
    let hostile = site::serve_hostile(bomb.clone()).await;
    let good = site::serve_http().await;
    let work = Workdir::new(
        "read_timeout_secs = 3\nresource_timeout_secs = 10\nmax_resource_bytes = 8388608\n\
         min_bytes_per_sec = 200\nthroughput_window_secs = 2",
    );
    let cases = [
        "/endless",
        "/drip",
        "/bomb",
        "/loop?n=0",
        "/loop-a",
        "/headers",
        "/reset",
        "/garbage",
        "/badstatus",
        "/404",
        "/500",
        "/page",
    ];
    let mut urls: Vec<String> = cases
        .iter()
        .map(|c| format!("http://{hostile}{c}"))
        .collect();
    urls.push(format!("http://{good}{}", site::ARTICLE_PATH));
    let mut cmd = work.command(&["capture", "--json", "--allow-private"]);
    cmd.args(&urls);
    let started = std::time::Instant::now();
    let (status, peak, stdout) = crate::capture::run_measuring_peak_rss(cmd);
    let elapsed = started.elapsed();
    assert_eq!(status.code(), Some(1), "some seeds fail, and say so");
    assert!(peak < 200 << 20, "peak RSS {} MiB", peak >> 20);
    assert!(elapsed < Duration::from_secs(120), "{elapsed:?}");
    let captures: Vec<Capture> = String::from_utf8_lossy(&stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(captures.len(), urls.len());
    let by_path: HashMap<&str, &Capture> = cases.iter().copied().zip(&captures).collect();
    for c in &captures {
        let took = (c.finished_at - c.started_at).to_std().unwrap();
        assert!(
            took < Duration::from_secs(20),
            "{} took {took:?}",
            c.seed_url
        );
    }
    let seed = |path: &str| &by_path[path].resources[0];

    let endless = seed("/endless");
    assert_eq!(by_path["/endless"].status, CaptureStatus::Ok);
    assert_eq!(endless.truncated.as_deref(), Some("length"));
    // Cut at the first read past the limit.
    assert!(
        endless.bytes >= 8 << 20 && endless.bytes < (8 << 20) + (256 << 10),
        "{endless:?}"
    );

    let drip = seed("/drip");
    assert_eq!(drip.truncated.as_deref(), Some("time"));
    assert!(
        drip.error
            .as_deref()
            .unwrap()
            .contains("slower than 200 bytes/s"),
        "{drip:?}"
    );

    let bomb_resource = seed("/bomb");
    assert_eq!(bomb_resource.status, Some(200));
    assert_eq!(bomb_resource.bytes, bomb.len() as u64, "stored as received");
    assert_eq!(bomb_resource.truncated, None);

    assert_eq!(
        by_path["/loop?n=0"].resources.len(),
        11,
        "max_redirects + 1 hops"
    );
    assert_eq!(
        by_path["/loop-a"].resources.len(),
        2,
        "a loop ends where it began"
    );

    for (path, says) in [
        ("/headers", "head"),
        ("/garbage", "not an HTTP response"),
        ("/badstatus", "not an HTTP response"),
    ] {
        let c = by_path[path];
        assert_eq!(c.status, CaptureStatus::Failed, "{path}");
        assert!(
            c.error.as_deref().unwrap().contains(says),
            "{path}: {:?}",
            c.error
        );
    }

    let reset = seed("/reset");
    assert_eq!(reset.truncated.as_deref(), Some("disconnect"));
    assert_eq!(reset.bytes, 65_536);

    assert_eq!(seed("/404").status, Some(404));
    assert_eq!(seed("/500").status, Some(500));
    assert_eq!(
        by_path["/404"].status,
        CaptureStatus::Ok,
        "a 404 is evidence too"
    );

    // Requisites that misbehave are recorded in the page's capture: bytes
    // that are not HTTP in a `resource` record, a cut body as truncated.
    let page = by_path["/page"];
    assert_eq!(page.status, CaptureStatus::Ok);
    let detail = show(&work, page);
    let records = detail["records_detail"].as_array().unwrap();
    let record_for = |path: &str| {
        let url = format!("http://{hostile}{path}");
        records
            .iter()
            .find(|r| r["target_uri"] == url.as_str() && r["warc_type"] != "request")
            .unwrap_or_else(|| panic!("no record for {path}"))
    };
    assert_eq!(record_for("/garbage")["warc_type"], "resource");
    assert_eq!(record_for("/headers")["warc_type"], "resource");
    assert_eq!(record_for("/reset")["warc_type"], "response");
    assert_eq!(record_for("/404")["status"], 404);
    let page_resources: HashMap<&str, &custody::model::Resource> =
        page.resources.iter().map(|r| (r.url.as_str(), r)).collect();
    let garbage = page_resources[format!("http://{hostile}/garbage").as_str()];
    assert!(garbage
        .error
        .as_deref()
        .unwrap()
        .contains("not an HTTP response"));

    // And the capture after all of them is whole.
    let last = captures.last().unwrap();
    assert_eq!(last.status, CaptureStatus::Ok);
    assert_eq!(last.resources.len(), site::requisites().len() + 1);
}
