//! `keel cert list|show|generate|csr|import|export|activate|remove|use-default`: the
//! operations of `/admin/api/v1/certificates` (guide ch. 16), on the same
//! `keel_net::certs` functions. A running server picks the change up within a second.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use keel_net::certs::{self, CertInfo, ImportPem, NewCertParams, Target};

use crate::cli::{Out, print_out};
use crate::setup::Env;

#[derive(Debug, Subcommand)]
pub(crate) enum CertCmd {
    /// List certificates and requests (the active default first).
    List(Out),
    /// Show a certificate's details: subject, issuer, names, validity, fingerprint.
    Show {
        id: String,
        #[command(flatten)]
        out: Out,
    },
    /// Generate a self-signed certificate (guide §16.1 "New certificate").
    Generate {
        #[command(flatten)]
        subject: SubjectArgs,
        /// Make it the server default at once.
        #[arg(long)]
        activate: bool,
    },
    /// Create a key and a certificate request for a certification authority (guide §16.1
    /// "New certificate request"); prints the CSR (PEM). Import the signed certificate
    /// later with `keel cert import --cert FILE`: the pending key is used.
    Csr {
        #[command(flatten)]
        subject: SubjectArgs,
        /// Write the CSR to this file instead of printing it.
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
    /// Import a PEM certificate (with intermediates after it, and the key in the same
    /// file or in --key), or a PKCS#12 file with --pkcs12 and --password.
    Import {
        /// PEM file: the server certificate first, then intermediates (and the key).
        #[arg(long = "cert", value_name = "FILE", conflicts_with = "pkcs12")]
        cert: Option<PathBuf>,
        /// PEM file with more intermediate certificates.
        #[arg(long, value_name = "FILE")]
        chain: Option<PathBuf>,
        /// PEM private key file.
        #[arg(long, value_name = "FILE")]
        key: Option<PathBuf>,
        /// PKCS#12 (.p12/.pfx) file.
        #[arg(long, value_name = "FILE")]
        pkcs12: Option<PathBuf>,
        /// Password of the PKCS#12 file (default: empty; env KEEL_PKCS12_PASSWORD).
        #[arg(long, env = "KEEL_PKCS12_PASSWORD", hide_env_values = true)]
        password: Option<String>,
        /// Label in lists.
        #[arg(long)]
        name: Option<String>,
        /// Make it the server default at once.
        #[arg(long)]
        activate: bool,
    },
    /// Print the PEM chain (or the request); --private-key adds the private key.
    Export {
        id: String,
        #[arg(long)]
        private_key: bool,
    },
    /// Set as active: the server default, or with --domain the certificate of a domain's
    /// names (SNI).
    Activate {
        id: String,
        #[arg(long)]
        domain: Option<String>,
    },
    /// A domain uses the server default certificate again.
    UseDefault { domain: String },
    /// Remove a certificate or request (not the active server default).
    Remove { id: String },
}

#[derive(Debug, Args)]
pub(crate) struct SubjectArgs {
    /// Host name (repeat for more; the first is the CN).
    #[arg(long = "hostname", value_name = "NAME", required = true)]
    hostnames: Vec<String>,
    /// Two-letter country code (required for a request).
    #[arg(long)]
    country: Option<String>,
    #[arg(long)]
    organization: Option<String>,
    #[arg(long)]
    unit: Option<String>,
    #[arg(long)]
    city: Option<String>,
    #[arg(long)]
    state: Option<String>,
    /// Label in lists (default: the first host name).
    #[arg(long)]
    name: Option<String>,
}

impl SubjectArgs {
    fn params(self) -> NewCertParams {
        NewCertParams {
            hostnames: self.hostnames,
            country: self.country,
            organization: self.organization,
            organizational_unit: self.unit,
            city: self.city,
            state: self.state,
            name: self.name,
        }
    }
}

fn text(i: &CertInfo) -> String {
    let mut active = Vec::new();
    if i.active_default {
        active.push("server default".to_owned());
    }
    active.extend(i.active_domains.iter().map(|d| format!("domain {d}")));
    let mut s = format!("{} ({})  {}\n", i.id, i.kind, i.name);
    s.push_str(&format!("  subject:     {}\n", i.subject));
    if let Some(iss) = &i.issuer {
        s.push_str(&format!(
            "  issuer:      {iss}{}\n",
            if i.self_signed { " (self-signed)" } else { "" }
        ));
    }
    if !i.hostnames.is_empty() {
        s.push_str(&format!("  names:       {}\n", i.hostnames.join(", ")));
    }
    if let (Some(a), Some(b)) = (&i.not_before, &i.not_after) {
        s.push_str(&format!(
            "  valid:       {a} to {b}{}\n",
            if i.expired { " (EXPIRED)" } else { "" }
        ));
    }
    if let Some(fp) = &i.fingerprint_sha256 {
        s.push_str(&format!("  SHA-256:     {fp}\n"));
        s.push_str(&format!(
            "  chain:       {} certificate(s)\n",
            i.chain_length
        ));
    }
    if !active.is_empty() {
        s.push_str(&format!("  active:      {}\n", active.join(", ")));
    }
    s
}

fn read(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// Runs one `keel cert` command; returns the Config-log action of a change.
pub(crate) fn cert_cmd(env: &Env, c: CertCmd) -> Result<Option<String>> {
    let (meta, now) = (env.meta.as_ref(), env.clock.unix());
    Ok(match c {
        CertCmd::List(out) => {
            let list = certs::list(meta, now)?;
            print_out(out.format, &list, |l| l.iter().map(text).collect())?;
            None
        }
        CertCmd::Show { id, out } => {
            let i = certs::show(meta, &id, now)?;
            print_out(out.format, &i, text)?;
            None
        }
        CertCmd::Generate { subject, activate } => {
            let i = certs::generate_self_signed(meta, &subject.params(), now)?;
            if activate {
                certs::activate(meta, &i.id, &Target::Default, now)?;
            }
            print!("{}", text(&certs::show(meta, &i.id, now)?));
            Some(format!("cert generate {}", i.id))
        }
        CertCmd::Csr { subject, out } => {
            let (i, csr) = certs::create_request(meta, &subject.params(), now)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, &csr)
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    println!(
                        "Request {} written to {}; send it to the certification authority.",
                        i.id,
                        path.display()
                    );
                }
                None => print!("{csr}"),
            }
            Some(format!("cert csr {}", i.id))
        }
        CertCmd::Import {
            cert,
            chain,
            key,
            pkcs12,
            password,
            name,
            activate,
        } => {
            let i = match (cert, pkcs12) {
                (Some(cert), None) => {
                    let req = ImportPem {
                        certificate: read(&cert)?,
                        chain: chain.as_ref().map(read).transpose()?,
                        key: key.as_ref().map(read).transpose()?,
                        name,
                    };
                    certs::import_pem(meta, &req, now)?
                }
                (None, Some(p12)) => {
                    let der = std::fs::read(&p12)
                        .with_context(|| format!("cannot read {}", p12.display()))?;
                    certs::import_pkcs12(meta, &der, &password.unwrap_or_default(), name, now)?
                }
                _ => bail!("give --cert FILE (PEM) or --pkcs12 FILE"),
            };
            if activate {
                certs::activate(meta, &i.id, &Target::Default, now)?;
            }
            print!("{}", text(&certs::show(meta, &i.id, now)?));
            Some(format!("cert import {}", i.id))
        }
        CertCmd::Export { id, private_key } => {
            print!("{}", certs::export(meta, &id, private_key)?);
            private_key.then(|| format!("cert export {id} --private-key"))
        }
        CertCmd::Activate { id, domain } => {
            let target = match domain {
                Some(d) => Target::Domain(env.directory.get_domain(&d)?.name),
                None => Target::Default,
            };
            let i = certs::activate(meta, &id, &target, now)?;
            match &target {
                Target::Default => println!("{} is now the server certificate.", i.id),
                Target::Domain(d) => println!("{} is now the certificate of {d}.", i.id),
            }
            Some(format!("cert activate {id}"))
        }
        CertCmd::UseDefault { domain } => {
            if !certs::deactivate_domain(meta, &domain)? {
                bail!("{domain} has no certificate of its own");
            }
            println!("{domain} uses the server certificate again.");
            Some(format!("cert use-default {domain}"))
        }
        CertCmd::Remove { id } => {
            let c = certs::remove(meta, &id)?;
            println!("Certificate {} ({}) removed.", c.id, c.name);
            Some(format!("cert remove {id}"))
        }
    })
}
