#!/usr/bin/env bash
# Cluster-mode benchmark (issue 8 §6): SMTP ingest and IMAP operations on
#   - one node on SQLite (the embedded default),
#   - one node on PostgreSQL,
#   - two nodes on one PostgreSQL, the load split between them,
# in one run, printed as a Markdown table with the ratios PostgreSQL/SQLite and
# two nodes/one node beside the absolute figures.
#
#   bench/cluster.sh                  # build (release), run, write bench/results/<date>-cluster.md
#   BENCH_NO_BUILD=1 bench/cluster.sh # use existing target/release binaries
#
# PostgreSQL is Debian's, started by this script with initdb/pg_ctl in a temporary
# directory on a free loopback port, with fsync on (the same durability as SQLite's
# synchronous=FULL), and removed afterwards. All Keel nodes run on this one machine, so
# "two nodes" measures contention on the shared database and the machine's 2 cores, not
# added hardware: read the two-node ratio as the cost of coordination, not as scaling.
#
# Environment: BENCH_USERS=50 BENCH_SMTP_CLIENTS=40 BENCH_SMTP_COUNT=3000 BENCH_SIZE=10240
#   BENCH_IMAP_CLIENTS=40 BENCH_IMAP_COUNT=3000 BENCH_DURATION=60
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
USERS=${BENCH_USERS:-50}
PASSWORD=Bench-pass-1
SMTP_CLIENTS=${BENCH_SMTP_CLIENTS:-40}
SMTP_COUNT=${BENCH_SMTP_COUNT:-3000}
SIZE=${BENCH_SIZE:-10240}
IMAP_CLIENTS=${BENCH_IMAP_CLIENTS:-40}
IMAP_COUNT=${BENCH_IMAP_COUNT:-3000}
DURATION=${BENCH_DURATION:-60}

