#!/usr/bin/env bash
# The city benchmark, end to end, in one command:
#
#     benches/city.sh
#
# 1. builds the release binary;
# 2. PostgreSQL: starts a throwaway cluster from this machine's initdb/pg_ctl on a free port,
#    seeds a synthetic city (`renkei-bench seed --scale $SCALE`), serves it and drives it
#    (`renkei-bench load`), then runs `renkei-bench ceiling` when it is built;
# 3. SQLite: the same at a smaller scale ($SQLITE_SCALE);
# 4. the peer: when the Helios FHIR Server (`hfs`) is found, the note_post/note_get load against
#    it, next to the same scenarios against our SQLite server.
#
# Everything lands in target/bench/<UTC timestamp>/ (JSON, logs, tables) and a markdown table of
# all results is printed at the end. Knobs (environment):
#   SCALE=1              city scale for PostgreSQL
#   SQLITE_SCALE=0.05    city scale for SQLite
#   DURATION_SECS=10     length of each closed and each open loop
#   CONCURRENCY=1,16,64  connection counts
#   OPEN_FRACTION=0.5    open-loop rate as a share of the closed-loop throughput
#   HFS_BIN=path         the peer's binary (else /work/peer/bin/hfs, else `hfs` on PATH)
#   BENCH_OUT=dir        output folder instead of target/bench/<timestamp>
#   CARGO_PROFILE=dev    a quick check of the script itself (numbers are then meaningless)
#   SEED_COMMAND=cmd     development only: run this instead of `renkei-bench seed`; it gets
#                        DATABASE_URL, MANIFEST, SCALE and RENKEI_BIN in its environment
# Needs: cargo, curl, PostgreSQL server binaries (initdb, pg_ctl); run as root or as a
# user who may run them.
set -euo pipefail

SCALE=${SCALE:-1}
SQLITE_SCALE=${SQLITE_SCALE:-0.05}
DURATION_SECS=${DURATION_SECS:-10}
CONCURRENCY=${CONCURRENCY:-1,16,64}
# The open loop runs at this share of the closed loop's throughput: half of saturation, the
# headroom a service is run with.
OPEN_FRACTION=${OPEN_FRACTION:-0.5}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-$ROOT/target/bench/$STAMP}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
RESULTS="$OUT/results.md"
: >"$RESULTS"

say() { printf '\n==> %s\n' "$*" | tee -a "$OUT/run.log"; }
die() { printf 'city.sh: %s\n' "$*" | tee -a "$OUT/run.log" >&2; exit 1; }

command -v curl >/dev/null || die "curl is needed to wait for the servers"

# A scratch folder the postgres user can enter (mktemp makes 0700 folders).
WORK=$(mktemp -d "${TMPDIR:-/tmp}/renkei-bench.XXXXXX")
chmod 755 "$WORK"

SERVER_PID=""
PG_CTL=""
PGDATA=""
AS_PG=()

stop_server() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}

