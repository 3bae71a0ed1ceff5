//! Striped in-process locks (see the crate's implementation notes).

use std::sync::{Mutex, MutexGuard};

const STRIPES: usize = 256;

pub(crate) struct Stripes(Vec<Mutex<()>>);

/// Held stripes; released on drop.
pub(crate) struct Held<'a>(#[allow(dead_code)] Vec<MutexGuard<'a, ()>>);

impl Stripes {
    pub(crate) fn new() -> Self {
        Self((0..STRIPES).map(|_| Mutex::new(())).collect())
    }

    fn index(key: &str) -> usize {
        // FNV-1a: stable and cheap; only spreads keys over the stripes.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in key.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        usize::try_from(h % STRIPES as u64).unwrap_or(0)
    }

    /// Locks the stripes of all keys, in stripe order (so two callers never deadlock).
    pub(crate) fn lock<'a, I, S>(&'a self, keys: I) -> Held<'a>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut idx: Vec<usize> = keys.into_iter().map(|k| Self::index(k.as_ref())).collect();
        idx.sort_unstable();
        idx.dedup();
        Held(
            idx.into_iter()
                .filter_map(|i| self.0.get(i))
                .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
                .collect(),
        )
    }

    pub(crate) fn lock_one(&self, key: &str) -> Held<'_> {
        self.lock([key])
    }
}
