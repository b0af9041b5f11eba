//! What the log holds: leaves (an object's canonical bytes and their
//! position) and signed checkpoints, and the canonical encodings of every
//! kind of leaf.
//!
//! This is the part of the log the index stores, so it depends on nothing
//! but the data model: the index imports it, and the rest of `tlog`
//! (signing, proofs, checking) imports the index. The encodings are what
//! signed checkpoints commit to: `tests/fixtures/golden/` pins the exact
//! bytes of one leaf of each kind, so a change to a type or to serde cannot
//! alter them silently.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::merkle;
use crate::model::{
    BrowserInfo, Capture, Claim, CustodyEvent, EvidenceLink, ImportInfo, MediaInfo, RecordEntry,
    Sha256,
};

/// A leaf to append: what it is about and its canonical bytes (JSON with a
/// fixed field order; maps sorted by key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Leaf {
    pub kind: &'static str,
    pub object_id: String,
    pub data: String,
}

impl Leaf {
    pub fn hash(&self) -> Sha256 {
        Sha256::from_bytes(merkle::leaf_hash(self.data.as_bytes()))
    }
}

/// A leaf as stored, with its position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LogLeaf {
    pub index: u64,
    pub kind: String,
    pub object_id: String,
    pub data: String,
    pub leaf_hash: Sha256,
    #[serde(with = "crate::model::rfc3339")]
    pub appended_at: DateTime<Utc>,
}

/// A signed checkpoint: the tree's size and root in a signed note.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Checkpoint {
    pub tree_size: u64,
    pub root: Sha256,
    pub note: String,
    #[serde(with = "crate::model::rfc3339")]
    pub created_at: DateTime<Utc>,
}

/// The current capture leaf (version 2): everything a reader is shown of
/// a capture, its resources and its records. Field order is fixed by the
/// struct; instants have microseconds, as the index and the manifest keep
/// them.
#[derive(Serialize)]
struct CaptureLeaf<'a> {
    leaf: &'static str,
    v: u32,
    capture_id: &'a str,
    seed_url: &'a str,
    status: &'a str,
    error: Option<&'a str>,
    started_at: String,
    finished_at: String,
    schedule: Option<&'a str>,
    scheduled_for: Option<String>,
    previous_capture: Option<&'a str>,
    page_changed: Option<bool>,
    warc_sha256: Option<String>,
    warc_bytes: Option<u64>,
    record_count: u64,
    resources: Vec<ResourceLeaf<'a>>,
    records: Vec<RecordLeaf<'a>>,
    /// Version 3: an imported file, as [`ImportInfo`] serialises (its
    /// field order is the struct's).
    #[serde(skip_serializing_if = "Option::is_none")]
    import: Option<&'a ImportInfo>,
    /// Version 4: the media step (what yt-dlp produced, each file's record
    /// and digest, or why it produced nothing), as [`MediaInfo`]
    /// serialises.
    #[serde(skip_serializing_if = "Option::is_none")]
    media: Option<&'a MediaInfo>,
    /// Version 5: browser mode (the browser, its behaviours and the
    /// records it kept), as [`BrowserInfo`] serialises.
    #[serde(skip_serializing_if = "Option::is_none")]
    browser: Option<&'a BrowserInfo>,
}

#[derive(Serialize)]
struct ResourceLeaf<'a> {
    url: &'a str,
    status: Option<u16>,
    mime: Option<&'a str>,
    payload: Option<String>,
    bytes: u64,
    truncated: Option<&'a str>,
    error: Option<&'a str>,
}

#[derive(Serialize)]
struct RecordLeaf<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    warc_type: &'a str,
    target: Option<&'a str>,
    date: String,
    status: Option<u16>,
    mime: Option<&'a str>,
    block: String,
    payload: Option<String>,
    offset: u64,
    length: u64,
}

