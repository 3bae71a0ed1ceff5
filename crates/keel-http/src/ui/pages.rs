//! The page handlers: each reads through the operations the JSON API handlers use and
//! renders one askama template. Nothing here changes data; forms post to the API.

use askama::Template;
use axum::Extension;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use keel_core::log::LogKind;
use keel_directory::{Alias, Domain, Group, User};
use serde::Deserialize;

use super::{Chrome, PageError, human_size, render, safe_next, see_other, utc_time};
use crate::ConnInfo;
use crate::admin::{AdminCtx, AdminState, ApiError, UserQuery, WizardState, blocking};

type PageResult = Result<Response, PageError>;
type Q<T> = Result<Query<T>, QueryRejection>;

fn query<T: Default>(q: Q<T>) -> Result<T, PageError> {
    q.map(|Query(t)| t).map_err(|e| {
        PageError(ApiError::bad_request(format!(
            "invalid query string: {}",
            e.body_text()
        )))
    })
}

// ---------------------------------------------------------------- sign-in, dashboard

#[derive(Debug, Default, Deserialize)]
pub(crate) struct NextQuery {
    next: Option<String>,
}

#[derive(Template)]
#[template(path = "sign_in.html")]
struct SignIn {
    next: String,
    came_back: bool,
}

pub(crate) async fn sign_in(
    State(st): State<AdminState>,
    info: Option<Extension<ConnInfo>>,
    q: Q<NextQuery>,
) -> PageResult {
    let Some(Extension(info)) = info else {
        return Err(PageError(ApiError::Forbidden(
            "the client address of this connection is unknown; the request is refused".into(),
        )));
    };
    crate::admin::session::check_remote_access(&st, &info).await?;
    let q = query(q)?;
    render(&SignIn {
        came_back: q.next.is_some(),
        next: safe_next(q.next.as_deref()),
    })
}

pub(crate) async fn root() -> Response {
    see_other("/admin/")
}

#[derive(Template)]
#[template(path = "dashboard.html")]
struct Dashboard {
    chrome: Chrome,
    wizard: WizardState,
    domains: usize,
    users: usize,
    groups: usize,
    aliases: usize,
    queued: usize,
    queued_size: String,
}

pub(crate) async fn dashboard(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let st2 = st.clone();
    let now = st.clock.unix();
    let (wizard, counts, queue) = blocking(move || {
        let d = &st2.directory;
        let counts = (
            d.list_domains()?.len(),
            d.list_users(None)?.len(),
            d.list_groups(None)?.len(),
            d.list_aliases(None)?.len(),
        );
        let q = crate::admin::queue_search(st2.meta.as_ref(), now, None)?;
        Ok((crate::admin::wizard_state(&st2)?, counts, q))
    })
    .await?;
    let chrome = Chrome::new(&st, &admin, "dashboard", "Dashboard");
    let totals = keel_smtp::queue::totals(&queue);
    render(&Dashboard {
        chrome,
        wizard,
        domains: counts.0,
        users: counts.1,
        groups: counts.2,
        aliases: counts.3,
        queued: totals.messages,
        queued_size: human_size(totals.bytes),
    })
}

#[derive(Template)]
#[template(path = "wizard.html")]
struct Wizard {
    chrome: Chrome,
    wizard: WizardState,
    domains: Vec<Domain>,
}

pub(crate) async fn wizard(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let st2 = st.clone();
    let (wizard, domains) = blocking(move || {
        Ok((
            crate::admin::wizard_state(&st2)?,
            st2.directory.list_domains()?,
        ))
    })
    .await?;
    render(&Wizard {
        chrome: Chrome::new(&st, &admin, "dashboard", "Configuration wizard"),
        wizard,
        domains,
    })
}

// ------------------------------------------------------------------------- domains

#[derive(Template)]
#[template(path = "domains.html")]
struct Domains {
    chrome: Chrome,
    domains: Vec<Domain>,
    public_global: bool,
}

pub(crate) async fn domains(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let d = st.directory.clone();
    let (domains, scope) =
        blocking(move || Ok((d.list_domains()?, d.public_folder_scope()?))).await?;
    render(&Domains {
        chrome: Chrome::new(&st, &admin, "domains", "Domains"),
        domains,
        public_global: scope == keel_directory::PublicFolderScope::Global,
    })
}

#[derive(Template)]
#[template(path = "domain.html")]
struct DomainPage {
    chrome: Chrome,
    domain: Domain,
    users: usize,
    aliases_text: String,
    recovery_days: u32,
    cleanout_deleted_days: u32,
    cleanout_junk_days: u32,
    folder_names: Vec<FolderNameField>,
}

/// One special-use folder name of the domain form (issue 4).
struct FolderNameField {
    key: &'static str,
    label: &'static str,
    value: String,
    default: &'static str,
}

