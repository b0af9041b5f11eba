//! Fixity audits and verification through the CLI: a flipped byte in a
//! stored WARC is found by `audit` (which quarantines the object) and by
//! `verify`, which names the record; capture rows deleted from the index by
//! hand are found by `verify --all`, because the log still holds them.

use custody::model::CaptureStatus;

use crate::cli::{output_text, stderr_text, Workdir};
use crate::site;

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
    let pool = work.index_pool().await;
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

    let pool = work.index_pool().await;
    for table in ["record", "resource", "page_text", "page_text_done"] {
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
        stderr_text(&out).contains("exported file"),
        "{}",
        stderr_text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_the_index_deleted_reindex_restores_every_capture_and_verify_all_passes() {
    let addr = site::serve_http().await;
    let work = Workdir::new("connect_timeout_secs = 2");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let (first, _) = work.capture(&url);
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (failed, _) = work.capture(&format!("http://{refused}/gone"));
    assert_eq!(failed.status, CaptureStatus::Failed);
    work.claim_linked_to(&[&first]);
    work.ok(&["log", "checkpoint"]);
    // One capture after the last checkpoint: its leaf is not in the store.
    let (later, _) = work.capture(&url);
    let before: Vec<String> = String::from_utf8(work.ok(&["captures", "--json"]))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();

    let data = work.path().join("custody-data");
    for name in ["index.db", "index.db-wal", "index.db-shm"] {
        let _ = std::fs::remove_file(data.join(name));
    }
    let out = work.run(&["reindex", "--json"]);
    assert!(out.status.success(), "{}", stderr_text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["captures_rebuilt"], 2, "{report}");
    assert_eq!(report["failed_captures_restored"], 1, "{report}");
    assert_eq!(report["leaves_appended"], 1, "{report}");
    assert_eq!(report["checkpoints_restored"], 1, "{report}");
    assert_eq!(report["captures_searchable"], 2, "{report}");
    assert!(
        report["problems"].as_array().unwrap().is_empty(),
        "{report}"
    );
    // The rebuilt index finds the article's words again.
    let found = String::from_utf8(work.ok(&["search", "Kirby", "--json"])).unwrap();
    assert_eq!(found.lines().count(), 2, "{found}");

    let after: Vec<String> = String::from_utf8(work.ok(&["captures", "--json"]))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    let ids = |lines: &[String]| -> Vec<String> {
        lines
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    };
    assert_eq!(ids(&after), ids(&before));
    assert!(after.iter().any(|l| l.contains(later.id.as_str())));

    let out = work.run(&["verify", "--all"]);
    assert!(out.status.success(), "{}", stderr_text(&out));

    let again = work.run(&["reindex"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(
        stderr_text(&again).contains("empty index"),
        "{}",
        stderr_text(&again)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replicas_get_every_object_and_a_bad_copy_is_repaired_from_a_good_one() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let replica = work.path().join("replica");
    let config = std::fs::read_to_string(work.path().join("custody.toml")).unwrap();
    std::fs::write(
        work.path().join("custody.toml"),
        format!(
            "replica_urls = [\"file://{}\"]\n{config}",
            replica.display()
        ),
    )
    .unwrap();
    let (capture, _) = work.capture(&format!("http://{addr}{}", site::ARTICLE_PATH));
    let warc = capture.warc.unwrap();
    let primary = work.path().join("custody-data/objects").join(&warc.key);
    let copy = replica.join(&warc.key);
    let original = std::fs::read(&primary).unwrap();
    assert_eq!(
        std::fs::read(&copy).unwrap(),
        original,
        "the replica has the object"
    );
    {
        use std::os::unix::fs::MetadataExt;
        let (a, b) = (
            std::fs::metadata(&primary).unwrap(),
            std::fs::metadata(&copy).unwrap(),
        );
        assert_ne!((a.dev(), a.ino()), (b.dev(), b.ino()), "a copy, not a link");
    }

    // A flipped byte in the primary: found, and repaired from the replica.
    let mut bytes = original.clone();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x04;
    std::fs::write(&primary, &bytes).unwrap();
    let out = work.run(&["audit"]);
    let err = stderr_text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("CORRUPT  {} (primary)", warc.key)),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "REPAIRED {} (primary)  rewritten from replica 1",
            warc.key
        )),
        "{err}"
    );
    assert!(
        err.contains("1 object(s) checked, 0 failed, 1 repaired"),
        "{err}"
    );
    assert_eq!(std::fs::read(&primary).unwrap(), original);

    // A lost replica copy: found, and repaired from the primary.
    std::fs::remove_file(&copy).unwrap();
    let out = work.run(&["audit", "--json"]);
    assert!(out.status.success(), "{}", stderr_text(&out));
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let outcomes: Vec<(&str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["location"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("primary", "ok"),
            ("replica 1", "missing"),
            ("replica 1", "repaired")
        ]
    );
    assert_eq!(std::fs::read(&copy).unwrap(), original);
    assert!(work.run(&["verify", capture.id.as_str()]).status.success());
}

