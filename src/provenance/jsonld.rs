//! A claim and its evidence as JSON-LD: W3C Web Annotations (with their
//! selectors) for the links, PROV-O for how each archived copy came to be
//! (capture as activity, WARC as entity, custody as software agent, the
//! person who linked as agent), and a schema.org `Claim` whose `appearance`
//! is the archived copy.
//!
//! The context is written inline, not referenced by URL, so the document
//! expands offline, years later, without fetching anything.

use serde_json::{json, Value};

use super::ClaimEvidence;
use crate::model::{self, Selector};
use crate::pipeline::SOFTWARE;

/// The W3C Web Annotation context (`http://www.w3.org/ns/anno.jsonld`),
/// as published, so a document made with it reads as any Web Annotation
/// consumer expects: `selector` points at the selectors themselves,
/// `motivation` is a vocabulary term, `schema:` is `http://schema.org/`.
const ANNO_CONTEXT: &str = include_str!("anno.jsonld");

/// anno.jsonld's terms, then custody's own (PROV-O and custody's fields,
/// none of which redefines an anno.jsonld term), inline.
pub fn context() -> Value {
    let anno: Value = serde_json::from_str(ANNO_CONTEXT).expect("anno.jsonld is JSON");
    let mut context = anno["@context"].clone();
    let own = json!({
        "prov": "http://www.w3.org/ns/prov#",
        "custody": "urn:custody:vocab#",
        "relation": "custody:relation",
        "payloadDigest": "custody:payloadDigest",
        "warcSha256": "custody:warcSha256",
        "recordId": "custody:recordId",
        "verified": "custody:verified"
    });
    let map = context
        .as_object_mut()
        .expect("anno.jsonld's context is an object");
    for (k, v) in own.as_object().into_iter().flatten() {
        debug_assert!(!map.contains_key(k), "{k} is anno.jsonld's");
        map.insert(k.clone(), v.clone());
    }
    context
}

fn person(name: &str) -> String {
    format!(
        "urn:custody:agent:{}",
        name.replace(|c: char| c.is_whitespace(), "_")
    )
}

/// An imported capture's provenance: another tool captured it (named by
/// its warcinfo, when it says); custody received the file, kept it, and
/// made the WARC the link resolved against from it.
fn import_nodes(
    graph: &mut Vec<Value>,
    capture_iri: &str,
    software: &str,
    link: &crate::provenance::LinkEvidence,
    import: &model::ImportInfo,
) {
    let file_iri = format!("urn:sha256:{}", import.file.sha256.hex());
    let import_iri = format!("{capture_iri}#import");
    let mut captured = json!({
        "id": capture_iri,
        "type": "prov:Activity",
        "prov:startedAtTime": {"@value": model::rfc3339_utc(&link.captured_at), "@type": "xsd:dateTime"},
        "prov:used": {"id": link.url},
    });
    if let Some(tool) = import.software.first() {
        let safe: String = tool
            .chars()
            .map(|c| match c {
                'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '/' => c,
                _ => '_',
            })
            .collect();
        let tool_iri = format!("urn:custody:software:{safe}");
        captured["prov:wasAssociatedWith"] = json!({"id": tool_iri});
        graph.push(json!({"id": tool_iri, "type": ["prov:SoftwareAgent", "prov:Agent"], "schema:name": tool}));
    }
    graph.push(captured);
    graph.push(json!({
        "id": file_iri,
        "type": "prov:Entity",
        "schema:name": import.name,
        "schema:encodingFormat": if import.format == "wacz" { "application/wacz" } else { "application/warc" },
        "schema:sha256": import.file.sha256.hex(),
        "prov:wasGeneratedBy": {"id": capture_iri},
    }));
    graph.push(json!({
            "id": import_iri,
            "type": "prov:Activity",
            "schema:name": "import",
            "prov:startedAtTime": {"@value": model::rfc3339_utc(&import.received_at), "@type": "xsd:dateTime"},
            "prov:used": {"id": file_iri},
            "prov:wasAssociatedWith": {"id": software}
        }));
}

