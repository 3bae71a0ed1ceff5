//! Feeds arbitrary bytes through the SMTP line reader, command parser and DATA/BDAT
//! receivers in input-chosen chunk sizes (see `driver.rs`). Must never panic.
//!
//! Run from `crates/keel-smtp/`: `cargo +nightly fuzz run -s none session`
//! (`-s none` because the codec has no unsafe code to sanitize).
#![no_main]

include!("driver.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_smtp_session(data));