/// An object in the store that no capture names (what a fenced-out attempt
/// leaves) is listed by `audit` as a warning: not a failure, not removed.
#[tokio::test(flavor = "multi_thread")]
async fn audit_lists_a_stored_object_no_capture_names() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let (capture, _) = work.capture(&format!("http://{addr}{}", site::ARTICLE_PATH));
    let stray = b"a WARC uploaded by an attempt that lost its lease";
    let key = custody::store::warc_key(&custody::model::Sha256::of(stray));
    let path = work.path().join("custody-data/objects").join(&key);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, stray).unwrap();

    let out = work.run(&["audit"]);
    let err = stderr_text(&out);
    assert!(out.status.success(), "{err}");
    assert!(err.contains(&format!("UNINDEXED {key} (primary)")), "{err}");
    assert!(
        err.contains("1 object(s) checked, 0 failed, 0 repaired from a good copy, 1 not named by any capture"),
        "{err}"
    );
    assert!(!err.contains(
        &capture
            .warc
            .unwrap()
            .key
            .replace("warc/", "UNINDEXED warc/")
    ));
    let out = work.run(&["audit", "--json"]);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines
        .iter()
        .any(|l| l["outcome"] == "unindexed" && l["object_key"] == key.as_str()));
    assert!(path.exists(), "kept: the store is write-once");
}

/// Runs custody as `nobody` (root ignores permissions) in `dir`.
fn as_nobody(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--",
            env!("CARGO_BIN_EXE_custody"),
        ])
        .args(args)
        .current_dir(dir)
        .env_remove("CUSTODY_DATA_DIR")
        .env_remove("CUSTODY_INDEX_URL")
        .env_remove("CUSTODY_STORE_URL")
        .env("HOME", "/nonexistent")
        .output()
        .expect("setpriv(1)")
}

/// Every file under `dir` with its bytes' digest and mode: what "changed
/// nothing" is checked against.
fn tree_state(dir: &std::path::Path) -> Vec<(String, String, u32)> {
    use std::os::unix::fs::PermissionsExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let mode = e.metadata().unwrap().permissions().mode();
            let rel = p.strip_prefix(dir).unwrap().display().to_string();
            if p.is_dir() {
                stack.push(p);
                out.push((rel, String::new(), mode));
            } else {
                let bytes = std::fs::read(&p).unwrap();
                out.push((rel, custody::model::Sha256::of(&bytes).hex(), mode));
            }
        }
    }
    out.sort();
    out
}

