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
            custody::daemon::DaemonError::Listen { .. } => Failure::Usage(e.into()),
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
