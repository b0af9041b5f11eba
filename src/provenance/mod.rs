//! Claims and the evidence for them.
//!
//! A claim is versioned and append-only. An evidence link ties a claim to one
//! record of one capture through W3C Web Annotation selectors. A text link is
//! resolved against the archived document when it is made ([`text`]
//! explains the readable text and the matching rules): a quote that is not
//! there is refused, a quote found more than once without enough prefix or
//! suffix to choose is refused with every place shown, and the stored link
//! keeps the payload digest of the record it was resolved against, so anyone
//! can check it later. After every capture, the links to the captured URL are
//! re-resolved in the new copy ([`after_capture`]) and a passage that
//! disappears (or comes back) becomes an event. This module writes no WARCs.

pub mod jsonld;
pub mod text;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::json;

use crate::archive::{Archive, ArchiveError, Document};
use crate::index::{IndexError, LinkFilter, ProvenanceIndex};
use crate::model::{
    self, Capture, CaptureId, Claim, CustodyEvent, EvidenceLink, PassageCheck, Relation, Selector,
    Sha256,
};

#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the quote {quote:?} is not in capture {capture} ({url}, captured {captured}){}; check the wording (`custody text {capture}` prints the text quotes are matched against) or link another capture", hint.as_deref().map(|h| format!(": {h}")).unwrap_or_default())]
    QuoteAbsent {
        capture: CaptureId,
        url: String,
        captured: String,
        quote: String,
        /// Where it is when read less strictly (case, spacing).
        hint: Option<String>,
    },
    #[error("the quote {quote:?} appears {} times in capture {capture}: {}; add --prefix or --suffix to choose one", places.len(), describe(places))]
    Ambiguous {
        capture: CaptureId,
        quote: String,
        places: Vec<text::Match>,
    },
    #[error("{url} in capture {capture} is {mime}, not text; link it with --fragment (t=... or xywh=...)")]
    NotText {
        capture: CaptureId,
        url: String,
        mime: String,
    },
    /// The index's row is not what the log holds: it is not presented.
    #[error("{0}; run `custody verify --all`")]
    NotAsLogged(String),
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

