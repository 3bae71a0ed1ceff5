//! Feeds arbitrary bytes, as a whole message, through the MIME entry points Keel runs on
//! untrusted mail (see `driver.rs`): the filter's structural check, part list and part
//! removal, the Bayes tokenizer and header view; IMAP FETCH, SEARCH and SORT parsing;
//! the SMTP domain footer and delivery status notifications. Must never panic.
//!
//! Run from `crates/keel-filter/`: `cargo +nightly fuzz run -s none mime`
//! (`-s none` because the code has no unsafe code to sanitize).
#![no_main]

include!("driver.rs");

libfuzzer_sys::fuzz_target!(|data: &[u8]| fuzz_mime(data));
