#!/usr/bin/env bash
# Reference peers for the benchmark (issue 7 §2): Postfix (MTA) delivering over LMTP to
# Dovecot (IMAP, POP3, LMTP), both from Debian, on loopback high ports, with every file in
# one temporary directory. Same domain and users as `bench/run.sh` creates in Keel.
#
#   bench/peers.sh start   # install when missing (apt-get), configure, start, wait ready
#   bench/peers.sh stop    # stop both and remove the directory
#   bench/peers.sh status  # what runs where
#
# Environment (defaults in brackets):
#   BENCH_PEERS_DIR  [/tmp/keel-bench-peers]  everything lives here (queue, mail, logs)
#   BENCH_DOMAIN     [example.com]            mail domain served by Dovecot
#   BENCH_USERS      [100]                    users user1..userN
#   BENCH_PASSWORD   [Bench-pass-1]           password of every user
#   PEER_SMTP_PORT   [42525]  Postfix smtpd
#   PEER_IMAP_PORT   [42143]  Dovecot IMAP
#   PEER_POP3_PORT   [42110]  Dovecot POP3
#   PEER_LMTP_PORT   [42024]  Dovecot LMTP (Postfix's virtual transport)
#
# Durability comparable to Keel's (fsync before 250): Postfix fsyncs queue files before it
# answers 250 (its default); Dovecot runs with mail_fsync = always. Mail is stored as
# Maildir under $BENCH_PEERS_DIR/mail/<domain>/<user>, owned by the system user
# `keelbench` (created when missing: Dovecot refuses to access mail as root).
set -euo pipefail

DIR=${BENCH_PEERS_DIR:-/tmp/keel-bench-peers}
DOMAIN=${BENCH_DOMAIN:-example.com}
USERS=${BENCH_USERS:-100}
PASSWORD=${BENCH_PASSWORD:-Bench-pass-1}
SMTP_PORT=${PEER_SMTP_PORT:-42525}
IMAP_PORT=${PEER_IMAP_PORT:-42143}
POP3_PORT=${PEER_POP3_PORT:-42110}
LMTP_PORT=${PEER_LMTP_PORT:-42024}
MAIL_USER=keelbench

die() { echo "peers.sh: error: $*" >&2; exit 1; }
note() { echo "peers.sh: $*" >&2; }

need_root() {
    [ "$(id -u)" = 0 ] || die "must run as root (Postfix and Dovecot start as root and drop privileges)"
}

