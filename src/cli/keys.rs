//! `keys generate|show`: the signing keys, made once and shared by every
//! daemon of one archive.

use std::process::ExitCode;

use anyhow::anyhow;
use serde_json::json;

use super::output::print_json;
use super::{Failure, KeysCommand};
use custody::config::Config;
use custody::tlog::{LogKey, KEY_FILE};
use custody::wacz::sign::{PackageKey, KEY_FILE as PACKAGE_KEY_FILE};

pub fn keys_command(config: &Config, command: KeysCommand) -> Result<ExitCode, Failure> {
    match command {
        KeysCommand::Generate { dir, json } => {
            let dir = dir.unwrap_or_else(|| config.keys_dir.clone());
            let log_there = LogKey::load_existing(&dir).map_err(|e| Failure::Failed(e.into()))?;
            let package_there =
                PackageKey::load_existing(&dir).map_err(|e| Failure::Failed(e.into()))?;
            for (file, there) in [
                (KEY_FILE, log_there.is_some()),
                (PACKAGE_KEY_FILE, package_there.is_some()),
            ] {
                if there {
                    return Err(Failure::Usage(anyhow!(
                        "{} exists already; keys are made once (`custody keys show --dir {}` prints them)",
                        dir.join(file).display(),
                        dir.display()
                    )));
                }
            }
            let log = LogKey::load_or_create(&dir).map_err(|e| Failure::Failed(e.into()))?;
            let package =
                PackageKey::load_or_create(&dir).map_err(|e| Failure::Failed(e.into()))?;
            eprintln!(
                "made {} and {} in {} (mode 0600): back them up, and give every daemon this directory (keys_dir or CUSTODY_KEYS_DIR)",
                KEY_FILE,
                PACKAGE_KEY_FILE,
                dir.display()
            );
            print_keys(&log, &package, json)
        }
        KeysCommand::Show { dir, json } => {
            let dir = dir.unwrap_or_else(|| config.keys_dir.clone());
            let log = LogKey::load_existing(&dir)
                .map_err(|e| Failure::Failed(e.into()))?
                .ok_or_else(|| {
                    Failure::Failed(anyhow!(
                        "no {KEY_FILE} in {}: make the keys with `custody keys generate --dir {}`",
                        dir.display(),
                        dir.display()
                    ))
                })?;
            let package = PackageKey::load_existing(&dir)
                .map_err(|e| Failure::Failed(e.into()))?
                .ok_or_else(|| {
                    Failure::Failed(anyhow!(
                        "no {PACKAGE_KEY_FILE} in {}: make the keys with `custody keys generate --dir` in a new directory",
                        dir.display()
                    ))
                })?;
            print_keys(&log, &package, json)
        }
    }
}

fn print_keys(log: &LogKey, package: &PackageKey, json: bool) -> Result<ExitCode, Failure> {
    if json {
        print_json(&json!({
            "log_origin": log.name(),
            "log_key": log.verifier_key(),
            "package_key": package.public_key(),
        }))?;
    } else {
        println!("log origin   {}", log.name());
        println!("log key      {}", log.verifier_key());
        println!("package key  {}", package.public_key());
    }
    Ok(ExitCode::SUCCESS)
}
