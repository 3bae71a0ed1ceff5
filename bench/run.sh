#!/usr/bin/env bash
# Keel against Postfix + Dovecot in one run (issue 7 §2, §4; issue 3 §9; issue 4 §8).
#
#   bench/run.sh                 # build (release), run everything, write bench/results/<date>.md
#   BENCH_QUICK=1 bench/run.sh   # small sizes: finishes in a couple of minutes
#
# It builds `keel` and `keel-bench` in release mode, starts Keel on loopback with a port
# offset in a temporary data directory, creates user1..userN@example.com in Keel and in
# the peers (bench/peers.sh), runs the same workloads against both, and prints a Markdown
# table: each figure as the Keel/peer ratio with both absolute values beside it. Only
# ratios from the same run mean anything: these machines are noisy.
#
# Workloads:
#   smtp    N clients send 10 KB messages to local users: the throughput counts messages
#           until the last one is in a mailbox (Keel delivers before its 250; Postfix
#           queues, then delivers over LMTP to Dovecot), plus p50/p95/p99 of MAIL..250.
#   pop3    clients RETR random messages of their own maildrop.
#   imap    100 clients mixing FETCH/STORE/SEARCH/APPEND (when Keel's IMAP is running).
#   memory  Keel's idle RSS; RSS per idle IMAP connection at BENCH_IDLE_CONNS connections
#           (Keel: its one process; Dovecot: all its processes, RSS and PSS).
#   growth  one mailbox grown to each of BENCH_GROWTH_SIZES messages: SELECT, UID FETCH
#           1:* (FLAGS), SEARCH HEADER and SEARCH TEXT at each size; memory per idle
#           connection at each of BENCH_CONN_SIZES connections (Dovecot, one process per
#           connection, only up to BENCH_PEER_MAX_CONNS). Written as a Markdown table and
#           as SVG charts beside the results file (bench/growth_report.py).
#
# Environment (defaults; BENCH_QUICK=1 lowers the counts):
#   BENCH_USERS=50 BENCH_SMTP_CLIENTS=50 BENCH_SMTP_COUNT=5000 BENCH_SIZE=10240
#   BENCH_POP3_COUNT=20000 BENCH_IMAP_CLIENTS=100 BENCH_IMAP_COUNT=20000
#   BENCH_IDLE_CONNS=1000 BENCH_DURATION=60 (cap per workload, seconds)
#   BENCH_GROWTH_SIZES=1000,10000,100000 BENCH_CONN_SIZES=10,100,1000,10000
#   BENCH_PEER_MAX_CONNS=1000 BENCH_GROWTH=1 (0 skips the growth workloads)
#   BENCH_ONLY=smtp,pop3,imap,growth (a subset runs only those workloads)
#   BENCH_PORT_OFFSET=31000 BENCH_NO_BUILD=1 (use existing target/release binaries)
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
QUICK=${BENCH_QUICK:-0}
q() { if [ "$QUICK" = 1 ]; then echo "$2"; else echo "$1"; fi; }
USERS=${BENCH_USERS:-50}
PASSWORD=${BENCH_PASSWORD:-Bench-pass-1}
SMTP_CLIENTS=${BENCH_SMTP_CLIENTS:-50}
SMTP_COUNT=${BENCH_SMTP_COUNT:-$(q 5000 1000)}
SIZE=${BENCH_SIZE:-10240}
POP3_COUNT=${BENCH_POP3_COUNT:-$(q 20000 3000)}
IMAP_CLIENTS=${BENCH_IMAP_CLIENTS:-100}
IMAP_COUNT=${BENCH_IMAP_COUNT:-$(q 20000 3000)}
IDLE_CONNS=${BENCH_IDLE_CONNS:-$(q 1000 1000)}
DURATION=${BENCH_DURATION:-$(q 60 30)}
GROWTH=${BENCH_GROWTH:-1}
ONLY=${BENCH_ONLY:-}
# True when workload $1 is to run (BENCH_ONLY unset, or it names $1).
want() { [ -z "$ONLY" ] || [[ " ${ONLY//,/ } " == *" $1 "* ]]; }
if ! want growth; then GROWTH=0; fi
GROWTH_SIZES=${BENCH_GROWTH_SIZES:-$(q 1000,10000,100000 1000,5000)}
CONN_SIZES=${BENCH_CONN_SIZES:-$(q 10,100,1000,10000 10,100,1000)}
PEER_MAX_CONNS=${BENCH_PEER_MAX_CONNS:-1000}
MAX_CONNS=$IDLE_CONNS
if [ "$GROWTH" = 1 ]; then
    for n in ${CONN_SIZES//,/ }; do if [ "$n" -gt "$MAX_CONNS" ]; then MAX_CONNS=$n; fi; done
fi
OFFSET=${BENCH_PORT_OFFSET:-31000}
export BENCH_USERS=$USERS BENCH_PASSWORD=$PASSWORD
# shellcheck disable=SC2034
PEERS=$ROOT/bench/peers.sh

die() { echo "run.sh: error: $*" >&2; exit 1; }
note() { echo "run.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (the peers need it)"
command -v python3 >/dev/null || die "python3 is needed"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
# Per process: keel-bench holds one descriptor per connection, so does the server.
[ "$(ulimit -n)" -gt $((MAX_CONNS + 500)) ] || die "open-file limit $(ulimit -n) too low for $MAX_CONNS connections"

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    note "building keel and keel-bench (release)"
    cargo build --release -q -p keel -p keel-bench || die "cargo build failed"
fi
KEEL=$ROOT/target/release/keel
BENCH=$ROOT/target/release/keel-bench
[ -x "$KEEL" ] && [ -x "$BENCH" ] || die "missing $KEEL or $BENCH"

WORK=$(mktemp -d /tmp/keel-bench-run.XXXXXX)
KEEL_PID=
cleanup() {
    if [ -n "$KEEL_PID" ] && kill -0 "$KEEL_PID" 2>/dev/null; then
        kill -TERM "$KEEL_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$KEEL_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$KEEL_PID" 2>/dev/null || true
    fi
    "$PEERS" stop >/dev/null 2>&1 || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# --- Keel -------------------------------------------------------------------------------
DATA=$WORK/keel-data
note "starting Keel (data $DATA, port offset $OFFSET)"
"$KEEL" --data "$DATA" serve --listen 127.0.0.1 --port-offset "$OFFSET" \
    --hostname mail.example.com > "$WORK/keel.out" 2> "$WORK/keel.err" &
KEEL_PID=$!
for _ in $(seq 1 300); do
    grep -qx "Ready." "$WORK/keel.out" 2>/dev/null && break
    kill -0 "$KEEL_PID" 2>/dev/null || { cat "$WORK/keel.err" >&2; die "keel serve exited"; }
    sleep 0.1
done
grep -qx "Ready." "$WORK/keel.out" || die "keel serve did not get ready; see $WORK/keel.err"
K_SMTP=$((25 + OFFSET)); K_POP3=$((110 + OFFSET)); K_IMAP=$((143 + OFFSET))
keelc() { "$KEEL" --data "$DATA" "$@"; }
keelc smtp set '{"max_connections_per_ip": 0}' >/dev/null || die "keel smtp set failed"
for svc in smtp pop3 imap; do
    keelc service set "$svc" --max-per-ip 100000 >/dev/null 2>&1 || true
done
note "creating user1..user$USERS in Keel"
for i in $(seq 1 "$USERS"); do
    keelc user add "user$i@example.com" --password "$PASSWORD" >/dev/null ||
        die "keel user add user$i failed"
done
sleep 1.5 # a running server applies CLI changes within a second
IMAP_OK=0
if keelc status 2>/dev/null | grep -E '^\s*imap\s' | grep -q ' running '; then IMAP_OK=1; fi
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
KEEL_IDLE_RSS=$(rss_kb "$KEEL_PID")

# --- Peers ------------------------------------------------------------------------------
"$PEERS" stop >/dev/null 2>&1 || true
"$PEERS" start || die "peers did not start"
# shellcheck disable=SC1091
. "${BENCH_PEERS_DIR:-/tmp/keel-bench-peers}/env"

# --- Workloads --------------------------------------------------------------------------
R=$WORK/results
mkdir -p "$R"
bench() { # name port args...
    local name=$1 port=$2; shift 2
    note "$name"
    "$BENCH" --port "$port" --duration "$DURATION" --json --label "$name" "$@" > "$R/$name.json" ||
        die "keel-bench $name failed"
}
# Total messages in user1..N's maildrops (POP3 STAT).
count_all() { # port
    python3 - "$1" "$USERS" "$PASSWORD" <<'EOF'
import poplib, sys
port, users, pw = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
total = 0
for i in range(1, users + 1):
    try:
        p = poplib.POP3("127.0.0.1", port, timeout=30)
        p.user(f"user{i}"); p.pass_(pw)
        total += p.stat()[0]
        p.quit()
    except Exception as e:
        print(f"user{i}: {e}", file=sys.stderr)
print(total)
EOF
}
# Messages delivered to the peers' Maildirs (cheap to poll: files in */new/).
count_peer_files() { find "$PEER_MAIL_DIR" -path '*/new/*' -type f 2>/dev/null | wc -l; }
# SMTP send, then wait until every message is in a mailbox; records the delivery rate.
# Keel stores local mail before its 250, so its delivery time is the send time (checked:
# the maildrops must hold every message, else it polls like for the peer). The peer is
# polled every 50 ms by counting Maildir files.
smtp_run() { # name smtp_port pop3_port kind
    local t0 t1 n sent
    t0=$(date +%s.%N)
    bench "$1" "$2" -c "$SMTP_CLIENTS" -n "$SMTP_COUNT" smtp --users "$USERS" --size "$SIZE"
    t1=$(date +%s.%N)
    sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ops"])' "$R/$1.json")
    if [ "$4" = keel ]; then
        n=$(count_all "$3")
        if [ "$n" -lt "$sent" ]; then
            for _ in $(seq 1 $((DURATION * 2))); do
                n=$(count_all "$3"); [ "$n" -ge "$sent" ] && break; sleep 0.5
            done
            t1=$(date +%s.%N)
        fi
    else
        for _ in $(seq 1 $((DURATION * 20))); do
            n=$(count_peer_files); [ "$n" -ge "$sent" ] && break; sleep 0.05
        done
        t1=$(date +%s.%N)
    fi
    python3 - "$R/$1.json" "$t0" "$t1" "$n" <<'EOF'
import json, sys
p, t0, t1, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
d = json.load(open(p)); d["delivered"] = n; d["delivered_per_s"] = n / (t1 - t0)
json.dump(d, open(p, "w"))
EOF
}
if want smtp; then
    smtp_run smtp-keel "$K_SMTP" "$K_POP3" keel
    smtp_run smtp-peer "$PEER_SMTP_PORT" "$PEER_POP3_PORT" peer
fi
POP3_CLIENTS=$(( USERS < 50 ? USERS : 50 ))
if want pop3; then
    bench pop3-keel "$K_POP3" -c "$POP3_CLIENTS" -n "$POP3_COUNT" pop3 --users "$USERS" --password "$PASSWORD"
    bench pop3-peer "$PEER_POP3_PORT" -c "$POP3_CLIENTS" -n "$POP3_COUNT" pop3 --users "$USERS" --password "$PASSWORD"
fi
if [ "$IMAP_OK" = 1 ]; then
    if want imap; then
        bench imap-keel "$K_IMAP" -c "$IMAP_CLIENTS" -n "$IMAP_COUNT" imap --users "$USERS" --password "$PASSWORD"
        bench imap-peer "$PEER_IMAP_PORT" -c "$IMAP_CLIENTS" -n "$IMAP_COUNT" imap --users "$USERS" --password "$PASSWORD"
        bench idle-keel "$K_IMAP" -c 100 imap --users "$USERS" --password "$PASSWORD" \
            --idle-hold "$IDLE_CONNS" --hold-secs 3 --rss-pid "$KEEL_PID"
        bench idle-peer "$PEER_IMAP_PORT" -c 100 imap --users "$USERS" --password "$PASSWORD" \
            --idle-hold "$IDLE_CONNS" --hold-secs 3 --rss-match dovecot
    fi
    if [ "$GROWTH" = 1 ]; then
        # Bounded by the sizes; `timeout` guards against a server that stops answering.
        growth() { # name port
            note "$1 (sizes $GROWTH_SIZES)"
            timeout 7200 "$BENCH" --port "$2" growth --user user1 --password "$PASSWORD" \
                --sizes "$GROWTH_SIZES" --reset > "$R/$1.json" || die "keel-bench $1 failed"
        }
        for n in ${CONN_SIZES//,/ }; do
            bench "conns-keel-$n" "$K_IMAP" -c 100 imap --users "$USERS" --password "$PASSWORD" \
                --idle-hold "$n" --hold-secs 3 --rss-pid "$KEEL_PID"
            if [ "$n" -le "$PEER_MAX_CONNS" ]; then
                bench "conns-peer-$n" "$PEER_IMAP_PORT" -c 100 imap --users "$USERS" \
                    --password "$PASSWORD" --idle-hold "$n" --hold-secs 3 --rss-match dovecot
            fi
        done
        # After the connection runs: a 100k mailbox leaves the allocator with freed pages
        # that would blur the per-connection RSS differences.
        growth growth-keel "$K_IMAP"
        growth growth-peer "$PEER_IMAP_PORT"
    fi
else
    note "IMAP not available in this build: skipping the IMAP workloads"
fi
KEEL_AFTER_RSS=$(rss_kb "$KEEL_PID")

# --- Report -----------------------------------------------------------------------------
mkdir -p "$ROOT/bench/results"
OUT=$ROOT/bench/results/$(date +%Y-%m-%d)${ONLY:+-${ONLY//,/-}}.md
python3 - "$R" "$OUT" "$IMAP_OK" "$KEEL_IDLE_RSS" "$KEEL_AFTER_RSS" "$IDLE_CONNS" \
    "$SMTP_CLIENTS" "$SMTP_COUNT" "$SIZE" "$POP3_COUNT" "$IMAP_CLIENTS" "$IMAP_COUNT" \
    "$(postconf -c "${BENCH_PEERS_DIR:-/tmp/keel-bench-peers}/postfix/etc" -h mail_version 2>/dev/null || echo '?')" \
    "$(dovecot --version | cut -d' ' -f1)" "$(nproc)" <<'EOF'
import json, os, sys, datetime
(r, out, imap_ok, idle_rss, after_rss, idle_conns, smtp_c, smtp_n, size, pop_n,
 imap_c, imap_n, pf, dc, cpus) = sys.argv[1:]
def load(n):
    p = os.path.join(r, n + ".json")
    return json.load(open(p)) if os.path.exists(p) else None
rows = []
def row(work, metric, k, p, unit, better):
    ratio = (k / p) if p else float("nan")
    rows.append(f"| {work} | {metric} ({better} is better) | **{ratio:.2f}** | {k:.6g} {unit} | {p:.6g} {unit} |")
def pair(work, name, fields):
    k, p = load(name + "-keel"), load(name + "-peer")
    if not k or not p:
        return
    for key, metric, unit, better in fields:
        row(work, metric, k[key], p[key], unit, better)
    errs = f"{k['errors']} / {p['errors']}"
    rows.append(f"| {work} | errors (Keel / peer) | | {k['errors']} | {p['errors']} |")
lat = [("p50_ms", "p50 latency", "ms", "lower"), ("p95_ms", "p95 latency", "ms", "lower"),
       ("p99_ms", "p99 latency", "ms", "lower")]
pair(f"SMTP durable accept + local delivery, {smtp_c} clients × {int(size)//1024} KB, {smtp_n} msgs",
     "smtp", [("delivered_per_s", "delivered msgs/s", "msg/s", "higher"),
              ("ops_per_s", "accepted msgs/s (250)", "msg/s", "higher")] + lat)
pair(f"POP3 RETR, {pop_n} ops", "pop3", [("ops_per_s", "RETR/s", "op/s", "higher")] + lat)
if imap_ok == "1":
    pair(f"IMAP mixed FETCH/STORE/SEARCH/APPEND, {imap_c} clients", "imap",
         [("ops_per_s", "ops/s", "op/s", "higher")] + lat)
    pair(f"IMAP IDLE, {idle_conns} connections", "idle",
         [("rss_per_conn_kb", "RSS per idle connection", "kB", "lower"),
          ("pss_per_conn_kb", "PSS per idle connection", "kB", "lower")])
lines = [f"# Keel vs Postfix {pf} + Dovecot {dc} — {datetime.datetime.now():%Y-%m-%d %H:%M}", "",
         f"Same run, loopback, {cpus} CPUs. Ratio = Keel / peer. Peer = Postfix→LMTP→Dovecot "
         "for SMTP, Dovecot for POP3/IMAP. Produced by `bench/run.sh`.", "",
         "| Workload | Metric | Keel/peer | Keel | Peer |", "|---|---|---:|---:|---:|"] + rows
lines += ["", f"Keel RSS idle after start: {int(idle_rss)} kB; after the workloads: {int(after_rss)} kB.", ""]
if imap_ok != "1":
    lines += ["IMAP not available in this build: IMAP workloads skipped.", ""]
text = "\n".join(lines)
open(out, "w").write(text + "\n")
print(text)
EOF
if [ "$GROWTH" = 1 ] && [ "$IMAP_OK" = 1 ]; then
    python3 "$ROOT/bench/growth_report.py" "$R" "$ROOT/bench/results/$(date +%Y-%m-%d)-growth" | tee -a "$OUT"
fi
note "written to $OUT"