fn describe(places: &[text::Match]) -> String {
    places
        .iter()
        .enumerate()
        .map(|(i, m)| {
            format!(
                "[{}] at {}: \"…{}[{}]{}…\"",
                i + 1,
                m.start,
                m.prefix,
                m.exact,
                m.suffix
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The fields of a new claim or a new version of one.
#[derive(Clone, Debug, Default)]
pub struct ClaimFields {
    pub text: Option<String>,
    pub event_start: Option<String>,
    pub event_end: Option<String>,
    pub place: Option<String>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub tags: Option<Vec<String>>,
    pub language: Option<String>,
    pub author: Option<String>,
    pub origin: Option<String>,
}

fn validate(c: &Claim) -> Result<(), ProvenanceError> {
    if c.text.trim().is_empty() {
        return Err(ProvenanceError::Invalid("a claim needs text".into()));
    }
    for (name, date) in [
        ("--event-start", &c.event_start),
        ("--event-end", &c.event_end),
    ] {
        if let Some(d) = date {
            let ok = chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").is_ok()
                || DateTime::parse_from_rfc3339(d).is_ok();
            if !ok {
                return Err(ProvenanceError::Invalid(format!(
                    "{name} {d:?} is not a date; use YYYY-MM-DD"
                )));
            }
        }
    }
    if let (Some(a), Some(b)) = (&c.event_start, &c.event_end) {
        if b < a {
            return Err(ProvenanceError::Invalid(
                "--event-end is before --event-start".into(),
            ));
        }
    }
    match (c.latitude, c.longitude) {
        (Some(lat), Some(lon))
            if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
        {
            Ok(())
        }
        (None, None) => Ok(()),
        _ => Err(ProvenanceError::Invalid(
            "give --lat and --lon together, within -90..90 and -180..180".into(),
        )),
    }
}

fn event(
    kind: &str,
    id: &str,
    event: &str,
    actor: Option<&str>,
    outcome: &str,
    detail: serde_json::Value,
) -> CustodyEvent {
    CustodyEvent {
        object_kind: kind.into(),
        object_id: id.into(),
        event: event.into(),
        actor: actor.map(str::to_string),
        at: Utc::now(),
        outcome: outcome.into(),
        detail,
    }
}

/// Which claims to list (`custody claims`, `/api/v1/claims`).
#[derive(Clone, Debug, Default)]
pub struct ClaimQuery {
    /// Only claims whose text contains every word of this (any case).
    pub search: Option<String>,
    /// Only claims with evidence at this URL (normalised as the index keeps
    /// URLs).
    pub url: Option<String>,
    /// Only claims with evidence in this capture.
    pub capture: Option<CaptureId>,
}

/// The latest version of every claim `q` selects, oldest claim first.
pub async fn find_claims(
    index: &dyn ProvenanceIndex,
    q: &ClaimQuery,
) -> Result<Vec<Claim>, ProvenanceError> {
    let mut claims = index.claims(q.search.as_deref()).await?;
    if q.url.is_some() || q.capture.is_some() {
        let filter = LinkFilter {
            claim_id: None,
            capture_id: q.capture.clone(),
            target_uri: q.url.clone(),
        };
        let linked: std::collections::HashSet<String> = index
            .links(&filter)
            .await?
            .into_iter()
            .map(|l| l.claim_id)
            .collect();
        claims.retain(|c| linked.contains(&c.id));
    }
    Ok(claims)
}

/// Records a new claim (version 1).
pub async fn add_claim(archive: &Archive, fields: ClaimFields) -> Result<Claim, ProvenanceError> {
    let claim = Claim {
        id: uuid::Uuid::now_v7().to_string(),
        version: 1,
        text: fields.text.unwrap_or_default().trim().to_string(),
        event_start: fields.event_start,
        event_end: fields.event_end,
        place: fields.place,
        latitude: fields.latitude,
        longitude: fields.longitude,
        tags: fields.tags.unwrap_or_default(),
        language: fields.language,
        author: fields.author,
        origin: fields.origin,
        created_at: Utc::now(),
    };
    validate(&claim)?;
    let index = archive.index();
    index.put_claim(&claim).await?;
    index
        .add_event(&event(
            "claim",
            &claim.id,
            "claim_added",
            claim.author.as_deref(),
            "ok",
            json!({"version": 1}),
        ))
        .await?;
    Ok(claim)
}

/// Records a new version of a claim; unset fields keep their value.
pub async fn edit_claim(
    archive: &Archive,
    id: &str,
    fields: ClaimFields,
) -> Result<Claim, ProvenanceError> {
    let index = archive.index();
    let versions = index.claim_versions(id).await?;
    let last = versions.last().ok_or_else(|| {
        ProvenanceError::NotFound(format!("no claim {id}; list them with `custody claims`"))
    })?;
    let claim = Claim {
        id: last.id.clone(),
        version: last.version + 1,
        text: fields
            .text
            .map(|t| t.trim().to_string())
            .unwrap_or_else(|| last.text.clone()),
        event_start: fields.event_start.or_else(|| last.event_start.clone()),
        event_end: fields.event_end.or_else(|| last.event_end.clone()),
        place: fields.place.or_else(|| last.place.clone()),
        latitude: fields.latitude.or(last.latitude),
        longitude: fields.longitude.or(last.longitude),
        tags: fields.tags.unwrap_or_else(|| last.tags.clone()),
        language: fields.language.or_else(|| last.language.clone()),
        author: fields.author.or_else(|| last.author.clone()),
        origin: last.origin.clone(),
        created_at: Utc::now(),
    };
    validate(&claim)?;
    index.put_claim(&claim).await?;
    index
        .add_event(&event(
            "claim",
            id,
            "claim_edited",
            claim.author.as_deref(),
            "ok",
            json!({"version": claim.version, "supersedes": last.version}),
        ))
        .await?;
    Ok(claim)
}

/// What to link, and how.
#[derive(Clone, Debug)]
pub struct LinkRequest {
    pub claim_id: String,
    pub capture_id: CaptureId,
    /// The document in the capture (a URL it fetched); its page by default.
    pub target: Option<String>,
    pub quote: Option<String>,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    /// A `TextPositionSelector` range instead of a quote.
    pub position: Option<(u64, u64)>,
    /// A media fragment (`t=...` or `xywh=...`) instead of text.
    pub fragment: Option<String>,
    pub relation: Relation,
    pub rationale: Option<String>,
    pub author: Option<String>,
}

/// The readable text of a document (charset decoded; HTML reduced).
pub fn document_text(doc: &Document) -> Result<String, ProvenanceError> {
    let mime = doc.mime.clone().unwrap_or_default();
    let is_html = mime == "text/html" || mime == "application/xhtml+xml";
    let is_text = is_html || mime.starts_with("text/") || mime.is_empty();
    if !is_text {
        return Err(ProvenanceError::NotText {
            capture: doc.capture.id.clone(),
            url: doc.url.clone(),
            mime,
        });
    }
    let decoded = crate::charset::decode(&doc.body, doc.content_type.as_deref(), is_html);
    Ok(if is_html {
        text::html_to_text(&decoded)
    } else {
        text::plain_to_text(&decoded)
    })
}

/// Resolves the request against the archived document and records the link.
pub async fn link(archive: &Archive, req: LinkRequest) -> Result<EvidenceLink, ProvenanceError> {
    let index = archive.index();
    let claim = index
        .claim_versions(&req.claim_id)
        .await?
        .pop()
        .ok_or_else(|| {
            ProvenanceError::NotFound(format!(
                "no claim {}; list them with `custody claims`",
                req.claim_id
            ))
        })?;
    // What readers read: in a browser-mode capture, a passage is found in
    // the page's rendered text (the link names that record), unless
    // another document is asked for.
    let rendered = match (&req.target, req.fragment.is_some()) {
        (None, false) => index
            .capture(&req.capture_id)
            .await?
            .and_then(|c| c.browser)
            .and_then(|b| b.records.into_iter().find(|r| r.kind == "text"))
            .map(|r| r.target_uri),
        _ => None,
    };
    let doc = archive
        .read_document(
            &req.capture_id,
            rendered.as_deref().or(req.target.as_deref()),
        )
        .await
        .map_err(|e| match e {
            ArchiveError::NotFound(m) => ProvenanceError::NotFound(m),
            e => ProvenanceError::Archive(e),
        })?;
    let ways = [
        req.quote.is_some(),
        req.position.is_some(),
        req.fragment.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if ways != 1 {
        return Err(ProvenanceError::Invalid(
            "give exactly one of --quote, --start/--end, or --fragment".into(),
        ));
    }
    let selectors = if let Some(fragment) = &req.fragment {
        vec![fragment_selector(fragment, doc.mime.as_deref())?]
    } else {
        let text = document_text(&doc)?;
        let m = if let Some(quote) = &req.quote {
            let places =
                text::find_quote(&text, quote, req.prefix.as_deref(), req.suffix.as_deref());
            match places.len() {
                0 => {
                    return Err(ProvenanceError::QuoteAbsent {
                        capture: doc.capture.id.clone(),
                        url: doc.url.clone(),
                        captured: model::rfc3339_utc(&doc.record.date),
                        quote: quote.clone(),
                        hint: text::near_quote(&text, quote),
                    })
                }
                1 => places.into_iter().next().expect("one place"),
                _ => {
                    return Err(ProvenanceError::Ambiguous {
                        capture: doc.capture.id.clone(),
                        quote: quote.clone(),
                        places,
                    })
                }
            }
        } else {
            let (start, end) = req.position.expect("checked above");
            let exact = text::slice(&text, start as usize, end as usize).ok_or_else(|| {
                ProvenanceError::Invalid(format!(
                    "--start {start} --end {end} is not a range of the document's {} characters",
                    text.chars().count()
                ))
            })?;
            let all = text::find_quote(&text, &exact, None, None);
            all.into_iter()
                .find(|m| m.start == start as usize)
                .unwrap_or(text::Match {
                    start: start as usize,
                    end: end as usize,
                    exact,
                    prefix: String::new(),
                    suffix: String::new(),
                })
        };
        vec![
            Selector::TextQuoteSelector {
                exact: m.exact.clone(),
                prefix: m.prefix.clone(),
                suffix: m.suffix.clone(),
            },
            Selector::TextPositionSelector {
                start: m.start as u64,
                end: m.end as u64,
            },
        ]
    };
    let payload_digest = doc
        .record
        .payload_digest
        .ok_or_else(|| ProvenanceError::Invalid("the record has no payload digest".into()))?;
    let link = EvidenceLink {
        id: uuid::Uuid::now_v7().to_string(),
        claim_id: claim.id.clone(),
        claim_version: claim.version,
        capture_id: doc.capture.id.clone(),
        record_id: doc.record.record_id.clone(),
        target_uri: doc.url.clone(),
        payload_digest,
        relation: req.relation,
        selectors,
        quote_given: req.quote.clone(),
        rationale: req.rationale.clone(),
        author: req.author.clone(),
        created_at: Utc::now(),
    };
    index.put_link(&link).await?;
    let detail = json!({"link": link.id, "capture": link.capture_id, "relation": link.relation.as_str(), "payload_digest": payload_digest});
    index
        .add_event(&event(
            "claim",
            &claim.id,
            "linked",
            req.author.as_deref(),
            "ok",
            detail.clone(),
        ))
        .await?;
    index
        .add_event(&event(
            "capture",
            doc.capture.id.as_str(),
            "linked",
            req.author.as_deref(),
            "ok",
            json!({"claim": claim.id, "link": link.id}),
        ))
        .await?;
    Ok(link)
}

fn fragment_selector(value: &str, mime: Option<&str>) -> Result<Selector, ProvenanceError> {
    let bad = || {
        ProvenanceError::Invalid(format!("--fragment {value:?} is not a media fragment; use t=START,END (seconds) or xywh=X,Y,W,H"))
    };
    let (key, rest) = value.split_once('=').ok_or_else(bad)?;
    let numbers = |s: &str| {
        s.split(',')
            .all(|n| !n.is_empty() && n.parse::<f64>().is_ok_and(|v| v >= 0.0))
    };
    let ok = match key {
        "t" => {
            let parts: Vec<&str> = rest.split(',').collect();
            (1..=2).contains(&parts.len())
                && numbers(rest)
                && (parts.len() == 1
                    || parts[0].parse::<f64>().ok() <= parts[1].parse::<f64>().ok())
        }
        "xywh" => {
            let body = rest
                .strip_prefix("pixel:")
                .or_else(|| rest.strip_prefix("percent:"))
                .unwrap_or(rest);
            body.split(',').count() == 4 && numbers(body)
        }
        _ => false,
    };
    if !ok {
        return Err(bad());
    }
    let m = mime.unwrap_or("");
    let fits = (key == "t" && (m.starts_with("video/") || m.starts_with("audio/")))
        || (key == "xywh" && (m.starts_with("image/") || m.starts_with("video/")));
    if !fits {
        return Err(ProvenanceError::Invalid(format!(
            "--fragment {key}=... does not apply to a {m} document"
        )));
    }
    Ok(Selector::FragmentSelector {
        value: value.to_string(),
        conforms_to: "http://www.w3.org/TR/media-frags/".into(),
    })
}

/// A claim with its evidence, as `claim show` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct ClaimEvidence {
    pub claim: Claim,
    pub versions: Vec<Claim>,
    pub evidence: Vec<LinkEvidence>,
    pub events: Vec<CustodyEvent>,
}

#[derive(Clone, Debug, Serialize)]
pub struct LinkEvidence {
    pub link_id: String,
    pub relation: Relation,
    pub capture_id: CaptureId,
    pub url: String,
    #[serde(with = "model::rfc3339")]
    pub captured_at: DateTime<Utc>,
    pub warc_sha256: Option<Sha256>,
    pub record_id: String,
    pub payload_digest: Sha256,
    pub selector: Vec<Selector>,
    pub quote_given: Option<String>,
    pub rationale: Option<String>,
    pub author: Option<String>,
    #[serde(with = "model::rfc3339")]
    pub linked_at: DateTime<Utc>,
    pub claim_version: u32,
    /// Re-checked now against the stored record: digest and passage.
    pub verified: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verification_error: Option<String>,
    /// The passage in later captures of the same URL.
    pub later_captures: Vec<PassageCheck>,
    /// The first capture of the current run of captures without the passage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub passage_absent_since: Option<PassageCheck>,
    /// Set when the capture was imported (another tool captured it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub imported: Option<model::ImportInfo>,
}

/// Every version of a claim, each checked against its log leaf (or, for a
/// version made before claims were leaves, against its logged
/// `claim_added`/`claim_edited` event): a row that is not as logged is
/// refused, not shown.
async fn logged_versions(archive: &Archive, claim_id: &str) -> Result<Vec<Claim>, ProvenanceError> {
    let index = archive.index();
    let versions = index.claim_versions(claim_id).await?;
    let leaves = index.log_leaves_of("claim", claim_id).await?;
    let events = index
        .log_leaves_of("event", &format!("claim:{claim_id}"))
        .await?;
    for c in &versions {
        let expected = crate::tlog::leaf::claim_leaf(c).data;
        let logged = leaves.iter().find(|l| {
            serde_json::from_str::<serde_json::Value>(&l.data)
                .is_ok_and(|v| v["version"] == u64::from(c.version))
        });
        match logged {
            Some(l) if l.data == expected => {}
            Some(l) => {
                return Err(ProvenanceError::NotAsLogged(format!(
                "claim {claim_id} version {}: the index's row is not what the log holds (leaf {})",
                c.version, l.index
            )))
            }
            None => {
                let named = events.iter().any(|e| {
                    serde_json::from_str::<serde_json::Value>(&e.data).is_ok_and(|v| {
                        matches!(v["event"].as_str(), Some("claim_added" | "claim_edited"))
                            && v["detail"]["version"].as_u64().unwrap_or(1) == u64::from(c.version)
                    })
                });
                if !named {
                    return Err(ProvenanceError::NotAsLogged(format!(
                        "claim {claim_id} version {} is not in the log",
                        c.version
                    )));
                }
            }
        }
    }
    Ok(versions)
}

/// A link as the log holds it: the index's row when it matches its leaf;
/// otherwise the logged link, with why it is not verified.
async fn logged_link(
    archive: &Archive,
    link: EvidenceLink,
) -> Result<(EvidenceLink, Option<String>), ProvenanceError> {
    let leaves = archive.index().log_leaves_of("link", &link.id).await?;
    let Some(leaf) = leaves.first() else {
        let why = format!(
            "link {} is not in the log; run `custody verify --all`",
            link.id
        );
        return Ok((link, Some(why)));
    };
    if leaf.data == crate::tlog::leaf::link_leaf(&link).data {
        return Ok((link, None));
    }
    let logged: EvidenceLink = serde_json::from_str(&leaf.data).map_err(|_| {
        ProvenanceError::NotAsLogged(format!(
            "link {}: its log leaf {} is unreadable",
            link.id, leaf.index
        ))
    })?;
    let why = format!(
        "the index's row of link {} is not what the log holds (leaf {}): the logged link is shown; run `custody verify --all`",
        link.id, leaf.index
    );
    Ok((logged, Some(why)))
}

/// A claim with every link, re-verified against the store now; rows that
/// are not as logged are refused (a claim) or shown as logged and not
/// verified (a link).
pub async fn evidence(archive: &Archive, claim_id: &str) -> Result<ClaimEvidence, ProvenanceError> {
    let index = archive.index();
    let versions = logged_versions(archive, claim_id).await?;
    let claim = versions.last().cloned().ok_or_else(|| {
        ProvenanceError::NotFound(format!(
            "no claim {claim_id}; list them with `custody claims`"
        ))
    })?;
    let links = index
        .links(&LinkFilter {
            claim_id: Some(claim_id.to_string()),
            ..Default::default()
        })
        .await?;
    let mut evidence = Vec::new();
    for link in links {
        let (link, not_as_logged) = logged_link(archive, link).await?;
        let capture = index.capture(&link.capture_id).await?;
        let (verified, verification_error) = match not_as_logged {
            Some(why) => (false, Some(why)),
            None => match verify_link(archive, &link).await {
                Ok(()) => (true, None),
                Err(e) => (false, Some(e)),
            },
        };
        let checks = index.passage_checks(&link.id).await?;
        let mut absent_since = None;
        for c in &checks {
            if c.present {
                absent_since = None;
            } else if absent_since.is_none() {
                absent_since = Some(c.clone());
            }
        }
        evidence.push(LinkEvidence {
            link_id: link.id.clone(),
            relation: link.relation,
            capture_id: link.capture_id.clone(),
            url: link.target_uri.clone(),
            captured_at: capture
                .as_ref()
                .map(|c| c.started_at)
                .unwrap_or(link.created_at),
            warc_sha256: capture
                .as_ref()
                .and_then(|c| c.warc.as_ref().map(|w| w.sha256)),
            record_id: link.record_id.clone(),
            payload_digest: link.payload_digest,
            selector: link.selectors.clone(),
            quote_given: link.quote_given.clone(),
            rationale: link.rationale.clone(),
            author: link.author.clone(),
            linked_at: link.created_at,
            claim_version: link.claim_version,
            verified,
            verification_error,
            later_captures: checks,
            passage_absent_since: absent_since,
            imported: capture.as_ref().and_then(|c| c.import.clone()),
        });
    }
    let events = index.events("claim", claim_id).await?;
    Ok(ClaimEvidence {
        claim,
        versions,
        evidence,
        events,
    })
}

/// Re-reads the linked record (its digests are checked by the reader) and
/// checks its payload digest and the selected passage.
pub async fn verify_link(archive: &Archive, link: &EvidenceLink) -> Result<(), String> {
    let doc = archive
        .read_document(&link.capture_id, Some(&link.target_uri))
        .await
        .map_err(|e| e.to_string())?;
    let actual = doc
        .record
        .payload_digest
        .ok_or("the record has no payload digest")?;
    if actual != link.payload_digest || doc.record.record_id != link.record_id {
        return Err(format!(
            "record {} no longer has payload digest {}",
            link.record_id, link.payload_digest
        ));
    }
    let needs_text = link
        .selectors
        .iter()
        .any(|s| !matches!(s, Selector::FragmentSelector { .. }));
    if !needs_text {
        return Ok(());
    }
    let text = document_text(&doc).map_err(|e| e.to_string())?;
    for s in &link.selectors {
        if let Selector::TextPositionSelector { start, end } = s {
            let exact = link.selectors.iter().find_map(|q| match q {
                Selector::TextQuoteSelector { exact, .. } => Some(exact.clone()),
                _ => None,
            });
            let at = text::slice(&text, *start as usize, *end as usize);
            if exact.is_some() && at != exact {
                return Err(format!(
                    "the text at {start}..{end} is no longer the quoted passage"
                ));
            }
        }
    }
    Ok(())
}

/// A claim a schedule declares for its pages (`[[schedule.claim]]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScheduleClaim {
    pub text: String,
    pub quote: String,
    pub prefix: Option<String>,
    pub suffix: Option<String>,
    pub relation: Relation,
}

/// Records, for each earlier link to the captured page, whether its
/// passage is still there (a passage check and a `rechecked` event), and a
/// claim event when that changed.
async fn recheck_links<'a>(
    archive: &Archive,
    capture: &Capture,
    url: &str,
    text: Option<&str>,
    links: impl Iterator<Item = &'a EvidenceLink>,
    actor: Option<&str>,
) -> Result<(), ProvenanceError> {
    let index = archive.index();
    for link in links {
        let Some(exact) = link.selectors.iter().find_map(|s| match s {
            Selector::TextQuoteSelector { exact, .. } => Some(exact.clone()),
            _ => None,
        }) else {
            continue;
        };
        let present = text.is_some_and(|t| !text::find_quote(t, &exact, None, None).is_empty());
        let before = index
            .passage_checks(&link.id)
            .await?
            .last()
            .map(|c| c.present)
            .unwrap_or(true);
        let check = PassageCheck {
            link_id: link.id.clone(),
            capture_id: capture.id.clone(),
            captured_at: capture.started_at,
            present,
        };
        // The events first, the check last: the check is what readers see
        // (`passage_absent_since`), so one who sees it also sees why; a
        // crash between them repeats the events at the next capture
        // rather than losing them.
        let outcome = if present { "present" } else { "absent" };
        let detail = json!({"link": link.id, "capture": capture.id, "url": url});
        index
            .add_event(&event(
                "link",
                &link.id,
                "rechecked",
                actor,
                outcome,
                detail.clone(),
            ))
            .await?;
        if before != present {
            let name = if present {
                "passage_restored"
            } else {
                "passage_absent"
            };
            index
                .add_event(&event(
                    "claim",
                    &link.claim_id,
                    name,
                    actor,
                    outcome,
                    detail,
                ))
                .await?;
            tracing::warn!(claim = %link.claim_id, link = %link.id, capture = %capture.id, url = %url, event = name, "a linked passage changed");
        }
        index.put_passage_check(&check).await?;
    }

    Ok(())
}

/// Links each of a schedule's claims to the capture the first time its
/// quote is found on the page (once, unambiguously); records a `rechecked`
/// event when it is absent or ambiguous.
async fn link_schedule_claims(
    archive: &Archive,
    capture: &Capture,
    url: &str,
    text: &str,
    schedule: &str,
    claims: &[ScheduleClaim],
) -> Result<(), ProvenanceError> {
    let index = archive.index();
    let origin = format!("schedule:{schedule}");
    for sc in claims {
        let claim = match index.claim_by_origin(&origin, &sc.text).await? {
            Some(c) => c,
            None => {
                let fields = ClaimFields {
                    text: Some(sc.text.clone()),
                    author: Some(origin.clone()),
                    origin: Some(origin.clone()),
                    ..Default::default()
                };
                add_claim(archive, fields).await?
            }
        };
        let linked = index
            .links(&LinkFilter {
                claim_id: Some(claim.id.clone()),
                target_uri: Some(url.to_string()),
                ..Default::default()
            })
            .await?;
        if !linked.is_empty() {
            continue;
        }
        let places = text::find_quote(text, &sc.quote, sc.prefix.as_deref(), sc.suffix.as_deref());
        if places.len() != 1 {
            let outcome = if places.is_empty() {
                "absent"
            } else {
                "ambiguous"
            };
            index
                .add_event(&event(
                    "claim",
                    &claim.id,
                    "rechecked",
                    Some(&origin),
                    outcome,
                    json!({"capture": capture.id, "quote": sc.quote}),
                ))
                .await?;
            continue;
        }
        let request = LinkRequest {
            claim_id: claim.id.clone(),
            capture_id: capture.id.clone(),
            target: Some(url.to_string()),
            quote: Some(sc.quote.clone()),
            prefix: sc.prefix.clone(),
            suffix: sc.suffix.clone(),
            position: None,
            fragment: None,
            relation: sc.relation,
            rationale: Some(format!("declared in schedule {schedule}")),
            author: Some(origin.clone()),
        };
        link(archive, request).await?;
    }
    Ok(())
}

/// After a capture: links the schedule's claims to it the first time their
/// quote is found, and re-checks every earlier link to the captured page.
pub async fn after_capture(
    archive: &Archive,
    capture: &Capture,
    schedule: Option<&str>,
    claims: &[ScheduleClaim],
) -> Result<(), ProvenanceError> {
    if capture.warc.is_none() {
        return Ok(());
    }
    let index = archive.index();
    // The page: the first response of the seed's chain that is not a redirect.
    let Some(page) = capture
        .resources
        .iter()
        .find(|r| r.status.is_some_and(|s| !(300..400).contains(&s)))
    else {
        return Ok(());
    };
    let text_like = page
        .mime
        .as_deref()
        .is_none_or(|m| m.starts_with("text/") || m == "application/xhtml+xml");
    let mut earlier = index
        .links(&LinkFilter {
            target_uri: Some(page.url.clone()),
            ..Default::default()
        })
        .await?;
    // Links made against the page's rendered text (browser mode) are
    // links to the page too.
    let rendered_uri = format!("urn:text:{}", page.url);
    earlier.extend(
        index
            .links(&LinkFilter {
                target_uri: Some(rendered_uri.clone()),
                ..Default::default()
            })
            .await?,
    );
    // What readers read of this capture: its rendered text when it has one.
    let rendered = capture
        .browser
        .as_ref()
        .is_some_and(|b| b.records.iter().any(|r| r.target_uri == rendered_uri));
    // Most captures concern no claim: read nothing back for them.
    if !text_like || (earlier.is_empty() && (claims.is_empty() || schedule.is_none())) {
        return Ok(());
    }
    let target = rendered.then_some(rendered_uri.as_str());
    let doc = match archive.read_document(&capture.id, target).await {
        Ok(d) => d,
        Err(ArchiveError::NotFound(_)) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let text = document_text(&doc).ok();
    let actor = schedule.map(|s| format!("schedule:{s}"));

    // Earlier links to this page: is their passage still there?
    let others = earlier.iter().filter(|l| l.capture_id != capture.id);
    recheck_links(
        archive,
        capture,
        &doc.url,
        text.as_deref(),
        others,
        actor.as_deref(),
    )
    .await?;
    // The schedule's own claims: link them the first time the quote is found.
    if let (Some(schedule), Some(text)) = (schedule, text.as_deref()) {
        link_schedule_claims(archive, capture, &doc.url, text, schedule, claims).await?;
    }
    Ok(())
}
