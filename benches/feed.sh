#!/usr/bin/env bash
# The change feed and its event stream, in one run, on the embedded SQLite default and (when the
# PostgreSQL server programs are found) on a throwaway PostgreSQL cluster:
#
#     benches/feed.sh            # CHANGES=2000 PAGE_LIMIT=200 STREAMS=100,500,1000 NOTES=10
#
# Builds the release binaries, seeds a small city (renkei-bench seed --scale $SEED_SCALE), starts
# `renkei serve` and runs `renkei-bench feed`: a clinician's $CHANGES notes read back through
# GET /changes in pages of $PAGE_LIMIT, then $STREAMS event streams open at once on one patient's
# team while $NOTES notes are posted, each stream's delivery latency and the server's RSS read.
# The peer in the same run is an in-process server that serves the same pages from memory and
# writes the same event bytes to the same number of streams, with no database. The machine's
# load average is printed before and after. Output: target/bench/feed-<time>/.
#
# Knobs: CHANGES PAGE_LIMIT STREAMS NOTES SEED_SCALE=0.01 BACKENDS=sqlite,postgres
#        CARGO_TARGET_DIR (shared targets are fine);
#        RENKEI_BIN and BENCH_BIN: use these release binaries instead of building
set -euo pipefail

CHANGES=${CHANGES:-2000}
PAGE_LIMIT=${PAGE_LIMIT:-200}
STREAMS=${STREAMS:-100,500,1000}
NOTES=${NOTES:-10}
SEED_SCALE=${SEED_SCALE:-0.01}
BACKENDS=${BACKENDS:-sqlite,postgres}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/target/bench/feed-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/renkei-feed-bench.XXXXXX")
SERVER_PID=""
PGDATA=""
AS_PG=()
say() { printf '\n==> %s\n' "$*" | tee -a "$OUT/run.log"; }
stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
cleanup() {
    stop_server
    if [ -n "$PGDATA" ]; then "${AS_PG[@]}" "$PG_CTL" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT

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
# Each stream is a socket on both ends of loopback.
ulimit -n 20000 2>/dev/null || true
say "$(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown); uptime: $(uptime)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

run_backend() { # name database-url
    local name=$1 url=$2
    say "$name: seeding scale $SEED_SCALE"
    mkdir -p "$WORK/$name"
    DATABASE_URL=$url RENKEI_DATA_DIR="$WORK/$name" "$OUT/renkei" migrate >"$OUT/$name-seed.log" 2>&1
    DATABASE_URL=$url RENKEI_DATA_DIR="$WORK/$name" "$OUT/renkei-bench" seed --scale "$SEED_SCALE" \
        --manifest "$OUT/$name-manifest.json" >>"$OUT/$name-seed.log" 2>&1
    local port
    port=$(free_port)
    # Room for every stream on one instance and for one person's many streams (the benchmark
    # spreads them over the few people on one patient's team); a short heartbeat, so that the
    # streams of one count are let go of before the next count opens its own.
    RENKEI_ENV=development RENKEI_BIND="127.0.0.1:$port" RENKEI_DATA_DIR="$WORK/$name" RENKEI_MAIL_TRANSPORT=log \
        RENKEI_STREAMS_MAX=5000 RENKEI_STREAMS_PER_USER=5000 RENKEI_STREAM_HEARTBEAT_SECS=2 \
        RUST_LOG=warn DATABASE_URL=$url "$OUT/renkei" serve >"$OUT/$name-server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 600); do curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break; sleep 0.2; done
    say "$name: server on port $port (pid $SERVER_PID)"
    "$OUT/renkei-bench" feed --url "http://127.0.0.1:$port" --manifest "$OUT/$name-manifest.json" \
        --server-pid "$SERVER_PID" --changes "$CHANGES" --page-limit "$PAGE_LIMIT" --streams "$STREAMS" \
        --notes "$NOTES" --json-out "$OUT/$name-feed.json" | tee "$OUT/$name-feed.txt" | tee -a "$OUT/run.log"
    stop_server
}

if [[ ",$BACKENDS," == *",sqlite,"* ]]; then
    run_backend sqlite "sqlite://$WORK/sqlite/renkei.db"
fi

find_pg() {
    local p
    if p=$(command -v "$1" 2>/dev/null); then echo "$p"; return; fi
    p=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1)
    [ -n "$p" ] && echo "$p"
}
if [[ ",$BACKENDS," == *",postgres,"* ]]; then
    INITDB=$(find_pg initdb || true)
    PG_CTL=$(find_pg pg_ctl || true)
    if [ -z "$INITDB" ] || [ -z "$PG_CTL" ]; then
        say "PostgreSQL server binaries (initdb, pg_ctl) not found: the PostgreSQL half is skipped"
    else
        if [ "$(id -u)" = 0 ]; then
            if command -v runuser >/dev/null; then AS_PG=(runuser -u postgres --); else AS_PG=(sudo -u postgres); fi
        fi
        mkdir -p "$WORK/pg"
        # The cluster runs as postgres: it must be able to reach its folder inside ours.
        if [ "$(id -u)" = 0 ]; then chmod o+x "$WORK"; chown postgres "$WORK/pg"; fi
        PGDATA="$WORK/pg/data"
        PGPORT=$(free_port)
        say "postgres: a throwaway cluster on 127.0.0.1:$PGPORT"
        "${AS_PG[@]}" "$INITDB" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$OUT/initdb.log" 2>&1
        "${AS_PG[@]}" "$PG_CTL" -D "$PGDATA" -l "$WORK/pg/postgres.log" -w -t 60 \
            -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
        run_backend postgres "postgres://postgres@127.0.0.1:$PGPORT/postgres"
    fi
fi
say "uptime after: $(uptime)"
say "results in $OUT"
