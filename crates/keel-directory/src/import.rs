//! User templates (guide §8.10) and the CSV user import (guide §8.9).
//!
//! A template holds every account parameter but the name and the password; it is either
//! for one domain or general (any domain). A new user made from a template takes its
//! values, then whatever the caller gives on top.
//!
//! The CSV format is the guide's: a required header line naming the columns `Name`
//! (required), `Password`, `FullName`, `MailAddress`, `Groups`, `Description` in any order;
//! `;` or `,` between fields (the header line decides); a field may be quoted with `"…"`
//! or `'…'` (needed for several addresses or groups when `,` separates fields; a doubled
//! quote inside stands for one). Several `MailAddress` local parts or `Groups` are
//! separated by commas. The parser is written here because the guide's apostrophe quoting
//! is not RFC 4180.
//!
//! An import is checked completely first (a preview: every row with its problem), then
//! the rows without a problem that the caller selected are created one by one, each user
//! with its group memberships or not at all.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::Directory;
use crate::docs::{self, ADDRESS, AddressOwner, Docs, GROUP, USER, valid_local_name};
use crate::error::{DirResult, DirectoryError};
use crate::model::{AdminRights, Forwarding, Group, MailboxDisposal, NewUser, Quota, User};
use crate::password;

pub(crate) const TEMPLATE: &str = "usertemplate";
/// Longest template name.
pub const MAX_TEMPLATE_NAME: usize = 64;
/// Most rows one import takes.
pub const MAX_IMPORT_ROWS: usize = 10_000;

/// A user template (guide §8.10).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UserTemplate {
    /// Unique name (case-insensitive).
    pub name: String,
    /// Shown in the template list and copied into the accounts made with it.
    pub description: String,
    /// The one domain it is for; `None` = a general template for every domain.
    pub domain: Option<String>,
    /// Quota.
    pub quota: Quota,
    /// Outgoing size limit in bytes, 0 = the domain's.
    pub outgoing_size_limit: u64,
    /// May only send and receive within the local domains.
    pub local_domain_only: bool,
    /// Accounts start enabled.
    pub enabled: bool,
    /// Administration rights of the accounts.
    pub admin_rights: AdminRights,
    /// Public-folder administrators.
    pub public_folder_admin: bool,
    /// Domain administrators (guide §32.2).
    pub domain_admin: bool,
    /// Forwarding.
    pub forwarding: Forwarding,
    /// Groups (names in the user's domain) the accounts join.
    pub groups: Vec<String>,
}

impl Default for UserTemplate {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            domain: None,
            quota: Quota::default(),
            outgoing_size_limit: 0,
            local_domain_only: false,
            enabled: true,
            admin_rights: AdminRights::None,
            public_folder_admin: false,
            domain_admin: false,
            forwarding: Forwarding::default(),
            groups: Vec::new(),
        }
    }
}

impl UserTemplate {
    /// Whether the template may be used for a user of `domain`.
    pub fn applies_to(&self, domain: &str) -> bool {
        self.domain
            .as_deref()
            .is_none_or(|d| d.eq_ignore_ascii_case(domain))
    }

    /// The new user `address` as the template makes it (no password).
    pub fn new_user(&self, address: &str) -> NewUser {
        NewUser {
            address: address.to_owned(),
            password: None,
            full_name: String::new(),
            description: self.description.clone(),
            addresses: Vec::new(),
            forwarding: self.forwarding.clone(),
            quota: self.quota,
            outgoing_size_limit: self.outgoing_size_limit,
            local_domain_only: self.local_domain_only,
            enabled: self.enabled,
            admin_rights: self.admin_rights,
            public_folder_admin: self.public_folder_admin,
            domain_admin: self.domain_admin,
        }
    }
}

fn template_key(name: &str) -> String {
    name.trim().to_lowercase()
}

