//! `keel serve`: first run, start-up summary, the run loop, graceful shutdown.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use keel_core::log::LogKind;
use tokio::signal::unix::{SignalKind, signal};
use tokio_rustls::TlsAcceptor;

use crate::config::{DataDir, DnsSection, KeelToml, ListenSection, StoreSection};
use crate::http::HttpHandler;
use crate::manager::{ManagerCtx, ServiceManager};
use crate::setup::{self, Env};
use crate::status::{ServerStatus, render_table};
use crate::tls::{self, CertSet, LiveCerts};
use keel_net::services;
use keel_net::{Handler, SHUTDOWN_GRACE};

/// Options of `keel serve`.
#[derive(Debug, Clone, Default)]
pub(crate) struct ServeOptions {
    pub(crate) hostname: Option<String>,
    pub(crate) domain: Option<String>,
    pub(crate) port_offset: Option<u16>,
    pub(crate) listen: Vec<IpAddr>,
    pub(crate) dns_server: Option<std::net::SocketAddr>,
    pub(crate) store_url: Option<String>,
}

/// How often the server looks for changes made by the CLI or another process.
const RELOAD_POLL: Duration = Duration::from_millis(500);

pub(crate) async fn serve(data: DataDir, opts: ServeOptions) -> Result<()> {
    let first_run = !data.is_initialised();
    std::fs::create_dir_all(data.run())
        .with_context(|| format!("cannot create the data directory {}", data.root.display()))?;
    // One server per data directory.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(data.lock_file())?;
    if lock.try_lock().is_err() {
        bail!(
            "another keel server is already running on {}",
            data.root.display()
        );
    }

    let mut cfg = if first_run {
        let mut listen = ListenSection::default();
        if !opts.listen.is_empty() {
            listen.addresses = opts.listen.clone();
        }
        if let Some(off) = opts.port_offset {
            listen.port_offset = off;
        }
        let store = match &opts.store_url {
            Some(url) => StoreSection {
                backend: "postgres".to_owned(),
                url: Some(url.clone()),
            },
            None => StoreSection::default(),
        };
        let cfg = KeelToml {
            store,
            listen,
            dns: DnsSection {
                server: opts.dns_server,
            },
        };
        std::fs::write(data.config(), cfg.render())?;
        cfg
    } else {
        KeelToml::load(&data.config())?
    };
    // Flags given on a later run apply to this run only.
    if !first_run {
        if !opts.listen.is_empty() {
            cfg.listen.addresses = opts.listen.clone();
        }
        if let Some(off) = opts.port_offset {
            cfg.listen.port_offset = off;
        }
        if opts.dns_server.is_some() {
            cfg.dns.server = opts.dns_server;
        }
    }

    let env = Env::open(&data)?;
    let removed = keel_store::collect_orphan_blobs(env.meta.as_ref(), env.blobs.as_ref())?;
    if removed > 0 {
        env.logs.write(
            LogKind::Warning,
            &format!(
                "removed {removed} unreferenced message blobs left by an interrupted delivery"
            ),
        );
    }

    // guide §24.6: the statistics start at the first start and persist across restarts.
    keel_core::stats::global().mark_started(env.clock.unix());
    keel_mail::stats::ensure(env.meta.as_ref(), env.clock.unix())?;
    let stats_task = tokio::spawn(run_stats_flush(env.meta.clone(), env.clock.clone()));
    // guide §24.5: the traffic charts' history, kept across restarts.
    load_traffic(&data.traffic_file(), &env.logs);
    let traffic_task = tokio::spawn(run_traffic_sampler(data.traffic_file(), env.clock.clone()));

    // Cluster mode (DESIGN §4): other nodes' committed changes reach local IDLE sessions.
    let _change_listener = env.mailboxes.spawn_change_listener()?;

    let hostname = setup::ensure_hostname(&env, opts.hostname.as_deref())?;
    let created_admin = if first_run {
        setup::first_run(&env, &hostname, opts.domain.as_deref())?
    } else {
        None
    };
    let primary = setup::primary_domain(&env)?;
    tls::ensure_self_signed(&data.tls(), &hostname, &primary)?;
    // guide §16.1: certificates live in the store (shared by a cluster's nodes); pairs
    // copied into the certificate directory are imported once.
    keel_net::certs::import_directory(env.meta.as_ref(), &data.tls(), env.clock.unix())?;
    let certs = LiveCerts::new(CertSet::from_store(env.meta.as_ref())?);
    let mut cert_stamp = keel_net::certs::stamp(env.meta.as_ref())?;
    let tls = TlsAcceptor::from(certs.server_config()?);

    services::clear_controls(env.meta.as_ref())?;
    let mut handlers: HashMap<&'static str, Arc<dyn Handler>> = HashMap::new();
    let hostname_fn: Arc<dyn Fn() -> String + Send + Sync> = {
        let meta = env.meta.clone();
        let fallback = hostname.clone();
        Arc::new(move || {
            setup::load_general(meta.as_ref())
                .ok()
                .flatten()
                .map_or_else(|| fallback.clone(), |g| g.hostname)
        })
    };
    // The outbound queue (guide §12.2, §24.2): one runner per server.
    let runner =
        keel_smtp::QueueRunner::new(setup::queue_context(&env, &cfg, hostname_fn.clone())?);
    let (queue_stop, queue_stop_rx) = tokio::sync::watch::channel(false);
    let queue_task = tokio::spawn(runner.clone().run(queue_stop_rx));
    // The JSON admin API (issue 5) on the HTTP(S) services.
    // guide §6.1: the services page shows each service's state on this node.
    let service_states = keel_http::admin::ServiceStates::default();
    // guide §24.3: the admin lists and ends open connections of this node.
    let connections = keel_net::ConnectionRegistry::default();
    let admin = keel_http::admin::AdminState::new(
        env.directory.clone(),
        env.meta.clone(),
        env.blobs.clone(),
        env.logs.as_ref().clone(),
        env.clock.clone(),
        Some(runner.waker()),
    )
    .with_mailboxes(env.mailboxes.clone())
    .with_delivery_tasks(runner.tasks())
    .with_service_states(service_states.clone())
    .with_connections(connections.clone());
    // guide §7.4, §7.5: the clean-out and the purge of expired deleted items.
    let cleanout_task = tokio::spawn(run_cleanout(
        env.mailboxes.clone(),
        env.logs.as_ref().clone(),
        cleanout_interval(),
    ));
    let http: Arc<dyn Handler> = Arc::new(HttpHandler::new(
        setup::web_authenticator(&env),
        {
            let live = certs.clone();
            Arc::new(move || live.current().default_der())
        },
        env.logs.as_ref().clone(),
        admin,
    ));
    handlers.insert("http", http.clone());
    handlers.insert("https", http);
    let smtp_ctx = keel_smtp::SmtpContext {
        mailboxes: env.mailboxes.clone(),
        directory: env.directory.clone(),
        meta: env.meta.clone(),
        blobs: env.blobs.clone(),
        logs: env.logs.as_ref().clone(),
        clock: env.clock.clone(),
        hostname: hostname_fn,
        queue_waker: Some(runner.waker()),
        resolver: Some(runner.resolver()),
        data_dir_free_space: {
            let root = data.root.clone();
            Arc::new(move || crate::sys::free_space(&root))
        },
    };
    // One set of per-IP counters for 25, 465 and 587 (guide §12.2 limits are per IP).
    let ip_limits = Arc::new(keel_smtp::IpLimits::default());
    for (name, kind) in [
        ("smtp", keel_smtp::SmtpKind::Mx),
        ("smtps", keel_smtp::SmtpKind::Smtps),
        ("submission", keel_smtp::SmtpKind::Submission),
    ] {
        let svc = keel_smtp::SmtpService::with_limits(kind, smtp_ctx.clone(), ip_limits.clone());
        handlers.insert(name, Arc::new(svc));
    }
    for (name, implicit_tls) in [("imap", false), ("imaps", true)] {
        let ctx = keel_imap::ImapContext {
            mailboxes: env.mailboxes.clone(),
            hostname: hostname.clone(),
            implicit_tls,
            logs: Some(env.logs.as_ref().clone()),
            limits: keel_imap::codec::Limits::default(),
        };
        handlers.insert(name, Arc::new(keel_imap::ImapService::new(ctx)));
    }
    for (name, implicit_tls) in [("pop3", false), ("pop3s", true)] {
        let ctx = keel_pop3::Pop3Context {
            mailboxes: env.mailboxes.clone(),
            hostname: hostname.clone(),
            implicit_tls,
            logs: Some(env.logs.as_ref().clone()),
        };
        handlers.insert(name, Arc::new(keel_pop3::Pop3Service::new(ctx)));
    }
    let dir = env.directory.clone();
    let mut manager = ServiceManager::new(ManagerCtx {
        meta: env.meta.clone(),
        tls,
        listen: cfg.listen.addresses.clone(),
        port_offset: cfg.listen.port_offset,
        handlers,
        ip_groups: Arc::new(move || Ok(dir.ip_groups()?)),
    });
    manager.reconcile().await?;

    let started_at = chrono::Utc::now().to_rfc3339();
    let write_status = |m: &ServiceManager| {
        let st = ServerStatus {
            pid: std::process::id(),
            hostname: hostname.clone(),
            started_at: started_at.clone(),
            services: m.statuses(),
        };
        let runtime = st
            .services
            .iter()
            .map(|s| keel_http::admin::ServiceRuntime {
                name: s.name.clone(),
                state: s.state.clone(),
                addresses: s.addresses.clone(),
            })
            .collect();
        match service_states.write() {
            Ok(mut l) => *l = runtime,
            Err(p) => *p.into_inner() = runtime,
        }
        let handles = m.connection_handles();
        match connections.write() {
            Ok(mut l) => *l = handles,
            Err(p) => *p.into_inner() = handles,
        }
        if let Err(e) = st.write(&data.status_file()) {
            tracing::warn!("{e:#}");
        }
    };
    // Signals before "Ready.": a SIGTERM right after start must stop gracefully.
    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sighup = signal(SignalKind::hangup())?;
    // The status file first: `keel status` must see a server that printed "Ready.".
    write_status(&manager);
    print_summary(
        &data,
        &hostname,
        &primary,
        first_run,
        created_admin.as_ref(),
        &manager,
    );
    env.logs
        .write(LogKind::Operations, &format!("Keel started on {hostname}"));

    let mut generation = env.meta.docs_generation()?;
    let mut tick = tokio::time::interval(RELOAD_POLL);
    loop {
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            _ = sighup.recv() => {
                // keel.toml may have new listen addresses.
                match KeelToml::load(&data.config()) {
                    Ok(new) => {
                        manager = rebuild_listen(manager, &new);
                        manager.reconcile().await?;
                        write_status(&manager);
                    }
                    Err(e) => env.logs.write(LogKind::Error, &format!("reload refused: {e:#}")),
                }
            }
            _ = tick.tick() => {
                let g = match env.meta.docs_generation() {
                    Ok(g) => g,
                    Err(e) => { tracing::warn!("{e}"); continue; }
                };
                if g != generation {
                    generation = g;
                    setup::apply_runtime_settings(&env);
                    reload_certs(&env, &certs, &mut cert_stamp);
                    manager.reconcile().await?;
                    write_status(&manager);
                }
            }
        }
    }
    println!(
        "Stopping: finishing {} open connection(s) (at most {} s)…",
        manager.active_connections(),
        SHUTDOWN_GRACE.as_secs()
    );
    manager.shutdown(SHUTDOWN_GRACE).await;
    let _ = queue_stop.send(true);
    let _ = queue_task.await;
    cleanout_task.abort();
    stats_task.abort();
    traffic_task.abort();
    if let Err(e) = save_traffic(&data.traffic_file()) {
        env.logs.write(
            LogKind::Error,
            &format!("saving the traffic charts failed: {e:#}"),
        );
    }
    if let Err(e) = flush_stats(env.meta.clone(), env.clock.clone()).await {
        env.logs.write(
            LogKind::Error,
            &format!("saving the statistics failed: {e}"),
        );
    }
    env.logs.write(LogKind::Operations, "Keel stopped");
    let _ = std::fs::remove_file(data.status_file());
    drop(lock);
    println!("Keel stopped.");
    Ok(())
}

