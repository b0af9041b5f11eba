//! The `custody` command line: parses flags (ids and times once, by clap's
//! value parsers), loads configuration (every flag that overrides a setting
//! goes through `config::Overrides`), calls the library, and turns results
//! into output and exit codes. JSON goes to stdout (one object per line for
//! lists); human output, warnings and the progress bar go to stderr. Exit
//! codes: 0 full success, 1 the operation failed (a failed capture,
//! nothing found, a check that did not pass), 2 bad usage or
//! configuration. No business logic lives here: each command family's file
//! calls one library function and prints what it returns.

// The only place that prints (`[lints.clippy]` in Cargo.toml denies it
// everywhere else).
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod captures;
mod claims;
mod integrity;
mod keys;
mod log;
mod output;
mod schedules;
mod service;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand, ValueEnum};

use custody::archive::{Archive, ArchiveError};
use custody::config::{Config, Overrides};
use custody::model::{CaptureId, Relation, Role};
use custody::pipeline::Capturer;

#[derive(Parser)]
#[command(
    name = "custody",
    version,
    about = "Preserve web evidence: capture pages into WARC/1.1, store them content-addressed, retrieve them verifiably."
)]
pub struct Cli {
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
pub enum Command {
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
        /// Also run yt-dlp on each page through custody's recording proxy
        /// and keep the video or audio it produces (capture.media).
        #[arg(long)]
        media: bool,
        /// browser: render the page in Chromium, every request through
        /// custody's recording proxy, and keep a screenshot, a PDF and
        /// the rendered text; http: read it as a browser without scripts
        /// would (capture.mode).
        #[arg(long, value_name = "MODE", value_parser = ["browser", "http"])]
        mode: Option<String>,
    },
    /// Import WARC (.warc, .warc.gz) and WACZ files made by other tools:
    /// each is kept exactly as received, checked record by record, and
    /// becomes a capture marked as imported (replayable, searchable,
    /// linkable, exportable), committed to the log with its digest, its
    /// arrival, who imported it and its stated source.
    Import {
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
        /// Where the files came from (who made them, how they reached you).
        #[arg(long, value_name = "TEXT")]
        source: Option<String>,
        /// Print one JSON object per import on stdout.
        #[arg(long)]
        json: bool,
    },
    /// What changed between two captures: the page's text, paragraph by
    /// paragraph, and the resources.
    Diff {
        /// The earlier capture.
        capture_a: CaptureRef,
        /// The later capture.
        capture_b: CaptureRef,
        #[arg(long)]
        json: bool,
    },
    /// Full-text search of every archived page and frame: documents that
    /// hold every word and "quoted phrase", newest capture first, each with
    /// the passage around its first match.
    Search {
        /// Words and "quoted phrases" (quote a phrase for the shell too:
        /// '"Bab Alnairab"').
        #[arg(required = true, value_name = "WORDS")]
        words: Vec<String>,
        /// Only documents of this host or its subdomains.
        #[arg(long, value_name = "HOST")]
        site: Option<String>,
        /// Only captures started at or after (RFC 3339 or YYYYMMDDhhmmss).
        #[arg(long, value_name = "TIME")]
        from: Option<String>,
        /// Only captures started at or before.
        #[arg(long, value_name = "TIME")]
        to: Option<String>,
        /// Only captures of this schedule.
        #[arg(long, value_name = "NAME")]
        schedule: Option<String>,
        /// Only captures a version of this claim is linked to.
        #[arg(long, value_name = "CLAIM_ID")]
        claim: Option<String>,
        /// Oldest capture first.
        #[arg(long)]
        oldest_first: bool,
        /// Results per page.
        #[arg(long, default_value_t = 20)]
        limit: u32,
        /// The next page: the cursor the page before printed.
        #[arg(long)]
        cursor: Option<String>,
        /// One JSON object per result on stdout (the next page's cursor on
        /// stderr).
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
    /// Show one capture: its line, WARC, timestamps, claims, events and
    /// resources (on stdout).
    Show {
        capture_id: CaptureRef,
        /// Also list its WARC records.
        #[arg(long)]
        records: bool,
        #[arg(long)]
        json: bool,
    },
    /// Write a capture's evidence to a file, checked against its digest.
    Export {
        capture_id: CaptureRef,
        #[arg(long, value_enum)]
        format: ExportFormat,
        #[arg(short, long, value_name = "PATH")]
        output: PathBuf,
        /// Replace PATH if it exists (refused otherwise).
        #[arg(long)]
        force: bool,
    },
    /// Ask a running daemon or server whether it is healthy (its /healthz);
    /// exit 0 if it answers 200 within 5 s, else 1. For container health
    /// checks.
    Health {
        /// The health endpoint.
        #[arg(default_value = "http://127.0.0.1:8080/healthz")]
        url: String,
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
    /// The signing keys (the log's and the packages'): made once, then
    /// given to every daemon of one archive (keys_dir / CUSTODY_KEYS_DIR).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
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
        capture: Option<CaptureRef>,
        #[arg(long)]
        json: bool,
    },
    /// Print the readable text of a captured page (or of URL in the
    /// capture): what `claim link --quote` is matched against, each block
    /// with its [start-end] positions for `--start/--end`.
    Text {
        capture_id: CaptureRef,
        /// A document of the capture other than its page.
        #[arg(long)]
        url: Option<String>,
        /// The text alone, without positions.
        #[arg(long)]
        plain: bool,
    },
    /// Print the archived body of URL nearest in time (redirects followed).
    Get {
        url: String,
        /// YYYYMMDDhhmmss (or a prefix): the capture nearest this instant; default the latest.
        #[arg(long, value_name = "TIMESTAMP", value_parser = parse_at)]
        at: Option<chrono::DateTime<chrono::Utc>>,
        /// Write the body to PATH instead of stdout.
        #[arg(short, long, value_name = "PATH")]
        output: Option<PathBuf>,
    },
}

#[derive(clap::Args, Default)]
pub struct ClaimArgs {
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
pub enum ClaimCommand {
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
        capture_id: CaptureRef,
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
        /// The document in the capture, when not its page (a URL it fetched,
        /// or a media file's urn:media:... name).
        #[arg(long)]
        url: Option<String>,
        #[arg(long, default_value = "supports", value_parser = parse_relation)]
        relation: Relation,
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
        /// Replace PATH if it exists (refused otherwise).
        #[arg(long)]
        force: bool,
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
pub enum TokenCommand {
    /// Make a token. It is printed once, as the last line of stdout; only
    /// its digest is kept.
    Create {
        #[arg(long, value_parser = parse_role)]
        role: Role,
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
pub enum KeysCommand {
    /// Make the log signing key and the WACZ signing key in a directory
    /// (refused if it holds either already); print their public keys.
    Generate {
        /// Where to write them (default: keys_dir, else the data directory).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Print the public keys of a directory's keys (never creates them).
    Show {
        /// Whose keys (default: keys_dir, else the data directory).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum LogCommand {
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
        capture_id: CaptureRef,
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
pub enum ScheduleCommand {
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
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Warc,
    Wacz,
}

fn parse_at(s: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    custody::archive::parse_at(s).map_err(|e| e.to_string())
}

fn parse_relation(s: &str) -> Result<Relation, String> {
    Relation::parse(s)
        .ok_or_else(|| "use supports, refutes, context or first_appearance".to_string())
}

fn parse_role(s: &str) -> Result<Role, String> {
    Role::parse(s).ok_or_else(|| "use reader, archivist or admin".to_string())
}

/// An error that maps to an exit code.
pub enum Failure {
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

/// Exit 0 when `ok`, else 1.
fn exit(ok: bool) -> ExitCode {
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            eprintln!("error: {}", usage_line(&e));
            return ExitCode::from(2);
        }
    };
    // The daemon logs a line per run; other commands only warnings.
    let (default_level, json_logs) = match &cli.command {
        Command::Daemon { log_format, .. } => ("info", *log_format == LogFormat::Json),
        _ => ("warn", false),
    };
    // PostgreSQL's notices ("already exists, skipping") are not custody's.
    let filter = tracing_subscriber::EnvFilter::try_from_env("CUSTODY_LOG")
        .unwrap_or_else(|_| format!("{default_level},sqlx::postgres::notice=warn").into());
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

/// clap's message on one line: its own lines joined, without the usage
/// synopsis and the pointer to `--help`.
fn usage_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let kept: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("Usage:") && !l.starts_with("For more information")
        })
        .collect();
    kept.join(" ").trim_start_matches("error: ").to_string()
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

/// The settings every command line flag overrides.
fn overrides(cli: &Cli) -> Overrides {
    let mut o = Overrides {
        config_file: cli.config.clone(),
        data_dir: cli.data_dir.clone(),
        ..Overrides::default()
    };
    match &cli.command {
        Command::Capture {
            allow_private,
            no_dedup,
            media,
            mode,
            ..
        } => {
            o.allow_private = *allow_private;
            o.no_dedup = *no_dedup;
            o.media = *media;
            o.mode = mode.as_deref().map(|m| match m {
                "browser" => custody::capture::Mode::Browser,
                _ => custody::capture::Mode::Http,
            });
        }
        Command::Daemon {
            schedules,
            listen,
            allow_private,
            public_read,
            ..
        } => {
            o.allow_private = *allow_private;
            o.public_read = *public_read;
            o.listen = *listen;
            o.schedules_dir = schedules.clone();
        }
        Command::Serve {
            listen,
            public_read,
            schedules,
        } => {
            o.public_read = *public_read;
            o.listen = *listen;
            o.schedules_dir = schedules.clone();
        }
        _ => {}
    }
    o
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    let config = Config::load(&overrides(&cli)).map_err(|e| Failure::Usage(e.into()))?;
    match cli.command {
        Command::Schedule { command } => schedules::schedule_command(&command, &config),
        Command::Keys { command } => keys::keys_command(&config, command),
        Command::Health { url } => service::health(&url).await,
        Command::Verify {
            capture_id: Some(arg),
            json,
            key,
            tsa_roots,
            package_key,
            ..
        } if std::path::Path::new(&arg).is_file() => {
            // A package is verified offline, from the file alone.
            integrity::verify_file(
                std::path::Path::new(&arg),
                json,
                key.as_deref(),
                &tsa_roots,
                package_key.as_deref(),
            )
        }
        Command::Capture { urls, json, .. } => captures::capture(config, &urls, json).await,
        Command::Daemon { .. } => service::daemon(config).await,
        Command::Serve { .. } => service::serve(config).await,
        command => {
            let archive = match access(&command) {
                Access::Write => open(config).await?,
                Access::Read => open_for_reading(config).await?,
                Access::ReadRecorded => open_recorded(config).await?,
            };
            dispatch(&archive, command).await
        }
    }
}

/// How a command opens the archive.
enum Access {
    /// It writes: opened for writing (migrating the index if needed).
    Write,
    /// It only reads: opened read-only, so it runs on a write-protected
    /// copy, takes no write lock, and changes nothing.
    Read,
    /// It reads and records that it did (custody events, a checkpoint when
    /// none covers a proof): opened for writing when it can be, else
    /// read-only with a warning that the access goes unrecorded.
    ReadRecorded,
}

fn access(command: &Command) -> Access {
    match command {
        Command::Captures { .. }
        | Command::Search { .. }
        | Command::Show { .. }
        | Command::Diff { .. }
        | Command::Verify { .. }
        | Command::Claims { .. } => Access::Read,
        Command::Claim { command } if matches!(**command, ClaimCommand::Show { .. }) => {
            Access::Read
        }
        Command::Log { command } => match command {
            LogCommand::Key | LogCommand::Consistency { .. } | LogCommand::Check { .. } => {
                Access::Read
            }
            LogCommand::Proof { .. } => Access::ReadRecorded,
            LogCommand::Checkpoint { .. } => Access::Write,
        },
        Command::Get { .. } | Command::Export { .. } | Command::Text { .. } => Access::ReadRecorded,
        _ => Access::Write,
    }
}

/// An export never replaces a file by accident: an existing `output` needs
/// `--force`.
pub fn refuse_to_replace(output: &std::path::Path, force: bool) -> Result<(), Failure> {
    if !force && std::fs::symlink_metadata(output).is_ok() {
        return Err(Failure::Usage(anyhow::anyhow!(
            "{} exists; pass --force to replace it, or choose another -o",
            output.display()
        )));
    }
    Ok(())
}

/// Read-only; an index that cannot be opened so (not made yet, or of an
/// older schema) is opened for writing instead, which creates or migrates
/// it, when the data directory allows.
async fn open_for_reading(config: Config) -> Result<Archive, Failure> {
    match Archive::open_read_only(config.clone()).await {
        Ok(archive) => Ok(archive),
        Err(read_only) => Archive::open(config)
            .await
            .map_err(|_| open_failure(read_only)),
    }
}

async fn open_recorded(config: Config) -> Result<Archive, Failure> {
    match Archive::open(config.clone()).await {
        Ok(archive) => Ok(archive),
        Err(writing) => match Archive::open_read_only(config).await {
            Ok(archive) => {
                let why = match &writing {
                    ArchiveError::Unwritable { path, source } => {
                        format!("{} cannot be written: {source}", path.display())
                    }
                    other => other.to_string(),
                };
                eprintln!("warning: reading the archive read-only ({why}), so this access is not recorded as a custody event");
                Ok(archive)
            }
            Err(_) => Err(open_failure(writing)),
        },
    }
}

/// The commands that read or add to an opened archive.
/// A capture id as given on the command line: the whole id, or a unique
/// beginning of it (as git takes commits), resolved against the index.
#[derive(Clone, Debug)]
pub struct CaptureRef(String);

impl std::str::FromStr for CaptureRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if t.len() >= 4 && t.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
            Ok(CaptureRef(t.to_string()))
        } else {
            Err(format!(
                "not a capture id (want a UUID such as 0193f1e2-7c4a-7d2e-9b1a-3c5d7e9f1a2b, or a unique beginning of one): {s:?}"
            ))
        }
    }
}

impl CaptureRef {
    /// The capture it names; a short or ambiguous beginning is a usage
    /// error.
    pub async fn resolve(&self, archive: &Archive) -> Result<CaptureId, Failure> {
        archive
            .resolve_capture_id(&self.0)
            .await
            .map_err(|e| match e {
                custody::archive::ArchiveError::Invalid(m) => Failure::Usage(anyhow::anyhow!(m)),
                e => e.into(),
            })
    }
}

async fn dispatch(archive: &Archive, command: Command) -> Result<ExitCode, Failure> {
    match command {
        Command::Claim { command } => claims::claim_command(archive, *command).await,
        Command::Claims {
            search,
            url,
            capture,
            json,
        } => {
            let capture = match capture {
                Some(c) => Some(c.resolve(archive).await?),
                None => None,
            };
            claims::claims(archive, search, url, capture, json).await
        }
        Command::Token { command } => service::token_command(archive, command).await,
        Command::Log { command } => log::log_command(archive, command).await,
        Command::Reindex { json } => integrity::reindex(archive, json).await,
        Command::Import {
            files,
            source,
            json,
        } => captures::import(archive, &files, source, json).await,
        Command::Audit { json } => integrity::audit(archive, json).await,
        Command::Verify {
            capture_id,
            all,
            json,
            ..
        } => integrity::verify(archive, capture_id, all, json).await,
        Command::Diff {
            capture_a,
            capture_b,
            json,
        } => {
            let (a, b) = (
                capture_a.resolve(archive).await?,
                capture_b.resolve(archive).await?,
            );
            captures::diff(archive, &a, &b, json).await
        }
        Command::Captures { url, json } => captures::captures(archive, url, json).await,
        Command::Search {
            words,
            site,
            from,
            to,
            schedule,
            claim,
            oldest_first,
            limit,
            cursor,
            json,
        } => {
            let time = |name: &str, t: Option<String>| {
                t.map(|t| custody::search::parse_time(name, &t))
                    .transpose()
                    .map_err(|e| Failure::Usage(e.into()))
            };
            let request = custody::search::SearchRequest {
                q: words.join(" "),
                site,
                from: time("--from", from)?,
                to: time("--to", to)?,
                schedule,
                claim,
                oldest_first,
                cursor,
                limit,
            };
            captures::search(archive, &request, json).await
        }
        Command::Show {
            capture_id,
            records,
            json,
        } => {
            let id = capture_id.resolve(archive).await?;
            captures::show(archive, &id, json, records).await
        }
        Command::Export {
            capture_id,
            output,
            format,
            force,
        } => {
            refuse_to_replace(&output, force)?;
            let id = capture_id.resolve(archive).await?;
            captures::export(archive, id, &output, format).await
        }
        Command::Get { url, at, output } => captures::get(archive, &url, at, output).await,
        Command::Text {
            capture_id,
            url,
            plain,
        } => {
            let id = capture_id.resolve(archive).await?;
            claims::text(archive, &id, url.as_deref(), plain).await
        }
        Command::Schedule { .. }
        | Command::Keys { .. }
        | Command::Health { .. }
        | Command::Capture { .. }
        | Command::Daemon { .. }
        | Command::Serve { .. } => unreachable!("run() handles these before opening the archive"),
    }
}

/// Opens the archive the configuration names; a bad URL is a usage error.
async fn open(config: Config) -> Result<Archive, Failure> {
    Archive::open(config).await.map_err(open_failure)
}

/// A capture job over a newly opened archive, after start-up recovery.
async fn open_capturer(config: Config) -> Result<Arc<Capturer>, Failure> {
    let archive = Arc::new(open(config).await?);
    custody::recovery::recover(&archive).await;
    let capturer = Capturer::new(archive).map_err(open_failure)?;
    Ok(Arc::new(capturer))
}

fn open_failure(e: ArchiveError) -> Failure {
    use custody::index::ErrorKind;
    match &e {
        ArchiveError::Store(
            custody::store::StoreError::BadUrl(_) | custody::store::StoreError::Unsupported(_),
        )
        | ArchiveError::Capture(_) => Failure::Usage(e.into()),
        ArchiveError::Index(i) if i.kind() == ErrorKind::Config => Failure::Usage(e.into()),
        _ => Failure::Failed(e.into()),
    }
}
