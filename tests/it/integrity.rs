//! Fixity audits and verification through the CLI: a flipped byte in a
//! stored WARC is found by `audit` (which quarantines the object) and by
//! `verify`, which names the record; capture rows deleted from the index by
//! hand are found by `verify --all`, because the log still holds them.

use custody::model::CaptureStatus;

use crate::cli::{stderr_text, Workdir};
use crate::site;

async fn sqlite(work: &Workdir) -> sqlx::SqlitePool {
    let db = work.path().join("custody-data/index.db");
    sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_is_found_by_audit_and_named_by_verify() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let (capture, _) = work.capture(&format!("http://{addr}{}", site::ARTICLE_PATH));
    assert_eq!(capture.status, CaptureStatus::Ok);
    work.ok(&["log", "checkpoint"]);

    let out = work.run(&["audit"]);
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert!(stderr_text(&out).contains("1 object(s) checked, 0 failed"));
    let out = work.run(&["verify", capture.id.as_str()]);
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert!(
        stderr_text(&out).contains("inclusion in checkpoint"),
        "{}",
        stderr_text(&out)
    );
    assert!(work.run(&["verify", "--all"]).status.success());

    // Flip one byte in the middle of the video's response record.
    let show: serde_json::Value =
        serde_json::from_slice(&work.ok(&["show", capture.id.as_str(), "--json"])).unwrap();
    let video = show["records_detail"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| {
            r["warc_type"] == "response"
                && r["target_uri"]
                    .as_str()
                    .unwrap()
                    .ends_with("atareb-factories.mp4")
        })
        .unwrap()
        .clone();
    let warc = capture.warc.as_ref().unwrap();
    let object = work.path().join("custody-data/objects").join(&warc.key);
    let mut bytes = std::fs::read(&object).unwrap();
    let at = (video["offset"].as_u64().unwrap() + video["length"].as_u64().unwrap() / 2) as usize;
    bytes[at] ^= 0x01;
    std::fs::write(&object, &bytes).unwrap();

    let out = work.run(&["audit", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let event: serde_json::Value =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).lines().next().unwrap()).unwrap();
    assert_eq!(event["outcome"], "corrupt");
    assert_eq!(event["object_key"], warc.key.as_str());
    assert_eq!(event["expected"], warc.sha256.to_string());
    let pool = sqlite(&work).await;
    let (quarantined,): (Option<String>,) =
        sqlx::query_as("SELECT quarantined FROM warc_file WHERE key = ?")
            .bind(&warc.key)
            .fetch_one(&pool)
            .await
            .unwrap();
    assert!(quarantined.unwrap().starts_with("corrupt"));
    let (fixity_leaves,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM log_leaf WHERE kind = 'fixity'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(fixity_leaves, 2, "both checks are in the log");
    pool.close().await;

    let out = work.run(&["verify", capture.id.as_str()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_text(&out);
    let named = format!(
        "FAIL  record {} (response {})",
        video["record_id"].as_str().unwrap(),
        video["target_uri"].as_str().unwrap()
    );
    assert!(err.contains(&named), "{err}");
    assert!(
        err.contains(&format!("FAIL  WARC file {}", warc.key)),
        "{err}"
    );
    // Only that record: the others still verify.
    assert_eq!(err.matches("FAIL  record").count(), 1, "{err}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_all_finds_a_capture_deleted_from_the_index_by_hand() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    work.capture(&url);
    let (gone, _) = work.capture(&url);
    work.ok(&["log", "checkpoint"]);
    assert!(work.run(&["verify", "--all"]).status.success());

    let pool = sqlite(&work).await;
    for table in ["record", "resource"] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE capture_id = ?"
        )))
        .bind(gone.id.as_str())
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("DELETE FROM capture WHERE id = ?")
        .bind(gone.id.as_str())
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let out = work.run(&["verify", "--all"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr_text(&out);
    assert!(
        err.contains(&format!(
            "the log holds capture {} that the index lacks",
            gone.id
        )),
        "{err}"
    );
    let json = work.run(&["verify", "--all", "--json"]);
    let last: serde_json::Value = serde_json::from_str(
        String::from_utf8_lossy(&json.stdout)
            .lines()
            .last()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(last["ok"], false);

    let out = work.run(&["verify", "exports/evidence.wacz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_text(&out).contains("not supported yet"),
        "{}",
        stderr_text(&out)
    );
}
