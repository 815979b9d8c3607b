#!/usr/bin/env bash
# Two builds of the server on the embedded SQLite default, in one run, on one seeded city:
#
#     benches/sqlite-before-after.sh BEFORE_BIN AFTER_BIN BENCH_BIN
#
# e.g. a release build of the main branch and one of a change to the write path. Both serve a
# copy of the same seeded database (renkei-bench seed --scale $SQLITE_SCALE), one after the
# other, under the same load (renkei-bench load): note POST, note GET and timeline at the
# CONCURRENCY list, /me/unread and the caseload at UNREAD_CONCURRENCY. Then, for each build, a
# closed-loop note POST at 16 connections runs under `strace -f -c -e trace=clock_nanosleep`,
# which counts the sleeps of SQLite's busy handler (it sleeps with clock_nanosleep), beside the
# number of requests answered meanwhile. Output: target/bench/sqlite-<time>/ (or BENCH_OUT).
#
# Knobs: SQLITE_SCALE=0.05 DURATION_SECS=10 CONCURRENCY=16 UNREAD_CONCURRENCY=64
#        OPEN_FRACTION=0.5 STRACE_SECS=5
set -euo pipefail

BEFORE=${1:?before binary}
AFTER=${2:?after binary}
BENCH=${3:?renkei-bench binary}
SQLITE_SCALE=${SQLITE_SCALE:-0.05}
DURATION_SECS=${DURATION_SECS:-10}
CONCURRENCY=${CONCURRENCY:-16}
UNREAD_CONCURRENCY=${UNREAD_CONCURRENCY:-64}
OPEN_FRACTION=${OPEN_FRACTION:-0.5}
STRACE_SECS=${STRACE_SECS:-5}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${BENCH_OUT:-$ROOT/target/bench/sqlite-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/renkei-sqlite-bench.XXXXXX")
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

free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then echo "$port"; return; fi
    done
    exit 1
}

say "seeding scale $SQLITE_SCALE once"
mkdir -p "$WORK/seed"
SEED_URL="sqlite://$WORK/seed/renkei.db"
DATABASE_URL=$SEED_URL RENKEI_DATA_DIR="$WORK/seed" "$BEFORE" migrate >"$OUT/seed.log" 2>&1
DATABASE_URL=$SEED_URL RENKEI_DATA_DIR="$WORK/seed" RUST_LOG=info \
    "$BENCH" seed --scale "$SQLITE_SCALE" --manifest "$OUT/manifest.json" >>"$OUT/seed.log" 2>&1

for name in before after; do
    bin=$BEFORE
    [ "$name" = after ] && bin=$AFTER
    rm -rf "$WORK/$name" && mkdir -p "$WORK/$name"
    cp "$WORK/seed/renkei.db" "$WORK/$name/renkei.db"
    url="sqlite://$WORK/$name/renkei.db"
    port=$(free_port)
    RENKEI_ENV=development RENKEI_BIND="127.0.0.1:$port" RENKEI_DATA_DIR="$WORK/$name" RENKEI_MAIL_TRANSPORT=log \
        RUST_LOG=warn DATABASE_URL=$url "$bin" serve >"$OUT/$name-server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 600); do curl -fsS -o /dev/null "http://127.0.0.1:$port/readyz" 2>/dev/null && break; sleep 0.2; done
    say "$name: $bin on port $port (pid $SERVER_PID)"
    # The strace loop below sets its own duration and open fraction, so they are not common.
    common=(--url "http://127.0.0.1:$port" --manifest "$OUT/manifest.json" --server-pid "$SERVER_PID")
    timed=(--duration-secs "$DURATION_SECS" --open-fraction "$OPEN_FRACTION")
    "$BENCH" load "${common[@]}" "${timed[@]}" --concurrency "$CONCURRENCY" --scenarios note_post,note_get,timeline \
        --label "$name, SQLite" --json-out "$OUT/$name-load.json" | tee "$OUT/$name-load.txt"
    "$BENCH" load "${common[@]}" "${timed[@]}" --concurrency "$UNREAD_CONCURRENCY" --scenarios unread,caseload \
        --label "$name, SQLite" --json-out "$OUT/$name-load64.json" | tee "$OUT/$name-load64.txt"
    say "$name: busy-handler sleeps during a closed note POST loop at 16 connections"
    strace -f -c -e trace=clock_nanosleep -p "$SERVER_PID" -o "$OUT/$name-strace.txt" &
    STRACE=$!
    sleep 1
    "$BENCH" load "${common[@]}" --concurrency 16 --scenarios note_post --duration-secs "$STRACE_SECS" \
        --open-fraction 0 --label "$name under strace" --json-out "$OUT/$name-strace-load.json" \
        >"$OUT/$name-strace-load.txt" 2>&1 || true
    kill -INT "$STRACE" 2>/dev/null || true
    wait "$STRACE" 2>/dev/null || true
    cat "$OUT/$name-strace.txt" | tee -a "$OUT/run.log"
    grep -E '^\| note_post' "$OUT/$name-strace-load.txt" | tee -a "$OUT/run.log" || true
    stop_server
done
say "results in $OUT"
