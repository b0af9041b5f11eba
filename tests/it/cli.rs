//! Running the `custody` binary in a scratch directory.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use custody::model::Capture;

/// The passage of the fixture article its claim is linked with.
pub const QUOTE: &str = "nearly 25 civilians were killed in airstrikes";

/// A scratch working directory with a `custody.toml`; the binary runs there,
/// so its data lives in `custody-data/` below it.
pub struct Workdir {
    pub dir: tempfile::TempDir,
}

impl Workdir {
    /// `extra` is appended to the `[capture]` table of the config file.
    pub fn new(extra_capture: &str) -> Workdir {
        let dir = tempfile::tempdir().expect("tempdir");
        // Test defaults, each unless `extra_capture` sets it.
        // (http mode unless a test asks for the browser: most tests are
        // about what custody itself fetches.)
        let defaults = [
            "connect_timeout_secs = 5",
            "read_timeout_secs = 5",
            "resource_timeout_secs = 60",
            "mode = \"http\"",
        ];
        let mut config = String::from("[capture]\n");
        for line in defaults {
            let key = line.split(' ').next().unwrap_or_default();
            if !extra_capture
                .lines()
                .any(|l| l.trim_start().starts_with(key))
            {
                config.push_str(line);
                config.push('\n');
            }
        }
        config.push_str(extra_capture);
        config.push('\n');
        std::fs::write(dir.path().join("custody.toml"), config).expect("write config");
        Workdir { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A copy of this working directory (config and data), for a test
    /// that tampers with one installation among several.
    pub fn copy(&self) -> Workdir {
        fn copy_tree(from: &Path, to: &Path) {
            std::fs::create_dir_all(to).expect("mkdir");
            for entry in std::fs::read_dir(from).expect("read_dir") {
                let entry = entry.expect("entry");
                let target = to.join(entry.file_name());
                if entry.file_type().expect("file type").is_dir() {
                    copy_tree(&entry.path(), &target);
                } else {
                    std::fs::copy(entry.path(), &target).expect("copy");
                }
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        copy_tree(self.path(), dir.path());
        Workdir { dir }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_custody"));
        cmd.args(args)
            .current_dir(self.path())
            .env_remove("CUSTODY_DATA_DIR")
            .env_remove("CUSTODY_INDEX_URL")
            .env_remove("CUSTODY_STORE_URL")
            .env_remove("CUSTODY_KEYS_DIR");
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run custody")
    }

    /// Runs a command that must succeed and returns its stdout.
    pub fn ok(&self, args: &[&str]) -> Vec<u8> {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "custody {args:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// `capture URL --json --allow-private`, expecting one capture.
    pub fn capture(&self, url: &str) -> (Capture, Output) {
        let out = self.run(&["capture", url, "--json", "--allow-private"]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let line = stdout.lines().next().unwrap_or_else(|| {
            panic!(
                "no JSON from capture: {}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (serde_json::from_str(line).expect("capture JSON"), out)
    }

    /// `export ID --format warc -o NAME` in the working directory, which
    /// must succeed; returns the file's path.
    pub fn export_warc(&self, id: &str, name: &str) -> PathBuf {
        let path = self.path().join(name);
        self.ok(&[
            "export",
            id,
            "--format",
            "warc",
            "-o",
            path.to_str().expect("UTF-8 path"),
        ]);
        path
    }

    /// `export ID --format wacz -o NAME` in the working directory, which
    /// must succeed; returns the package's path.
    pub fn export_wacz(&self, id: &str, name: &str) -> PathBuf {
        let path = self.path().join(name);
        self.ok(&[
            "export",
            id,
            "--format",
            "wacz",
            "-o",
            path.to_str().expect("UTF-8 path"),
        ]);
        path
    }

    /// A connection to the working directory's SQLite index, for tests that
    /// look at (or tamper with) its tables.
    pub async fn index_pool(&self) -> sqlx::SqlitePool {
        let db = self.path().join("custody-data/index.db");
        sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
            .await
            .expect("open the SQLite index")
    }

    /// The capture's WARC as stored in the local object directory.
    pub fn stored_warc(&self, capture: &Capture) -> PathBuf {
        let warc = capture.warc.as_ref().expect("a successful capture");
        self.path().join("custody-data/objects").join(&warc.key)
    }

    /// Adds the fixture's claim and links it to each capture with
    /// [`QUOTE`]; returns the claim's id.
    /// `claim add TEXT`: the new claim's id.
    pub fn claim(&self, text: &str) -> String {
        let claim: serde_json::Value =
            serde_json::from_slice(&self.ok(&["claim", "add", text, "--json"]))
                .expect("claim JSON");
        claim["id"].as_str().expect("claim id").to_string()
    }

    pub fn claim_linked_to(&self, captures: &[&Capture]) -> String {
        let claim: serde_json::Value = serde_json::from_slice(&self.ok(&[
            "claim",
            "add",
            "Nearly 25 civilians were killed in Bab Alnairab",
            "--json",
        ]))
        .expect("claim JSON");
        let claim_id = claim["id"].as_str().expect("claim id").to_string();
        for c in captures {
            self.ok(&["claim", "link", &claim_id, c.id.as_str(), "--quote", QUOTE]);
        }
        claim_id
    }

    pub fn objects(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let mut stack = vec![self.path().join("custody-data/objects")];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if e.path().is_dir() {
                    stack.push(e.path());
                } else {
                    found.push(e.path());
                }
            }
        }
        found.sort();
        found
    }
}

/// Everything a command printed: stdout (its listing), then stderr.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

pub fn stderr_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A child process killed (and reaped) when dropped.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Sends a signal (`TERM`, `KILL`, `STOP`, `CONT`) to a process, with
/// `kill(1)`.
pub fn signal(pid: u32, name: &str) {
    let done = std::process::Command::new("kill")
        .args(["-s", name, &pid.to_string()])
        .status()
        .expect("kill(1)");
    assert!(done.success(), "kill -s {name} {pid}");
}