/// The leaf of a capture: its row, every resource and every record as the
/// index holds them (what `show`, `get`, replay, CDX and the UI present).
/// An imported capture's leaf is version 3: version 2's fields and the
/// import (the file's digest, when it arrived, who brought it, the stated
/// source and what checking it found). A capture that ran the media step
/// has a version 4 leaf: version 2's fields and the step's outcome; one
/// made in browser mode version 5, with what the browser did and kept.
pub fn capture_leaf(c: &Capture, records: &[RecordEntry]) -> Leaf {
    let body = CaptureLeaf {
        leaf: "capture",
        v: match (&c.import, &c.media, &c.browser) {
            (_, _, Some(_)) => 5,
            (_, Some(_), None) => 4,
            (Some(_), None, None) => 3,
            (None, None, None) => 2,
        },
        import: c.import.as_ref(),
        media: c.media.as_ref(),
        browser: c.browser.as_ref(),
        capture_id: c.id.as_str(),
        seed_url: &c.seed_url,
        status: c.status.as_str(),
        error: c.error.as_deref(),
        started_at: crate::warc::warc_date(&c.started_at),
        finished_at: crate::warc::warc_date(&c.finished_at),
        schedule: c.schedule.as_deref(),
        scheduled_for: c.scheduled_for.as_ref().map(crate::warc::warc_date),
        previous_capture: c.change.as_ref().map(|p| p.previous_capture.as_str()),
        page_changed: c.change.as_ref().map(|p| p.changed),
        warc_sha256: c.warc.as_ref().map(|w| w.sha256.hex()),
        warc_bytes: c.warc.as_ref().map(|w| w.bytes),
        record_count: c.records,
        resources: c
            .resources
            .iter()
            .map(|r| ResourceLeaf {
                url: &r.url,
                status: r.status,
                mime: r.mime.as_deref(),
                payload: r.payload_sha256.map(|d| d.hex()),
                bytes: r.bytes,
                truncated: r.truncated.as_deref(),
                error: r.error.as_deref(),
            })
            .collect(),
        records: records
            .iter()
            .map(|r| RecordLeaf {
                id: &r.record_id,
                warc_type: &r.warc_type,
                target: r.target_uri.as_deref(),
                date: crate::warc::warc_date(&r.date),
                status: r.status,
                mime: r.mime.as_deref(),
                block: r.block_digest.hex(),
                payload: r.payload_digest.map(|d| d.hex()),
                offset: r.offset,
                length: r.length,
            })
            .collect(),
    };
    Leaf {
        kind: "capture",
        object_id: c.id.to_string(),
        data: serde_json::to_string(&body).expect("a capture leaf serialises"),
    }
}

#[derive(Serialize)]
struct CaptureLeafV1<'a> {
    leaf: &'static str,
    capture_id: &'a str,
    seed_url: &'a str,
    status: &'a str,
    started_at: String,
    finished_at: String,
    warc_sha256: Option<String>,
    warc_bytes: Option<u64>,
    error: Option<&'a str>,
    records: Vec<RecordLeafV1<'a>>,
}

#[derive(Serialize)]
struct RecordLeafV1<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    warc_type: &'a str,
    target: Option<&'a str>,
    block: String,
    payload: Option<String>,
    offset: u64,
    length: u64,
}

/// The first capture leaf (version 1, written until the log committed to
/// everything shown): id, seed, times, WARC digest and every record's
/// digests, type, target and place; no record times, statuses or types of
/// payload, no resources, schedule or change. Old leaves are still read
/// and checked against it.
pub fn capture_leaf_v1(c: &Capture, records: &[RecordEntry]) -> Leaf {
    let body = CaptureLeafV1 {
        leaf: "capture",
        capture_id: c.id.as_str(),
        seed_url: &c.seed_url,
        status: c.status.as_str(),
        started_at: crate::warc::warc_date(&c.started_at),
        finished_at: crate::warc::warc_date(&c.finished_at),
        warc_sha256: c.warc.as_ref().map(|w| w.sha256.hex()),
        warc_bytes: c.warc.as_ref().map(|w| w.bytes),
        error: c.error.as_deref(),
        records: records
            .iter()
            .map(|r| RecordLeafV1 {
                id: &r.record_id,
                warc_type: &r.warc_type,
                target: r.target_uri.as_deref(),
                block: r.block_digest.hex(),
                payload: r.payload_digest.map(|d| d.hex()),
                offset: r.offset,
                length: r.length,
            })
            .collect(),
    };
    Leaf {
        kind: "capture",
        object_id: c.id.to_string(),
        data: serde_json::to_string(&body).expect("a capture leaf serialises"),
    }
}

