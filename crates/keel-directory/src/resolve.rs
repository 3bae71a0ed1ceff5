//! Recipient resolution: one function from an address to its final targets.
//!
//! Precedence for a local part `L` of a local domain `D` (guide §12.3, §7.9; the guide does
//! not write all of it down, requirements-1 §12.3 asks us to document it):
//! 1. an alias named exactly `L` — it applies even when `L` is also a user's address, because
//!    the guide's fan-out example `jwayne → info` + `jwayne → jwayne` needs it (a name pointing
//!    to itself is delivered to its own mailbox by the loop rule below);
//! 2. a user's or group's own address (`login@domain` and extra addresses; group addresses);
//! 3. the most specific wildcard alias matching `L` (fewest wildcards, then longest literal
//!    text, then name order); all targets of that alias apply;
//! 4. the catch-all alias `*`: only for names that match no user nor alias (guide §12.3 ex. 2);
//! 5. the domain's forwarding of unknown recipients (guide §7.9) — except for mail addressed
//!    through a domain alias, which is not forwarded (the guide's anti-loop rule, figure 7.12);
//! 6. otherwise not found.
//!
//! Loop breaking exactly as the guide §12.3: each expanded name is flagged; when expansion
//! reaches a flagged name, the message is stored in the mailbox belonging to the last unflagged
//! name (the one whose expansion led back). Flags are per expansion path, so a name reached
//! twice through different branches (a diamond) is not a loop; duplicate final targets are
//! removed. A user's forwarding is expanded the same way. A depth limit and a total-step
//! budget bound pathological directories; hitting them is reported in the notes.

use std::collections::{BTreeMap, HashSet};

use keel_core::address::{Address, is_pattern, wildcard_match};

use crate::Directory;
use crate::docs::{self, ADDRESS, ALIAS, AddressOwner, DOMAIN, GROUP, StoreDocs};
use crate::error::{DirResult, DirectoryError};
use crate::model::{Alias, Domain, Group, Resolution, Target};

/// Maximum alias/forwarding nesting depth.
pub const MAX_EXPANSION_DEPTH: usize = 32;
/// Maximum number of names expanded for one recipient.
pub const MAX_EXPANSION_STEPS: usize = 2000;

struct Resolver<'a> {
    r: StoreDocs<'a>,
    domains: Vec<Domain>,
    aliases: BTreeMap<String, Vec<Alias>>,
    targets: Vec<Target>,
    seen: HashSet<Target>,
    notes: Vec<String>,
    steps: usize,
}

/// What a name resolves to at the top of the precedence list.
enum Found {
    Yes,
    No,
}

