//! One conformance suite for every index backend: each backend's test calls
//! [`conformance`] with a fresh, empty index.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use custody::index::{
    CaptureIndex, ErrorKind, Index, LogIndex, ProvenanceIndex, RunIndex, TokenIndex,
};
use custody::model::{Capture, CaptureId, CaptureStatus, RecordEntry, Resource, Sha256, WarcRef};
use custody::model::{CustodyEvent, NewRun, RunFinish, RunState};

const ARTICLE: &str = "https://aleppo-news.example/2016/11/29/regime-airstrikes/";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

pub fn ok_capture(started: DateTime<Utc>, body: &str) -> (Capture, Vec<RecordEntry>) {
    let warc_sha = Sha256::of(format!("warc of {body} at {started}").as_bytes());
    let payload = Sha256::of(body.as_bytes());
    let capture = Capture {
        id: CaptureId::new(),
        seed_url: ARTICLE.to_string(),
        status: CaptureStatus::Ok,
        error: None,
        started_at: started,
        finished_at: started + Duration::seconds(3),
        warc: Some(WarcRef {
            key: custody::store::warc_key(&warc_sha),
            sha256: warc_sha,
            bytes: 48_213,
        }),
        records: 3,
        resources: vec![Resource {
            url: ARTICLE.to_string(),
            status: Some(200),
            mime: Some("text/html".into()),
            payload_sha256: Some(payload),
            bytes: body.len() as u64,
            truncated: None,
            error: None,
        }],
        schedule: None,
        scheduled_for: None,
        change: None,
        import: None,
        media: None,
        browser: None,
    };
    let rec = |kind: &str, offset: u64, target: Option<&str>| RecordEntry {
        record_id: format!("<urn:uuid:{}>", uuid_like(&capture.id, offset)),
        warc_type: kind.to_string(),
        target_uri: target.map(str::to_string),
        surt: target.map(|_| "example,aleppo-news)/2016/11/29/regime-airstrikes/".to_string()),
        date: started,
        timestamp: custody::model::timestamp14(&started),
        mime: (kind == "response").then(|| "text/html".to_string()),
        status: (kind == "response").then_some(200),
        payload_digest: (kind == "response").then_some(payload),
        block_digest: Sha256::of(format!("{kind}{offset}").as_bytes()),
        offset,
        length: 400,
    };
    let records = vec![
        rec("warcinfo", 0, None),
        rec("response", 400, Some(ARTICLE)),
        rec("request", 800, Some(ARTICLE)),
    ];
    (capture, records)
}

fn uuid_like(id: &CaptureId, n: u64) -> String {
    format!("{}-{n}", id.as_str())
}

/// What the capture cases leave in the index for the later roles.
struct Fixture {
    first: Capture,
    first_records: Vec<RecordEntry>,
    second: Capture,
    failed: Capture,
}

/// Every role's cases, in the order an installation fills them (later roles
/// read what earlier ones wrote). Each case takes only the role it tests.
pub async fn conformance(index: Arc<dyn Index>) {
    let index = index.as_ref();
    let f = captures(index).await;
    let later = runs(index, &f.first.id).await;
    stats(index, later).await;
    let third = revisits(index, &f).await;
    log(index, &f, &third).await;
    fixity(index, index).await;
    investigator_reads(index, &f.first, &f.second).await;
    access_events(index, index, &f.first).await;
    tokens(index).await;
    provenance(index, index, &f).await;
    pending_objects(index).await;
    leadership(index).await;
    exactly_once(index).await;
    imports(index).await;
    full_text(index).await;
    claim_and_file_pages(index).await;
    paused_runs(index).await;
}

