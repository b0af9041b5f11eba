//! The `custody` command line: parses flags, loads configuration, calls the
//! library, and turns results into output and exit codes. JSON goes to
//! stdout (one object per line for lists); human output, warnings and the
//! progress bar go to stderr. Exit codes: 0 full success, 1 the operation
//! failed (a failed capture, nothing found, a check that did not pass),
//! 2 bad usage or configuration.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

use custody::capture::check_seed;
use custody::config::{Config, Overrides};
use custody::model::{Capture, CaptureId, CaptureStatus};
use custody::pipeline::{normalize_url, parse_at, Pipeline, PipelineError, Progress};

#[derive(Parser)]
#[command(
    name = "custody",
    version,
    about = "Preserve web evidence: capture pages into WARC/1.1, store them content-addressed, retrieve them verifiably."
)]
struct Cli {
    /// Configuration file (default: ./custody.toml when present).
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory for the default index, store and spool [env: CUSTODY_DATA_DIR] [default: ./custody-data].
    #[arg(long, global = true, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Capture pages with their requisites into a WARC, store it and index it.
    Capture {
        #[arg(required = true, value_name = "URL")]
        urls: Vec<String>,
        /// Print one JSON object per capture on stdout.
        #[arg(long)]
        json: bool,
        /// Allow loopback, private and link-local destinations.
        #[arg(long)]
        allow_private: bool,
        /// Write full response records even for payloads already stored
        /// for the same URL (no revisit records).
        #[arg(long)]
        no_dedup: bool,
    },
    /// What changed between two captures: the page's text, paragraph by
    /// paragraph, and the resources.
    Diff {
        /// The earlier capture.
        capture_a: String,
        /// The later capture.
        capture_b: String,
        #[arg(long)]
        json: bool,
    },
    /// List captures, oldest first.
    Captures {
        /// Only captures of this seed URL.
        #[arg(long)]
        url: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one capture with its records.
    Show {
        capture_id: String,
        #[arg(long)]
        json: bool,
    },
    /// Write a capture's evidence to a file, checked against its digest.
    Export {
        capture_id: String,
        #[arg(long, value_enum)]
        format: ExportFormat,
        #[arg(short, long, value_name = "PATH")]
        output: PathBuf,
    },
    /// Serve the HTTP API, replay, Memento, CDX and the web UI until
    /// SIGTERM (no captures are scheduled; `daemon` serves the same).
    Serve {
        /// Address to listen on [default: daemon.listen, 127.0.0.1:8080].
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Let anyone read (API reads, replay, Memento, CDX, UI) without a
        /// token; changes still need one.
        #[arg(long)]
        public_read: bool,
        /// Schedules directory the API lists and writes [default: daemon.schedules_dir].
        #[arg(long, value_name = "DIR")]
        schedules: Option<PathBuf>,
    },
    /// API tokens for the HTTP surface.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Run scheduled captures until SIGTERM; serve the HTTP surface
    /// (API, replay, UI, /healthz, /metrics).
    Daemon {
        /// Schedules directory [default: daemon.schedules_dir, ./schedules].
        #[arg(long, value_name = "DIR")]
        schedules: Option<PathBuf>,
        /// Address for the HTTP surface [default: daemon.listen, 127.0.0.1:8080].
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// Allow loopback, private and link-local destinations.
        #[arg(long)]
        allow_private: bool,
        /// Let anyone read over HTTP without a token.
        #[arg(long)]
        public_read: bool,
        /// Log lines as text or as JSON objects (for log shippers).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Check and inspect schedule files.
    Schedule {
        #[command(subcommand)]
        command: ScheduleCommand,
    },
    /// Re-read every stored WARC and compare its SHA-256 with the index;
    /// a mismatch or a missing object is quarantined. Exits 1 on any.
    Audit {
        #[arg(long)]
        json: bool,
    },
    /// Recompute every digest of a capture (or of all, with --all) and
    /// check its place in the transparency log. Exits 1 naming what fails.
    Verify {
        /// A capture id, or an exported file (`custody export`) to check
        /// offline with nothing but the file.
        #[arg(
            required_unless_present = "all",
            conflicts_with = "all",
            value_name = "CAPTURE_ID|PACKAGE"
        )]
        capture_id: Option<String>,
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
        /// For a package: the log's published public key (`custody log
        /// key`) to check its checkpoint against.
        #[arg(long, value_name = "VERIFIER_KEY")]
        key: Option<String>,
        /// For a package: PEM file(s) of the TSA roots to check its
        /// timestamps against.
        #[arg(long, value_name = "PEM")]
        tsa_roots: Vec<PathBuf>,
        /// For a WACZ: the signing key it must be signed with (base64, as
        /// `custody export --format wacz` prints it).
        #[arg(long, value_name = "PUBLIC_KEY")]
        package_key: Option<String>,
    },
    /// Rebuild an empty index from the object store alone (the log's
    /// leaves and checkpoints, then every WARC) and check it against the
    /// log. Exits 1 if anything disagrees.
    Reindex {
        #[arg(long)]
        json: bool,
    },
    /// The transparency log: key, checkpoints, proofs.
    Log {
        #[command(subcommand)]
        command: LogCommand,
    },
    /// Record and link claims.
    Claim {
        #[command(subcommand)]
        command: Box<ClaimCommand>,
    },
    /// List claims (latest versions), oldest first.
    Claims {
        /// Only claims whose text contains every word of this.
        #[arg(long)]
        search: Option<String>,
        /// Only claims with evidence at this URL.
        #[arg(long)]
        url: Option<String>,
        /// Only claims with evidence in this capture.
        #[arg(long)]
        capture: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Print the archived body of URL nearest in time (redirects followed).
    Get {
        url: String,
        /// YYYYMMDDhhmmss (or a prefix): the capture nearest this instant; default the latest.
        #[arg(long, value_name = "TIMESTAMP")]
        at: Option<String>,
        /// Write the body to PATH instead of stdout.
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

#[derive(clap::Args, Default)]
struct ClaimArgs {
    /// The day of the event (sets --event-start), YYYY-MM-DD.
    #[arg(long, value_name = "DATE")]
    event_date: Option<String>,
    #[arg(long, value_name = "DATE")]
    event_start: Option<String>,
    #[arg(long, value_name = "DATE")]
    event_end: Option<String>,
    /// Place name, e.g. "Bab Alnairab, Aleppo".
    #[arg(long)]
    place: Option<String>,
    #[arg(long, allow_negative_numbers = true)]
    lat: Option<f64>,
    #[arg(long, allow_negative_numbers = true)]
    lon: Option<f64>,
    /// A tag (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    tags: Vec<String>,
    /// Language of the claim text (BCP 47, e.g. en, ar).
    #[arg(long)]
    language: Option<String>,
    /// Who makes the claim [default: $USER].
    #[arg(long)]
    author: Option<String>,
}

#[derive(Subcommand)]
enum ClaimCommand {
    /// Record a new claim.
    Add {
        text: String,
        #[command(flatten)]
        fields: ClaimArgs,
        #[arg(long)]
        json: bool,
    },
    /// Record a new version of a claim (the old one is kept).
    Edit {
        claim_id: String,
        /// The new text; unchanged when absent.
        #[arg(long)]
        text: Option<String>,
        #[command(flatten)]
        fields: ClaimArgs,
        #[arg(long)]
        json: bool,
    },
    /// Link a claim to the exact passage (or media fragment) in a capture.
    Link {
        claim_id: String,
        capture_id: String,
        /// The passage, as it reads on the page.
        #[arg(long)]
        quote: Option<String>,
        /// Text just before the passage, to choose among repeats.
        #[arg(long)]
        prefix: Option<String>,
        /// Text just after the passage.
        #[arg(long)]
        suffix: Option<String>,
        /// Code-point range in the readable text, instead of --quote.
        #[arg(long, requires = "end")]
        start: Option<u64>,
        #[arg(long, requires = "start")]
        end: Option<u64>,
        /// A media fragment: t=START,END (audio, video) or xywh=X,Y,W,H (images).
        #[arg(long)]
        fragment: Option<String>,
        /// The document in the capture, when not its page (a URL it fetched).
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value = "supports", value_parser = ["supports", "refutes", "context", "first_appearance"])]
        relation: String,
        /// Why this passage bears on the claim.
        #[arg(long)]
        rationale: Option<String>,
        /// Who made the link [default: $USER].
        #[arg(long)]
        author: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Write a signed WACZ package of all of a claim's evidence.
    Export {
        claim_id: String,
        #[arg(short, long, value_name = "PATH")]
        output: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// A claim with its evidence, re-verified against the store.
    Show {
        claim_id: String,
        #[arg(long, conflicts_with = "jsonld")]
        json: bool,
        /// JSON-LD: Web Annotation, PROV-O and schema.org Claim.
        #[arg(long)]
        jsonld: bool,
    },
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token. It is printed once, as the last line of stdout; only
    /// its digest is kept.
    Create {
        #[arg(long, value_parser = ["reader", "archivist", "admin"])]
        role: String,
        /// What the token is for (shown in `token list`).
        #[arg(long)]
        label: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// List tokens (ids, roles, labels; never secrets).
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by its id.
    Revoke { id: String },
}

#[derive(Subcommand)]
enum LogCommand {
    /// Print the log's public key (note verifier-key form), for checking
    /// checkpoints and proofs offline.
    Key,
    /// Sign and record a checkpoint of the log as it stands; print it.
    Checkpoint {
        #[arg(long)]
        json: bool,
    },
    /// A capture's inclusion proof in a signed checkpoint.
    Proof {
        capture_id: String,
        #[arg(long)]
        json: bool,
    },
    /// The consistency proof between two checkpoints (by tree size),
    /// checked against both signed notes before it is printed.
    Consistency {
        old_size: u64,
        new_size: u64,
        #[arg(long)]
        json: bool,
    },
    /// Check every checkpoint: signature, root against the stored leaves,
    /// consistency with the previous one. Exits 1 on any problem.
    Check {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum ScheduleCommand {
    /// Check every schedule file; print `file:line: message` per problem.
    Validate {
        /// Schedules directory [default: daemon.schedules_dir, ./schedules].
        dir: Option<PathBuf>,
    },
    /// List schedules with their next run, in their zone and in UTC.
    List {
        dir: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// The next fire times of every schedule.
    Next {
        dir: Option<PathBuf>,
        /// How many fire times per schedule.
        #[arg(long, default_value_t = 5)]
        count: usize,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum ExportFormat {
    Warc,
    Wacz,
}

/// An error that maps to an exit code.
enum Failure {
    /// Bad usage or configuration: exit 2.
    Usage(anyhow::Error),
    /// The operation failed: exit 1.
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Failed(e.into())
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The daemon logs a line per run; other commands only warnings.
    let (default_level, json_logs) = match &cli.command {
        Command::Daemon { log_format, .. } => ("info", *log_format == LogFormat::Json),
        _ => ("warn", false),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUSTODY_LOG")
        .unwrap_or_else(|_| default_level.into());
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter);
    if json_logs {
        logs.json().init();
    } else {
        logs.init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(Failure::Usage(e)) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(2)
        }
        Err(Failure::Failed(e)) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes on one line, without repeats.
fn one_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        let s = cause.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
    }
    parts.join(": ").replace('\n', " ")
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let allow_private = matches!(
        cli.command,
        Command::Capture {
            allow_private: true,
            ..
        } | Command::Daemon {
            allow_private: true,
            ..
        }
    );
    let overrides = Overrides {
        config_file: cli.config.clone(),
        data_dir: cli.data_dir.clone(),
        allow_private,
    };
    let mut config = Config::load(&overrides).map_err(|e| Failure::Usage(e.into()))?;
    if let Command::Capture { no_dedup: true, .. } = &cli.command {
        config.capture.dedup = false;
    }

    if let Command::Schedule { command } = &cli.command {
        return schedule_command(command, &config);
    }
    if let Command::Serve {
        listen,
        public_read,
        schedules,
    } = &cli.command
    {
        if let Some(addr) = listen {
            config.daemon.listen = *addr;
        }
        if let Some(dir) = schedules {
            config.daemon.schedules_dir = dir.clone();
        }
        config.daemon.public_read |= *public_read;
    }
    if let Command::Daemon {
        schedules,
        listen,
        public_read,
        ..
    } = &cli.command
    {
        config.daemon.public_read |= *public_read;
        if let Some(dir) = schedules {
            config.daemon.schedules_dir = dir.clone();
        }
        if let Some(addr) = listen {
            config.daemon.listen = *addr;
        }
        if !config.daemon.schedules_dir.is_dir() {
            return Err(Failure::Usage(anyhow::anyhow!(
                "schedules directory {} does not exist; create it or pass --schedules DIR",
                config.daemon.schedules_dir.display()
            )));
        }
    }

    // Check seeds before opening anything, so bad input fetches nothing.
    if let Command::Capture { urls, .. } = &cli.command {
        for u in urls {
            check_seed(u, config.capture.allow_private).map_err(|e| Failure::Usage(e.into()))?;
        }
    }
    // Capture ids are checked before anything is opened too.
    if let Command::Show { capture_id, .. } | Command::Export { capture_id, .. } = &cli.command {
        capture_id
            .parse::<CaptureId>()
            .map_err(|e| Failure::Usage(e.into()))?;
    }
    if let Command::Diff {
        capture_a,
        capture_b,
        ..
    } = &cli.command
    {
        for id in [capture_a, capture_b] {
            id.parse::<CaptureId>()
                .map_err(|e| Failure::Usage(e.into()))?;
        }
    }
    let at = match &cli.command {
        Command::Get { at: Some(at), .. } => {
            Some(parse_at(at).map_err(|e| Failure::Usage(e.into()))?)
        }
        _ => None,
    };

    // A package is verified offline, from the file alone.
    if let Command::Verify {
        capture_id: Some(arg),
        json,
        key,
        tsa_roots,
        package_key,
        ..
    } = &cli.command
    {
        let path = std::path::Path::new(arg);
        if path.is_file() {
            let v = if custody::wacz::looks_like_wacz(path) {
                custody::wacz::verify(path, package_key.as_deref(), key.as_deref(), tsa_roots)
            } else {
                custody::integrity::verify_package(path, key.as_deref(), tsa_roots)
            }
            .map_err(|e| Failure::Failed(anyhow::anyhow!(e)))?;
            if *json {
                print_json(&v)?;
            } else {
                print_checks(&v.checks, &v.package);
            }
            return Ok(if v.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            });
        }
    }
    let pipeline = Pipeline::open(config).await.map_err(open_failure)?;
    match cli.command {
        Command::Schedule { .. } => unreachable!("handled before opening the pipeline"),
        Command::Claim { command } => claim_command(&pipeline, *command).await,
        Command::Claims {
            search,
            url,
            capture,
            json,
        } => {
            use custody::index::LinkFilter;
            let mut claims = pipeline.index().claims(search.as_deref()).await?;
            if url.is_some() || capture.is_some() {
                let filter = LinkFilter {
                    claim_id: None,
                    capture_id: capture
                        .map(|c| c.parse::<CaptureId>())
                        .transpose()
                        .map_err(|e| Failure::Usage(e.into()))?,
                    target_uri: url
                        .map(|u| normalize_url(&u))
                        .transpose()
                        .map_err(|e| Failure::Usage(e.into()))?,
                };
                let linked: std::collections::HashSet<String> = pipeline
                    .index()
                    .links(&filter)
                    .await?
                    .into_iter()
                    .map(|l| l.claim_id)
                    .collect();
                claims.retain(|c| linked.contains(&c.id));
            }
            for c in &claims {
                if json {
                    print_json(c)?;
                } else {
                    eprintln!("{} v{}  {}", c.id, c.version, c.text);
                }
            }
            if !json && claims.is_empty() {
                eprintln!("no claims found; add one with `custody claim add TEXT`");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Daemon { .. } => {
            let settings = pipeline.config().daemon.clone();
            custody::daemon::run(std::sync::Arc::new(pipeline), settings)
                .await
                .map_err(|e| match e {
                    custody::daemon::DaemonError::Listen { .. } => Failure::Usage(e.into()),
                    e => Failure::Failed(e.into()),
                })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve { .. } => {
            let settings = custody::http::ServeSettings {
                public_read: pipeline.config().daemon.public_read,
                replay_cache: pipeline.config().daemon.replay_cache,
                schedules_dir: Some(pipeline.config().daemon.schedules_dir.clone())
                    .filter(|d| d.is_dir()),
            };
            let listen = pipeline.config().daemon.listen;
            custody::http::serve(std::sync::Arc::new(pipeline), listen, settings)
                .await
                .map_err(|e| Failure::Usage(anyhow::anyhow!(e)))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Token { command } => token_command(&pipeline, command).await,
        Command::Capture { urls, json, .. } => capture(&pipeline, &urls, json).await,
        Command::Log { command } => log_command(&pipeline, command).await,
        Command::Reindex { json } => {
            let key = custody::tlog::LogKey::load_existing(&pipeline.config().data_dir)?;
            if key.is_none() {
                eprintln!(
                    "warning: no log key in {}: checkpoints cannot be checked (restore {} from your backup first)",
                    pipeline.config().data_dir.display(),
                    custody::tlog::KEY_FILE
                );
            }
            let r = custody::integrity::reindex(&pipeline, key.as_ref())
                .await
                .map_err(|e| match e {
                    PipelineError::Invalid(_) => Failure::Usage(e.into()),
                    e => Failure::Failed(e.into()),
                })?;
            if json {
                print_json(&r)?;
            } else {
                eprintln!(
                    "restored {} log leaves and {} checkpoints; rebuilt {} captures from their WARCs and {} failed captures from the log; {} captures newer than the last checkpoint appended to the log",
                    r.leaves_restored,
                    r.checkpoints_restored,
                    r.captures_rebuilt,
                    r.failed_captures_restored,
                    r.leaves_appended
                );
                for p in &r.problems {
                    eprintln!("  problem: {p}");
                }
            }
            Ok(if r.problems.is_empty() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Audit { json } => {
            let checks = custody::integrity::audit(&pipeline).await?;
            let bad = checks.iter().filter(|c| !c.healthy).count();
            let repaired = checks
                .iter()
                .filter(|c| c.events.iter().any(|e| e.outcome == "repaired"))
                .count();
            for e in checks.iter().flat_map(|c| &c.events) {
                if json {
                    print_json(e)?;
                } else if e.outcome == "ok" {
                    eprintln!("ok       {} ({})", e.object_key, e.location);
                } else {
                    eprintln!(
                        "{:<8} {} ({})  {}",
                        e.outcome.to_uppercase(),
                        e.object_key,
                        e.location,
                        e.detail.as_deref().unwrap_or("")
                    );
                }
            }
            if !json {
                eprintln!(
                    "{} object(s) checked, {} failed, {} repaired from a good copy",
                    checks.len(),
                    bad,
                    repaired
                );
            }
            Ok(if bad == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Verify {
            capture_id,
            all,
            json,
            ..
        } => {
            let key = custody::tlog::LogKey::load_or_create(&pipeline.config().data_dir)?;
            let print_capture =
                |v: &custody::integrity::CaptureVerification| -> Result<(), Failure> {
                    if json {
                        return print_json(v);
                    }
                    print_checks(&v.checks, &format!("capture {}", v.capture_id));
                    Ok(())
                };
            let ok = if all {
                let v = custody::integrity::verify_all(&pipeline, &key).await?;
                for c in &v.captures {
                    print_capture(c)?;
                }
                if json {
                    print_json(&serde_json::json!({"log": v.log, "ok": v.ok}))?;
                } else {
                    for c in &v.log {
                        print_check(c);
                    }
                    eprintln!(
                        "{} capture(s), {} failed; log {}",
                        v.captures.len(),
                        v.captures.iter().filter(|c| !c.ok).count(),
                        if v.log.iter().all(|c| c.ok) {
                            "ok"
                        } else {
                            "FAILED"
                        }
                    );
                }
                v.ok
            } else {
                let arg = capture_id.unwrap_or_default();
                let id: CaptureId =
                    arg.parse()
                        .map_err(|e: custody::model::ParseCaptureIdError| {
                            Failure::Usage(anyhow::anyhow!(
                                "{e}; or give the path of an exported file to verify it offline"
                            ))
                        })?;
                let v = custody::integrity::verify_capture(&pipeline, &key, &id).await?;
                print_capture(&v)?;
                v.ok
            };
            Ok(if ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            })
        }
        Command::Diff {
            capture_a,
            capture_b,
            json,
        } => {
            let parse = |s: &str| s.parse::<CaptureId>().map_err(|e| Failure::Usage(e.into()));
            let (a, b) = (parse(&capture_a)?, parse(&capture_b)?);
            let d = custody::diff::diff(&pipeline, &a, &b).await?;
            if json {
                print_json(&d)?;
            } else {
                print_diff(&d).context("writing to stdout")?;
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Captures { url, json } => {
            let url = url
                .map(|u| normalize_url(&u))
                .transpose()
                .map_err(|e| Failure::Usage(e.into()))?;
            let captures = pipeline.index().captures(url.as_deref()).await?;
            for c in &captures {
                if json {
                    print_json(c)?;
                } else {
                    eprintln!("{}", summary_line(c));
                }
            }
            if !json && captures.is_empty() {
                eprintln!("no captures yet; make one with `custody capture URL`");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { capture_id, json } => {
            let id: CaptureId = capture_id
                .parse()
                .map_err(|e: custody::model::ParseCaptureIdError| Failure::Usage(e.into()))?;
            let capture = pipeline.index().capture(&id).await?.ok_or_else(|| {
                anyhow::anyhow!("no capture {id}; list them with `custody captures`")
            })?;
            let records = pipeline.index().records(&id).await?;
            let events = pipeline.index().events("capture", id.as_str()).await?;
            let filter = custody::index::LinkFilter {
                capture_id: Some(id.clone()),
                ..Default::default()
            };
            let links = pipeline.index().links(&filter).await?;
            if !json {
                for l in &links {
                    eprintln!(
                        "  claim {} {} ({})",
                        l.claim_id,
                        l.relation.as_str(),
                        l.target_uri
                    );
                }
                for e in &events {
                    eprintln!(
                        "  event {} {} {} by {}",
                        custody::model::rfc3339_utc(&e.at),
                        e.event,
                        e.outcome,
                        e.actor.as_deref().unwrap_or("-")
                    );
                }
            }
            if json {
                let mut value = serde_json::to_value(&capture).context("serialising capture")?;
                value["records_detail"] =
                    serde_json::to_value(&records).context("serialising records")?;
                value["events"] = serde_json::to_value(&events).context("serialising events")?;
                value["claims"] = serde_json::to_value(&links).context("serialising links")?;
                print_json(&value)?;
            } else {
                eprintln!("{}", summary_line(&capture));
                if let Some(w) = &capture.warc {
                    eprintln!("  warc  {} ({} bytes, sha256 {})", w.key, w.bytes, w.sha256);
                }
                if let Some(c) = &capture.change {
                    let how = if c.changed { "changed" } else { "unchanged" };
                    eprintln!("  page  {how} since capture {}", c.previous_capture);
                }
                for r in &capture.resources {
                    let status = r
                        .status
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "---".into());
                    let note = r
                        .error
                        .as_deref()
                        .map(|e| format!("  [{e}]"))
                        .unwrap_or_default();
                    eprintln!("  {status} {:>10}  {}{note}", r.bytes, r.url);
                }
                for r in &records {
                    eprintln!(
                        "  record {:<9} @{:<10} {:>8}  {}",
                        r.warc_type,
                        r.offset,
                        r.length,
                        r.target_uri.as_deref().unwrap_or("")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Export {
            capture_id,
            output,
            format: ExportFormat::Wacz,
        } => {
            let id: CaptureId = capture_id
                .parse()
                .map_err(|e: custody::model::ParseCaptureIdError| Failure::Usage(e.into()))?;
            export_wacz(&pipeline, custody::wacz::Scope::Capture(id), &output, false).await
        }
        Command::Export {
            capture_id, output, ..
        } => {
            let id: CaptureId = capture_id
                .parse()
                .map_err(|e: custody::model::ParseCaptureIdError| Failure::Usage(e.into()))?;
            let exported = pipeline.export_warc(&id, &output).await?;
            let originals = match exported.originals.len() {
                0 => String::new(),
                n => format!(
                    "; the stored WARC (sha256 {}) plus the {n} original record(s) its revisits refer to",
                    exported.stored.sha256
                ),
            };
            eprintln!(
                "wrote {} ({} bytes, sha256 {}{originals})",
                output.display(),
                exported.bytes,
                exported.sha256
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Get { url, output, .. } => {
            let retrieved = match &output {
                Some(path) => {
                    let dir = path
                        .parent()
                        .filter(|d| !d.as_os_str().is_empty())
                        .unwrap_or(std::path::Path::new("."));
                    let mut tmp = tempfile::Builder::new()
                        .prefix(".custody-get-")
                        .tempfile_in(dir)
                        .with_context(|| format!("cannot write in {}", dir.display()))?;
                    let r = pipeline.get(&url, at, tmp.as_file_mut()).await?;
                    tmp.persist(path)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    r
                }
                None => {
                    let mut stdout = std::io::stdout().lock();
                    let r = pipeline.get(&url, at, &mut stdout).await?;
                    stdout.flush().context("writing to stdout")?;
                    r
                }
            };
            eprintln!(
                "{} as captured {} (capture {}, HTTP {}, {} bytes, WARC sha256 {})",
                retrieved.url,
                custody::model::rfc3339_utc(&retrieved.date),
                retrieved.capture_id,
                retrieved.status,
                retrieved.bytes,
                retrieved.warc_sha256
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn schedule_command(command: &ScheduleCommand, config: &Config) -> Result<ExitCode, Failure> {
    use custody::scheduler::load_dir;
    let dir = match command {
        ScheduleCommand::Validate { dir }
        | ScheduleCommand::List { dir, .. }
        | ScheduleCommand::Next { dir, .. } => dir
            .clone()
            .unwrap_or_else(|| config.daemon.schedules_dir.clone()),
    };
    let (files, problems) = load_dir(&dir, &config.capture);
    for p in &problems {
        println!("{p}");
    }
    let count: usize = files.iter().map(|f| f.schedules.len()).sum();
    let now = chrono::Utc::now();
    match command {
        ScheduleCommand::Validate { .. } => {
            if problems.is_empty() {
                eprintln!("{count} schedules in {} files: all valid", files.len());
            } else {
                eprintln!("{} problems in {}", problems.len(), dir.display());
            }
        }
        ScheduleCommand::List { json, .. } | ScheduleCommand::Next { json, .. } => {
            let times = match command {
                ScheduleCommand::Next { count, .. } => *count,
                _ => 1,
            };
            for file in &files {
                for s in &file.schedules {
                    let mut next = Vec::new();
                    let mut t = now;
                    while next.len() < times {
                        let Some(n) = s.next_after(t) else { break };
                        next.push(n);
                        t = n;
                    }
                    if *json {
                        let value = serde_json::json!({
                            "name": s.name,
                            "file": s.file.display().to_string(),
                            "line": s.line,
                            "cron": s.cron_text,
                            "timezone": s.timezone.name(),
                            "enabled": s.enabled,
                            "urls": s.urls.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
                            "next": next.iter().map(|n| serde_json::json!({
                                "local": n.with_timezone(&s.timezone).to_rfc3339(),
                                "utc": custody::model::rfc3339_utc(n),
                            })).collect::<Vec<_>>(),
                        });
                        print_json(&value)?;
                    } else {
                        let state = if s.enabled { "" } else { "  (disabled)" };
                        eprintln!(
                            "{}  {:?} {}  {} URL(s){state}",
                            s.name,
                            s.cron_text,
                            s.timezone.name(),
                            s.urls.len()
                        );
                        for n in &next {
                            eprintln!(
                                "    {}  ({})",
                                n.with_timezone(&s.timezone).format("%Y-%m-%d %H:%M:%S %Z"),
                                custody::model::rfc3339_utc(n)
                            );
                        }
                    }
                }
            }
        }
    }
    Ok(if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn claim_fields(text: Option<String>, a: ClaimArgs) -> custody::provenance::ClaimFields {
    custody::provenance::ClaimFields {
        text,
        event_start: a.event_start.or(a.event_date),
        event_end: a.event_end,
        place: a.place,
        latitude: a.lat,
        longitude: a.lon,
        tags: (!a.tags.is_empty()).then_some(a.tags),
        language: a.language,
        author: a.author.or_else(|| std::env::var("USER").ok()),
        origin: None,
    }
}

fn provenance_failure(e: custody::provenance::ProvenanceError) -> Failure {
    use custody::provenance::ProvenanceError as P;
    match e {
        P::Invalid(_) => Failure::Usage(e.into()),
        e => Failure::Failed(e.into()),
    }
}

async fn claim_command(pipeline: &Pipeline, command: ClaimCommand) -> Result<ExitCode, Failure> {
    use custody::provenance;
    match command {
        ClaimCommand::Add { text, fields, json } => {
            let claim = provenance::add_claim(pipeline, claim_fields(Some(text), fields))
                .await
                .map_err(provenance_failure)?;
            if json {
                print_json(&claim)?;
            }
            eprintln!("claim {} v{}: {}", claim.id, claim.version, claim.text);
        }
        ClaimCommand::Edit {
            claim_id,
            text,
            fields,
            json,
        } => {
            let claim = provenance::edit_claim(pipeline, &claim_id, claim_fields(text, fields))
                .await
                .map_err(provenance_failure)?;
            if json {
                print_json(&claim)?;
            }
            eprintln!("claim {} v{}: {}", claim.id, claim.version, claim.text);
        }
        ClaimCommand::Link {
            claim_id,
            capture_id,
            quote,
            prefix,
            suffix,
            start,
            end,
            fragment,
            url,
            relation,
            rationale,
            author,
            json,
        } => {
            let capture_id: CaptureId = capture_id
                .parse()
                .map_err(|e: custody::model::ParseCaptureIdError| Failure::Usage(e.into()))?;
            let request = provenance::LinkRequest {
                claim_id,
                capture_id,
                target: url,
                quote,
                prefix,
                suffix,
                position: start.zip(end),
                fragment,
                relation: custody::model::Relation::parse(&relation)
                    .unwrap_or(custody::model::Relation::Supports),
                rationale,
                author: author.or_else(|| std::env::var("USER").ok()),
            };
            let link = provenance::link(pipeline, request)
                .await
                .map_err(provenance_failure)?;
            if json {
                print_json(&link)?;
            }
            let passage = link
                .selectors
                .iter()
                .find_map(|s| match s {
                    custody::model::Selector::TextQuoteSelector { exact, .. } => {
                        Some(format!("\"{exact}\""))
                    }
                    custody::model::Selector::FragmentSelector { value, .. } => Some(value.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            eprintln!(
                "linked claim {} ({}) to {} in capture {}: {passage}",
                link.claim_id,
                link.relation.as_str(),
                link.target_uri,
                link.capture_id
            );
        }
        ClaimCommand::Export {
            claim_id,
            output,
            json,
        } => {
            return export_wacz(
                pipeline,
                custody::wacz::Scope::Claim(claim_id),
                &output,
                json,
            )
            .await;
        }
        ClaimCommand::Show {
            claim_id,
            json,
            jsonld,
        } => {
            let ev = provenance::evidence(pipeline, &claim_id)
                .await
                .map_err(provenance_failure)?;
            if jsonld {
                let doc = provenance::jsonld::claim_document(&ev);
                println!(
                    "{}",
                    serde_json::to_string_pretty(&doc).context("serialising JSON-LD")?
                );
            } else if json {
                print_json(&ev)?;
            } else {
                let c = &ev.claim;
                eprintln!("claim {} v{}: {}", c.id, c.version, c.text);
                for e in &ev.evidence {
                    let state = if e.verified {
                        "verified"
                    } else {
                        "NOT VERIFIED"
                    };
                    eprintln!(
                        "  {} {}  capture {} ({})  {}",
                        e.relation.as_str(),
                        state,
                        e.capture_id,
                        custody::model::rfc3339_utc(&e.captured_at),
                        e.url
                    );
                    if let Some(custody::model::Selector::TextQuoteSelector { exact, .. }) =
                        e.selector.first()
                    {
                        eprintln!("    \"{exact}\"");
                    }
                    if let Some(absent) = &e.passage_absent_since {
                        eprintln!(
                            "    passage absent since capture {} ({})",
                            absent.capture_id,
                            custody::model::rfc3339_utc(&absent.captured_at)
                        );
                    }
                    if let Some(err) = &e.verification_error {
                        eprintln!("    {err}");
                    }
                }
                for e in &ev.events {
                    eprintln!(
                        "  event {} {} {} by {}",
                        custody::model::rfc3339_utc(&e.at),
                        e.event,
                        e.outcome,
                        e.actor.as_deref().unwrap_or("-")
                    );
                }
            }
            if ev.evidence.iter().any(|e| !e.verified) {
                eprintln!("error: some evidence of claim {claim_id} no longer verifies");
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn open_failure(e: PipelineError) -> Failure {
    match e {
        PipelineError::Store(
            custody::store::StoreError::BadUrl(_) | custody::store::StoreError::Unsupported(_),
        )
        | PipelineError::Index(
            custody::index::IndexError::BadUrl(_) | custody::index::IndexError::Unsupported(_),
        )
        | PipelineError::Capture(_) => Failure::Usage(e.into()),
        e => Failure::Failed(e.into()),
    }
}

async fn capture(pipeline: &Pipeline, urls: &[String], json: bool) -> Result<ExitCode, Failure> {
    let mut all_ok = true;
    for raw in urls {
        let seed = check_seed(raw, pipeline.config().capture.allow_private)
            .map_err(|e| Failure::Usage(e.into()))?;
        let bar = ProgressBar::new(seed.as_str());
        let result = pipeline.capture(seed, &bar).await;
        bar.clear();
        let capture = result?;
        // Earlier links to this page: is their passage still there?
        if let Err(e) = custody::provenance::after_capture(pipeline, &capture, None, &[]).await {
            eprintln!("warning: re-checking linked passages failed: {e}");
        }
        if json {
            print_json(&capture)?;
        }
        if capture.status == CaptureStatus::Failed {
            all_ok = false;
            let reason = capture.error.as_deref().unwrap_or("unknown error");
            eprintln!("error: capture of {} failed: {reason}", capture.seed_url);
            continue;
        }
        eprintln!("{}", summary_line(&capture));
        if let Some(c) = &capture.change {
            let how = if c.changed { "changed" } else { "unchanged" };
            eprintln!("  page {how} since capture {}", c.previous_capture);
        }
        for r in capture.resources.iter().filter(|r| r.error.is_some()) {
            eprintln!("  warning: {}: {}", r.url, r.error.as_deref().unwrap_or(""));
        }
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

async fn log_command(pipeline: &Pipeline, command: LogCommand) -> Result<ExitCode, Failure> {
    use custody::tlog;
    let key = tlog::LogKey::load_or_create(&pipeline.config().data_dir)?;
    let index = pipeline.index().as_ref();
    match command {
        LogCommand::Key => {
            println!("{}", key.verifier_key());
        }
        LogCommand::Checkpoint { json } => {
            let c = tlog::make_checkpoint(
                index,
                pipeline.store(),
                &key,
                &pipeline.config().timestamps.tsa_urls,
            )
            .await?;
            // Timestamps now, if a TSA answers; otherwise they stay queued.
            let ts = &pipeline.config().timestamps;
            if !ts.tsa_urls.is_empty() {
                let (stored, failed) = tlog::tsa::process_due(index, ts).await;
                eprintln!("timestamps: {stored} stored, {failed} failed (failed ones are retried by the daemon)");
            }
            if json {
                print_json(&c)?;
            } else {
                print!("{}", c.note);
            }
        }
        LogCommand::Proof { capture_id, json } => {
            let id: CaptureId = capture_id
                .parse()
                .map_err(|e: custody::model::ParseCaptureIdError| Failure::Usage(e.into()))?;
            let proof = tlog::capture_inclusion(
                index,
                pipeline.store(),
                &key,
                &pipeline.config().timestamps.tsa_urls,
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
            let checks = tlog::check_log(index, &key).await?;
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

/// One verification line: `  ok    item: detail` or `  FAIL  item: detail`.
fn print_check(c: &custody::integrity::Check) {
    let detail = c
        .detail
        .as_deref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    let mark = if c.ok { "ok  " } else { "FAIL" };
    eprintln!("  {mark}  {}{detail}", c.item);
}

/// Every check, then `WHAT: verified` or `WHAT: N check(s) failed`.
fn print_checks(checks: &[custody::integrity::Check], what: &str) {
    for c in checks {
        print_check(c);
    }
    match checks.iter().filter(|c| !c.ok).count() {
        0 => eprintln!("{what}: verified"),
        n => eprintln!("{what}: {n} check(s) failed"),
    }
}

fn print_diff(d: &custody::diff::CaptureDiff) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    for (label, s) in [("a", &d.a), ("b", &d.b)] {
        writeln!(
            out,
            "capture {label} {} {}  {}  page sha256 {}",
            s.capture_id,
            s.started_at,
            s.page_url.as_deref().unwrap_or(&s.seed_url),
            s.page_sha256
                .map(|x| x.to_string())
                .unwrap_or_else(|| "-".into())
        )?;
    }
    writeln!(
        out,
        "page: {}",
        if d.page_changed {
            "changed"
        } else {
            "unchanged"
        }
    )?;
    if let Some(note) = &d.text_note {
        writeln!(out, "text: not compared ({note})")?;
    } else {
        let count = |k: custody::diff::Change| d.text.iter().filter(|c| c.change == k).count();
        writeln!(
            out,
            "text: {} edited, {} added, {} removed paragraph(s)",
            count(custody::diff::Change::Edited),
            count(custody::diff::Change::Added),
            count(custody::diff::Change::Removed)
        )?;
    }
    let number = |n: Option<usize>| n.map(|n| n.to_string()).unwrap_or_else(|| "-".into());
    for c in &d.text {
        writeln!(
            out,
            "  {} paragraph {} -> {}",
            c.change.as_str(),
            number(c.a_paragraph),
            number(c.b_paragraph)
        )?;
        if let Some(before) = &c.before {
            writeln!(out, "    - {before}")?;
        }
        if let Some(after) = &c.after {
            writeln!(out, "    + {after}")?;
        }
    }
    let count = |k: custody::diff::Change| d.resources.iter().filter(|c| c.change == k).count();
    writeln!(
        out,
        "resources: {} changed, {} added, {} removed, {} unchanged",
        count(custody::diff::Change::Changed),
        count(custody::diff::Change::Added),
        count(custody::diff::Change::Removed),
        d.unchanged_resources
    )?;
    let digest =
        |x: Option<custody::model::Sha256>| x.map(|x| x.to_string()).unwrap_or_else(|| "-".into());
    for r in &d.resources {
        writeln!(
            out,
            "  {:<8} {}  {} -> {}",
            r.change.as_str(),
            r.url,
            digest(r.a_sha256),
            digest(r.b_sha256)
        )?;
    }
    Ok(())
}

fn summary_line(c: &Capture) -> String {
    let when = custody::model::rfc3339_utc(&c.started_at);
    match (&c.status, &c.warc) {
        (CaptureStatus::Ok, Some(w)) => format!(
            "{} {} ok  {} resources, {} records, {} bytes  {}  warc sha256 {}",
            c.id,
            when,
            c.resources.len(),
            c.records,
            w.bytes,
            c.seed_url,
            w.sha256
        ),
        _ => format!(
            "{} {} failed  {}  {}",
            c.id,
            when,
            c.seed_url,
            c.error.as_deref().unwrap_or("")
        ),
    }
}

fn print_json<T: serde::Serialize>(value: &T) -> Result<(), Failure> {
    let line = serde_json::to_string(value).context("serialising JSON")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").context("writing to stdout")?;
    Ok(())
}

/// A one-line progress display on stderr; silent when stderr is not a terminal.
struct ProgressBar {
    enabled: bool,
    started: Instant,
    seed: String,
    last: Mutex<Option<Instant>>,
}

impl ProgressBar {
    fn new(seed: &str) -> Self {
        ProgressBar {
            enabled: std::io::stderr().is_terminal(),
            started: Instant::now(),
            seed: seed.to_string(),
            last: Mutex::new(None),
        }
    }

    fn clear(&self) {
        if self.enabled {
            eprint!("\r\x1b[2K");
        }
    }
}

impl Progress for ProgressBar {
    fn exchange_done(&self, resources: usize, bytes: u64, url: &str) {
        if !self.enabled {
            return;
        }
        let Ok(mut last) = self.last.lock() else {
            return;
        };
        if last.is_some_and(|t| t.elapsed().as_millis() < 100) {
            return;
        }
        *last = Some(Instant::now());
        let secs = self.started.elapsed().as_secs_f64();
        let mib = bytes as f64 / (1024.0 * 1024.0);
        let shown: String = url.chars().take(60).collect();
        eprint!(
            "\r\x1b[2K[{}] {resources} resources, {mib:.1} MiB, {secs:.0}s  {shown}",
            self.seed.chars().take(40).collect::<String>()
        );
    }
}

/// Writes a WACZ and says what it holds and which key signed it.
async fn export_wacz(
    pipeline: &Pipeline,
    scope: custody::wacz::Scope,
    output: &std::path::Path,
    json: bool,
) -> Result<ExitCode, Failure> {
    let actor = std::env::var("USER").ok();
    let exported = custody::wacz::export(pipeline, &scope, output, actor.as_deref()).await?;
    if json {
        print_json(&exported)?;
    }
    eprintln!(
        "wrote {} ({} bytes, sha256 {}; {} capture(s)); signed by public key {}",
        output.display(),
        exported.bytes,
        exported.sha256,
        exported.captures.len(),
        exported.public_key
    );
    Ok(ExitCode::SUCCESS)
}

async fn token_command(pipeline: &Pipeline, command: TokenCommand) -> Result<ExitCode, Failure> {
    let index = pipeline.index();
    match command {
        TokenCommand::Create { role, label, json } => {
            let role = custody::model::Role::parse(&role).expect("clap checked the role");
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
                    eprintln!(
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
