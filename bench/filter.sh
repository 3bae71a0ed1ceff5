#!/usr/bin/env bash
# Filtering cost per message, Keel's spam scorer against SpamAssassin (issue 6 §10).
# Outside CI. Needs Debian's spamassassin and spamc (apt-get install -y spamassassin spamc)
# and python3.
#
#   bench/filter.sh [MESSAGES]        (default 300)
#
# Both sides rate the same generated corpus (bench/filter-corpus.py; half ham, half
# spam-like), one message at a time, with every local test on and the DNS tests off:
# SpamAssassin through spamd -L (local tests only) and its stock rules, Bayes trained on
# the same generated training set; Keel through crates/keel-filter/examples/filter_bench
# with its custom rules, GTUBE, structure checks and Bayes trained on that set. The
# SpamAssassin figure includes one spamc process per message, as a filter calling spamc
# pays it. Keel is also timed with its DNS tests on, answered by an in-process DNS
# server on 127.0.0.1 (reported for information; SpamAssassin has no such row).
# Prints a Markdown table; spamd runs on a free loopback port as a child with a temporary
# home and is stopped at the end.
set -euo pipefail

N=${1:-300}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d /tmp/keel-filter-bench.XXXXXX)
SPAMD_PID=""
cleanup() {
    if [[ -n "$SPAMD_PID" ]] && kill -0 "$SPAMD_PID" 2>/dev/null; then
        kill "$SPAMD_PID" 2>/dev/null || true
        wait "$SPAMD_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

for tool in spamd spamc sa-learn python3 cargo; do
    command -v "$tool" >/dev/null || { echo "filter.sh: $tool not found" >&2; exit 2; }
done

echo "corpus: $N messages (test), 500 (Bayes training)" >&2
python3 "$ROOT/bench/filter-corpus.py" "$WORK/corpus" "$N" 1
python3 "$ROOT/bench/filter-corpus.py" "$WORK/train" 500 2

echo "building the Keel side (release)" >&2
(cd "$ROOT" && cargo build --release -q -p keel-filter --example filter_bench)
BENCH="$ROOT/target/release/examples/filter_bench"

# --- SpamAssassin: site config, Bayes training, spamd ---------------------------------
mkdir -p "$WORK/site" "$WORK/home" "$WORK/bayes"
# The stock plugin list (*.pre: Bayes and the other plugins live there) and Debian's
# defaults; only local.cf is ours.
cp /etc/spamassassin/*.pre "$WORK/site/"
cp /etc/spamassassin/65_debian.cf "$WORK/site/" 2>/dev/null || true
cat > "$WORK/site/local.cf" <<CF
dns_available no
skip_rbl_checks 1
use_bayes 1
bayes_auto_learn 0
bayes_path $WORK/bayes/bayes
required_score 5.0
CF
echo "training SpamAssassin's Bayes" >&2
sa-learn -L --siteconfigpath "$WORK/site" --ham "$WORK/train/ham" >/dev/null
sa-learn -L --siteconfigpath "$WORK/site" --spam "$WORK/train/spam" >/dev/null
chown -R nobody "$WORK/bayes" "$WORK/home" 2>/dev/null || true
chmod 755 "$WORK"

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
spamd -L -x -u nobody --siteconfigpath "$WORK/site" --helper-home-dir="$WORK/home" \
    -i 127.0.0.1 -A 127.0.0.1 -p "$PORT" -m 2 -s "$WORK/spamd.log" 2>>"$WORK/spamd.log" &
SPAMD_PID=$!
for _ in $(seq 1 300); do
    spamc -d 127.0.0.1 -p "$PORT" -K >/dev/null 2>&1 && break
    kill -0 "$SPAMD_PID" 2>/dev/null || { echo "spamd died:" >&2; cat "$WORK/spamd.log" >&2; exit 1; }
    sleep 0.2
done
spamc -d 127.0.0.1 -p "$PORT" -K >/dev/null

# Warm-up: spamd compiles its rules in the first child on first use.
for f in "$WORK"/corpus/ham/*.eml; do
    spamc -d 127.0.0.1 -p "$PORT" -c <"$f" >/dev/null || true
    break
done

# What one spamc process and round trip cost by itself (PING), to separate it out.
start=$(date +%s.%N)
for _ in $(seq 1 50); do spamc -d 127.0.0.1 -p "$PORT" -K >/dev/null; done
end=$(date +%s.%N)
ping_ms=$(python3 -c "print(f'{($end - $start) * 1000 / 50:.1f}')")

echo "timing SpamAssassin (spamc → spamd)" >&2
sa_flag_ham=0
sa_flag_spam=0
sa_count=0
start=$(date +%s.%N)
for class in ham spam; do
    for f in "$WORK/corpus/$class"/*.eml; do
        if ! spamc -d 127.0.0.1 -p "$PORT" -c <"$f" >/dev/null; then
            if [[ $class == ham ]]; then sa_flag_ham=$((sa_flag_ham + 1)); else sa_flag_spam=$((sa_flag_spam + 1)); fi
        fi
        sa_count=$((sa_count + 1))
    done
done
end=$(date +%s.%N)
sa_secs=$(python3 -c "print(f'{$end - $start:.3f}')")
sa_rate=$(python3 -c "print(f'{$sa_count / ($end - $start):.1f}')")

kill "$SPAMD_PID" 2>/dev/null || true
wait "$SPAMD_PID" 2>/dev/null || true
SPAMD_PID=""
# spamd's own per-message scan time (its log's scantime=, 0.1 s resolution), without
# spamc and the connection: the rate SpamAssassin would reach in-process.
sa_scan_rate=$(grep -o 'scantime=[0-9.]*' "$WORK/spamd.log" | tail -n "$sa_count" | cut -d= -f2 |
    python3 -c 'import sys; v=[float(x) for x in sys.stdin]; print(f"{len(v)/sum(v):.1f}" if v and sum(v) > 0 else "n/a")')

echo "timing Keel" >&2
# Several rounds over the corpus, so the timing is not a few milliseconds.
read -r _ k_count k_secs k_rate k_ham k_spam < <("$BENCH" --corpus "$WORK/corpus" --train "$WORK/train" --dns off --rounds 10 | grep '^RESULT')
read -r _ d_count d_secs d_rate d_ham d_spam < <("$BENCH" --corpus "$WORK/corpus" --train "$WORK/train" --dns local --rounds 3 | grep '^RESULT')
ratio=$(python3 -c "print(f'{$k_rate / $sa_rate:.0f}')")
half=$((N / 2))
spam_n=$((N - half))

echo
echo "| Corpus | DNS tests | Keel msg/s | SpamAssassin msg/s | Keel/SpamAssassin | Flagged ham (Keel / SA) | Flagged spam (Keel / SA) |"
echo "|---|---|---:|---:|---:|---|---|"
echo "| $N generated | off on both sides | $k_rate | $sa_rate | ${ratio}× | $k_ham / $sa_flag_ham of $half | $k_spam / $sa_flag_spam of $spam_n |"
echo "| $N generated | off; SpamAssassin by spamd's scantime (no spamc) | $k_rate | $sa_scan_rate | $(python3 -c "print(f'{$k_rate / $sa_scan_rate:.0f}×' if '$sa_scan_rate' != 'n/a' else '–')") | | |"
echo "| $N generated | Keel: local DNS server (SPF, DKIM, DMARC, DNSBL, URIBL) | $d_rate | – | – | $d_ham of $half | $d_spam of $spam_n |"
echo
echo "(SpamAssassin: $sa_count messages in ${sa_secs} s through spamc, of which a spamc start and PING round trip alone is ${ping_ms} ms; Keel: $k_count messages in ${k_secs} s, $d_count with DNS in ${d_secs} s)"
