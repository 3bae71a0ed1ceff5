//! Queue ids in the guide's shape (guide §25.3): the Unix time in hex, a dash, and an
//! 8-digit hex counter, e.g. `438dd9ea-00000000`.
//!
//! The counter is process-wide and starts at a random value below 2^24, so ids of two
//! processes started within the same second (CLI and server, or a restart) are unlikely to
//! collide; the queue's primary key refuses a collision (`Conflict`) rather than merging.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

fn counter() -> &'static AtomicU32 {
    static COUNTER: OnceLock<AtomicU32> = OnceLock::new();
    COUNTER.get_or_init(|| AtomicU32::new(rand::random::<u32>() & 0x00ff_ffff))
}

/// A new queue id for the Unix time `unix`.
pub fn new_queue_id(unix: i64) -> String {
    let n = counter().fetch_add(1, Ordering::Relaxed);
    // Truncation to 32 bits is the guide's format (8 hex digits) until 2106.
    format!("{:08x}-{n:08x}", unix as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_the_guides_shape_and_differ() {
        let a = new_queue_id(0x438d_d9ea);
        let b = new_queue_id(0x438d_d9ea);
        assert_eq!(a.len(), 17);
        assert!(a.starts_with("438dd9ea-"));
        assert_ne!(a, b);
    }
}
