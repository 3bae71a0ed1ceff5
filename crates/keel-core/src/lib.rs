//! Keel core: shared building blocks of every service (DESIGN §1, §10).
//!
//! - [`address`]: e-mail address parsing and the `*`/`?` patterns of aliases (guide §12.3).
//! - [`ipgroup`]: IP address groups (guide §19.1), the policy building block.
//! - [`timeinterval`]: time intervals (guide §19.2).
//! - [`clock`]: a clock tests can move (DESIGN §3).
//! - [`log`]: the guide's log files with rotation (guide ch. 25).
//! - [`stats`]: the server statistics counters (guide §24.6).

pub mod address;
pub mod clock;
pub mod ipgroup;
pub mod log;
pub mod stats;
pub mod timeinterval;
pub mod traffic;
