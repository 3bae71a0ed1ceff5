//! Starts, stops and restarts services at run time from their stored settings and the
//! run-time requests of the CLI (guide §6.1). The server calls [`ServiceManager::reconcile`]
//! whenever the store's documents change, so settings apply without a restart.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use keel_core::ipgroup::IpGroups;
use keel_store::MetaStore;
use tokio_rustls::TlsAcceptor;

use crate::status::ServiceStatus;
use keel_net::services::{self, CATALOGUE, ServiceDef, ServiceSettings, Startup, TlsMode};
use keel_net::{self, Admission, Handler, RunningService};

struct Live {
    service: RunningService,
    settings: ServiceSettings,
    wanted: Vec<SocketAddr>,
    restarts: u64,
}

/// Everything the manager needs to start a service.
pub(crate) struct ManagerCtx {
    pub(crate) meta: Arc<dyn MetaStore>,
    pub(crate) tls: TlsAcceptor,
    pub(crate) listen: Vec<IpAddr>,
    pub(crate) port_offset: u16,
    /// The handler of each available service, by name.
    pub(crate) handlers: HashMap<&'static str, Arc<dyn Handler>>,
    /// Current IP groups (from the directory).
    pub(crate) ip_groups: Arc<dyn Fn() -> Result<IpGroups> + Send + Sync>,
}

pub(crate) struct ServiceManager {
    ctx: ManagerCtx,
    live: HashMap<&'static str, Live>,
    states: HashMap<&'static str, ServiceStatus>,
}

impl ServiceManager {
    pub(crate) fn new(ctx: ManagerCtx) -> Self {
        Self {
            ctx,
            live: HashMap::new(),
            states: HashMap::new(),
        }
    }

    /// Uses new listen addresses (keel.toml reloaded); applied by the next reconcile.
    pub(crate) fn with_listen(mut self, listen: Vec<IpAddr>, port_offset: u16) -> Self {
        self.ctx.listen = listen;
        self.ctx.port_offset = port_offset;
        self
    }

    /// Brings every service to its wanted state.
    pub(crate) async fn reconcile(&mut self) -> Result<()> {
        let groups = Arc::new((self.ctx.ip_groups)()?);
        for def in CATALOGUE {
            if let Err(e) = self.reconcile_one(def, &groups).await {
                tracing::error!("service {}: {e:#}", def.name);
                self.set_state(def, "failed", Vec::new(), None, vec![format!("{e:#}")]);
            }
        }
        Ok(())
    }

    async fn reconcile_one(
        &mut self,
        def: &'static ServiceDef,
        groups: &Arc<IpGroups>,
    ) -> Result<()> {
        let settings = services::load_settings(self.ctx.meta.as_ref(), def)?;
        let wanted_addrs =
            services::bind_addresses(def, &settings, &self.ctx.listen, self.ctx.port_offset)?;
        let handler = self.ctx.handlers.get(def.name).cloned();
        let Some(handler) = handler.filter(|_| def.available) else {
            let addrs = wanted_addrs.iter().map(ToString::to_string).collect();
            self.set_state(
                def,
                "not available",
                addrs,
                settings.access_group.clone(),
                Vec::new(),
            );
            return Ok(());
        };
        let control = services::load_control(self.ctx.meta.as_ref(), def.name)?;
        let want_running = control
            .running
            .unwrap_or(settings.startup == Startup::Automatic);
        let admission = Admission {
            access_group: settings.access_group.clone(),
            max_connections: settings.max_connections,
            max_per_ip: settings.max_connections_per_ip,
            groups: groups.clone(),
        };
        if let Some(live) = self.live.get(def.name) {
            let same = live.wanted == wanted_addrs && live.restarts == control.restarts;
            if want_running && same {
                live.service.set_admission(admission);
                let addrs = live
                    .service
                    .bound
                    .iter()
                    .map(|b| b.addr.to_string())
                    .collect();
                let notes = live
                    .service
                    .bound
                    .iter()
                    .filter_map(|b| b.note.clone())
                    .collect();
                self.set_state(def, "running", addrs, settings.access_group.clone(), notes);
                if let Some(l) = self.live.get_mut(def.name) {
                    l.settings = settings;
                }
                return Ok(());
            }
            if let Some(old) = self.live.remove(def.name) {
                // Connections of the old instance finish in the background.
                let draining = old.service.close().await;
                tokio::spawn(draining.wait(keel_net::SHUTDOWN_GRACE));
            }
        }
        if !want_running {
            let addrs = wanted_addrs.iter().map(ToString::to_string).collect();
            self.set_state(
                def,
                "stopped",
                addrs,
                settings.access_group.clone(),
                Vec::new(),
            );
            return Ok(());
        }
        match keel_net::bind_all(&wanted_addrs) {
            Ok(listeners) => {
                let service = RunningService::start(
                    listeners,
                    admission,
                    def.tls == TlsMode::Implicit,
                    self.ctx.tls.clone(),
                    handler,
                )
                .count_as(def.name);
                let addrs = service.bound.iter().map(|b| b.addr.to_string()).collect();
                let notes: Vec<String> = service
                    .bound
                    .iter()
                    .filter_map(|b| b.note.clone())
                    .collect();
                for n in &notes {
                    tracing::warn!("service {}: {n}", def.name);
                }
                self.set_state(def, "running", addrs, settings.access_group.clone(), notes);
                self.live.insert(
                    def.name,
                    Live {
                        service,
                        settings,
                        wanted: wanted_addrs,
                        restarts: control.restarts,
                    },
                );
            }
            Err(e) => {
                let addrs = wanted_addrs.iter().map(ToString::to_string).collect();
                self.set_state(def, "failed", addrs, settings.access_group.clone(), vec![e]);
            }
        }
        Ok(())
    }

    fn set_state(
        &mut self,
        def: &ServiceDef,
        state: &str,
        addresses: Vec<String>,
        access: Option<String>,
        notes: Vec<String>,
    ) {
        self.states.insert(
            def.name,
            ServiceStatus {
                name: def.name.to_owned(),
                title: def.title.to_owned(),
                state: state.to_owned(),
                addresses,
                access,
                notes,
            },
        );
    }

    /// States in catalogue order.
    pub(crate) fn statuses(&self) -> Vec<ServiceStatus> {
        CATALOGUE
            .iter()
            .filter_map(|d| self.states.get(d.name).cloned())
            .collect()
    }

    /// Each running service's connection handle, in catalogue order (guide §24.3).
    pub(crate) fn connection_handles(&self) -> Vec<(String, keel_net::ServiceConnections)> {
        CATALOGUE
            .iter()
            .filter_map(|d| {
                self.live
                    .get(d.name)
                    .map(|l| (d.name.to_owned(), l.service.connections()))
            })
            .collect()
    }

    /// Number of open client connections over all services.
    pub(crate) fn active_connections(&self) -> usize {
        self.live
            .values()
            .map(|l| l.service.active_connections())
            .sum()
    }

    /// Graceful stop of everything (SIGTERM): listeners close, connections finish.
    pub(crate) async fn shutdown(&mut self, grace: Duration) {
        let mut draining = Vec::new();
        for (_, live) in self.live.drain() {
            draining.push(live.service.close().await);
        }
        for d in draining {
            d.wait(grace).await;
        }
    }
}
