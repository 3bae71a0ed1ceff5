#!/usr/bin/env bash
# Outbound throughput to a local sink (issue 3 §9): N messages submitted to Keel for a
# remote domain that its relay-host setting sends to Postfix's smtp-sink on loopback,
# measured until the sink has received them all; then the same through a private Postfix
# instance (Debian's, default queue and delivery settings) relaying to the same kind of
# sink. Prints a Markdown table: delivered msgs/s for both and the Keel/Postfix ratio,
# accepted msgs/s, and p50/p95/p99 of the submission latency (MAIL to the 250 after the
# data, measured by keel-bench).
#
#   bench/outbound.sh                    # 2000 messages, 10 KB, 20 clients
#   BENCH_OUT_COUNT=500 bench/outbound.sh
#
# Environment (defaults in brackets):
#   BENCH_OUT_COUNT     [2000]   messages per server
#   BENCH_OUT_CLIENTS   [20]     concurrent SMTP clients (keel-bench -c)
#   BENCH_OUT_SIZE      [10240]  message size in bytes
#   BENCH_OUT_RCPTS     [50]     distinct recipients user1..N@sink.test
#   BENCH_OUT_SUBMIT    [relay]  how Keel gets the mail: `relay` = port 25 from an IP
#                                group allowed to relay (what Postfix's mynetworks does
#                                for its side), `auth` = port 587, STARTTLS and AUTH PLAIN
#                                (Keel then also DKIM-signs each message)
#   BENCH_OUT_TIMEOUT   [300]    seconds to wait for the sink to get every message
#   BENCH_PORT_OFFSET   [33000]  Keel's port offset (SMTP on 25+offset)
#   BENCH_SINK_PORT     [43025]  smtp-sink
#   BENCH_OUT_PF_PORT   [43526]  the Postfix instance's smtpd
#   BENCH_NO_BUILD      [0]      1 = use the existing target/release binaries
#   BENCH_BIN_DIR       [target/release]  where keel and keel-bench are (with NO_BUILD)
#   BENCH_KEEP          [0]      1 = keep the work directory (logs) after the run
#
# Runs as root (Postfix's master and smtp-sink start as root and drop privileges).
# Durability is the same on both sides: Keel and Postfix each make the queued message
# durable (fsync) before answering 250. Neither side uses TLS towards the sink (smtp-sink
# offers no STARTTLS); Keel's relay TLS is set to `none`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
COUNT=${BENCH_OUT_COUNT:-2000}
CLIENTS=${BENCH_OUT_CLIENTS:-20}
SIZE=${BENCH_OUT_SIZE:-10240}
RCPTS=${BENCH_OUT_RCPTS:-50}
SUBMIT=${BENCH_OUT_SUBMIT:-relay}
TIMEOUT=${BENCH_OUT_TIMEOUT:-300}
OFFSET=${BENCH_PORT_OFFSET:-33000}
SINK_PORT=${BENCH_SINK_PORT:-43025}
PF_PORT=${BENCH_OUT_PF_PORT:-43526}
PASSWORD=Bench-pass-1

die() { echo "outbound.sh: error: $*" >&2; exit 1; }
note() { echo "outbound.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || die "must run as root (Postfix and smtp-sink start as root)"
case "$SUBMIT" in relay|auth) ;; *) die "BENCH_OUT_SUBMIT must be relay or auth" ;; esac

