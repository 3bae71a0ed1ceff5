//! Password storage and verification (requirements-1 §0.8, requirements-3 §3.2).
//!
//! - New passwords are stored as Argon2id PHC strings (`$argon2id$v=19$m=…`).
//! - Next to the hash we keep SCRAM-SHA-256 keys (RFC 5802 §3, RFC 7677) so a SCRAM login can
//!   be verified without the password and without reversible storage.
//! - Imported hashes are verified as they are: bcrypt (`$2a$`, `$2b$`, `$2y$`), sha-crypt
//!   (`$5$`, `$6$`) and Argon2 (`$argon2id$`, `$argon2i$`, `$argon2d$`). After a successful
//!   login with a legacy hash the directory re-hashes with Argon2id and computes the SCRAM
//!   keys ("upgrade on next login", requirements-1 §8.2).
//! - Comparisons of secrets are constant-time.
//!
//! SASLprep (RFC 4013) is not applied to passwords: they are used as given (UTF-8). For ASCII
//! passwords, which the guide recommends (§8.2), SASLprep is the identity.

use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{DirResult, DirectoryError};

/// Minimum password length in characters (our choice; the guide sets none).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Maximum password length in bytes (bounds the hashing cost of hostile input).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Minimum SCRAM iteration count (RFC 7677 §4: "at least 4096").
pub const MIN_SCRAM_ITERATIONS: u32 = 4096;

/// Cost parameters for new hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct HashParams {
    /// Argon2 memory cost in KiB.
    pub argon2_memory_kib: u32,
    /// Argon2 iterations.
    pub argon2_iterations: u32,
    /// Argon2 parallelism.
    pub argon2_parallelism: u32,
    /// PBKDF2 iterations of the SCRAM keys (at least [`MIN_SCRAM_ITERATIONS`]).
    pub scram_iterations: u32,
}

impl Default for HashParams {
    /// Argon2id with the crate's recommended parameters (19 MiB, 2 passes, 1 lane; OWASP) and
    /// 4096 SCRAM iterations (RFC 7677 §4).
    fn default() -> Self {
        Self {
            argon2_memory_kib: Params::DEFAULT_M_COST,
            argon2_iterations: Params::DEFAULT_T_COST,
            argon2_parallelism: Params::DEFAULT_P_COST,
            scram_iterations: MIN_SCRAM_ITERATIONS,
        }
    }
}

impl HashParams {
    /// Cheap Argon2 parameters for tests (debug builds hash slowly). Never use in production.
    pub fn insecure_fast() -> Self {
        Self {
            argon2_memory_kib: Params::MIN_M_COST.max(8),
            argon2_iterations: 1,
            argon2_parallelism: 1,
            scram_iterations: MIN_SCRAM_ITERATIONS,
        }
    }
}

/// SCRAM-SHA-256 server credentials (RFC 5802 §3). Binary values are base64 (standard, padded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredentials {
    /// The salt, base64.
    pub salt: String,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// StoredKey := H(ClientKey), base64.
    pub stored_key: String,
    /// ServerKey := HMAC(SaltedPassword, "Server Key"), base64.
    pub server_key: String,
}

/// The secrets stored for a user.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSecret {
    /// The password hash (PHC or crypt string); `None` when no password is set.
    #[serde(default)]
    pub hash: Option<String>,
    /// SCRAM-SHA-256 keys; absent for imported hashes until the next successful login.
    #[serde(default)]
    pub scram_sha256: Option<ScramCredentials>,
}

/// Formats of stored password hashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HashKind {
    /// Argon2id (the format of new hashes).
    Argon2id,
    /// Argon2i or Argon2d (imported; upgraded on login).
    Argon2Other,
    /// bcrypt `$2a$`, `$2b$`, `$2y$` (imported; upgraded on login).
    Bcrypt,
    /// sha256-crypt `$5$` (imported; upgraded on login).
    Sha256Crypt,
    /// sha512-crypt `$6$` (imported; upgraded on login).
    Sha512Crypt,
}

/// Recognises the format of a stored hash.
pub fn hash_kind(hash: &str) -> Option<HashKind> {
    if hash.starts_with("$argon2id$") {
        Some(HashKind::Argon2id)
    } else if hash.starts_with("$argon2i$") || hash.starts_with("$argon2d$") {
        Some(HashKind::Argon2Other)
    } else if ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p)) {
        Some(HashKind::Bcrypt)
    } else if hash.starts_with("$5$") {
        Some(HashKind::Sha256Crypt)
    } else if hash.starts_with("$6$") {
        Some(HashKind::Sha512Crypt)
    } else {
        None
    }
}

