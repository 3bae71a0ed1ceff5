//! The running server's service states, written to `<data>/run/status.json` so that
//! `keel status` (another process) can show them.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// State of one service as shown to the admin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ServiceStatus {
    pub(crate) name: String,
    pub(crate) title: String,
    /// `running`, `stopped`, `failed` or `not available`.
    pub(crate) state: String,
    /// The addresses it listens on (running) or would listen on.
    pub(crate) addresses: Vec<String>,
    #[serde(default)]
    pub(crate) access: Option<String>,
    #[serde(default)]
    pub(crate) notes: Vec<String>,
}

/// The whole status file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerStatus {
    pub(crate) pid: u32,
    pub(crate) hostname: String,
    pub(crate) started_at: String,
    pub(crate) services: Vec<ServiceStatus>,
}

impl ServerStatus {
    pub(crate) fn write(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(self)?)?;
        std::fs::rename(&tmp, path).context("cannot write the status file")?;
        Ok(())
    }

    /// The status of a live server, or `None` when none runs on this data directory.
    pub(crate) fn read_live(path: &Path) -> Option<Self> {
        let bytes = std::fs::read(path).ok()?;
        let st: Self = serde_json::from_slice(&bytes).ok()?;
        Path::new(&format!("/proc/{}", st.pid))
            .exists()
            .then_some(st)
    }
}

/// Renders the service table printed at start-up and by `keel status`.
pub(crate) fn render_table(services: &[ServiceStatus]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "  {:<11} {:<16} {:<14} {}\n",
        "SERVICE", "NAME", "STATE", "ADDRESSES"
    ));
    for s in services {
        let mut line = format!(
            "  {:<11} {:<16} {:<14} {}",
            s.name,
            s.title,
            s.state,
            s.addresses.join(",")
        );
        if let Some(a) = &s.access {
            line.push_str(&format!("  (access: {a})"));
        }
        out.push_str(&line);
        out.push('\n');
        for n in &s.notes {
            out.push_str(&format!("      note: {n}\n"));
        }
    }
    out
}