fn invalid(field: &str, message: impl Into<String>) -> DirectoryError {
    DirectoryError::InvalidSetting {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// A group name of `domain` given as `name` or `name@domain`, as its key.
fn group_key(name: &str, domain: &str) -> DirResult<String> {
    let n = name.trim().to_lowercase();
    match n.rsplit_once('@') {
        Some((g, d)) if d == domain && !g.is_empty() => Ok(n),
        Some(_) => Err(invalid(
            "groups",
            format!("group {n} is not a group of {domain}"),
        )),
        None => Ok(format!("{n}@{domain}")),
    }
}

impl Directory {
    fn check_template(&self, t: &mut UserTemplate) -> DirResult<()> {
        t.name = t.name.trim().to_owned();
        if t.name.is_empty() {
            return Err(invalid("name", "give the template a name"));
        }
        if t.name.chars().count() > MAX_TEMPLATE_NAME || t.name.chars().any(char::is_control) {
            return Err(invalid(
                "name",
                format!("a template name has at most {MAX_TEMPLATE_NAME} printable characters"),
            ));
        }
        if let Some(d) = &t.domain {
            let real = docs::real_domain(&mut self.reader(), d)?
                .ok_or_else(|| invalid("domain", format!("domain {d} does not exist")))?;
            t.domain = Some(real.0);
        }
        if !t.groups.is_empty() {
            let Some(d) = t.domain.clone() else {
                return Err(invalid(
                    "groups",
                    "a general template cannot name groups: groups belong to one domain",
                ));
            };
            let mut keys = Vec::new();
            for g in &t.groups {
                let k = group_key(g, &d)?;
                if docs::get::<Group>(&mut self.reader(), GROUP, &k)?.is_none() {
                    return Err(invalid("groups", format!("group {k} does not exist")));
                }
                if !keys.contains(&k) {
                    keys.push(k);
                }
            }
            t.groups = keys;
        }
        Ok(())
    }

    /// Adds a user template (guide §8.10).
    pub fn add_user_template(&self, template: UserTemplate) -> DirResult<UserTemplate> {
        let mut t = template;
        self.check_template(&mut t)?;
        let key = template_key(&t.name);
        self.txn(|tx| {
            if tx.get_raw(TEMPLATE, &key)?.is_some() {
                return Err(invalid(
                    "name",
                    format!("a template named {} exists already", t.name),
                ));
            }
            tx.put(TEMPLATE, &key, "", &t)
        })?;
        Ok(t)
    }

    /// Replaces a user template (its name stays).
    pub fn set_user_template(&self, template: UserTemplate) -> DirResult<UserTemplate> {
        let mut t = template;
        self.check_template(&mut t)?;
        let key = template_key(&t.name);
        self.txn(|tx| {
            let Some(old) = docs::get::<UserTemplate>(tx, TEMPLATE, &key)? else {
                return Err(DirectoryError::NoSuchTemplate(t.name.clone()));
            };
            t.name = old.name;
            tx.put(TEMPLATE, &key, "", &t)
        })?;
        Ok(t)
    }

    /// A user template by name.
    pub fn get_user_template(&self, name: &str) -> DirResult<UserTemplate> {
        docs::get::<UserTemplate>(&mut self.reader(), TEMPLATE, &template_key(name))?
            .ok_or_else(|| DirectoryError::NoSuchTemplate(name.trim().to_owned()))
    }

    /// Every template, or those usable for `domain` (its own and the general ones).
    pub fn list_user_templates(&self, domain: Option<&str>) -> DirResult<Vec<UserTemplate>> {
        let mut all = docs::list::<UserTemplate>(&mut self.reader(), TEMPLATE, None)?;
        if let Some(d) = domain {
            all.retain(|t| t.applies_to(d));
        }
        all.sort_by_key(|t| template_key(&t.name));
        Ok(all)
    }

    /// Removes a user template (accounts made with it keep their values).
    pub fn remove_user_template(&self, name: &str) -> DirResult<()> {
        let key = template_key(name);
        self.txn(|tx| {
            if !tx.delete(TEMPLATE, &key)? {
                return Err(DirectoryError::NoSuchTemplate(name.trim().to_owned()));
            }
            Ok(())
        })
    }

    /// Adds a user and puts it into `groups` (keys or names of its domain): all or nothing.
    pub fn add_user_in_groups(&self, new: NewUser, groups: &[String]) -> DirResult<User> {
        let domain = new
            .address
            .rsplit_once('@')
            .map(|(_, d)| d.to_lowercase())
            .unwrap_or_default();
        let mut keys = Vec::new();
        for g in groups {
            let k = group_key(g, &domain)?;
            self.get_group(&k)?;
            keys.push(k);
        }
        let user = self.add_user(new)?;
        for k in &keys {
            if let Err(e) = self.add_group_members(k, std::slice::from_ref(&user.address)) {
                if let Err(undo) = self.remove_user(&user.address, MailboxDisposal::Delete) {
                    return Err(DirectoryError::Invalid(format!(
                        "{e}; the new user {} could not be removed again: {undo}",
                        user.address
                    )));
                }
                return Err(e);
            }
        }
        self.get_user(&user.address)
    }

    /// Checks a CSV import (guide §8.9) and, unless `req.dry_run`, creates the selected
    /// rows that have no problem. File-level problems (no header, no `Name` column, an
    /// unknown column, a template of another domain) are errors; row problems are in the
    /// report.
    pub fn import_users(&self, req: &ImportRequest) -> DirResult<ImportReport> {
        let domain = docs::real_domain(&mut self.reader(), &req.domain)?
            .ok_or_else(|| invalid("domain", format!("domain {} does not exist", req.domain)))?
            .0;
        let template = match req.template.as_deref().filter(|t| !t.is_empty()) {
            Some(name) => {
                let t = self
                    .get_user_template(name)
                    .map_err(|e| invalid("template", e.to_string()))?;
                if !t.applies_to(&domain) {
                    return Err(invalid(
                        "template",
                        format!("template {} is for another domain", t.name),
                    ));
                }
                t
            }
            None => UserTemplate::default(),
        };
        let parsed = parse_csv(&req.csv)?;
        let mut rows = self.check_rows(&domain, &template, parsed)?;
        if let Some(only) = &req.only {
            let wanted: BTreeSet<String> = only.iter().map(|n| n.trim().to_lowercase()).collect();
            for r in &mut rows {
                if r.status == ImportStatus::Ready && !wanted.contains(&r.name) {
                    r.status = ImportStatus::Skipped;
                }
            }
        }
        if !req.dry_run {
            for row in &mut rows {
                if row.status != ImportStatus::Ready {
                    continue;
                }
                let mut new = template.new_user(&row.address);
                new.password = row.password.take();
                new.full_name = row.full_name.clone();
                if !row.description.is_empty() {
                    new.description = row.description.clone();
                }
                new.addresses = row.addresses.clone();
                let mut groups = template.groups.clone();
                groups.extend(row.groups.iter().cloned());
                match self.add_user_in_groups(new, &groups) {
                    Ok(_) => row.status = ImportStatus::Created,
                    Err(e) => {
                        row.status = ImportStatus::Error;
                        row.problem = e.to_string();
                    }
                }
            }
        }
        for r in &mut rows {
            r.password = None;
        }
        let count = |s| rows.iter().filter(|r| r.status == s).count();
        Ok(ImportReport {
            domain,
            template: req.template.clone().filter(|t| !t.is_empty()),
            dry_run: req.dry_run,
            ready: count(ImportStatus::Ready),
            created: count(ImportStatus::Created),
            skipped: count(ImportStatus::Skipped),
            errors: count(ImportStatus::Error),
            rows,
        })
    }

    fn check_rows(
        &self,
        domain: &str,
        template: &UserTemplate,
        parsed: Vec<CsvUser>,
    ) -> DirResult<Vec<ImportRow>> {
        let mut r = self.reader();
        let dom = docs::get_domain(&mut r, domain)?
            .ok_or_else(|| invalid("domain", format!("domain {domain} does not exist")))?;
        let mut room = if dom.user_limit > 0 {
            Some((dom.user_limit as usize).saturating_sub(docs::count(&mut r, USER, Some(domain))?))
        } else {
            None
        };
        let mut names = BTreeSet::new();
        let mut claimed = BTreeSet::new();
        let mut rows = Vec::with_capacity(parsed.len());
        for u in parsed {
            let name = u.name.trim().to_lowercase();
            let address = format!("{name}@{domain}");
            let mut row = ImportRow {
                line: u.line,
                name: name.clone(),
                address: address.clone(),
                full_name: u.full_name.trim().to_owned(),
                description: u.description.trim().to_owned(),
                addresses: Vec::new(),
                groups: Vec::new(),
                has_password: !u.password.is_empty(),
                password: (!u.password.is_empty()).then(|| u.password.clone()),
                status: ImportStatus::Ready,
                problem: String::new(),
            };
            let problem =
                self.row_problem(&mut r, domain, template, &u, &mut row, &names, &claimed)?;
            if let Some(p) = problem {
                row.status = ImportStatus::Error;
                row.problem = p;
            } else if let Some(left) = room.as_mut() {
                if *left == 0 {
                    row.status = ImportStatus::Error;
                    row.problem = format!(
                        "domain {domain} would exceed its limit of {} users",
                        dom.user_limit
                    );
                } else {
                    *left -= 1;
                }
            }
            if row.status == ImportStatus::Ready {
                names.insert(name);
                claimed.insert(address);
                claimed.extend(row.addresses.iter().map(|a| format!("{a}@{domain}")));
            }
            rows.push(row);
        }
        Ok(rows)
    }

    /// The problem of one row, if any; fills the row's addresses and groups.
    #[allow(clippy::too_many_arguments)]
    fn row_problem(
        &self,
        r: &mut dyn Docs,
        domain: &str,
        template: &UserTemplate,
        u: &CsvUser,
        row: &mut ImportRow,
        names: &BTreeSet<String>,
        claimed: &BTreeSet<String>,
    ) -> DirResult<Option<String>> {
        let name = &row.name;
        if name.is_empty() {
            return Ok(Some("Name is empty".into()));
        }
        if !valid_local_name(name) {
            return Ok(Some(
                DirectoryError::InvalidLoginName(name.clone()).to_string(),
            ));
        }
        if names.contains(name) {
            return Ok(Some(format!("{name} appears twice in the file")));
        }
        if docs::get_user(r, &row.address)?.is_some() {
            return Ok(Some(format!("user {} already exists", row.address)));
        }
        if !u.password.is_empty()
            && let Err(e) = password::check_password_policy(&u.password, name, &row.address)
        {
            return Ok(Some(e.to_string()));
        }
        let mut own = vec![row.address.clone()];
        for a in &u.addresses {
            let local = a.trim().to_lowercase();
            let local = local
                .strip_suffix(&format!("@{domain}"))
                .unwrap_or(&local)
                .to_owned();
            if !valid_local_name(&local) {
                return Ok(Some(format!(
                    "MailAddress '{a}' is not a local part (the part before @) of {domain}"
                )));
            }
            let full = format!("{local}@{domain}");
            if !own.contains(&full) {
                own.push(full);
                row.addresses.push(local);
            }
        }
        for a in &own {
            if claimed.contains(a) {
                return Ok(Some(format!("the address {a} is used twice in the file")));
            }
            if let Some(o) = docs::get::<AddressOwner>(r, ADDRESS, a)? {
                return Ok(Some(format!(
                    "the address {a} is already used by {} {}",
                    o.kind, o.key
                )));
            }
        }
        for g in &u.groups {
            let key = match group_key(g, domain) {
                Ok(k) => k,
                Err(e) => return Ok(Some(e.to_string())),
            };
            if docs::get::<Group>(r, GROUP, &key)?.is_none() {
                return Ok(Some(format!("group {key} does not exist")));
            }
            if !row.groups.contains(&key) && !template.groups.contains(&key) {
                row.groups.push(key);
            }
        }
        Ok(None)
    }
}

/// An import request (guide §8.9).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImportRequest {
    /// The domain the users are created in.
    pub domain: String,
    /// The CSV text (already decoded to UTF-8).
    pub csv: String,
    /// A template for every row (guide §8.10).
    pub template: Option<String>,
    /// Only these names (the preview's selection); `None` = every row without a problem.
    pub only: Option<Vec<String>>,
    /// Check only: create nothing.
    pub dry_run: bool,
}

/// What happened to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ImportStatus {
    /// Checked, would be created (preview).
    Ready,
    /// Created.
    Created,
    /// Not selected.
    Skipped,
    /// Not created: see `problem`.
    Error,
}