install_missing() {
    local pkgs=()
    command -v postfix >/dev/null 2>&1 || pkgs+=(postfix)
    command -v dovecot >/dev/null 2>&1 || pkgs+=(dovecot-core)
    [ -x /usr/lib/dovecot/imap ] || pkgs+=(dovecot-imapd)
    [ -x /usr/lib/dovecot/pop3 ] || pkgs+=(dovecot-pop3d)
    [ -x /usr/lib/dovecot/lmtp ] || pkgs+=(dovecot-lmtpd)
    [ ${#pkgs[@]} -eq 0 ] && return 0
    note "installing ${pkgs[*]} with apt-get"
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${pkgs[*]} by hand"
    echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections 2>/dev/null || true
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null || die "apt-get update failed"
    apt-get install -y -q "${pkgs[@]}" >/dev/null || die "apt-get install ${pkgs[*]} failed"
}

port_free() {
    ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_port() { # port name
    for _ in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

write_dovecot() {
    local d=$DIR/dovecot uid gid
    uid=$(id -u $MAIL_USER); gid=$(id -g $MAIL_USER)
    mkdir -p "$d/run" "$d/state" "$DIR/mail"
    chown $MAIL_USER:$MAIL_USER "$DIR/mail"
    : > "$d/users"
    for i in $(seq 1 "$USERS"); do
        echo "user$i@$DOMAIN:{PLAIN}$PASSWORD" >> "$d/users"
    done
    chmod 0640 "$d/users"; chgrp dovecot "$d/users"
    cat > "$d/dovecot.conf" <<EOF
# Written by keel bench/peers.sh; removed by 'peers.sh stop'.
instance_name = keel-bench-dovecot
base_dir = $d/run
state_dir = $d/state
protocols = imap pop3 lmtp
listen = 127.0.0.1
log_path = $d/dovecot.log
info_log_path = $d/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_default_realm = $DOMAIN
mail_location = maildir:$DIR/mail/%d/%n
mail_uid = $uid
mail_gid = $gid
first_valid_uid = $uid
last_valid_uid = $uid
first_valid_gid = $gid
mail_fsync = always
default_process_limit = 3000
default_client_limit = 20000
default_vsz_limit = 1G
passdb {
  driver = passwd-file
  args = scheme=PLAIN $d/users
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$DIR/mail/%d/%n
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    address = 127.0.0.1
    port = $POP3_PORT
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
protocol imap {
  mail_max_userip_connections = 100000
}
protocol pop3 {
  mail_max_userip_connections = 100000
}
protocol lmtp {
  postmaster_address = postmaster@$DOMAIN
}
EOF
}

write_postfix() {
    local p=$DIR/postfix
    mkdir -p "$p/etc" "$p/queue" "$p/data"
    chown postfix "$p/data"
    : > "$p/etc/vmailbox"
    for i in $(seq 1 "$USERS"); do
        echo "user$i@$DOMAIN $DOMAIN/user$i/" >> "$p/etc/vmailbox"
    done
    cat > "$p/etc/main.cf" <<EOF
# Written by keel bench/peers.sh; removed by 'peers.sh stop'.
compatibility_level = 3.6
queue_directory = $p/queue
data_directory = $p/data
command_directory = /usr/sbin
daemon_directory = /usr/lib/postfix/sbin
meta_directory = /etc/postfix
shlib_directory = /usr/lib/postfix
mail_owner = postfix
setgid_group = postdrop
syslog_name = keel-bench-postfix
maillog_file = $p/maillog
maillog_file_prefixes = $p
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = peer.bench.test
mydomain = bench.test
mydestination =
relay_domains =
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_maps = texthash:$p/etc/vmailbox
virtual_transport = lmtp:inet:127.0.0.1:$LMTP_PORT
smtpd_recipient_restrictions = permit_mynetworks, reject_unauth_destination
smtputf8_enable = no
biff = no
alias_maps =
alias_database =
local_recipient_maps =
EOF
    cat > "$p/etc/master.cf" <<EOF
# service type  private unpriv  chroot  wakeup  maxproc command
127.0.0.1:$SMTP_PORT inet n     -       n       -       -       smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

# Runs `postfix -c DIR <cmd>`. Postfix prints its errors only to a terminal or syslog
# (absent in containers), so on failure it is rerun under script(1) to show them.
postfix_cmd() {
    postfix -c "$DIR/postfix/etc" "$1" >/dev/null 2>&1 && return 0
    if command -v script >/dev/null 2>&1; then
        script -qec "postfix -c '$DIR/postfix/etc' $1" /dev/null >&2 && return 0
    fi
    return 1
}

start() {
    need_root
    install_missing
    [ -e "$DIR/started" ] && die "peers already started in $DIR (run '$0 stop' first)"
    for port in "$SMTP_PORT" "$IMAP_PORT" "$POP3_PORT" "$LMTP_PORT"; do
        port_free "$port" || die "port $port on 127.0.0.1 is in use (set PEER_*_PORT)"
    done
    id $MAIL_USER >/dev/null 2>&1 ||
        useradd --system --no-create-home --shell /usr/sbin/nologin $MAIL_USER ||
        die "cannot create the system user $MAIL_USER"
    mkdir -p "$DIR"
    chmod 0755 "$DIR"
    write_dovecot
    write_postfix
    ulimit -n "$(ulimit -Hn)" 2>/dev/null || note "could not raise the open-file limit"

    dovecot -c "$DIR/dovecot/dovecot.conf" ||
        die "dovecot did not start; see $DIR/dovecot/dovecot.log"
    touch "$DIR/started"
    for port in "$IMAP_PORT" "$POP3_PORT" "$LMTP_PORT"; do
        wait_port "$port" || die "dovecot does not listen on $port; see $DIR/dovecot/dovecot.log"
    done

    postfix_cmd check || die "postfix check failed (messages above)"
    postfix_cmd start || die "postfix did not start; see above and $DIR/postfix/maillog"
    wait_port "$SMTP_PORT" || die "postfix does not listen on $SMTP_PORT; see $DIR/postfix/maillog"

    cat > "$DIR/env" <<EOF
PEER_SMTP_PORT=$SMTP_PORT
PEER_IMAP_PORT=$IMAP_PORT
PEER_POP3_PORT=$POP3_PORT
PEER_LMTP_PORT=$LMTP_PORT
PEER_MAIL_DIR=$DIR/mail
PEER_DOVECOT_CONF=$DIR/dovecot/dovecot.conf
EOF
    note "Postfix $(postconf -c "$DIR/postfix/etc" -h mail_version 2>/dev/null || echo '?') smtp 127.0.0.1:$SMTP_PORT -> LMTP 127.0.0.1:$LMTP_PORT"
    note "Dovecot $(dovecot --version | cut -d' ' -f1) imap 127.0.0.1:$IMAP_PORT pop3 127.0.0.1:$POP3_PORT"
    note "users user1..user$USERS@$DOMAIN, password $PASSWORD; files in $DIR"
}

stop() {
    need_root
    [ -d "$DIR" ] || { note "nothing to stop ($DIR does not exist)"; return 0; }
    if [ -f "$DIR/postfix/etc/main.cf" ]; then
        postfix -c "$DIR/postfix/etc" stop 2>/dev/null || true
    fi
    if [ -f "$DIR/dovecot/dovecot.conf" ]; then
        dovecot -c "$DIR/dovecot/dovecot.conf" stop 2>/dev/null || true
    fi
    # Wait for both masters to go, then remove everything.
    for _ in $(seq 1 50); do
        if ! pgrep -f "$DIR/(postfix|dovecot)" >/dev/null 2>&1 &&
            ! { [ -f "$DIR/dovecot/run/master.pid" ] && kill -0 "$(cat "$DIR/dovecot/run/master.pid")" 2>/dev/null; }; then
            break
        fi
        sleep 0.1
    done
    if [ "${BENCH_KEEP_PEERS:-0}" = 1 ]; then
        rm -f "$DIR/started"
        note "stopped; files kept in $DIR"
    else
        rm -rf "$DIR"
        note "stopped and removed $DIR"
    fi
}

status() {
    if [ -f "$DIR/env" ]; then
        cat "$DIR/env"
    else
        echo "not started ($DIR/env missing)"
    fi
}

case "${1:-}" in
start) start ;;
stop) stop ;;
status) status ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