/// A paused schedule's runs that were due and never started are skipped,
/// with the reason; one waiting for its retry, and other schedules' runs,
/// are left alone.
async fn paused_runs(index: &dyn RunIndex) {
    let (s, other) = ("paused-reports", "other-reports");
    let first = at("2020-01-01T00:00:00Z");
    for name in [s, other] {
        let planned = [due("2020-01-01T00:00:00Z"), due("2020-01-01T00:05:00Z")];
        index
            .plan_runs(name, ARTICLE, &planned, first)
            .await
            .unwrap();
    }
    let started = index
        .claim_run("node-p", first, first + Duration::seconds(30), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(started.schedule.as_str(), s);
    let retry = RunFinish::Retry {
        capture_id: None,
        error: "connection refused".into(),
        at: at("2020-01-01T00:01:00Z"),
    };
    index
        .finish_run(started.id, "node-p", &retry, first)
        .await
        .unwrap();
    let why = "the schedule was paused";
    let now = at("2020-01-01T00:02:00Z");
    assert_eq!(index.skip_waiting_runs(s, why, now).await.unwrap(), 1);
    assert_eq!(index.skip_waiting_runs(s, why, now).await.unwrap(), 0);
    let states = |runs: Vec<custody::model::Run>| -> Vec<(RunState, Option<String>)> {
        runs.into_iter().map(|r| (r.state, r.error)).collect()
    };
    assert_eq!(
        states(index.runs(Some(s)).await.unwrap()),
        [
            (RunState::Due, Some("connection refused".into())),
            (RunState::Skipped, Some(why.into()))
        ]
    );
    assert!(states(index.runs(Some(other)).await.unwrap())
        .iter()
        .all(|(state, _)| *state == RunState::Due));
}

/// Claims and stored files page by stable cursors, in either order, and
/// walk the same lists as the whole reads.
async fn claim_and_file_pages(index: &dyn Index) {
    use custody::index::WarcFileQuery;
    let claims: Vec<String> = index
        .claims(None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert!(claims.len() >= 2, "{claims:?}");
    let mut by_id = claims.clone();
    by_id.sort();
    for newest_first in [false, true] {
        let mut walked = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let page = index
                .claim_page(None, after.as_deref(), newest_first, 1)
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            walked.extend(page.iter().map(|c| c.id.clone()));
            after = page.last().map(|c| c.id.clone());
        }
        let mut expected = by_id.clone();
        if newest_first {
            expected.reverse();
        }
        assert_eq!(walked, expected, "claims, newest first: {newest_first}");
    }
    let files: Vec<_> = index
        .warc_files()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.sha256)
        .collect();
    for newest_first in [false, true] {
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let q = WarcFileQuery {
                newest_first,
                after,
                limit: 2,
                ..Default::default()
            };
            let page = index.warc_file_page(&q).await.unwrap();
            walked.extend(page.iter().map(|(f, _)| f.sha256));
            match page.last() {
                Some((f, at)) if page.len() == 2 => after = Some((*at, f.sha256)),
                _ => break,
            }
        }
        let mut expected = files.clone();
        if newest_first {
            expected.reverse();
        }
        assert_eq!(walked, expected, "files, newest first: {newest_first}");
    }
    let quarantined = index
        .warc_file_page(&WarcFileQuery {
            quarantined_only: true,
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(quarantined.iter().all(|(f, _)| f.quarantined.is_some()));
}

/// Full-text search: every term required, phrases in order, folded words
/// (case, accents, Arabic marks), the filters, and a cursor in both orders.
async fn full_text(index: &dyn Index) {
    use custody::index::{PageText, TextCursor, TextQuery};
    use custody::search::{fold, parse_query};
    let text = |url: &str, title: &str, body: &str| PageText {
        url: url.into(),
        host: url::Url::parse(url).unwrap().host_str().unwrap().into(),
        title: Some(title.into()),
        body: body.into(),
        folded: fold(&format!("{title}\n{body}")),
    };
    let mut made = Vec::new();
    for (i, day) in ["2016-11-29", "2016-11-30", "2016-12-01"]
        .iter()
        .enumerate()
    {
        let (mut c, records) = ok_capture(at(&format!("{day}T10:00:00Z")), &format!("fts {i}"));
        c.schedule = (i == 2).then(|| "aleppo-daily".to_string());
        index.put_capture(&c, &records, None).await.unwrap();
        assert!(index
            .captures_without_text(10_000)
            .await
            .unwrap()
            .contains(&c.id));
        let texts = vec![
            text(
                ARTICLE,
                "Regime airstrikes on Aleppo",
                "Nearly 25 civilians were killed in Bab Alnairab. John Kirby spoke.",
            ),
            text(
                "https://frames.aleppo-news.example/map.html",
                "خريطة",
                "أطفال حَلَب تحت القصف",
            ),
        ];
        assert!(index
            .put_page_texts(&c.id, &texts, Utc::now())
            .await
            .unwrap());
        // Once: a second indexing leaves the first.
        assert!(!index
            .put_page_texts(&c.id, &texts[..1], Utc::now())
            .await
            .unwrap());
        assert!(!index
            .captures_without_text(10_000)
            .await
            .unwrap()
            .contains(&c.id));
        made.push(c);
    }
    let find = |q: &str, f: &dyn Fn(&mut TextQuery)| {
        let mut query = TextQuery {
            terms: parse_query(q).unwrap(),
            newest_first: true,
            limit: 100,
            ..Default::default()
        };
        f(&mut query);
        async move {
            index
                .search_texts(&query)
                .await
                .unwrap()
                .into_iter()
                .map(|h| (h.capture_id, h.url))
                .collect::<Vec<_>>()
        }
    };
    let none = |_: &mut TextQuery| {};
    let articles: Vec<_> = made
        .iter()
        .rev()
        .map(|c| (c.id.clone(), ARTICLE.to_string()))
        .collect();
    assert_eq!(
        find("KIRBY aleppo", &none).await,
        articles,
        "folded, all terms"
    );
    assert_eq!(find("\"bab alnairab\"", &none).await, articles, "a phrase");
    assert!(find("\"alnairab bab\"", &none).await.is_empty(), "in order");
    assert!(find("kirby nowhere", &none).await.is_empty(), "every term");
    // Arabic: the bare word finds the marked one, and the alef with hamza.
    let arabic = find("حلب اطفال", &none).await;
    assert_eq!(arabic.len(), 3);
    assert!(arabic.iter().all(|(_, u)| u.contains("frames.")));
    let hit = index
        .search_texts(&TextQuery {
            terms: parse_query("حلب").unwrap(),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(hit[0].body, "أطفال حَلَب تحت القصف", "the original text");
    assert_eq!(hit[0].title.as_deref(), Some("خريطة"));
    assert_eq!(hit[0].started_at, made[0].started_at);
    // Filters.
    let site = find("aleppo", &|q| {
        q.host = Some("frames.aleppo-news.example".into())
    })
    .await;
    assert!(
        site.is_empty(),
        "the frame does not say aleppo in Latin letters"
    );
    let site = find("kirby", &|q| q.host = Some("aleppo-news.example".into())).await;
    assert_eq!(site.len(), 3, "a host and its subdomains");
    let day = find("kirby", &|q| {
        q.from = Some(at("2016-11-30T00:00:00Z"));
        q.to = Some(at("2016-11-30T23:59:59Z"));
    })
    .await;
    assert_eq!(day, vec![articles[1].clone()]);
    let scheduled = find("kirby", &|q| q.schedule = Some("aleppo-daily".into())).await;
    assert_eq!(scheduled, vec![articles[0].clone()]);
    assert!(find("kirby", &|q| q.claim = Some("no-such-claim".into()))
        .await
        .is_empty());
    // A cursor walks the results a page at a time, in either order.
    for newest_first in [true, false] {
        let mut walked = Vec::new();
        let mut after: Option<TextCursor> = None;
        loop {
            let q = TextQuery {
                terms: parse_query("kirby").unwrap(),
                newest_first,
                after: after.clone(),
                limit: 2,
                ..Default::default()
            };
            let got = index.search_texts(&q).await.unwrap();
            walked.extend(got.iter().map(|h| h.capture_id.clone()));
            match TextCursor::next_page(&got, 2) {
                Some(c) => after = Some(TextCursor::decode(&c.encode()).unwrap()),
                None => break,
            }
        }
        let mut expected: Vec<_> = articles.iter().map(|(c, _)| c.clone()).collect();
        if !newest_first {
            expected.reverse();
        }
        assert_eq!(walked, expected, "newest first: {newest_first}");
    }
}

/// An imported file: the capture keeps its import, the file as received is
/// a stored object (audited like the rest), its first custody event is
/// `imported` (by its importer, when it arrived), and its leaf is version 3.
async fn imports(index: &dyn Index) {
    let (mut c, records) = ok_capture(at("2016-11-29T10:04:00Z"), "imported from a crawl");
    let file = Sha256::of(b"the crawl as received");
    c.import = Some(custody::model::ImportInfo {
        file: WarcRef {
            key: custody::store::import_key(&file, "warc.gz"),
            sha256: file,
            bytes: 1_417,
        },
        name: "crawl.warc.gz".into(),
        format: "warc.gz".into(),
        source: Some("the newsroom".into()),
        imported_by: Some("token:abcd".into()),
        received_at: at("2024-03-02T10:00:00Z"),
        content_sha256: Sha256::of(b"records"),
        software: vec!["Wget/1.21.3".into()],
        operator: vec![],
        signer: None,
        verified: vec!["3 records read".into()],
        problems: vec![custody::model::ImportProblem {
            record: Some(records[1].record_id.clone()),
            at: Some("offset 400".into()),
            problem: "its block digest does not match".into(),
        }],
        revisits: vec![],
    });
    index.put_capture(&c, &records, None).await.unwrap();
    assert_eq!(index.capture(&c.id).await.unwrap().as_ref(), Some(&c));
    let files = index.warc_files().await.unwrap();
    let i = c.import.as_ref().unwrap();
    assert!(
        files
            .iter()
            .any(|f| f.key == i.file.key && f.sha256 == file),
        "the file as received is a stored object"
    );
    let events = index.events("capture", c.id.as_str()).await.unwrap();
    assert_eq!(events[0].event, "imported");
    assert_eq!(events[0].actor.as_deref(), Some("token:abcd"));
    assert_eq!(events[0].at, i.received_at);
    assert_eq!(events[0], custody::model::first_event(&c));
    let leaves = index.log_leaves_of("capture", c.id.as_str()).await.unwrap();
    assert_eq!(
        custody::tlog::leaf::capture_leaf_version(&leaves[0].data),
        3
    );
}

/// Captures, their records and files, and lookups by URL and time.
async fn captures(index: &dyn CaptureIndex) -> Fixture {
    // Empty.
    assert!(index.captures(None).await.unwrap().is_empty());
    assert!(index
        .nearest_response(ARTICLE, None)
        .await
        .unwrap()
        .is_none());

    // Two successful captures and one failure, stored and read back whole.
    let (first, first_records) = ok_capture(
        at("2016-11-29T10:04:00Z"),
        "nearly 25 civilians were killed",
    );
    let (second, second_records) = ok_capture(
        at("2016-12-01T08:00:00Z"),
        "nearly 30 civilians were killed",
    );
    index
        .put_capture(&first, &first_records, None)
        .await
        .unwrap();
    index
        .put_capture(&second, &second_records, None)
        .await
        .unwrap();
    let failed = Capture {
        id: CaptureId::new(),
        seed_url: ARTICLE.to_string(),
        status: CaptureStatus::Failed,
        error: Some("DNS lookup of aleppo-news.example failed".into()),
        started_at: at("2016-12-02T00:00:00Z"),
        finished_at: at("2016-12-02T00:00:01Z"),
        warc: None,
        records: 0,
        resources: vec![],
        schedule: Some("aleppo-reports".into()),
        scheduled_for: Some(at("2016-12-02T00:00:00Z")),
        change: None,
        import: None,
        media: None,
        browser: None,
    };
    index.put_capture(&failed, &[], None).await.unwrap();
    assert_eq!(
        index.capture(&first.id).await.unwrap().as_ref(),
        Some(&first)
    );
    assert_eq!(
        index.capture(&failed.id).await.unwrap().as_ref(),
        Some(&failed)
    );
    assert_eq!(index.records(&first.id).await.unwrap(), first_records);
    assert_eq!(
        index.captures(None).await.unwrap(),
        vec![first.clone(), second.clone(), failed.clone()]
    );
    assert_eq!(index.captures(Some(ARTICLE)).await.unwrap().len(), 3);
    assert!(index
        .captures(Some("https://other.example/"))
        .await
        .unwrap()
        .is_empty());
    assert!(index.capture(&CaptureId::new()).await.unwrap().is_none());

    // A unique beginning of an id names its capture; a common one names
    // all it begins, up to the limit; no wildcard widens it.
    let whole = first.id.as_str();
    assert_eq!(
        index.capture_ids_with_prefix(whole, 3).await.unwrap(),
        vec![first.id.clone()]
    );
    assert_eq!(
        index
            .capture_ids_with_prefix(&whole[..4], 10)
            .await
            .unwrap()
            .len(),
        3,
        "the three captures were made together"
    );
    assert_eq!(
        index
            .capture_ids_with_prefix(&whole[..4], 2)
            .await
            .unwrap()
            .len(),
        2
    );
    assert!(index
        .capture_ids_with_prefix("%", 10)
        .await
        .unwrap()
        .is_empty());
    assert!(index
        .capture_ids_with_prefix("ffffffff", 10)
        .await
        .unwrap()
        .is_empty());

    // The latest successful capture of a seed (the failure is later).
    assert_eq!(
        index
            .latest_ok_capture(ARTICLE)
            .await
            .unwrap()
            .map(|c| c.id),
        Some(second.id.clone())
    );
    assert!(index
        .latest_ok_capture("https://other.example/")
        .await
        .unwrap()
        .is_none());

    // A capture id is recorded once.
    let repeated = index
        .put_capture(&first, &first_records, None)
        .await
        .unwrap_err();
    assert_eq!(repeated.kind(), ErrorKind::Conflict);
    assert!(repeated.to_string().contains("capture"), "{repeated}");

    // Nearest in time, the latest without a time.
    let latest = index
        .nearest_response(ARTICLE, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.capture_id, second.id);
    assert_eq!(latest.record, second_records[1]);
    assert_eq!(latest.warc, second.warc.clone().unwrap());
    for (when, expect) in [
        ("2016-01-01T00:00:00Z", &first.id),
        ("2016-11-30T00:00:00Z", &first.id),
        ("2016-11-30T22:00:00Z", &second.id),
        ("2030-01-01T00:00:00Z", &second.id),
    ] {
        let hit = index
            .nearest_response(ARTICLE, Some(at(when)))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&hit.capture_id, expect, "nearest to {when}");
    }
    assert!(index
        .nearest_response("https://aleppo-news.example/other/", None)
        .await
        .unwrap()
        .is_none());
    Fixture {
        first,
        first_records,
        second,
        failed,
    }
}

/// Revisits: the original is the earliest response with the payload; a
/// revisit is found by `nearest_response` and by its record id.
async fn revisits(index: &dyn CaptureIndex, f: &Fixture) -> Capture {
    let (first, first_records, second) = (&f.first, &f.first_records, &f.second);
    let payload = first.resources[0].payload_sha256.unwrap();
    let original = index
        .original_response(ARTICLE, payload)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(original.capture_id, first.id);
    assert_eq!(original.record, first_records[1]);
    assert!(index
        .original_response(ARTICLE, Sha256::of(b"never stored"))
        .await
        .unwrap()
        .is_none());
    let (mut third, mut third_records) = ok_capture(
        at("2016-12-03T08:00:00Z"),
        "nearly 25 civilians were killed",
    );
    third_records[1].warc_type = "revisit".into();
    third.change = Some(custody::model::PageChange {
        previous_capture: second.id.clone(),
        changed: true,
    });
    index
        .put_capture(&third, &third_records, None)
        .await
        .unwrap();
    assert_eq!(
        index.capture(&third.id).await.unwrap().as_ref(),
        Some(&third)
    );
    let revisit = index
        .nearest_response(ARTICLE, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revisit.record.warc_type, "revisit");
    assert_eq!(
        index
            .original_response(ARTICLE, payload)
            .await
            .unwrap()
            .unwrap()
            .capture_id,
        first.id,
        "a revisit is never an original"
    );
    let by_id = index
        .record_hit(&third_records[1].record_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_id.capture_id, third.id);
    assert!(index.record_hit("<urn:uuid:none>").await.unwrap().is_none());
    third
}

/// Every capture was appended to the log, in order, once; checkpoints are
/// recorded once per size.
async fn log(index: &dyn LogIndex, f: &Fixture, third: &Capture) {
    let (first, first_records, second, failed) = (&f.first, &f.first_records, &f.second, &f.failed);
    let size = index.log_size().await.unwrap();
    assert_eq!(size, 4);
    let leaves = index.log_leaves(0, size).await.unwrap();
    let ids: Vec<&str> = leaves.iter().map(|l| l.object_id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            first.id.as_str(),
            second.id.as_str(),
            failed.id.as_str(),
            third.id.as_str()
        ]
    );
    assert!(leaves
        .iter()
        .enumerate()
        .all(|(i, l)| l.index == i as u64 && l.kind == "capture"));
    let of_first = index
        .log_leaves_of("capture", first.id.as_str())
        .await
        .unwrap();
    assert_eq!(of_first, vec![leaves[0].clone()]);
    let hashes = index.log_leaf_hashes(size).await.unwrap();
    assert_eq!(hashes.len(), 4);
    assert_eq!(
        hashes[0],
        custody::tlog::capture_leaf(first, first_records).hash()
    );
    assert_eq!(
        index.log_leaf_hashes(2).await.unwrap(),
        hashes[..2].to_vec()
    );
    let checkpoint = custody::tlog::Checkpoint {
        tree_size: 2,
        root: custody::tlog::root_of(&hashes[..2]),
        note: "signed note".into(),
        created_at: at("2016-12-04T00:00:00Z"),
    };
    index.put_checkpoint(&checkpoint).await.unwrap();
    index.put_checkpoint(&checkpoint).await.unwrap();
    assert_eq!(index.checkpoints().await.unwrap(), vec![checkpoint]);
}

/// Fixity: a failed check quarantines, a good one releases; both are
/// logged.
async fn fixity(files_of: &dyn CaptureIndex, index: &dyn LogIndex) {
    let size = index.log_size().await.unwrap();
    let files = files_of.warc_files().await.unwrap();
    assert_eq!(files.len(), 3);
    assert!(files.iter().all(|f| f.quarantined.is_none()));
    let file = &files[0];
    let check = |outcome: &str, at_s: &str| custody::model::FixityEvent {
        object_key: file.key.clone(),
        location: "primary".into(),
        algorithm: "sha256".into(),
        expected: file.sha256,
        observed: (outcome == "ok").then_some(file.sha256),
        outcome: outcome.into(),
        detail: (outcome != "ok").then(|| "not in the store".to_string()),
        at: at(at_s),
    };
    index
        .record_fixity(&check("missing", "2016-12-05T00:00:00Z"))
        .await
        .unwrap();
    let quarantined = files_of.warc_files().await.unwrap()[0].quarantined.clone();
    assert!(quarantined.unwrap().starts_with("missing"));
    index
        .record_fixity(&check("error", "2016-12-05T00:01:00Z"))
        .await
        .unwrap();
    assert!(
        files_of.warc_files().await.unwrap()[0]
            .quarantined
            .is_some(),
        "an error concludes nothing"
    );
    index
        .record_fixity(&check("ok", "2016-12-05T00:02:00Z"))
        .await
        .unwrap();
    assert!(files_of.warc_files().await.unwrap()[0]
        .quarantined
        .is_none());
    let events = index.fixity_events(&file.key).await.unwrap();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0], check("missing", "2016-12-05T00:00:00Z"));
    assert_eq!(index.log_size().await.unwrap(), size + 3);
}