/// Outcome of [`verify_password`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verification {
    /// The password matches; `upgrade` is true when the hash is a legacy format that should be
    /// replaced by Argon2id now that the password is known.
    Match {
        /// Whether to re-hash.
        upgrade: bool,
    },
    /// The password does not match.
    Mismatch,
    /// The stored hash is unreadable or in no supported format.
    Unsupported,
}

fn argon2(params: &HashParams) -> DirResult<Argon2<'static>> {
    let p = Params::new(
        params.argon2_memory_kib,
        params.argon2_iterations,
        params.argon2_parallelism,
        None,
    )
    .map_err(|e| DirectoryError::Hashing(e.to_string()))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, p))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::fill(&mut b[..]);
    b
}

/// Hashes a password with Argon2id and a random 16-byte salt; returns the PHC string.
pub fn hash_password(password: &str, params: &HashParams) -> DirResult<String> {
    let _permit = HashPermit::acquire();
    let salt: [u8; 16] = random_bytes();
    let hash = argon2(params)?
        .hash_password_with_salt(password.as_bytes(), &salt)
        .map_err(|e| DirectoryError::Hashing(e.to_string()))?;
    Ok(hash.to_string())
}

/// Verifies a password against a stored hash of any supported format. Every format's
/// comparison is constant-time (argon2 `Output`, bcrypt via `subtle`, sha-crypt via `ctutils`).
pub fn verify_password(password: &str, hash: &str) -> Verification {
    if password.len() > MAX_PASSWORD_BYTES {
        return Verification::Mismatch;
    }
    let Some(kind) = hash_kind(hash) else {
        return Verification::Unsupported;
    };
    // Every format is deliberately slow: at most one hash per core at a time.
    let _permit = HashPermit::acquire();
    let ok = match kind {
        HashKind::Argon2id | HashKind::Argon2Other => {
            // The algorithm, version and parameters are read from the PHC string.
            match Argon2::default().verify_password(password.as_bytes(), hash) {
                Ok(()) => true,
                Err(argon2::password_hash::Error::PasswordInvalid) => false,
                Err(_) => return Verification::Unsupported,
            }
        }
        HashKind::Bcrypt => match bcrypt::verify(password.as_bytes(), hash) {
            Ok(b) => b,
            Err(_) => return Verification::Unsupported,
        },
        HashKind::Sha256Crypt | HashKind::Sha512Crypt => {
            match sha_crypt::ShaCrypt::default().verify_password(password.as_bytes(), hash) {
                Ok(()) => true,
                Err(sha_crypt::password_hash::Error::PasswordInvalid) => false,
                Err(_) => return Verification::Unsupported,
            }
        }
    };
    if ok {
        Verification::Match {
            upgrade: kind != HashKind::Argon2id,
        }
    } else {
        Verification::Mismatch
    }
}

/// A fixed Argon2id hash used to spend the same time on unknown accounts as on known ones, so
/// response timing does not reveal which login names exist.
pub(crate) fn dummy_verify(password: &str, params: &HashParams) {
    let _permit = HashPermit::acquire();
    let salt = [0x5au8; 16];
    if let Ok(a) = argon2(params) {
        let _ = a.hash_password_with_salt(password.as_bytes(), &salt);
    }
}

/// Checks a new password against the policy: at least [`MIN_PASSWORD_CHARS`] characters, at
/// most [`MAX_PASSWORD_BYTES`] bytes, printable characters only (guide §8.2), and not equal to
/// the login name or the full address (case-insensitive).
pub fn check_password_policy(password: &str, login: &str, address: &str) -> DirResult<()> {
    let weak = |s: &str| Err(DirectoryError::WeakPassword(s.to_string()));
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return weak(&format!(
            "it must have at least {MIN_PASSWORD_CHARS} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return weak(&format!("it must have at most {MAX_PASSWORD_BYTES} bytes"));
    }
    if password.chars().any(char::is_control) {
        return weak("it must contain printable characters only");
    }
    if password.eq_ignore_ascii_case(login) || password.eq_ignore_ascii_case(address) {
        return weak("it must not be the login name");
    }
    if password.chars().all(|c| password.starts_with(c)) {
        return weak("it must not repeat one character");
    }
    Ok(())
}

/// Constant-time equality of two byte strings (the length is not secret).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

/// HMAC-SHA-256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> DirResult<[u8; 32]> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .map_err(|e| DirectoryError::Hashing(e.to_string()))?;
    mac.update(data);
    let out = mac.finalize().into_bytes();
    let mut a = [0u8; 32];
    a.copy_from_slice(&out);
    Ok(a)
}