/// Rebuilds the TLS certificate set when the stored certificates changed (requirements-2
/// §16: hot reload; new handshakes use the new set, open connections keep theirs).
fn reload_certs(env: &Env, certs: &LiveCerts, stamp: &mut Vec<(String, u64)>) {
    let now = match keel_net::certs::stamp(env.meta.as_ref()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("{e}");
            return;
        }
    };
    if now == *stamp {
        return;
    }
    match CertSet::from_store(env.meta.as_ref()) {
        Ok(set) => {
            certs.replace(set);
            *stamp = now;
            env.logs
                .write(LogKind::Operations, "TLS certificates reloaded");
        }
        Err(e) => {
            *stamp = now;
            env.logs.write(
                LogKind::Error,
                &format!("the stored certificates could not be loaded; the previous ones stay in use: {e:#}"),
            );
        }
    }
}

/// Saves this process's pending statistics increments (guide §24.6).
async fn flush_stats(
    meta: Arc<dyn keel_store::MetaStore>,
    clock: keel_core::clock::SharedClock,
) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        keel_mail::stats::flush(meta.as_ref(), keel_core::stats::global(), clock.unix())
    })
    .await??;
    Ok(())
}

/// Saves the statistics every [`keel_mail::stats::STATS_FLUSH_INTERVAL`].
async fn run_stats_flush(
    meta: Arc<dyn keel_store::MetaStore>,
    clock: keel_core::clock::SharedClock,
) {
    loop {
        tokio::time::sleep(keel_mail::stats::STATS_FLUSH_INTERVAL).await;
        if let Err(e) = flush_stats(meta.clone(), clock.clone()).await {
            tracing::warn!("saving the statistics failed: {e:#}");
        }
    }
}