/// Pages of captures and records.
async fn investigator_reads(index: &dyn CaptureIndex, first: &Capture, second: &Capture) {
    use custody::index::{CaptureCursor, CaptureQuery, RecordQuery};
    let page = |q: CaptureQuery| async move {
        index
            .capture_page(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect::<Vec<_>>()
    };
    let all = page(CaptureQuery {
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(all[0], first.id, "oldest first");
    let newest = page(CaptureQuery {
        newest_first: true,
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(newest.len(), all.len());
    assert_eq!(newest.first(), all.last());
    let prefixed = page(CaptureQuery {
        url_prefix: Some("https://aleppo-news.example/2016/".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert!(prefixed.contains(&first.id) && prefixed.contains(&second.id));
    assert!(page(CaptureQuery {
        url_prefix: Some("https://other.example/".into()),
        limit: 100,
        ..Default::default()
    })
    .await
    .is_empty());
    let december = page(CaptureQuery {
        from: Some(at("2016-12-01T00:00:00Z")),
        to: Some(at("2016-12-01T23:59:59Z")),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(december, vec![second.id.clone()]);
    // By outcome, the page's HTTP status, schedule and host.
    let failed = index
        .capture_page(&CaptureQuery {
            status: Some(CaptureStatus::Failed),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(!failed.is_empty() && failed.iter().all(|c| c.status == CaptureStatus::Failed));
    let ok = page(CaptureQuery {
        status: Some(CaptureStatus::Ok),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert!(ok.contains(&first.id) && !failed.iter().any(|c| ok.contains(&c.id)));
    let answered = page(CaptureQuery {
        page_status: Some((200, 299)),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert!(answered.contains(&first.id) && answered.contains(&second.id));
    assert!(page(CaptureQuery {
        page_status: Some((404, 404)),
        limit: 100,
        ..Default::default()
    })
    .await
    .iter()
    .all(|id| id != &first.id));
    let on_host = page(CaptureQuery {
        host: Some("aleppo-news.example".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert!(on_host.contains(&first.id));
    assert!(
        page(CaptureQuery {
            host: Some("news.example".into()),
            limit: 100,
            ..Default::default()
        })
        .await
        .is_empty(),
        "a host is the whole host, not its end"
    );
    assert!(page(CaptureQuery {
        schedule: Some("no-such-schedule".into()),
        limit: 100,
        ..Default::default()
    })
    .await
    .is_empty());
    let second_page = page(CaptureQuery {
        limit: 1,
        offset: 1,
        ..Default::default()
    })
    .await;
    assert_eq!(second_page, vec![all[1].clone()]);
    // A cursor walks the same list a page at a time, in either order, and
    // reads back from its text.
    for newest_first in [false, true] {
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let got = index
                .capture_page(&CaptureQuery {
                    newest_first,
                    after: after.clone(),
                    limit: 1,
                    ..Default::default()
                })
                .await
                .unwrap();
            let Some(last) = got.last() else { break };
            let cursor = CaptureCursor::after(last);
            assert_eq!(
                CaptureCursor::decode(&cursor.encode()),
                Some(cursor.clone())
            );
            after = Some(cursor);
            walked.extend(got.into_iter().map(|c| c.id));
        }
        assert_eq!(
            walked,
            if newest_first {
                newest.clone()
            } else {
                all.clone()
            }
        );
    }
    assert_eq!(
        CaptureCursor::decode("2016-12-01T00:00:00Z_not-an-id"),
        None
    );

    let key = "example,aleppo-news)/2016/11/29/regime-airstrikes/";
    let find = |q: RecordQuery| async move { index.find_records(&q).await.unwrap() };
    let exact = find(RecordQuery {
        surt: Some(key.into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert!(exact.len() >= 2);
    assert!(exact
        .iter()
        .all(|h| matches!(h.record.warc_type.as_str(), "response" | "revisit")));
    assert!(exact
        .windows(2)
        .all(|w| w[0].record.timestamp <= w[1].record.timestamp));
    let reversed = find(RecordQuery {
        surt: Some(key.into()),
        reverse: true,
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(
        reversed.first().map(|h| &h.record),
        exact.last().map(|h| &h.record)
    );
    let prefix = find(RecordQuery {
        surt_prefix: Some("example,aleppo-news)/".into()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(prefix.len(), exact.len());
    assert!(find(RecordQuery {
        surt_prefix: Some("example,aleppo-news,)".into()),
        limit: 100,
        ..Default::default()
    })
    .await
    .is_empty());
    let ts = custody::model::timestamp14(&second.started_at);
    let from = find(RecordQuery {
        surt: Some(key.into()),
        from: Some(ts.clone()),
        to: Some(ts.clone()),
        limit: 100,
        ..Default::default()
    })
    .await;
    assert_eq!(from.len(), 1);
    assert_eq!(from[0].capture_id, second.id);
    assert_eq!(
        find(RecordQuery {
            surt: Some(key.into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .len(),
        1
    );
}

/// Access events in batches: one leaf each.
async fn access_events(log: &dyn LogIndex, index: &dyn ProvenanceIndex, first: &Capture) {
    let size = log.log_size().await.unwrap();
    let access = |n: u32| CustodyEvent {
        object_kind: "capture".into(),
        object_id: first.id.to_string(),
        event: "accessed".into(),
        actor: Some("token:1a2b3c4d".into()),
        at: at("2016-12-06T00:00:00Z") + Duration::seconds(n as i64),
        outcome: "ok".into(),
        detail: serde_json::json!({"via": "replay", "n": n}),
    };
    index
        .add_events(&[access(1), access(2), access(3)])
        .await
        .unwrap();
    index.add_events(&[]).await.unwrap();
    assert_eq!(
        log.log_size().await.unwrap(),
        size + 3,
        "one leaf per access"
    );
    let recorded = index.events("capture", first.id.as_str()).await.unwrap();
    assert_eq!(recorded.iter().filter(|e| e.event == "accessed").count(), 3);
}

/// API tokens: unique ids, found by their secret's digest, revoked once.
async fn tokens(index: &dyn TokenIndex) {
    let token = custody::model::ApiToken {
        id: "1a2b3c4d".into(),
        secret_sha256: Some(Sha256::of(b"custody_1a2b3c4d_secret")),
        role: custody::model::Role::Reader,
        label: Some("UN mechanism".into()),
        created_at: at("2016-12-06T00:00:00Z"),
        revoked_at: None,
    };
    index.put_token(&token).await.unwrap();
    assert!(index.put_token(&token).await.is_err(), "ids are unique");
    assert_eq!(
        index
            .token_by_secret(&Sha256::of(b"custody_1a2b3c4d_secret"))
            .await
            .unwrap(),
        Some(token.clone())
    );
    assert_eq!(
        index.token_by_secret(&Sha256::of(b"other")).await.unwrap(),
        None
    );
    assert_eq!(index.tokens().await.unwrap(), vec![token.clone()]);
    assert!(index
        .revoke_token("1a2b3c4d", at("2016-12-07T00:00:00Z"))
        .await
        .unwrap());
    assert!(
        !index
            .revoke_token("1a2b3c4d", at("2016-12-08T00:00:00Z"))
            .await
            .unwrap(),
        "once"
    );
    let revoked = index
        .token_by_secret(&Sha256::of(b"custody_1a2b3c4d_secret"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(revoked.revoked_at, Some(at("2016-12-07T00:00:00Z")));
}

#[tokio::test]
async fn sqlite_index_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nested/index.db").display());
    conformance(custody::index::open(&url).await.unwrap()).await;
    // Reopening migrates nothing twice and keeps the data.
    let again = custody::index::open(&url).await.unwrap();
    assert_eq!(again.captures(None).await.unwrap().len(), 10);
}

#[tokio::test]
async fn unknown_index_urls_are_refused_with_the_fix() {
    let err = custody::index::open("mysql://localhost/custody")
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("use sqlite://PATH"), "{err}");
}

fn due(t: &str) -> NewRun {
    NewRun {
        scheduled_for: at(t),
        not_before: at(t),
        catch_up: false,
        state: RunState::Due,
        error: None,
    }
}

async fn runs(index: &dyn RunIndex, captured: &CaptureId) -> DateTime<Utc> {
    let s = "aleppo-reports";
    let t0 = at("2026-11-24T10:00:00Z");
    assert_eq!(index.planned_until(s, ARTICLE).await.unwrap(), None);
    // Runs are unique per instant; the planning mark only moves forward.
    let added = index
        .plan_runs(
            s,
            ARTICLE,
            &[due("2026-11-24T10:00:00Z"), due("2026-11-24T10:05:00Z")],
            t0,
        )
        .await
        .unwrap();
    assert_eq!(added, 2);
    let again = index
        .plan_runs(
            s,
            ARTICLE,
            &[due("2026-11-24T10:05:00Z")],
            at("2026-11-24T09:00:00Z"),
        )
        .await
        .unwrap();
    assert_eq!(again, 0);
    assert_eq!(index.planned_until(s, ARTICLE).await.unwrap(), Some(t0));
    assert!(index.has_active_run(s, ARTICLE).await.unwrap());

    // Claims take the oldest run whose time has come, one per URL at a time.
    let lease = |t: DateTime<Utc>| t + Duration::seconds(30);
    assert!(index
        .claim_run("node-a", at("2026-11-24T09:59:59Z"), lease(t0), &[])
        .await
        .unwrap()
        .is_none());
    let busy = ["aleppo-news.example".to_string()];
    assert!(
        index
            .claim_run("node-a", t0, lease(t0), &busy)
            .await
            .unwrap()
            .is_none(),
        "busy host skipped"
    );
    let first = index
        .claim_run("node-a", t0, lease(t0), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (first.scheduled_for, first.state, first.attempts),
        (t0, RunState::Running, 1)
    );
    let t1 = at("2026-11-24T10:06:00Z");
    // Renewed (as a worker does while it captures), the lease holds at t1.
    assert!(index
        .renew_lease(first.id, "node-a", lease(t1))
        .await
        .unwrap());
    assert!(!index
        .renew_lease(first.id, "node-b", lease(t1))
        .await
        .unwrap());
    let blocked = index.claim_run("node-b", t1, lease(t1), &[]).await.unwrap();
    assert!(
        blocked.is_none(),
        "the URL's run holds its lease, and the next one waits for it"
    );

    // A lease that runs out is taken over by another node, as a new attempt.
    let t2 = at("2026-11-24T10:07:00Z");
    let taken = index
        .claim_run("node-b", t2, lease(t2), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (taken.id, taken.attempts, taken.lease_owner.as_deref()),
        (first.id, 2, Some("node-b"))
    );
    // The old owner can no longer finish it.
    let captured = captured.clone();
    index
        .finish_run(
            first.id,
            "node-a",
            &RunFinish::Done {
                capture_id: captured.clone(),
            },
            t2,
        )
        .await
        .unwrap();
    assert_eq!(
        index.runs(Some(s)).await.unwrap()[0].state,
        RunState::Running
    );
    let retry_at = at("2026-11-24T10:08:00Z");
    let retry = RunFinish::Retry {
        capture_id: None,
        error: "DNS lookup failed".into(),
        at: retry_at,
    };
    index
        .finish_run(first.id, "node-b", &retry, t2)
        .await
        .unwrap();
    let r = &index.runs(Some(s)).await.unwrap()[0];
    assert_eq!(
        (r.state, r.not_before, r.error.as_deref()),
        (RunState::Due, retry_at, Some("DNS lookup failed"))
    );

    // Interrupted runs are queued again at start-up.
    let second = index
        .claim_run("node-a", retry_at, lease(retry_at), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second.id, first.id, "the oldest instant first");
    let interrupted = RunFinish::Interrupted {
        error: "shutdown".into(),
    };
    index
        .finish_run(second.id, "node-a", &interrupted, retry_at)
        .await
        .unwrap();
    assert_eq!(index.requeue_interrupted(retry_at).await.unwrap(), 1);
    let third = index
        .claim_run("node-a", retry_at, lease(retry_at), &[])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.attempts, 4);
    index
        .finish_run(
            third.id,
            "node-a",
            &RunFinish::Done {
                capture_id: captured.clone(),
            },
            retry_at,
        )
        .await
        .unwrap();
    let r = &index.runs(Some(s)).await.unwrap()[0];
    assert_eq!(
        (r.state, r.capture_id.as_ref()),
        (RunState::Done, Some(&captured))
    );
    run_pages(index, s).await;

    retry_at
}

/// Runs page by a stable cursor in either order, and filter by schedule,
/// state, host and instant.
async fn run_pages(index: &dyn RunIndex, s: &str) {
    use custody::index::{RunCursor, RunListQuery};
    let all: Vec<i64> = index
        .runs(None)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert!(all.len() >= 2);
    for newest_first in [false, true] {
        let mut walked = Vec::new();
        let mut after = None;
        loop {
            let q = RunListQuery {
                newest_first,
                after: after.clone(),
                limit: 1,
                ..Default::default()
            };
            let got = index.run_page(&q).await.unwrap();
            walked.extend(got.iter().map(|r| r.id));
            match RunCursor::next_page(&got, 1) {
                Some(c) => after = Some(RunCursor::decode(&c.encode()).unwrap()),
                None => break,
            }
        }
        let mut expected = all.clone();
        if newest_first {
            expected.reverse();
        }
        assert_eq!(walked, expected, "newest first: {newest_first}");
    }
    let ids = |q: RunListQuery| async move {
        index
            .run_page(&RunListQuery { limit: 100, ..q })
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>()
    };
    let done = ids(RunListQuery {
        schedule: Some(s.into()),
        state: Some(RunState::Done),
        ..Default::default()
    })
    .await;
    assert_eq!(done.len(), 1);
    assert_eq!(
        ids(RunListQuery {
            host: Some("aleppo-news.example".into()),
            ..Default::default()
        })
        .await
        .len(),
        ids(RunListQuery::default()).await.len()
    );
    assert!(ids(RunListQuery {
        host: Some("other.example".into()),
        ..Default::default()
    })
    .await
    .is_empty());
    assert_eq!(
        ids(RunListQuery {
            schedule: Some(s.into()),
            from: Some(at("2026-11-24T10:05:00Z")),
            to: Some(at("2026-11-24T10:05:00Z")),
            ..Default::default()
        })
        .await
        .len(),
        1
    );
}

/// Claims (versioned, searched, by origin), evidence links (filtered),
/// passage checks (once per link and capture) and custody events, each
/// link and event with its leaf.
async fn provenance(index: &dyn ProvenanceIndex, log: &dyn LogIndex, f: &Fixture) {
    use custody::model::{Claim, EvidenceLink, PassageCheck, Relation, Selector};
    let claim = |version: u32, text: &str| Claim {
        id: "0193f1e2-7c4a-7d2e-9b1a-3c5d7e9f1a2b".into(),
        version,
        text: text.into(),
        event_start: Some("2016-11-29".into()),
        event_end: None,
        place: Some("Bab Alnairab, Aleppo".into()),
        latitude: Some(36.2021),
        longitude: Some(37.1343),
        tags: vec!["airstrike".into(), "civilians".into()],
        language: Some("en".into()),
        author: Some("archivist".into()),
        origin: None,
        created_at: at("2016-12-10T00:00:00Z") + Duration::seconds(version as i64),
    };
    let v1 = claim(
        1,
        "Nearly 25 civilians were killed by airstrikes in Bab Alnairab",
    );
    let v2 = claim(
        2,
        "Nearly 25 civilians were killed by airstrikes in Bab Alnairab, eastern Aleppo",
    );
    let size = log.log_size().await.unwrap();
    index.put_claim(&v1).await.unwrap();
    index.put_claim(&v2).await.unwrap();
    assert_eq!(
        log.log_size().await.unwrap(),
        size + 2,
        "a claim version is a leaf"
    );
    let logged: Vec<String> = log
        .log_leaves_of("claim", &v1.id)
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.data)
        .collect();
    assert_eq!(
        logged,
        vec![
            custody::tlog::leaf::claim_leaf(&v1).data,
            custody::tlog::leaf::claim_leaf(&v2).data
        ]
    );
    let again = index.put_claim(&v1).await.unwrap_err();
    assert_eq!(again.kind(), ErrorKind::Conflict);
    assert!(
        again.to_string().contains("version 1") && !again.to_string().contains("capture"),
        "a repeated claim version says so: {again}"
    );
    assert_eq!(
        index.claim_versions(&v1.id).await.unwrap(),
        vec![v1.clone(), v2.clone()]
    );
    assert!(index
        .claim_versions("no-such-claim")
        .await
        .unwrap()
        .is_empty());
    let scheduled = Claim {
        id: "0193f1e2-7c4a-7d2e-9b1a-000000000002".into(),
        origin: Some("schedule:aleppo-reports".into()),
        text: "Most victims were women and children".into(),
        created_at: at("2016-12-11T00:00:00Z"),
        ..claim(1, "")
    };
    index.put_claim(&scheduled).await.unwrap();
    assert_eq!(
        index.claims(None).await.unwrap(),
        vec![v2.clone(), scheduled.clone()]
    );
    assert_eq!(
        index.claims(Some("EASTERN aleppo")).await.unwrap(),
        vec![v2.clone()],
        "every word, any case, in the latest version"
    );
    assert!(
        index.claims(Some("100%_")).await.unwrap().is_empty(),
        "no wildcards"
    );
    assert_eq!(
        index
            .claim_by_origin(
                "schedule:aleppo-reports",
                "Most victims were women and children"
            )
            .await
            .unwrap(),
        Some(scheduled.clone())
    );
    assert_eq!(
        index.claim_by_origin("schedule:other", "x").await.unwrap(),
        None
    );

    let size = log.log_size().await.unwrap();
    let page = &f.first_records[1];
    let link = EvidenceLink {
        id: "0193f1e2-8000-7000-8000-00000000000a".into(),
        claim_id: v2.id.clone(),
        claim_version: 2,
        capture_id: f.first.id.clone(),
        record_id: page.record_id.clone(),
        target_uri: ARTICLE.into(),
        payload_digest: page.payload_digest.unwrap(),
        relation: Relation::Supports,
        selectors: vec![
            Selector::TextQuoteSelector {
                exact: "nearly 25 civilians were killed".into(),
                prefix: "".into(),
                suffix: "".into(),
            },
            Selector::TextPositionSelector { start: 0, end: 31 },
        ],
        quote_given: Some("nearly 25 civilians were killed".into()),
        rationale: None,
        author: Some("archivist".into()),
        created_at: at("2016-12-10T01:00:00Z"),
    };
    index.put_link(&link).await.unwrap();
    assert_eq!(log.log_size().await.unwrap(), size + 1, "a link is a leaf");
    assert_eq!(
        log.log_leaves_of("link", &link.id).await.unwrap()[0].data,
        custody::tlog::link_leaf(&link).data
    );
    let by = |claim: Option<&str>, capture: Option<&CaptureId>, uri: Option<&str>| {
        custody::index::LinkFilter {
            claim_id: claim.map(str::to_string),
            capture_id: capture.cloned(),
            target_uri: uri.map(str::to_string),
        }
    };
    assert_eq!(
        index.links(&by(Some(&v2.id), None, None)).await.unwrap(),
        vec![link.clone()]
    );
    assert_eq!(
        index
            .links(&by(None, Some(&f.first.id), Some(ARTICLE)))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(index
        .links(&by(None, Some(&f.second.id), None))
        .await
        .unwrap()
        .is_empty());
    assert!(index
        .links(&by(Some(&scheduled.id), None, None))
        .await
        .unwrap()
        .is_empty());

    let check = |capture: &Capture, present: bool| PassageCheck {
        link_id: link.id.clone(),
        capture_id: capture.id.clone(),
        captured_at: capture.started_at,
        present,
    };
    index
        .put_passage_check(&check(&f.second, false))
        .await
        .unwrap();
    index
        .put_passage_check(&check(&f.second, true))
        .await
        .unwrap();
    index
        .put_passage_check(&check(&f.first, true))
        .await
        .unwrap();
    assert_eq!(
        index.passage_checks(&link.id).await.unwrap(),
        vec![check(&f.first, true), check(&f.second, false)],
        "once per capture, oldest first"
    );

    let linked = CustodyEvent {
        object_kind: "claim".into(),
        object_id: v2.id.clone(),
        event: "linked".into(),
        actor: Some("archivist".into()),
        at: at("2016-12-10T01:00:00Z"),
        outcome: "ok".into(),
        detail: serde_json::json!({"link": link.id}),
    };
    let size = log.log_size().await.unwrap();
    index.add_event(&linked).await.unwrap();
    assert_eq!(
        index.events("claim", &v2.id).await.unwrap(),
        vec![linked.clone()]
    );
    assert_eq!(
        log.log_size().await.unwrap(),
        size + 1,
        "an event is a leaf"
    );
    let captured = index.events("capture", f.first.id.as_str()).await.unwrap();
    assert_eq!(captured[0].event, "captured", "a capture's first event");
}

/// Pending uploads: noted before the upload, listed per scheduled instant,
/// removed by the capture's indexing or by hand.
async fn pending_objects(index: &dyn CaptureIndex) {
    let instant = at("2016-12-02T00:00:00Z");
    let note = |key: &str, id: &CaptureId| custody::model::PendingObject {
        key: key.into(),
        capture_id: id.clone(),
        seed_url: ARTICLE.into(),
        schedule: Some("aleppo-reports".into()),
        scheduled_for: Some(instant),
        created_at: at("2016-12-02T00:00:05Z"),
    };
    let lost = CaptureId::new();
    let key = custody::store::warc_key(&Sha256::of(b"uploaded, never indexed"));
    index.add_pending_object(&note(&key, &lost)).await.unwrap();
    index.add_pending_object(&note(&key, &lost)).await.unwrap();
    assert_eq!(
        index
            .pending_objects("aleppo-reports", ARTICLE, instant)
            .await
            .unwrap(),
        vec![note(&key, &lost)]
    );
    assert!(index
        .pending_objects("aleppo-reports", ARTICLE, at("2016-12-03T00:00:00Z"))
        .await
        .unwrap()
        .is_empty());
    index.remove_pending_object(&key, &lost).await.unwrap();
    assert!(index
        .pending_objects("aleppo-reports", ARTICLE, instant)
        .await
        .unwrap()
        .is_empty());
    // Indexing a capture clears its notes.
    let (mut later, records) = ok_capture(at("2016-12-20T00:00:00Z"), "a later capture");
    later.schedule = Some("aleppo-reports".into());
    later.scheduled_for = Some(instant);
    let key = later.warc.as_ref().unwrap().key.clone();
    index
        .add_pending_object(&note(&key, &later.id))
        .await
        .unwrap();
    index.put_capture(&later, &records, None).await.unwrap();
    assert!(index
        .pending_objects("aleppo-reports", ARTICLE, instant)
        .await
        .unwrap()
        .is_empty());
}

/// One daemon leads planning at a time: the lease holds until it expires,
/// renewing keeps it, another owner takes it only once it has expired, and
/// resigning frees it at once.
async fn leadership(index: &dyn RunIndex) {
    let t0 = at("2026-11-24T12:00:00Z");
    let s = |secs: i64| t0 + Duration::seconds(secs);
    assert!(index.try_lead("node-a", t0, s(15)).await.unwrap());
    assert!(
        index.try_lead("node-a", s(5), s(20)).await.unwrap(),
        "the leader renews"
    );
    assert!(
        !index.try_lead("node-b", s(19), s(34)).await.unwrap(),
        "a lease that holds is not taken"
    );
    // node-a froze: once its lease passed, node-b leads, and node-a, waking,
    // finds it lost.
    assert!(index.try_lead("node-b", s(21), s(36)).await.unwrap());
    assert!(!index.try_lead("node-a", s(22), s(37)).await.unwrap());
    // Resigning frees the lease at once; only its holder can resign.
    index.resign("node-a").await.unwrap();
    assert!(!index.try_lead("node-a", s(23), s(38)).await.unwrap());
    index.resign("node-b").await.unwrap();
    assert!(index.try_lead("node-a", s(24), s(39)).await.unwrap());
}

/// A scheduled instant is committed once: only by the attempt that holds
/// its run's lease, and never beside an `ok` capture of the same instant.
async fn exactly_once(index: &dyn Index) {
    let (schedule, instant) = ("vigil", at("2026-11-25T06:00:00Z"));
    // Another host's page: the run cases left one of ARTICLE's runs due.
    let page = "https://vigil.example/";
    let busy = ["aleppo-news.example".to_string()];
    let t = |secs: i64| instant + Duration::seconds(secs);
    index
        .plan_runs(schedule, page, &[due("2026-11-25T06:00:00Z")], instant)
        .await
        .unwrap();
    let a = index
        .claim_run("node-a", t(0), t(30), &busy)
        .await
        .unwrap()
        .unwrap();
    let fence = |run: &custody::model::Run, owner: &str| custody::index::Fence {
        run_id: run.id,
        attempt: run.attempts,
        owner: owner.into(),
    };
    let scheduled = |body: &str| {
        let (mut c, records) = ok_capture(t(1), body);
        c.seed_url = page.into();
        c.schedule = Some(schedule.into());
        c.scheduled_for = Some(instant);
        (c, records)
    };
    assert_eq!(
        index
            .capture_of_instant(schedule, page, instant)
            .await
            .unwrap(),
        None
    );
    // node-a stalls past its lease; node-b takes the run over.
    let b = index
        .claim_run("node-b", t(31), t(61), &busy)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((b.id, b.attempts), (a.id, 2));
    let size = index.log_size().await.unwrap();
    let (stale, stale_records) = scheduled("node-a's capture, after its lease");
    let refused = index
        .put_capture(&stale, &stale_records, Some(&fence(&a, "node-a")))
        .await
        .unwrap_err();
    assert!(
        matches!(refused, custody::index::IndexError::Fenced(_)),
        "{refused}"
    );
    assert_eq!(refused.kind(), ErrorKind::Conflict);
    assert!(index.capture(&stale.id).await.unwrap().is_none());
    assert_eq!(index.log_size().await.unwrap(), size, "no leaf appended");
    // The same owner on an older attempt number is fenced too.
    let refused = index
        .put_capture(&stale, &stale_records, Some(&fence(&a, "node-b")))
        .await;
    assert!(
        refused.is_err(),
        "attempt 1's fence does not hold attempt 2"
    );

    let (current, records) = scheduled("node-b's capture");
    index
        .put_capture(&current, &records, Some(&fence(&b, "node-b")))
        .await
        .unwrap();
    assert_eq!(
        index
            .capture_of_instant(schedule, page, instant)
            .await
            .unwrap(),
        Some(current.id.clone())
    );
    // Once captured, the instant takes no second `ok` capture, fenced or not
    // (recovery adopting an upload, a reindex): the first one stands.
    let (again, again_records) = scheduled("a second capture of the instant");
    for f in [None, Some(fence(&b, "node-b"))] {
        let refused = index
            .put_capture(&again, &again_records, f.as_ref())
            .await
            .unwrap_err();
        assert!(matches!(refused, custody::index::IndexError::Fenced(_)));
    }
    assert_eq!(
        index.log_size().await.unwrap(),
        size + 1,
        "one leaf for the instant"
    );
    // Putting the same capture again is not a second capture.
    let repeated = index
        .put_capture(&current, &records, Some(&fence(&b, "node-b")))
        .await
        .unwrap_err();
    assert!(!matches!(repeated, custody::index::IndexError::Fenced(_)));

    // Every pending note, oldest first, for start-up recovery.
    let note = |secs: i64| custody::model::PendingObject {
        key: custody::store::warc_key(&Sha256::of(format!("upload {secs}").as_bytes())),
        capture_id: CaptureId::new(),
        seed_url: page.into(),
        schedule: Some(schedule.into()),
        scheduled_for: Some(instant),
        created_at: t(secs),
    };
    let (late, early) = (note(9), note(2));
    index.add_pending_object(&late).await.unwrap();
    index.add_pending_object(&early).await.unwrap();
    let all = index.all_pending_objects().await.unwrap();
    assert_eq!(all, vec![early, late]);
}

/// Counts for metrics, after the capture and run cases.
async fn stats(index: &dyn Index, retry_at: DateTime<Utc>) {
    let stats = index.stats(retry_at).await.unwrap();
    assert_eq!((stats.captures_ok, stats.captures_failed), (2, 1));
    assert_eq!(stats.stored_bytes, 2 * 48_213);
    assert!(stats.runs.contains(&(RunState::Done, 1)) && stats.runs.contains(&(RunState::Due, 1)));
    assert_eq!(stats.queue_depth, 1);
    assert_eq!(stats.oldest_waiting, Some(at("2026-11-24T10:05:00Z")));
}

/// A fresh schema on the test server, dropped afterwards.
#[cfg(feature = "postgres")]
pub struct PgSchema {
    base: String,
    name: String,
}

#[cfg(feature = "postgres")]
impl PgSchema {
    pub async fn new() -> PgSchema {
        let base = std::env::var("CUSTODY_TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
        let name = format!("custody_test_{}", uuid::Uuid::now_v7().simple());
        let pool = sqlx::PgPool::connect(&base).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at {base}: {e}; run the tests with scripts/test.sh")
        });
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {name}")))
            .execute(&pool)
            .await
            .unwrap();
        PgSchema { base, name }
    }

    pub fn url(&self) -> String {
        format!("{}?options=-c%20search_path%3D{}", self.base, self.name)
    }

    pub async fn drop(self) {
        let pool = sqlx::PgPool::connect(&self.base).await.unwrap();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA {} CASCADE",
            self.name
        )))
        .execute(&pool)
        .await
        .unwrap();
    }
}

#[cfg(feature = "postgres")]
#[tokio::test]
async fn postgres_index_passes_the_conformance_suite() {
    let schema = PgSchema::new().await;
    conformance(custody::index::open(&schema.url()).await.unwrap()).await;
    let again = custody::index::open(&schema.url()).await.unwrap();
    assert_eq!(again.captures(None).await.unwrap().len(), 10);
    schema.drop().await;
}

/// A capture, its retrieval and a claim link, end to end on PostgreSQL.
#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn a_capture_and_a_claim_go_end_to_end_on_postgres() {
    let schema = PgSchema::new().await;
    let addr = crate::site::serve_http().await;
    let work = crate::cli::Workdir::new("");
    let url = format!("http://{addr}{}", crate::site::ARTICLE_PATH);
    let run = |args: &[&str]| {
        let out = work
            .command(args)
            .env("CUSTODY_INDEX_URL", schema.url())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let capture: Capture =
        serde_json::from_slice(&run(&["capture", &url, "--json", "--allow-private"])).unwrap();
    assert_eq!(
        String::from_utf8(run(&["get", &url])).unwrap(),
        crate::site::article_html()
    );
    let claim: serde_json::Value = serde_json::from_slice(&run(&[
        "claim",
        "add",
        "Most victims were women and children",
        "--json",
    ]))
    .unwrap();
    let claim_id = claim["id"].as_str().unwrap();
    run(&[
        "claim",
        "link",
        claim_id,
        capture.id.as_str(),
        "--quote",
        "most of the victims were women and children",
    ]);
    let shown: serde_json::Value =
        serde_json::from_slice(&run(&["claim", "show", claim_id, "--json"])).unwrap();
    assert_eq!(shown["evidence"][0]["verified"], true);
    assert!(
        !work.path().join("custody-data/index.db").exists(),
        "the SQLite default was not used"
    );
    schema.drop().await;
}
