//! The OpenAPI 3.1 document, generated from the route table that also builds the router
//! (so a route cannot be served without being documented). Schemas are named objects with
//! a description; the field-level shapes are the serde forms of the `keel_directory`,
//! `keel_net` and `keel_smtp` types named in each description.

use serde_json::{Map, Value, json};

use super::RouteDoc;

/// `(name, description)` of every schema the routes name.
const SCHEMAS: &[(&str, &str)] = &[
    ("Empty", "No content."),
    ("OpenApi", "This document."),
    ("LoginRequest", "{\"login\": string, \"password\": string}"),
    (
        "SessionInfo",
        "{\"user\", \"rights\": none|read-only|full, \"domain\" (a domain administrator's domain, guide ch. 32), \"csrf_token\", \"idle_timeout_secs\"}",
    ),
    (
        "AdminSettings",
        "Remote administration (guide §19.3), web administration of domains (guide §32.3) and session settings: remote_enabled, remote_ip_group, web_admin_enabled, web_admin_ip_group, session_idle_minutes, bind_session_to_ip.",
    ),
    ("Domain", "keel_directory::Domain."),
    ("DomainList", "{\"domains\": [Domain]}"),
    ("NewDomain", "keel_directory::NewDomain."),
    (
        "DomainPatch",
        "keel_directory::DomainPatch; absent = unchanged, null turns forwarding/bound_ip off. settings.deleted_items_recovery_days (0 = off, at most 365, guide §7.4), settings.cleanout_deleted_items_days and settings.cleanout_junk_days (0 = off, guide §7.5).",
    ),
    ("User", "keel_directory::User (never contains a secret)."),
    ("UserList", "{\"users\": [User]}"),
    (
        "UserDetail",
        "{\"user\": User, \"logins\": LoginStats, \"usage\": Usage, \"effective_admin_rights\"}",
    ),
    (
        "NewUser",
        "keel_directory::NewUser; a password is required.",
    ),
    (
        "UserPatch",
        "keel_directory::UserPatch; quota and forwarding merge into the current values. cleanout_deleted_items_days, cleanout_junk_days override the domain's (null = the domain's, 0 = off).",
    ),
    (
        "BulkUserPatch",
        "{\"addresses\": [string], \"patch\": UserPatch without password or addresses}",
    ),
    (
        "UserStatistics",
        "{\"statistics\": [{address, full_name, last_login, login_count, services}]} or text/csv.",
    ),
    ("UnlockResult", "{\"unlocked\": number}"),
    (
        "UserUnlockResult",
        "{\"address\": string, \"was_locked\": bool}",
    ),
    (
        "UserTemplate",
        "keel_directory::UserTemplate (guide §8.10): name, description, domain (null = general), quota, outgoing_size_limit, local_domain_only, enabled, admin_rights, public_folder_admin, domain_admin, forwarding, groups.",
    ),
    ("UserTemplateList", "{\"templates\": [UserTemplate]}"),
    (
        "ImportRequest",
        "{\"domain\", \"csv\" (text with a header line: Name;Password;FullName;MailAddress;Groups;Description), \"template\", \"only\": [name], \"dry_run\"} (guide §8.9)",
    ),
    (
        "ImportReport",
        "{\"domain\", \"dry_run\", \"ready\", \"created\", \"skipped\", \"errors\", \"rows\": [{\"line\", \"name\", \"address\", \"full_name\", \"status\": ready|created|skipped|error, \"problem\", …}]}",
    ),
    (
        "TrafficIndex",
        "{\"series\": [{\"id\", \"label\"}], \"ranges\": [{\"id\", \"label\", \"span_secs\", \"step_secs\"}]}",
    ),
    (
        "TrafficChart",
        "{\"series\", \"label\", \"range\", \"step_secs\", \"points\": [[bucket start (unix), count]]}",
    ),
    ("Svg", "An SVG image (image/svg+xml)."),
    (
        "Acl",
        "{\"folder\": \"owner/Folder\", \"entries\": [{\"identifier\", \"rights\": RFC 4314 letters}]} (the owner first, with every right); without ?folder {\"folders\": [{\"folder\", \"entries\"}]}",
    ),
    (
        "AclChange",
        "{\"folder\": \"owner/Folder\", \"identifier\": user, $group or anyone, \"rights\": letters, +letters, -letters, or read|read-write|full}",
    ),
    (
        "PublicFolderSettings",
        "{\"scope\": \"per-domain\" (each domain its own public folders, the default) | \"global\" (one set for every domain)} (guide §7.1 Advanced, §26.1).",
    ),
    (
        "LogSettings",
        "keel_core::log::LogSettings (guide §25.1, §25.9): per log (config, mail, security, warning, operations, error, spam, debug) {\"enabled\", \"rotation\": never|hourly|daily|weekly|monthly, \"max_size\", \"keep\", \"syslog\"}, and \"debug_categories\": [name].",
    ),
    ("Group", "keel_directory::Group."),
    ("GroupList", "{\"groups\": [Group]}"),
    ("NewGroup", "keel_directory::NewGroup."),
    ("GroupPatch", "keel_directory::GroupPatch."),
    ("MemberList", "{\"members\": [string]}"),
    ("Alias", "keel_directory::Alias."),
    ("AliasList", "{\"aliases\": [Alias]}"),
    ("NewAlias", "keel_directory::NewAlias."),
    (
        "AliasTargets",
        "{\"targets\": [string], \"description\": string}",
    ),
    ("CheckAddress", "{\"address\": string}"),
    (
        "Resolution",
        "keel_directory::Resolution: deliver (targets, notes), not-found or not-local.",
    ),
    (
        "IpGroup",
        "keel_core::ipgroup::IpGroup: {name, items: [{entry, description, enabled}]}",
    ),
    ("IpGroupList", "{\"ip_groups\": [IpGroup]}"),
    ("Items", "{\"items\": [...]} of the object's item type."),
    (
        "TimeInterval",
        "keel_core::timeinterval::TimeInterval: {name, items: [TimeItem]}",
    ),
    ("TimeIntervalList", "{\"time_intervals\": [TimeInterval]}"),
    (
        "SecurityPolicy",
        "keel_directory::SecurityPolicy (guide §12.6).",
    ),
    (
        "Service",
        "{name, title, port, tls, available, settings: ServiceSettings}",
    ),
    ("ServiceList", "{\"services\": [Service]}"),
    (
        "ServiceSettings",
        "keel_net::services::ServiceSettings (guide §6.1).",
    ),
    ("ServiceAction", "{service, action, status}"),
    (
        "SmtpSettings",
        "keel_smtp::SmtpSettings; the relay password reads as xxxxxx.",
    ),
    (
        "QueueList",
        "{\"totals\": {messages, bytes}, \"messages\": [QueueMessage]}",
    ),
    (
        "QueueMessage",
        "keel_smtp::queue::QueueView (guide §24.1 columns).",
    ),
    ("QueueCount", "{\"messages\": number}"),
    (
        "ConnectionList",
        "{\"connections\": [{service, id, peer, local, since, seconds, secure, user, info}]}: the open connections of this node (guide §24.3); secure: TLS in use (implicit or after STARTTLS/STLS); user: the authenticated account or null (an admin session: its administrator, info \"Web administration\"); info: e.g. \"Folder ~user@domain/INBOX\" for an IMAP session with a folder selected, else \"\".",
    ),
    (
        "OpenFolderList",
        "{\"folders\": [{name, users, references}]}: the folders selected in IMAP sessions and the POP3 maildrops held on this node, sorted by name (guide §24.4); name: ~owner@domain/Folder (public folders: Public Folders/Folder); users: who has it open; references: how many sessions.",
    ),
    (
        "ConnectionEnded",
        "{\"service\": string, \"id\": number, \"ended\": true}",
    ),
    (
        "DeliveryTaskList",
        "{\"tasks\": [{id, size, from, to, phase, phase_text, server, started, seconds, percent}]}: keel_smtp::outbound::DeliveryTask of this node (guide §24.2).",
    ),
    (
        "RecoverRequest",
        "{\"since\": \"YYYY-MM-DD\" or RFC 3339}: restore the items deleted at or after this time (guide §7.4).",
    ),
    ("RecoverResult", "{\"restored\": number}"),
    (
        "ReindexRequest",
        "{\"folder\": string} to reindex one folder (INBOX matches case-insensitively); absent, null or {} = every folder of the user.",
    ),
    (
        "ReindexReport",
        "keel_mail::ReindexReport: {account, folders: [{name, uid_validity, messages_read, unreadable: [{uid, blob, problem: missing|damaged}], sizes_fixed: [{uid, stored, actual}], flags_normalized: [uid], before, after: {messages, unseen, bytes, uid_next, highest_modseq}}], account_state: {usage_before, usage_after, highest_modseq_before, highest_modseq_after}}.",
    ),
    (
        "CleanoutReport",
        "keel_mail::CleanoutReport: {users, items_deleted, folders_deleted, blobs_purged, errors} (guide §7.5).",
    ),
    (
        "Statistics",
        "keel_mail::stats::StatsReport: {started_at (RFC 3339), started_at_unix, now_unix, uptime_seconds, groups: [{id: server_status|messages|antivirus|spam_filter|storage, title, counters: [{key, label, value}]}]} (guide §24.6).",
    ),
    (
        "Metrics",
        "text/plain Prometheus exposition: keel_connections_total{service}, keel_connections_rejected_total{service}, keel_messages_received_total, keel_spam_rejected_total, keel_viruses_found_total, …",
    ),
    (
        "QueueDeleteCriteria",
        "{id?, sender?, recipient?, older_than_secs?, all?}; patterns use * and ?.",
    ),
    ("QueueDeleted", "{\"deleted\": [id]}"),
    (
        "SpamSettings",
        "keel_filter::SpamSettings (guide ch. 13): rating, tag and block scores, blacklists, custom rules, SPF, DKIM, DMARC, DKIM signing defaults, Bayes.",
    ),
    (
        "AntivirusSettings",
        "keel_filter::AntivirusSettings (guide ch. 14); with enabled=true the scanner must detect EICAR before anything is saved.",
    ),
    (
        "AttachmentSettings",
        "keel_filter::antivirus::AttachmentSettings (guide §14.5): enabled, rules [{enabled, description, kind: file_name|mime_type, pattern, action: accept|block}], forward_original, forward_filtered, warn_sender.",
    ),
    (
        "BayesStatus",
        "{\"status\": {spam, ham, active}, \"settings\": keel_filter::BayesSettings} (guide §13.4).",
    ),
    (
        "BayesLearned",
        "{\"learned\": new|relabelled|duplicate, \"status\": {spam, ham, active}}",
    ),
    (
        "DkimDomain",
        "{domain, key: null | {selector, algorithm: rsa|ed25519, created, dns_record: {name, type: TXT, value}}}; the private key is never sent.",
    ),
    (
        "Certificate",
        "keel_net::certs::CertInfo: {id, name, kind: certificate|request, subject, issuer, hostnames, not_before, not_after, expired, fingerprint_sha256, self_signed, chain_length, created, active_default, active_domains}; never the private key.",
    ),
    ("CertificateList", "{\"certificates\": [Certificate]}"),
    (
        "CertificateRequest",
        "Certificate of kind request plus csr_pem (PKCS#10, PEM) to send to the certification authority.",
    ),
    (
        "NewCertificate",
        "keel_net::certs::NewCertParams: {hostnames: [string] (required; the first is the CN), country (two letters; required for a request), organization?, organizational_unit?, city?, state?, name?}",
    ),
    (
        "CertificateImport",
        "{certificate: PEM (the server certificate first; may hold the intermediates and the key), chain?: PEM, key?: PEM, name?} or {pkcs12: base64, password, name?}. Without a key the certificate must match a pending request.",
    ),
    (
        "CertificateActivate",
        "{domain?: string}: without domain the certificate becomes the server default.",
    ),
    ("PemText", "application/x-pem-file: PEM blocks."),
    ("DkimKeyList", "{\"domains\": [DkimDomain]}"),
    (
        "DkimGenerate",
        "{selector?, algorithm?: rsa|ed25519}; defaults from the antispam dkim_sign settings. Replaces an existing key (rotation).",
    ),
    (
        "SenderLists",
        "{allow: [string], block: [string]}: addresses, * and ? patterns, or bare domains.",
    ),
    (
        "SenderList",
        "{scope: server|domain:<d>|user:<address>, lists: SenderLists}",
    ),
    ("SenderListIndex", "{\"lists\": [SenderList]}"),
    ("LogList", "{\"logs\": [{name, file, size, settings}]}"),
    ("LogLines", "{\"log\": name, \"lines\": [string]}"),
    (
        "WizardState",
        "{done: bool, hostname, primary_domain, completed_by} (guide §2.5).",
    ),
    (
        "WizardRequest",
        "{hostname, primary_domain, password}: the Internet hostname, the primary domain (created when new) and the signed-in administrator's new password.",
    ),
];