/// One row of an import report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportRow {
    /// The line of the file (the header is line 1).
    pub line: usize,
    /// The login name.
    pub name: String,
    /// The user's address.
    pub address: String,
    /// Full name.
    pub full_name: String,
    /// Description.
    pub description: String,
    /// Extra local parts.
    pub addresses: Vec<String>,
    /// Groups joined (besides the template's).
    pub groups: Vec<String>,
    /// Whether the file gave a password.
    pub has_password: bool,
    #[serde(skip)]
    password: Option<String>,
    /// The outcome.
    pub status: ImportStatus,
    /// Why the row is not (or could not be) created.
    pub problem: String,
}

/// The result of [`Directory::import_users`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The domain.
    pub domain: String,
    /// The template used.
    pub template: Option<String>,
    /// A preview only.
    pub dry_run: bool,
    /// Rows that would be created (preview).
    pub ready: usize,
    /// Rows created.
    pub created: usize,
    /// Rows not selected.
    pub skipped: usize,
    /// Rows with a problem.
    pub errors: usize,
    /// Every row.
    pub rows: Vec<ImportRow>,
}

/// One data row of the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct CsvUser {
    line: usize,
    name: String,
    password: String,
    full_name: String,
    addresses: Vec<String>,
    groups: Vec<String>,
    description: String,
}

