//! `claim add|edit|link|export|show` and `claims`.

use std::process::ExitCode;

use anyhow::Context;

use super::output::print_json;
use super::{ClaimArgs, ClaimCommand, Failure};
use custody::archive::{normalize_url, Archive};
use custody::model::CaptureId;

pub async fn claims(
    archive: &Archive,
    search: Option<String>,
    url: Option<String>,
    capture: Option<CaptureId>,
    json: bool,
) -> Result<ExitCode, Failure> {
    let query = custody::provenance::ClaimQuery {
        search,
        url: url
            .map(|u| normalize_url(&u))
            .transpose()
            .map_err(|e| Failure::Usage(e.into()))?,
        capture,
    };
    let claims = custody::provenance::find_claims(archive.index().as_ref(), &query)
        .await
        .map_err(provenance_failure)?;
    for c in &claims {
        if json {
            print_json(c)?;
        } else {
            println!("{} v{}  {}", c.id, c.version, c.text);
        }
    }
    if !json && claims.is_empty() {
        eprintln!("no claims found; add one with `custody claim add TEXT`");
    }
    Ok(ExitCode::SUCCESS)
}

fn claim_fields(text: Option<String>, a: ClaimArgs) -> custody::provenance::ClaimFields {
    custody::provenance::ClaimFields {
        text,
        event_start: a.event_start.or(a.event_date),
        event_end: a.event_end,
        place: a.place,
        latitude: a.lat,
        longitude: a.lon,
        tags: (!a.tags.is_empty()).then_some(a.tags),
        language: a.language,
        author: a.author.or_else(|| std::env::var("USER").ok()),
        origin: None,
    }
}

fn provenance_failure(e: custody::provenance::ProvenanceError) -> Failure {
    use custody::provenance::ProvenanceError as P;
    match e {
        P::Invalid(_) => Failure::Usage(e.into()),
        e => Failure::Failed(e.into()),
    }
}

