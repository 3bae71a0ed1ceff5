//! Feeds arbitrary bytes to the IMAP command receiver in chunks whose sizes
//! come from the input, switching modes as a server would, and writes the
//! resulting error responses. Must never panic.
//!
//! Run from `crates/keel-imap/`: `cargo +nightly fuzz run -s none receiver`
//! (`-s none` because the codec has no unsafe code to sanitize).
#![no_main]

use keel_imap::codec::{CommandBody, EncodeOptions, Event, Limits, Receiver, Response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let limits = if control & 1 == 0 {
        Limits::default()
    } else {
        Limits {
            max_line: 128,
            max_literal: 64,
            max_command_literals: 96,
            max_depth: 6,
            max_sequence_ranges: 8,
        }
    };
    let mut rx = Receiver::new(limits);
    rx.set_utf8(control & 2 != 0);
    let chunk = usize::from(control >> 2).max(1);
    for piece in rest.chunks(chunk) {
        rx.feed(piece);
        loop {
            match rx.next() {
                Ok(Some(Event::Command(cmd))) => match cmd.body {
                    CommandBody::Idle => rx.expect_idle_done(),
                    CommandBody::Authenticate { .. } => rx.expect_sasl_line(),
                    _ => {}
                },
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    let _ = Response::from(e.to_response()).to_bytes(&EncodeOptions::default());
                }
            }
        }
    }
    let _ = rx.finish();
});