cleanup() {
    stop_server
    if [ -n "$PGDATA" ] && [ -d "$PGDATA" ]; then
        "${AS_PG[@]}" "$PG_CTL" -D "$PGDATA" -m fast stop >/dev/null 2>&1 || true
        cp "$WORK/pg/postgres.log" "$OUT/postgres.log" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A free TCP port on the loopback: one nobody answers on.
free_port() {
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 40000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    die "no free port found"
}

wait_for() { # url seconds pid
    local url=$1 limit=$2 pid=$3
    for _ in $(seq 1 $((limit * 5))); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then return 0; fi
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.2
    done
    return 1
}

# ---------------------------------------------------------------------------------------------
PROFILE=${CARGO_PROFILE:-release}
say "building the $PROFILE binary"
# Checkouts of this crate sharing one CARGO_TARGET_DIR overwrite each other's library and
# binary (same names, same hashes): rebuild this tree's crate so the binary is this source.
if [ -n "${CARGO_TARGET_DIR:-}" ]; then touch "$ROOT/src/lib.rs" "$ROOT/src/main.rs"; fi
cargo build --profile "$PROFILE" -p renkei -p renkei-bench
[ "$PROFILE" = dev ] && PROFILE_DIR=debug || PROFILE_DIR=$PROFILE
# A private copy: a shared target folder may be rebuilt by someone else while this runs.
BIN="$OUT/renkei"
cp "${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE_DIR/renkei" "$BIN"
BENCH="$OUT/renkei-bench"
cp "${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE_DIR/renkei-bench" "$BENCH"
{
    echo "# City benchmark $STAMP"
    echo
    echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), $(nproc) cores, $(uname -sr);" \
        "profile $PROFILE, SCALE=$SCALE SQLITE_SCALE=$SQLITE_SCALE DURATION_SECS=$DURATION_SECS CONCURRENCY=$CONCURRENCY"
} >>"$RESULTS"

seed() { # name database_url scale manifest
    local name=$1 url=$2 scale=$3 manifest=$4 log="$OUT/$1-seed.log"
    say "$name: seeding scale $scale"
    if [ -n "${SEED_COMMAND:-}" ]; then
        DATABASE_URL=$url MANIFEST=$manifest SCALE=$scale RENKEI_BIN=$BIN RENKEI_DATA_DIR="$WORK/$name-data" \
            bash -c "$SEED_COMMAND" >"$log" 2>&1 || { cat "$log"; die "$name: SEED_COMMAND failed"; }
        return 0
    fi
    DATABASE_URL=$url RENKEI_DATA_DIR="$WORK/$name-data" "$BIN" migrate >>"$log" 2>&1
    DATABASE_URL=$url RENKEI_DATA_DIR="$WORK/$name-data" RUST_LOG=${RUST_LOG:-info} \
        "$BENCH" seed --scale "$scale" --manifest "$manifest" >>"$log" 2>&1 ||
        { cat "$log"; die "$name: seeding failed (log: $log)"; }
    [ -f "$manifest" ] || die "$name: the seeder wrote no manifest at $manifest"
}

serve() { # name database_url  → SERVER_PID, SERVER_URL
    local name=$1 url=$2 port
    port=$(free_port)
    mkdir -p "$WORK/$name-data"
    RENKEI_ENV=development RENKEI_BIND="127.0.0.1:$port" RENKEI_DATA_DIR="$WORK/$name-data" \
        RENKEI_MAIL_TRANSPORT=log RUST_LOG=warn DATABASE_URL=$url \
        "$BIN" serve >"$OUT/$name-server.log" 2>&1 &
    SERVER_PID=$!
    SERVER_URL="http://127.0.0.1:$port"
    wait_for "$SERVER_URL/readyz" 120 "$SERVER_PID" || { cat "$OUT/$name-server.log"; die "$name: the server did not become ready"; }
    say "$name: serving on $SERVER_URL (pid $SERVER_PID)"
}

load() { # name label [extra args...]
    local name=$1 label=$2
    shift 2
    say "$name: load ($label)"
    "$BENCH" load --url "$SERVER_URL" --concurrency "$CONCURRENCY" --duration-secs "$DURATION_SECS" \
        --server-pid "$SERVER_PID" --open-fraction "$OPEN_FRACTION" --json-out "$OUT/$name-load.json" \
        --label "$label" "$@" | tee "$OUT/$name-load.txt"
    { echo; echo "## $label"; echo; grep -E '^\||^server pid' "$OUT/$name-load.txt"; } >>"$RESULTS"
}

# ---------------------------------------------------------------------------------------------
# PostgreSQL.

find_pg() {
    local p
    if p=$(command -v "$1" 2>/dev/null); then echo "$p"; return; fi
    p=$(ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1)
    [ -n "$p" ] && echo "$p"
}

