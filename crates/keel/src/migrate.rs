//! `keel migrate --to postgres://…` (issue 8 item 3): copies an embedded installation
//! (SQLite metadata + file blobs in the data directory) into PostgreSQL (metadata and
//! blobs), then runs the integrity check on the target and prints the `keel.toml` change.
//!
//! The copy itself is `keel_store::transfer::copy_store` (trait methods only, no SQL
//! here). This file adds what the command line needs: the source must not be in use (the
//! data directory's server lock is held for the whole copy, so `keel serve` cannot start
//! meanwhile), the target must hold no Keel data unless `--force` (which erases it first),
//! and progress goes to stderr.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use keel_store::file::FileBlobStore;
use keel_store::postgres::{PgBlobStore, PgStore};
use keel_store::sqlite::SqliteStore;
use keel_store::transfer::{Progress, Stage, copy_store};
use keel_store::{BlobStore, MetaStore};

use crate::config::{DataDir, KeelToml};

/// Arguments of `keel migrate`.
#[derive(Debug, clap::Args)]
pub(crate) struct MigrateArgs {
    /// The PostgreSQL database to copy into (`postgres://user@host/db` or
    /// `host=… user=… dbname=…`).
    #[arg(long, value_name = "URL")]
    to: String,
    /// Erase the target's Keel data first if it holds any (otherwise refused).
    #[arg(long)]
    force: bool,
}

/// Runs `keel migrate`.
pub(crate) fn run(data: &DataDir, args: &MigrateArgs) -> Result<ExitCode> {
    if !data.db().is_file() {
        bail!(
            "{} holds no embedded Keel store ({} is missing)",
            data.root.display(),
            data.db().display()
        );
    }
    if data.config().exists() && KeelToml::load(&data.config())?.store.is_postgres() {
        bail!(
            "{} already uses the PostgreSQL store; keel migrate copies an embedded (SQLite) installation",
            data.config().display()
        );
    }
    // The server lock: no `keel serve` may run on the source during the copy (the export
    // is not one snapshot), nor start before it ends.
    std::fs::create_dir_all(data.run())?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data.lock_file())?;
    if lock.try_lock().is_err() {
        bail!(
            "a keel server is running on {}: stop it before `keel migrate`",
            data.root.display()
        );
    }

    let src = SqliteStore::open(&data.db())
        .with_context(|| format!("cannot open {}", data.db().display()))?;
    let src_blobs = FileBlobStore::open(&data.blobs())
        .with_context(|| format!("cannot open {}", data.blobs().display()))?;
    let dst = Arc::new(PgStore::open(&args.to).context("cannot open the PostgreSQL target")?);
    let dst_blobs = PgBlobStore::new(dst.clone());
    if !dst.is_empty()? {
        if !args.force {
            bail!(
                "the PostgreSQL target already holds Keel data; pass --force to erase it and copy again"
            );
        }
        eprintln!("Erasing the Keel data in the target (--force).");
        dst.erase_all()?;
    }

    eprintln!("Copying {} into PostgreSQL.", data.root.display());
    let mut bar = ProgressLine::new();
    let summary = copy_store(&src, &src_blobs, dst.as_ref(), &dst_blobs, &mut |p| {
        bar.update(p);
    })?;
    bar.finish();
    println!(
        "Copied {} documents, {} accounts, {} folders, {} messages, {} change-log rows, {} deleted items kept for recovery, {} queued messages, {} blobs ({}).",
        summary.documents,
        summary.accounts,
        summary.folders,
        summary.messages,
        summary.changes,
        summary.tombstones,
        summary.queued,
        summary.blobs,
        human_bytes(summary.blob_bytes)
    );
    if !summary.missing_blobs.is_empty() {
        eprintln!(
            "warning: {} message files referenced by the source were missing and not copied",
            summary.missing_blobs.len()
        );
    }

    println!("Checking the PostgreSQL store:");
    let report = keel_store::check::check_store(dst.as_ref(), &dst_blobs as &dyn BlobStore, false)?;
    println!("{report}");
    drop(lock);
    if !report.is_clean() {
        bail!("the copy is not consistent (see above); the embedded store is unchanged");
    }
    println!();
    println!(
        "Done. The embedded store in {} is unchanged. To run on PostgreSQL, set in {}:",
        data.root.display(),
        data.config().display()
    );
    println!();
    println!("[store]");
    println!("backend = \"postgres\"");
    println!("url = \"{}\"", toml_escape(&args.to));
    println!();
    println!(
        "Other nodes: `keel serve --data DIR --store '{}'` with an empty DIR of their own.",
        args.to
    );
    Ok(ExitCode::SUCCESS)
}

fn toml_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn human_bytes(n: u64) -> String {
    const MIB: f64 = 1024.0 * 1024.0;
    #[allow(clippy::cast_precision_loss)] // A display value.
    let v = n as f64;
    if v >= MIB {
        format!("{:.1} MiB", v / MIB)
    } else {
        format!("{:.1} KiB", v / 1024.0)
    }
}

/// Progress on stderr: a bar (indicatif) on a terminal, otherwise a line per stage and
/// every tenth of the mail.
struct ProgressLine {
    bar: Option<indicatif::ProgressBar>,
    stage: Option<Stage>,
    tenth: u64,
}

impl ProgressLine {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::with_draw_target(
                None,
                indicatif::ProgressDrawTarget::stderr(),
            );
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("[{bar:30}] {percent:>3}% {wide_msg}")
            {
                bar.set_style(style.progress_chars("#>-"));
            }
            bar
        });
        Self {
            bar,
            stage: None,
            tenth: 0,
        }
    }

    fn text(p: &Progress) -> String {
        let pct = (p.done * 100).checked_div(p.total).unwrap_or(100);
        match p.stage {
            Stage::Counting => "Counting what to copy…".to_owned(),
            Stage::Documents => format!("Documents: {}/{}", p.done, p.total),
            Stage::Mail | Stage::Queue => format!(
                "{}: {}/{} messages ({pct}%), {} of message data",
                if p.stage == Stage::Mail {
                    "Mail"
                } else {
                    "Queue"
                },
                p.done,
                p.total,
                human_bytes(p.bytes)
            ),
            Stage::Pruning => format!("Removing stale blobs in the target: {}/{}", p.done, p.total),
        }
    }

    fn update(&mut self, p: &Progress) {
        let new_stage = self.stage != Some(p.stage);
        if let Some(bar) = &self.bar {
            bar.set_length(p.total.max(1));
            bar.set_position(p.done.min(p.total.max(1)));
            bar.set_message(Self::text(p));
        } else {
            if new_stage {
                self.tenth = 0;
            }
            let tenth = (p.done * 10).checked_div(p.total).unwrap_or(10);
            if new_stage || tenth > self.tenth {
                eprintln!("{}", Self::text(p));
                self.tenth = tenth;
            }
        }
        self.stage = Some(p.stage);
    }

    fn finish(&mut self) {
        if let Some(bar) = &self.bar {
            bar.finish();
            eprintln!();
        }
    }
}
