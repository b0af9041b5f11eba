//! The deploy recipes, checked by the tools their users run (installed by
//! scripts/test.sh): hadolint on the Dockerfile, kubernetes-validate on
//! the manifests, systemd-analyze on the unit; and the health probe the
//! image's HEALTHCHECK and the pod's startup probe run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::cli::Workdir;
use crate::interop::tool;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn ok(mut cmd: Command) -> String {
    let out = cmd.output().unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{cmd:?}:\n{text}");
    text
}

#[test]
fn hadolint_passes_the_dockerfile_and_its_healthcheck_is_custody_health() {
    let dockerfile = deploy().join("Dockerfile");
    let mut cmd = tool("hadolint");
    cmd.arg(&dockerfile);
    ok(cmd);
    let text = std::fs::read_to_string(&dockerfile).unwrap();
    let check = text
        .lines()
        .find(|l| l.starts_with("HEALTHCHECK"))
        .expect("a HEALTHCHECK");
    assert!(
        check.contains(r#"["custody", "health", "http://127.0.0.1:8080/healthz"]"#),
        "{check}"
    );
    assert!(!check.contains("/dev/tcp"), "dash has no /dev/tcp: {check}");
}

#[test]
fn kubernetes_validate_passes_the_manifests_and_the_pod_can_write_what_custody_writes() {
    let dir = deploy().join("k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut cmd = tool("kubernetes-validate");
    cmd.args(["--strict"]).args(&files);
    ok(cmd);
    let deployment = std::fs::read_to_string(dir.join("deployment.yaml")).unwrap();
    assert!(deployment.contains("readOnlyRootFilesystem: true"));
    for mount in [
        "mountPath: /var/lib/custody",
        "mountPath: /tmp",
        "mountPath: /etc/custody/keys, readOnly: true",
    ] {
        assert!(deployment.contains(mount), "{mount}");
    }
}

#[test]
fn systemd_analyze_verifies_the_unit() {
    // `verify` resolves ExecStart: point it at the binary under test.
    let work = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(deploy().join("systemd/custody.service"))
        .unwrap()
        .replace("/usr/local/bin/custody", env!("CARGO_BIN_EXE_custody"));
    let path = work.path().join("custody.service");
    std::fs::write(&path, unit).unwrap();
    let mut cmd = tool("systemd-analyze");
    cmd.args(["verify", "--man=no"]).arg(&path);
    ok(cmd);
}

#[test]
fn custody_health_says_whether_a_server_answers() {
    let work = Workdir::new("");
    let server = crate::web::serve(&work, &[]);
    let out = work.run(&["health", &format!("http://{}/healthz", server.addr)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Nothing listening: unhealthy, exit 1, one line.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = work.run(&["health", &format!("http://{free}/healthz")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("unhealthy: ") && err.lines().count() == 1,
        "{err}"
    );
    // A path that is not healthy (404) is unhealthy too.
    let out = work.run(&["health", &format!("http://{}/no-such-probe", server.addr)]);
    assert_eq!(out.status.code(), Some(1));
}
