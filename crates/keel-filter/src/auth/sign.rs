//! DKIM signing of outgoing mail (RFC 6376 §5) with per-domain keys.
//!
//! Implementation notes:
//! - Keys are MetaStore documents `dkim_key/<domain>` holding the selector, the key type,
//!   the PKCS#8 private key and the public key (base64), and the creation time. A key is
//!   generated on first use ([`dkim_key_for_signing`]) and can be replaced at any time
//!   with a new selector ([`generate_dkim_key`]: rotation publishes the new selector's
//!   record first, then generates).
//! - RSA keys are 2048 bits (RFC 8301 §3.2: at least 1024, 2048 recommended) signed with
//!   rsa-sha256; the TXT record carries the SubjectPublicKeyInfo, as opendkim-genkey
//!   publishes it. Ed25519 keys (RFC 8463 §4) publish the raw 32-byte key.
//! - Signed header fields: the RFC 6376 §5.4.1 recommended set that is present in the
//!   message. Canonicalisation relaxed/relaxed (RFC 6376 §3.4), which survives the
//!   whitespace changes relays make.
//! - Signing runs on the caller's thread (CPU only); callers in async code use a blocking
//!   task.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use keel_store::{MetaStore, StoreError};
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter;
use mail_auth::dkim::{Canonicalization, DkimSigner};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use crate::FilterError;
use crate::settings::DkimAlgorithm;

/// MetaStore document kind of DKIM keys (key = domain, lower-case).
pub const DKIM_KEY_KIND: &str = "dkim_key";

/// RFC 6376 §5.4.1: header fields to sign, when present.
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Resent-Date",
    "Resent-From",
    "Resent-To",
    "Resent-Cc",
    "In-Reply-To",
    "References",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// A domain's DKIM signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DkimKey {
    /// The signing domain (`d=`).
    pub domain: String,
    /// The selector (`s=`).
    pub selector: String,
    /// Key type.
    pub algorithm: DkimAlgorithm,
    /// PKCS#8 DER private key, base64.
    pub private_key: String,
    /// Public key as published in `p=`, base64.
    pub public_key: String,
    /// Unix time of generation.
    pub created: i64,
}

impl DkimKey {
    /// Generates a new key (not stored).
    pub fn generate(
        domain: &str,
        selector: &str,
        algorithm: DkimAlgorithm,
        now: i64,
    ) -> Result<Self, FilterError> {
        let (private, public) = match algorithm {
            DkimAlgorithm::Rsa => {
                let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
                    .map_err(|e| FilterError::Dkim(format!("RSA key generation: {e}")))?;
                (
                    kp.serialize_der(),
                    rcgen::PublicKeyData::subject_public_key_info(&kp),
                )
            }
            DkimAlgorithm::Ed25519 => {
                let pkcs8 = Ed25519Key::generate_pkcs8()
                    .map_err(|e| FilterError::Dkim(format!("Ed25519 key generation: {e}")))?;
                let key = Ed25519Key::from_pkcs8_der(&pkcs8)
                    .map_err(|e| FilterError::Dkim(format!("Ed25519 key: {e}")))?;
                (pkcs8, key.public_key())
            }
        };
        Ok(Self {
            domain: domain.to_ascii_lowercase(),
            selector: selector.to_owned(),
            algorithm,
            private_key: B64.encode(private),
            public_key: B64.encode(public),
            created: now,
        })
    }

    /// The DNS record to publish: (owner name, TXT data) (RFC 6376 §3.6.2.1, §3.6.1).
    pub fn dns_record(&self) -> (String, String) {
        let k = match self.algorithm {
            DkimAlgorithm::Rsa => "rsa",
            DkimAlgorithm::Ed25519 => "ed25519",
        };
        (
            format!("{}._domainkey.{}", self.selector, self.domain),
            format!("v=DKIM1; k={k}; p={}", self.public_key),
        )
    }

    /// Signs `message` and returns the `DKIM-Signature:` field with its line end.
    pub fn sign(&self, message: &[u8]) -> Result<String, FilterError> {
        let der = B64
            .decode(&self.private_key)
            .map_err(|e| FilterError::Dkim(format!("stored key of {}: {e}", self.domain)))?;
        let err =
            |e: mail_auth::Error| FilterError::Dkim(format!("signing for {}: {e}", self.domain));
        let sig = match self.algorithm {
            DkimAlgorithm::Rsa => {
                let key = RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(
                    PrivatePkcs8KeyDer::from(der),
                ))
                .map_err(err)?;
                DkimSigner::from_key(key)
                    .domain(self.domain.clone())
                    .selector(self.selector.clone())
                    .headers(SIGNED_HEADERS.iter().copied())
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed)
                    .sign(message)
                    .map_err(err)?
            }
            DkimAlgorithm::Ed25519 => {
                let key = Ed25519Key::from_pkcs8_der(&der).map_err(err)?;
                DkimSigner::from_key(key)
                    .domain(self.domain.clone())
                    .selector(self.selector.clone())
                    .headers(SIGNED_HEADERS.iter().copied())
                    .header_canonicalization(Canonicalization::Relaxed)
                    .body_canonicalization(Canonicalization::Relaxed)
                    .sign(message)
                    .map_err(err)?
            }
        };
        // mail-auth may fold just before the final `;` (`b=…\r\n\t;`). RFC 6376 §3.7
        // deletes that FWS together with the b= value, but dkimpy keeps it and fails the
        // signature: keep the `;` on the b= line (what is hashed does not change).
        Ok(sig.to_header().replace("\r\n\t;\r\n", ";\r\n"))
    }
}

/// The stored key of `domain`, if any.
pub fn load_dkim_key(meta: &dyn MetaStore, domain: &str) -> Result<Option<DkimKey>, FilterError> {
    let key = domain.to_ascii_lowercase();
    match meta.get_doc(DKIM_KEY_KIND, &key)? {
        Some(doc) => Ok(Some(serde_json::from_value(doc.body).map_err(|e| {
            StoreError::Corrupt(format!("{DKIM_KEY_KIND}/{key}: {e}"))
        })?)),
        None => Ok(None),
    }
}

/// Generates and stores a new key for `domain` (first key or rotation), replacing the
/// previous one.
pub fn generate_dkim_key(
    meta: &dyn MetaStore,
    domain: &str,
    selector: &str,
    algorithm: DkimAlgorithm,
    now: i64,
) -> Result<DkimKey, FilterError> {
    let key = DkimKey::generate(domain, selector, algorithm, now)?;
    let body = serde_json::to_value(&key)
        .map_err(|e| StoreError::Backend(format!("encoding DKIM key: {e}")))?;
    let name = key.domain.clone();
    meta.transact(&mut |tx| tx.put(DKIM_KEY_KIND, &name, "", &body).map(|_| ()))?;
    Ok(key)
}

/// The key to sign with for `domain`: the stored one, or a new one generated with the
/// given selector and type (keys are generated on demand).
pub fn dkim_key_for_signing(
    meta: &dyn MetaStore,
    domain: &str,
    selector: &str,
    algorithm: DkimAlgorithm,
    now: i64,
) -> Result<DkimKey, FilterError> {
    match load_dkim_key(meta, domain)? {
        Some(k) => Ok(k),
        None => generate_dkim_key(meta, domain, selector, algorithm, now),
    }
}