fn folder_name_fields(domain: &Domain) -> Vec<FolderNameField> {
    use keel_mail::SpecialUse;
    SpecialUse::ALL
        .into_iter()
        .map(|u| FolderNameField {
            key: u.key(),
            label: match u {
                SpecialUse::Sent => "Sent mail",
                SpecialUse::Drafts => "Drafts",
                SpecialUse::Trash => "Deleted items (Trash)",
                SpecialUse::Junk => "Junk mail",
                SpecialUse::Archive => "Archive",
            },
            value: domain.folder_name(u.key()).unwrap_or_default().to_owned(),
            default: u.default_name(),
        })
        .collect()
}

pub(crate) async fn domain(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(name): Path<String>,
) -> PageResult {
    let d = st.directory.clone();
    let (domain, users) = blocking(move || {
        let dom = d.get_domain(&name)?;
        let users = d.list_users(Some(&dom.name))?.len();
        Ok((dom, users))
    })
    .await?;
    let title = format!("Domain {}", domain.name);
    render(&DomainPage {
        chrome: Chrome::new(&st, &admin, "domains", &title),
        aliases_text: domain.aliases.join("\n"),
        recovery_days: domain.deleted_items_recovery_days(),
        cleanout_deleted_days: domain.cleanout_deleted_items_days(),
        cleanout_junk_days: domain.cleanout_junk_days(),
        folder_names: folder_name_fields(&domain),
        domain,
        users,
    })
}

// --------------------------------------------------------------------------- users

#[derive(Template)]
#[template(path = "users.html")]
struct Users {
    chrome: Chrome,
    users: Vec<User>,
    domains: Vec<Domain>,
    templates: Vec<keel_directory::UserTemplate>,
    q: String,
    domain: String,
}

pub(crate) async fn users(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    q: Q<UserQuery>,
) -> PageResult {
    let q = query(q)?;
    let (q_text, q_domain) = (
        q.q.clone().unwrap_or_default(),
        q.domain.clone().unwrap_or_default(),
    );
    let q = UserQuery {
        domain: admin.domain_filter(q.domain.filter(|d| !d.is_empty()))?,
        ..q
    };
    let d = st.directory.clone();
    let own = admin.domain.clone();
    let (users, domains, templates) = blocking(move || {
        let mut templates = d.list_user_templates(own.as_deref())?;
        if own.is_some() {
            // guide ch. 32: no template that grants rights for a domain administrator.
            templates.retain(|t| {
                t.admin_rights == keel_directory::AdminRights::None && !t.public_folder_admin
            });
        }
        Ok((
            crate::admin::list_users(&d, &q)?,
            visible_domains(&d, own.as_deref())?,
            templates,
        ))
    })
    .await?;
    render(&Users {
        chrome: Chrome::new(&st, &admin, "users", "Users"),
        users,
        domains,
        templates,
        q: q_text,
        domain: q_domain,
    })
}

#[derive(Template)]
#[template(path = "user.html")]
struct UserPage {
    chrome: Chrome,
    user: User,
    addresses_text: String,
    forwarding_text: String,
    locked_until: String,
    last_login: String,
    login_count: u64,
    used: String,
    rights: &'static str,
    quota_mb: String,
    /// The user's own clean-out ages; empty = the domain's.
    cleanout_deleted_text: String,
    cleanout_junk_text: String,
    domain_cleanout_deleted: u32,
    domain_cleanout_junk: u32,
    /// The domain's deleted-item retention; 0 = recovery off.
    recovery_days: u32,
}

fn rights_key(r: keel_directory::AdminRights) -> &'static str {
    match r {
        keel_directory::AdminRights::Full => "full",
        keel_directory::AdminRights::ReadOnly => "read-only",
        keel_directory::AdminRights::None => "none",
    }
}

