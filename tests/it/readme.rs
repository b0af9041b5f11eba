//! The README is followed as written: its quick start runs, command by
//! command, against a site of the test's own, and every command line and
//! flag it lists is one `custody --help` knows.

use std::process::Command;

use crate::cli::{output_text, Workdir};
use crate::site;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

/// The fenced block after `marker`.
fn block_after(text: &str, marker: &str) -> String {
    let at = text
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} not in the README"));
    let rest = &text[at..];
    let start = rest.find("```sh\n").expect("a fenced block") + "```sh\n".len();
    let len = rest[start..].find("```").expect("its end");
    rest[start..start + len].to_string()
}

/// The quick start, verbatim but for its example URL (the test's own
/// site; capturing it needs private addresses allowed) and the server's
/// port (any free one).
#[tokio::test(flavor = "multi_thread")]
async fn the_quick_start_runs_as_written() {
    let addr = site::serve_http().await;
    let work = Workdir::new("allow_private_networks = true");
    let config = std::fs::read_to_string(work.path().join("custody.toml")).unwrap()
        + "\n[daemon]\nlisten = \"127.0.0.1:0\"\n";
    std::fs::write(work.path().join("custody.toml"), config).unwrap();
    let steps = block_after(&readme(), "<!-- quick start -->");
    assert!(steps.contains("https://example.org/"), "{steps}");
    // `custody` on the PATH is the binary under test (a link, so that
    // `custody serve &` is the shell's own job, killed at the end).
    let bin = work.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_custody"), bin.join("custody")).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!(
        "set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n{}",
        steps.replace(
            "https://example.org/",
            &format!("http://{addr}{}", site::ARTICLE_PATH)
        )
    );
    let out = Command::new("bash")
        .args(["-c", &script])
        .current_dir(work.path())
        .env("PATH", path)
        .env_remove("CUSTODY_DATA_DIR")
        .env_remove("CUSTODY_INDEX_URL")
        .env_remove("CUSTODY_STORE_URL")
        .output()
        .unwrap();
    let said = output_text(&out);
    assert!(out.status.success(), "the quick start failed:\n{said}");
    assert!(said.contains(" ok (HTTP 200) "), "{said}");
    assert!(said.contains("[0-"), "`text` printed positions: {said}");
    assert!(said.contains("evidence.wacz: verified"), "{said}");
    assert!(work.path().join("evidence.wacz").exists());
}

/// Every command line of "Using it" names a command `custody --help` has,
/// with flags its `--help` lists.
#[test]
fn the_readme_commands_are_the_cli_commands() {
    let text = readme();
    let usage = block_after(&text, "## Using it");
    let mut commands: Vec<String> = Vec::new();
    for line in usage.lines() {
        let code = line.split("  #").next().unwrap_or_default();
        if let Some(rest) = code.strip_prefix("custody ") {
            for (i, part) in rest.split(" | ").enumerate() {
                let first_is_word = part
                    .split_whitespace()
                    .next()
                    .is_some_and(|w| w.chars().all(|c| c.is_ascii_lowercase()));
                if i == 0 || first_is_word {
                    commands.push(part.to_string());
                } else if let Some(last) = commands.last_mut() {
                    last.push(' ');
                    last.push_str(part);
                }
            }
        } else if line.starts_with("   ") {
            if let Some(last) = commands.last_mut() {
                last.push(' ');
                last.push_str(code.trim());
            }
        }
    }
    assert!(commands.len() > 25, "{commands:?}");
    for command in &commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        let mut paths: Vec<Vec<String>> = vec![Vec::new()];
        for w in &words {
            let alternatives: Vec<&str> = w.split('|').collect();
            if !alternatives
                .iter()
                .all(|a| !a.is_empty() && a.chars().all(|c| c.is_ascii_lowercase()))
            {
                break;
            }
            paths = paths
                .iter()
                .flat_map(|p| {
                    alternatives.iter().map(move |a| {
                        let mut q = p.clone();
                        q.push(a.to_string());
                        q
                    })
                })
                .collect();
        }
        let flags: Vec<&str> = words
            .iter()
            .flat_map(|w| w.split(['[', ']', '|', '=']))
            .filter(|w| w.starts_with("--") && w.len() > 2)
            .collect();
        for path in &paths {
            let mut args: Vec<&str> = path.iter().map(String::as_str).collect();
            args.push("--help");
            let out = Command::new(env!("CARGO_BIN_EXE_custody"))
                .args(&args)
                .output()
                .unwrap();
            let help = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "custody {args:?}: {}",
                output_text(&out)
            );
            for flag in &flags {
                assert!(
                    help.contains(flag),
                    "the README gives `custody {command}`, but `custody {}` has no {flag}",
                    path.join(" ")
                );
            }
        }
    }
}