impl Resolver<'_> {
    fn push(&mut self, t: Target) {
        if self.seen.insert(t.clone()) {
            self.targets.push(t);
        }
    }

    /// Maps a domain or domain alias to `(real domain, via alias)`.
    fn real_domain(&self, name: &str) -> Option<(String, bool)> {
        for d in &self.domains {
            if d.name == name {
                return Some((d.name.clone(), false));
            }
        }
        for d in &self.domains {
            if d.aliases.iter().any(|a| a == name) {
                return Some((d.name.clone(), true));
            }
        }
        None
    }

    fn aliases_of(&mut self, domain: &str) -> DirResult<&Vec<Alias>> {
        if !self.aliases.contains_key(domain) {
            let v = docs::list::<Alias>(&mut self.r, ALIAS, Some(domain))?;
            self.aliases.insert(domain.to_string(), v);
        }
        Ok(self.aliases.entry(domain.to_string()).or_default())
    }

    /// Resolves an alias target or forwarding target written in domain `domain`'s context.
    fn target(&mut self, t: &str, domain: &str, path: &mut Vec<String>) -> DirResult<()> {
        if let Some(p) = t.strip_prefix("#public/") {
            self.push(Target::PublicFolder {
                domain: domain.to_string(),
                path: p.to_string(),
            });
            return Ok(());
        }
        let (local, dom) = match t.rsplit_once('@') {
            Some((l, d)) => (l.to_string(), d.to_lowercase()),
            None => (t.to_string(), domain.to_string()),
        };
        let Some((real, via_alias)) = self.real_domain(&dom) else {
            self.push(Target::External {
                address: format!("{local}@{dom}").to_lowercase(),
            });
            return Ok(());
        };
        let key = format!("{}@{real}", local.to_lowercase());
        if path.contains(&key) {
            // guide §12.3: a flagged name was reached — store in the mailbox of the last
            // unflagged name, the one being expanded now.
            self.loop_to_owner(path)?;
            return Ok(());
        }
        let original = format!("{local}@{dom}").to_lowercase();
        if let Found::No = self.name(&key, &original, via_alias, path)? {
            self.notes
                .push(format!("{original} does not exist (dangling target)"));
        }
        Ok(())
    }

    /// Stores in the mailbox of the last name of `path` (loop breaking, guide §12.3).
    fn loop_to_owner(&mut self, path: &mut Vec<String>) -> DirResult<()> {
        let Some(last) = path.last().cloned() else {
            return Ok(());
        };
        match docs::get::<AddressOwner>(&mut self.r, ADDRESS, &last)? {
            Some(o) if o.kind == "user" => {
                self.notes.push(format!(
                    "alias loop broken at {last}: stored in its mailbox"
                ));
                self.push(Target::LocalUser {
                    user: o.key,
                    local_copy_of_forward: false,
                });
            }
            Some(o) => {
                self.notes.push(format!(
                    "alias loop broken at {last}: delivered to its members"
                ));
                self.group_members(&o.key, path)?;
            }
            None => self.notes.push(format!(
                "alias loop at {last}: it belongs to no mailbox, so this branch is dropped"
            )),
        }
        Ok(())
    }

    fn group_members(&mut self, key: &str, path: &mut Vec<String>) -> DirResult<()> {
        if let Some(g) = docs::get::<Group>(&mut self.r, GROUP, key)? {
            for m in g.members {
                self.user(&m, path)?;
            }
        }
        Ok(())
    }

    /// Delivers to a user, applying its forwarding (guide §8.2 step 4).
    fn user(&mut self, key: &str, path: &mut Vec<String>) -> DirResult<()> {
        let Some(doc) = docs::get_user(&mut self.r, key)? else {
            self.notes.push(format!("user {key} does not exist"));
            return Ok(());
        };
        let fwd = doc.user.forwarding;
        if fwd.targets.is_empty() {
            self.push(Target::LocalUser {
                user: key.to_string(),
                local_copy_of_forward: false,
            });
            return Ok(());
        }
        if fwd.keep_local_copy {
            self.push(Target::LocalUser {
                user: key.to_string(),
                local_copy_of_forward: true,
            });
        }
        if path.len() >= MAX_EXPANSION_DEPTH {
            self.notes.push(format!(
                "forwarding of {key} not followed: nesting too deep"
            ));
            self.push(Target::LocalUser {
                user: key.to_string(),
                local_copy_of_forward: false,
            });
            return Ok(());
        }
        let pushed = !path.iter().any(|p| p == key);
        if pushed {
            path.push(key.to_string());
        }
        for t in &fwd.targets {
            self.target(t, &doc.user.domain, path)?;
        }
        if pushed {
            path.pop();
        }
        Ok(())
    }

    /// Expands a name `key` (`local@realdomain`) in precedence order. `original` is the
    /// address as addressed (for forwarding), `via_alias` whether it used a domain alias.
    fn name(
        &mut self,
        key: &str,
        original: &str,
        via_alias: bool,
        path: &mut Vec<String>,
    ) -> DirResult<Found> {
        self.steps += 1;
        if self.steps > MAX_EXPANSION_STEPS || path.len() >= MAX_EXPANSION_DEPTH {
            self.notes.push(format!(
                "expansion of {key} stopped: alias nesting too deep"
            ));
            return Ok(Found::Yes);
        }
        let Some((local, domain)) = key.rsplit_once('@') else {
            return Ok(Found::No);
        };
        let (local, domain) = (local.to_string(), domain.to_string());
        let aliases = self.aliases_of(&domain)?.clone();

        // 1. exact alias.
        let exact: Option<&Alias> = aliases
            .iter()
            .find(|a| !is_pattern(&a.name) && a.name == local);
        // 2. own address of a user or group.
        let owner = if exact.is_none() {
            docs::get::<AddressOwner>(&mut self.r, ADDRESS, key)?
        } else {
            None
        };
        let chosen: Option<Alias> = match (exact, &owner) {
            (Some(a), _) => Some(a.clone()),
            (None, Some(_)) => None,
            (None, None) => best_wildcard(&aliases, &local)
                .or_else(|| aliases.iter().find(|a| a.name == "*"))
                .cloned(),
        };
        if let Some(a) = chosen {
            path.push(key.to_string());
            for t in &a.targets {
                self.target(t, &domain, path)?;
            }
            path.pop();
            return Ok(Found::Yes);
        }
        if let Some(o) = owner {
            path.push(key.to_string());
            if o.kind == "user" {
                self.user(&o.key, path)?;
            } else {
                self.group_members(&o.key, path)?;
            }
            path.pop();
            return Ok(Found::Yes);
        }
        // 5. domain forwarding of unknown recipients (guide §7.9), not through domain aliases.
        if !via_alias
            && let Some(f) = self
                .domains
                .iter()
                .find(|d| d.name == domain)
                .and_then(|d| d.forwarding.clone())
        {
            self.push(Target::Forwarded {
                address: original.to_string(),
                host: f.host,
                port: f.port,
                mode: f.mode,
            });
            return Ok(Found::Yes);
        }
        Ok(Found::No)
    }
}

