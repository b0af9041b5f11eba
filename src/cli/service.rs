//! `daemon`, `serve` and `token create|list|revoke`.

use std::process::ExitCode;

use super::output::print_json;
use super::{open_capturer, Failure, TokenCommand};
use anyhow::Context;
use custody::archive::Archive;
use custody::config::Config;

/// Runs the scheduled daemon (and its HTTP surface) until SIGTERM.
pub async fn daemon(config: Config) -> Result<ExitCode, Failure> {
    if !config.daemon.schedules_dir.is_dir() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "schedules directory {} does not exist; create it or pass --schedules DIR",
            config.daemon.schedules_dir.display()
        )));
    }
    let settings = config.daemon.clone();
    let capturer = open_capturer(config).await?;
    custody::daemon::run(capturer, settings)
        .await
        .map_err(|e| match e {
            custody::daemon::DaemonError::Listen { .. } | custody::daemon::DaemonError::Keys(_) => {
                Failure::Usage(e.into())
            }
            e => Failure::Failed(e.into()),
        })?;
    Ok(ExitCode::SUCCESS)
}

/// Serves the HTTP surface alone until SIGTERM.
pub async fn serve(config: Config) -> Result<ExitCode, Failure> {
    let mut settings = custody::http::ServeSettings::of(&config.daemon);
    settings.schedules_dir = settings.schedules_dir.filter(|d| d.is_dir());
    let (listen, replay) = (config.daemon.listen, config.daemon.replay.clone());
    let public = settings.public_read;
    let archive = std::sync::Arc::new(super::open(config).await?);
    let capturer = custody::pipeline::Capturer::new(archive).map_err(super::open_failure)?;
    let server = custody::http::Server::bind(
        std::sync::Arc::new(capturer),
        listen,
        replay.as_ref(),
        settings,
    )
    .await
    .map_err(|e| Failure::Usage(e.into()))?;
    if let Some(addr) = server.replay_addr() {
        eprintln!("custody: replay served apart at http://{addr}/");
    }
    eprintln!(
        "custody: serving http://{}/ (reading {})",
        server.local_addr(),
        if public {
            "open to all"
        } else {
            "needs a token"
        }
    );
    server.run_until_signal().await?;
    Ok(ExitCode::SUCCESS)
}

pub async fn token_command(archive: &Archive, command: TokenCommand) -> Result<ExitCode, Failure> {
    let index = archive.index();
    match command {
        TokenCommand::Create { role, label, json } => {
            let t = custody::access::create(index.as_ref(), role, label).await?;
            if json {
                let mut v = serde_json::to_value(&t.record).context("serialising the token")?;
                v["token"] = serde_json::json!(t.token);
                println!("{v}");
            } else {
                eprintln!(
                    "token {} ({}): shown once; keep it secret. Send it as `Authorization: Bearer TOKEN`.",
                    t.record.id,
                    t.record.role.as_str()
                );
                println!("{}", t.token);
            }
        }
        TokenCommand::List { json } => {
            for t in index.tokens().await? {
                if json {
                    print_json(&t)?;
                } else {
                    println!(
                        "{}  {:<9}  created {}{}  {}",
                        t.id,
                        t.role.as_str(),
                        custody::model::rfc3339_utc(&t.created_at),
                        t.revoked_at
                            .map(|r| format!("  REVOKED {}", custody::model::rfc3339_utc(&r)))
                            .unwrap_or_default(),
                        t.label.unwrap_or_default()
                    );
                }
            }
        }
        TokenCommand::Revoke { id } => {
            if !index.revoke_token(&id, chrono::Utc::now()).await? {
                return Err(Failure::Failed(anyhow::anyhow!(
                    "no active token {id}; list them with `custody token list`"
                )));
            }
            eprintln!("token {id} revoked");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `health [URL]`: asks a running daemon's `/healthz` (a container's
/// health probe: the image has no curl, and its /bin/sh cannot open TCP).
/// Exit 0 when it answers 200 within five seconds, 1 otherwise.
pub async fn health(url: &str) -> Result<ExitCode, Failure> {
    let parsed = url::Url::parse(url)
        .ok()
        .filter(|u| u.scheme() == "http" && u.host_str().is_some())
        .ok_or_else(|| {
            Failure::Usage(anyhow::anyhow!(
                "{url:?} is not an http:// URL; use e.g. http://127.0.0.1:8080/healthz"
            ))
        })?;
    // reqwest's TLS runs on the process-wide rustls provider; custody
    // uses ring (installing it twice is harmless).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .context("no HTTP client")?;
    let status = match client.get(parsed).send().await {
        Err(e) if e.is_timeout() => Err("no answer within 5 s".to_string()),
        Err(e) => {
            // reqwest's message names the URL; the reason is in its sources.
            let mut why = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                why.push_str(&format!(": {s}"));
                source = s.source();
            }
            Err(why)
        }
        Ok(r) if r.status() == reqwest::StatusCode::OK => Ok(()),
        Ok(r) => Err(format!("answered {}", r.status())),
    };
    match status {
        Ok(_) => {
            println!("ok: {url}");
            Ok(ExitCode::SUCCESS)
        }
        Err(why) => {
            eprintln!("unhealthy: {url}: {why}");
            Ok(ExitCode::from(1))
        }
    }
}
