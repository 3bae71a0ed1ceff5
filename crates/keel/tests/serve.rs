//! The `keel` binary over real sockets: first run, the summary, the admin login (curl),
//! CLI changes seen by the running server, service control, limits, graceful shutdown.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use common::*;

/// Services this build provides; the others must show as not available.
const BUILT: &[&str] = &[
    "smtp",
    "smtps",
    "submission",
    "pop3",
    "pop3s",
    "imap",
    "imaps",
    "http",
    "https",
];

fn http_url(s: &Server, path: &str) -> String {
    format!("http://127.0.0.1:{}{path}", s.port("http"))
}

fn https_url(s: &Server, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", s.port("https"))
}

/// Issue "Done when": a fresh first run shows every service with its real address, and
/// the printed admin login works. (requirements-3 §6 scenario 1, "Default service
/// listeners", as far as the services exist.)
#[test]
fn scenario_default_service_listeners_and_first_run_admin_login() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    assert!(
        s.summary.contains("Internet hostname: mail.example.com"),
        "{}",
        s.summary
    );
    assert!(
        s.summary.contains("Primary domain: example.com"),
        "{}",
        s.summary
    );
    assert!(
        s.summary.contains("Login:    admin@example.com"),
        "{}",
        s.summary
    );
    for (name, _) in SERVICES {
        let (state, addrs) = s.service_row(name);
        assert_eq!(
            addrs,
            format!("127.0.0.1:{}", s.port(name)),
            "{name} address"
        );
        let expected = if BUILT.contains(name) {
            "running"
        } else {
            "not available"
        };
        assert_eq!(state, expected, "{name} state");
    }
    // Services not built are not listening.
    assert!(TcpStream::connect(("127.0.0.1", s.port("ldap"))).is_err());

    let password = s.admin_password();
    assert!(password.len() >= 16);
    // Bare name for the primary domain, full address, over HTTP and HTTPS (curl).
    let (code, body) = curl_login(&http_url(&s, "/api/v1/login"), "admin", &password);
    assert_eq!(code, 200, "{body}");
    assert!(
        body.contains("admin@example.com") && body.contains("full"),
        "{body}"
    );
    let (code, _) = curl_login(
        &https_url(&s, "/api/v1/login"),
        "admin@example.com",
        &password,
    );
    assert_eq!(code, 200);
    let (code, body) = curl_login(&http_url(&s, "/api/v1/login"), "admin", "wrong password");
    assert_eq!(code, 401, "{body}");

    // The password is stored only as a hash: it appears in no file of the data directory.
    let grep = Command::new("grep")
        .args(["-rIl", &password])
        .arg(&s.data)
        .output()
        .unwrap();
    assert!(
        grep.stdout.is_empty(),
        "password found in {}",
        stdout(&grep)
    );

    // Files of the documented layout exist.
    for f in [
        "keel.toml",
        "keel.db",
        "tls/cert.pem",
        "tls/key.pem",
        "logs/config.log",
    ] {
        assert!(s.data.join(f).exists(), "{f} missing");
    }

    let (status, rest) = s.terminate();
    assert!(status.success(), "exit status {status:?}");
    assert!(rest.contains("Keel stopped."), "{rest}");
}