INITDB=$(find_pg initdb || true)
PG_CTL=$(find_pg pg_ctl || true)
if [ -z "$INITDB" ] || [ -z "$PG_CTL" ]; then
    say "PostgreSQL server binaries (initdb, pg_ctl) not found: the PostgreSQL half is skipped"
    echo "PostgreSQL: initdb/pg_ctl not found, skipped." >>"$RESULTS"
else
    PG_BIN=$(dirname "$PG_CTL")
    if [ "$(id -u)" = 0 ]; then
        # initdb refuses to run as root.
        if command -v runuser >/dev/null; then AS_PG=(runuser -u postgres --); else AS_PG=(sudo -u postgres); fi
        id postgres >/dev/null 2>&1 || die "running as root but there is no postgres user"
    fi
    mkdir -p "$WORK/pg"
    [ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
    PGDATA="$WORK/pg/data"
    PGPORT=$(free_port)
    say "postgres: a throwaway cluster on 127.0.0.1:$PGPORT ($PG_BIN)"
    "${AS_PG[@]}" "$INITDB" -D "$PGDATA" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$OUT/initdb.log" 2>&1 ||
        { cat "$OUT/initdb.log"; die "initdb failed"; }
    # Defaults apart from room for connections, a realistic buffer cache and WAL room for the bulk
    # load; fsync and synchronous_commit stay on.
    "${AS_PG[@]}" "$PG_CTL" -D "$PGDATA" -l "$WORK/pg/postgres.log" -w -t 60 \
        -o "-p $PGPORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c max_connections=200 -c shared_buffers=1GB -c max_wal_size=8GB -c checkpoint_timeout=30min ${PG_OPTIONS:-}" \
        start >/dev/null || { cat "$WORK/pg/postgres.log"; die "pg_ctl start failed"; }
    # The cluster is ours alone: without createdb/psql at hand, its `postgres` database will do.
    PG_DB=postgres
    if [ -x "$PG_BIN/createdb" ]; then
        "$PG_BIN/createdb" -h 127.0.0.1 -p "$PGPORT" -U postgres renkei && PG_DB=renkei
    elif command -v psql >/dev/null; then
        psql -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d postgres -c "CREATE DATABASE renkei" && PG_DB=renkei
    fi
    PG_URL="postgres://postgres@127.0.0.1:$PGPORT/$PG_DB"
    if seed postgres "$PG_URL" "$SCALE" "$OUT/postgres-manifest.json"; then
        serve postgres "$PG_URL"
        load postgres "PostgreSQL, scale $SCALE" --manifest "$OUT/postgres-manifest.json"
        # The ceiling: capture the SQL the server issues for note POSTs and timeline reads (one
        # request at a time, every statement logged), then replay it with pgbench.
        PSQL=$(find_pg psql || true)
        PGBENCH=$(find_pg pgbench || true)
        if [ -z "$PSQL" ] || [ -z "$PGBENCH" ]; then
            say "postgres: psql or pgbench not found: the SQL ceiling is skipped"
            echo "SQL ceiling: psql or pgbench not found, skipped." >>"$RESULTS"
            stop_server
        else
            say "postgres: capturing the server's SQL for the ceiling"
            PGLOG="$WORK/pg/postgres.log"
            "$PSQL" -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d "$PG_DB" \
                -c "ALTER SYSTEM SET log_statement = 'all'" -c "SELECT pg_reload_conf()" >/dev/null
            OFFSET=$(stat -c %s "$PGLOG")
            "$BENCH" load --url "$SERVER_URL" --manifest "$OUT/postgres-manifest.json" --concurrency 1 \
                --duration-secs 2 --scenarios note_post,timeline --json-out "$OUT/capture-load.json" \
                >"$OUT/capture-load.txt" 2>&1
            "$PSQL" -q -h 127.0.0.1 -p "$PGPORT" -U postgres -d "$PG_DB" \
                -c "ALTER SYSTEM RESET log_statement" -c "SELECT pg_reload_conf()" >/dev/null
            stop_server
            say "postgres: SQL ceiling (renkei-bench ceiling, pgbench)"
            "$BENCH" ceiling --log "$PGLOG" --from-offset "$OFFSET" --database-url "$PG_URL" \
                --pgbench "$PGBENCH" --concurrency "$CONCURRENCY" --duration-secs "$DURATION_SECS" \
                --scripts-dir "$OUT/ceiling-scripts" --json-out "$OUT/ceiling.json" \
                --load-json "$OUT/postgres-load.json" >"$OUT/ceiling.txt" 2>&1 ||
                { cat "$OUT/ceiling.txt"; die "renkei-bench ceiling failed (log: $OUT/ceiling.txt)"; }
            { echo; echo "## SQL ceiling (pgbench, the server's own statements)"; echo; cat "$OUT/ceiling.txt"; } >>"$RESULTS"
            cat "$OUT/ceiling.txt"
        fi
    fi
fi

# ---------------------------------------------------------------------------------------------
# SQLite.

SQLITE_URL="sqlite://$WORK/sqlite/renkei.db"
mkdir -p "$WORK/sqlite"
SQLITE_SERVED=""
if seed sqlite "$SQLITE_URL" "$SQLITE_SCALE" "$OUT/sqlite-manifest.json"; then
    serve sqlite "$SQLITE_URL"
    load sqlite "SQLite, scale $SQLITE_SCALE" --manifest "$OUT/sqlite-manifest.json"
    stop_server
    SQLITE_SERVED=1
fi

# ---------------------------------------------------------------------------------------------
# The peer: Helios FHIR Server, SQLite storage, authentication off (its default), on its own.

HFS=${HFS_BIN:-}
[ -z "$HFS" ] && [ -x /work/peer/bin/hfs ] && HFS=/work/peer/bin/hfs
[ -z "$HFS" ] && HFS=$(command -v hfs 2>/dev/null || true)
if [ -z "$HFS" ] || [ ! -x "$HFS" ]; then
    say "peer: no hfs binary (HFS_BIN, /work/peer/bin/hfs or PATH): the peer comparison was skipped"
    { echo; echo "Peer (Helios FHIR Server): no hfs binary found, skipped."; } >>"$RESULTS"
else
    port=$(free_port)
    mkdir -p "$WORK/hfs"
    say "peer: $HFS on 127.0.0.1:$port ($("$HFS" --version 2>/dev/null || echo 'version unknown'))"
    (cd "$WORK/hfs" && HFS_AUTH_ENABLED=false HFS_DATABASE_URL="$WORK/hfs/fhir.db" \
        exec "$HFS" --host 127.0.0.1 --port "$port" --log-level warn) >"$OUT/hfs-server.log" 2>&1 &
    SERVER_PID=$!
    SERVER_URL="http://127.0.0.1:$port"
    wait_for "$SERVER_URL/metadata" 120 "$SERVER_PID" || { cat "$OUT/hfs-server.log"; die "hfs did not become ready"; }
    load hfs "Helios FHIR Server (SQLite)" --target fhir --scenarios note_post,note_get
    stop_server
    if [ -n "$SQLITE_SERVED" ]; then
        {
            echo
            echo "## note_post / note_get: Renkei (SQLite) and Helios FHIR Server (SQLite)"
            echo
            echo "| server | scenario | c | req/s (closed) | open rate | p50 ms | p95 ms | p99 ms | max ms | errors |"
            echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
            grep -E '^\| note_(post|get) ' "$OUT/sqlite-load.txt" | sed 's/^|/| renkei |/'
            grep -E '^\| note_(post|get) ' "$OUT/hfs-load.txt" | sed 's/^|/| hfs |/'
        } >>"$RESULTS"
    fi
fi

say "results ($OUT)"
cat "$RESULTS"
