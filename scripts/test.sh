#!/usr/bin/env bash
# Keel's test command: installs what the tests need when it is missing, runs every
# check and test, and ends with one line "N passed, N failed".
# Usage: scripts/test.sh            (from the repository root)
set -uo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n== %s\n' "$*"; }
SUDO=""; [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null && SUDO="sudo"

# External clients the tests drive (DESIGN §8): curl (HTTP), openssl (TLS probes),
# mbsync (IMAP sync), setpriv (unprivileged-port test); Python's smtplib/imaplib/poplib
# come with python3.
need_apt=()
command -v curl >/dev/null || need_apt+=(curl)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v mbsync >/dev/null || need_apt+=(isync)
command -v setpriv >/dev/null || need_apt+=(util-linux)
# Mail retrieval clients of crates/keel/tests/clients.rs.
command -v fetchmail >/dev/null || need_apt+=(fetchmail)
command -v offlineimap >/dev/null || need_apt+=(offlineimap3)
command -v swaks >/dev/null || need_apt+=(swaks)
# clamd for the antivirus test (its signature database is written by the test itself).
[ -x /usr/sbin/clamd ] || need_apt+=(clamav-daemon)
# Headless Chromium for the web admin UI's browser test (crates/keel/tests/ui.rs).
[ -x /usr/bin/chromium ] || need_apt+=(chromium)
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# Python libraries used as independent clients (dkimpy verifies Keel's DKIM signatures).
python3 -c "import dkim" 2>/dev/null || python3 -m pip install --quiet dkimpy || true

# PyYAML reads the RFC 7208 suite below.
python3 -c "import yaml" 2>/dev/null || python3 -m pip install --quiet pyyaml || true
command -v getmail >/dev/null || python3 -m pip install --quiet getmail6 || true
export KEEL_REQUIRE_CLIENTS=1 KEEL_REQUIRE_CLAMD=1

# Postfix for crates/keel/tests/postfix.rs (private instances on loopback high ports only).
# "No configuration" means the postinst writes no /etc/postfix/main.cf; a temporary
# policy-rc.d (only if none exists) keeps invoke-rc.d from starting a system instance.
if ! command -v postfix >/dev/null && [ ! -x /usr/sbin/postfix ]; then
  log "installing postfix"
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d; made_policy=1
  fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postfix >/dev/null
  if [ "$made_policy" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi
# A system instance left running from an earlier install is stopped (tests never use 25).
if [ -f /etc/postfix/main.cf ]; then $SUDO postfix stop >/dev/null 2>&1 || true; fi
export KEEL_REQUIRE_POSTFIX=1

# Dovecot for crates/keel/tests/dovecot.rs (private instances on loopback high ports only,
# never 143/993). The same temporary policy-rc.d keeps the postinst from starting a
# system instance; one left running from an earlier install is stopped.
if ! command -v dovecot >/dev/null && [ ! -x /usr/sbin/dovecot ] || [ ! -x /usr/lib/dovecot/imap ]; then
  log "installing dovecot-core dovecot-imapd"
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d; made_policy=1
  fi
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq dovecot-core dovecot-imapd >/dev/null
  if [ "$made_policy" = 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi
fi
if [ -f /run/dovecot/master.pid ]; then $SUDO doveadm stop >/dev/null 2>&1 || true; fi
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now dovecot.service dovecot.socket >/dev/null 2>&1 || true
fi
export KEEL_REQUIRE_DOVECOT=1

# The RFC 7208 SPF test suite, as Debian's python3-spf ships it (not vendored): unpacked
# from the package into a cache directory; crates/keel-filter/tests/rfc7208.rs runs it.
SPF_SUITE_DIR=${XDG_CACHE_HOME:-$HOME/.cache}/keel-test/python3-spf
SPF_SUITE=$SPF_SUITE_DIR/usr/share/doc/python3-spf/rfc7208-tests.yml.gz
if [ ! -f "$SPF_SUITE" ]; then
  log "fetching the RFC 7208 suite (Debian python3-spf)"
  mkdir -p "$SPF_SUITE_DIR"
  (cd "$SPF_SUITE_DIR" && { apt-get download python3-spf >/dev/null 2>&1 ||
    { $SUDO apt-get update -qq && apt-get download python3-spf >/dev/null; }; } &&
    dpkg -x python3-spf_*.deb . && rm -f python3-spf_*.deb) || echo "could not fetch python3-spf"
fi
export KEEL_RFC7208_SUITE=$SPF_SUITE KEEL_REQUIRE_SUITES=1

# npm's playwright-core (pinned by crates/keel/tests/ui/package-lock.json) drives that
# Chromium; never `playwright install`. With KEEL_REQUIRE_BROWSER=1 the browser test fails
# instead of skipping when chromium or node_modules is missing.
if [ ! -d crates/keel/tests/ui/node_modules/playwright-core ] && command -v npm >/dev/null; then
  log "npm ci (crates/keel/tests/ui)"
  (cd crates/keel/tests/ui && npm ci --no-audit --no-fund --loglevel=error >/dev/null) || echo "npm ci failed"
fi
export KEEL_REQUIRE_BROWSER=1

# A throw-away PostgreSQL cluster for the PostgreSQL MetaStore tests (DESIGN §8: the test
# command starts what it needs; issue 8 item 5). Skipped when KEEL_TEST_PG_URL is already
# set. Debian's initdb/pg_ctl run in a temporary directory on a free loopback port; initdb
# refuses root, so as root the server runs as the `postgres` (or `nobody`) user via setpriv.
# fsync=off: the cluster is deleted afterwards, durability is not under test here.
PG_TMP=""; PG_BIN=""; PG_RUN=()
pg_bindir() { find /usr/lib/postgresql -maxdepth 2 -name bin -type d 2>/dev/null | sort -V | tail -n 1; }
stop_test_postgres() {
  [ -n "$PG_TMP" ] || return 0
  echo "stopping the test PostgreSQL cluster in $PG_TMP"
  (cd "$PG_TMP" && "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m fast -w -t 30 stop >/dev/null 2>&1)
  rm -rf "$PG_TMP" 2>/dev/null || { sleep 1; rm -rf "$PG_TMP"; }
  PG_TMP=""
}
start_test_postgres() {
  if [ -n "${KEEL_TEST_PG_URL:-}" ]; then echo "PostgreSQL: using KEEL_TEST_PG_URL=$KEEL_TEST_PG_URL"; return 0; fi
  PG_BIN=$(pg_bindir)
  if [ -z "$PG_BIN" ]; then
    echo "installing postgresql"
    $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq postgresql >/dev/null
    PG_BIN=$(pg_bindir)
  fi
  if [ -z "$PG_BIN" ]; then echo "PostgreSQL is not installed: the PostgreSQL tests will report themselves skipped"; return 1; fi
  PG_TMP=$(mktemp -d /tmp/keel-pg.XXXXXX)
  PG_RUN=()
  if [ "$(id -u)" -eq 0 ]; then
    local user=postgres
    id -u "$user" >/dev/null 2>&1 || user=nobody
    chown "$(id -u "$user"):$(id -g "$user")" "$PG_TMP"
    PG_RUN=(setpriv --reuid="$(id -u "$user")" --regid="$(id -g "$user")" --clear-groups)
  fi
  local port
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  echo "starting a throw-away PostgreSQL ($PG_BIN) in $PG_TMP on 127.0.0.1:$port"
  trap stop_test_postgres EXIT
  if ! (cd "$PG_TMP" && "${PG_RUN[@]}" "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres --auth=trust -E UTF8 --no-sync >"$PG_TMP/initdb.log" 2>&1 \
      && "${PG_RUN[@]}" "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 30 \
           -o "-p $port -k $PG_TMP -h 127.0.0.1 -c fsync=off -c max_connections=300" start >/dev/null \
      && "$PG_BIN/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
           -c "CREATE ROLE keel LOGIN" -c "CREATE DATABASE keel_test OWNER keel"); then
    echo "could not start PostgreSQL:"; tail -n 20 "$PG_TMP"/*.log 2>/dev/null
    stop_test_postgres; return 1
  fi
  export KEEL_TEST_PG_URL="host=127.0.0.1 port=$port user=keel dbname=keel_test"
  echo "KEEL_TEST_PG_URL=$KEEL_TEST_PG_URL"
}

passed=0; failed=0; failures=()
check() { # name, command...
  local name=$1; shift
  log "$name"
  if "$@"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$name"); fi
}

check "cargo fmt --check" cargo fmt --all -- --check
check "licence policy (deny.toml)" python3 scripts/check-licenses.py
check "RFC index (docs/rfc-status.tsv)" python3 scripts/check-rfc-index.py
check "cargo clippy -D warnings" cargo clippy --locked --workspace --all-targets -- -D warnings

log "PostgreSQL for the cluster-mode tests"
start_test_postgres || true

log "cargo test (workspace)"
out=$(mktemp)
cargo test --locked --workspace --no-fail-fast 2>&1 | tee "$out"
# "test result: ok. 12 passed; 0 failed; ..." per test binary.
read -r tp tf < <(awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i) ~ /^passed;?$/) p += $(i-1); if ($(i) ~ /^failed;?$/) f += $(i-1) } } END { print p + 0, f + 0 }' "$out")
# A test binary that failed to build or crashed reports no result line: count it.
if grep -qE '^error(\[E[0-9]+\])?:|error: test failed|process didn.t exit successfully' "$out" && [ "$tf" -eq 0 ]; then
  tf=1; failures+=("cargo test: build error or crashed test binary")
fi
grep -E '^test .* FAILED$' "$out" | sed 's/^test //; s/ \.\.\. FAILED$//' | while read -r t; do echo "failed: $t"; done
passed=$((passed + tp)); failed=$((failed + tf))
rm -f "$out"

for f in "${failures[@]}"; do echo "failed: $f"; done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