/// An investigator's write-protected copy of an installation (a court
/// exhibit, a read-only mount) is verified and read as it is: the commands
/// that only read open it read-only and change nothing, and the ones that
/// record their access say the access goes unrecorded.
#[tokio::test(flavor = "multi_thread")]
async fn a_write_protected_copy_is_verified_and_read_without_changing_a_byte() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let (capture, _) = work.capture(&url);
    let claim = work.claim_linked_to(&[&capture]);
    work.ok(&["log", "checkpoint"]);
    let copy = work.copy();
    let chmod = std::process::Command::new("chmod")
        .args(["-R", "a+rX,a-w"])
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(chmod.success());
    let before = tree_state(copy.path());

    let id = capture.id.as_str();
    for args in [
        vec!["verify", "--all"],
        vec!["verify", id],
        vec!["captures"],
        vec!["show", id],
        vec!["claims"],
        vec!["claim", "show", &claim],
        vec!["log", "key"],
        vec!["log", "check"],
    ] {
        let out = as_nobody(copy.path(), &args);
        let err = stderr_text(&out);
        assert!(out.status.success(), "custody {args:?} as nobody: {err}");
        assert!(!err.contains("warning"), "custody {args:?}: {err}");
    }
    // Reading a body or a proof records an access when it can; here it
    // cannot, and says so in one line.
    for args in [vec!["get", url.as_str()], vec!["log", "proof", id]] {
        let out = as_nobody(copy.path(), &args);
        let err = stderr_text(&out);
        assert!(out.status.success(), "custody {args:?} as nobody: {err}");
        assert!(
            err.contains("not recorded as a custody event"),
            "custody {args:?}: {err}"
        );
    }
    // A command that writes fails with one line, and writes nothing.
    let out = as_nobody(copy.path(), &["claim", "add", "a claim"]);
    assert!(!out.status.success());
    assert_eq!(
        stderr_text(&out).trim().lines().count(),
        1,
        "{}",
        stderr_text(&out)
    );
    assert_eq!(tree_state(copy.path()), before, "the copy is unchanged");
    let _ = std::process::Command::new("chmod")
        .args(["-R", "u+w"])
        .arg(copy.path())
        .status();
}

/// Honest verdicts (issue 15): a file verified against the key it carries
/// says so and how to pin the published one; without an RFC 3161 token it
/// says the time rests on custody's signature alone; `show` says a TSA is
/// not configured rather than "none yet". An export never replaces a file
/// without `--force`.
#[tokio::test(flavor = "multi_thread")]
async fn verdicts_say_what_they_rest_on_and_exports_replace_nothing_by_accident() {
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    let (capture, _) = work.capture(&format!("http://{addr}{}", site::ARTICLE_PATH));
    let id = capture.id.as_str();
    let export = work.export_warc(id, "evidence.warc.gz");
    let file = export.to_str().unwrap();
    let key = String::from_utf8(work.ok(&["log", "key"])).unwrap();

    let verdict = |args: &[&str]| {
        let out = work.run(args);
        assert!(out.status.success(), "{}", stderr_text(&out));
        stderr_text(&out)
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    };
    let unpinned = verdict(&["verify", file]);
    assert!(
        unpinned.ends_with(": verified, but against the key inside the file: pin the published key with --key; no RFC 3161 timestamp: the time rests on custody's own signature alone"),
        "{unpinned}"
    );
    let pinned = verdict(&["verify", file, "--key", key.trim()]);
    assert!(
        pinned.ends_with(
            ": verified, but no RFC 3161 timestamp: the time rests on custody's own signature alone"
        ),
        "{pinned}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&work.ok(&["verify", file, "--key", key.trim(), "--json"])).unwrap();
    assert_eq!(json["caveats"].as_array().unwrap().len(), 1, "{json}");

    let wacz = work.path().join("evidence.wacz");
    let wacz = wacz.to_str().unwrap();
    work.ok(&["export", id, "--format", "wacz", "-o", wacz]);
    let package = verdict(&["verify", wacz, "--key", key.trim()]);
    assert!(
        package.contains("verified, but signed by the key inside the file: pin the published package key with --package-key"),
        "{package}"
    );

    let shown = output_text(&work.run(&["show", id]));
    assert!(
        shown.contains("rfc 3161 timestamp  not configured"),
        "{shown}"
    );

    // The export is there: without --force it stays as it is.
    std::fs::write(&export, b"the investigator's own notes").unwrap();
    let again = work.run(&["export", id, "--format", "warc", "-o", file]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr_text(&again));
    assert!(
        stderr_text(&again).contains("exists; pass --force to replace it"),
        "{}",
        stderr_text(&again)
    );
    assert_eq!(
        std::fs::read(&export).unwrap(),
        b"the investigator's own notes"
    );
    let claim_again = work.run(&["claim", "export", "no-such-claim", "-o", file]);
    assert_eq!(claim_again.status.code(), Some(2));
    work.ok(&["export", id, "--format", "warc", "-o", file, "--force"]);
    assert!(verdict(&["verify", file, "--key", key.trim()]).contains(": verified"));
}