fn schema_ref(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn operation(r: &RouteDoc) -> Value {
    let params: Vec<Value> = r
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(|p| json!({ "name": p, "in": "path", "required": true, "schema": { "type": "string" } }))
        .collect();
    let (code, desc) = match (r.method, r.response) {
        (_, "Empty") => ("204", "Done"),
        ("POST", _) if r.summary.starts_with("Create") || r.summary.starts_with("Add an alias") => {
            ("201", "Created")
        }
        _ => ("200", "OK"),
    };
    let mut responses = Map::new();
    let ok = if code == "204" {
        json!({ "description": desc })
    } else {
        json!({ "description": desc, "content": { "application/json": { "schema": schema_ref(r.response) } } })
    };
    responses.insert(code.to_owned(), ok);
    for (c, d) in [
        ("400", "Invalid request; `field` names the input at fault"),
        ("401", "Not signed in"),
        (
            "403",
            "Not allowed (rights, CSRF token or remote administration)",
        ),
        ("404", "No such object"),
        ("409", "Conflicts with existing data"),
    ] {
        responses.insert(
            c.to_owned(),
            json!({ "description": d, "content": { "application/json": { "schema": schema_ref("Error") } } }),
        );
    }
    let mut op = json!({
        "summary": r.summary,
        "operationId": format!("{} {}", r.method, r.path),
        "responses": responses,
        "x-read-only-admin": r.read_only_ok,
    });
    if !params.is_empty() {
        op["parameters"] = Value::Array(params);
    }
    if let Some(req) = r.request {
        op["requestBody"] = json!({
            "required": true,
            "content": { "application/json": { "schema": schema_ref(req) } }
        });
    }
    op
}

/// Builds the document.
pub(super) fn document(routes: &[RouteDoc]) -> Value {
    let mut paths = Map::new();
    for r in routes {
        let entry = paths
            .entry(r.path.clone())
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(m) = entry {
            m.insert(r.method.to_ascii_lowercase(), operation(r));
        }
    }
    let mut schemas = Map::new();
    schemas.insert(
        "Error".into(),
        json!({
            "type": "object",
            "required": ["error"],
            "properties": {
                "error": { "type": "string", "description": "A sentence the administrator can act on." },
                "field": { "type": "string", "description": "The request field at fault." }
            }
        }),
    );
    for (name, desc) in SCHEMAS {
        schemas.insert(
            (*name).into(),
            json!({ "type": "object", "description": desc }),
        );
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Keel admin API",
            "version": "1",
            "description": "Administration of the Keel mail server. Sign in with POST /admin/api/v1/session; \
                            send the returned csrf_token as X-CSRF-Token with every change."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "session": { "type": "apiKey", "in": "cookie", "name": super::SESSION_COOKIE }
            }
        },
        "security": [ { "session": [] } ]
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_named_schema_is_defined() {
        let doc = super::super::openapi_document();
        let schemas = &doc["components"]["schemas"];
        for r in super::super::route_table() {
            for name in r.request.into_iter().chain([r.response]) {
                assert!(
                    schemas.get(name).is_some(),
                    "schema {name} of {} {}",
                    r.method,
                    r.path
                );
            }
        }
    }
}