pub async fn claim_command(archive: &Archive, command: ClaimCommand) -> Result<ExitCode, Failure> {
    use custody::provenance;
    match command {
        ClaimCommand::Add { text, fields, json } => {
            let claim = provenance::add_claim(archive, claim_fields(Some(text), fields))
                .await
                .map_err(provenance_failure)?;
            if json {
                print_json(&claim)?;
            }
            eprintln!("claim {} v{}: {}", claim.id, claim.version, claim.text);
        }
        ClaimCommand::Edit {
            claim_id,
            text,
            fields,
            json,
        } => {
            let claim = provenance::edit_claim(archive, &claim_id, claim_fields(text, fields))
                .await
                .map_err(provenance_failure)?;
            if json {
                print_json(&claim)?;
            }
            eprintln!("claim {} v{}: {}", claim.id, claim.version, claim.text);
        }
        ClaimCommand::Link {
            claim_id,
            capture_id,
            quote,
            prefix,
            suffix,
            start,
            end,
            fragment,
            url,
            relation,
            rationale,
            author,
            json,
        } => {
            let capture_id = capture_id.resolve(archive).await?;
            let request = provenance::LinkRequest {
                claim_id,
                capture_id,
                target: url,
                quote,
                prefix,
                suffix,
                position: start.zip(end),
                fragment,
                relation,
                rationale,
                author: author.or_else(|| std::env::var("USER").ok()),
            };
            let link = provenance::link(archive, request)
                .await
                .map_err(provenance_failure)?;
            if json {
                print_json(&link)?;
            }
            let passage = link
                .selectors
                .iter()
                .find_map(|s| match s {
                    custody::model::Selector::TextQuoteSelector { exact, .. } => {
                        Some(format!("\"{exact}\""))
                    }
                    custody::model::Selector::FragmentSelector { value, .. } => Some(value.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            eprintln!(
                "linked claim {} ({}) to {} in capture {}: {passage}",
                link.claim_id,
                link.relation.as_str(),
                link.target_uri,
                link.capture_id
            );
        }
        ClaimCommand::Export {
            claim_id,
            output,
            force,
            json,
        } => {
            super::refuse_to_replace(&output, force)?;
            return export_wacz(
                archive,
                custody::wacz::Scope::Claim(claim_id),
                &output,
                json,
            )
            .await;
        }
        ClaimCommand::Show {
            claim_id,
            json,
            jsonld,
        } => return show(archive, &claim_id, json, jsonld).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// `claim show`: the claim with its evidence, each link re-verified; exit
/// 1 when any of it no longer verifies.
async fn show(
    archive: &Archive,
    claim_id: &str,
    json: bool,
    jsonld: bool,
) -> Result<ExitCode, Failure> {
    use custody::provenance;
    let ev = provenance::evidence(archive, claim_id)
        .await
        .map_err(provenance_failure)?;
    if jsonld {
        let doc = provenance::jsonld::claim_document(&ev);
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).context("serialising JSON-LD")?
        );
    } else if json {
        print_json(&ev)?;
    } else {
        let c = &ev.claim;
        println!("claim {} v{}: {}", c.id, c.version, c.text);
        for e in &ev.evidence {
            let state = if e.verified {
                "verified"
            } else {
                "NOT VERIFIED"
            };
            println!(
                "  {} {}  capture {} ({})  {}",
                e.relation.as_str(),
                state,
                e.capture_id,
                custody::model::rfc3339_utc(&e.captured_at),
                e.url
            );
            if let Some(custody::model::Selector::TextQuoteSelector { exact, .. }) =
                e.selector.first()
            {
                println!("    \"{exact}\"");
            }
            if let Some(absent) = &e.passage_absent_since {
                println!(
                    "    passage absent since capture {} ({})",
                    absent.capture_id,
                    custody::model::rfc3339_utc(&absent.captured_at)
                );
            }
            if let Some(err) = &e.verification_error {
                println!("    {err}");
            }
        }
        for e in &ev.events {
            super::output::print_event_to_stdout(e);
        }
    }
    if ev.evidence.iter().any(|e| !e.verified) {
        eprintln!("error: some evidence of claim {claim_id} no longer verifies");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a WACZ and says what it holds and which key signed it.
pub async fn export_wacz(
    archive: &Archive,
    scope: custody::wacz::Scope,
    output: &std::path::Path,
    json: bool,
) -> Result<ExitCode, Failure> {
    let actor = std::env::var("USER").ok();
    let exported = custody::wacz::export(archive, &scope, output, actor.as_deref()).await?;
    if json {
        print_json(&exported)?;
    }
    eprintln!(
        "wrote {} ({} bytes, sha256 {}; {} capture(s)); signed by public key {}",
        output.display(),
        exported.bytes,
        exported.sha256,
        exported.captures.len(),
        exported.public_key
    );
    Ok(ExitCode::SUCCESS)
}

/// `text`: the readable text quotes are matched against, each block with
/// its [start-end] positions (Unicode code points, end exclusive) unless
/// `plain`.
pub async fn text(
    archive: &Archive,
    id: &CaptureId,
    url: Option<&str>,
    plain: bool,
) -> Result<ExitCode, Failure> {
    use std::io::Write;
    let doc = archive.read_document(id, url).await?;
    let text = custody::provenance::document_text(&doc).map_err(provenance_failure)?;
    let detail = serde_json::json!({"via": "text", "url": doc.url, "record": doc.record.record_id});
    archive.event(id, "accessed", detail).await;
    let mut out = std::io::stdout().lock();
    if plain {
        writeln!(out, "{text}").context("writing to stdout")?;
        return Ok(ExitCode::SUCCESS);
    }
    for (start, end, block) in custody::provenance::text::blocks(&text) {
        writeln!(out, "[{start}-{end}] {block}").context("writing to stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}
