//! Feeds arbitrary bytes to the IMAP command receiver in chunks whose sizes
//! come from the input, switching modes as a server would, and writes the
//! resulting error responses (see `driver.rs`). Must never panic.
//!
//! Run from `crates/keel-imap/`: `cargo +nightly fuzz run -s none receiver`
//! (`-s none` because the codec has no unsafe code to sanitize).
#![no_main]

include!("driver.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_imap_receiver(data));