#[derive(Clone, Copy)]
enum Column {
    Name,
    Password,
    FullName,
    MailAddress,
    Groups,
    Description,
}

const COLUMNS: &[(&str, Column)] = &[
    ("name", Column::Name),
    ("password", Column::Password),
    ("fullname", Column::FullName),
    ("mailaddress", Column::MailAddress),
    ("groups", Column::Groups),
    ("description", Column::Description),
];

/// Splits one line into fields (guide §8.9: `"…"` or `'…'` quoting, a doubled quote inside
/// is one quote character).
fn split_fields(line: &str, sep: char) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
            chars.next();
        }
        let mut field = String::new();
        match chars.peek().copied() {
            Some(q @ ('"' | '\'')) => {
                chars.next();
                loop {
                    match chars.next() {
                        Some(c) if c == q => {
                            if chars.peek() == Some(&q) {
                                chars.next();
                                field.push(q);
                            } else {
                                break;
                            }
                        }
                        Some(c) => field.push(c),
                        None => return Err(format!("a {q}-quoted field is not closed")),
                    }
                }
                while chars.peek().is_some_and(|c| *c == ' ' || *c == '\t') {
                    chars.next();
                }
                match chars.next() {
                    None => {
                        out.push(field);
                        return Ok(out);
                    }
                    Some(c) if c == sep => out.push(field),
                    Some(c) => {
                        return Err(format!(
                            "'{c}' after a closing quote; put the whole field in quotes"
                        ));
                    }
                }
            }
            _ => {
                loop {
                    match chars.next() {
                        None => {
                            out.push(field.trim().to_owned());
                            return Ok(out);
                        }
                        Some(c) if c == sep => break,
                        Some(c) => field.push(c),
                    }
                }
                out.push(field.trim().to_owned());
            }
        }
    }
}

