//! THREAD algorithms (RFC 5256 §3): ORDEREDSUBJECT and REFERENCES.
//!
//! # Implementation notes
//!
//! - Pure functions over [`ThreadMsg`]: the command handler extracts Message-ID,
//!   References, In-Reply-To, Subject and the sent date with mail-parser.
//! - REFERENCES keeps containers in an arena (`Vec<Container>`) linked by index; loop
//!   checks walk parent links, bounded by the arena size, so hostile References headers
//!   cannot make it spin.
//! - "Sent date" ties are broken by sequence number everywhere (RFC 5256 §3).

use std::collections::HashMap;

use crate::codec::ThreadNode;
use crate::server::subject::{BaseSubject, base_subject};

/// What threading needs to know about one message.
#[derive(Debug, Clone, Default)]
pub(crate) struct ThreadMsg {
    /// The number reported (sequence number, or UID for UID THREAD).
    pub(crate) id: u32,
    /// The sequence number (tie-breaker).
    pub(crate) seq: u32,
    /// Sent date in epoch seconds (RFC 5256 §2.2).
    pub(crate) date: i64,
    /// The decoded Subject.
    pub(crate) subject: String,
    /// Message-ID without angle brackets.
    pub(crate) message_id: Option<String>,
    /// References message IDs, oldest first.
    pub(crate) references: Vec<String>,
    /// In-Reply-To message IDs.
    pub(crate) in_reply_to: Vec<String>,
}

/// THREAD=ORDEREDSUBJECT (RFC 5256 §3): messages sorted by base subject and sent date,
/// grouped by base subject; the first of each group is the parent of the others, and the
/// threads are ordered by the sent date of their first message.
pub(crate) fn ordered_subject(msgs: &[ThreadMsg]) -> Vec<ThreadNode> {
    let subjects: Vec<BaseSubject> = msgs.iter().map(|m| base_subject(&m.subject)).collect();
    let mut order: Vec<usize> = (0..msgs.len()).collect();
    order.sort_by(|&a, &b| {
        let (ma, mb) = (&msgs[a], &msgs[b]);
        subjects[a]
            .key
            .cmp(&subjects[b].key)
            .then(ma.date.cmp(&mb.date))
            .then(ma.seq.cmp(&mb.seq))
    });
    let mut threads: Vec<(usize, ThreadNode)> = Vec::new();
    let mut last_key: Option<&str> = None;
    for i in order {
        let key = subjects[i].key.as_str();
        match threads.last_mut() {
            Some((_, root)) if last_key == Some(key) => {
                root.children.push(ThreadNode::leaf(msgs[i].id));
            }
            _ => threads.push((i, ThreadNode::leaf(msgs[i].id))),
        }
        last_key = Some(key);
    }
    threads.sort_by(|(a, _), (b, _)| {
        msgs[*a]
            .date
            .cmp(&msgs[*b].date)
            .then(msgs[*a].seq.cmp(&msgs[*b].seq))
    });
    threads.into_iter().map(|(_, t)| t).collect()
}

#[derive(Debug, Default)]
struct Container {
    /// Index into the message list; `None` for a dummy.
    msg: Option<usize>,
    parent: Option<usize>,
    children: Vec<usize>,
}

struct Arena<'a> {
    msgs: &'a [ThreadMsg],
    subjects: Vec<BaseSubject>,
    nodes: Vec<Container>,
}

