//! Feeds arbitrary bytes through the POP3 line reader, command parser and SASL decoders
//! in input-chosen chunk sizes (see `driver.rs`). Must never panic.
//!
//! Run from `crates/keel-pop3/`: `cargo +nightly fuzz run -s none session`
//! (`-s none` because the codec has no unsafe code to sanitize).
#![no_main]

include!("driver.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_pop3_session(data));
