#!/usr/bin/env bash
# Starts a single-node Garage (a real S3-compatible store) on loopback for the
# S3 tests, building it once from its crate (about 8 minutes on 2 cores,
# cached in ~/.cargo/bin). Idempotent: a Garage that already answers is
# reused, and layout, key and bucket are only created when missing.
#
# Prints `export ...` lines for the S3 settings the tests use; source them:
#   eval "$(bash scripts/garage.sh)"
set -euo pipefail

CACHE="${CUSTODY_TEST_CACHE:-$HOME/.cache/custody-test}"
DIR="$CACHE/garage"
GARAGE_VERSION="2.5.0"
S3_PORT="${CUSTODY_TEST_S3_PORT:-3900}"
RPC_PORT=$((S3_PORT + 1))
ADMIN_PORT=$((S3_PORT + 3))
# Fixed test credentials for a loopback-only store (Garage key format).
KEY_ID="GK31c2f218a2e44f485b94239e"
SECRET="b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f4d58f1a8fd5b0af7"
BUCKET="custody-test"

say() { printf '[garage.sh] %s\n' "$*" >&2; }

export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v garage >/dev/null || ! garage --version 2>/dev/null | grep -q "$GARAGE_VERSION"; then
    say "building garage $GARAGE_VERSION (once; about 8 minutes)"
    cargo install garage --locked --version "$GARAGE_VERSION" >&2
fi

mkdir -p "$DIR/meta" "$DIR/data"
CONFIG="$DIR/garage.toml"
cat > "$CONFIG" <<TOML
metadata_dir = "$DIR/meta"
data_dir = "$DIR/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "4425f5c26c5e11581d3223904324dcb5b5d5dfb14e5e7f35e38c595424f5f1e6"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
TOML

g() { garage -c "$CONFIG" "$@"; }

if ! g status >/dev/null 2>&1; then
    say "starting garage on 127.0.0.1:$S3_PORT"
    nohup garage -c "$CONFIG" server > "$DIR/server.log" 2>&1 &
    for _ in $(seq 1 100); do
        g status >/dev/null 2>&1 && break
        sleep 0.2
    done
    g status >/dev/null 2>&1 || { say "garage did not start; see $DIR/server.log"; exit 1; }
fi

# Just after start the layout may not be readable yet: read it until it is
# (a failed read once skipped the assignment, and every write then failed).
LAYOUT=""
for _ in $(seq 1 100); do
    LAYOUT=$(g layout show 2>/dev/null) && break
    sleep 0.2
done
if grep -q "No nodes currently have a role" <<<"$LAYOUT"; then
    NODE=$(g node id -q 2>/dev/null | cut -d@ -f1)
    g layout assign -z dc1 -c 1G "$NODE" >&2
    g layout apply --version 1 >&2
fi
# A layout applied a moment ago may not be ready yet ("Layout not ready"):
# retry the first writes for up to 30 seconds before giving up.
retry() {
    for _ in $(seq 1 150); do
        "$@" >&2 2>/dev/null && return 0
        sleep 0.2
    done
    "$@" >&2
}
g key info "$KEY_ID" >/dev/null 2>&1 || retry g key import --yes -n custody-test "$KEY_ID" "$SECRET"
g bucket info "$BUCKET" >/dev/null 2>&1 || retry g bucket create "$BUCKET"
retry g bucket allow --read --write --owner "$BUCKET" --key "$KEY_ID"

cat <<ENV
export AWS_ACCESS_KEY_ID=$KEY_ID
export AWS_SECRET_ACCESS_KEY=$SECRET
export AWS_ENDPOINT=http://127.0.0.1:$S3_PORT
export AWS_DEFAULT_REGION=garage
export AWS_REGION=garage
export AWS_ALLOW_HTTP=true
export CUSTODY_TEST_S3_BUCKET=$BUCKET
ENV
