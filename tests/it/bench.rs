//! Benchmarks against peers (capture against `wget --warc-file`, search
//! against `grep -r`), measured in the same run
//! on the same loopback server (ignored: run them with
//! `cargo test --release --test it -- --ignored bench_capture --nocapture --test-threads=1`).
//!
//! Each prints both wall-clock times, the ratio, and both peak resident
//! set sizes. Targets (issue: full-fidelity capture): custody at least five
//! times faster than wget's compressed WARC output on a 256 MiB media file,
//! with a peak under 100 MiB.

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use axum::http::header;
use axum::routing::get;
use axum::Router;

use crate::capture::run_measuring_peak_rss;
use crate::cli::Workdir;
use crate::site;

const MEDIA_BYTES: usize = 256 << 20;

async fn serve_media() -> SocketAddr {
    // One incompressible MiB sent 256 times: deflate's 32 KiB window cannot
    // see the repetition, the server costs both clients the same and
    // little, and this process stays small (a child's peak RSS as wait4
    // reports it includes what its parent held at fork).
    let block = axum::body::Bytes::from(site::media_bytes(b"\0\0\0\x20ftypisom", 1 << 20, 7));
    let app = Router::new().route(
        "/bench/evidence.mp4",
        get(move || {
            let block = block.clone();
            async move {
                let chunks =
                    (0..MEDIA_BYTES >> 20).map(move |_| Ok::<_, std::io::Error>(block.clone()));
                axum::response::Response::builder()
                    .header(header::CONTENT_TYPE, "video/mp4")
                    .header(header::CONTENT_LENGTH, MEDIA_BYTES)
                    .body(axum::body::Body::from_stream(futures_util::stream::iter(
                        chunks,
                    )))
                    .expect("response")
            }
        }),
    );
    site::serve_app(app).await
}

struct Run {
    took: Duration,
    peak: u64,
}

fn timed(cmd: Command) -> Run {
    let started = Instant::now();
    let (status, peak, _) = run_measuring_peak_rss(cmd);
    let took = started.elapsed();
    assert!(status.success() || status.code() == Some(8), "{status}");
    Run { took, peak }
}

fn custody(work: &Workdir, url: &str) -> Run {
    let mut cmd = work.command(&["capture", "--allow-private", "--no-dedup", url]);
    cmd.stderr(std::process::Stdio::null());
    timed(cmd)
}

fn wget(dir: &std::path::Path, args: &[&str], url: &str) -> Run {
    let mut cmd = Command::new("wget");
    cmd.current_dir(dir)
        .args(["-q", "--tries=1", "-e", "robots=off", "--warc-file=wget"])
        .args(args)
        .arg(url);
    timed(cmd)
}