/// The version of a capture leaf's encoding (1 when it names none).
pub fn capture_leaf_version(data: &str) -> u64 {
    serde_json::from_str::<serde_json::Value>(data)
        .ok()
        .and_then(|v| v["v"].as_u64())
        .unwrap_or(1)
}

/// The capture leaf of `c` in the encoding `version` names. An imported
/// capture has only the version 3 encoding and a capture with a media step
/// only version 4: an older leaf never matches them, so neither can be
/// passed off under a leaf that does not commit to it.
pub fn capture_leaf_as(version: u64, c: &Capture, records: &[RecordEntry]) -> Leaf {
    match version {
        1 if c.import.is_none() && c.media.is_none() && c.browser.is_none() => {
            capture_leaf_v1(c, records)
        }
        _ => capture_leaf(c, records),
    }
}

/// The leaf of a claim version (claims were not leaves of their own before
/// version 2 of the capture leaf; their `claim_added` and `claim_edited`
/// events were).
pub fn claim_leaf(c: &Claim) -> Leaf {
    let mut value = serde_json::to_value(c).expect("a claim serialises");
    value["leaf"] = "claim".into();
    Leaf {
        kind: "claim",
        object_id: c.id.clone(),
        data: value.to_string(),
    }
}

/// The leaf of an evidence link.
pub fn link_leaf(l: &EvidenceLink) -> Leaf {
    let mut value = serde_json::to_value(l).expect("a link serialises");
    value["leaf"] = "evidence_link".into();
    Leaf {
        kind: "link",
        object_id: l.id.clone(),
        data: value.to_string(),
    }
}

/// The leaf of a custody event.
pub fn event_leaf(e: &CustodyEvent) -> Leaf {
    let mut value = serde_json::to_value(e).expect("an event serialises");
    value["leaf"] = "custody_event".into();
    Leaf {
        kind: "event",
        object_id: format!("{}:{}", e.object_kind, e.object_id),
        data: value.to_string(),
    }
}

