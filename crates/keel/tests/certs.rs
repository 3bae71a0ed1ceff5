//! Server certificates (guide ch. 16, requirements-2 §16 and acceptance scenario 10)
//! through the real binary: curl drives the admin API, openssl builds a test CA, an
//! intermediate, leaves, a PKCS#12 file and checks the CSR, and `openssl s_client` checks
//! which certificate and chain the running server presents, without a restart.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{Server, eventually, stderr, stdout};
use serde_json::{Value, json};

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out) + &stderr(&out)
}

/// A root CA, an intermediate it signed, and a leaf for `names` signed by the
/// intermediate, in `dir` (ca.pem, int.pem, leaf.pem, leaf.key).
fn test_pki(dir: &Path, names: &[&str]) {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-days",
        "3",
        "-subj",
        "/CN=Keel Test Root",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(dir, &a);
    std::fs::write(
        dir.join("int.ext"),
        "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n",
    )
    .unwrap();
    let mut a = vec!["req"];
    a.extend(ec);
    a.extend([
        "-subj",
        "/CN=Keel Test Intermediate",
        "-keyout",
        "int.key",
        "-out",
        "int.csr",
    ]);
    openssl(dir, &a);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "int.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3",
            "-extfile",
            "int.ext",
            "-out",
            "int.pem",
        ],
    );
    let mut a = vec!["req"];
    a.extend(ec);
    let subj = format!("/CN={}", names[0]);
    a.extend(["-subj", &subj, "-keyout", "leaf.key", "-out", "leaf.csr"]);
    openssl(dir, &a);
    sign_leaf(dir, "leaf.csr", names, "leaf.pem");
}

/// Signs a CSR with the test intermediate, with `names` as DNS subjectAltNames.
fn sign_leaf(dir: &Path, csr: &str, names: &[&str], out: &str) {
    let sans: Vec<String> = names.iter().map(|n| format!("DNS:{n}")).collect();
    std::fs::write(
        dir.join("leaf.ext"),
        format!(
            "subjectAltName={}\nextendedKeyUsage=serverAuth\n",
            sans.join(",")
        ),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            "int.pem",
            "-CAkey",
            "int.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "leaf.ext",
            "-out",
            out,
        ],
    );
}

/// An admin API client: curl with a cookie jar and the CSRF token.
struct Api {
    base: String,
    jar: String,
    csrf: String,
}