/// Issue "Done when": `keel user add` against a running server takes effect without a
/// restart; the CLI's errors are clear sentences with a non-zero exit.
#[test]
fn cli_user_add_takes_effect_without_restart() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let url = http_url(&s, "/api/v1/login");
    assert_eq!(curl_login(&url, "bob@example.com", "Tr0ub4dor&3x").0, 401);

    let out = s.keel(&[
        "user",
        "add",
        "bob@example.com",
        "--password",
        "Tr0ub4dor&3x",
        "--quota",
        "500MB",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(curl_login(&url, "bob@example.com", "Tr0ub4dor&3x").0, 200);
    assert_eq!(
        curl_login(&url, "bob", "Tr0ub4dor&3x").0,
        200,
        "bare name in the primary domain"
    );

    let out = s.keel(&["user", "show", "bob@example.com", "--format", "json"]);
    assert!(
        stdout(&out).contains(&(500u64 << 20).to_string()),
        "{}",
        stdout(&out)
    );

    // Clear errors, non-zero exit.
    let out = s.keel(&[
        "user",
        "add",
        "bob@example.com",
        "--password",
        "An0ther-pass",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("bob@example.com"), "{}", stderr(&out));
    let out = s.keel(&[
        "user",
        "add",
        "carol@nowhere.test",
        "--password",
        "An0ther-pass",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nowhere.test"), "{}", stderr(&out));
    let out = s.keel(&["user", "add", "dave@example.com", "--password", "short"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).to_lowercase().contains("password"),
        "{}",
        stderr(&out)
    );

    // A disabled user cannot log in; the change applies at once.
    let out = s.keel(&["user", "set", "bob@example.com", "--enabled", "false"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(curl_login(&url, "bob@example.com", "Tr0ub4dor&3x").0, 401);
}

/// guide ch. 32 from the CLI: `keel user set --domain-admin`, `keel admin web|remote
/// enable|disable`, `keel admin show`; the user then signs in to the admin API (curl) with
/// a session for its domain.
#[test]
fn cli_domain_admin_and_administration_access_switches() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let out = s.keel(&[
        "user",
        "add",
        "dora@example.com",
        "--password",
        "D0ra-secret-1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let url = http_url(&s, "/admin/api/v1/session");
    let (code, body) = curl_login(&url, "dora@example.com", "D0ra-secret-1");
    assert_eq!(code, 403, "no rights yet: {body}");
    let out = s.keel(&["user", "set", "dora@example.com", "--domain-admin", "true"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (code, body) = curl_login(&url, "dora@example.com", "D0ra-secret-1");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"domain\":\"example.com\""), "{body}");
    let out = s.keel(&["user", "list"]);
    assert!(stdout(&out).contains("domain admin"), "{}", stdout(&out));

    let out = s.keel(&["admin", "web", "enable", "--from", "Nowhere"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Nowhere"), "{}", stderr(&out));
    let out = s.keel(&["admin", "web", "enable", "--from", "Local clients"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = s.keel(&["admin", "remote", "enable"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = s.keel(&["admin", "show"]);
    let text = stdout(&out);
    assert!(
        text.contains("Remote administration:  on, from any address"),
        "{text}"
    );
    assert!(
        text.contains("Web administration:     on, from the IP address group Local clients"),
        "{text}"
    );
    let out = s.keel(&["admin", "remote", "disable"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = s.keel(&["admin", "show", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(v["remote_enabled"], false);
    assert_eq!(v["web_admin_ip_group"], "Local clients");
    let log = std::fs::read_to_string(s.data.join("logs/config.log")).unwrap();
    assert!(log.contains("admin web enable"), "{log}");
}

/// requirements-2 acceptance 13 (audit log part): a user created with a password is in
/// the config log, and the clear-text password never appears in any log file.
#[test]
fn scenario_remote_admin_and_audit_log_masks_passwords() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let secret = "Sup3r-Secret-Value";
    let out = s.keel(&["user", "add", "eve@example.com", "--password", secret]);
    assert!(out.status.success(), "{}", stderr(&out));
    let config_log = std::fs::read_to_string(s.data.join("logs/config.log")).unwrap();
    assert!(
        config_log.contains("user add eve@example.com"),
        "{config_log}"
    );
    let grep = Command::new("grep")
        .args(["-rIl", secret])
        .arg(s.data.join("logs"))
        .output()
        .unwrap();
    assert!(grep.stdout.is_empty(), "password in {}", stdout(&grep));
}

/// requirements-3 §6 scenario 2 (per-service binding, IP ACL and connection cap), on the
/// HTTP service while the mail protocols are not built; changes apply without a restart
/// of the server or of other services.
#[test]
fn scenario_per_service_binding_ip_acl_and_connection_cap() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let http: SocketAddr = format!("127.0.0.1:{}", s.port("http")).parse().unwrap();
    let https_port = s.port("https");
    assert!(connection_kept(http));

    // Access only from a group that excludes 127.0.0.1: closed before any byte.
    assert!(
        s.keel(&["ipgroup", "add", "Elsewhere", "10.0.0.0/8"])
            .status
            .success()
    );
    assert!(
        s.keel(&["service", "set", "http", "--access", "Elsewhere"])
            .status
            .success()
    );
    assert!(
        eventually(Duration::from_secs(5), || !connection_kept(http)),
        "ACL not applied"
    );
    // HTTPS was not touched.
    assert!(TcpStream::connect(("127.0.0.1", https_port)).is_ok());
    assert!(
        s.keel(&["service", "set", "http", "--access-everyone"])
            .status
            .success()
    );
    assert!(eventually(Duration::from_secs(5), || connection_kept(http)));

    // Connection cap per IP: the 3rd concurrent connection is refused.
    assert!(
        s.keel(&["service", "set", "http", "--max-per-ip", "2"])
            .status
            .success()
    );
    std::thread::sleep(Duration::from_millis(1500));
    let a = TcpStream::connect(http).unwrap();
    let b = TcpStream::connect(http).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        !connection_kept(http),
        "third connection from one IP must be refused"
    );
    drop((a, b));
    assert!(eventually(Duration::from_secs(5), || connection_kept(http)));

    // Rebinding moves the listener.
    let new_port = free_offset() + 80;
    let bind = format!("127.0.0.1:{new_port}");
    assert!(
        s.keel(&["service", "set", "http", "--bind", &bind])
            .status
            .success()
    );
    let moved: SocketAddr = bind.parse().unwrap();
    assert!(
        eventually(Duration::from_secs(5), || connection_kept(moved)),
        "not rebound"
    );
    assert!(eventually(Duration::from_secs(5), || TcpStream::connect(
        http
    )
    .is_err()));
    let st = s.keel(&["status"]);
    assert!(stdout(&st).contains(&bind), "{}", stdout(&st));
    // guide §24.6: the refused connections are counted (saved every few seconds).
    assert!(
        eventually(Duration::from_secs(15), || {
            let out = s.keel(&["stats", "show", "--format", "json"]);
            serde_json::from_str::<serde_json::Value>(&stdout(&out))
                .is_ok_and(|v| stat(&v, "connections_rejected.http") >= 2)
        }),
        "the refused HTTP connections were not counted"
    );
}

/// guide §6.1: start, stop and restart at run time; `keel status` shows the state.
#[test]
fn service_stop_start_restart_at_run_time() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let http: SocketAddr = format!("127.0.0.1:{}", s.port("http")).parse().unwrap();
    let st = s.keel(&["status"]);
    assert!(st.status.success());
    let text = stdout(&st);
    assert!(text.contains("Keel is running"), "{text}");
    assert!(
        text.contains(&format!("127.0.0.1:{}", s.port("imap"))),
        "{text}"
    );

    assert!(s.keel(&["service", "stop", "http"]).status.success());
    assert!(eventually(Duration::from_secs(5), || TcpStream::connect(
        http
    )
    .is_err()));
    assert!(eventually(Duration::from_secs(5), || {
        stdout(&s.keel(&["status"]))
            .lines()
            .any(|l| l.trim_start().starts_with("http ") && l.contains("stopped"))
    }));
    assert!(s.keel(&["service", "start", "http"]).status.success());
    assert!(eventually(Duration::from_secs(5), || connection_kept(http)));
    assert!(s.keel(&["service", "restart", "http"]).status.success());
    assert!(eventually(Duration::from_secs(5), || connection_kept(http)));

    let out = s.keel(&["service", "start", "ldap"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not available"), "{}", stderr(&out));
    let out = s.keel(&["service", "stop", "gopher"]);
    assert!(
        stderr(&out).contains("no service 'gopher'"),
        "{}",
        stderr(&out)
    );
}

/// requirements-3 §6 further candidate: `/server.cer` is the DER form of the certificate
/// served on the HTTPS port.
#[test]
fn server_cer_matches_the_https_certificate() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let cer = Command::new("curl")
        .args(["-s", &http_url(&s, "/server.cer")])
        .output()
        .unwrap();
    assert!(cer.status.success());
    let tmp = tempfile::tempdir().unwrap();
    let der = tmp.path().join("server.cer");
    std::fs::write(&der, &cer.stdout).unwrap();
    let fp_der = Command::new("openssl")
        .args([
            "x509",
            "-inform",
            "DER",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
        ])
        .arg(&der)
        .output()
        .unwrap();
    assert!(fp_der.status.success(), "{}", stderr(&fp_der));
    let served = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect 127.0.0.1:{} -servername mail.example.com </dev/null 2>/dev/null \
             | openssl x509 -noout -fingerprint -sha256",
            s.port("https")
        ))
        .output()
        .unwrap();
    let a = stdout(&fp_der);
    assert!(a.contains("Fingerprint="), "{a}");
    assert_eq!(a.trim(), stdout(&served).trim());
    // The certificate names the Internet hostname.
    let text = Command::new("openssl")
        .args(["x509", "-inform", "DER", "-noout", "-text", "-in"])
        .arg(&der)
        .output()
        .unwrap();
    assert!(
        stdout(&text).contains("DNS:mail.example.com"),
        "{}",
        stdout(&text)
    );
}

/// requirements-1 acceptance 20, over the web sign-in: lockout after N failures from one
/// IP refuses even the right password; "unlock all" lifts it; a disabled account stays
/// refused after "unlock all". Events reach the security log.
#[test]
fn scenario_account_lockout_vs_disabled() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let url = http_url(&s, "/api/v1/login");
    assert!(
        s.keel(&[
            "user",
            "add",
            "alice@example.com",
            "--password",
            "Alice-pass-1"
        ])
        .status
        .success()
    );
    assert!(
        s.keel(&[
            "user",
            "add",
            "carol@example.com",
            "--password",
            "Carol-pass-1"
        ])
        .status
        .success()
    );
    let set = s.keel(&[
        "security",
        "set",
        r#"{"lockout":{"enabled":true,"max_failures":3}}"#,
    ]);
    assert!(set.status.success(), "{}", stderr(&set));
    let bad = s.keel(&["security", "set", r#"{"lockout":{"attempts":3}}"#]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("lockout.attempts"),
        "{}",
        stderr(&bad)
    );
    for _ in 0..3 {
        assert_eq!(curl_login(&url, "alice", "wrong").0, 401);
    }
    assert_eq!(
        curl_login(&url, "alice", "Alice-pass-1").0,
        401,
        "locked account accepted"
    );
    assert!(
        s.keel(&["user", "set", "carol@example.com", "--enabled", "false"])
            .status
            .success()
    );
    assert_eq!(curl_login(&url, "carol", "Carol-pass-1").0, 401);

    let out = s.keel(&["security", "unlock-all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(curl_login(&url, "alice", "Alice-pass-1").0, 200);
    assert_eq!(
        curl_login(&url, "carol", "Carol-pass-1").0,
        401,
        "unlock-all enabled a disabled user"
    );

    let security = std::fs::read_to_string(s.data.join("logs/security.log")).unwrap_or_default();
    assert!(security.contains("alice"), "security log: {security}");
}

/// A second server on the same data directory is refused; a restart keeps the data and
/// prints no new admin password.
#[test]
fn second_server_refused_and_restart_keeps_data() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let out = keel(
        &s.data,
        &[
            "serve",
            "--listen",
            "127.0.0.1",
            "--port-offset",
            &free_offset().to_string(),
        ],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("already running"), "{}", stderr(&out));
    let password = s.admin_password();
    let data = s.data.clone();
    // Keep the temporary directory alive past the first server.
    let (status, _, tmp) = {
        let mut s = s;
        let tmp = s._tmp.take();
        let (status, rest) = s.terminate();
        (status, rest, tmp)
    };
    assert!(status.success());
    let s2 = Server::start(&data, free_offset(), &[]);
    assert!(!s2.summary.contains("Password:"), "{}", s2.summary);
    assert!(s2.summary.contains("Internet hostname: mail.example.com"));
    assert_eq!(
        curl_login(&http_url(&s2, "/api/v1/login"), "admin", &password).0,
        200
    );
    drop(s2);
    drop(tmp);
}

/// DESIGN §5: a port that needs privileges the process lacks falls back to port + 10000,
/// and the summary says so. Runs the binary as an unprivileged user with setpriv.
#[test]
fn privileged_ports_fall_back_loudly() {
    let unprivileged_start =
        std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
            .ok()
            .and_then(|s| s.trim().parse::<u16>().ok())
            .unwrap_or(1024);
    let am_root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| stdout(&o).trim() == "0")
        .unwrap_or(false);
    if unprivileged_start <= 80
        || !am_root
        || Command::new("setpriv").arg("--version").output().is_err()
    {
        eprintln!("skipped: needs root, setpriv and privileged low ports on this host");
        return;
    }
    if TcpStream::connect(("127.0.0.1", 10080)).is_ok()
        || TcpStream::connect(("127.0.0.1", 10443)).is_ok()
    {
        eprintln!("skipped: ports 10080/10443 are in use");
        return;
    }
    let tmp = tempfile::Builder::new()
        .prefix("keel-priv")
        .tempdir()
        .unwrap();
    let _ = Command::new("chmod")
        .args(["0777"])
        .arg(tmp.path())
        .status();
    let data = tmp.path().join("data");
    let mut child = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            keel_bin(),
            "--data",
        ])
        .arg(&data)
        .args([
            "serve",
            "--listen",
            "127.0.0.1",
            "--hostname",
            "mail.example.com",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = String::new();
    let stdout_pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        let mut acc = String::new();
        for l in std::io::BufReader::new(stdout_pipe)
            .lines()
            .map_while(Result::ok)
        {
            acc.push_str(&l);
            acc.push('\n');
            if l == "Ready." {
                break;
            }
        }
        acc
    });
    let done = eventually(Duration::from_secs(60), || reader.is_finished());
    if done {
        out = reader.join().unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(done, "no summary");
    assert!(out.contains("127.0.0.1:10080"), "{out}");
    assert!(out.contains("port 80 needs privileges"), "{out}");
}

/// guide §25.9: debug categories switch on and off at run time (requirements-3 §6
/// scenario 16, on the HTTP server category while ActiveSync is not built).
#[test]
fn debug_category_toggles_at_run_time() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let debug_log = s.data.join("logs/debug.log");
    let read = || std::fs::read_to_string(&debug_log).unwrap_or_default();
    let get = |path: &str| {
        Command::new("curl")
            .args(["-s", "-o", "/dev/null", &http_url(&s, path)])
            .status()
            .unwrap()
    };
    get("/healthz");
    assert!(!read().contains("/healthz"), "logged while off");
    let on = s.keel(&["log", "debug-on", "http-server"]);
    assert!(on.status.success(), "{}", stderr(&on));
    assert!(
        stdout(&s.keel(&["log", "debug"]))
            .lines()
            .any(|l| l.starts_with("http-server") && l.ends_with("on"))
    );
    assert!(eventually(Duration::from_secs(5), || {
        get("/healthz");
        read().contains("GET /healthz HTTP from 127.0.0.1")
    }));
    assert!(
        s.keel(&["log", "debug-off", "http-server"])
            .status
            .success()
    );
    std::thread::sleep(Duration::from_millis(1500));
    get("/server.cer");
    assert!(
        !read().contains("/server.cer"),
        "logged after switching off: {}",
        read()
    );
    let bad = s.keel(&["log", "debug-on", "no-such-category"]);
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("no debug category"),
        "{}",
        stderr(&bad)
    );
}

/// guide §16, DESIGN §6: one certificate set; SNI picks a domain's own certificate
/// (`tls/<name>.pem` + `.key`), anything else gets the default one.
#[test]
fn sni_selects_the_domain_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let offset = free_offset();
    let s = Server::start(&data, offset, &["--hostname", "mail.example.com"]);
    let (st, _) = s.terminate();
    assert!(st.success());
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ])
        .args(["-days", "2", "-subj", "/CN=example.org", "-keyout"])
        .arg(data.join("tls/example.org.key"))
        .arg("-out")
        .arg(data.join("tls/example.org.pem"))
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", stderr(&made));
    let s = Server::start(&data, free_offset(), &[]);
    let subject = |sni: &str| {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl s_client -connect 127.0.0.1:{} -servername {sni} </dev/null 2>/dev/null \
                 | openssl x509 -noout -subject",
                s.port("https")
            ))
            .output()
            .unwrap();
        stdout(&out)
    };
    assert!(
        subject("example.org").contains("CN = example.org"),
        "{}",
        subject("example.org")
    );
    assert!(subject("www.example.org").contains("CN = example.org"));
    let default = subject("mail.example.com");
    assert!(
        !default.contains("example.org") && !default.trim().is_empty(),
        "{default}"
    );
}

/// Issue 2: imported sha-crypt (`$6$`, made by `openssl passwd -6`) and bcrypt hashes
/// verify, and the hash never reaches the config log.
#[test]
fn imported_password_hash_logs_in() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let hash = Command::new("openssl")
        .args(["passwd", "-6", "Imported-pass-1"])
        .output()
        .unwrap();
    let hash = stdout(&hash).trim().to_owned();
    assert!(hash.starts_with("$6$"), "{hash}");
    let out = s.keel(&["user", "add", "ivan@example.com", "--password-hash", &hash]);
    assert!(out.status.success(), "{}", stderr(&out));
    let url = http_url(&s, "/api/v1/login");
    assert_eq!(
        curl_login(&url, "ivan@example.com", "Imported-pass-1").0,
        200
    );
    assert_eq!(
        curl_login(&url, "ivan@example.com", "imported-pass-1").0,
        401
    );
    // After the upgrade to argon2id the same password still works.
    assert_eq!(
        curl_login(&url, "ivan@example.com", "Imported-pass-1").0,
        200
    );
    let config_log = std::fs::read_to_string(s.data.join("logs/config.log")).unwrap();
    assert!(
        !config_log.contains(&hash),
        "hash in the config log: {config_log}"
    );
    let bad = s.keel(&[
        "user",
        "add",
        "jo@example.com",
        "--password-hash",
        "plaintext",
    ]);
    assert!(!bad.status.success());
}

/// guide §25.1: per-log rotation by size keeps N files, set from the CLI.
#[test]
fn log_rotation_by_size_keeps_n_files() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let out = s.keel(&["log", "set", "config", "--max-size", "1KB", "--keep", "2"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&s.keel(&["log", "show"])).contains("max-size 1KB"));
    for i in 0..30 {
        let name = format!("Group{i}");
        assert!(
            s.keel(&["ipgroup", "add", &name, &format!("10.0.{i}.0/24")])
                .status
                .success()
        );
    }
    let logs = s.data.join("logs");
    assert!(logs.join("config.log.1").exists());
    assert!(logs.join("config.log.2").exists());
    assert!(!logs.join("config.log.3").exists());
    for f in ["config.log", "config.log.1", "config.log.2"] {
        let len = std::fs::metadata(logs.join(f)).unwrap().len();
        assert!(len <= 1024, "{f} has {len} bytes");
    }
    let live = std::fs::read_to_string(logs.join("config.log")).unwrap();
    assert!(live.contains("ipgroup add Group29"), "{live}");
    let bad = s.keel(&["log", "set", "mail", "--rotate", "fortnightly"]);
    assert!(!bad.status.success());
}

/// The first-run admin logs in over POP3 (plain on loopback) and POP3S with Python's
/// poplib: the binary wires the POP3 services to the same directory and store.
#[test]
fn pop3_services_accept_the_first_run_admin() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let script = r#"
import poplib, ssl, sys
port, sport, pw = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
p = poplib.POP3("127.0.0.1", port, timeout=10)
p.user("admin"); p.pass_(pw)
assert p.stat() == (0, 0), p.stat()
p.quit()
ctx = ssl._create_unverified_context()
q = poplib.POP3_SSL("127.0.0.1", sport, context=ctx, timeout=10)
q.user("admin@example.com"); q.pass_(pw)
print("stat", q.stat())
q.quit()
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &s.port("pop3").to_string(),
            &s.port("pop3s").to_string(),
            &s.admin_password(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("stat (0, 0)"));
}

/// End to end through the binary: Python's smtplib delivers on port 25 and on
/// submission (STARTTLS + AUTH), poplib reads the message back over POP3.
#[test]
fn smtp_to_pop3_end_to_end_with_python_clients() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    assert!(
        s.keel(&[
            "user",
            "add",
            "alice@example.com",
            "--password",
            "Alice-pass-1"
        ])
        .status
        .success()
    );
    let script = r#"
import poplib, smtplib, ssl, sys
smtp, sub, pop, pw = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
msg = "From: x@remote.test\r\nTo: alice@example.com\r\nSubject: hello over 25\r\n\r\nbody one\r\n"
with smtplib.SMTP("127.0.0.1", smtp, timeout=20) as c:
    code, banner = c.ehlo("client.test")
    assert code == 250, (code, banner)
    assert b"mail.example.com" in banner, banner
    c.sendmail("x@remote.test", ["alice@example.com"], msg)
with smtplib.SMTP("127.0.0.1", sub, timeout=20) as c:
    c.starttls(context=ssl._create_unverified_context())
    c.login("admin@example.com", pw)
    c.sendmail("admin@example.com", ["alice@example.com"],
               "From: admin@example.com\r\nTo: alice@example.com\r\nSubject: via submission\r\n\r\nbody two\r\n")
p = poplib.POP3("127.0.0.1", pop, timeout=20)
p.user("alice"); p.pass_("Alice-pass-1")
count, _ = p.stat()
assert count == 2, count
texts = [b"\n".join(p.retr(i)[1]) for i in (1, 2)]
assert any(b"Subject: hello over 25" in t for t in texts), texts
assert any(b"Subject: via submission" in t for t in texts), texts
assert all(b"Received: from" in t and b"Return-Path:" in t for t in texts), texts
p.quit()
print("ok")
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &s.port("smtp").to_string(),
            &s.port("submission").to_string(),
            &s.port("pop3").to_string(),
            &s.admin_password(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let mail_log = std::fs::read_to_string(s.data.join("logs/mail.log")).unwrap_or_default();
    assert!(
        mail_log.contains("Recv:") && mail_log.contains("alice@example.com"),
        "{mail_log}"
    );
}

/// guide §12.2: SMTP limits set from the CLI apply to the running server's next session;
/// unknown settings are refused by name.
#[test]
fn smtp_settings_from_the_cli_apply_without_restart() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    for u in ["a1", "a2", "a3"] {
        let addr = format!("{u}@example.com");
        assert!(
            s.keel(&["user", "add", &addr, "--password", "Some-pass-1"])
                .status
                .success()
        );
    }
    let out = s.keel(&["smtp", "set", r#"{"max_recipients": 2}"#]);
    assert!(out.status.success(), "{}", stderr(&out));
    let bad = s.keel(&["smtp", "set", r#"{"max_recipents": 2}"#]);
    assert!(!bad.status.success());
    assert!(stderr(&bad).contains("max_recipents"), "{}", stderr(&bad));
    let bad = s.keel(&["smtp", "set", r#"{"relay_ip_group": "Nope"}"#]);
    assert!(
        stderr(&bad).contains("no IP address group 'Nope'"),
        "{}",
        stderr(&bad)
    );
    assert!(stdout(&s.keel(&["smtp", "show"])).contains("\"max_recipients\": 2"));
    let script = r#"
import smtplib, sys
c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
c.ehlo("client.test")
c.mail("x@remote.test")
print([c.rcpt(f"a{i}@example.com")[0] for i in (1, 2, 3)])
c.quit()
"#;
    let out = Command::new("python3")
        .args(["-c", script, &s.port("smtp").to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "[250, 250, 452]");
}

/// Issue 3 §5 (durability): 20 clients send while the server is killed with SIGKILL.
/// After a restart every message that was answered 250 is in the mailbox exactly once,
/// and no message is there twice.
#[test]
fn kill_9_during_20_concurrent_senders_loses_no_acknowledged_message() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let offset = free_offset();
    let mut s = Server::start(&data, offset, &["--hostname", "mail.example.com"]);
    assert!(
        s.keel(&[
            "user",
            "add",
            "alice@example.com",
            "--password",
            "Alice-pass-1"
        ])
        .status
        .success()
    );
    let acked = tmp.path().join("acked.txt");
    let script = r#"
import smtplib, sys, threading, os
port, path = int(sys.argv[1]), sys.argv[2]
lock = threading.Lock()
out = open(path, "a")
def sender(t):
    n = 0
    while True:
        try:
            c = smtplib.SMTP("127.0.0.1", port, timeout=10)
            while True:
                subj = f"m-{t}-{n}"
                c.sendmail("x@remote.test", ["alice@example.com"],
                           f"From: x@remote.test\r\nTo: alice@example.com\r\nSubject: {subj}\r\n\r\n" + ("x" * 98 + "\r\n") * 20)
                with lock:
                    out.write(subj + "\n"); out.flush(); os.fsync(out.fileno())
                n += 1
        except Exception:
            return
threads = [threading.Thread(target=sender, args=(t,)) for t in range(20)]
for t in threads: t.start()
for t in threads: t.join()
"#;
    let mut clients = Command::new("python3")
        .args(["-c", script, &s.port("smtp").to_string()])
        .arg(&acked)
        .spawn()
        .unwrap();
    // Let the senders get going, then kill the server without warning.
    assert!(eventually(Duration::from_secs(30), || {
        std::fs::read_to_string(&acked)
            .map(|t| t.lines().count() >= 40)
            .unwrap_or(false)
    }));
    let _ = Command::new("kill")
        .args(["-KILL", &s.child.id().to_string()])
        .status();
    let _ = s.child.wait();
    let _ = wait_timeout(&mut clients, Duration::from_secs(30));
    let _ = clients.kill();
    drop(s);
    let acked: Vec<String> = std::fs::read_to_string(&acked)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert!(
        acked.len() >= 40,
        "only {} messages were acknowledged",
        acked.len()
    );

    let s = Server::start(&data, free_offset(), &[]);
    let script = r#"
import poplib, sys, re
p = poplib.POP3("127.0.0.1", int(sys.argv[1]), timeout=30)
p.user("alice"); p.pass_("Alice-pass-1")
count, _ = p.stat()
for i in range(1, count + 1):
    for line in p.top(i, 0)[1]:
        if line.startswith(b"Subject: "):
            print(line[9:].decode())
p.quit()
"#;
    let out = Command::new("python3")
        .args(["-c", script, &s.port("pop3").to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let stored: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    let mut seen = std::collections::HashMap::new();
    for subj in &stored {
        *seen.entry(subj.clone()).or_insert(0) += 1;
    }
    for subj in &acked {
        assert_eq!(
            seen.get(subj),
            Some(&1),
            "acknowledged message {subj} stored {:?} times",
            seen.get(subj)
        );
    }
    assert!(seen.values().all(|&n| n == 1), "a message was stored twice");
}

/// Issue 3 §6 through the binary: mail a user submits to an outside address is queued,
/// delivered through the configured relay host with SMTP AUTH (a Python sink), and logged;
/// `keel queue` lists a deferred message and deletes it.
#[test]
fn submitted_mail_is_relayed_and_the_queue_cli_manages_it() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("sink.json");
    let log = tmp.path().join("sink.jsonl");
    std::fs::write(&cfg, r#"{"auth": ["relayuser", "relay-pw"]}"#).unwrap();
    let sink_py = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../keel-smtp/tests/support/smtp_sink.py"
    );
    let mut sink = Command::new("python3")
        .arg(sink_py)
        .arg(&cfg)
        .arg(&log)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let port = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(sink.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().parse::<u16>().expect("sink prints its port")
    };
    let settings = format!(
        r#"{{"relay_host": "127.0.0.1:{port}", "relay_tls": "none",
            "relay_auth": {{"user": "relayuser", "password": "relay-pw"}}}}"#
    );
    let out = s.keel(&["smtp", "set", &settings]);
    assert!(out.status.success(), "{}", stderr(&out));

    let send = |subject: &str| {
        let script = r#"
import smtplib, ssl, sys
c = smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20)
c.starttls(context=ssl._create_unverified_context())
c.login("admin", sys.argv[2])
c.sendmail("admin@example.com", ["y@remote.test"],
           f"From: admin@example.com\r\nTo: y@remote.test\r\nSubject: {sys.argv[3]}\r\n\r\nhi\r\n")
c.quit()
"#;
        let out = Command::new("python3")
            .args([
                "-c",
                script,
                &s.port("submission").to_string(),
                &s.admin_password(),
                subject,
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    };
    send("relayed one");
    assert!(
        eventually(Duration::from_secs(20), || {
            std::fs::read_to_string(&log)
                .is_ok_and(|l| l.contains("y@remote.test") && l.contains("relayuser"))
        }),
        "the relay host never received the message"
    );
    assert!(eventually(Duration::from_secs(10), || {
        stdout(&s.keel(&["queue", "list"])).contains("0 message(s)")
    }));
    let mail_log = std::fs::read_to_string(s.data.join("logs/mail.log")).unwrap_or_default();
    assert!(
        mail_log.contains("Sent:") && mail_log.contains("y@remote.test"),
        "{mail_log}"
    );

    // A temporary failure keeps the message queued; the CLI shows and deletes it.
    std::fs::write(
        &cfg,
        r#"{"auth": ["relayuser", "relay-pw"], "rcpt": {"y@remote.test": "451 4.3.0 try later"}}"#,
    )
    .unwrap();
    send("deferred one");
    assert!(eventually(Duration::from_secs(20), || {
        stdout(&s.keel(&["queue", "list"])).contains("try later")
    }));
    let list = stdout(&s.keel(&["queue", "list", "--format", "json"]));
    assert!(
        list.contains("\"messages\": 1") || list.contains("\"messages\":1"),
        "{list}"
    );
    let out = s.keel(&["queue", "delete", "--recipient", "*@remote.test"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("1 message(s) deleted"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&s.keel(&["queue", "list"])).contains("0 message(s)"));
    let _ = sink.kill();
    let _ = sink.wait();
}

/// requirements-1 acceptance 1 through the binary: login-name rules over IMAP
/// (imaplib), and a message alice moves from INBOX to Projects over IMAP no longer
/// appears in POP3 LIST (POP3 sees INBOX only, guide §6.2).
#[test]
fn scenario_login_names_and_case_rules_imap_move_hides_from_pop3() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    assert!(
        s.keel(&[
            "user",
            "add",
            "alice@example.com",
            "--password",
            "Alice-pass-1"
        ])
        .status
        .success()
    );
    assert!(s.keel(&["domain", "add", "other.test"]).status.success());
    assert!(
        s.keel(&[
            "user",
            "add",
            "bob@other.test",
            "--password",
            "Bob-pass-123"
        ])
        .status
        .success()
    );
    let script = r#"
import imaplib, poplib, smtplib, sys
smtp, imap, pop = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
with smtplib.SMTP("127.0.0.1", smtp, timeout=20) as c:
    for i in (1, 2):
        c.sendmail("x@remote.test", ["alice@example.com"],
                   f"From: x@remote.test\r\nTo: alice@example.com\r\nSubject: n{i}\r\n\r\nhello\r\n")
def login(user, pw):
    m = imaplib.IMAP4("127.0.0.1", imap)
    try:
        m.login(user, pw)
        return m
    except imaplib.IMAP4.error:
        return None
assert login("alice", "Alice-pass-1")
assert login("ALICE@Example.COM", "Alice-pass-1")
assert login("alice", "ALICE-PASS-1") is None
assert login("bob", "Bob-pass-123") is None
assert login("bob@other.test", "Bob-pass-123")
m = login("alice@example.com", "Alice-pass-1")
m.create("Projects")
typ, data = m.select("INBOX")
assert data[0] == b"2", data
typ, data = m.uid("SEARCH", None, "SUBJECT", "n1")
uid = data[0].split()[0]
typ, data = m.uid("MOVE", uid, "Projects")
assert typ == "OK", (typ, data)
m.logout()
p = poplib.POP3("127.0.0.1", pop, timeout=20)
p.user("alice"); p.pass_("Alice-pass-1")
assert p.stat()[0] == 1, p.stat()
assert b"Subject: n2" in b"\n".join(p.top(1, 0)[1])
p.quit()
print("ok")
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &s.port("smtp").to_string(),
            &s.port("imap").to_string(),
            &s.port("pop3").to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

/// Issue 4 tests: mbsync (isync) synchronises a mailbox over IMAPS both ways — messages
/// arrive in a local Maildir, a flag set locally reaches the server, a folder created
/// locally is created on the server.
#[test]
fn mbsync_synchronises_over_imaps() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    assert!(
        s.keel(&[
            "user",
            "add",
            "alice@example.com",
            "--password",
            "Alice-pass-1"
        ])
        .status
        .success()
    );
    let send = r#"
import smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as c:
    for i in range(3):
        c.sendmail("x@remote.test", ["alice@example.com"],
                   f"From: x@remote.test\r\nTo: alice@example.com\r\nSubject: sync {i}\r\n\r\nbody {i}\r\n")
"#;
    let out = Command::new("python3")
        .args(["-c", send, &s.port("smtp").to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let tmp = tempfile::tempdir().unwrap();
    let maildir = tmp.path().join("mail");
    std::fs::create_dir_all(&maildir).unwrap();
    let cfg = tmp.path().join("mbsyncrc");
    std::fs::write(
        &cfg,
        format!(
            "IMAPAccount keel\nHost 127.0.0.1\nPort {port}\nUser alice@example.com\nPass Alice-pass-1\n\
             SSLType IMAPS\nCertificateFile {cert}\n\n\
             IMAPStore remote\nAccount keel\n\n\
             MaildirStore local\nPath {md}/\nInbox {md}/INBOX\nSubFolders Verbatim\n\n\
             Channel all\nFar :remote:\nNear :local:\nPatterns *\nCreate Both\nSyncState *\n",
            port = s.port("imaps"),
            cert = s.data.join("tls/cert.pem").display(),
            md = maildir.display()
        ),
    )
    .unwrap();
    let run = || {
        let out = Command::new("mbsync")
            .arg("-c")
            .arg(&cfg)
            .arg("-a")
            .output()
            .expect("mbsync is installed");
        assert!(
            out.status.success(),
            "mbsync failed:\n{}{}",
            stdout(&out),
            stderr(&out)
        );
    };
    run();
    let new_dir = maildir.join("INBOX/new");
    let cur_dir = maildir.join("INBOX/cur");
    let files: Vec<_> = std::fs::read_dir(&new_dir)
        .unwrap()
        .chain(std::fs::read_dir(&cur_dir).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 3, "{files:?}");
    // Mark one message seen locally and create a folder; sync back.
    let first = &files[0];
    let name = first.file_name().unwrap().to_string_lossy().to_string();
    let base = name.split(":2,").next().unwrap().to_owned();
    std::fs::rename(first, cur_dir.join(format!("{base}:2,S"))).unwrap();
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join("Projects").join(d)).unwrap();
    }
    run();
    let check = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("alice@example.com", "Alice-pass-1")
typ, data = m.list()
assert any(b"Projects" in l for l in data), data
m.select("INBOX")
typ, data = m.search(None, "SEEN")
assert len(data[0].split()) == 1, data
print("ok")
"#;
    let out = Command::new("python3")
        .args(["-c", check, &s.port("imap").to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

/// Issue 5 through the binary: the admin signs in to the JSON admin API with the printed
/// password (curl with a cookie jar), creates a user with the CSRF token, and that user
/// can read mail over POP3 at once; a change without the token is refused.
#[test]
fn admin_api_through_the_binary_creates_a_working_user() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let tmp = tempfile::tempdir().unwrap();
    let jar = tmp.path().join("jar");
    let base = format!("https://127.0.0.1:{}/admin/api/v1", s.port("https"));
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args([
                "-sk",
                "-c",
                jar.to_str().unwrap(),
                "-b",
                jar.to_str().unwrap(),
                "-w",
                "\n%{http_code}",
            ])
            .args(args)
            .output()
            .unwrap();
        let text = stdout(&out);
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse::<u16>().unwrap_or(0), body.to_owned())
    };
    let login = serde_json::json!({"login": "admin", "password": s.admin_password()}).to_string();
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data-binary",
        &login,
        &format!("{base}/session"),
    ]);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let csrf = v["csrf_token"].as_str().expect("csrf token").to_owned();
    let user = r#"{"address": "carol@example.com", "password": "Carol-pass-1"}"#;
    let (code, _) = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data-binary",
        user,
        &format!("{base}/users"),
    ]);
    assert_eq!(code, 403, "a change without the CSRF token must be refused");
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-H",
        &format!("x-csrf-token: {csrf}"),
        "--data-binary",
        user,
        &format!("{base}/users"),
    ]);
    assert!(code == 200 || code == 201, "{code} {body}");
    let (code, body) = curl(&[&format!("{base}/users?q=carol")]);
    assert_eq!(code, 200);
    assert!(body.contains("carol@example.com"), "{body}");
    let out = Command::new("python3")
        .args(["-c", "import poplib,sys; p=poplib.POP3('127.0.0.1', int(sys.argv[1])); p.user('carol'); p.pass_('Carol-pass-1'); print(p.stat()); p.quit()", &s.port("pop3").to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let config_log = std::fs::read_to_string(s.data.join("logs/config.log")).unwrap();
    assert!(
        config_log.contains("carol@example.com") && !config_log.contains("Carol-pass-1"),
        "{config_log}"
    );
    // guide §6.1: the services list shows each service's state on this node; a stop
    // through the API shows as stopped.
    let imap_state = |curl: &dyn Fn(&[&str]) -> (u16, String)| {
        let (code, body) = curl(&[&format!("{base}/services/imap")]);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        (
            v["state"].as_str().unwrap_or("").to_owned(),
            v["addresses"].to_string(),
        )
    };
    // guide §24.3: an open IMAP connection is listed with its client address and ends
    // when the admin disconnects it.
    let mut client = TcpStream::connect(("127.0.0.1", s.port("imap"))).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut greeting = [0u8; 256];
    let n = client.read(&mut greeting).unwrap();
    assert!(greeting[..n].starts_with(b"* OK"), "{:?}", &greeting[..n]);
    let me = client.local_addr().unwrap().to_string();
    let (code, body) = curl(&[&format!("{base}/connections")]);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let conn = v["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "imap" && c["peer"] == me.as_str())
        .unwrap_or_else(|| panic!("{me} not listed: {body}"))
        .clone();
    let (code, body) = curl(&[
        "-X",
        "DELETE",
        "-H",
        &format!("x-csrf-token: {csrf}"),
        &format!("{base}/connections/imap/{}", conn["id"]),
    ]);
    assert_eq!(code, 200, "{body}");
    // EOF (not the 10 s read timeout): the server closed the socket.
    let mut rest = Vec::new();
    let eof = client.read_to_end(&mut rest);
    assert!(eof.is_ok(), "the connection is still open: {eof:?}");
    let (code, _) = curl(&[
        "-X",
        "DELETE",
        "-H",
        &format!("x-csrf-token: {csrf}"),
        &format!("{base}/connections/imap/{}", conn["id"]),
    ]);
    assert_eq!(code, 404, "an ended connection is gone");
    let (state, addresses) = imap_state(&curl);
    assert_eq!(state, "running");
    assert!(
        addresses.contains(&s.port("imap").to_string()),
        "{addresses}"
    );
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("x-csrf-token: {csrf}"),
        &format!("{base}/services/imap/stop"),
    ]);
    assert_eq!(code, 200, "{body}");
    assert!(
        eventually(Duration::from_secs(10), || imap_state(&curl).0 == "stopped"),
        "{:?}",
        imap_state(&curl)
    );
}

/// guide §24.3 Secure/User/Info and §24.4 Opened folders through the binary: Python's
/// imaplib (IMAPS and plain IMAP), poplib (plain, and STLS without login) and smtplib
/// (submission, STARTTLS + AUTH) hold sessions open while curl reads the admin API; the
/// folder two sessions select is listed once with a reference count of 2 and leaves the
/// list after UNSELECT/CLOSE, the maildrop after QUIT.
#[test]
fn active_connections_show_secure_user_info_and_opened_folders() {
    use std::io::{BufRead, BufReader, Write};
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    for (user, pw) in [
        ("alice@example.com", "Alice-pass-1"),
        ("bob@example.com", "Bob-pass-1"),
    ] {
        let out = s.keel(&["user", "add", user, "--password", pw]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let script = r#"
import imaplib, poplib, smtplib, ssl, sys
imaps, imap, pop, sub = (int(a) for a in sys.argv[1:5])
ctx = ssl._create_unverified_context()
def step(name):
    print(name, flush=True)
    sys.stdin.readline()
a1 = imaplib.IMAP4_SSL("127.0.0.1", imaps, ssl_context=ctx, timeout=20)
a1.login("alice@example.com", "Alice-pass-1")
assert a1.select("INBOX")[0] == "OK"
a2 = imaplib.IMAP4("127.0.0.1", imap, timeout=20)
a2.login("alice@example.com", "Alice-pass-1")
assert a2.select("INBOX")[0] == "OK"
p = poplib.POP3("127.0.0.1", pop, timeout=20)
p.user("bob"); p.pass_("Bob-pass-1")
q = poplib.POP3("127.0.0.1", pop, timeout=20)
q.stls(context=ctx)
m = smtplib.SMTP("127.0.0.1", sub, timeout=20)
m.starttls(context=ctx)
m.login("bob@example.com", "Bob-pass-1")
ports = {k: v.sock.getsockname()[1] for k, v in
         {"a1": a1, "a2": a2, "p": p, "q": q, "m": m}.items()}
print(" ".join(f"{k}={v}" for k, v in ports.items()), flush=True)
step("opened")
assert a1.unselect()[0] == "OK"
assert a2.close()[0] == "OK"
step("closed")
p.quit(); q.quit(); m.quit(); a1.logout(); a2.logout()
step("done")
"#;
    let mut py = Command::new("python3")
        .args([
            "-c",
            script,
            &s.port("imaps").to_string(),
            &s.port("imap").to_string(),
            &s.port("pop3").to_string(),
            &s.port("submission").to_string(),
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdin = py.stdin.take().unwrap();
    let mut lines = BufReader::new(py.stdout.take().unwrap()).lines();
    let mut next_line = || lines.next().and_then(Result::ok).unwrap_or_default();
    let ports_line = next_line();
    let ports: std::collections::HashMap<String, String> = ports_line
        .split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(ports.len(), 5, "python: {ports_line}");
    assert_eq!(next_line(), "opened");

    let tmp = tempfile::tempdir().unwrap();
    let (curl, _csrf) = admin_curl(&s, &tmp.path().join("jar"), &s.admin_password());
    let base = format!("https://127.0.0.1:{}/admin/api/v1", s.port("https"));
    let get = |path: &str| {
        let (code, body) = curl(&[&format!("{base}{path}")]);
        assert_eq!(code, 200, "{path}: {body}");
        serde_json::from_str::<serde_json::Value>(&body).unwrap()
    };
    let conns = get("/connections");
    let by_port = |key: &str| {
        let peer = format!("127.0.0.1:{}", ports[key]);
        conns["connections"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["peer"] == peer.as_str())
            .unwrap_or_else(|| panic!("{key} ({peer}) not listed: {conns}"))
            .clone()
    };
    // The admin's own request: HTTPS, signed in, "Web administration".
    let admin = conns["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["service"] == "https" && c["info"] == "Web administration")
        .unwrap_or_else(|| panic!("the admin's connection is not listed: {conns}"));
    assert_eq!(admin["secure"], true, "{admin}");
    assert!(
        admin["user"]
            .as_str()
            .is_some_and(|u| u.starts_with("admin")),
        "{admin}"
    );
    let inbox = "Folder ~alice@example.com/INBOX";
    let (a1, a2, p, q, m) = (
        by_port("a1"),
        by_port("a2"),
        by_port("p"),
        by_port("q"),
        by_port("m"),
    );
    assert_eq!(
        (&a1["service"], &a1["secure"], &a1["user"], &a1["info"]),
        (
            &"imaps".into(),
            &true.into(),
            &"alice@example.com".into(),
            &inbox.into()
        ),
        "{a1}"
    );
    assert_eq!(
        (&a2["service"], &a2["secure"], &a2["user"], &a2["info"]),
        (
            &"imap".into(),
            &false.into(),
            &"alice@example.com".into(),
            &inbox.into()
        ),
        "{a2}"
    );
    assert_eq!(
        (&p["service"], &p["secure"], &p["user"]),
        (&"pop3".into(), &false.into(), &"bob@example.com".into()),
        "{p}"
    );
    // STLS without a login: secure, no user, nothing open.
    assert_eq!(
        (&q["secure"], &q["user"], &q["info"]),
        (&true.into(), &serde_json::Value::Null, &"".into()),
        "{q}"
    );
    assert_eq!(
        (&m["service"], &m["secure"], &m["user"], &m["info"]),
        (
            &"submission".into(),
            &true.into(),
            &"bob@example.com".into(),
            &"".into()
        ),
        "{m}"
    );
    let open = get("/folders/open");
    assert_eq!(
        open,
        serde_json::json!({"folders": [
            {"name": "~alice@example.com/INBOX", "users": ["alice@example.com"], "references": 2},
            {"name": "~bob@example.com/INBOX", "users": ["bob@example.com"], "references": 1},
        ]}),
    );

    writeln!(stdin).unwrap();
    assert_eq!(next_line(), "closed");
    let open = get("/folders/open");
    assert_eq!(
        open["folders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["name"].as_str().unwrap_or(""))
            .collect::<Vec<_>>(),
        ["~bob@example.com/INBOX"],
        "{open}"
    );
    let a1 = get("/connections")["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["peer"] == format!("127.0.0.1:{}", ports["a1"]).as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(a1["info"], "", "{a1}");
    assert_eq!(a1["user"], "alice@example.com", "{a1}");

    writeln!(stdin).unwrap();
    assert_eq!(next_line(), "done");
    assert!(
        eventually(Duration::from_secs(10), || get("/folders/open")["folders"]
            .as_array()
            .is_some_and(Vec::is_empty)),
        "{}",
        get("/folders/open")
    );
    writeln!(stdin).unwrap();
    assert!(py.wait().unwrap().success());
}

/// Issue 7 §5: `keel check` reports a clean store, finds a planted orphan blob, and
/// `--repair` (server stopped) removes it; `--repair` is refused while the server runs.
#[test]
fn keel_check_finds_and_repairs_an_orphan_blob() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let out = s.keel(&["check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = s.keel(&["check", "--repair"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("stop the server"), "{}", stderr(&out));
    let data = s.data.clone();
    let (status, _, tmp) = {
        let mut s = s;
        let tmp = s._tmp.take();
        let (st, rest) = s.terminate();
        (st, rest, tmp)
    };
    assert!(status.success());
    let orphan = data.join("blobs/ab/cd");
    std::fs::create_dir_all(&orphan).unwrap();
    std::fs::write(
        orphan.join(format!("abcd{}", "0".repeat(60))),
        b"not referenced",
    )
    .unwrap();
    let out = keel(&data, &["check"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let out = keel(&data, &["check", "--repair"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let out = keel(&data, &["check"]);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    drop(tmp);
}

/// Issue 8 through the binary: two `keel serve` nodes with their own data directories
/// share one PostgreSQL store. The first creates the domain and admin; the second joins
/// without creating anything; a user added through node 1's CLI logs in on node 2 at once.
/// Needs `KEEL_TEST_PG_URL` (scripts/test.sh starts a throw-away cluster and sets it).
#[test]
fn two_nodes_share_one_postgresql_store() {
    let Ok(base) = std::env::var("KEEL_TEST_PG_URL") else {
        eprintln!(
            "SKIPPED two_nodes_share_one_postgresql_store: KEEL_TEST_PG_URL is not set (scripts/test.sh sets it)"
        );
        return;
    };
    let schema = format!("keel_nodes_{}_{}", std::process::id(), free_offset());
    let out = Command::new("psql")
        .args([&base, "-q", "-c", &format!("CREATE SCHEMA {schema}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let url = format!("{base} options=-csearch_path={schema}");
    let tmp = tempfile::tempdir().unwrap();
    let node1 = Server::start(
        &tmp.path().join("n1"),
        free_offset(),
        &["--hostname", "mail.example.com", "--store", &url],
    );
    assert!(node1.summary.contains("Password:"), "{}", node1.summary);
    let node2 = Server::start(
        &tmp.path().join("n2"),
        free_offset(),
        &["--hostname", "mx2.example.com", "--store", &url],
    );
    assert!(
        !node2.summary.contains("Password:"),
        "node 2 must join, not create: {}",
        node2.summary
    );
    assert!(
        node2.summary.contains("Primary domain: example.com"),
        "{}",
        node2.summary
    );
    let out = node1.keel(&[
        "user",
        "add",
        "dana@example.com",
        "--password",
        "Dana-pass-12",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Mail accepted by node 1 is read on node 2.
    let script = r#"
import poplib, smtplib, sys
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as c:
    c.sendmail("x@remote.test", ["dana@example.com"], "Subject: across nodes\r\n\r\nhi\r\n")
p = poplib.POP3("127.0.0.1", int(sys.argv[2]), timeout=20)
p.user("dana"); p.pass_("Dana-pass-12")
print(p.stat()[0]); p.quit()
"#;
    // Bodies are shared too (PostgreSQL blobs): tests/migrate.rs reads on one node what
    // the other delivered.
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &node2.port("smtp").to_string(),
            &node2.port("pop3").to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert_eq!(stdout(&out).trim(), "1");
    let (code, _) = curl_login(&http_url(&node2, "/api/v1/login"), "dana", "Dana-pass-12");
    assert_eq!(code, 200);
    drop(node2);
    drop(node1);
    let _ = Command::new("psql")
        .args([&base, "-q", "-c", &format!("DROP SCHEMA {schema} CASCADE")])
        .output();
}

/// DESIGN §4 (change notifications cross nodes with LISTEN/NOTIFY, issue 8): an IMAP IDLE
/// on node B reports a message delivered through node A's SMTP (tests/migrate.rs reads
/// the body across nodes).
#[test]
fn imap_idle_on_node_b_sees_a_delivery_on_node_a() {
    let Ok(base) = std::env::var("KEEL_TEST_PG_URL") else {
        eprintln!(
            "SKIPPED imap_idle_on_node_b_sees_a_delivery_on_node_a: KEEL_TEST_PG_URL is not set (scripts/test.sh sets it)"
        );
        return;
    };
    let schema = format!("keel_idle_{}_{}", std::process::id(), free_offset());
    let out = Command::new("psql")
        .args([&base, "-q", "-c", &format!("CREATE SCHEMA {schema}")])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let url = format!("{base} options=-csearch_path={schema}");
    let tmp = tempfile::tempdir().unwrap();
    let node_a = Server::start(
        &tmp.path().join("a"),
        free_offset(),
        &["--hostname", "mail.example.com", "--store", &url],
    );
    let node_b = Server::start(
        &tmp.path().join("b"),
        free_offset(),
        &["--hostname", "mx2.example.com", "--store", &url],
    );
    let out = node_a.keel(&[
        "user",
        "add",
        "erin@example.com",
        "--password",
        "Erin-pass-12",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // IDLE on B first, then deliver through A, then wait (5 s at most) for EXISTS on B.
    let script = r#"
import imaplib, smtplib, socket, sys, time
b = imaplib.IMAP4("127.0.0.1", int(sys.argv[2]), timeout=20)
b.login("erin", "Erin-pass-12")
typ, data = b.select("INBOX")
assert typ == "OK" and data[0] == b"0", (typ, data)
tag = b._new_tag()
b.send(tag + b" IDLE\r\n")
line = b.readline()
assert line.startswith(b"+"), line
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=20) as a:
    a.sendmail("x@remote.test", ["erin@example.com"], "Subject: idle\r\n\r\nhi\r\n")
start = time.monotonic()
b.sock.settimeout(5)
while True:
    try:
        line = b.readline()
    except socket.timeout:
        print("TIMEOUT"); sys.exit(1)
    if not line:
        print("CLOSED"); sys.exit(1)
    if line.strip().endswith(b"EXISTS"):
        print(line.decode().strip(), "%.2f" % (time.monotonic() - start))
        break
b.send(b"DONE\r\n")
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            &node_a.port("smtp").to_string(),
            &node_b.port("imap").to_string(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("* 1 EXISTS"), "{text}");
    drop(node_b);
    drop(node_a);
    let _ = Command::new("psql")
        .args([&base, "-q", "-c", &format!("DROP SCHEMA {schema} CASCADE")])
        .output();
}

/// A curl session with a cookie jar against the admin API of `s` (HTTPS): signs in as the
/// printed admin and returns a caller of `(method, path, body) -> (status, body)` plus the
/// CSRF token.
fn admin_curl(
    s: &Server,
    jar: &std::path::Path,
    password: &str,
) -> (impl Fn(&[&str]) -> (u16, String) + use<>, String) {
    let jar = jar.to_str().unwrap().to_owned();
    let curl = move |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sk", "-c", &jar, "-b", &jar, "-w", "\n%{http_code}"])
            .args(args)
            .output()
            .unwrap();
        let text = stdout(&out);
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse::<u16>().unwrap_or(0), body.to_owned())
    };
    let login = serde_json::json!({"login": "admin", "password": password}).to_string();
    let base = format!("https://127.0.0.1:{}/admin/api/v1", s.port("https"));
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "--data-binary",
        &login,
        &format!("{base}/session"),
    ]);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    (
        curl,
        v["csrf_token"].as_str().expect("csrf token").to_owned(),
    )
}

/// `METHOD url` with a JSON body and the CSRF token through an [`admin_curl`] session.
fn send_json(
    curl: &impl Fn(&[&str]) -> (u16, String),
    csrf: &str,
    method: &str,
    url: &str,
    json: &str,
) -> (u16, String) {
    curl(&[
        "-X",
        method,
        "-H",
        "content-type: application/json",
        "-H",
        &format!("x-csrf-token: {csrf}"),
        "--data-binary",
        json,
        url,
    ])
}

/// A counter of a `GET /statistics` answer.
fn stat(report: &serde_json::Value, key: &str) -> u64 {
    report["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .flat_map(|g| g["counters"].as_array().expect("counters"))
        .find(|c| c["key"] == key)
        .and_then(|c| c["value"].as_u64())
        .unwrap_or_else(|| panic!("no counter {key} in {report}"))
}

/// guide §24.6 through the binary: smtplib sends two messages, one with an `.exe`
/// attachment the attachment filter removes, and the GTUBE string (rejected as spam at
/// DATA), imaplib moves one message into Junk E-mail; the statistics
/// API, `/metrics` (loopback, no session) and `keel stats show` count them. After a
/// restart on the same data directory the counts and the start time are kept; a reset
/// (config-log line) gives zeros and a new start time.
#[test]
fn statistics_count_real_traffic_and_survive_a_restart() {
    // Traffic charts (guide §24.5) sampled every second instead of 20 s.
    let fast = [("KEEL_TRAFFIC_SAMPLE_SECS", "1")];
    let s = Server::start_fresh_with_env(&["--hostname", "mail.example.com"], &fast);
    let password = s.admin_password();
    let out = s.keel(&[
        "user",
        "add",
        "alice@example.com",
        "--password",
        "Alice-pass-1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = s.keel(&["spam", "set", r#"{"block_score": 9.0}"#]);
    assert!(out.status.success(), "{}", stderr(&out));
    let rule = r#"{"attachments": {"enabled": true, "rules": [{"enabled": true, "kind": "file_name", "pattern": "*.exe", "action": "block"}]}}"#;
    let out = s.keel(&["antivirus", "set", rule]);
    assert!(out.status.success(), "{}", stderr(&out));
    let script = r#"
import imaplib, smtplib, sys
from email.message import EmailMessage
smtp, imap = int(sys.argv[1]), int(sys.argv[2])
att = EmailMessage()
att["From"], att["To"], att["Subject"] = "x@remote.test", "alice@example.com", "tool"
att.set_content("see attached")
att.add_attachment(b"MZ not really", maintype="application", subtype="octet-stream", filename="tool.exe")
gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
with smtplib.SMTP("127.0.0.1", smtp, timeout=20) as c:
    for i in (1, 2):
        c.sendmail("x@remote.test", ["alice@example.com"],
                   f"From: x@remote.test\r\nTo: alice@example.com\r\nSubject: m{i}\r\n\r\nhello\r\n")
    c.send_message(att)
    try:
        c.sendmail("x@remote.test", ["alice@example.com"],
                   f"From: x@remote.test\r\nSubject: spam\r\n\r\n{gtube}\r\n")
        raise SystemExit("GTUBE was accepted")
    except smtplib.SMTPDataError as e:
        assert e.smtp_code == 554, e
m = imaplib.IMAP4("127.0.0.1", imap)
m.login("alice", "Alice-pass-1")
typ, data = m.select("INBOX")
assert data[0] == b"3", data
typ, data = m.uid("SEARCH", None, "SUBJECT", "m1")
typ, data = m.uid("MOVE", data[0].split()[0], '"Junk E-mail"')
assert typ == "OK", (typ, data)
m.logout()
print("done")
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .args([s.port("smtp").to_string(), s.port("imap").to_string()])
        .output()
        .unwrap();
    assert!(
        stdout(&out).contains("done"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let tmp = tempfile::tempdir().unwrap();
    let (curl, _) = admin_curl(&s, &tmp.path().join("jar"), &password);
    let stats_url = format!(
        "https://127.0.0.1:{}/admin/api/v1/statistics",
        s.port("https")
    );
    let (code, body) = curl(&[&stats_url]);
    assert_eq!(code, 200, "{body}");
    let r: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stat(&r, "messages_received"), 3, "{r}");
    assert_eq!(stat(&r, "messages_delivered_local"), 3, "{r}");
    assert_eq!(stat(&r, "spam_rejected"), 1, "{r}");
    assert_eq!(stat(&r, "spam_checked"), 4, "{r}");
    assert_eq!(stat(&r, "prohibited_attachments"), 1, "{r}");
    assert_eq!(stat(&r, "av_attachments_checked"), 1, "{r}");
    assert_eq!(
        stat(&r, "av_messages_checked"),
        0,
        "the virus scanner is off: {r}"
    );
    assert_eq!(stat(&r, "spam_marked_by_users"), 1, "{r}");
    assert_eq!(stat(&r, "connections.smtp"), 1, "{r}");
    assert_eq!(stat(&r, "connections.imap"), 1, "{r}");
    assert!(stat(&r, "connections.https") >= 2, "{r}");
    assert_eq!(stat(&r, "storage_messages"), 3, "{r}");
    assert!(stat(&r, "storage_bytes") > 0, "{r}");
    let started = r["started_at_unix"].as_i64().expect("start time");
    assert!(r["uptime_seconds"].as_u64().is_some(), "{r}");

    // guide §24.5: the traffic charts count the same connections and messages.
    let traffic =
        |s: &Server, curl: &dyn Fn(&[&str]) -> (u16, String), series: &str, range: &str| {
            let url = format!(
                "https://127.0.0.1:{}/admin/api/v1/traffic/{series}?range={range}",
                s.port("https")
            );
            let (code, body) = curl(&[&url]);
            assert_eq!(code, 200, "{body}");
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            v["points"]
                .as_array()
                .expect("points")
                .iter()
                .map(|p| p[1].as_u64().unwrap_or(0))
                .sum::<u64>()
        };
    assert!(
        eventually(Duration::from_secs(15), || {
            traffic(&s, &curl, "messages.received", "2h") == 3
                && traffic(&s, &curl, "connections.imap", "2h") == 1
                && traffic(&s, &curl, "messages.spam", "1d") == 1
        }),
        "the traffic charts never showed the traffic"
    );
    let svg_url = format!(
        "https://127.0.0.1:{}/admin/api/v1/traffic/messages.received/chart.svg?range=2h",
        s.port("https")
    );
    let (code, svg) = curl(&["-i", &svg_url]);
    assert_eq!(code, 200, "{svg}");
    assert!(svg.contains("image/svg+xml"), "{svg}");
    assert!(svg.contains("data-total=\"3\""), "{svg}");

    // /metrics: a loopback client needs no session.
    let out = Command::new("curl")
        .args(["-s", "-w", "\n%{http_code}"])
        .arg(http_url(&s, "/metrics"))
        .output()
        .unwrap();
    let text = stdout(&out);
    assert!(text.ends_with("\n200"), "{text}");
    for line in [
        "keel_messages_received_total 3\n",
        "keel_prohibited_attachments_total 1\n",
        "keel_spam_rejected_total 1\n",
        "keel_viruses_found_total 0\n",
        "keel_connections_total{service=\"imap\"} 1\n",
        "keel_connections_total{service=\"smtp\"} 1\n",
        "keel_storage_messages 3\n",
    ] {
        assert!(text.contains(line), "{line} missing in:\n{text}");
    }

    // The CLI reads the saved totals (flushed every few seconds).
    assert!(
        eventually(Duration::from_secs(15), || {
            let out = s.keel(&["stats", "show", "--format", "json"]);
            serde_json::from_str::<serde_json::Value>(&stdout(&out))
                .is_ok_and(|v| stat(&v, "messages_received") == 3 && stat(&v, "spam_rejected") == 1)
        }),
        "keel stats show never saw the counts"
    );
    let out = s.keel(&["stats", "show"]);
    assert!(
        stdout(&out).contains("Spam Filter Statistics"),
        "{}",
        stdout(&out)
    );

    // Restart on the same data directory: counts and start time are kept.
    let data = s.data.clone();
    let tmp_data = {
        let mut s = s;
        let tmp = s._tmp.take();
        let (status, _) = s.terminate();
        assert!(status.success());
        tmp
    };
    let s = Server::start_with_env(&data, free_offset(), &[], &fast);
    let (curl, csrf) = admin_curl(&s, &tmp.path().join("jar2"), &password);
    // The traffic history was saved at shutdown and read back.
    assert_eq!(traffic(&s, &curl, "messages.received", "1d"), 3);
    let stats_url = format!(
        "https://127.0.0.1:{}/admin/api/v1/statistics",
        s.port("https")
    );
    let (code, body) = curl(&[&stats_url]);
    assert_eq!(code, 200, "{body}");
    let r: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stat(&r, "messages_received"), 3, "{r}");
    assert_eq!(stat(&r, "spam_rejected"), 1, "{r}");
    assert_eq!(stat(&r, "prohibited_attachments"), 1, "{r}");
    assert_eq!(stat(&r, "connections.imap"), 1, "{r}");
    assert_eq!(r["started_at_unix"].as_i64(), Some(started), "{r}");

    // Reset: zeros, a new start time, a config-log line.
    std::thread::sleep(Duration::from_millis(1100));
    let (code, body) = curl(&[
        "-X",
        "POST",
        "-H",
        &format!("x-csrf-token: {csrf}"),
        &format!("{stats_url}/reset"),
    ]);
    assert_eq!(code, 200, "{body}");
    let r: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(stat(&r, "messages_received"), 0, "{r}");
    assert_eq!(stat(&r, "spam_rejected"), 0, "{r}");
    assert!(r["started_at_unix"].as_i64().unwrap() > started, "{r}");
    let config_log = std::fs::read_to_string(data.join("logs/config.log")).unwrap();
    assert!(config_log.contains("Statistics"), "{config_log}");
    let out = s.keel(&["stats", "reset"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Statistics reset"),
        "{}",
        stdout(&out)
    );
    drop(s);
    drop(tmp_data);
}

/// Issue 4 item 3, for the administrator: folder ACLs from the CLI and the admin API
/// (guide ch. 26, RFC 4314). alice's folder is shared with bob by `keel acl set` (a guide
/// level), bob's imaplib sees it with the rights given; the API shows and changes the ACL,
/// refuses bad rights at the field, and removing the entry takes the folder away again.
#[test]
fn folder_acls_from_the_cli_and_the_admin_api() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let password = s.admin_password();
    for (u, pw) in [("alice", "Alice-pass-1"), ("bob", "Bob-pass-12")] {
        let out = s.keel(&["user", "add", &format!("{u}@example.com"), "--password", pw]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let imap = s.port("imap").to_string();
    let run = |script: &str| {
        let out = Command::new("python3")
            .args(["-c", script, &imap])
            .output()
            .unwrap();
        (stdout(&out), stderr(&out))
    };
    let (out, err) = run(r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("alice", "Alice-pass-1")
print(m.create("Projects")[0])
m.logout()
"#);
    assert!(out.contains("OK"), "{out}{err}");
    let out = s.keel(&["acl", "set", "alice@example.com/Projects", "bob", "read"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("bob@example.com"), "{}", stdout(&out));
    let bob = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("bob", "Bob-pass-12")
typ, data = m.list('"Other Users/alice@example.com"', "*")
print("LIST", typ, [d.decode() for d in data if d])
typ, data = m.myrights('"Other Users/alice@example.com/Projects"')
print("MYRIGHTS", typ, [d.decode() for d in data if d])
m.logout()
"#;
    let (out, err) = run(bob);
    assert!(
        out.contains("Other Users/alice@example.com/Projects"),
        "{out}{err}"
    );
    assert!(
        out.contains("MYRIGHTS OK") && out.contains(" lr"),
        "{out}{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let (curl, csrf) = admin_curl(&s, &tmp.path().join("jar"), &password);
    let base = format!("https://127.0.0.1:{}/admin/api/v1/acl", s.port("https"));
    let (code, body) = curl(&[&format!("{base}?folder=alice@example.com/Projects")]);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["entries"][0]["identifier"], "alice@example.com");
    assert_eq!(v["entries"][1]["identifier"], "bob@example.com");
    assert_eq!(v["entries"][1]["rights"], "lr");
    let (code, body) = curl(&[&base]);
    assert_eq!(code, 200, "{body}");
    let all: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        all["folders"][0]["folder"], "alice@example.com/Projects",
        "{all}"
    );
    assert_eq!(
        all["folders"][0]["entries"][0]["identifier"],
        "bob@example.com"
    );
    let put = |json: &str| send_json(&curl, &csrf, "PUT", &base, json);
    let (code, body) =
        put(r#"{"folder": "alice@example.com/Projects", "identifier": "bob", "rights": "+qz"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"field\":\"rights\""), "{body}");
    let (code, body) =
        put(r#"{"folder": "alice@example.com/Projects", "identifier": "bob", "rights": "+swi"}"#);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"rights\":\"lrswi\""), "{body}");
    let (code, body) =
        put(r#"{"folder": "alice@example.com/Nowhere", "identifier": "bob", "rights": "lr"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"field\":\"folder\""), "{body}");
    let (code, body) = curl(&[
        "-X",
        "DELETE",
        "-H",
        &format!("x-csrf-token: {csrf}"),
        &format!("{base}?folder=alice@example.com/Projects&identifier=bob@example.com"),
    ]);
    assert_eq!(code, 200, "{body}");
    assert!(!body.contains("bob@example.com"), "{body}");
    let (out, err) = run(bob);
    assert!(!out.contains("Projects"), "{out}{err}");
    let log = std::fs::read_to_string(s.data.join("logs/config.log")).unwrap();
    assert!(
        log.contains("acl set alice@example.com/Projects bob"),
        "{log}"
    );
    assert!(
        log.contains("update FolderAcl set Name='alice@example.com/Projects'"),
        "{log}"
    );
    // After a RENAME the list names the folder by its new name.
    let out = s.keel(&["acl", "set", "alice@example.com/Projects", "bob", "read"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (out, err) = run(r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("alice", "Alice-pass-1")
print(m.rename("Projects", "Work")[0])
m.logout()
"#);
    assert!(out.contains("OK"), "{out}{err}");
    let (code, body) = curl(&[&base]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("alice@example.com/Work"), "{body}");
    assert!(!body.contains("alice@example.com/Projects"), "{body}");
}

/// Issue 4: the special-use folder names of a domain, set with `keel domain set
/// --folder-name` and through the admin API (curl); imaplib's LIST (SPECIAL-USE) of a new
/// mailbox shows them, a bad name is refused at its field.
#[test]
fn special_folder_names_per_domain_from_the_cli_and_the_admin_api() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let password = s.admin_password();
    let out = s.keel(&[
        "domain",
        "set",
        "example.com",
        "--folder-name",
        "junk=Spam",
        "--folder-name",
        "sent=Sent",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = s.keel(&[
        "domain",
        "set",
        "example.com",
        "--folder-name",
        "outbox=Out",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown special use"),
        "{}",
        stderr(&out)
    );

    let tmp = tempfile::tempdir().unwrap();
    let (curl, csrf) = admin_curl(&s, &tmp.path().join("jar"), &password);
    let url = format!(
        "https://127.0.0.1:{}/admin/api/v1/domains/example.com",
        s.port("https")
    );
    let patch = |json: &str| send_json(&curl, &csrf, "PATCH", &url, json);
    let (code, body) = patch(r#"{"settings":{"folder_names":{"trash":"INBOX"}}}"#);
    assert_eq!(code, 400, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["field"], "settings.folder_names.trash", "{body}");
    let (code, body) = patch(r#"{"settings":{"folder_names":{"trash":"Trash"}}}"#);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["settings"]["folder_names"],
        serde_json::json!({"junk": "Spam", "sent": "Sent", "trash": "Trash"}),
        "the CLI's names stay: {body}"
    );

    let out = s.keel(&[
        "user",
        "add",
        "carol@example.com",
        "--password",
        "Carol-pass-1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = Command::new("python3")
        .args([
            "-c",
            r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("carol", "Carol-pass-1")
typ, data = m.list()
typ, data = m._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
for line in m._untagged_response(typ, data, "LIST")[1]:
    print(line.decode())
m.logout()
"#,
            &s.port("imap").to_string(),
        ])
        .output()
        .unwrap();
    let listed = stdout(&out);
    for want in [
        r#"\Junk) "/" Spam"#,
        r#"\Sent) "/" Sent"#,
        r#"\Trash) "/" Trash"#,
        r#"\Drafts) "/" Drafts"#,
        r#"\Archive) "/" Archive"#,
    ] {
        assert!(listed.contains(want), "{want} in {listed}{}", stderr(&out));
    }
    assert!(!listed.contains("Junk E-mail"), "{listed}");
}

/// guide §7.1 "Advanced", §26.1 through the binary: `keel public-folders global` makes one
/// set of public folders for every domain. A public-folder admin of example.com creates
/// one over IMAP, a user of other.test reads it (imaplib) and gets a message delivered to
/// it through an alias of his own domain (smtplib); the admin API (curl) switches back to
/// per-domain folders and the folder is hidden from other.test again.
#[test]
fn global_public_folders_from_the_cli_and_the_admin_api() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let password = s.admin_password();
    for args in [
        &["domain", "add", "other.test"][..],
        &[
            "user",
            "add",
            "alice@example.com",
            "--password",
            "Alice-pass-1",
            "--public-folder-admin",
            "true",
        ],
        &[
            "user",
            "add",
            "dave@other.test",
            "--password",
            "Dave-pass-12",
        ],
        &["alias", "add", "news@other.test", "#public/Company"],
    ] {
        let out = s.keel(args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    }
    let out = s.keel(&["public-folders", "show"]);
    assert!(
        stdout(&out).contains("separate for each domain"),
        "{}",
        stdout(&out)
    );
    let out = s.keel(&["public-folders", "global"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("shared by all domains"),
        "{}",
        stdout(&out)
    );

    let imap = s.port("imap").to_string();
    let smtp = s.port("smtp").to_string();
    let run = |script: &str| {
        let out = Command::new("python3")
            .args(["-c", script, &imap, &smtp])
            .output()
            .unwrap();
        (stdout(&out), stderr(&out))
    };
    let (out, err) = run(r#"
import imaplib, smtplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("alice@example.com", "Alice-pass-1")
print("CREATE", m.create('"Public Folders/Company"')[0])
print("APPEND", m.append('"Public Folders/Company"', None, None,
      b"From: alice@example.com\r\nSubject: welcome all\r\n\r\nhello\r\n")[0])
m.logout()
with smtplib.SMTP("127.0.0.1", int(sys.argv[2]), timeout=20) as c:
    c.sendmail("x@remote.test", ["news@other.test"],
               "From: x@remote.test\r\nTo: news@other.test\r\nSubject: via alias\r\n\r\nhi\r\n")
print("SENT")
"#);
    assert!(
        out.contains("CREATE OK") && out.contains("APPEND OK") && out.contains("SENT"),
        "{out}{err}"
    );
    let dave = r#"
import imaplib, sys
m = imaplib.IMAP4("127.0.0.1", int(sys.argv[1]))
m.login("dave@other.test", "Dave-pass-12")
typ, data = m.list('"Public Folders"', "*")
print("LIST", [d.decode() for d in data if d])
typ, data = m.select('"Public Folders/Company"', readonly=True)
print("SELECT", typ, data)
if typ == "OK":
    typ, data = m.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
    print("FETCH", [d[1].decode().strip() for d in data if isinstance(d, tuple)])
    typ, data = m.append('"Public Folders/Company"', None, None, b"Subject: x\r\n\r\nx\r\n")
    print("APPEND", typ)
m.logout()
"#;
    let (out, err) = run(dave);
    assert!(out.contains("Public Folders/Company"), "{out}{err}");
    assert!(out.contains("SELECT OK [b'2']"), "{out}{err}");
    assert!(
        out.contains("Subject: welcome all") && out.contains("Subject: via alias"),
        "{out}{err}"
    );
    assert!(out.contains("APPEND NO"), "read-only for users: {out}{err}");

    let tmp = tempfile::tempdir().unwrap();
    let (curl, csrf) = admin_curl(&s, &tmp.path().join("jar"), &password);
    let url = format!(
        "https://127.0.0.1:{}/admin/api/v1/public-folders",
        s.port("https")
    );
    let (code, body) = curl(&[&url]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"scope\":\"global\""), "{body}");
    let put = |json: &str| send_json(&curl, &csrf, "PUT", &url, json);
    let (code, body) = put(r#"{"scope":"everywhere"}"#);
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("\"field\":\"scope\""), "{body}");
    let (code, body) = put(r#"{"scope":"per-domain"}"#);
    assert_eq!(code, 200, "{body}");
    let (out, err) = run(dave);
    assert!(
        !out.contains("Public Folders/Company"),
        "hidden again: {out}{err}"
    );
    assert!(out.contains("SELECT NO"), "{out}{err}");
}