/// The leaf of a fixity check.
pub fn fixity_leaf(e: &crate::model::FixityEvent) -> Leaf {
    let mut value = serde_json::to_value(e).expect("a fixity event serialises");
    value["leaf"] = "fixity_event".into();
    Leaf {
        kind: "fixity",
        object_id: e.object_key.clone(),
        data: value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    //! The exact bytes of one leaf of each kind. Signed checkpoints commit
    //! to these bytes: if a test here fails, an encoding changed, and every
    //! checkpoint already signed would stop reproducing. Add a new leaf
    //! version instead, and keep reading the old one.

    use super::*;
    use crate::model::{
        CaptureId, CaptureStatus, FixityEvent, Relation, Resource, Selector, WarcRef,
    };

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn golden(name: &str) -> &'static str {
        match name {
            "capture" => include_str!("../../tests/fixtures/golden/capture-leaf.json"),
            "capture-v1" => include_str!("../../tests/fixtures/golden/capture-leaf-v1.json"),
            "capture-v3" => include_str!("../../tests/fixtures/golden/capture-leaf-v3.json"),
            "capture-v4" => include_str!("../../tests/fixtures/golden/capture-leaf-v4.json"),
            "capture-v5" => include_str!("../../tests/fixtures/golden/capture-leaf-v5.json"),
            "claim" => include_str!("../../tests/fixtures/golden/claim-leaf.json"),
            "link" => include_str!("../../tests/fixtures/golden/link-leaf.json"),
            "event" => include_str!("../../tests/fixtures/golden/event-leaf.json"),
            "fixity" => include_str!("../../tests/fixtures/golden/fixity-leaf.json"),
            _ => unreachable!(),
        }
        .trim_end_matches('\n')
    }

    fn capture() -> (Capture, Vec<RecordEntry>) {
        let id: CaptureId = "0193f1e2-7c4a-7d2e-9b1a-3c5d7e9f1a2b".parse().unwrap();
        let page = "https://aleppo-news.example/2016/11/29/regime-airstrikes/";
        let payload = Sha256::of(b"nearly 25 civilians were killed");
        let warc = Sha256::of(b"the capture's WARC");
        let capture = Capture {
            id,
            seed_url: page.into(),
            status: CaptureStatus::Ok,
            error: None,
            started_at: at("2016-11-29T10:04:00.123456Z"),
            finished_at: at("2016-11-29T10:04:03.5Z"),
            warc: Some(WarcRef {
                key: format!("warc/{}/{}.warc.gz", &warc.hex()[..2], warc.hex()),
                sha256: warc,
                bytes: 48_213,
            }),
            records: 3,
            resources: vec![Resource {
                url: page.into(),
                status: Some(200),
                mime: Some("text/html".into()),
                payload_sha256: Some(payload),
                bytes: 31,
                truncated: None,
                error: None,
            }],
            schedule: Some("aleppo-reports".into()),
            scheduled_for: Some(at("2016-11-29T10:04:00Z")),
            change: None,
            import: None,
            media: None,
            browser: None,
        };
        let rec = |kind: &str, offset: u64, target: Option<&str>| RecordEntry {
            record_id: format!("<urn:uuid:00000000-0000-4000-8000-{offset:012}>"),
            warc_type: kind.into(),
            target_uri: target.map(str::to_string),
            surt: target.map(|_| "example,aleppo-news)/2016/11/29/regime-airstrikes/".into()),
            date: at("2016-11-29T10:04:00.123456Z"),
            timestamp: "20161129100400".into(),
            mime: (kind == "response").then(|| "text/html".into()),
            status: (kind == "response").then_some(200),
            payload_digest: (kind == "response").then_some(payload),
            block_digest: Sha256::of(kind.as_bytes()),
            offset,
            length: 400,
        };
        let records = vec![
            rec("warcinfo", 0, None),
            rec("response", 400, Some(page)),
            rec("request", 800, Some(page)),
        ];
        (capture, records)
    }

    #[test]
    fn a_capture_leaf_is_the_pinned_bytes() {
        let (mut c, records) = capture();
        c.change = Some(crate::model::PageChange {
            previous_capture: "0193f1e2-7c4a-7d2e-9b1a-000000000001".parse().unwrap(),
            changed: true,
        });
        let leaf = capture_leaf(&c, &records);
        assert_eq!(leaf.kind, "capture");
        assert_eq!(leaf.object_id, c.id.to_string());
        assert_eq!(leaf.data, golden("capture"));
        assert_eq!(capture_leaf_version(&leaf.data), 2);
    }

    #[test]
    fn a_version_1_capture_leaf_is_still_the_bytes_it_was() {
        let (c, records) = capture();
        let leaf = capture_leaf_v1(&c, &records);
        assert_eq!(leaf.data, golden("capture-v1"));
        assert_eq!(capture_leaf_version(&leaf.data), 1);
        assert_eq!(capture_leaf_as(1, &c, &records), leaf);
    }

    #[test]
    fn an_import_capture_leaf_is_version_3_and_no_older_encoding_stands_for_it() {
        let (mut c, records) = capture();
        let (plain_v2, plain_v1) = (capture_leaf(&c, &records), capture_leaf_v1(&c, &records));
        let file = Sha256::of(b"the file as received");
        c.schedule = None;
        c.scheduled_for = None;
        c.import = Some(ImportInfo {
            file: WarcRef {
                key: format!("import/{}/{}.warc.gz", &file.hex()[..2], file.hex()),
                sha256: file,
                bytes: 1_417,
            },
            name: "aleppo-crawl.warc.gz".into(),
            format: "warc.gz".into(),
            source: Some("sent by the newsroom".into()),
            imported_by: Some("token:1a2b3c4d".into()),
            received_at: at("2016-12-01T09:00:00Z"),
            content_sha256: Sha256::of(b"the records"),
            software: vec!["Wget/1.21.3".into()],
            operator: vec![],
            signer: None,
            verified: vec![
                "3 records read; 3 block digests and 1 payload digests match (4 of them SHA-1)"
                    .into(),
            ],
            problems: vec![crate::model::ImportProblem {
                record: Some("<urn:uuid:00000000-0000-4000-8000-000000000800>".into()),
                at: Some("offset 800".into()),
                problem: "its block digest does not match".into(),
            }],
            revisits: vec![],
        });
        let leaf = capture_leaf(&c, &records);
        assert_eq!(capture_leaf_version(&leaf.data), 3);
        assert_eq!(leaf.data, golden("capture-v3"));
        for v in [1, 2, 3] {
            assert_eq!(capture_leaf_as(v, &c, &records), leaf, "version {v}");
        }
        assert_ne!(leaf.data, plain_v2.data);
        assert_ne!(leaf.data, plain_v1.data);
    }

    #[test]
    fn a_media_capture_leaf_is_version_4_and_no_older_encoding_stands_for_it() {
        let (mut c, records) = capture();
        let (plain_v2, plain_v1) = (capture_leaf(&c, &records), capture_leaf_v1(&c, &records));
        c.media = Some(crate::model::MediaInfo {
            tool: "yt-dlp".into(),
            version: Some("2026.10.26".into()),
            status: "ok".into(),
            problem: None,
            format: "b/bv*+ba".into(),
            files: vec![crate::model::MediaFile {
                record_id: "<urn:uuid:00000000-0000-4000-8000-000000000900>".into(),
                target_uri: format!("urn:media:hls-1:{}", c.seed_url),
                mime: "video/mp4".into(),
                bytes: 150_000,
                sha256: Sha256::of(b"the video"),
                format_id: "hls-1".into(),
                info_record_id: Some("<urn:uuid:00000000-0000-4000-8000-000000000901>".into()),
                title: Some("Bab Alnairab after the strike".into()),
                uploader: None,
                upload_date: Some("20161129".into()),
                duration_ms: Some(30_000),
                extractor: Some("generic".into()),
            }],
        });
        let leaf = capture_leaf(&c, &records);
        assert_eq!(capture_leaf_version(&leaf.data), 4);
        assert_eq!(leaf.data, golden("capture-v4"));
        for v in [1, 2, 3, 4] {
            assert_eq!(capture_leaf_as(v, &c, &records), leaf, "version {v}");
        }
        assert_ne!(leaf.data, plain_v2.data);
        assert_ne!(leaf.data, plain_v1.data);
    }

    #[test]
    fn a_browser_capture_leaf_is_version_5_and_no_older_encoding_stands_for_it() {
        let (mut c, records) = capture();
        let plain = capture_leaf(&c, &records);
        c.browser = Some(crate::model::BrowserInfo {
            status: "ok".into(),
            problem: None,
            version: Some("Chrome/131.0.6778.85".into()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/131.0.6778.85".into()),
            window: "1280x900".into(),
            final_url: Some(c.seed_url.clone()),
            behaviours: vec![
                "load".into(),
                "network idle".into(),
                "scrolled 3 step(s), to 2700 px".into(),
            ],
            records: vec![crate::model::BrowserRecord {
                kind: "screenshot".into(),
                record_id: "<urn:uuid:00000000-0000-4000-8000-000000000a00>".into(),
                target_uri: format!("urn:screenshot:{}", c.seed_url),
                mime: "image/png".into(),
                bytes: 48_213,
                sha256: Sha256::of(b"the picture"),
            }],
        });
        let leaf = capture_leaf(&c, &records);
        assert_eq!(capture_leaf_version(&leaf.data), 5);
        assert_eq!(leaf.data, golden("capture-v5"));
        for v in 1..=5 {
            assert_eq!(capture_leaf_as(v, &c, &records), leaf, "version {v}");
        }
        assert_ne!(leaf.data, plain.data);
    }

    #[test]
    fn a_claim_leaf_is_the_pinned_bytes() {
        let claim = Claim {
            id: "0193f1e2-7c4a-7d2e-9b1a-000000000001".into(),
            version: 2,
            text: "Nearly 25 civilians were killed by airstrikes in Bab Alnairab, eastern Aleppo, while fleeing on foot".into(),
            event_start: Some("2016-11-29".into()),
            event_end: None,
            place: Some("Bab Alnairab, Aleppo".into()),
            latitude: Some(36.2021),
            longitude: Some(37.1343),
            tags: vec!["airstrike".into(), "civilians".into()],
            language: Some("en".into()),
            author: Some("archivist".into()),
            origin: None,
            created_at: at("2016-12-10T00:00:02Z"),
        };
        let leaf = claim_leaf(&claim);
        assert_eq!(
            (leaf.kind, leaf.object_id.as_str()),
            ("claim", claim.id.as_str())
        );
        assert_eq!(leaf.data, golden("claim"));
    }

    #[test]
    fn a_link_leaf_is_the_pinned_bytes() {
        let (c, records) = capture();
        let link = EvidenceLink {
            id: "0193f1e2-8000-7000-8000-00000000000a".into(),
            claim_id: "0193f1e2-7c4a-7d2e-9b1a-000000000001".into(),
            claim_version: 2,
            capture_id: c.id.clone(),
            record_id: records[1].record_id.clone(),
            target_uri: c.seed_url.clone(),
            payload_digest: records[1].payload_digest.unwrap(),
            relation: Relation::Supports,
            selectors: vec![
                Selector::TextQuoteSelector {
                    exact: "nearly 25 civilians were killed".into(),
                    prefix: "Syrian Coalition: ".into(),
                    suffix: " in airstrikes".into(),
                },
                Selector::TextPositionSelector {
                    start: 120,
                    end: 151,
                },
            ],
            quote_given: Some("nearly 25 civilians were killed".into()),
            rationale: Some("the report's own count".into()),
            author: Some("archivist".into()),
            created_at: at("2016-12-10T01:00:00Z"),
        };
        let leaf = link_leaf(&link);
        assert_eq!(
            (leaf.kind, leaf.object_id.as_str()),
            ("link", link.id.as_str())
        );
        assert_eq!(leaf.data, golden("link"));
    }

    #[test]
    fn an_event_leaf_is_the_pinned_bytes() {
        let e = CustodyEvent {
            object_kind: "capture".into(),
            object_id: "0193f1e2-7c4a-7d2e-9b1a-3c5d7e9f1a2b".into(),
            event: "accessed".into(),
            actor: Some("token:1a2b3c4d".into()),
            at: at("2016-12-06T00:00:01Z"),
            outcome: "ok".into(),
            detail: serde_json::json!({"via": "replay", "mode": "id_", "record": "<urn:uuid:x>"}),
        };
        let leaf = event_leaf(&e);
        assert_eq!(
            (leaf.kind, leaf.object_id.as_str()),
            ("event", "capture:0193f1e2-7c4a-7d2e-9b1a-3c5d7e9f1a2b")
        );
        assert_eq!(leaf.data, golden("event"));
    }

    #[test]
    fn a_fixity_leaf_is_the_pinned_bytes() {
        let digest = Sha256::of(b"the capture's WARC");
        let e = FixityEvent {
            object_key: format!("warc/{}/{}.warc.gz", &digest.hex()[..2], digest.hex()),
            location: "replica 1".into(),
            algorithm: "sha256".into(),
            expected: digest,
            observed: Some(Sha256::of(b"flipped")),
            outcome: "corrupt".into(),
            detail: Some("content hashes to something else".into()),
            at: at("2016-12-05T00:00:00Z"),
        };
        let leaf = fixity_leaf(&e);
        assert_eq!(
            (leaf.kind, leaf.object_id.as_str()),
            ("fixity", e.object_key.as_str())
        );
        assert_eq!(leaf.data, golden("fixity"));
    }
}