/// Bytes as the megabytes a form field shows (no trailing zeros).
fn megabytes(bytes: u64) -> String {
    let mb = bytes as f64 / (1024.0 * 1024.0);
    let s = format!("{mb:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

pub(crate) async fn user(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(address): Path<String>,
) -> PageResult {
    let (d, meta, now) = (st.directory.clone(), st.meta.clone(), st.clock.unix());
    let a2 = admin.clone();
    let (user, locked, stats, usage, domain) = blocking(move || {
        let u = d.get_user(&address)?;
        a2.require_domain(&u.domain)?;
        let locked = d.account_locked_until(&u.address)?.filter(|t| *t > now);
        let stats = d.login_stats(&u.address)?;
        let usage = meta.usage(&u.address)?;
        let domain = d.get_domain(&u.domain)?;
        Ok((u, locked, stats, usage, domain))
    })
    .await?;
    let days = |v: Option<u32>| v.map(|d| d.to_string()).unwrap_or_default();
    let title = format!("User {}", user.address);
    render(&UserPage {
        chrome: Chrome::new(&st, &admin, "users", &title),
        addresses_text: user.addresses.join("\n"),
        forwarding_text: user.forwarding.targets.join("\n"),
        locked_until: utc_time(locked),
        last_login: utc_time(stats.last_login),
        login_count: stats.login_count,
        used: human_size(usage.bytes),
        rights: rights_key(user.admin_rights),
        quota_mb: megabytes(user.quota.bytes),
        cleanout_deleted_text: days(user.cleanout_deleted_items_days),
        cleanout_junk_text: days(user.cleanout_junk_days),
        domain_cleanout_deleted: domain.cleanout_deleted_items_days(),
        domain_cleanout_junk: domain.cleanout_junk_days(),
        recovery_days: domain.deleted_items_recovery_days(),
        user,
    })
}

#[derive(Template)]
#[template(path = "templates.html")]
struct Templates {
    chrome: Chrome,
    templates: Vec<TemplateRow>,
    domains: Vec<Domain>,
    groups: Vec<Group>,
}

/// One row of the templates table.
struct TemplateRow {
    name: String,
    domain: String,
    description: String,
    quota: String,
    rights: &'static str,
    groups: String,
    domain_admin: bool,
}

/// guide §8.10 "User templates".
pub(crate) async fn templates(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let d = st.directory.clone();
    let (list, domains, groups) = blocking(move || {
        Ok((
            d.list_user_templates(None)?,
            d.list_domains()?,
            d.list_groups(None)?,
        ))
    })
    .await?;
    let templates = list
        .into_iter()
        .map(|t| TemplateRow {
            domain: t.domain.clone().unwrap_or_else(|| "(every domain)".into()),
            description: t.description.clone(),
            quota: if t.quota.bytes == 0 {
                "unlimited".into()
            } else {
                human_size(t.quota.bytes)
            },
            rights: rights_key(t.admin_rights),
            groups: t.groups.join(", "),
            domain_admin: t.domain_admin,
            name: t.name,
        })
        .collect();
    render(&Templates {
        chrome: Chrome::new(&st, &admin, "templates", "User templates"),
        templates,
        domains,
        groups,
    })
}

#[derive(Template)]
#[template(path = "traffic.html")]
struct TrafficPage {
    chrome: Chrome,
    series: Vec<(&'static str, &'static str)>,
    ranges: Vec<(&'static str, &'static str)>,
    current_series: String,
    current_range: String,
    ymax: String,
    svg: String,
    svg_href: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct TrafficPageQuery {
    series: Option<String>,
    range: Option<String>,
    ymax: Option<String>,
}

/// guide §24.5 "Traffic Charts": a series over a range, drawn by the server.
pub(crate) async fn traffic(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    q: Q<TrafficPageQuery>,
) -> PageResult {
    let q = query(q)?;
    let series = q
        .series
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "connections.smtp".into());
    let range = q
        .range
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "1d".into());
    let ymax = match q.ymax.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        None => None,
        Some(v) => Some(
            v.parse::<u64>()
                .map_err(|_| ApiError::invalid("ymax", "the y-axis maximum is a whole number"))?,
        ),
    };
    let chart = crate::admin::traffic_chart(&st, &series, Some(&range))?;
    let svg = crate::chart::render_svg(&chart, ymax);
    let svg_href = format!(
        "/admin/api/v1/traffic/{}/chart.svg?range={}{}",
        chart.series,
        chart.range,
        ymax.map(|m| format!("&ymax={m}")).unwrap_or_default()
    );
    render(&TrafficPage {
        chrome: Chrome::new(&st, &admin, "traffic", "Traffic charts"),
        series: keel_core::traffic::SERIES
            .iter()
            .map(|s| (s.id, s.label))
            .collect(),
        ranges: keel_core::traffic::RANGES
            .iter()
            .map(|r| (r.0, r.1))
            .collect(),
        current_series: chart.series.to_owned(),
        current_range: chart.range.to_owned(),
        ymax: ymax.map(|m| m.to_string()).unwrap_or_default(),
        svg,
        svg_href,
    })
}

/// The domains a page offers: every domain, or a domain administrator's own (guide ch. 32).
fn visible_domains(
    d: &keel_directory::Directory,
    own: Option<&str>,
) -> Result<Vec<Domain>, ApiError> {
    let mut all = d.list_domains()?;
    if let Some(own) = own {
        all.retain(|dm| dm.name.eq_ignore_ascii_case(own));
    }
    Ok(all)
}

// ------------------------------------------------------------------ groups, aliases

#[derive(Template)]
#[template(path = "groups.html")]
struct Groups {
    chrome: Chrome,
    groups: Vec<Group>,
    domains: Vec<Domain>,
}

pub(crate) async fn groups(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let d = st.directory.clone();
    let own = admin.domain.clone();
    let (groups, domains) = blocking(move || {
        Ok((
            d.list_groups(own.as_deref())?,
            visible_domains(&d, own.as_deref())?,
        ))
    })
    .await?;
    render(&Groups {
        chrome: Chrome::new(&st, &admin, "groups", "Groups"),
        groups,
        domains,
    })
}

#[derive(Template)]
#[template(path = "group.html")]
struct GroupPage {
    chrome: Chrome,
    group: Group,
    key: String,
    addresses_text: String,
    members_text: String,
    rights: &'static str,
}