fn list_values(s: &str) -> Vec<String> {
    s.split([',', ';'])
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Parses the whole file; file-level problems are `InvalidSetting` on the `csv` field.
fn parse_csv(text: &str) -> DirResult<Vec<CsvUser>> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, header)) = lines.next() else {
        return Err(invalid(
            "csv",
            "the file is empty: it needs a header line (Name;Password;FullName;…) and rows",
        ));
    };
    // guide §8.9: fields are separated by `;` or `,`; the header line shows which.
    let sep = if header.contains(';') { ';' } else { ',' };
    let names = split_fields(header, sep).map_err(|e| invalid("csv", format!("line 1: {e}")))?;
    let mut columns = Vec::new();
    for n in &names {
        let key = n.trim().to_lowercase().replace([' ', '_'], "");
        match COLUMNS.iter().find(|(k, _)| *k == key) {
            Some((_, c)) => columns.push(*c),
            None => {
                return Err(invalid(
                    "csv",
                    format!(
                        "line 1: unknown column '{n}'; the header line names the columns Name, \
                         Password, FullName, MailAddress, Groups and Description (a header line \
                         is required)"
                    ),
                ));
            }
        }
    }
    if !columns.iter().any(|c| matches!(c, Column::Name)) {
        return Err(invalid(
            "csv",
            "line 1: the header line has no Name column (it is required; a header line is \
             required too)",
        ));
    }
    let mut users = Vec::new();
    for (i, line) in lines {
        if users.len() >= MAX_IMPORT_ROWS {
            return Err(invalid(
                "csv",
                format!("the file has more than {MAX_IMPORT_ROWS} users; split it"),
            ));
        }
        let number = i + 1;
        let fields =
            split_fields(line, sep).map_err(|e| invalid("csv", format!("line {number}: {e}")))?;
        if fields.len() > columns.len() {
            return Err(invalid(
                "csv",
                format!(
                    "line {number}: {} fields but the header names {} columns",
                    fields.len(),
                    columns.len()
                ),
            ));
        }
        let mut u = CsvUser {
            line: number,
            ..CsvUser::default()
        };
        for (c, v) in columns.iter().zip(fields) {
            match c {
                Column::Name => u.name = v,
                Column::Password => u.password = v,
                Column::FullName => u.full_name = v,
                Column::MailAddress => u.addresses = list_values(&v),
                Column::Groups => u.groups = list_values(&v),
                Column::Description => u.description = v,
            }
        }
        users.push(u);
    }
    Ok(users)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_guides_two_tables_parse_alike() {
        // guide tables 8.1 (semicolons) and 8.2 (commas, quoted lists).
        let semi = "Name;Password;FullName;Description;MailAddress;Groups\n\
                    wsmith;Ahdpppu4;Winston Smith;Sales;wsmith,smith;sales, all\n";
        let comma = "Name,Password,FullName,Description,MailAddress,Groups\r\n\
                     wsmith,Ahdpppu4,Winston Smith,Sales,\"wsmith,smith\",'sales, all'\r\n";
        let a = parse_csv(semi).expect("semicolons");
        let b = parse_csv(comma).expect("commas");
        assert_eq!(a, b);
        assert_eq!(a[0].addresses, vec!["wsmith", "smith"]);
        assert_eq!(a[0].groups, vec!["sales", "all"]);
        assert_eq!(a[0].full_name, "Winston Smith");
        assert_eq!(a[0].line, 2);
    }

    #[test]
    fn columns_in_any_order_and_only_name_required() {
        let u = parse_csv("Groups;Name\nall;jo\n;ann\n").expect("parse");
        assert_eq!(u.len(), 2);
        assert_eq!(u[0].name, "jo");
        assert_eq!(u[1].groups, Vec::<String>::new());
        let u = parse_csv("\u{feff}name\njo\n").expect("bom, lower-case header");
        assert_eq!(u[0].name, "jo");
    }

    #[test]
    fn file_level_problems_are_refused() {
        for (csv, needle) in [
            ("", "empty"),
            ("jwayne;VbD66op1\n", "unknown column 'jwayne'"),
            ("FullName;Password\nJo;x\n", "no Name column"),
            ("Name;Bogus\njo;1\n", "unknown column 'Bogus'"),
            ("Name;FullName\njo;\"open\n", "not closed"),
            ("Name;FullName\njo;x;extra\n", "3 fields"),
        ] {
            let e = parse_csv(csv).expect_err(csv).to_string();
            assert!(e.contains(needle), "{csv:?}: {e}");
        }
    }

    #[test]
    fn quotes_inside_fields() {
        let f = split_fields("'O''Brien', \"a\"\"b\" ,plain , ", ',').expect("split");
        assert_eq!(f, vec!["O'Brien", "a\"b", "plain", ""]);
        assert!(split_fields("\"a\"b,c", ',').is_err());
    }
}