/// SHA-256.
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let out = Sha256::digest(data);
    let mut a = [0u8; 32];
    a.copy_from_slice(&out);
    a
}

/// SaltedPassword := Hi(password, salt, i) (RFC 5802 §2.2: PBKDF2 with HMAC-SHA-256).
pub fn scram_salted_password(password: &str, salt: &[u8], iterations: u32) -> [u8; 32] {
    let mut out = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<Sha256>(password.as_bytes(), salt, iterations, &mut out);
    out
}

/// ClientKey := HMAC(SaltedPassword, "Client Key") (RFC 5802 §3).
pub fn scram_client_key(salted_password: &[u8]) -> DirResult<[u8; 32]> {
    hmac_sha256(salted_password, b"Client Key")
}

/// Computes SCRAM-SHA-256 credentials with a given salt (RFC 5802 §3).
pub fn scram_credentials_with_salt(
    password: &str,
    salt: &[u8],
    iterations: u32,
) -> DirResult<ScramCredentials> {
    let iterations = iterations.max(MIN_SCRAM_ITERATIONS);
    let salted = scram_salted_password(password, salt, iterations);
    let client_key = scram_client_key(&salted)?;
    let stored_key = sha256(&client_key);
    let server_key = hmac_sha256(&salted, b"Server Key")?;
    Ok(ScramCredentials {
        salt: B64.encode(salt),
        iterations,
        stored_key: B64.encode(stored_key),
        server_key: B64.encode(server_key),
    })
}

/// Computes SCRAM-SHA-256 credentials with a random 16-byte salt.
pub fn scram_credentials(password: &str, iterations: u32) -> DirResult<ScramCredentials> {
    let salt: [u8; 16] = random_bytes();
    scram_credentials_with_salt(password, &salt, iterations)
}

/// Verifies a SCRAM ClientProof (RFC 5802 §3): ClientSignature := HMAC(StoredKey,
/// AuthMessage); ClientKey := ClientProof XOR ClientSignature; the proof is valid when
/// H(ClientKey) equals StoredKey (compared in constant time).
pub fn scram_verify_client_proof(
    creds: &ScramCredentials,
    auth_message: &[u8],
    client_proof: &[u8],
) -> bool {
    let Ok(stored_key) = B64.decode(&creds.stored_key) else {
        return false;
    };
    if client_proof.len() != 32 {
        return false;
    }
    let Ok(signature) = hmac_sha256(&stored_key, auth_message) else {
        return false;
    };
    let client_key: Vec<u8> = client_proof
        .iter()
        .zip(signature)
        .map(|(p, s)| p ^ s)
        .collect();
    constant_time_eq(&sha256(&client_key), &stored_key)
}

/// ServerSignature := HMAC(ServerKey, AuthMessage) (RFC 5802 §3), sent in the server-final
/// message as `v=`.
pub fn scram_server_signature(creds: &ScramCredentials, auth_message: &[u8]) -> DirResult<Vec<u8>> {
    let server_key = B64
        .decode(&creds.server_key)
        .map_err(|e| DirectoryError::Hashing(e.to_string()))?;
    Ok(hmac_sha256(&server_key, auth_message)?.to_vec())
}

/// Computes the client side of SCRAM (for tests and for the POP3/IMAP client of the server):
/// ClientProof := ClientKey XOR HMAC(H(ClientKey), AuthMessage).
pub fn scram_client_proof(
    password: &str,
    salt: &[u8],
    iterations: u32,
    auth_message: &[u8],
) -> DirResult<Vec<u8>> {
    let salted = scram_salted_password(password, salt, iterations);
    let client_key = scram_client_key(&salted)?;
    let stored = sha256(&client_key);
    let sig = hmac_sha256(&stored, auth_message)?;
    Ok(client_key.iter().zip(sig).map(|(k, s)| k ^ s).collect())
}

/// Builds the stored secret of a new password: Argon2id hash plus SCRAM-SHA-256 keys.
pub fn new_secret(password: &str, params: &HashParams) -> DirResult<StoredSecret> {
    Ok(StoredSecret {
        hash: Some(hash_password(password, params)?),
        scram_sha256: Some(scram_credentials(password, params.scram_iterations)?),
    })
}

/// Bounds concurrent password hashing to the number of cores. Each Argon2 computation
/// takes its memory cost (19 MiB by default) for a moment; a burst of logins must not
/// multiply that by the number of blocking threads (DESIGN §9: memory budgets).
struct HashPermit;

