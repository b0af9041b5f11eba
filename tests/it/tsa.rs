//! RFC 3161 timestamps against a local TSA: `openssl ts -reply` behind an
//! HTTP endpoint, with a test CA and a TSA certificate made by `openssl`
//! (critical `timeStamping` extended key usage). Every stored token must
//! pass `openssl ts -verify` against the test CA, and a TSA that is down
//! must block nothing.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use axum::body::Bytes;
use axum::http::header;
use axum::routing::post;
use axum::Router;
use base64::Engine;

use crate::cli::{stderr_text, Workdir};
use crate::site;

fn run(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub struct TestTsa {
    pub url: String,
    pub ca_pem: PathBuf,
    _dir: Arc<tempfile::TempDir>,
}

/// A TSA on loopback: test root CA, TSA certificate, `openssl ts -reply`.
pub async fn start_tsa() -> TestTsa {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let d = dir.path();
    run(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=custody test root CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ],
    );
    run(
        d,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "tsa.key",
            "-out",
            "tsa.csr",
            "-subj",
            "/CN=custody test TSA",
        ],
    );
    std::fs::write(
        d.join("tsa.ext"),
        "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,nonRepudiation\nextendedKeyUsage=critical,timeStamping\n",
    )
    .unwrap();
    run(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "tsa.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "tsa.pem",
            "-days",
            "2",
            "-extfile",
            "tsa.ext",
        ],
    );
    std::fs::write(d.join("tsaserial"), "01\n").unwrap();
    std::fs::write(
        d.join("tsa.cnf"),
        format!(
            "[ tsa ]\ndefault_tsa = tsa_config1\n[ tsa_config1 ]\ndir = {}\nserial = $dir/tsaserial\n\
             crypto_device = builtin\nsigner_cert = $dir/tsa.pem\ncerts = $dir/ca.pem\nsigner_key = $dir/tsa.key\n\
             signer_digest = sha256\ndefault_policy = 1.2.3.4.1\nother_policies = 1.2.3.4.5.6\ndigests = sha256\n\
             accuracy = secs:1\nordering = yes\ntsa_name = no\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n",
            d.display()
        ),
    )
    .unwrap();
    let serve_dir = dir.clone();
    let app = Router::new().route(
        "/tsa",
        post(move |body: Bytes| {
            let dir = serve_dir.clone();
            async move {
                let reply = tokio::task::spawn_blocking(move || {
                    let d = dir.path();
                    let n: u64 = rand_u64();
                    let (req, resp) = (d.join(format!("q{n}.tsq")), d.join(format!("r{n}.tsr")));
                    std::fs::write(&req, &body).unwrap();
                    let out = Command::new("openssl")
                        .args(["ts", "-reply", "-config", "tsa.cnf", "-queryfile"])
                        .arg(&req)
                        .arg("-out")
                        .arg(&resp)
                        .current_dir(d)
                        .output()
                        .unwrap();
                    assert!(
                        out.status.success(),
                        "{}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                    std::fs::read(&resp).unwrap()
                })
                .await
                .unwrap();
                (
                    [(header::CONTENT_TYPE, "application/timestamp-reply")],
                    reply,
                )
            }
        }),
    );
    let addr: SocketAddr = crate::site::serve_app(app).await;
    TestTsa {
        url: format!("http://{addr}/tsa"),
        ca_pem: dir.path().join("ca.pem"),
        _dir: dir,
    }
}

