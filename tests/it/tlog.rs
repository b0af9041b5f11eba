//! The transparency log through the CLI: every capture, link and custody
//! event is a leaf; checkpoints are signed; a capture's inclusion proof
//! verifies offline with the printed key; consistency between checkpoints
//! holds, and stops holding when a stored leaf is rewritten.

use custody::model::CaptureStatus;
use custody::tlog::{verify_checkpoint, verify_inclusion_proof, InclusionProof};

use crate::cli::{stderr_text, Workdir};
use crate::site;

fn proof_of(work: &Workdir, capture: &str) -> (serde_json::Value, InclusionProof) {
    let json: serde_json::Value =
        serde_json::from_slice(&work.ok(&["log", "proof", capture, "--json"])).unwrap();
    let hashes = |v: &serde_json::Value| {
        v.as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().parse().unwrap())
            .collect()
    };
    let proof = InclusionProof {
        leaf_index: json["leaf_index"].as_u64().unwrap(),
        leaf_hash: json["leaf_hash"].as_str().unwrap().parse().unwrap(),
        leaf_data: json["leaf_data"].as_str().unwrap().to_string(),
        tree_size: json["tree_size"].as_u64().unwrap(),
        root: json["root"].as_str().unwrap().parse().unwrap(),
        proof: hashes(&json["proof"]),
        checkpoint: json["checkpoint"].as_str().unwrap().to_string(),
        verifier_key: json["verifier_key"].as_str().unwrap().to_string(),
    };
    (json, proof)
}

#[tokio::test(flavor = "multi_thread")]
async fn captures_are_logged_proved_and_a_rewritten_leaf_is_caught() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let (first, _) = work.capture(&url);
    assert_eq!(first.status, CaptureStatus::Ok);

    let key = String::from_utf8(work.ok(&["log", "key"])).unwrap();
    let key = key.trim();
    assert!(key.starts_with("custody-"), "{key}");
    let early: serde_json::Value =
        serde_json::from_slice(&work.ok(&["log", "checkpoint", "--json"])).unwrap();
    let early_size = early["tree_size"].as_u64().unwrap();
    assert!(early_size >= 1);
    verify_checkpoint(early["note"].as_str().unwrap(), key).unwrap();

    // More leaves: a second capture, a claim link, an access.
    let (second, _) = work.capture(&url);
    work.claim_linked_to(&[&second]);
    work.ok(&["get", &url]);

    // The second capture's proof verifies with nothing but the printed key,
    // and its leaf names the capture and its WARC digest.
    let (json, proof) = proof_of(&work, second.id.as_str());
    assert!(proof.tree_size > early_size);
    verify_inclusion_proof(&proof, key).unwrap();
    let leaf: serde_json::Value = serde_json::from_str(&proof.leaf_data).unwrap();
    assert_eq!(leaf["capture_id"], second.id.as_str());
    assert_eq!(
        leaf["warc_sha256"],
        second.warc.as_ref().unwrap().sha256.hex()
    );
    assert_eq!(
        leaf["records"].as_array().unwrap().len() as u64,
        second.records
    );
    // Altered proof material does not verify.
    let mut forged = proof.clone();
    forged.leaf_data = forged
        .leaf_data
        .replace(second.id.as_str(), first.id.as_str());
    assert!(verify_inclusion_proof(&forged, key).is_err());
    assert!(json["checkpoint"].as_str().unwrap().contains('\u{2014}'));

    // Both checkpoints check out, with a consistency proof between them.
    let out = work.run(&["log", "check", "--json"]);
    assert!(out.status.success(), "{}", stderr_text(&out));
    let checks: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c["ok"] == true));
    assert_eq!(checks[1]["consistency_from"], early_size);

    // The consistency proof between the two checkpoints verifies offline.
    let late_size = checks[1]["tree_size"].as_u64().unwrap();
    let consistency: custody::tlog::ConsistencyProof = serde_json::from_slice(&work.ok(&[
        "log",
        "consistency",
        &early_size.to_string(),
        &late_size.to_string(),
        "--json",
    ]))
    .unwrap();
    custody::tlog::verify_consistency_proof(&consistency, key).unwrap();
    let mut bent = consistency.clone();
    if let Some(h) = bent.proof.first_mut() {
        *h = custody::model::Sha256::of(b"bent");
    }
    assert!(custody::tlog::verify_consistency_proof(&bent, key).is_err());

    // Rewrite the first capture's leaf, recomputing its hash as a careful
    // forger would: the signed checkpoints expose it.
    let pool = work.index_pool().await;
    let (data,): (String,) = sqlx::query_as("SELECT data FROM log_leaf WHERE idx = 0")
        .fetch_one(&pool)
        .await
        .unwrap();
    let forged = data.replace(&first.warc.as_ref().unwrap().sha256.hex(), &"0".repeat(64));
    assert_ne!(forged, data);
    let forged_hash =
        custody::model::Sha256::from_bytes(custody::tlog::merkle::leaf_hash(forged.as_bytes()));
    sqlx::query("UPDATE log_leaf SET data = ?, leaf_hash = ? WHERE idx = 0")
        .bind(&forged)
        .bind(forged_hash.hex())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let out = work.run(&["log", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_text(&out);
    assert!(
        err.contains(&format!("checkpoint {early_size} FAILED")),
        "{err}"
    );
    assert!(err.contains("not the signed"), "{err}");
    let out = work.run(&["log", "proof", first.id.as_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_text(&out).contains("no longer reproduces checkpoint"),
        "{}",
        stderr_text(&out)
    );
    // After the tampering, the consistency proof no longer verifies.
    let out = work.run(&[
        "log",
        "consistency",
        &early_size.to_string(),
        &late_size.to_string(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr_text(&out).contains("not consistent"),
        "{}",
        stderr_text(&out)
    );
}
