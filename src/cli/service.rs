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
    let host = parsed.host_str().unwrap_or_default().to_string();
    let port = parsed.port_or_known_default().unwrap_or(80);
    let path = match parsed.query() {
        Some(q) => format!("{}?{q}", parsed.path()),
        None => parsed.path().to_string(),
    };
    let ask = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await?;
        let mut head = Vec::new();
        s.take(4096).read_to_end(&mut head).await?;
        Ok::<_, std::io::Error>(head)
    };
    let answer = tokio::time::timeout(std::time::Duration::from_secs(5), ask).await;
    let status = match answer {
        Err(_) => Err("no answer within 5 s".to_string()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(head)) => {
            let text = String::from_utf8_lossy(&head);
            let line = text.lines().next().unwrap_or_default().to_string();
            match line.split_whitespace().nth(1) {
                Some("200") => Ok(line),
                _ => Err(format!("answered {line:?}")),
            }
        }
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