install_missing() {
    command -v postfix >/dev/null 2>&1 && command -v smtp-sink >/dev/null 2>&1 && return 0
    command -v apt-get >/dev/null 2>&1 || die "postfix is missing: install it by hand"
    note "installing postfix with apt-get"
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postfix >/dev/null ||
        die "apt-get install postfix failed"
}
install_missing

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
wait_port() {
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
K_SMTP=$((25 + OFFSET)); K_SUB=$((587 + OFFSET))
for p in "$SINK_PORT" "$PF_PORT" "$K_SMTP" "$K_SUB"; do
    port_free "$p" || die "port $p on 127.0.0.1 is in use (see the variables at the head)"
done

if [ "${BENCH_NO_BUILD:-0}" != 1 ]; then
    note "building keel and keel-bench (release)"
    (cd "$ROOT" && cargo build --release -q -p keel -p keel-bench) || die "cargo build failed"
fi
BIN=${BENCH_BIN_DIR:-$ROOT/target/release}
KEEL=$BIN/keel
BENCH=$BIN/keel-bench
[ -x "$KEEL" ] && [ -x "$BENCH" ] || die "missing $KEEL or $BENCH"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

WORK=$(mktemp -d /tmp/keel-bench-outbound.XXXXXX)
chmod 0755 "$WORK"
KEEL_PID=
SINK_PID=
PF_CONF=
stop_sink() {
    if [ -n "$SINK_PID" ]; then
        kill "$SINK_PID" 2>/dev/null || true
        wait "$SINK_PID" 2>/dev/null || true
        SINK_PID=
    fi
}
cleanup() {
    stop_sink
    if [ -n "$KEEL_PID" ] && kill -0 "$KEEL_PID" 2>/dev/null; then
        kill -TERM "$KEEL_PID" 2>/dev/null || true
        for _ in $(seq 1 100); do kill -0 "$KEEL_PID" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$KEEL_PID" 2>/dev/null || true
    fi
    if [ -n "$PF_CONF" ]; then
        postfix -c "$PF_CONF" stop >/dev/null 2>&1 || true
    fi
    if [ "${BENCH_KEEP:-0}" = 1 ]; then
        note "work files kept in $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# smtp-sink with a running counter (-c: "sess=… quit=… mesg=N", updated at each "."),
# written to $WORK/sink-<name>.out. Not -M: it exits before answering the last message.
start_sink() { # name
    stop_sink
    smtp-sink -u nobody -c "127.0.0.1:$SINK_PORT" 1024 > "$WORK/sink-$1.out" 2>&1 &
    SINK_PID=$!
    wait_port "$SINK_PORT" || die "smtp-sink does not listen on $SINK_PORT"
    # The readiness probe is a session without a message; the count starts at 0.
}
sink_count() { # name
    tr '\r' '\n' < "$WORK/sink-$1.out" | sed -n 's/.*mesg=\([0-9]*\).*/\1/p' | tail -1
}
now() { date +%s.%N; }

# One measured run: keel-bench submits, then the sink is polled every 50 ms until it has
# every accepted message. Writes $WORK/<name>.json (keel-bench's report plus the rates).
run() { # name port [keel-bench options...]
    local name=$1 port=$2 t0 t1 ta sent n=0
    shift 2
    start_sink "$name"
    note "$name: $COUNT messages × $SIZE bytes, $CLIENTS clients, port $port"
    t0=$(now)
    "$BENCH" --port "$port" -c "$CLIENTS" -n "$COUNT" --duration "$TIMEOUT" --json \
        --label "$name" "$@" smtp --to 'user{n}@sink.test' --users "$RCPTS" --size "$SIZE" \
        ${SMTP_EXTRA:-} > "$WORK/$name.json" || die "keel-bench $name failed"
    ta=$(now)
    sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ops"])' "$WORK/$name.json")
    local deadline=$(( $(date +%s) + TIMEOUT ))
    while :; do
        n=$(sink_count "$name"); n=${n:-0}
        [ "$n" -ge "$sent" ] && break
        [ "$(date +%s)" -ge "$deadline" ] && { note "$name: timeout, the sink has $n of $sent"; break; }
        sleep 0.05
    done
    t1=$(now)
    note "$name: accepted $sent in $(python3 -c "print(round($ta-$t0,2))") s, sink has $n after $(python3 -c "print(round($t1-$t0,2))") s"
    python3 - "$WORK/$name.json" "$t0" "$ta" "$t1" "$n" <<'EOF'
import json, sys
p, t0, ta, t1, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
d = json.load(open(p))
d["sunk"] = n
d["sunk_per_s"] = n / (t1 - t0)
d["accepted_per_s"] = d["ops"] / (ta - t0)
json.dump(d, open(p, "w"))
EOF
    stop_sink
}

# --- Keel -------------------------------------------------------------------------------
DATA=$WORK/keel-data
note "starting Keel (port offset $OFFSET)"
"$KEEL" --data "$DATA" serve --listen 127.0.0.1 --port-offset "$OFFSET" \
    --hostname mail.example.com > "$WORK/keel.out" 2> "$WORK/keel.err" &
KEEL_PID=$!
for _ in $(seq 1 300); do
    grep -qx "Ready." "$WORK/keel.out" 2>/dev/null && break
    kill -0 "$KEEL_PID" 2>/dev/null || { cat "$WORK/keel.err" >&2; die "keel serve exited"; }
    sleep 0.1
done
grep -qx "Ready." "$WORK/keel.out" || die "keel serve did not get ready; see $WORK/keel.err"
keelc() { "$KEEL" --data "$DATA" "$@"; }
keelc ipgroup add BenchLoopback 127.0.0.1 >/dev/null || die "keel ipgroup add failed"
# guide §12.2: relay host with port, no TLS towards smtp-sink; loopback may relay (the
# equivalent of Postfix's mynetworks), no per-IP connection cap for the load generator.
keelc smtp set "{\"relay_host\": \"127.0.0.1:$SINK_PORT\", \"relay_tls\": \"none\",
    \"relay_ip_group\": \"BenchLoopback\", \"max_connections_per_ip\": 0}" >/dev/null ||
    die "keel smtp set failed"
for svc in smtp submission; do
    keelc service set "$svc" --max-per-ip 100000 >/dev/null 2>&1 || true
done
keelc user add bench@example.com --password "$PASSWORD" >/dev/null || die "keel user add failed"
sleep 1.5 # the running server picks up CLI changes within a second

if [ "$SUBMIT" = auth ]; then
    SMTP_EXTRA="--from bench@example.com --auth bench@example.com:$PASSWORD" \
        run outbound-keel "$K_SUB" --tls starttls
else
    run outbound-keel "$K_SMTP"
fi
KEEL_QUEUE=$(keelc queue list 2>/dev/null | tail -1 || true)

# --- Postfix ----------------------------------------------------------------------------
P=$WORK/postfix
mkdir -p "$P/etc" "$P/queue" "$P/data"
chown postfix "$P/data"
cat > "$P/etc/main.cf" <<EOF
# Written by keel bench/outbound.sh; removed with its work directory.
compatibility_level = 3.6
queue_directory = $P/queue
data_directory = $P/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = keel-bench-outbound
maillog_file = $P/maillog
maillog_file_prefixes = $P
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = relay.bench.test
mydomain = bench.test
mydestination =
relay_domains =
local_recipient_maps =
alias_maps =
alias_database =
mynetworks = 127.0.0.0/8
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
relayhost = [127.0.0.1]:$SINK_PORT
smtputf8_enable = no
biff = no
EOF
cat > "$P/etc/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$PF_PORT inet n       -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
PF_CONF=$P/etc
postfix -c "$PF_CONF" start >/dev/null 2>&1 || {
    command -v script >/dev/null 2>&1 && script -qec "postfix -c '$PF_CONF' start" /dev/null >&2
    die "postfix did not start; see $P/maillog"
}
wait_port "$PF_PORT" || die "postfix does not listen on $PF_PORT; see $P/maillog"
run outbound-postfix "$PF_PORT"
PF_QUEUE=$(postqueue -c "$PF_CONF" -p 2>/dev/null | tail -1 || true)
PF_VERSION=$(postconf -c "$PF_CONF" -h mail_version 2>/dev/null || echo '?')

# --- Report -----------------------------------------------------------------------------
note "Keel queue after the run: $KEEL_QUEUE"
note "Postfix queue after the run: $PF_QUEUE"
python3 - "$WORK" "$COUNT" "$CLIENTS" "$SIZE" "$SUBMIT" "$PF_VERSION" "$(nproc)" <<'EOF'
import json, os, sys
work, count, clients, size, submit, pf, cpus = sys.argv[1:]
k = json.load(open(os.path.join(work, "outbound-keel.json")))
p = json.load(open(os.path.join(work, "outbound-postfix.json")))
via = "587 STARTTLS+AUTH, DKIM-signed" if submit == "auth" else "25, relay by IP group"
work_name = f"Outbound to smtp-sink, {clients} clients × {int(size) // 1024} KB, {count} msgs (Keel via {via})"
rows = []
def row(metric, key, unit, better):
    kv, pv = k[key], p[key]
    ratio = kv / pv if pv else float("nan")
    rows.append(f"| {work_name} | {metric} ({better} is better) | **{ratio:.2f}** | {kv:.6g} {unit} | {pv:.6g} {unit} |")
row("delivered to the sink msgs/s", "sunk_per_s", "msg/s", "higher")
row("accepted msgs/s (250)", "accepted_per_s", "msg/s", "higher")
for key, name in (("p50_ms", "p50"), ("p95_ms", "p95"), ("p99_ms", "p99")):
    row(f"submission {name} latency", key, "ms", "lower")
rows.append(f"| {work_name} | errors / sunk (Keel, Postfix) | | {k['errors']} / {k['sunk']} | {p['errors']} / {p['sunk']} |")
print(f"Keel vs Postfix {pf}, loopback, {cpus} CPUs; ratio = Keel / Postfix. Produced by `bench/outbound.sh`.")
print()
print("| Workload | Metric | Keel/Postfix | Keel | Postfix |")
print("|---|---|---:|---:|---:|")
print("\n".join(rows))
EOF
