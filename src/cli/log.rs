//! `log key|checkpoint|proof|consistency|check`.

use std::process::ExitCode;

use super::output::print_json;
use super::{Failure, LogCommand};
use custody::archive::Archive;

pub async fn log_command(archive: &Archive, command: LogCommand) -> Result<ExitCode, Failure> {
    use custody::tlog;
    let key = tlog::LogKey::for_config(archive.config())?;
    let index = archive.index().as_ref();
    match command {
        LogCommand::Key => {
            println!("{}", key.verifier_key());
        }
        LogCommand::Checkpoint { json } => {
            let c = tlog::make_checkpoint(
                index,
                archive.store(),
                &key,
                &archive.config().timestamps.tsa_urls,
            )
            .await?;
            // Timestamps now, if a TSA answers; otherwise they stay queued.
            let ts = &archive.config().timestamps;
            if !ts.tsa_urls.is_empty() {
                let (stored, failed) =
                    tlog::tsa::process_due(index, ts, archive.scratch_dir()).await;
                eprintln!("timestamps: {stored} stored, {failed} failed (failed ones are retried by the daemon)");
            }
            if json {
                print_json(&c)?;
            } else {
                print!("{}", c.note);
            }
        }
        LogCommand::Proof {
            capture_id: id,
            json,
        } => {
            let id = id.resolve(archive).await?;
            let proof = tlog::capture_inclusion(
                index,
                archive.store(),
                &key,
                &archive.config().timestamps.tsa_urls,
                &id,
            )
            .await?;
            tlog::verify_inclusion_proof(&proof, &key.verifier_key())?;
            if json {
                print_json(&proof)?;
            } else {
                println!(
                    "capture {id}: leaf {} of {}",
                    proof.leaf_index, proof.tree_size
                );
                println!("leaf hash {}", proof.leaf_hash.hex());
                println!("root {}", proof.root.hex());
                for (i, h) in proof.proof.iter().enumerate() {
                    println!("proof[{i}] {}", h.hex());
                }
                println!("verifier key {}", proof.verifier_key);
                print!("{}", proof.checkpoint);
            }
        }
        LogCommand::Consistency {
            old_size,
            new_size,
            json,
        } => {
            let p = tlog::consistency(index, &key, old_size, new_size).await?;
            if json {
                print_json(&p)?;
            } else {
                println!("consistency {} -> {}", p.old_size, p.new_size);
                println!("old root {}", p.old_root.hex());
                println!("new root {}", p.new_root.hex());
                for (i, h) in p.proof.iter().enumerate() {
                    println!("proof[{i}] {}", h.hex());
                }
                println!("verifier key {}", p.verifier_key);
                print!("{}\n{}", p.old_checkpoint, p.new_checkpoint);
            }
        }
        LogCommand::Check { json } => {
            let checks = tlog::check_log(index, archive.store(), &key).await?;
            let bad = checks.iter().filter(|c| !c.ok).count();
            if json {
                for c in &checks {
                    print_json(c)?;
                }
            } else {
                for c in &checks {
                    match &c.problem {
                        None => eprintln!("checkpoint {} ok", c.tree_size),
                        Some(p) => eprintln!("checkpoint {} FAILED: {p}", c.tree_size),
                    }
                }
                eprintln!(
                    "{} checkpoint(s), {} failed, log size {}",
                    checks.len(),
                    bad,
                    index.log_size().await?
                );
            }
            if bad > 0 {
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
