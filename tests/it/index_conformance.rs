//! One conformance suite for every index backend: each backend's test calls
//! [`conformance`] with a fresh, empty index.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use custody::index::{Index, IndexError};
use custody::model::{Capture, CaptureId, CaptureStatus, RecordEntry, Resource, Sha256, WarcRef};

const ARTICLE: &str = "https://aleppo-news.example/2016/11/29/regime-airstrikes/";

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn ok_capture(started: DateTime<Utc>, body: &str) -> (Capture, Vec<RecordEntry>) {
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

pub async fn conformance(index: Arc<dyn Index>) {
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
    index.put_capture(&first, &first_records).await.unwrap();
    index.put_capture(&second, &second_records).await.unwrap();
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
    };
    index.put_capture(&failed, &[]).await.unwrap();
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

    // A capture id is recorded once.
    assert!(matches!(
        index.put_capture(&first, &first_records).await,
        Err(IndexError::Duplicate(_))
    ));

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
}

#[tokio::test]
async fn sqlite_index_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("nested/index.db").display());
    conformance(custody::index::open(&url).await.unwrap()).await;
    // Reopening migrates nothing twice and keeps the data.
    let again = custody::index::open(&url).await.unwrap();
    assert_eq!(again.captures(None).await.unwrap().len(), 3);
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