impl Arena<'_> {
    fn add(&mut self, msg: Option<usize>) -> usize {
        self.nodes.push(Container {
            msg,
            ..Container::default()
        });
        self.nodes.len() - 1
    }

    fn is_dummy(&self, c: usize) -> bool {
        self.nodes[c].msg.is_none()
    }

    /// Whether `a` is `b` or below it (walks `a`'s parents).
    fn is_under(&self, a: usize, b: usize) -> bool {
        let mut cur = Some(a);
        let mut steps = 0;
        while let Some(c) = cur {
            if c == b {
                return true;
            }
            steps += 1;
            if steps > self.nodes.len() {
                return true; // a cycle: treat as reachable, never link
            }
            cur = self.nodes[c].parent;
        }
        false
    }

    fn unlink(&mut self, child: usize) {
        if let Some(p) = self.nodes[child].parent.take() {
            self.nodes[p].children.retain(|&c| c != child);
        }
    }

    fn link(&mut self, parent: usize, child: usize) {
        self.unlink(child);
        self.nodes[child].parent = Some(parent);
        self.nodes[parent].children.push(child);
    }

    /// The message whose date, seq and subject stand for `c`: itself, or for a dummy its
    /// first child (RFC 5256 §3 REFERENCES steps 4-6).
    fn representative(&self, c: usize) -> Option<usize> {
        let mut cur = c;
        for _ in 0..=self.nodes.len() {
            match self.nodes[cur].msg {
                Some(m) => return Some(m),
                None => cur = *self.nodes[cur].children.first()?,
            }
        }
        None
    }

    fn sort_key(&self, c: usize) -> (i64, u32) {
        self.representative(c).map_or((i64::MAX, u32::MAX), |m| {
            (self.msgs[m].date, self.msgs[m].seq)
        })
    }

    fn sort_list(&self, list: &mut [usize]) {
        list.sort_by_key(|&c| self.sort_key(c));
    }

    /// Step 3: prune dummies from the whole tree; `roots` is the root set. Children are
    /// pruned before their parents (iterative post-order: deep chains are common).
    fn prune(&mut self, roots: Vec<usize>) -> Vec<usize> {
        let mut order = Vec::new();
        let mut stack = roots.clone();
        while let Some(n) = stack.pop() {
            order.push(n);
            stack.extend(self.nodes[n].children.iter().copied());
        }
        for &n in order.iter().rev() {
            let kids = std::mem::take(&mut self.nodes[n].children);
            let kids = self.splice(kids, false);
            self.nodes[n].children = kids;
        }
        self.splice(roots, true)
    }

    /// Step 3 on one sibling list whose members' children are already pruned.
    fn splice(&mut self, list: Vec<usize>, root: bool) -> Vec<usize> {
        let mut out = Vec::with_capacity(list.len());
        for c in list {
            if !self.is_dummy(c) {
                out.push(c);
                continue;
            }
            let kids = std::mem::take(&mut self.nodes[c].children);
            match kids.len() {
                // (A) a dummy without children goes.
                0 => {}
                // (B) promote the children, except several children into the root set.
                n if !root || n == 1 => {
                    let parent = self.nodes[c].parent;
                    for &k in &kids {
                        self.nodes[k].parent = parent;
                    }
                    out.extend(kids);
                }
                _ => {
                    self.nodes[c].children = kids;
                    out.push(c);
                }
            }
        }
        out
    }

    /// Step 6: sort every sibling set, children before their parents.
    fn sort_tree(&mut self, list: &mut [usize]) {
        // Iterative post-order so deep reply chains cannot overflow the stack.
        let mut stack: Vec<(usize, bool)> = list.iter().map(|&c| (c, false)).collect();
        while let Some((c, done)) = stack.pop() {
            if done {
                let mut kids = std::mem::take(&mut self.nodes[c].children);
                self.sort_list(&mut kids);
                self.nodes[c].children = kids;
            } else {
                stack.push((c, true));
                stack.extend(self.nodes[c].children.iter().map(|&k| (k, false)));
            }
        }
        self.sort_list(list);
    }

    fn subject_of(&self, c: usize) -> Option<&BaseSubject> {
        self.representative(c).map(|m| &self.subjects[m])
    }

    /// Step 5: merge root-set threads with the same base subject.
    fn group_by_subject(&mut self, roots: &mut Vec<usize>) {
        // (A)-(C) the subject table.
        let mut table: HashMap<String, usize> = HashMap::new();
        for &c in roots.iter() {
            let Some(subj) = self.subject_of(c) else {
                continue;
            };
            if subj.key.is_empty() {
                continue;
            }
            let replace = match table.get(&subj.key) {
                None => true,
                Some(&t) => {
                    (self.is_dummy(c) && !self.is_dummy(t))
                        || (!self.is_dummy(t)
                            && !self.is_dummy(c)
                            && self.subject_of(t).is_some_and(|s| s.reply)
                            && !subj.reply)
                }
            };
            if replace {
                table.insert(subj.key.clone(), c);
            }
        }
        // (D) merge each other container into the one in the table. Merged containers
        // become tombstones and are dropped at the end (no O(n) removals in the loop).
        let mut pos: HashMap<usize, usize> =
            roots.iter().enumerate().map(|(i, &r)| (r, i)).collect();
        let mut gone = vec![false; roots.len()];
        for i in 0..roots.len() {
            let c = roots[i];
            let Some(subj) = self.subject_of(c).cloned() else {
                continue;
            };
            let t = match table.get(&subj.key) {
                Some(&t) if !subj.key.is_empty() && t != c => t,
                _ => continue,
            };
            let t_reply = self.subject_of(t).is_some_and(|s| s.reply);
            if self.is_dummy(t) && self.is_dummy(c) {
                // Both dummies: the children become siblings.
                let kids = std::mem::take(&mut self.nodes[c].children);
                for k in kids {
                    self.nodes[k].parent = Some(t);
                    self.nodes[t].children.push(k);
                }
            } else if self.is_dummy(t) || (!self.is_dummy(c) && subj.reply && !t_reply) {
                // Under the dummy, or a reply under the original.
                self.link(t, c);
            } else {
                // Otherwise both go under a new dummy that takes the table entry's place.
                let d = self.add(None);
                self.link(d, t);
                self.link(d, c);
                if let Some(p) = pos.remove(&t) {
                    roots[p] = d;
                    pos.insert(d, p);
                }
                table.insert(subj.key.clone(), d);
            }
            gone[i] = true;
        }
        let mut i = 0;
        roots.retain(|_| {
            let keep = !gone[i];
            i += 1;
            keep
        });
    }

    fn to_node(&self, c: usize) -> ThreadNode {
        // Iterative build (deep chains): children are converted before their parent.
        let mut order = Vec::new();
        let mut stack = vec![c];
        while let Some(n) = stack.pop() {
            order.push(n);
            stack.extend(self.nodes[n].children.iter().copied());
        }
        let mut built: HashMap<usize, ThreadNode> = HashMap::new();
        for &n in order.iter().rev() {
            let children = self.nodes[n]
                .children
                .iter()
                .filter_map(|k| built.remove(k))
                .collect();
            built.insert(
                n,
                ThreadNode {
                    id: self.nodes[n].msg.map(|m| self.msgs[m].id),
                    children,
                },
            );
        }
        built.remove(&c).unwrap_or(ThreadNode {
            id: None,
            children: Vec::new(),
        })
    }
}