/// The whole evidence of a claim as one JSON-LD document.
pub fn claim_document(ev: &ClaimEvidence) -> Value {
    let claim = &ev.claim;
    let claim_iri = format!("urn:custody:claim:{}", claim.id);
    let software = format!("urn:custody:software:{SOFTWARE}");
    let mut graph = vec![
        json!({"id": software, "type": ["prov:SoftwareAgent", "prov:Agent"], "schema:name": SOFTWARE}),
    ];
    let mut appearances = Vec::new();
    let mut agents = std::collections::BTreeSet::new();

    for link in &ev.evidence {
        let capture_iri = format!("urn:custody:capture:{}", link.capture_id);
        let copy_iri = format!(
            "{capture_iri}#{}",
            link.record_id.trim_start_matches('<').trim_end_matches('>')
        );
        let warc_iri = link.warc_sha256.map(|s| format!("urn:sha256:{}", s.hex()));
        appearances.push(json!({"id": copy_iri}));
        let selectors: Vec<Value> = link
            .selector
            .iter()
            .map(|s| match s {
                Selector::TextQuoteSelector { exact, prefix, suffix } => {
                    json!({"type": "TextQuoteSelector", "exact": exact, "prefix": prefix, "suffix": suffix})
                }
                Selector::TextPositionSelector { start, end } => json!({"type": "TextPositionSelector", "start": start, "end": end}),
                Selector::FragmentSelector { value, conforms_to } => {
                    json!({"type": "FragmentSelector", "value": value, "conformsTo": conforms_to})
                }
            })
            .collect();
        let mut annotation = json!({
            "id": format!("urn:custody:link:{}", link.link_id),
            "type": "Annotation",
            "motivation": "assessing",
            "body": claim_iri,
            "relation": link.relation.as_str(),
            "created": model::rfc3339_utc(&link.linked_at),
            "verified": link.verified,
            "target": {
                "type": "SpecificResource",
                "source": link.url,
                "selector": selectors,
                "state": {"type": "TimeState", "sourceDate": model::rfc3339_utc(&link.captured_at), "cached": copy_iri},
                "payloadDigest": link.payload_digest.labelled(),
                "recordId": link.record_id
            }
        });
        if let Some(author) = &link.author {
            annotation["creator"] = json!(person(author));
            agents.insert(author.clone());
        }
        graph.push(annotation);
        // The archived copy, and how it was made.
        let mut copy = json!({
            "id": copy_iri,
            "type": ["prov:Entity", "schema:WebPage"],
            "schema:url": link.url,
            "prov:wasGeneratedBy": {"id": capture_iri},
            "payloadDigest": link.payload_digest.labelled(),
            "recordId": link.record_id
        });
        if let Some(w) = &warc_iri {
            copy["prov:wasDerivedFrom"] = json!({"id": w});
            let mut warc = json!({"id": w, "type": "prov:Entity", "schema:encodingFormat": "application/warc", "warcSha256": w.trim_start_matches("urn:sha256:"), "prov:wasGeneratedBy": {"id": capture_iri}});
            if let Some(import) = &link.imported {
                // An import's WARC is custody's access copy of the file.
                warc["prov:wasGeneratedBy"] = json!({"id": format!("{capture_iri}#import")});
                warc["prov:wasDerivedFrom"] =
                    json!({"id": format!("urn:sha256:{}", import.file.sha256.hex())});
            }
            graph.push(warc);
        }
        graph.push(copy);
        let Some(import) = &link.imported else {
            graph.push(json!({
                "id": capture_iri,
                "type": "prov:Activity",
                "prov:startedAtTime": {"@value": model::rfc3339_utc(&link.captured_at), "@type": "xsd:dateTime"},
                "prov:used": {"id": link.url},
                "prov:wasAssociatedWith": {"id": software}
            }));
            continue;
        };
        import_nodes(&mut graph, &capture_iri, &software, link, import);
    }
    if let Some(author) = &claim.author {
        agents.insert(author.clone());
    }
    for a in &agents {
        graph.push(
            json!({"id": person(a), "type": ["prov:Person", "prov:Agent"], "schema:name": a}),
        );
    }
    let mut claim_node = json!({
        "id": claim_iri,
        "type": "schema:Claim",
        "schema:text": claim.text,
        "schema:version": claim.version,
        "schema:dateCreated": model::rfc3339_utc(&claim.created_at),
        "schema:appearance": appearances,
        "schema:keywords": claim.tags
    });
    if let Some(author) = &claim.author {
        claim_node["schema:author"] = json!({"id": person(author)});
    }
    if let Some(lang) = &claim.language {
        claim_node["schema:inLanguage"] = json!(lang);
    }
    match (&claim.event_start, &claim.event_end) {
        (Some(a), Some(b)) => claim_node["schema:temporalCoverage"] = json!(format!("{a}/{b}")),
        (Some(a), None) => claim_node["schema:temporalCoverage"] = json!(a),
        _ => {}
    }
    if claim.place.is_some() || claim.latitude.is_some() {
        let mut place = json!({"type": "schema:Place"});
        if let Some(p) = &claim.place {
            place["schema:name"] = json!(p);
        }
        if let (Some(lat), Some(lon)) = (claim.latitude, claim.longitude) {
            place["schema:geo"] = json!({"type": "schema:GeoCoordinates", "schema:latitude": lat, "schema:longitude": lon});
        }
        claim_node["schema:spatialCoverage"] = place;
    }
    graph.insert(0, claim_node);
    json!({"@context": context(), "@graph": graph})
}