die() { echo "cluster.sh: error: $*" >&2; exit 1; }
note() { echo "cluster.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (PostgreSQL runs as the postgres user)"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
[ -x "$PG_BIN/initdb" ] || die "PostgreSQL is not installed (apt-get install postgresql)"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    note "building keel and keel-bench (release)"
    cargo build --release -q -p keel -p keel-bench || die "cargo build failed"
fi
KEEL=$ROOT/target/release/keel
BENCH=$ROOT/target/release/keel-bench
[ -x "$KEEL" ] && [ -x "$BENCH" ] || die "missing $KEEL or $BENCH"

WORK=$(mktemp -d /tmp/keel-cluster-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
    done
    if [ -d "$WORK/pg" ]; then
        (cd / && setpriv --reuid=postgres --regid=postgres --clear-groups \
            "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m fast -w stop >/dev/null 2>&1) || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- PostgreSQL -------------------------------------------------------------------------
PG_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/pg" && chown postgres:postgres "$WORK/pg"
pg() { (cd / && setpriv --reuid=postgres --regid=postgres --clear-groups "$@"); }
note "starting PostgreSQL on 127.0.0.1:$PG_PORT (fsync on)"
pg "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust -E UTF8 >"$WORK/pg/initdb.log" 2>&1 ||
    die "initdb failed: $(tail -n 5 "$WORK/pg/initdb.log")"
pg "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w -t 60 \
    -o "-p $PG_PORT -k $WORK/pg -h 127.0.0.1 -c max_connections=400 -c shared_buffers=256MB" \
    start >/dev/null || die "PostgreSQL did not start: $(tail -n 5 "$WORK/pg/server.log")"
psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -q -c "CREATE ROLE keel LOGIN" -c "CREATE DATABASE keel OWNER keel" ||
    die "could not create the keel database"
PG_URL="postgres://keel@127.0.0.1:$PG_PORT/keel"

# --- Keel nodes -------------------------------------------------------------------------
start_node() { # name offset extra-args...
    local name=$1 offset=$2; shift 2
    "$KEEL" --data "$WORK/$name" serve --listen 127.0.0.1 --port-offset "$offset" \
        --hostname mail.example.com "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" &
    PIDS+=($!)
    for _ in $(seq 1 300); do
        grep -qx "Ready." "$WORK/$name.out" 2>/dev/null && return 0
        sleep 0.1
    done
    die "node $name did not get ready: $(tail -n 5 "$WORK/$name.err")"
}
setup_users() { # data-dir
    "$KEEL" --data "$1" smtp set '{"max_connections_per_ip": 0}' >/dev/null
    for svc in smtp imap; do
        "$KEEL" --data "$1" service set "$svc" --max-per-ip 100000 >/dev/null 2>&1 || true
    done
    for i in $(seq 1 "$USERS"); do
        "$KEEL" --data "$1" user add "user$i@example.com" --password "$PASSWORD" >/dev/null ||
            die "user add user$i failed"
    done
}
note "starting node sqlite (offset 38000), node pg-a (39000) and node pg-b (40000)"
start_node sqlite 38000
start_node pg-a 39000 --store "$PG_URL"
start_node pg-b 40000 --store "$PG_URL"
setup_users "$WORK/sqlite"
setup_users "$WORK/pg-a"
sleep 2 # running nodes apply CLI changes within a second

R=$WORK/results
mkdir -p "$R"
# run NAME -- one keel-bench run per "port:clients:count" argument, in parallel; writes
# NAME.json with the summed operations and the longest elapsed time.
run() {
    local name=$1 kind=$2; shift 2
    local i=0 pids=()
    for spec in "$@"; do
        IFS=: read -r port clients count <<<"$spec"
        if [ "$kind" = smtp ]; then
            "$BENCH" --port "$port" -c "$clients" -n "$count" -d "$DURATION" --json \
                smtp --users "$USERS" --size "$SIZE" >"$R/$name.$i.json" &
        else
            "$BENCH" --port "$port" -c "$clients" -n "$count" -d "$DURATION" --json \
                imap --users "$USERS" --password "$PASSWORD" >"$R/$name.$i.json" &
        fi
        pids+=($!)
        i=$((i + 1))
    done
    for p in "${pids[@]}"; do wait "$p" || die "keel-bench $name failed"; done
    python3 - "$R" "$name" <<'EOF'
import glob, json, os, sys
r, name = sys.argv[1:]
parts = [json.load(open(p)) for p in sorted(glob.glob(os.path.join(r, name + ".*.json")))]
ops = sum(p["ops"] for p in parts)
errors = sum(p["errors"] for p in parts)
elapsed = max(p["elapsed_s"] for p in parts)
p50 = max(p["p50_ms"] for p in parts)
p99 = max(p["p99_ms"] for p in parts)
json.dump({"ops": ops, "errors": errors, "ops_per_s": ops / elapsed if elapsed else 0,
           "p50_ms": p50, "p99_ms": p99}, open(os.path.join(r, name + ".json"), "w"))
EOF
    note "$name: $(cat "$R/$name.json")"
}
half() { echo $(($1 / 2)); }
S_SQL=$((25 + 38000)); S_A=$((25 + 39000)); S_B=$((25 + 40000))
I_SQL=$((143 + 38000)); I_A=$((143 + 39000)); I_B=$((143 + 40000))
run smtp-sqlite smtp "$S_SQL:$SMTP_CLIENTS:$SMTP_COUNT"
run smtp-pg1 smtp "$S_A:$SMTP_CLIENTS:$SMTP_COUNT"
run smtp-pg2 smtp "$S_A:$(half "$SMTP_CLIENTS"):$(half "$SMTP_COUNT")" \
    "$S_B:$(half "$SMTP_CLIENTS"):$(half "$SMTP_COUNT")"
run imap-sqlite imap "$I_SQL:$IMAP_CLIENTS:$IMAP_COUNT"
run imap-pg1 imap "$I_A:$IMAP_CLIENTS:$IMAP_COUNT"
run imap-pg2 imap "$I_A:$(half "$IMAP_CLIENTS"):$(half "$IMAP_COUNT")" \
    "$I_B:$(half "$IMAP_CLIENTS"):$(half "$IMAP_COUNT")"

mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/$(date +%Y-%m-%d)-cluster.md
python3 - "$R" "$OUT" "$("$PG_BIN/postgres" --version)" "$SMTP_CLIENTS" "$SMTP_COUNT" \
    "$SIZE" "$IMAP_CLIENTS" "$IMAP_COUNT" "$(nproc)" <<'EOF'
import json, os, sys, datetime
r, out, pgv, sc, sn, size, ic, inn, cpus = sys.argv[1:]
d = lambda n: json.load(open(os.path.join(r, n + ".json")))
rows = []
for work, pre, what in [(f"SMTP ingest, {sc} clients × {int(size)//1024} KB, {sn} msgs, local delivery", "smtp", "msgs/s"),
                        (f"IMAP FETCH/STORE/SEARCH/APPEND mix, {ic} clients, {inn} ops", "imap", "ops/s")]:
    s, p1, p2 = d(pre + "-sqlite"), d(pre + "-pg1"), d(pre + "-pg2")
    rows.append(f"| {work} | {what} | {s['ops_per_s']:.1f} | {p1['ops_per_s']:.1f} | {p2['ops_per_s']:.1f} "
                f"| **{p1['ops_per_s']/s['ops_per_s']:.2f}** | **{p2['ops_per_s']/p1['ops_per_s']:.2f}** |")
    rows.append(f"| | p50 / p99 ms | {s['p50_ms']:.1f} / {s['p99_ms']:.1f} | {p1['p50_ms']:.1f} / {p1['p99_ms']:.1f} "
                f"| {p2['p50_ms']:.1f} / {p2['p99_ms']:.1f} | | |")
    rows.append(f"| | errors | {s['errors']} | {p1['errors']} | {p2['errors']} | | |")
lines = [f"# Keel cluster mode — {datetime.datetime.now():%Y-%m-%d %H:%M}", "",
         f"Same run, loopback, {cpus} CPUs, {pgv} with fsync on, started by `bench/cluster.sh`. "
         "All nodes share this one machine: two nodes measure coordination cost on one "
         "database, not added hardware.", "",
         "| Workload | Metric | 1 node SQLite | 1 node PostgreSQL | 2 nodes PostgreSQL | PG/SQLite | 2 nodes/1 node |",
         "|---|---|---:|---:|---:|---:|---:|"] + rows + [""]
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
EOF
note "written to $OUT"