pub(crate) async fn group(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    Path(key): Path<String>,
) -> PageResult {
    let d = st.directory.clone();
    let a2 = admin.clone();
    let group = blocking(move || {
        let g = d.get_group(&key)?;
        a2.require_domain(&g.domain)?;
        Ok(g)
    })
    .await?;
    let title = format!("Group {}", group.key());
    render(&GroupPage {
        chrome: Chrome::new(&st, &admin, "groups", &title),
        key: group.key(),
        addresses_text: group.addresses.join("\n"),
        members_text: group.members.join("\n"),
        rights: rights_key(group.admin_rights),
        group,
    })
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct DomainFilter {
    domain: Option<String>,
}

#[derive(Template)]
#[template(path = "aliases.html")]
struct Aliases {
    chrome: Chrome,
    aliases: Vec<Alias>,
    domains: Vec<Domain>,
    domain: String,
}

pub(crate) async fn aliases(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    q: Q<DomainFilter>,
) -> PageResult {
    let filter = admin.domain_filter(query(q)?.domain.filter(|d| !d.is_empty()))?;
    let d = st.directory.clone();
    let f = filter.clone();
    let own = admin.domain.clone();
    let (aliases, domains) = blocking(move || {
        Ok((
            d.list_aliases(f.as_deref())?,
            visible_domains(&d, own.as_deref())?,
        ))
    })
    .await?;
    render(&Aliases {
        chrome: Chrome::new(&st, &admin, "aliases", "Aliases"),
        aliases,
        domains,
        domain: filter.unwrap_or_default(),
    })
}

// --------------------------------------------------------------- queue, services

/// One row of the queue table (guide §24.1 columns).
struct QueueRow {
    id: String,
    created: String,
    next_try: String,
    size: String,
    from: String,
    to: String,
    status: String,
}

#[derive(Template)]
#[template(path = "queue.html")]
struct QueuePage {
    chrome: Chrome,
    tasks: Vec<TaskRow>,
    rows: Vec<QueueRow>,
    total: usize,
    total_size: String,
    q: String,
}

/// One delivery task in progress (guide §24.2 columns).
struct TaskRow {
    id: String,
    size: String,
    from: String,
    to: String,
    phase: &'static str,
    server: String,
    time: String,
    percent: u8,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct SearchQuery {
    q: Option<String>,
}

pub(crate) async fn queue(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    q: Q<SearchQuery>,
) -> PageResult {
    let q = query(q)?.q.unwrap_or_default();
    let (meta, now) = (st.meta.clone(), st.clock.unix());
    let needle = q.clone();
    let list =
        blocking(move || crate::admin::queue_search(meta.as_ref(), now, Some(&needle))).await?;
    let totals = keel_smtp::queue::totals(&list);
    let rows = list
        .into_iter()
        .map(|m| QueueRow {
            created: utc_time(Some(m.created)),
            // guide §24.1: "ASAP" for a message not tried yet.
            next_try: m
                .next_attempt
                .map_or_else(|| "ASAP".to_owned(), |t| utc_time(Some(t))),
            size: human_size(m.size),
            from: if m.sender.is_empty() {
                "(delivery report)".to_owned()
            } else {
                m.sender.clone()
            },
            to: m
                .recipients
                .iter()
                .map(|r| r.address.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            status: m.status,
            id: m.id,
        })
        .collect();
    let tasks = st
        .delivery_task_list()
        .into_iter()
        .map(|t| TaskRow {
            size: human_size(t.size),
            from: if t.from.is_empty() {
                "(delivery report)".to_owned()
            } else {
                t.from.clone()
            },
            to: t.to.join(", "),
            phase: t.phase.as_str(),
            server: t.server.clone().unwrap_or_default(),
            time: format!("{} s", (now - t.started).max(0)),
            percent: t.percent,
            id: t.id,
        })
        .collect();
    render(&QueuePage {
        chrome: Chrome::new(&st, &admin, "queue", "Message queue"),
        tasks,
        rows,
        total: totals.messages,
        total_size: human_size(totals.bytes),
        q,
    })
}

struct ServiceRow {
    name: &'static str,
    title: &'static str,
    port: u16,
    available: bool,
    state: String,
    startup: &'static str,
    access: String,
    limits: String,
}

/// One open connection (guide §24.3 columns).
struct ConnRow {
    service: String,
    id: u64,
    peer: String,
    local: String,
    time: String,
    secure: &'static str,
    user: String,
    info: String,
}

#[derive(Template)]
#[template(path = "services.html")]
struct Services {
    chrome: Chrome,
    rows: Vec<ServiceRow>,
    conns: Vec<ConnRow>,
}

pub(crate) async fn services(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let meta = st.meta.clone();
    let list = blocking(move || crate::admin::service_rows(meta.as_ref())).await?;
    let rows = list
        .into_iter()
        .map(|(def, s)| ServiceRow {
            name: def.name,
            title: def.title,
            port: def.port,
            available: def.available,
            state: st
                .service_runtime(def.name)
                .map(|r| {
                    if r.addresses.is_empty() || r.state != "running" {
                        r.state
                    } else {
                        format!("{} on {}", r.state, r.addresses.join(", "))
                    }
                })
                .unwrap_or_default(),
            startup: match s.startup {
                keel_net::services::Startup::Automatic => "automatic",
                keel_net::services::Startup::Manual => "manual",
            },
            access: s.access_group.unwrap_or_else(|| "everyone".to_owned()),
            limits: format!(
                "{} in total, {} per IP address",
                s.max_connections, s.max_connections_per_ip
            ),
        })
        .collect();
    let now = st.clock.unix();
    let conns = st
        .connection_handles()
        .into_iter()
        .flat_map(|(service, h)| {
            h.list().into_iter().map(move |c| ConnRow {
                service: service.clone(),
                id: c.id,
                peer: c.peer.to_string(),
                local: c.local.to_string(),
                time: format!("{} s", (now - c.since).max(0)),
                secure: if c.secure { "Yes" } else { "No" },
                user: c.user.unwrap_or_default(),
                info: c.info,
            })
        })
        .collect();
    render(&Services {
        chrome: Chrome::new(&st, &admin, "services", "Services"),
        rows,
        conns,
    })
}

/// One row of the opened-folders table (guide §24.4 columns).
struct OpenFolderRow {
    name: String,
    users: String,
    references: usize,
}

#[derive(Template)]
#[template(path = "folders.html")]
struct OpenedFolders {
    chrome: Chrome,
    rows: Vec<OpenFolderRow>,
}

/// guide §24.4 "Opened folders": the folders open in this node's sessions.
pub(crate) async fn opened_folders(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let rows = st
        .open_folders()
        .into_iter()
        .map(|f| OpenFolderRow {
            name: f.name,
            users: f.users.join(", "),
            references: f.references,
        })
        .collect();
    render(&OpenedFolders {
        chrome: Chrome::new(&st, &admin, "folders", "Opened folders"),
        rows,
    })
}

// ---------------------------------------------------------------------- statistics

struct StatRowView {
    key: String,
    label: String,
    value: String,
}

struct StatGroupView {
    id: &'static str,
    title: &'static str,
    rows: Vec<StatRowView>,
}

#[derive(Template)]
#[template(path = "statistics.html")]
struct Statistics {
    chrome: Chrome,
    started_at: String,
    started_label: String,
    uptime: String,
    groups: Vec<StatGroupView>,
}

fn duration_text(secs: u64) -> String {
    let (d, h, m) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h} h {m} min"),
        _ => format!("{d} d {h} h {m} min"),
    }
}

/// guide §24.6: the grouped counters, their start time and Reset.
pub(crate) async fn statistics(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let report = crate::admin::current_statistics(&st).await?;
    let groups = report
        .groups
        .iter()
        .map(|g| StatGroupView {
            id: g.id,
            title: g.title,
            rows: g
                .counters
                .iter()
                .map(|r| StatRowView {
                    key: r.key.clone(),
                    label: r.label.clone(),
                    value: match r.key.as_str() {
                        "storage_bytes" => human_size(r.value),
                        "uptime_seconds" => duration_text(r.value),
                        _ => r.value.to_string(),
                    },
                })
                .collect(),
        })
        .collect();
    render(&Statistics {
        chrome: Chrome::new(&st, &admin, "statistics", "Statistics"),
        started_at: report.started_at.clone(),
        started_label: utc_time(Some(report.started_at_unix)),
        uptime: report.uptime_seconds.map(duration_text).unwrap_or_default(),
        groups,
    })
}

// ---------------------------------------------------------------------------- logs

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LogQuery {
    log: Option<String>,
    q: Option<String>,
}

#[derive(Template)]
#[template(path = "logs.html")]
struct Logs {
    chrome: Chrome,
    /// (log name, whether it is the one shown).
    names: Vec<(&'static str, bool)>,
    /// guide §25.1: the settings of each log (name, enabled, rotation, max size, keep).
    settings: Vec<(&'static str, bool, &'static str, u64, u32)>,
    /// guide §25.9: the debug categories switched on, one a line, and every name.
    debug_on: String,
    debug_all: String,
    log: &'static str,
    q: String,
    lines: Vec<String>,
    max_lines: usize,
}

/// Lines the log viewer shows.
const LOG_VIEW_LINES: usize = 300;

pub(crate) async fn logs(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
    q: Q<LogQuery>,
) -> PageResult {
    let q = query(q)?;
    let kind: LogKind = match q.log.as_deref().filter(|s| !s.is_empty()) {
        None => LogKind::ALL[0],
        Some(name) => name.parse().map_err(|_| {
            PageError(ApiError::NotFound(format!(
                "there is no log '{name}'; choose one from the list"
            )))
        })?,
    };
    let path = st.logs.path(kind);
    let needle = q.q.clone().filter(|s| !s.is_empty());
    let meta = st.meta.clone();
    let (lines, settings) = blocking(move || {
        let lines = crate::admin::tail_lines(&path, LOG_VIEW_LINES, needle.as_deref())
            .map_err(|e| ApiError::Internal(format!("reading {}: {e}", path.display())))?;
        Ok((lines, crate::admin::load_log_settings(meta.as_ref())?))
    })
    .await?;
    let rotation = |r: keel_core::log::Rotation| match r {
        keel_core::log::Rotation::Never => "never",
        keel_core::log::Rotation::Hourly => "hourly",
        keel_core::log::Rotation::Daily => "daily",
        keel_core::log::Rotation::Weekly => "weekly",
        keel_core::log::Rotation::Monthly => "monthly",
    };
    render(&Logs {
        chrome: Chrome::new(&st, &admin, "logs", "Logs"),
        names: LogKind::ALL
            .iter()
            .map(|k| (k.as_str(), *k == kind))
            .collect(),
        settings: LogKind::ALL
            .iter()
            .map(|k| {
                let ks = settings.kind(*k);
                (
                    k.as_str(),
                    ks.enabled,
                    rotation(ks.rotation),
                    ks.max_size,
                    ks.keep,
                )
            })
            .collect(),
        debug_on: settings
            .debug_categories
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        debug_all: keel_core::log::DebugCategory::ALL
            .iter()
            .map(|c| c.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        log: kind.as_str(),
        q: q.q.unwrap_or_default(),
        lines,
        max_lines: LOG_VIEW_LINES,
    })
}

// ------------------------------------------------------------ IP groups (guide §19.1)

struct IpGroupRow {
    name: String,
    /// `entry # description` lines, the form the edit box uses.
    items_text: String,
    /// (entry, description, enabled) for the table.
    items: Vec<(String, String, bool)>,
    built_in: bool,
}

#[derive(Template)]
#[template(path = "ip_groups.html")]
struct IpGroups {
    chrome: Chrome,
    groups: Vec<IpGroupRow>,
}

fn entry_text(e: &keel_core::ipgroup::IpEntry) -> String {
    match serde_json::to_value(e) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => String::new(),
    }
}

pub(crate) async fn ip_groups(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let d = st.directory.clone();
    let list = blocking(move || Ok(d.list_ip_groups()?)).await?;
    let groups = list
        .into_iter()
        .map(|g| {
            let items: Vec<(String, String, bool)> = g
                .items
                .iter()
                .map(|i| (entry_text(&i.entry), i.description.clone(), i.enabled))
                .collect();
            IpGroupRow {
                items_text: items
                    .iter()
                    .map(|(e, d, _)| {
                        if d.is_empty() {
                            e.clone()
                        } else {
                            format!("{e} # {d}")
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n"),
                built_in: g
                    .name
                    .eq_ignore_ascii_case(keel_core::ipgroup::LOCAL_CLIENTS),
                name: g.name,
                items,
            }
        })
        .collect();
    render(&IpGroups {
        chrome: Chrome::new(&st, &admin, "ip-groups", "IP address groups"),
        groups,
    })
}

// ------------------------------------------------------ security policy (guide §12.6)

#[derive(Template)]
#[template(path = "security.html")]
struct Security {
    chrome: Chrome,
    policy: keel_directory::SecurityPolicy,
    mode: &'static str,
    scope: &'static str,
    ip_groups: Vec<String>,
    access: crate::admin::AdminSettings,
}

pub(crate) async fn security(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let (d, meta) = (st.directory.clone(), st.meta.clone());
    let (policy, groups, access) = blocking(move || {
        Ok((
            d.security_policy()?,
            d.list_ip_groups()?
                .into_iter()
                .map(|g| g.name)
                .collect::<Vec<_>>(),
            crate::admin::load_admin_settings(meta.as_ref())?,
        ))
    })
    .await?;
    use keel_directory::{LockScope, SecurityMode};
    render(&Security {
        chrome: Chrome::new(&st, &admin, "security", "Security policy"),
        mode: match policy.mode {
            SecurityMode::NoRestriction => "no-restriction",
            SecurityMode::RequireSecureAuth => "require-secure-auth",
            SecurityMode::RequireEncryptedConnection => "require-encrypted-connection",
        },
        scope: match policy.lockout.scope {
            LockScope::Account => "account",
            LockScope::AccountAndIp => "account-and-ip",
        },
        policy,
        ip_groups: groups,
        access,
    })
}

// ------------------------------------------------------- SMTP server (guide §12.2)

#[derive(Template)]
#[template(path = "smtp.html")]
struct Smtp {
    chrome: Chrome,
    s: keel_smtp::SmtpSettings,
    relay_host: String,
    relay_tls: &'static str,
    relay_ip_group: String,
    exempt_ip_group: String,
    ip_groups: Vec<String>,
    /// guide §12.5 ETRN download: servers as JSON, times of day one a line.
    etrn_servers_json: String,
    etrn_at_text: String,
    etrn_time_interval: String,
    time_intervals: Vec<String>,
}

pub(crate) async fn smtp(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let (d, meta) = (st.directory.clone(), st.meta.clone());
    let (s, groups, intervals) = blocking(move || {
        Ok((
            keel_smtp::load_settings(meta.as_ref())?,
            d.list_ip_groups()?
                .into_iter()
                .map(|g| g.name)
                .collect::<Vec<_>>(),
            d.list_time_intervals()?
                .into_iter()
                .map(|t| t.name)
                .collect::<Vec<_>>(),
        ))
    })
    .await?;
    use keel_smtp::settings::RelayTls;
    // guide §12.5: passwords appear masked, as the API shows them; sent back unchanged
    // they keep the stored ones.
    let servers = crate::admin::smtp_view(&s)?["etrn_download"].take();
    let etrn_servers_json =
        serde_json::to_string_pretty(&servers).map_err(|e| ApiError::Internal(e.to_string()))?;
    render(&Smtp {
        chrome: Chrome::new(&st, &admin, "smtp", "SMTP server"),
        relay_host: s.relay_host.clone().unwrap_or_default(),
        relay_tls: match s.relay_tls {
            RelayTls::Opportunistic => "opportunistic",
            RelayTls::None => "none",
            RelayTls::Starttls => "starttls",
            RelayTls::Implicit => "implicit",
        },
        relay_ip_group: s.relay_ip_group.clone().unwrap_or_default(),
        exempt_ip_group: s.exempt_ip_group.clone().unwrap_or_default(),
        etrn_servers_json,
        etrn_at_text: s.etrn_download_at.join("\n"),
        etrn_time_interval: s.etrn_download_time_interval.clone().unwrap_or_default(),
        time_intervals: intervals,
        s,
        ip_groups: groups,
    })
}

// ------------------------------------------------------ time intervals (guide §19.2)

struct IntervalRow {
    name: String,
    items: Vec<String>,
}

#[derive(Template)]
#[template(path = "time_intervals.html")]
struct TimeIntervals {
    chrome: Chrome,
    intervals: Vec<IntervalRow>,
    days: &'static [&'static str],
}

/// One range as the administrator reads it.
fn describe_time_item(item: &keel_core::timeinterval::TimeItem) -> String {
    use keel_core::timeinterval::TimeItem;
    let hm = |t: &chrono::NaiveTime| t.format("%H:%M").to_string();
    match item {
        TimeItem::Daily { from, to } => format!("every day {}–{}", hm(from), hm(to)),
        TimeItem::Weekly { days, from, to } => {
            let days: Vec<String> = days.iter().map(ToString::to_string).collect();
            format!("{} {}–{}", days.join(", "), hm(from), hm(to))
        }
        TimeItem::Absolute { from, to } => format!(
            "from {} to {}",
            from.format("%Y-%m-%d %H:%M"),
            to.format("%Y-%m-%d %H:%M")
        ),
    }
}

pub(crate) async fn time_intervals(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let d = st.directory.clone();
    let list = blocking(move || Ok(d.list_time_intervals()?)).await?;
    render(&TimeIntervals {
        chrome: Chrome::new(&st, &admin, "time-intervals", "Time intervals"),
        intervals: list
            .into_iter()
            .map(|t| IntervalRow {
                items: t.items.iter().map(describe_time_item).collect(),
                name: t.name,
            })
            .collect(),
        days: &["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"],
    })
}

// ------------------------------------------------- antispam (guide §13.1–§13.7)

struct ZoneRow {
    zone: String,
    description: String,
    action: String,
    enabled: bool,
}

fn zone_rows(lists: &[keel_filter::DnsList]) -> Vec<ZoneRow> {
    use keel_filter::HitAction;
    lists
        .iter()
        .map(|l| ZoneRow {
            zone: l.zone.clone(),
            description: l.description.clone(),
            action: match l.action {
                HitAction::None => "log only".to_owned(),
                HitAction::Reject => "reject".to_owned(),
                HitAction::Score(s) => format!("+{s}"),
            },
            enabled: l.enabled,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "spam.html")]
struct Spam {
    chrome: Chrome,
    s: keel_filter::SpamSettings,
    subject_prefix: String,
    quarantine_address: String,
    whitelist_group: String,
    blacklist_group: String,
    ip_groups: Vec<String>,
    dnsbl: Vec<ZoneRow>,
    uribl: Vec<ZoneRow>,
    bayes: keel_filter::BayesStatus,
    allow: String,
    block: String,
}

pub(crate) async fn spam(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let (d, meta) = (st.directory.clone(), st.meta.clone());
    let (s, groups, bayes, lists) = blocking(move || {
        let s = keel_filter::load_spam_settings(meta.as_ref())?;
        let bayes = keel_filter::Bayes::new(meta.clone()).status(&s.bayes)?;
        let lists = keel_filter::load_sender_lists(meta.as_ref(), &keel_filter::ListScope::Server)?;
        let groups = d
            .list_ip_groups()?
            .into_iter()
            .map(|g| g.name)
            .collect::<Vec<_>>();
        Ok((s, groups, bayes, lists))
    })
    .await?;
    render(&Spam {
        chrome: Chrome::new(&st, &admin, "spam", "Spam filter"),
        subject_prefix: s.subject_prefix.clone().unwrap_or_default(),
        quarantine_address: s.quarantine_address.clone().unwrap_or_default(),
        whitelist_group: s.whitelist_group.clone().unwrap_or_default(),
        blacklist_group: s.blacklist_group.clone().unwrap_or_default(),
        dnsbl: zone_rows(&s.dnsbl),
        uribl: zone_rows(&s.uribl),
        s,
        ip_groups: groups,
        bayes,
        allow: lists.allow.join("\n"),
        block: lists.block.join("\n"),
    })
}

// --------------------------------------------------------- antivirus (guide ch. 14)

#[derive(Template)]
#[template(path = "antivirus.html")]
struct Antivirus {
    chrome: Chrome,
    s: keel_filter::AntivirusSettings,
    on_virus: &'static str,
    on_unscannable: &'static str,
    forward_original: String,
    forward_filtered: String,
    att_forward_original: String,
    att_forward_filtered: String,
    rules_json: String,
}

pub(crate) async fn antivirus(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    use keel_filter::antivirus::{UnscannableAction, VirusAction};
    let meta = st.meta.clone();
    let s = blocking(move || Ok(keel_filter::load_antivirus_settings(meta.as_ref())?)).await?;
    let rules_json = serde_json::to_string_pretty(&s.attachments.rules)
        .map_err(|e| PageError(ApiError::Internal(format!("encoding rules: {e}"))))?;
    render(&Antivirus {
        chrome: Chrome::new(&st, &admin, "antivirus", "Antivirus"),
        on_virus: match s.on_virus {
            VirusAction::Discard => "discard",
            VirusAction::RemoveAttachment => "remove_attachment",
        },
        on_unscannable: match s.on_unscannable {
            UnscannableAction::DeliverWithWarning => "deliver_with_warning",
            UnscannableAction::TreatAsVirus => "treat_as_virus",
        },
        forward_original: s.forward_original.clone().unwrap_or_default(),
        forward_filtered: s.forward_filtered.clone().unwrap_or_default(),
        att_forward_original: s.attachments.forward_original.clone().unwrap_or_default(),
        att_forward_filtered: s.attachments.forward_filtered.clone().unwrap_or_default(),
        rules_json,
        s,
    })
}

// ------------------------------------------------------------- DKIM (RFC 6376 §3.6)

struct DkimRow {
    domain: String,
    selector: String,
    algorithm: &'static str,
    created: String,
    dns_name: String,
    dns_value: String,
}

#[derive(Template)]
#[template(path = "dkim.html")]
struct Dkim {
    chrome: Chrome,
    rows: Vec<DkimRow>,
    default_selector: String,
}

pub(crate) async fn dkim(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let st2 = st.clone();
    let (rows, default_selector) = blocking(move || {
        let sel = keel_filter::load_spam_settings(st2.meta.as_ref())?
            .dkim_sign
            .selector;
        Ok((crate::admin::dkim_rows(&st2)?, sel))
    })
    .await?;
    let rows = rows
        .into_iter()
        .map(|(domain, key)| match key {
            None => DkimRow {
                domain,
                selector: String::new(),
                algorithm: "",
                created: String::new(),
                dns_name: String::new(),
                dns_value: String::new(),
            },
            Some(k) => {
                let (dns_name, dns_value) = k.dns_record();
                DkimRow {
                    domain,
                    selector: k.selector.clone(),
                    algorithm: match k.algorithm {
                        keel_filter::DkimAlgorithm::Rsa => "rsa",
                        keel_filter::DkimAlgorithm::Ed25519 => "ed25519",
                    },
                    created: utc_time(Some(k.created)),
                    dns_name,
                    dns_value,
                }
            }
        })
        .collect();
    render(&Dkim {
        chrome: Chrome::new(&st, &admin, "dkim", "DKIM"),
        rows,
        default_selector,
    })
}

// ------------------------------------------------------------- certificates (guide ch. 16)

#[derive(Template)]
#[template(path = "certificates.html")]
struct Certificates {
    chrome: Chrome,
    rows: Vec<keel_net::certs::CertInfo>,
    domains: Vec<String>,
}

pub(crate) async fn certificates(
    State(st): State<AdminState>,
    Extension(admin): Extension<AdminCtx>,
) -> PageResult {
    let st2 = st.clone();
    let (rows, domains) = blocking(move || {
        let domains = st2
            .directory
            .list_domains()?
            .into_iter()
            .map(|d| d.name)
            .collect();
        Ok((crate::admin::certificate_rows(&st2)?, domains))
    })
    .await?;
    render(&Certificates {
        chrome: Chrome::new(&st, &admin, "certificates", "SSL certificates"),
        rows,
        domains,
    })
}