/// Environment variable overriding the traffic sampling interval of 20 s (guide §24.5), for
/// tests.
const TRAFFIC_SAMPLE_VAR: &str = "KEEL_TRAFFIC_SAMPLE_SECS";
/// How often the traffic history is saved besides at shutdown.
const TRAFFIC_SAVE_EVERY: Duration = Duration::from_secs(300);

fn load_traffic(path: &std::path::Path, logs: &keel_core::log::Logs) {
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    match serde_json::from_str::<keel_core::traffic::Traffic>(&text) {
        Ok(t) => {
            *keel_core::traffic::global()
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = t;
        }
        Err(e) => logs.write(
            LogKind::Warning,
            &format!(
                "{} is not a traffic history ({e}); the charts start empty",
                path.display()
            ),
        ),
    }
}

/// Writes the traffic history: temporary file, fsync, rename.
fn save_traffic(path: &std::path::Path) -> Result<()> {
    use std::io::Write;
    let json = {
        let t = keel_core::traffic::global()
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        serde_json::to_vec(&*t)?
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&json)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// Samples the counters every 20 s (or `KEEL_TRAFFIC_SAMPLE_SECS`) into the charts and
/// saves the history every five minutes.
async fn run_traffic_sampler(path: std::path::PathBuf, clock: keel_core::clock::SharedClock) {
    let every = std::env::var(TRAFFIC_SAMPLE_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map_or(Duration::from_secs(20), Duration::from_secs);
    let mut last_save = tokio::time::Instant::now();
    loop {
        keel_core::traffic::global()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sample(keel_core::stats::global(), clock.unix());
        if last_save.elapsed() >= TRAFFIC_SAVE_EVERY {
            last_save = tokio::time::Instant::now();
            let p = path.clone();
            match tokio::task::spawn_blocking(move || save_traffic(&p)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("saving the traffic charts failed: {e:#}"),
                Err(e) => tracing::warn!("saving the traffic charts failed: {e}"),
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// Environment variable overriding [`keel_mail::CLEANOUT_INTERVAL`] in seconds (tests and
/// small installations; the first run is still one minute after start at most).
const CLEANOUT_INTERVAL_VAR: &str = "KEEL_CLEANOUT_INTERVAL_SECS";

fn cleanout_interval() -> Duration {
    std::env::var(CLEANOUT_INTERVAL_VAR)
        .ok()
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|&s| s > 0)
        .map_or(keel_mail::CLEANOUT_INTERVAL, Duration::from_secs)
}

/// The clean-out job (guide §7.5: about every 6 hours): the first run shortly after start,
/// then every `interval`; one Operations-log line per run. Every step is safe while other
/// nodes of a cluster run the same job (see `keel_mail`'s retention notes).
async fn run_cleanout(
    mailboxes: keel_mail::Mailboxes,
    logs: keel_core::log::Logs,
    interval: Duration,
) {
    tokio::time::sleep(interval.min(Duration::from_secs(60))).await;
    loop {
        let mb = mailboxes.clone();
        match tokio::task::spawn_blocking(move || mb.clean_out()).await {
            Ok(Ok(report)) => logs.write(LogKind::Operations, &report.to_string()),
            Ok(Err(e)) => logs.write(LogKind::Error, &format!("clean-out failed: {e}")),
            Err(e) => logs.write(LogKind::Error, &format!("clean-out task failed: {e}")),
        }
        tokio::time::sleep(interval).await;
    }
}

fn rebuild_listen(manager: ServiceManager, cfg: &KeelToml) -> ServiceManager {
    manager.with_listen(cfg.listen.addresses.clone(), cfg.listen.port_offset)
}

fn print_summary(
    data: &DataDir,
    hostname: &str,
    primary: &str,
    first_run: bool,
    admin: Option<&setup::CreatedAdmin>,
    manager: &ServiceManager,
) {
    let mut out = String::new();
    out.push_str(&format!("Keel {} mail server\n", env!("CARGO_PKG_VERSION")));
    out.push_str(&format!(
        "Data directory: {}{}\n",
        data.root.display(),
        if first_run { " (created)" } else { "" }
    ));
    out.push_str(&format!("Internet hostname: {hostname}\n"));
    out.push_str(&format!("Primary domain: {primary}\n"));
    if let Some(a) = admin {
        out.push_str("\nAdministrator account created.\n");
        out.push_str(&format!("  Login:    {}\n", a.login));
        out.push_str(&format!("  Password: {}\n", a.password));
        out.push_str(
            "  This password is shown only once and stored only as a hash; change it after \
             your first sign-in.\n  Sign in to the web administration to run the \
             configuration wizard.\n",
        );
    }
    out.push_str("\nServices:\n");
    out.push_str(&render_table(&manager.statuses()));
    out.push_str("Ready.\n");
    print!("{out}");
    use std::io::Write;
    let _ = std::io::stdout().flush();
}