/// The most specific wildcard alias (not `*`) matching `local`: fewest wildcards, then most
/// literal characters, then name order.
fn best_wildcard<'a>(aliases: &'a [Alias], local: &str) -> Option<&'a Alias> {
    aliases
        .iter()
        .filter(|a| a.name != "*" && is_pattern(&a.name) && wildcard_match(&a.name, local))
        .min_by_key(|a| {
            let wild = a.name.chars().filter(|c| matches!(c, '*' | '?')).count();
            let literal = a.name.chars().count() - wild;
            (wild, std::cmp::Reverse(literal), a.name.clone())
        })
}

impl Directory {
    /// Resolves a recipient address to its final targets (guide §12.3 precedence and loop
    /// rule, §7.6 domain aliases, §7.9 domain forwarding, §8.2 user forwarding, §9 groups).
    /// This is also the admin's "Check Address" (guide §12.3).
    pub fn resolve_recipient(&self, address: &str) -> DirResult<Resolution> {
        let a =
            Address::parse(address).map_err(|e| DirectoryError::InvalidAddress(e.to_string()))?;
        let mut r = self.reader();
        let domains = docs::list::<Domain>(&mut r, DOMAIN, None)?;
        let mut res = Resolver {
            r,
            domains,
            aliases: BTreeMap::new(),
            targets: Vec::new(),
            seen: HashSet::new(),
            notes: Vec::new(),
            steps: 0,
        };
        let Some((real, via_alias)) = res.real_domain(&a.domain) else {
            return Ok(Resolution::NotLocal);
        };
        let key = format!("{}@{real}", a.local.to_lowercase());
        let mut path = Vec::new();
        let found = res.name(&key, &a.key(), via_alias, &mut path)?;
        if matches!(found, Found::No) || res.targets.is_empty() {
            return Ok(Resolution::NotFound);
        }
        Ok(Resolution::Deliver {
            targets: res.targets,
            notes: res.notes,
        })
    }
}
