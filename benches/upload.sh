#!/usr/bin/env bash
# Attachment uploads on the embedded SQLite default with the filesystem store, in one run:
#
#     benches/upload.sh            # FILES=10 SIZE_MIB=20 ROUNDS=3 KINDS=pdf,jpeg
#
# Builds the release binaries, seeds a small city (renkei-bench seed --scale $SEED_SCALE), starts
# `renkei serve` and runs `renkei-bench upload`: $FILES uploads of $SIZE_MIB MiB at the same time,
# $ROUNDS rounds per kind, each to its own seeded note, while the server's RSS is read from /proc
# every 10 ms. The peer in the same run is the same client sending the same bodies to a sink that
# reads and drops them (what loopback HTTP alone allows). Output: target/bench/upload-<time>/.
#
# Knobs: FILES SIZE_MIB ROUNDS KINDS SEED_SCALE=0.01 CARGO_TARGET_DIR (shared targets are fine);
#        RENKEI_BIN and BENCH_BIN: use these release binaries instead of building
set -euo pipefail

FILES=${FILES:-10}
SIZE_MIB=${SIZE_MIB:-20}
ROUNDS=${ROUNDS:-3}
KINDS=${KINDS:-pdf,jpeg}
SEED_SCALE=${SEED_SCALE:-0.01}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/target/bench/upload-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/renkei-upload-bench.XXXXXX")
SERVER_PID=""
say() { printf '\n==> %s\n' "$*" | tee -a "$OUT/run.log"; }
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
trap 'stop_server; rm -rf "$WORK"' EXIT

cd "$ROOT"
if [ -n "${RENKEI_BIN:-}" ] && [ -n "${BENCH_BIN:-}" ]; then
    cp "$RENKEI_BIN" "$OUT/renkei"
    cp "$BENCH_BIN" "$OUT/renkei-bench"
else
    say "building the release binaries"
    if [ -n "${CARGO_TARGET_DIR:-}" ]; then touch "$ROOT/src/lib.rs" "$ROOT/src/main.rs"; fi
    cargo build --release -p renkei -p renkei-bench
    TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
    cp "$TARGET/release/renkei" "$OUT/renkei"
    cp "$TARGET/release/renkei-bench" "$OUT/renkei-bench"
fi

say "seeding scale $SEED_SCALE"
URL="sqlite://$WORK/renkei.db"
DATABASE_URL=$URL RENKEI_DATA_DIR="$WORK" "$OUT/renkei" migrate >"$OUT/seed.log" 2>&1
DATABASE_URL=$URL RENKEI_DATA_DIR="$WORK" "$OUT/renkei-bench" seed --scale "$SEED_SCALE" \
    --manifest "$OUT/manifest.json" >>"$OUT/seed.log" 2>&1

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RENKEI_ENV=development RENKEI_BIND="127.0.0.1:$port" RENKEI_DATA_DIR="$WORK" RENKEI_MAIL_TRANSPORT=log \
    RUST_LOG=warn DATABASE_URL=$URL "$OUT/renkei" serve >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 600); do curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break; sleep 0.2; done
say "server on port $port (pid $SERVER_PID), $(nproc) cores, commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"

"$OUT/renkei-bench" upload --url "http://127.0.0.1:$port" --manifest "$OUT/manifest.json" \
    --server-pid "$SERVER_PID" --files "$FILES" --size-mib "$SIZE_MIB" --rounds "$ROUNDS" --kinds "$KINDS" \
    --json-out "$OUT/upload.json" | tee -a "$OUT/run.log"
say "stored under the data folder: $(du -sh "$WORK/objects" 2>/dev/null | cut -f1 || echo '?')"
say "results in $OUT"
