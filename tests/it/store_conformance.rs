//! One conformance suite for every store backend: the local directory always,
//! S3 (Garage, started by scripts/test.sh) behind the `s3` feature.

use std::io::Write;

use custody::model::Sha256;
use custody::store::{warc_key, Store, StoreError};

fn spool(dir: &std::path::Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
    path
}

pub async fn conformance(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    // More than one multipart part (8 MiB), so uploads are really streamed.
    let mut bytes = Vec::with_capacity(9 << 20);
    let mut x: u64 = 0x2016_1129;
    while bytes.len() < (9 << 20) + 12_345 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        bytes.extend_from_slice(&x.to_le_bytes());
    }
    let sha = Sha256::of(&bytes);
    let path = spool(dir.path(), "capture.warc.gz", &bytes);

    // Content-addressed put, then every way of reading it back.
    let stored = store
        .put_file(&path, sha, bytes.len() as u64)
        .await
        .unwrap();
    assert_eq!(stored.key, warc_key(&sha));
    assert!(!stored.already_present);
    store
        .verify(&stored.key, sha, bytes.len() as u64)
        .await
        .unwrap();
    let mut copy = Vec::new();
    assert_eq!(
        store.copy_to(&stored.key, sha, &mut copy).await.unwrap(),
        bytes.len() as u64
    );
    assert!(copy == bytes);
    let mut range = Vec::new();
    store
        .copy_range_to(&stored.key, 1000..1500, &mut range)
        .await
        .unwrap();
    assert_eq!(range, bytes[1000..1500]);
    assert!(store.list("warc/").await.unwrap().contains(&stored.key));

    // A second write of the same object changes nothing.
    let before = store.head(&stored.key).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let again = store
        .put_file(&path, sha, bytes.len() as u64)
        .await
        .unwrap();
    assert!(again.already_present);
    assert_eq!(
        store.head(&stored.key).await.unwrap(),
        before,
        "the object was not rewritten"
    );

    // A spool that does not match its claimed digest is never published.
    let liar = spool(
        dir.path(),
        "liar.warc.gz",
        b"nearly 30 civilians were killed",
    );
    let claimed = Sha256::of(b"nearly 25 civilians were killed");
    let err = store.put_file(&liar, claimed, 31).await.unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert!(matches!(
        store.head(&warc_key(&claimed)).await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(store.list("warc/").await.unwrap().len(), 1);

    // Wrong expectations are errors, not silent copies.
    let wrong = Sha256::of(b"other");
    assert!(matches!(
        store.copy_to(&stored.key, wrong, &mut Vec::new()).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.verify(&stored.key, sha, 1).await,
        Err(StoreError::SizeMismatch { .. })
    ));
    assert!(matches!(
        store.verify(&warc_key(&wrong), wrong, 5).await,
        Err(StoreError::NotFound(_))
    ));
}

#[tokio::test]
async fn local_store_passes_the_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&format!("file://{}", dir.path().join("objects").display())).unwrap();
    conformance(store).await;
}

#[tokio::test]
async fn a_corrupted_local_object_is_never_overwritten_or_served() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let store = Store::open(&format!("file://{}", root.display())).unwrap();
    let bytes = b"WARC/1.1 pretend capture of the Bab Alnairab report".to_vec();
    let sha = Sha256::of(&bytes);
    let path = spool(dir.path(), "c.warc.gz", &bytes);
    let key = store
        .put_file(&path, sha, bytes.len() as u64)
        .await
        .unwrap()
        .key;
    // Flip one byte on disk, as bit rot would.
    let on_disk = root.join(&key);
    let mut damaged = std::fs::read(&on_disk).unwrap();
    damaged[3] ^= 0x01;
    std::fs::write(&on_disk, &damaged).unwrap();
    assert!(matches!(
        store.copy_to(&key, sha, &mut Vec::new()).await,
        Err(StoreError::Corrupt { .. })
    ));
    let err = store
        .put_file(&path, sha, bytes.len() as u64)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("run `custody audit`"), "{err}");
    assert_eq!(
        std::fs::read(&on_disk).unwrap(),
        damaged,
        "evidence is never overwritten, even to repair it"
    );
}

#[test]
fn unknown_store_urls_are_refused_with_the_fix() {
    let err = Store::open("gs://bucket/x").unwrap_err().to_string();
    assert!(err.contains("use file:// or s3://"), "{err}");
    let err = Store::open("objects").unwrap_err().to_string();
    assert!(err.contains("s3://bucket/prefix"), "{err}");
}

#[cfg(feature = "s3")]
fn s3_url() -> String {
    let bucket = std::env::var("CUSTODY_TEST_S3_BUCKET")
        .expect("CUSTODY_TEST_S3_BUCKET: run the tests with scripts/test.sh, which starts Garage");
    format!("s3://{bucket}/test-{}", uuid::Uuid::now_v7())
}

#[cfg(feature = "s3")]
#[tokio::test]
async fn s3_store_passes_the_conformance_suite() {
    conformance(Store::open(&s3_url()).unwrap()).await;
}

#[cfg(feature = "s3")]
#[tokio::test(flavor = "multi_thread")]
async fn a_capture_goes_end_to_end_through_s3() {
    use crate::cli::Workdir;
    let addr = crate::site::serve_http().await;
    let work = Workdir::new("");
    let store_url = s3_url();
    let url = format!("http://{addr}{}", crate::site::ARTICLE_PATH);
    let out = work
        .command(&["capture", &url, "--json", "--allow-private"])
        .env("CUSTODY_STORE_URL", &store_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let capture: custody::model::Capture = serde_json::from_slice(&out.stdout).unwrap();
    let warc = capture.warc.unwrap();
    let store = Store::open(&store_url).unwrap();
    assert_eq!(store.list("warc/").await.unwrap(), vec![warc.key.clone()]);
    store
        .verify(&warc.key, warc.sha256, warc.bytes)
        .await
        .unwrap();
    let got = work
        .command(&["get", &url])
        .env("CUSTODY_STORE_URL", &store_url)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8(got.stdout).unwrap(),
        crate::site::article_html()
    );
}