/// Sets the `[timestamps]` table of the working directory's config.
fn set_timestamps(work: &Workdir, table: &str) {
    let path = work.path().join("custody.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let base = config.split("\n[timestamps]\n").next().unwrap();
    std::fs::write(&path, format!("{base}\n[timestamps]\n{table}")).unwrap();
}

/// The test TSA, trusted, for checkpoints and every capture.
fn timestamp_captures_too(work: &Workdir, tsa: &TestTsa) {
    set_timestamps(
        work,
        &format!(
            "tsa_urls = [\"{}\"]\nroots = [\"{}\"]\ncaptures = true\n",
            tsa.url,
            tsa.ca_pem.display()
        ),
    );
}

fn rand_u64() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        ^ COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_and_captures_are_timestamped_and_every_token_passes_openssl() {
    let tsa = start_tsa().await;
    let down = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    set_timestamps(
        &work,
        &format!(
            "tsa_urls = [\"{}\", \"http://{down}/tsa\"]\nroots = [\"{}\"]\ncaptures = true\n",
            tsa.url,
            tsa.ca_pem.display()
        ),
    );

    // A TSA that is down holds nothing up.
    let (capture, _) = work.capture(&format!("http://{addr}{}", site::ARTICLE_PATH));
    assert_eq!(capture.status, custody::model::CaptureStatus::Ok);
    let out = work.run(&["log", "checkpoint"]);
    assert!(out.status.success(), "{}", stderr_text(&out));
    // Checkpoint and capture, each from the working TSA; the other two wait.
    assert!(
        stderr_text(&out).contains("2 stored, 2 failed"),
        "{}",
        stderr_text(&out)
    );

    let pool = work.index_pool().await;
    let tokens: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT subject_kind, subject_id, imprint, token_der FROM timestamp_token ORDER BY id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(tokens.len(), 2);
    let waiting: Vec<(String, Option<String>)> =
        sqlx::query_as("SELECT tsa_url, last_error FROM timestamp_request")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(waiting.len(), 2);
    // The TSA's genTime is kept in RFC 3339 UTC.
    let times: Vec<(Option<String>,)> = sqlx::query_as("SELECT gen_time FROM timestamp_token")
        .fetch_all(&pool)
        .await
        .unwrap();
    for (t,) in &times {
        let t = t.as_deref().expect("a genTime for every token");
        assert!(
            chrono::DateTime::parse_from_rfc3339(t).is_ok() && t.ends_with('Z'),
            "gen_time {t:?} is not RFC 3339 UTC"
        );
    }
    assert!(waiting
        .iter()
        .all(|(url, err)| url.contains(&down.to_string())
            && err.as_deref().unwrap().contains("unreachable")));
    pool.close().await;

    // Every stored token passes `openssl ts -verify` against the test CA.
    let dir = tempfile::tempdir().unwrap();
    for (kind, subject, imprint, der) in &tokens {
        let path = dir.path().join(format!("{kind}-{subject}.tsr"));
        std::fs::write(
            &path,
            base64::engine::general_purpose::STANDARD
                .decode(der)
                .unwrap(),
        )
        .unwrap();
        let out = Command::new("openssl")
            .args(["ts", "-verify", "-digest", imprint, "-in"])
            .arg(&path)
            .arg("-CAfile")
            .arg(&tsa.ca_pem)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("Verification: OK"),
            "{kind} {subject}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    // `verify` checks them too.
    let out = work.run(&["verify", capture.id.as_str()]);
    let err = stderr_text(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("ok    timestamp from {} on checkpoint", tsa.url)),
        "{err}"
    );
    assert!(
        err.contains(&format!("ok    timestamp from {} on capture", tsa.url)),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_that_does_not_chain_to_the_configured_roots_is_refused() {
    let tsa = start_tsa().await;
    let other_ca = site::test_ca();
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    set_timestamps(
        &work,
        &format!(
            "tsa_urls = [\"{}\"]\nroots = [\"{}\"]\n",
            tsa.url,
            other_ca.ca_pem_path.display()
        ),
    );
    work.capture(&format!("http://{addr}{}", site::ARTICLE_PATH));
    let out = work.run(&["log", "checkpoint"]);
    assert!(out.status.success());
    assert!(
        stderr_text(&out).contains("0 stored, 1 failed"),
        "{}",
        stderr_text(&out)
    );
    let pool = work.index_pool().await;
    let (tokens,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM timestamp_token")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(tokens, 0);
    let (err,): (Option<String>,) = sqlx::query_as("SELECT last_error FROM timestamp_request")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(err.unwrap().contains("Verification: FAILED"));

    // Roots are required once a TSA is configured.
    set_timestamps(&work, &format!("tsa_urls = [\"{}\"]\n", tsa.url));
    let out = work.run(&["captures"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_text(&out).contains("timestamps.roots is empty"),
        "{}",
        stderr_text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_exported_capture_verifies_offline_and_any_flipped_byte_is_named() {
    let tsa = start_tsa().await;
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    timestamp_captures_too(&work, &tsa);
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    work.capture(&url);
    let (second, _) = work.capture(&url);
    work.ok(&["log", "checkpoint"]);
    let key = String::from_utf8(work.ok(&["log", "key"])).unwrap();
    let key = key.trim().to_string();
    let package = work.export_warc(second.id.as_str(), "evidence.warc.gz");

    // Offline: another directory, no index, no store.
    let elsewhere = tempfile::tempdir().unwrap();
    let verify = |file: &Path, key: &str| {
        Command::new(env!("CARGO_BIN_EXE_custody"))
            .current_dir(elsewhere.path())
            .args(["verify"])
            .arg(file)
            .args(["--key", key, "--tsa-roots"])
            .arg(&tsa.ca_pem)
            .output()
            .unwrap()
    };
    let out = verify(&package, &key);
    let err = stderr_text(&out);
    assert!(out.status.success(), "{err}");
    for expected in [
        "ok    capture WARC (the first",
        "ok    logged manifest",
        "ok    inclusion in checkpoint",
        &format!(
            "ok    originals of {} revisits",
            site::requisites().len() + 1
        ),
        &format!("ok    timestamp from {} on checkpoint", tsa.url),
        &format!("ok    timestamp from {} on capture", tsa.url),
    ] {
        assert!(err.contains(expected), "{expected}: {err}");
    }
    assert!(
        !elsewhere.path().join("custody-data").exists(),
        "nothing was opened"
    );

    // Another key: refused.
    let other = tempfile::tempdir().unwrap();
    let other_key = custody::tlog::LogKey::load_or_create(other.path()).unwrap();
    let out = verify(&package, &other_key.verifier_key());
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr_text(&out).contains("FAIL  inclusion in checkpoint"));

    // One flipped byte anywhere fails verification and names the part.
    let original = std::fs::read(&package).unwrap();
    let flipped = elsewhere.path().join("flipped.warc.gz");
    for k in 1..=12 {
        let at = original.len() * k / 13;
        let mut bytes = original.clone();
        bytes[at] ^= 0x01;
        std::fs::write(&flipped, &bytes).unwrap();
        let out = verify(&flipped, &key);
        let err = stderr_text(&out);
        assert_eq!(out.status.code(), Some(1), "byte {at}: {err}");
        assert!(
            err.lines().any(|l| l.trim_start().starts_with("FAIL  ")),
            "byte {at}: {err}"
        );
    }
}

/// Issue 16: with the system's temporary directory unusable (a read-only
/// root file system: here TMPDIR names no directory at all), timestamps,
/// claim links, `get`, verification and the replay of large media all
/// work: custody keeps its temporary files under the data directory.
#[tokio::test(flavor = "multi_thread")]
async fn nothing_needs_the_system_temporary_directory() {
    let tsa = start_tsa().await;
    let addr = site::serve_http().await;
    let work = Workdir::new("");
    timestamp_captures_too(&work, &tsa);
    let nowhere = work.path().join("no-such-tmp");
    let nowhere = nowhere.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = work.command(args).env("TMPDIR", nowhere).output().unwrap();
        assert!(
            out.status.success(),
            "custody {args:?} with TMPDIR={nowhere}: {}",
            stderr_text(&out)
        );
        out.stdout
    };
    let url = format!("http://{addr}{}", site::ARTICLE_PATH);
    let capture: serde_json::Value =
        serde_json::from_slice(&run(&["capture", &url, "--json", "--allow-private"])).unwrap();
    let id = capture["id"].as_str().unwrap();
    run(&["log", "checkpoint"]);
    let pool = work.index_pool().await;
    let (tokens,): (i64,) = sqlx::query_as("SELECT count(*) FROM timestamp_token")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    assert_eq!(tokens, 2, "the capture's and the checkpoint's");
    let verified = String::from_utf8_lossy(&{
        let out = work
            .command(&["verify", id])
            .env("TMPDIR", nowhere)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr_text(&out));
        out.stderr
    })
    .into_owned();
    assert!(verified.contains("ok    timestamp from"), "{verified}");
    let claim: serde_json::Value = serde_json::from_slice(&run(&[
        "claim",
        "add",
        "Most victims were women and children",
        "--json",
    ]))
    .unwrap();
    run(&[
        "claim",
        "link",
        claim["id"].as_str().unwrap(),
        id,
        "--quote",
        "most of the victims were women and children",
    ]);
    let video = format!("http://{addr}/wp-content/uploads/2016/11/atareb-factories.mp4");
    let got = run(&["get", &video]);
    let expected = site::requisites()
        .into_iter()
        .find(|(p, _, _)| p.ends_with("atareb-factories.mp4"))
        .unwrap()
        .2;
    assert_eq!(got, expected);
    let server = crate::web::serve_with_env(&work, &["--public-read"], &[("TMPDIR", nowhere)]);
    let r = crate::web::get(server.addr, &format!("/replay/2030id_/{video}"), None);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, expected, "the video replays whole");
}