fn report(what: &str, ours: &Run, theirs: &Run) {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "{what}: custody {:.2} s (peak {:.0} MiB), wget --warc-file {:.2} s (peak {:.0} MiB); custody is {:.1}x faster",
        ours.took.as_secs_f64(),
        mib(ours.peak),
        theirs.took.as_secs_f64(),
        mib(theirs.peak),
        theirs.took.as_secs_f64() / ours.took.as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --ignored bench_capture --nocapture"]
async fn bench_capture_media_against_wget() {
    let addr = serve_media().await;
    let url = format!("http://{addr}/bench/evidence.mp4");
    let work = Workdir::new("");
    let dir = tempfile::tempdir().unwrap();
    // One warm-up each, then the best of three.
    let _ = custody(&work, &url);
    let _ = wget(dir.path(), &["-O", "/dev/null"], &url);
    let best = |f: &dyn Fn() -> Run| {
        (0..3)
            .map(|_| f())
            .min_by_key(|r| r.took)
            .expect("three runs")
    };
    let ours = best(&|| custody(&work, &url));
    let theirs = best(&|| wget(dir.path(), &["-O", "/dev/null"], &url));
    report("256 MiB media file", &ours, &theirs);
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --ignored bench_capture --nocapture"]
async fn bench_capture_page_with_requisites_against_wget() {
    let addr = site::serve_http().await;
    let url = format!("http://{addr}{}", site::RICH_PATH);
    let work = Workdir::new("");
    let runs = 5;
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    let mut wget_found = 0;
    for i in 0..runs {
        ours.push(custody(&work, &url));
        let dir = tempfile::tempdir().unwrap();
        theirs.push(wget(dir.path(), &["--page-requisites", "-H", "-nd"], &url));
        if i == 0 {
            wget_found = warc::WarcReader::from_path_gzip(dir.path().join("wget.warc.gz"))
                .unwrap()
                .iter_records()
                .filter_map(Result::ok)
                .filter(|r| r.warc_type() == &warc::RecordType::Response)
                .count();
        }
    }
    let best = |v: Vec<Run>| v.into_iter().min_by_key(|r| r.took).expect("runs");
    report(
        "article page with its requisites",
        &best(ours),
        &best(theirs),
    );
    println!(
        "resources: custody {} (the page and all {} requisites), wget --page-requisites {}",
        site::rich_requisites().len() + 1,
        site::rich_requisites().len(),
        wget_found
    );
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --ignored bench_audit --nocapture"]
async fn bench_audit_against_sha256sum() {
    // Four 64 MiB captures: the same objects for both.
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    for i in 0..4 {
        let url = format!("http://{addr}/media/generated.mp4?bytes={}", (64 << 20) + i);
        work.ok(&["capture", "--allow-private", &url]);
    }
    let objects = work.objects();
    let total: u64 = objects
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    let mb = total as f64 / 1e6;
    let best = |f: &dyn Fn() -> Duration| (0..3).map(|_| f()).min().expect("runs");
    let ours = best(&|| {
        let started = Instant::now();
        work.ok(&["audit"]);
        started.elapsed()
    });
    let theirs = best(&|| {
        let started = Instant::now();
        let out = Command::new("sha256sum").args(&objects).output().unwrap();
        assert!(out.status.success());
        started.elapsed()
    });
    let (a, s) = (mb / ours.as_secs_f64(), mb / theirs.as_secs_f64());
    println!(
        "audit of {} objects, {mb:.0} MB: custody audit {a:.0} MB/s, sha256sum {s:.0} MB/s; custody at {:.0}% of sha256sum",
        objects.len(),
        100.0 * a / s
    );
}

/// Import of a 512 MiB media WARC against warcio over the same file:
/// `warcio index` reads every record, `warcio check` also recomputes its
/// digests; import does both, and copies and stores the file twice (as
/// received and as the access copy), each copy hashed again once stored.
#[cfg(feature = "interop")]
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --ignored bench_import --nocapture"]
async fn bench_import_against_warcio_index() {
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    let work = Workdir::new("");
    let file = work.path().join("media.warc.gz");
    crate::import::large_warc(&file, 512 << 20);
    let mut ours = work.command(&["import", file.to_str().unwrap()]);
    ours.stderr(std::process::Stdio::null());
    let ours = timed(ours);
    for verb in ["index", "check"] {
        let mut theirs = crate::interop::tool("warcio");
        theirs
            .arg(verb)
            .arg(&file)
            .stdout(std::process::Stdio::null());
        let theirs = timed(theirs);
        println!(
            "import of a 512 MiB WARC: custody import {:.2} s (peak {:.0} MiB), warcio {verb} {:.2} s (peak {:.0} MiB); custody takes {:.1}x warcio's time",
            ours.took.as_secs_f64(),
            mib(ours.peak),
            theirs.took.as_secs_f64(),
            mib(theirs.peak),
            ours.took.as_secs_f64() / theirs.took.as_secs_f64()
        );
    }
}

/// Pages in the search benchmark's index.
const SEARCH_PAGES: usize = 10_000;

/// The benchmark's page texts: the article's paragraphs in a different
/// order on each page, with words of its own (`page{i}`, one of 100
/// `marker{n}`s).
fn search_page(paragraphs: &[&str], i: usize) -> String {
    let mut text: Vec<&str> = Vec::new();
    for k in 0..6 {
        text.push(paragraphs[(i + k * 7) % paragraphs.len()]);
    }
    format!("{}\n\npage{i} marker{}", text.join("\n\n"), i % 100)
}

/// Fills an index with the benchmark's pages, one capture each.
async fn fill_search_index(index: &dyn custody::index::Index, paragraphs: &[&str]) {
    use custody::index::PageText;
    let start = chrono::DateTime::parse_from_rfc3339("2016-11-29T00:00:00Z")
        .unwrap()
        .with_timezone(&chrono::Utc);
    for i in 0..SEARCH_PAGES {
        let (c, records) = crate::index_conformance::ok_capture(
            start + chrono::Duration::minutes(i as i64),
            &format!("page {i}"),
        );
        index.put_capture(&c, &records, None).await.unwrap();
        let body = search_page(paragraphs, i);
        let text = PageText {
            url: c.seed_url.clone(),
            host: "aleppo-news.example".into(),
            title: Some(format!("Report {i}")),
            folded: custody::search::fold(&body),
            body,
        };
        index
            .put_page_texts(&c.id, &[text], chrono::Utc::now())
            .await
            .unwrap();
    }
}

const SEARCH_QUERIES: &[(&str, &[&str])] = &[
    // (custody's query, grep's fixed-string arguments)
    ("aleppo", &["-w", "aleppo"]),
    ("marker42", &["-w", "marker42"]),
    ("page9876", &["-w", "page9876"]),
    ("\"Bab Alnairab\"", &["bab alnairab"]),
    ("kirby hospitals", &["-w", "kirby"]),
    ("nowhere", &["-w", "nowhere"]),
];

/// Latencies of `runs` rounds of every query: the first page (20 results)
/// with each result's passage cut, as the API answers it.
async fn search_latencies(index: &dyn custody::index::Index, runs: usize) -> Vec<Duration> {
    use custody::index::TextQuery;
    let mut took = Vec::new();
    for _ in 0..runs {
        for (q, _) in SEARCH_QUERIES {
            let started = Instant::now();
            let terms = custody::search::parse_query(q).unwrap();
            let hits = index
                .search_texts(&TextQuery {
                    terms: terms.clone(),
                    newest_first: true,
                    limit: 20,
                    ..Default::default()
                })
                .await
                .unwrap();
            for h in &hits {
                std::hint::black_box(custody::search::passage(&h.body, &terms));
            }
            took.push(started.elapsed());
        }
    }
    took
}

fn percentiles(mut took: Vec<Duration>) -> (f64, f64) {
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |p: f64| ms(took[((took.len() as f64 * p) as usize).min(took.len() - 1)]);
    (at(0.50), at(0.99))
}

/// Full-text search on 10,000 indexed pages, on both backends, against
/// `grep -r -i -F` over the same texts as files (grep has no index: it
/// reads every file for every query, as a search without one would).
#[tokio::test(flavor = "multi_thread")]
#[ignore = "benchmark: run with --ignored bench_search --nocapture"]
async fn bench_search_against_grep() {
    let article = site::article_text();
    let paragraphs: Vec<&str> = article
        .split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let texts = dir.path().join("texts");
    std::fs::create_dir(&texts).unwrap();
    for i in 0..SEARCH_PAGES {
        std::fs::write(texts.join(format!("{i}.txt")), search_page(&paragraphs, i)).unwrap();
    }
    let mut grep_took = Vec::new();
    for _ in 0..5 {
        for (_, args) in SEARCH_QUERIES {
            let started = Instant::now();
            let out = Command::new("grep")
                .args(["-r", "-l", "-i", "-F"])
                .args(*args)
                .arg(&texts)
                .output()
                .unwrap();
            assert!(out.status.code().is_some_and(|c| c <= 1));
            grep_took.push(started.elapsed());
        }
    }
    let (grep50, grep99) = percentiles(grep_took);
    println!(
        "grep -r over {SEARCH_PAGES} texts: p50 {grep50:.1} ms, p99 {grep99:.1} ms ({} queries)",
        SEARCH_QUERIES.len() * 5
    );
    #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
    let mut backends = vec![(
        "SQLite FTS5",
        format!("sqlite://{}", dir.path().join("index.db").display()),
    )];
    #[cfg(feature = "postgres")]
    let schema = crate::index_conformance::PgSchema::new().await;
    #[cfg(feature = "postgres")]
    backends.push(("PostgreSQL", schema.url()));
    for (name, url) in backends {
        let index = custody::index::open(&url).await.unwrap();
        let filling = Instant::now();
        fill_search_index(index.as_ref(), &paragraphs).await;
        let filled = filling.elapsed();
        search_latencies(index.as_ref(), 1).await;
        let (p50, p99) = percentiles(search_latencies(index.as_ref(), 20).await);
        println!(
            "{name}: {SEARCH_PAGES} pages indexed in {:.1} s; search p50 {p50:.1} ms, p99 {p99:.1} ms ({} queries); p50 {:.0}x faster than grep -r",
            filled.as_secs_f64(),
            SEARCH_QUERIES.len() * 20,
            grep50 / p50
        );
    }
    #[cfg(feature = "postgres")]
    schema.drop().await;
}