fn valid_ids(v: &[String]) -> Vec<&str> {
    v.iter()
        .map(|s| s.trim().trim_start_matches('<').trim_end_matches('>'))
        .filter(|s| !s.is_empty())
        .collect()
}

/// THREAD=REFERENCES (RFC 5256 §3).
pub(crate) fn references(msgs: &[ThreadMsg]) -> Vec<ThreadNode> {
    let mut a = Arena {
        msgs,
        subjects: msgs.iter().map(|m| base_subject(&m.subject)).collect(),
        nodes: Vec::with_capacity(msgs.len() * 2),
    };
    let mut ids: HashMap<String, usize> = HashMap::new();
    let mut by_seq: Vec<usize> = (0..msgs.len()).collect();
    by_seq.sort_by_key(|&i| msgs[i].seq);
    for i in by_seq {
        let m = &msgs[i];
        // Step 1A: the message's container. A missing or duplicate Message-ID gets a
        // unique one (only the lowest sequence number keeps a duplicate ID).
        let own = m
            .message_id
            .as_deref()
            .map(|s| s.trim().trim_start_matches('<').trim_end_matches('>'))
            .filter(|s| !s.is_empty());
        let c = match own.and_then(|id| ids.get(id).copied().map(|c| (id, c))) {
            Some((_, c)) if a.nodes[c].msg.is_none() => {
                a.nodes[c].msg = Some(i);
                c
            }
            Some(_) => a.add(Some(i)),
            None => {
                let c = a.add(Some(i));
                if let Some(id) = own {
                    ids.insert(id.to_owned(), c);
                }
                c
            }
        };
        // References, else the first valid In-Reply-To ID.
        let mut refs = valid_ids(&m.references);
        if refs.is_empty() {
            refs = valid_ids(&m.in_reply_to).into_iter().take(1).collect();
        }
        let mut conts = Vec::with_capacity(refs.len());
        for r in refs {
            let rc = match ids.get(r) {
                Some(&rc) => rc,
                None => {
                    let rc = a.add(None);
                    ids.insert(r.to_owned(), rc);
                    rc
                }
            };
            conts.push(rc);
        }
        // Step 1A.2: link consecutive references parent -> child unless already linked
        // or a loop would result.
        for w in conts.windows(2) {
            let (p, k) = (w[0], w[1]);
            if a.nodes[k].parent.is_none() && p != k && !a.is_under(p, k) {
                a.link(p, k);
            }
        }
        // Step 1B: the last reference is the parent; the message's own References win
        // over a link made from another message's, unless that would make a loop.
        match conts.last() {
            Some(&p) if p != c && !a.is_under(p, c) => a.link(p, c),
            Some(_) => {}
            None => a.unlink(c),
        }
    }
    // Step 2: the root set; step 3: discard the ID table (dropped here).
    let roots: Vec<usize> = (0..a.nodes.len())
        .filter(|&c| a.nodes[c].parent.is_none())
        .collect();
    drop(ids);
    // Step 3: prune dummies.
    let mut roots = a.prune(roots);
    // Step 4: sort the root set (a dummy by its earliest child).
    for &r in &roots {
        if a.is_dummy(r) {
            let mut kids = std::mem::take(&mut a.nodes[r].children);
            a.sort_list(&mut kids);
            a.nodes[r].children = kids;
        }
    }
    a.sort_list(&mut roots);
    // Step 5: group by base subject.
    a.group_by_subject(&mut roots);
    // Step 6: sort every set of siblings.
    a.sort_tree(&mut roots);
    roots.iter().map(|&r| a.to_node(r)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Data, EncodeOptions, Response};

    fn msg(seq: u32, date: i64, subject: &str, id: &str, refs: &[&str]) -> ThreadMsg {
        ThreadMsg {
            id: seq,
            seq,
            date,
            subject: subject.into(),
            message_id: (!id.is_empty()).then(|| id.to_owned()),
            references: refs.iter().map(|s| (*s).to_owned()).collect(),
            in_reply_to: Vec::new(),
        }
    }

    fn wire(t: Vec<ThreadNode>) -> String {
        let b = Response::from(Data::Thread(t)).to_bytes(&EncodeOptions::default());
        String::from_utf8(b)
            .unwrap()
            .trim_start_matches("* THREAD")
            .trim()
            .to_owned()
    }

    #[test]
    fn ordered_subject_groups_by_base_subject() {
        let m = vec![
            msg(1, 10, "hello", "", &[]),
            msg(2, 5, "other", "", &[]),
            msg(3, 30, "Re: hello", "", &[]),
            msg(4, 20, "re: HELLO", "", &[]),
            msg(5, 40, "other", "", &[]),
            msg(6, 1, "third", "", &[]),
        ];
        assert_eq!(wire(ordered_subject(&m)), "(6)(2 5)(1 (4)(3))");
        assert_eq!(wire(ordered_subject(&[])), "");
    }

    #[test]
    fn references_builds_chains_and_branches() {
        let m = vec![
            msg(1, 1, "a", "a@x", &[]),
            msg(2, 2, "Re: a", "b@x", &["a@x"]),
            msg(3, 3, "Re: a", "c@x", &["a@x", "b@x"]),
            msg(4, 4, "Re: a", "d@x", &["a@x"]),
            msg(5, 5, "unrelated", "e@x", &[]),
        ];
        assert_eq!(wire(references(&m)), "(1 (2 3)(4))(5)");
    }

    #[test]
    fn references_missing_parent_becomes_dummy_and_is_promoted() {
        // Two replies to a message that is not in the mailbox: the dummy stays at the
        // root with two children (RFC 5256 §3 step 3B).
        let m = vec![
            msg(1, 1, "Re: gone", "b@x", &["gone@x"]),
            msg(2, 2, "Re: gone", "c@x", &["gone@x"]),
        ];
        assert_eq!(wire(references(&m)), "((1)(2))");
        // One reply: the dummy is replaced by its only child.
        let m = vec![msg(1, 1, "Re: gone", "b@x", &["gone@x"])];
        assert_eq!(wire(references(&m)), "(1)");
        // A dummy in the middle of a chain is removed, its child promoted.
        let m = vec![
            msg(1, 1, "x", "a@x", &[]),
            msg(2, 2, "Re: x", "c@x", &["a@x", "gone@x"]),
        ];
        assert_eq!(wire(references(&m)), "(1 2)");
    }

    #[test]
    fn references_loops_are_ignored() {
        // Each message claims the other as its parent.
        let m = vec![
            msg(1, 1, "p", "a@x", &["b@x"]),
            msg(2, 2, "q", "b@x", &["a@x"]),
        ];
        let t = wire(references(&m));
        assert!(t == "(2 1)" || t == "(1 2)", "{t}");
        // A References list that repeats itself and names the message itself.
        let m = vec![
            msg(1, 1, "s", "a@x", &[]),
            msg(
                2,
                2,
                "Re: s",
                "b@x",
                &["a@x", "b@x", "a@x", "c@x", "a@x", "b@x"],
            ),
        ];
        let t = wire(references(&m));
        assert!(t.starts_with('('), "{t}");
        assert!(t.contains('1') && t.contains('2'), "{t}");
        // Self-reference only.
        let m = vec![msg(1, 1, "s", "a@x", &["a@x"])];
        assert_eq!(wire(references(&m)), "(1)");
    }

    #[test]
    fn references_duplicate_and_missing_ids() {
        let m = vec![
            msg(1, 1, "one", "dup@x", &[]),
            msg(2, 2, "two", "dup@x", &[]),
            msg(3, 3, "three", "", &[]),
            msg(4, 4, "Re: one", "r@x", &["dup@x"]),
        ];
        assert_eq!(wire(references(&m)), "(1 4)(2)(3)");
    }

    #[test]
    fn references_in_reply_to_fallback() {
        let mut r = msg(2, 2, "Re: a", "b@x", &[]);
        r.in_reply_to = vec!["a@x".into(), "z@x".into()];
        let m = vec![msg(1, 1, "a", "a@x", &[]), r];
        assert_eq!(wire(references(&m)), "(1 2)");
    }

    #[test]
    fn references_groups_by_subject() {
        // No References at all: same base subject threads merge; a reply goes under the
        // original (step 5D), two originals share a dummy.
        let m = vec![
            msg(1, 1, "Meeting", "a@x", &[]),
            msg(2, 2, "Re: Meeting", "b@x", &[]),
            msg(3, 3, "Lunch", "c@x", &[]),
            msg(4, 4, "Lunch", "d@x", &[]),
            msg(5, 5, "", "e@x", &[]),
            msg(6, 6, "", "f@x", &[]),
        ];
        assert_eq!(wire(references(&m)), "(1 2)((3)(4))(5)(6)");
    }

    #[test]
    fn references_dummy_root_collects_subject_matches() {
        // A root-level dummy (two replies to a missing message) absorbs a later message
        // with the same base subject.
        let m = vec![
            msg(1, 1, "Re: topic", "b@x", &["gone@x"]),
            msg(2, 2, "Re: topic", "c@x", &["gone@x"]),
            msg(3, 3, "topic", "d@x", &[]),
        ];
        assert_eq!(wire(references(&m)), "((1)(2)(3))");
    }

    #[test]
    fn references_sorts_by_date_then_sequence() {
        let m = vec![
            msg(1, 50, "z", "a@x", &[]),
            msg(2, 10, "y", "b@x", &[]),
            msg(3, 30, "Re: z", "c@x", &["a@x"]),
            msg(4, 20, "Re: z", "d@x", &["a@x"]),
            msg(5, 10, "w", "e@x", &[]),
        ];
        assert_eq!(wire(references(&m)), "(2)(5)(1 (4)(3))");
    }

    #[test]
    fn deep_chain_does_not_overflow() {
        let n = 5000u32;
        let m: Vec<ThreadMsg> = (1..=n)
            .map(|i| {
                let parent = format!("m{}@x", i - 1);
                let refs: Vec<&str> = if i == 1 {
                    vec![]
                } else {
                    vec![parent.as_str()]
                };
                msg(i, i64::from(i), "Re: deep", &format!("m{i}@x"), &refs)
            })
            .collect();
        let t = wire(references(&m));
        assert!(t.starts_with("(1 2 3 "), "{}", &t[..20]);
        assert!(t.ends_with(" 5000)"));
    }
}