static HASH_SLOTS: std::sync::Mutex<usize> = std::sync::Mutex::new(0);
static HASH_FREED: std::sync::Condvar = std::sync::Condvar::new();

impl HashPermit {
    fn acquire() -> Self {
        let max = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        let mut busy = HASH_SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        while *busy >= max {
            busy = HASH_FREED.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy += 1;
        Self
    }
}

impl Drop for HashPermit {
    fn drop(&mut self) {
        let mut busy = HASH_SLOTS.lock().unwrap_or_else(|e| e.into_inner());
        *busy = busy.saturating_sub(1);
        HASH_FREED.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argon2id_hash_roundtrip() {
        let h = hash_password("correct horse", &HashParams::insecure_fast()).unwrap();
        assert!(h.starts_with("$argon2id$v=19$"), "{h}");
        assert_eq!(
            verify_password("correct horse", &h),
            Verification::Match { upgrade: false }
        );
        assert_eq!(verify_password("wrong horse", &h), Verification::Mismatch);
    }

    #[test]
    fn bcrypt_hashes_verify_and_ask_for_upgrade() {
        let h = bcrypt::hash("secret pw", 4).unwrap();
        assert!(h.starts_with("$2b$"));
        assert_eq!(
            verify_password("secret pw", &h),
            Verification::Match { upgrade: true }
        );
        assert_eq!(verify_password("nope", &h), Verification::Mismatch);
        let y = h.replacen("$2b$", "$2y$", 1);
        assert_eq!(
            verify_password("secret pw", &y),
            Verification::Match { upgrade: true }
        );
        let a = h.replacen("$2b$", "$2a$", 1);
        assert_eq!(
            verify_password("secret pw", &a),
            Verification::Match { upgrade: true }
        );
    }

    #[test]
    fn sha_crypt_hashes_verify() {
        // Test vectors from the sha-crypt specification (Drepper), "Hello world!".
        let h5 = "$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5";
        let h6 = "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJu\
                  esI68u4OTLiBFdcbYEdFCoEOfaS35inz1";
        assert_eq!(
            verify_password("Hello world!", h5),
            Verification::Match { upgrade: true }
        );
        assert_eq!(
            verify_password("Hello world!", h6),
            Verification::Match { upgrade: true }
        );
        assert_eq!(verify_password("Hello world?", h6), Verification::Mismatch);
    }

    #[test]
    fn unknown_hash_formats_are_unsupported() {
        assert_eq!(verify_password("x", "{SHA}abc"), Verification::Unsupported);
        assert_eq!(
            verify_password("x", "$argon2id$garbage"),
            Verification::Unsupported
        );
    }

    #[test]
    fn scram_sha256_matches_rfc7677_example() {
        // RFC 7677 §3: user "user", password "pencil", salt W22ZaJ0SNY7soEsUEjb6gQ==, i=4096.
        let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let creds = scram_credentials_with_salt("pencil", &salt, 4096).unwrap();
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,\
            r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,\
            i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let proof = B64
            .decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .unwrap();
        assert!(scram_verify_client_proof(
            &creds,
            auth_message.as_bytes(),
            &proof
        ));
        let sig = scram_server_signature(&creds, auth_message.as_bytes()).unwrap();
        assert_eq!(
            B64.encode(sig),
            "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
        );
        let mut bad = proof.clone();
        bad[0] ^= 1;
        assert!(!scram_verify_client_proof(
            &creds,
            auth_message.as_bytes(),
            &bad
        ));
        let computed = scram_client_proof("pencil", &salt, 4096, auth_message.as_bytes()).unwrap();
        assert_eq!(computed, proof);
    }

    #[test]
    fn password_policy_rejects_weak_passwords() {
        let e = check_password_policy("short", "bob", "bob@example.com").unwrap_err();
        assert_eq!(
            e.to_string(),
            "password is too weak: it must have at least 8 characters"
        );
        let e = check_password_policy("Bobby123", "bobby123", "bobby123@example.com").unwrap_err();
        assert_eq!(
            e.to_string(),
            "password is too weak: it must not be the login name"
        );
        assert!(check_password_policy("aaaaaaaaaa", "bob", "bob@x.org").is_err());
        assert!(check_password_policy("tab\there1", "bob", "bob@x.org").is_err());
        assert!(check_password_policy("good pass 1", "bob", "bob@x.org").is_ok());
    }

    #[test]
    fn constant_time_eq_works() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