impl Api {
    fn login(s: &Server, dir: &Path, login: &str, password: &str) -> Self {
        let mut api = Self {
            base: format!("https://127.0.0.1:{}/admin/api/v1", s.port("https")),
            jar: dir.join(format!("jar-{login}")).display().to_string(),
            csrf: String::new(),
        };
        let (code, body) = api.call(
            "POST",
            "/session",
            Some(&json!({"login": login, "password": password})),
        );
        assert_eq!(code, 200, "{body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        api.csrf = v["csrf_token"].as_str().unwrap().to_owned();
        api
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, String) {
        let mut cmd = Command::new("curl");
        cmd.args([
            "-sk",
            "-c",
            &self.jar,
            "-b",
            &self.jar,
            "-w",
            "\n%{http_code}",
        ])
        .args(["-X", method])
        .args(["-H", &format!("x-csrf-token: {}", self.csrf)]);
        if let Some(b) = body {
            cmd.args(["-H", "content-type: application/json"])
                .args(["--data-binary", &b.to_string()]);
        }
        let out = cmd.arg(format!("{}{path}", self.base)).output().unwrap();
        let text = stdout(&out);
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    fn json(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (code, text) = self.call(method, path, body);
        assert_eq!(code, 200, "{method} {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

/// The certificates `openssl s_client -showcerts` receives on `port` (PEM blocks), and
/// its verification line against `ca` when given.
fn presented(port: u16, sni: &str, ca: Option<&Path>) -> (Vec<String>, String) {
    let mut cmd = Command::new("openssl");
    cmd.args(["s_client", "-showcerts", "-connect"])
        .arg(format!("127.0.0.1:{port}"))
        .args(["-servername", sni]);
    if let Some(ca) = ca {
        cmd.arg("-CAfile").arg(ca);
    }
    let out = cmd
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client");
    let text = stdout(&out);
    let mut blocks = Vec::new();
    let mut rest = text.as_str();
    while let Some(start) = rest.find("-----BEGIN CERTIFICATE-----") {
        let end = rest[start..]
            .find("-----END CERTIFICATE-----")
            .map(|e| start + e + 25)
            .unwrap_or(rest.len());
        blocks.push(rest[start..end].to_owned());
        rest = &rest[end..];
    }
    let verify = text
        .lines()
        .find(|l| l.trim_start().starts_with("Verify return code"))
        .unwrap_or_default()
        .to_owned();
    (blocks, verify)
}

fn subject_of(pem: &str, dir: &Path) -> String {
    std::fs::write(dir.join("tmp-subject.pem"), pem).unwrap();
    openssl(
        dir,
        &["x509", "-in", "tmp-subject.pem", "-noout", "-subject"],
    )
}

/// requirements-2 acceptance scenario 10 (second point): import a concatenated PEM
/// (server certificate plus intermediate), set it active, and clients see the
/// 2-certificate chain on 993, 465 and 995 (and HTTPS), without a restart; the chain
/// verifies against the test root; `/server.cer` is the new leaf in DER.
#[test]
fn import_concatenated_pem_with_intermediate_then_clients_see_the_chain() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    // Scenario 10, first point: a fresh server presents a self-signed certificate for its
    // hostname, and its files exist.
    let (certs, _) = presented(s.port("imaps"), "mail.example.com", None);
    assert_eq!(certs.len(), 1);
    let first = subject_of(&certs[0], dir);
    assert!(first.contains("mail.example.com"), "{first}");
    assert!(s.data.join("tls/cert.pem").exists() && s.data.join("tls/key.pem").exists());

    test_pki(dir, &["mail.example.com"]);
    let leaf = std::fs::read_to_string(dir.join("leaf.pem")).unwrap();
    let int = std::fs::read_to_string(dir.join("int.pem")).unwrap();
    let key = std::fs::read_to_string(dir.join("leaf.key")).unwrap();
    // guide §16.1 "Remotely": server certificate first, then the intermediate, one text.
    let concatenated = format!("{leaf}{int}{key}");

    let api = Api::login(&s, dir, "admin", &s.admin_password());
    let before = api.json("GET", "/certificates", None);
    assert_eq!(
        before["certificates"].as_array().unwrap().len(),
        1,
        "{before}"
    );
    assert_eq!(before["certificates"][0]["active_default"], true);

    let imported = api.json(
        "POST",
        "/certificates/import",
        Some(&json!({"certificate": concatenated, "name": "CA-signed"})),
    );
    assert_eq!(imported["chain_length"], 2, "{imported}");
    assert_eq!(imported["self_signed"], false);
    assert_eq!(imported["hostnames"], json!(["mail.example.com"]));
    let fp = openssl(
        dir,
        &[
            "x509",
            "-in",
            "leaf.pem",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    let fp_api = imported["fingerprint_sha256"].as_str().unwrap();
    assert!(fp.contains(fp_api), "{fp} vs {fp_api}");
    let id = imported["id"].as_str().unwrap().to_owned();

    // Not active yet: clients still get the self-signed one.
    let (certs, _) = presented(s.port("imaps"), "mail.example.com", None);
    assert_eq!(certs.len(), 1);

    let act = api.json(
        "POST",
        &format!("/certificates/{id}/activate"),
        Some(&json!({})),
    );
    assert_eq!(act["active_default"], true, "{act}");

    let ca = dir.join("ca.pem");
    for svc in ["imaps", "smtps", "pop3s", "https"] {
        let port = s.port(svc);
        let mut last = (Vec::new(), String::new());
        let ok = eventually(Duration::from_secs(10), || {
            last = presented(port, "mail.example.com", Some(&ca));
            last.0.len() == 2
        });
        assert!(ok, "{svc}: {} certificates, {}", last.0.len(), last.1);
        assert!(last.1.contains("0 (ok)"), "{svc}: {}", last.1);
        assert!(subject_of(&last.0[1], dir).contains("Keel Test Intermediate"));
    }

    // /server.cer (requirements-3, guide §36.4): the active default's leaf in DER.
    let cer = dir.join("server.cer");
    let out = Command::new("curl")
        .args(["-sk", "-o"])
        .arg(&cer)
        .arg(format!("https://127.0.0.1:{}/server.cer", s.port("https")))
        .output()
        .unwrap();
    assert!(out.status.success());
    let der_fp = openssl(
        dir,
        &[
            "x509",
            "-inform",
            "der",
            "-in",
            "server.cer",
            "-noout",
            "-fingerprint",
            "-sha256",
        ],
    );
    assert_eq!(der_fp.trim(), fp.trim());

    // Export: the chain for anyone signed in; the key only when asked.
    let (code, pem) = api.call("GET", &format!("/certificates/{id}/export"), None);
    assert_eq!(code, 200);
    assert_eq!(pem.matches("BEGIN CERTIFICATE").count(), 2);
    assert!(!pem.contains("PRIVATE KEY"));
    let (code, pem) = api.call(
        "GET",
        &format!("/certificates/{id}/export?private_key=true"),
        None,
    );
    assert_eq!(code, 200);
    assert!(pem.contains("PRIVATE KEY"));

    // The active default cannot be removed; the old self-signed one can.
    let (code, body) = api.call("DELETE", &format!("/certificates/{id}"), None);
    assert_eq!(code, 409, "{body}");
    assert!(body.contains("active"), "{body}");
    let old = before["certificates"][0]["id"].as_str().unwrap();
    assert_eq!(
        api.call("DELETE", &format!("/certificates/{old}"), None).0,
        200
    );
    let log = std::fs::read_to_string(s.data.join("logs/config.log")).unwrap();
    assert!(
        log.contains("insert Certificate") && log.contains("delete Certificate"),
        "{log}"
    );
    assert!(!log.contains("PRIVATE KEY"));

    // Importing the same certificate again is refused, nothing added.
    let (code, body) = api.call(
        "POST",
        "/certificates/import",
        Some(&json!({"certificate": format!("{leaf}{int}"), "key": key})),
    );
    assert_eq!(code, 409, "{body}");
}

/// guide §16.1 "New certificate request" and requirements-2 scenario 10 (third point): the
/// CSR carries the CN and C (openssl verifies its signature); Hostname and Country are
/// required; the CA-signed certificate imported without a key takes the pending key.
#[test]
fn certificate_request_then_signed_certificate_import() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let api = Api::login(&s, dir, "admin", &s.admin_password());

    let (code, body) = api.call(
        "POST",
        "/certificates/requests",
        Some(&json!({"hostnames": ["mail.example.com"]})),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["field"],
        "country"
    );
    let (code, body) = api.call(
        "POST",
        "/certificates/requests",
        Some(&json!({"hostnames": [], "country": "CZ"})),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["field"],
        "hostnames"
    );
    let (code, body) = api.call(
        "POST",
        "/certificates/requests",
        Some(&json!({"hostnames": ["mail.example.com"], "country": "CZ", "colour": "red"})),
    );
    assert_eq!(code, 400, "{body}");

    let req = api.json(
        "POST",
        "/certificates/requests",
        Some(&json!({"hostnames": ["mail.example.com", "imap.example.com"], "country": "cz", "organization": "Example s.r.o."})),
    );
    assert_eq!(req["kind"], "request");
    let id = req["id"].as_str().unwrap().to_owned();
    let csr = req["csr_pem"].as_str().unwrap();
    std::fs::write(dir.join("req.pem"), csr).unwrap();
    let checked = openssl(
        dir,
        &["req", "-in", "req.pem", "-verify", "-noout", "-subject"],
    );
    assert!(
        checked.contains("verify OK")
            || checked.contains("Certificate request self-signature verify OK"),
        "{checked}"
    );
    assert!(
        checked.contains("CN = mail.example.com") && checked.contains("C = CZ"),
        "{checked}"
    );
    // A request cannot be active.
    let (code, _) = api.call(
        "POST",
        &format!("/certificates/{id}/activate"),
        Some(&json!({})),
    );
    assert_eq!(code, 409);

    // The CA signs it; importing the certificate alone completes the request.
    test_pki(dir, &["other.example.com"]);
    sign_leaf(
        dir,
        "req.pem",
        &["mail.example.com", "imap.example.com"],
        "signed.pem",
    );
    let signed = std::fs::read_to_string(dir.join("signed.pem")).unwrap();
    let int = std::fs::read_to_string(dir.join("int.pem")).unwrap();
    let done = api.json(
        "POST",
        "/certificates/import",
        Some(&json!({"certificate": signed, "chain": int})),
    );
    assert_eq!(done["id"], id.as_str(), "{done}");
    assert_eq!(done["kind"], "certificate");
    assert_eq!(done["chain_length"], 2);
    api.json(
        "POST",
        &format!("/certificates/{id}/activate"),
        Some(&json!({})),
    );
    let ca = dir.join("ca.pem");
    assert!(eventually(Duration::from_secs(10), || {
        let (c, v) = presented(s.port("imaps"), "imap.example.com", Some(&ca));
        c.len() == 2 && v.contains("0 (ok)")
    }));

    // A certificate whose key is nowhere is refused with the field named.
    let leaf = std::fs::read_to_string(dir.join("leaf.pem")).unwrap();
    let (code, body) = api.call(
        "POST",
        "/certificates/import",
        Some(&json!({"certificate": leaf})),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["field"],
        "key"
    );
}

/// guide §16.1 "Import": PKCS#12 with its password; a wrong password or a key that does
/// not match is refused clearly and stores nothing.
#[test]
fn pkcs12_import_and_mismatched_key_refused() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    test_pki(dir, &["mail.example.com"]);
    let api = Api::login(&s, dir, "admin", &s.admin_password());
    let count = |api: &Api| {
        api.json("GET", "/certificates", None)["certificates"]
            .as_array()
            .unwrap()
            .len()
    };

    // A key of another certificate.
    let ca_key = std::fs::read_to_string(dir.join("ca.key")).unwrap();
    let leaf = std::fs::read_to_string(dir.join("leaf.pem")).unwrap();
    let (code, body) = api.call(
        "POST",
        "/certificates/import",
        Some(&json!({"certificate": leaf, "key": ca_key})),
    );
    assert_eq!(code, 400, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["field"], "key");
    assert!(
        v["error"].as_str().unwrap().contains("does not match"),
        "{v}"
    );
    let (code, body) = api.call(
        "POST",
        "/certificates/import",
        Some(&json!({"certificate": "not a certificate"})),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["field"],
        "certificate"
    );
    assert_eq!(count(&api), 1);

    openssl(
        dir,
        &[
            "pkcs12",
            "-export",
            "-in",
            "leaf.pem",
            "-inkey",
            "leaf.key",
            "-certfile",
            "int.pem",
            "-passout",
            "pass:s3cret",
            "-out",
            "server.p12",
        ],
    );
    use base64::Engine;
    let p12 = base64::engine::general_purpose::STANDARD
        .encode(std::fs::read(dir.join("server.p12")).unwrap());
    let (code, body) = api.call(
        "POST",
        "/certificates/import",
        Some(&json!({"pkcs12": p12, "password": "wrong"})),
    );
    assert_eq!(code, 400, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["field"],
        "pkcs12"
    );
    assert_eq!(count(&api), 1);
    let done = api.json(
        "POST",
        "/certificates/import",
        Some(&json!({"pkcs12": p12, "password": "s3cret"})),
    );
    assert_eq!(done["chain_length"], 2, "{done}");
    assert_eq!(count(&api), 2);
    let log = std::fs::read_to_string(s.data.join("logs/config.log")).unwrap();
    assert!(!log.contains("s3cret"), "{log}");
}

/// `keel cert …` (the CLI) against a running server: a domain's certificate is chosen by
/// SNI for the domain's names and the default for others, switched without a restart;
/// the default cannot be removed; a read-only administrator may list but not change, and
/// never gets a private key.
#[test]
fn cli_domain_certificate_by_sni_and_read_only_rights() {
    let s = Server::start_fresh(&["--hostname", "mail.example.com"]);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cn = |sni: &str| {
        let (c, _) = presented(s.port("imaps"), sni, None);
        subject_of(&c[0], dir)
    };
    assert!(cn("imap.example.com").contains("CN = mail.example.com"));

    let out = s.keel(&["cert", "csr", "--hostname", "mail.example.com"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("country"), "{}", stderr(&out));

    let out = s.keel(&[
        "cert",
        "generate",
        "--hostname",
        "example.com",
        "--hostname",
        "*.example.com",
        "--country",
        "CZ",
        "--organization",
        "Example",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = stdout(&out).split_whitespace().next().unwrap().to_owned();
    let out = s.keel(&["cert", "activate", &id, "--domain", "example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(eventually(Duration::from_secs(10), || cn(
        "imap.example.com"
    )
    .contains("CN = example.com")));
    assert!(cn("example.com").contains("CN = example.com"));
    assert!(
        cn("other.test").contains("CN = mail.example.com"),
        "{}",
        cn("other.test")
    );
    let out = s.keel(&["cert", "activate", &id, "--domain", "nowhere.test"]);
    assert!(!out.status.success());

    let list = s.keel(&["cert", "list", "--format", "json"]);
    let v: Value = serde_json::from_str(&stdout(&list)).unwrap();
    let default = v
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["active_default"] == true)
        .unwrap();
    let default_id = default["id"].as_str().unwrap();
    let out = s.keel(&["cert", "remove", default_id]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("active server certificate"),
        "{}",
        stderr(&out)
    );
    let out = s.keel(&["cert", "export", &id]);
    assert!(stdout(&out).contains("BEGIN CERTIFICATE") && !stdout(&out).contains("PRIVATE"));

    let out = s.keel(&["cert", "use-default", "example.com"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(eventually(Duration::from_secs(10), || cn(
        "imap.example.com"
    )
    .contains("CN = mail.example.com")));
    let log = std::fs::read_to_string(s.data.join("logs/config.log")).unwrap();
    assert!(log.contains("cert activate"), "{log}");

    // Read-only administrator (guide §8.2).
    let out = s.keel(&[
        "user",
        "add",
        "viewer@example.com",
        "--password",
        "Vi3wer-Passw0rd!",
        "--admin",
        "read-only",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ro = Api::login(&s, dir, "viewer@example.com", "Vi3wer-Passw0rd!");
    let (code, body) = ro.call("GET", "/certificates", None);
    assert_eq!(code, 200, "{body}");
    let (code, _) = ro.call("GET", &format!("/certificates/{id}/export"), None);
    assert_eq!(code, 200);
    let (code, _) = ro.call(
        "GET",
        &format!("/certificates/{id}/export?private_key=true"),
        None,
    );
    assert_eq!(code, 403);
    let (code, _) = ro.call(
        "POST",
        "/certificates/generate",
        Some(&json!({"hostnames": ["x.example.com"]})),
    );
    assert_eq!(code, 403);
    let (code, _) = ro.call("DELETE", &format!("/certificates/{id}"), None);
    assert_eq!(code, 403);
}
