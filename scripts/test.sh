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
if [ ${#need_apt[@]} -gt 0 ]; then
  log "installing ${need_apt[*]}"
  $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

# Python libraries used as independent clients (dkimpy verifies Keel's DKIM signatures).
python3 -c "import dkim" 2>/dev/null || python3 -m pip install --quiet dkimpy || true

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
