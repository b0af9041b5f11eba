//! The router called directly (`http::app` with `oneshot`, no socket): how
//! the API answers what the index says, by kind of error.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use tower::ServiceExt;

/// An archive in `dir` (SQLite and a local store, or the index `index_url`
/// names), served with public reading.
async fn app_over(dir: &std::path::Path, index_url: Option<String>) -> axum::Router {
    let overrides = custody::config::Overrides {
        data_dir: Some(dir.to_path_buf()),
        config_file: Some(dir.join("absent.toml")),
        ..Default::default()
    };
    let _ = std::fs::write(dir.join("absent.toml"), "");
    let env = move |name: &str| match name {
        "CUSTODY_INDEX_URL" => index_url.clone(),
        _ => None,
    };
    let config = custody::config::Config::load_with(&overrides, env).unwrap();
    let archive = Arc::new(custody::archive::Archive::open(config).await.unwrap());
    let capturer = Arc::new(custody::pipeline::Capturer::new(archive).unwrap());
    let settings = custody::http::ServeSettings {
        public_read: true,
        ..Default::default()
    };
    let (state, _writer) = custody::http::AppState::new(capturer, settings);
    custody::http::app(state)
}

async fn get(app: &axum::Router, path: &str) -> (StatusCode, serde_json::Value) {
    let resp = app
        .clone()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (status, serde_json::from_slice(&body).unwrap_or_default())
}

#[tokio::test]
async fn unknown_ids_are_404_and_a_row_that_cannot_be_read_is_500_not_503() {
    let dir = tempfile::tempdir().unwrap();
    let app = app_over(dir.path(), None).await;
    let (status, body) = get(&app, "/api/v1/captures").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let unknown = custody::model::CaptureId::new();
    for path in [
        format!("/api/v1/captures/{unknown}"),
        format!("/api/v1/captures/{unknown}/records"),
        "/api/v1/claims/0193f1e2-7c4a-7d2e-9b1a-3c5d7e9f1a2b".to_string(),
    ] {
        let (status, body) = get(&app, &path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert!(body["error"].as_str().is_some_and(|e| !e.is_empty()));
    }

    // A capture row edited by hand so that it no longer reads back.
    let failed = custody::model::Capture {
        id: custody::model::CaptureId::new(),
        seed_url: "https://aleppo-news.example/".into(),
        status: custody::model::CaptureStatus::Failed,
        error: Some("connection refused".into()),
        started_at: chrono::Utc::now(),
        finished_at: chrono::Utc::now(),
        warc: None,
        records: 0,
        resources: vec![],
        schedule: None,
        scheduled_for: None,
        change: None,
        import: None,
        media: None,
        browser: None,
    };
    let url = format!("sqlite://{}", dir.path().join("index.db").display());
    let index = custody::index::open(&url).await.unwrap();
    index.put_capture(&failed, &[], None).await.unwrap();
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::query("UPDATE capture SET started_at = 'yesterday' WHERE id = $1")
        .bind(failed.id.as_str())
        .execute(&pool)
        .await
        .unwrap();
    let (status, body) = get(&app, &format!("/api/v1/captures/{}", failed.id)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(body["error"].as_str().unwrap().contains("verify"), "{body}");
}

/// A TCP relay to PostgreSQL that can be cut: while cut, it accepts and
/// drops every connection, as a server that went away does.
#[cfg(feature = "postgres")]
struct Relay {
    addr: std::net::SocketAddr,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

#[cfg(feature = "postgres")]
impl Relay {
    async fn start(to: std::net::SocketAddr) -> Relay {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = cut.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if flag.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let flag = flag.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(to).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.split();
                    let (mut sr, mut sw) = server.split();
                    let watch = async {
                        while !flag.load(Ordering::SeqCst) {
                            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = tokio::io::copy(&mut cr, &mut sw) => {}
                        _ = tokio::io::copy(&mut sr, &mut cw) => {}
                        _ = watch => {}
                    }
                });
            }
        });
        Relay { addr, cut }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread")]
async fn the_api_answers_503_only_while_the_database_is_down() {
    let schema = crate::index_conformance::PgSchema::new().await;
    let direct = url::Url::parse(&schema.url()).unwrap();
    let server = format!(
        "{}:{}",
        direct.host_str().unwrap(),
        direct.port().unwrap_or(5432)
    );
    let target = tokio::net::lookup_host(server)
        .await
        .unwrap()
        .next()
        .unwrap();
    let relay = Relay::start(target).await;
    let mut through = direct.clone();
    through.set_host(Some("127.0.0.1")).unwrap();
    through.set_port(Some(relay.addr.port())).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let app = app_over(dir.path(), Some(through.to_string())).await;
    let (status, body) = get(&app, "/api/v1/captures").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let unknown = custody::model::CaptureId::new();
    let (status, _) = get(&app, &format!("/api/v1/captures/{unknown}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "not found is not 'down'");

    relay.cut();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let (status, body) = get(&app, "/api/v1/captures").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(
        body["error"].as_str().unwrap().contains("try again"),
        "{body}"
    );
    let resp = app
        .clone()
        .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    schema.drop().await;
}
